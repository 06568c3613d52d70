# The transport contract, against the built-in transport and against the
# exported plugin loaded through the loader at every exported ABI version.
add_test(NAME conformance_builtin COMMAND test_conformance)
set(P2P_EXPORTED_PLUGIN ${CMAKE_BINARY_DIR}/libnccl-net-tcpxp2p.so)
foreach(v 7 8 9 10 11)
  add_test(NAME conformance_plugin_v${v}
           COMMAND test_conformance --plugin ${P2P_EXPORTED_PLUGIN} --version ${v})
endforeach()
set_tests_properties(conformance_builtin PROPERTIES LABELS threaded TIMEOUT 600)
