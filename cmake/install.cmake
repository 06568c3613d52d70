# What `cmake --install` puts under the prefix:
#   include/tcpx_p2p.h
#   lib/libtcpx_p2p.so (+ soname links), lib/libtcpx_p2p.a
#   lib/libnccl-net-tcpxp2p.so       the exported NCCL net plugin
#   bin/tcpx-p2p                     the command line tool
#   lib/pkgconfig/tcpx-p2p.pc        pkg-config --cflags --libs tcpx-p2p
#   lib/cmake/tcpx_p2p/              find_package(tcpx_p2p): the imported
#                                    targets tcpx_p2p::tcpx_p2p (shared)
#                                    and tcpx_p2p::tcpx_p2p_static
# Under scikit-build-core (SKBUILD) the wheel's layout is installed
# instead, by cmake/wheel.cmake.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Installed, a consumer sees include/ and, for the static library, what the
# engine links against (threads, libdl) and the fatbin anchor gpu.cmake
# explains; inside the build p2p_core gives both.
target_include_directories(tcpx_p2p PUBLIC
                           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_include_directories(tcpx_p2p_static PUBLIC
                           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(tcpx_p2p_static INTERFACE
                      $<INSTALL_INTERFACE:Threads::Threads>
                      $<INSTALL_INTERFACE:${CMAKE_DL_LIBS}>)
target_link_options(tcpx_p2p_static INTERFACE
                    $<INSTALL_INTERFACE:LINKER:--undefined=gpu_unpack_fatbin>)
set_target_properties(tcpx_p2p PROPERTIES EXPORT_NAME tcpx_p2p)
set_target_properties(tcpx_p2p_static PROPERTIES EXPORT_NAME tcpx_p2p_static
                      OUTPUT_NAME tcpx_p2p)

if(SKBUILD)
  include(${CMAKE_CURRENT_LIST_DIR}/wheel.cmake)
  return()
endif()

# 0.x: no ABI promise between minor versions, so the soname carries both.
set_target_properties(tcpx_p2p PROPERTIES VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})

set(P2P_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tcpx_p2p)
install(TARGETS tcpx_p2p tcpx_p2p_static EXPORT tcpx_p2pTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/tcpx_p2p.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS nccl-net-tcpxp2p LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS tcpx-p2p RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# CMake package: relocatable (paths relative to the installed file).
install(EXPORT tcpx_p2pTargets NAMESPACE tcpx_p2p::
        DESTINATION ${P2P_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/tcpx_p2pConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tcpx_p2pConfig.cmake INSTALL_DESTINATION ${P2P_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tcpx_p2pConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tcpx_p2pConfig.cmake
              ${PROJECT_BINARY_DIR}/tcpx_p2pConfigVersion.cmake
        DESTINATION ${P2P_CMAKE_DIR})

# pkg-config: prefix found from the .pc file's own place, so that
# `cmake --install --prefix ANYWHERE` gives a working file.
set(P2P_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(P2P_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH P2P_PC_UP /p/${P2P_PC_DIR} /p)
  set(P2P_PC_PREFIX "\${pcfiledir}/${P2P_PC_UP}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/tcpx-p2p.pc.in ${PROJECT_BINARY_DIR}/tcpx-p2p.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tcpx-p2p.pc DESTINATION ${P2P_PC_DIR})
