# Control-message framing (src/engine/ctrl.c) and connection
# authentication (src/engine/auth.c): pure functions, no network.
add_test(NAME ctrl COMMAND test_ctrl)
add_test(NAME auth COMMAND test_auth)
set_tests_properties(ctrl auth PROPERTIES TIMEOUT 60)
