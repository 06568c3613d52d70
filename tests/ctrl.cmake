# Control-message framing (src/engine/ctrl.c) and connection
# authentication (src/engine/auth.c): pure functions, no network.
add_test(NAME ctrl COMMAND test_ctrl)
add_test(NAME auth COMMAND test_auth)
set_tests_properties(ctrl auth PROPERTIES TIMEOUT 60)
# How messages are cut into chunks (src/engine/chunks.c chunk_cut).
add_test(NAME chunk_cut COMMAND test_chunks)
set_tests_properties(chunk_cut PROPERTIES TIMEOUT 60)
