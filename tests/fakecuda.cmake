# A fake libcuda.so.1 (tests/fakecuda/fake_cuda.c): one "GPU" whose memory
# is host memory, every call synchronous, no kernels. Device memory is a
# memfd, so CUDA IPC works between processes of one user (the peer maps
# it through /proc/<pid>/fd). With it the GPU paths that need no kernel
# run on machines without a GPU: `bench p2p --gpu` end to end (GPU buffers
# staged through pinned memory, every row byte-checked, next to the host
# run and the copy rates): the test bench_p2p_gpu_fakecuda in bench.cmake;
# `bench p2p --gpu --local` (CUDA IPC): bench_p2p_gpu_local_fakecuda.
add_library(fake-cuda MODULE fakecuda/fake_cuda.c)
target_include_directories(fake-cuda PRIVATE ${PROJECT_SOURCE_DIR}/src/gpu)
target_link_libraries(fake-cuda PRIVATE Threads::Threads)
set_target_properties(fake-cuda PROPERTIES PREFIX "lib"
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test-cuda)
