# The bounded soak (tests/soak/, driven by scripts/soak): a hub endpoint
# and spoke processes in two namespaces running seeded, checked ops while
# spokes are killed and the link flaps. soak_smoke is a 30 s run of it.
add_executable(p2p_soak soak/driver.c soak/session.c)
target_link_libraries(p2p_soak PRIVATE p2p_test_support)
add_test(NAME soak_smoke COMMAND p2p_soak --seconds 30 --peers 3 --fault-every 10)
set_tests_properties(soak_smoke PROPERTIES TIMEOUT 400 LABELS "soak;fault")
