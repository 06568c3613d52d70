# GPU-to-GPU through the endpoint (staged, device unpack, CUDA IPC). Needs a
# GPU: scripts/gpu-check runs it there; here it reports "skipped" (77).
add_executable(gpu_engine_check gpu_engine_check.c)
target_link_libraries(gpu_engine_check PRIVATE p2p_test_support)
foreach(mode staged ipc)
  add_test(NAME gpu_engine_${mode} COMMAND gpu_engine_check ${mode} --max 67108864)
  set_tests_properties(gpu_engine_${mode} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
endforeach()
