"""``uccl.p2p``: UCCL P2P's module, backed by tcpx-p2p (see tcpx_p2p)."""
from tcpx_p2p import *  # noqa: F401,F403
from tcpx_p2p import Endpoint, get_oob_ip, __version__  # noqa: F401
