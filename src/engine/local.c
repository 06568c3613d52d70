/* Same-host connections (connect_local / accept_local): a unix socket per
 * GPU index and user, found by connect_local(gpu) without any metadata.
 *
 * Where: ${TMPDIR:-/tmp}/tcpx-p2p-<uid>/gpu<N>.sock, in a directory only
 * its owner may enter (0700, ours, not a symlink; refused otherwise), so
 * another user can neither reach our socket nor put one of theirs in its
 * place. Both ends also check the other's credentials (SO_PEERCRED: same
 * user), which holds even if the directory were opened up.
 *
 * A newer endpoint of the same GPU index replaces an older socket: it
 * binds a private name and renames it over the path, one atomic step, so
 * two endpoints starting at once (e.g. in two network namespaces sharing
 * /tmp) never fail with "Address already in use". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "engine.h"
#include "tcp.h"

static int local_dir(char *buf, size_t len) {
  const char *tmp = getenv("TMPDIR");
  int n = snprintf(buf, len, "%s/tcpx-p2p-%u", tmp && *tmp ? tmp : "/tmp",
                   (unsigned)geteuid());
  if (n < 0 || (size_t)n >= len)
    return ep_err(P2P_EINVAL, "connect_local: TMPDIR is too long for a unix "
                  "socket path");
  return P2P_OK;
}

/* The directory, made private if new; an existing one must be ours. */
static int private_dir(const char *dir) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return ep_err(P2P_ESYS, "mkdir %s: %s", dir, strerror(errno));
  struct stat st;
  if (lstat(dir, &st) != 0)
    return ep_err(P2P_ESYS, "stat %s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
    return ep_err(P2P_ESYS, "%s is not a directory of this user: refusing to "
                  "put the same-host socket there", dir);
  if ((st.st_mode & 077) && chmod(dir, 0700) != 0)
    return ep_err(P2P_ESYS, "chmod 0700 %s: %s", dir, strerror(errno));
  return P2P_OK;
}

static int socket_path(int gpu, char *buf, size_t len) {
  char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
  int rc = local_dir(dir, sizeof dir);
  if (rc != P2P_OK) return rc;
  int n = snprintf(buf, len, "%s/gpu%d.sock", dir, gpu);
  if (n < 0 || (size_t)n >= len)
    return ep_err(P2P_EINVAL, "connect_local: TMPDIR is too long for a unix "
                  "socket path");
  return P2P_OK;
}

int local_peer_ok(int fd, const char *who) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return ep_err(P2P_ESYS, "%s: SO_PEERCRED: %s", who, strerror(errno));
  if (cred.uid != geteuid())
    return ep_err(P2P_EAUTH, "%s: the process at the other end (pid %d) "
                  "belongs to user %u, not to this user (%u): refused", who,
                  (int)cred.pid, (unsigned)cred.uid, (unsigned)geteuid());
  return P2P_OK;
}

/* Bind a private name in the directory, listen, then rename it over the
 * GPU's path. */
static int bind_and_publish(int fd, const char *path, char *tmp, size_t tmp_len) {
  uint32_t r;
  if (auth_random(&r, sizeof r) != 0) return ep_err(P2P_ESYS, "%s", err_get());
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  const char *slash = strrchr(path, '/');
  int n = snprintf(tmp, tmp_len, "%.*s/.new-%08x", (int)(slash - path), path, r);
  if (n < 0 || (size_t)n >= sizeof sun.sun_path)
    return ep_err(P2P_EINVAL, "unix socket path too long");
  memcpy(sun.sun_path, tmp, (size_t)n + 1);
  if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(fd, 64) != 0)
    return ep_err(P2P_ESYS, "unix socket %s: %s", tmp, strerror(errno));
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return ep_err(P2P_ESYS, "rename %s to %s: %s", tmp, path, strerror(e));
  }
  return P2P_OK;
}

int local_open(p2p_endpoint *ep) {
  tcp_options tcp;
  tcp_options_default(&tcp);
  snprintf(tcp.ifname, sizeof tcp.ifname, "=lo");
  tcp.allow_loopback = 1;
  if (net_tcp_create(&tcp, &ep->local_net) != NET_OK)
    return ep_err(P2P_ENOTSUP, "loopback transport: %s", err_get());
  char dir[sizeof ep->local_path], tmp[sizeof ep->local_path];
  int rc = local_dir(dir, sizeof dir);
  if (rc == P2P_OK) rc = private_dir(dir);
  if (rc == P2P_OK)
    rc = socket_path(ep->opts.gpu_index, ep->local_path, sizeof ep->local_path);
  if (rc != P2P_OK) return rc;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ep_err(P2P_ESYS, "unix socket: %s", strerror(errno));
  if ((rc = bind_and_publish(fd, ep->local_path, tmp, sizeof tmp)) != P2P_OK) {
    close(fd);
    return rc;
  }
  struct stat st;
  if (stat(ep->local_path, &st) == 0) ep->local_ino = st.st_ino;
  ep->local_fd = fd;
  return P2P_OK;
}

void local_close(p2p_endpoint *ep) {
  if (ep->local_fd < 0) return;
  struct stat st; /* remove the path only while it is still ours */
  if (stat(ep->local_path, &st) == 0 && st.st_ino == ep->local_ino)
    unlink(ep->local_path);
  close(ep->local_fd);
  ep->local_fd = -1;
}

int local_dial(int gpu, int *fd_out) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  int rc = socket_path(gpu, sun.sun_path, sizeof sun.sun_path);
  if (rc != P2P_OK) return rc;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ep_err(P2P_ESYS, "unix socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
    int e = errno;
    close(fd);
    return ep_err(P2P_EPEER, "connect_local: no endpoint of GPU %d on this "
                  "host (%s: %s)", gpu, sun.sun_path, strerror(e));
  }
  if ((rc = local_peer_ok(fd, "connect_local")) != P2P_OK) {
    close(fd);
    return rc;
  }
  *fd_out = fd;
  return P2P_OK;
}
