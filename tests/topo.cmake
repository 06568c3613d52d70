# Interface discovery (src/net/topo.c) and the `tcpx-p2p devices` CLI.
add_test(NAME topo COMMAND test_topo)
set_tests_properties(topo PROPERTIES TIMEOUT 120)

# CLI: usage and error paths, then `devices` inside a fresh namespace
# (skipped, exit 77, where namespaces cannot be made).
add_test(NAME topo_cli_usage
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_devices.sh usage
                 ${CMAKE_BINARY_DIR}/tcpx-p2p)
add_test(NAME topo_cli_devices_netns
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_devices.sh netns
                 ${CMAKE_BINARY_DIR}/tcpx-p2p)
set_tests_properties(topo_cli_usage topo_cli_devices_netns PROPERTIES
                     TIMEOUT 60 SKIP_RETURN_CODE 77)
