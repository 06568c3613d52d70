# Sourced by the scripts that run on the lent GPU machine, which has no
# iproute2 and no iperf3: unpack the Debian packages carried in .deb/
# (an ignored folder, sent with `carry`) to /tmp/iproute and put their
# programs and libraries on the paths. Does nothing where `ip` exists.
use_carried_debs() {
  [[ -d .deb ]] && ! command -v ip >/dev/null || return 0
  mkdir -p /tmp/iproute && for d in .deb/*.deb; do dpkg -x "$d" /tmp/iproute; done
  export PATH=/tmp/iproute/sbin:/tmp/iproute/usr/sbin:/tmp/iproute/bin:/tmp/iproute/usr/bin:$PATH
  export LD_LIBRARY_PATH=/tmp/iproute/lib/x86_64-linux-gnu:/tmp/iproute/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}
