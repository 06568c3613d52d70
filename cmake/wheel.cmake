# The wheel's contents (pip install . through scikit-build-core, which sets
# SKBUILD and installs into the wheel's site-packages root):
#   tcpx_p2p/            the package's .py files and _ext (the C engine,
#                        statically linked into the extension)
#   tcpx_p2p/_bin/       tcpx-p2p, run by the `tcpx-p2p` console command
#   tcpx_p2p/_lib/       libtcpx_p2p.so and the NCCL net plugin
#                        libnccl-net-tcpxp2p.so (NCCL_NET_PLUGIN=<path>)
#   tcpx_p2p/_include/   tcpx_p2p.h, for C code built against _lib
#   uccl/                the compatibility package
# One copy of each file: a wheel cannot hold the soname symlinks.
if(NOT TARGET tcpx_p2p_ext)
  message(FATAL_ERROR "wheel: the Python extension is not configured (no "
                      "Python headers for ${Python3_EXECUTABLE}?)")
endif()
install(TARGETS tcpx_p2p_ext LIBRARY DESTINATION tcpx_p2p)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/tcpx_p2p
                  ${PROJECT_SOURCE_DIR}/python/uccl
        DESTINATION . FILES_MATCHING PATTERN "*.py"
        PATTERN "__pycache__" EXCLUDE)
install(TARGETS tcpx-p2p RUNTIME DESTINATION tcpx_p2p/_bin)
install(TARGETS tcpx_p2p nccl-net-tcpxp2p LIBRARY DESTINATION tcpx_p2p/_lib)
install(FILES ${PROJECT_SOURCE_DIR}/include/tcpx_p2p.h
        DESTINATION tcpx_p2p/_include)
