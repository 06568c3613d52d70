"""The ``tcpx-p2p`` console command of the wheel: run the bundled binary.

The command line tool is C (tools/); the wheel carries it in
``tcpx_p2p/_bin`` and this entry point replaces the Python process with it,
so exit status, signals and output are the tool's own.
"""
import os
import sys


def bundled_path(*parts):
    """Path of a file the wheel carries under the tcpx_p2p package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), *parts)


def main():
    exe = bundled_path("_bin", "tcpx-p2p")
    if not os.access(exe, os.X_OK):
        sys.stderr.write("tcpx-p2p: no bundled binary at %s (this package "
                         "was not installed from a wheel; use the build "
                         "tree's tcpx-p2p)\n" % exe)
        return 127
    os.execv(exe, ["tcpx-p2p"] + sys.argv[1:])
    return 127  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
