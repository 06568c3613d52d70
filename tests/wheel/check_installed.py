"""Run inside a venv that holds only the installed wheel (tests/wheel.sh):
the packages import from the venv, two Endpoints move random bytes over
loopback byte-exact into poisoned buffers, and the bundled C pieces (the
shared library, the NCCL net plugin) load and say the same version.

    python check_installed.py EXPECTED_VERSION
"""
import ctypes
import os
import sys
import threading

import tcpx_p2p
from uccl import p2p

SIZES = (1000, 3 << 20)  # an inline control message, and striped chunks
POISON = 0xAB


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def check_where_and_version(version):
    where = os.path.dirname(os.path.abspath(tcpx_p2p.__file__))
    check(where.startswith(sys.prefix), "tcpx_p2p imported from %s, not "
          "the venv %s" % (where, sys.prefix))
    check(tcpx_p2p.__version__ == version, "tcpx_p2p.__version__ is %r"
          % tcpx_p2p.__version__)
    check(p2p.__version__ == version, "uccl.p2p.__version__ is %r"
          % p2p.__version__)
    return where


def check_bundled_libraries(pkg_dir, version):
    lib = ctypes.CDLL(os.path.join(pkg_dir, "_lib", "libtcpx_p2p.so"))
    lib.p2p_version.restype = ctypes.c_char_p
    got = lib.p2p_version().decode()
    check(got == version, "bundled libtcpx_p2p.so says %r" % got)
    plugin = ctypes.CDLL(os.path.join(pkg_dir, "_lib", "libnccl-net-tcpxp2p.so"))
    for n in range(7, 12):  # the tables NCCL looks for
        ctypes.c_void_p.in_dll(plugin, "ncclNetPlugin_v%d" % n)
    check(os.path.isfile(os.path.join(pkg_dir, "_include", "tcpx_p2p.h")),
          "no bundled tcpx_p2p.h")


def endpoint():
    return p2p.Endpoint(0, 1, plugin="builtin", ifname="lo")


def connect_pair(server, client):
    ip, port, gpu = p2p.Endpoint.parse_metadata(server.get_metadata())
    accepted = {}
    t = threading.Thread(target=lambda: accepted.update(r=server.accept()))
    t.start()
    ok, conn = client.connect(ip, gpu, remote_port=port)
    t.join(60)
    check(ok and not t.is_alive(), "connect over loopback failed")
    ok, _, _, server_conn = accepted["r"]
    check(ok, "accept failed")
    return client, conn, server, server_conn


def transfer(sender, s_conn, receiver, r_conn, size):
    data = os.urandom(size)
    src = ctypes.create_string_buffer(data, size)
    dst = ctypes.create_string_buffer(bytes([POISON]) * size, size)
    ok, s_mr = sender.reg(ctypes.addressof(src), size)
    check(ok, "reg (send side)")
    ok, r_mr = receiver.reg(ctypes.addressof(dst), size)
    check(ok, "reg (receive side)")
    result = {}
    t = threading.Thread(target=lambda: result.update(
        ok=receiver.recv(r_conn, r_mr, ctypes.addressof(dst), size)))
    t.start()
    check(sender.send(s_conn, s_mr, ctypes.addressof(src), size), "send")
    t.join(60)
    check(result.get("ok") is True, "recv of %d bytes" % size)
    check(dst.raw == data, "%d bytes arrived changed" % size)


def main():
    version = sys.argv[1]
    pkg_dir = check_where_and_version(version)
    check_bundled_libraries(pkg_dir, version)
    client, c_conn, server, s_conn = connect_pair(endpoint(), endpoint())
    for size in SIZES:
        transfer(client, c_conn, server, s_conn, size)
    print("wheel: tcpx-p2p %s from %s: loopback send/recv byte-exact (%s bytes)"
          % (version, pkg_dir, ", ".join(map(str, SIZES))))


if __name__ == "__main__":
    main()
