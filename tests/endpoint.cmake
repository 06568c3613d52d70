# The endpoint API between two namespaces (tests/test_endpoint*.c).
# test_endpoint's cases are grouped by name: "test_ops_" (every operation
# but the one-sided ones, sizes up to 256 MiB) runs twice, plain and with
# the TCP transport in strict (TCPX rules) mode, as does
# test_endpoint_onesided; "test_big_" (1 GiB each way) runs once.
add_test(NAME endpoint_ops COMMAND test_endpoint test_ops_)
add_test(NAME endpoint_ops_strict COMMAND test_endpoint test_ops_)
set_tests_properties(endpoint_ops_strict PROPERTIES
                     ENVIRONMENT TCPX_P2P_TCP_STRICT=1)
add_test(NAME endpoint_1gib COMMAND test_endpoint test_big_)
add_test(NAME endpoint_onesided COMMAND test_endpoint_onesided)
add_test(NAME endpoint_onesided_strict COMMAND test_endpoint_onesided)
set_tests_properties(endpoint_onesided_strict PROPERTIES
                     ENVIRONMENT TCPX_P2P_TCP_STRICT=1)
add_test(NAME endpoint_refusal COMMAND test_endpoint_refusal)
add_test(NAME endpoint_faults COMMAND test_endpoint_faults)
add_test(NAME endpoint_hostile COMMAND test_endpoint_hostile)
add_test(NAME endpoint_stress COMMAND test_endpoint_stress)
add_test(NAME endpoint_forged COMMAND test_endpoint_forged)
add_test(NAME endpoint_acceptor COMMAND test_endpoint_acceptor)
add_test(NAME endpoint_pointers COMMAND test_endpoint_pointers)
add_test(NAME endpoint_local COMMAND test_endpoint_local)

# endpoint_ops and endpoint_onesided stay out of the TSan stage: their
# one-sided targets learn of a finished write only through the
# out-of-band socket, an order ThreadSanitizer cannot see (the threaded
# tests deregister first, which orders them after the serving thread).
set_tests_properties(endpoint_ops endpoint_ops_strict endpoint_onesided
                     endpoint_onesided_strict PROPERTIES TIMEOUT 600)
set_tests_properties(endpoint_refusal endpoint_faults endpoint_hostile
                     endpoint_stress endpoint_forged endpoint_acceptor
                     endpoint_pointers endpoint_local PROPERTIES TIMEOUT 600 LABELS threaded)
# 1 GiB buffers on each side: run alone, not beside other large tests.
set_tests_properties(endpoint_1gib PROPERTIES TIMEOUT 900 RUN_SERIAL TRUE)
