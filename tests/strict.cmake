# The strict model of GPUDirect-TCPX (tests/plugins/fake_tcpx*.c; its rules
# are listed in fake_tcpx.c and docs/TCPX.md). This host-memory build needs
# no libcuda; receives land in its host bounce pool and the engine unpacks
# them on the CPU. The suites below run through it (tests/strict_run.sh):
# a run fails when its command fails, when the plugin was never loaded, or
# when any TCPX rule was broken.
add_library(fake-tcpx-host MODULE plugins/fake_tcpx.c plugins/fake_tcpx_rules.c
            plugins/fake_tcpx_mem.c)
target_include_directories(fake-tcpx-host PRIVATE ${PROJECT_SOURCE_DIR}/src/net)
set_target_properties(fake-tcpx-host PROPERTIES PREFIX "lib"
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test-plugins)
set(P2P_STRICT ${CMAKE_CURRENT_SOURCE_DIR}/strict_run.sh
    $<TARGET_FILE:fake-tcpx-host>)

# name, labels, timeout, command...
function(p2p_strict_test name labels timeout)
  add_test(NAME strict_${name} COMMAND ${P2P_STRICT} ${ARGN})
  set_tests_properties(strict_${name} PROPERTIES TIMEOUT ${timeout}
                       SKIP_RETURN_CODE 77)
  if(labels)
    set_tests_properties(strict_${name} PROPERTIES LABELS "${labels}")
  endif()
endfunction()

# The endpoint suites (sizes up to 256 MiB; 1 GiB each way in endpoint_1gib).
p2p_strict_test(endpoint_ops "" 900 $<TARGET_FILE:test_endpoint> test_ops_)
p2p_strict_test(endpoint_onesided "" 900 $<TARGET_FILE:test_endpoint_onesided>)
foreach(t refusal faults hostile stress)
  p2p_strict_test(endpoint_${t} threaded 600 $<TARGET_FILE:test_endpoint_${t}>)
endforeach()
# the NCCL_DYNAMIC_CHUNK_SIZE and RxDM cases
add_dependencies(test_loader_tcpx fake-tcpx-host)

# The Python binding (UCCL's API) and both examples, through the plugin.
if(P2P_PY_TESTS)
  foreach(name api two_process transfer collective examples)
    p2p_strict_test(python_${name} "" 600
                    /usr/bin/python3 -m pytest -q -p no:cacheprovider
                    ${CMAKE_CURRENT_SOURCE_DIR}/python/test_${name}.py)
    set_tests_properties(strict_python_${name} PROPERTIES
                         ENVIRONMENT "${P2P_PY_ENV}")
  endforeach()
endif()

# bench p2p: send, write, read and a ping-pong through the plugin.
add_test(NAME strict_bench_p2p_smoke
         COMMAND ${P2P_STRICT} $<TARGET_FILE:tcpx-p2p> bench p2p --sizes 256,1M
                 --iters 10 --ref-seconds 0 --ref-procs 0 --json)
set_tests_properties(strict_bench_p2p_smoke PROPERTIES TIMEOUT 300 LABELS bench)

# The model itself: each rule, broken on purpose, is caught and named.
add_dependencies(test_strict_model fake-tcpx-host)
target_compile_definitions(test_strict_model PRIVATE
  STRICT_PLUGIN="$<TARGET_FILE:fake-tcpx-host>")
add_test(NAME strict_model COMMAND test_strict_model)
set_tests_properties(strict_model PROPERTIES TIMEOUT 120)

# The CLI's send/recv (tests/cli_xfer.sh) through the plugin.
add_test(NAME strict_cli_xfer
         COMMAND ${P2P_STRICT} sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_xfer.sh
                 ${CMAKE_BINARY_DIR}/tcpx-p2p $<TARGET_FILE:fake-tcpx-host>)
set_tests_properties(strict_cli_xfer PROPERTIES TIMEOUT 300 LABELS threaded)

# GPU memory through the fake CUDA driver (tests/fakecuda.cmake), with
# FAKE_TCPX_PTR_CUDA=1: the host build then advertises GPU pointers, as
# TCPX does on every device. Its device has no PCI path (as lo), where a
# GPU regMr crashes real TCPX ([gpu-regmr-pci]), so the engine must stage
# GPU memory through host memory: send/recv at odd sizes and offsets with
# poisoned guards (gpu_engine_check), and send, write and read (bench p2p
# --gpu), byte-checked; host receives land in the bounce pool ("bounce")
# or in place as on TCPX ("inplace"). With FAKE_TCPX_PCI_PATH set, the same
# take the direct path (GPU regMr; the CPU unpacks into "GPU" memory): the
# engine must not log that it stages.
set(P2P_FAKE_GPU "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>"
    FAKE_TCPX_PTR_CUDA=1 TCPX_P2P_LOG_LEVEL=3)
set(P2P_NIC_PCI FAKE_TCPX_PCI_PATH=/sys/devices/pci0000:00/0000:00:04.0)
# name, FAKE_TCPX_HOST_LANDING, 1 for a PCI path, command...
function(p2p_strict_gpu_test name landing pci)
  p2p_strict_test(${name} "" 300 ${ARGN})
  set(env ${P2P_FAKE_GPU} FAKE_TCPX_HOST_LANDING=${landing})
  if(pci)
    list(APPEND env ${P2P_NIC_PCI})
    set_tests_properties(strict_${name} PROPERTIES
                         FAIL_REGULAR_EXPRESSION "no PCI path")
  endif()
  set_tests_properties(strict_${name} PROPERTIES ENVIRONMENT "${env}")
endfunction()
set(P2P_GPU_XFER $<TARGET_FILE:gpu_engine_check> unpack --max 2097152
    --plugin $<TARGET_FILE:fake-tcpx-host>)
set(P2P_GPU_BENCH $<TARGET_FILE:tcpx-p2p> bench p2p --gpu --sizes 65537,1M
    --iters 10 --ref-seconds 0 --json)
p2p_strict_gpu_test(gpu_nopci_inplace_fakecuda direct 0 ${P2P_GPU_XFER})
p2p_strict_gpu_test(gpu_nopci_bounce_fakecuda bounce 0 ${P2P_GPU_XFER})
p2p_strict_gpu_test(bench_p2p_gpu_nopci_fakecuda direct 0 ${P2P_GPU_BENCH})
p2p_strict_gpu_test(gpu_direct_fakecuda bounce 1 ${P2P_GPU_XFER})
p2p_strict_gpu_test(bench_p2p_gpu_direct_fakecuda bounce 1 ${P2P_GPU_BENCH})
