# A3-shaped hosts (tests/test_a3_shape.c): two namespaces joined by 4 veth
# NICs, GPUs 2k and 2k+1 on NIC k. One endpoint's data stays on its GPU's
# NICs, 8 endpoints per host move data at once, a NIC going down fails
# only its connections. Skipped (77) where namespaces cannot be made.
add_test(NAME a3_shape COMMAND test_a3_shape)
set_tests_properties(a3_shape PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77
                     LABELS threaded)
