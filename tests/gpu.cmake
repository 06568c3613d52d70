# The GPU layer (src/gpu/). Without a GPU (CI): CUDA loading, pointer
# classification, the embedded kernel, the host reference of the unpack
# walk, receive numbering and GPU/NIC affinity. On a GPU host
# (scripts/gpu-check): the kernel, staging, IPC and the FakeTCPX plugin;
# those tests exit 77 (skipped) where no GPU is usable.
find_path(P2P_CUDA_INCLUDE cuda.h HINTS $ENV{CUDA_HOME}/include
          /usr/local/cuda/include)
find_library(P2P_CUDA_STUB cuda HINTS $ENV{CUDA_HOME}/lib64/stubs
             /usr/local/cuda/lib64/stubs NO_DEFAULT_PATH
             DOC "libcuda stub, only to link the FakeTCPX test plugin")

# 1 when ../gpu.cmake built the kernel into p2p_core (read at generate
# time, so the order in which the two fragments are included is free).
target_compile_definitions(test_gpu_nocuda PRIVATE
  P2P_EXPECT_KERNEL=$<BOOL:$<TARGET_PROPERTY:p2p_core,P2P_UNPACK_KERNEL>>)
add_test(NAME gpu_nocuda COMMAND test_gpu_nocuda)
add_test(NAME gpu_affinity COMMAND test_gpu_affinity)
set_tests_properties(gpu_nocuda gpu_affinity PROPERTIES TIMEOUT 60)

add_test(NAME gpu_unpack_dev COMMAND test_gpu_unpack_dev)
add_test(NAME gpu_dev COMMAND test_gpu_dev)
add_test(NAME gpu_tcpx COMMAND test_gpu_tcpx)
set_tests_properties(gpu_unpack_dev gpu_dev gpu_tcpx PROPERTIES
                     TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS gpu)
# One IPC copy cache used by 8 threads at once, through the fake driver
# (tests/fakecuda.cmake) on any machine: tickets unique, bytes exact. Its
# copies are synchronous, so the race it guards against (copy, event and
# ticket taken apart by another thread) shows under -DP2P_SANITIZE=thread;
# on a GPU host gpu_dev runs the same case with real, asynchronous copies.
add_test(NAME gpu_ipc_threads_fakecuda
         COMMAND test_gpu_dev test_ipc_copies_from_threads)
set_tests_properties(gpu_ipc_threads_fakecuda PROPERTIES TIMEOUT 120
                     ENVIRONMENT "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>")
# CUDA IPC between two processes through the fake driver, whose device
# memory is a memfd the child maps through /proc: the parent's bytes read
# by the child, the child's write seen by the parent. With the fake's IPC
# broken (a fresh zeroed buffer instead of the parent's) it must fail: the
# check sees bytes that never crossed.
add_test(NAME gpu_ipc_two_processes_fakecuda
         COMMAND test_gpu_dev test_ipc_two_processes)
add_test(NAME gpu_ipc_two_processes_broken_fakecuda
         COMMAND test_gpu_dev test_ipc_two_processes)
set_tests_properties(gpu_ipc_two_processes_fakecuda PROPERTIES TIMEOUT 120
                     ENVIRONMENT "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>")
set_tests_properties(gpu_ipc_two_processes_broken_fakecuda PROPERTIES
                     TIMEOUT 120 WILL_FAIL TRUE ENVIRONMENT
                     "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>;FAKE_CUDA_IPC_BROKEN=1")

# FakeTCPX: like GPUDirect-TCPX it needs libcuda.so.1 (DT_NEEDED, linked
# against the toolkit's stub; the real driver is found at run time).
if(P2P_CUDA_INCLUDE AND P2P_CUDA_STUB)
  add_library(fake-tcpx MODULE plugins/fake_tcpx.c plugins/fake_tcpx_rules.c
              plugins/fake_tcpx_mem.c)
  target_compile_definitions(fake-tcpx PRIVATE FT_CUDA)
  target_include_directories(fake-tcpx PRIVATE ${PROJECT_SOURCE_DIR}/src/net
                             ${P2P_CUDA_INCLUDE})
  target_link_libraries(fake-tcpx PRIVATE ${P2P_CUDA_STUB})
  set_target_properties(fake-tcpx PROPERTIES PREFIX "lib" SKIP_BUILD_RPATH TRUE
                        LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test-plugins)
  add_dependencies(test_gpu_tcpx fake-tcpx)
  target_compile_definitions(test_gpu_tcpx PRIVATE
    GPU_FAKE_TCPX_PATH="${CMAKE_BINARY_DIR}/test-plugins/libfake-tcpx.so")
endif()
