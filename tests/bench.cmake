# Smoke runs of `tcpx-p2p bench net|p2p`: one or two small sizes each,
# checking that every stdout line of --json is a JSON object with the
# expected fields, "check":"ok" (the byte check passed), positive bandwidth and latency, and a positive ratio
# against its reference; bandwidth rows also carry the second reference
# (N iperf3 processes x 1 stream), null or positive. Not a timed
# assertion: numbers only have to exist.
#
# This file is both the ctest fragment (included by tests/CMakeLists.txt)
# and, run with `cmake -P`, the checker each test runs:
#   cmake -DTOOL=tcpx-p2p -DARGS="bench|net|..." -DLINES=N
#         -DRATIO=required|optional -P bench.cmake

if(DEFINED CMAKE_SCRIPT_MODE_FILE)
  cmake_policy(VERSION 3.19)
  string(REPLACE "|" ";" args "${ARGS}")
  execute_process(COMMAND ${TOOL} ${args} OUTPUT_VARIABLE out
                  ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 280)
  message("${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "`tcpx-p2p ${args}` exited with ${rc}; stdout:\n${out}")
  endif()
  string(STRIP "${out}" out)
  string(REPLACE "\n" ";" lines "${out}")
  list(LENGTH lines count)
  if(NOT count EQUAL LINES)
    message(FATAL_ERROR "expected ${LINES} JSON lines, got ${count}:\n${out}")
  endif()
  foreach(line IN LISTS lines)
    message("${line}")
    string(JSON op ERROR_VARIABLE bad GET "${line}" op)
    if(bad)
      message(FATAL_ERROR "not a JSON object with \"op\": ${line} (${bad})")
    endif()
    string(JSON size GET "${line}" size)
    string(JSON p50 ERROR_VARIABLE no_p50 GET "${line}" p50_us)
    string(JSON gbps GET "${line}" gbps)
    string(JSON ratio GET "${line}" ratio)
    string(JSON ratio_type TYPE "${line}" ratio)
    # The byte check of the text table's "check" column, in every row.
    string(JSON check ERROR_VARIABLE no_check GET "${line}" check)
    if(no_check OR NOT check STREQUAL "ok")
      message(FATAL_ERROR "no \"check\":\"ok\": ${line}")
    endif()
    if(NOT size GREATER 0)
      message(FATAL_ERROR "size must be > 0: ${line}")
    endif()
    if(NOT op MATCHES "pingpong$" AND NOT gbps GREATER 0)
      message(FATAL_ERROR "GB/s must be > 0: ${line}")
    endif()
    if(NOT op STREQUAL "net" AND NOT p50 GREATER 0)
      message(FATAL_ERROR "p50 latency must be > 0: ${line}")
    endif()
    # The ping-pong reference is our own and always there; iperf3 only
    # where it is installed and asked for.
    if(op MATCHES "pingpong$" OR RATIO STREQUAL "required")
      if(NOT ratio GREATER 0)
        message(FATAL_ERROR "ratio must be a number > 0: ${line}")
      endif()
    elseif(NOT ratio_type STREQUAL "NULL" AND NOT ratio GREATER 0)
      message(FATAL_ERROR "ratio must be null or > 0: ${line}")
    endif()
    # Reference 2 (N iperf3 processes x 1 stream): in every bandwidth row,
    # null where it was not measured (--ref-seconds 0, --ref-procs 0, no
    # iperf3, a failed client).
    if(NOT op MATCHES "pingpong$")
      foreach(key ref_procs_gbps ratio_procs)
        string(JSON type ERROR_VARIABLE missing TYPE "${line}" ${key})
        if(missing)
          message(FATAL_ERROR "no \"${key}\": ${line}")
        endif()
        string(JSON value GET "${line}" ${key})
        if(NOT type STREQUAL "NULL" AND
           (NOT type STREQUAL "NUMBER" OR NOT value GREATER 0))
          message(FATAL_ERROR "${key} must be null or a number > 0: ${line}")
        endif()
      endforeach()
    endif()
  endforeach()
  return()
endif()

find_program(P2P_IPERF3 iperf3)
if(P2P_IPERF3)
  set(bench_ratio required)
else()
  set(bench_ratio optional)
  message(STATUS "iperf3 not found: bench smoke tests accept a null ratio")
endif()

function(p2p_bench_test name lines ratio args)
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -DTOOL=$<TARGET_FILE:tcpx-p2p>
                   "-DARGS=${args}" -DLINES=${lines} -DRATIO=${ratio}
                   -P ${CMAKE_CURRENT_FUNCTION_LIST_FILE})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS bench)
endfunction()

# Transport layer: 2 sizes, 2 rows; in namespaces where they can be made,
# and on loopback.
p2p_bench_test(bench_net_smoke 2 ${bench_ratio}
               "bench|net|--sizes|64K,1M|--iters|20|--ref-seconds|1|--json")
p2p_bench_test(bench_net_loopback 1 ${bench_ratio}
               "bench|net|--loopback|--sizes|4M|--iters|8|--ref-seconds|1|--json")
# Transport round trips next to the raw TCP ping-pong (always a ratio).
p2p_bench_test(bench_net_pingpong 2 required
               "bench|net|--pingpong|--sizes|256,64K|--iters|200|--json")
# Endpoint: send, write, read at 2 sizes and one ping-pong row (256 B).
p2p_bench_test(bench_p2p_smoke 7 ${bench_ratio}
               "bench|p2p|--sizes|256,1M|--iters|20|--ref-seconds|1|--json")
# References measured by the server right before each op and size.
p2p_bench_test(bench_p2p_ref_per_size 2 ${bench_ratio}
               "bench|p2p|--ops|send,read|--sizes|1M|--iters|10|--ref-seconds|1|--ref-procs|0|--ref-per-size|--json")
# Async window with KV blocks (vectored calls); no iperf3 (ratio null).
p2p_bench_test(bench_p2p_async_kv 6 optional
               "bench|p2p|--async|--kv-blocks|4|--ops|send,write,read|--sizes|64K,1M|--iters|10|--ref-seconds|0|--json")

# Bad arguments are refused (exit 2, with a message), not run; tests/cli_args.sh
# checks each message.
add_test(NAME bench_bad_op COMMAND tcpx-p2p bench p2p --ops bogus)
set_tests_properties(bench_bad_op PROPERTIES WILL_FAIL TRUE LABELS bench)
