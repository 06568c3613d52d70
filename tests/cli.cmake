# The `tcpx-p2p` CLI's send/recv and argument handling (tests/cli_*.sh).
set(p2p_cli ${CMAKE_BINARY_DIR}/tcpx-p2p)

# Every refused input exits 2 naming the argument and what it accepts.
add_test(NAME cli_args
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_args.sh ${p2p_cli})
# recv/send between two processes on loopback, sizes 0, 1, 64K+1, 4M, 16M,
# through the built-in transport, then through the exported NCCL plugin in
# strict (TCPX-rules) mode. The endpoint's progress threads run in both
# processes: labelled threaded, so they also run under TSan.
add_test(NAME cli_xfer
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_xfer.sh ${p2p_cli})
add_test(NAME cli_xfer_plugin
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_xfer.sh ${p2p_cli}
                 $<TARGET_FILE:nccl-net-tcpxp2p>)
set_tests_properties(cli_xfer_plugin PROPERTIES ENVIRONMENT TCPX_P2P_TCP_STRICT=1)
set_tests_properties(cli_args cli_xfer cli_xfer_plugin PROPERTIES TIMEOUT 120)
set_tests_properties(cli_xfer cli_xfer_plugin PROPERTIES LABELS threaded)
# bench stopped by SIGTERM, SIGHUP, a closed stdout: nothing left behind
# (skipped, exit 77, where namespaces cannot be made).
add_test(NAME cli_bench_signals
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_signals.sh ${p2p_cli})
set_tests_properties(cli_bench_signals PROPERTIES TIMEOUT 300
                     SKIP_RETURN_CODE 77 LABELS bench)
# The JSON string escaper that `devices --json` and `doctor --json` share
# (tools/json.c), byte for byte.
target_sources(test_json PRIVATE ${PROJECT_SOURCE_DIR}/tools/json.c)
target_include_directories(test_json PRIVATE ${PROJECT_SOURCE_DIR}/tools)
add_test(NAME cli_json COMMAND test_json)
set_tests_properties(cli_json PROPERTIES TIMEOUT 60)
