# GPU-to-GPU through the endpoint (staged, device unpack, CUDA IPC). Needs a
# GPU: scripts/gpu-check runs it there; here it reports "skipped" (77).
add_executable(gpu_engine_check gpu_engine_check.c)
target_link_libraries(gpu_engine_check PRIVATE p2p_test_support)
foreach(mode staged ipc)
  add_test(NAME gpu_engine_${mode} COMMAND gpu_engine_check ${mode} --max 67108864)
  set_tests_properties(gpu_engine_${mode} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
endforeach()
# The staged path (and GPU messages small enough to travel inline), and
# the IPC path below, through the fake driver on any machine: "GPU" memory
# is host memory there, every size still byte-checked with poisoned guards.
if(TARGET fake-cuda)
  add_test(NAME gpu_engine_staged_fakecuda
           COMMAND gpu_engine_check staged --max 2097152)
  set_tests_properties(gpu_engine_staged_fakecuda PROPERTIES
                       ENVIRONMENT "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>"
                       TIMEOUT 300)
  # connect_local and CUDA IPC between two processes (the fake's device
  # memory is a memfd the peer maps): send_ipc/recv_ipc byte-exact at
  # every size, then write_ipc timed against the copy (256 MiB buffers,
  # about 6 s and 0.8 GB here; its numbers mean nothing).
  add_test(NAME gpu_engine_ipc_fakecuda
           COMMAND gpu_engine_check ipc --max 2097152)
  set_tests_properties(gpu_engine_ipc_fakecuda PROPERTIES
                       ENVIRONMENT "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>"
                       TIMEOUT 300)
endif()
