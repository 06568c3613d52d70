# The two-host harness itself: in namespaces where they can be made (root
# with iproute2), and once more forced onto loopback so the fallback that
# unprivileged machines get is tested too.
add_test(NAME twohost COMMAND test_twohost)
add_test(NAME twohost_loopback COMMAND test_twohost)
set_tests_properties(twohost_loopback PROPERTIES
                     ENVIRONMENT TCPX_P2P_NO_NETNS=1)
set_tests_properties(twohost twohost_loopback PROPERTIES TIMEOUT 120)
