# test_loader: the NCCL net plugin loader (src/net/plugin.c) against the
# exported plugin (build/libnccl-net-tcpxp2p.so) and small fake plugins;
# test_loader_tcpx: what GPUDirect-TCPX needs of the loader (CUDA first,
# NCCL_DYNAMIC_CHUNK_SIZE, RxDM, its default location). Both are built and
# run alike. The fakes are built into ${CMAKE_BINARY_DIR}/test-plugins,
# never installed.
set(LOADER_FAKE_DIR ${CMAKE_BINARY_DIR}/test-plugins)
set(LOADER_TESTS test_loader test_loader_tcpx)

function(loader_fake_plugin name source)
  add_library(${name} MODULE plugins/${source})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src/net)
  set_target_properties(${name} PROPERTIES PREFIX "lib"
                        LIBRARY_OUTPUT_DIRECTORY ${LOADER_FAKE_DIR})
  foreach(loader_test ${LOADER_TESTS})
    add_dependencies(${loader_test} ${name})
  endforeach()
endfunction()

loader_fake_plugin(fake-not-a-plugin not_a_plugin.c)
loader_fake_plugin(fake-versions fake_versions.c)
loader_fake_plugin(fake-null-member null_member.c)
loader_fake_plugin(fake-init-fails init_fails.c)

# A stand-in libcuda.so.1 (own folder, so nothing else picks it up) and a
# plugin that needs it: found through its RPATH (which, unlike RUNPATH,
# wins over LD_LIBRARY_PATH, so a real driver cannot stand in for it), and
# a copy without any path, for the "driver missing" hint.
add_library(loader-fake-cuda SHARED plugins/fake_cuda.c)
set_target_properties(loader-fake-cuda PROPERTIES OUTPUT_NAME cuda
                      SOVERSION 1
                      LIBRARY_OUTPUT_DIRECTORY ${LOADER_FAKE_DIR}/cuda)
loader_fake_plugin(fake-needs-cuda needs_cuda.c)
target_link_libraries(fake-needs-cuda PRIVATE loader-fake-cuda)
target_link_options(fake-needs-cuda PRIVATE -Wl,--disable-new-dtags
                    -Wl,--no-as-needed)
loader_fake_plugin(fake-needs-cuda-nopath needs_cuda.c)
target_link_libraries(fake-needs-cuda-nopath PRIVATE loader-fake-cuda)
target_link_options(fake-needs-cuda-nopath PRIVATE -Wl,--no-as-needed)
set_target_properties(fake-needs-cuda-nopath PROPERTIES SKIP_BUILD_RPATH TRUE)

foreach(loader_test ${LOADER_TESTS})
  add_dependencies(${loader_test} nccl-net-tcpxp2p)
  target_compile_definitions(${loader_test} PRIVATE
                             LOADER_BUILD_DIR="${CMAKE_BINARY_DIR}")
  target_include_directories(${loader_test} PRIVATE
                             ${CMAKE_CURRENT_SOURCE_DIR}/plugins)
  # NCCL_NET_PLUGIN=NAME resolves through the dynamic linker's search path:
  # the build dir is on the test's own RPATH (not RUNPATH, which would not
  # apply when a sanitizer runtime intercepts dlopen).
  set_target_properties(${loader_test} PROPERTIES BUILD_RPATH ${CMAKE_BINARY_DIR})
  target_link_options(${loader_test} PRIVATE -Wl,--disable-new-dtags)
endforeach()

add_test(NAME loader COMMAND test_loader)
add_test(NAME loader_tcpx COMMAND test_loader_tcpx)
set_tests_properties(loader loader_tcpx PROPERTIES TIMEOUT 120
                     ENVIRONMENT "TCPX_P2P_SOCKET_IFNAME=lo")
