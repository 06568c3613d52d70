# Connection liveness and data-stream faults (tests/test_liveness.c):
# a late receiver, a data stream lost on an idle connection, an outage and
# a SIGSTOP shorter than the timeout, link flaps and packet loss between
# the test's own namespaces (loopback where namespaces cannot be made; the
# cases that need a link of their own then say so and pass). Loss needs
# iptables (statistic match). TCPX_P2P_TEST_LATE_MS (15000) sets how late
# the receiver posts.
# Delay and reordering: an NFQUEUE delayer (the kernel here has no netem),
# built when libnetfilter_queue is there (scripts/setup installs it).
find_library(P2P_NFQ_LIB netfilter_queue)
find_library(P2P_NFNL_LIB nfnetlink)
find_path(P2P_NFQ_INCLUDE libnetfilter_queue/libnetfilter_queue.h)
if(P2P_NFQ_LIB AND P2P_NFNL_LIB AND P2P_NFQ_INCLUDE)
  add_executable(nfq_delay netfault/nfq_delay.c)
  target_include_directories(nfq_delay PRIVATE ${P2P_NFQ_INCLUDE})
  target_link_libraries(nfq_delay PRIVATE ${P2P_NFQ_LIB} ${P2P_NFNL_LIB})
  target_compile_definitions(test_liveness PRIVATE
                             NFQ_DELAY_PATH="$<TARGET_FILE:nfq_delay>")
  add_dependencies(test_liveness nfq_delay)
else()
  message(STATUS "liveness: no libnetfilter_queue; delay/reorder cases skip")
endif()
add_test(NAME liveness COMMAND test_liveness)
set_tests_properties(liveness PROPERTIES TIMEOUT 600 LABELS "threaded;fault")
# Receiver posting 30 s late; an idle connection on a 5% lossy link, and
# one with 50 ms delay and 25% reordering, for TCPX_P2P_TEST_LOSSY_S (120
# s), the latter then transferring for 100 s: not in the default CI run.
add_test(NAME liveness_late30 COMMAND test_liveness test_late_receiver)
set_tests_properties(liveness_late30 PROPERTIES TIMEOUT 300 LABELS long
                     ENVIRONMENT TCPX_P2P_TEST_LATE_MS=30000)
add_test(NAME liveness_lossy_idle COMMAND test_liveness long)
set_tests_properties(liveness_lossy_idle PROPERTIES TIMEOUT 600 LABELS long
                     SKIP_RETURN_CODE 77)
# `tcpx-p2p stats` on loopback: checked transfers both ways, counters that
# add up (JSON), exit 0 only when both connections are still up.
add_test(NAME cli_stats COMMAND tcpx-p2p stats --ifname lo --size 3000000
                                 --iters 2 --idle 2 --json)
set_tests_properties(cli_stats PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION
  "\"state\": \"up\", \"bytes_sent\": 3000000, \"bytes_received\": 3000000.*\"stream_resets\": 0")
