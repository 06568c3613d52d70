# Smoke runs of `tcpx-p2p bench net|p2p`: one or two small sizes each,
# checking that every stdout line of --json is a JSON object with the
# expected fields, "check":"ok" (the byte check passed), positive bandwidth and latency, and a positive ratio
# against its reference; bandwidth rows also carry the second reference
# (N iperf3 processes x 1 stream), null or positive, the raw TCP bulk
# reference (raw_gbps, ratio_raw, raw_cpu_s_per_gb; see RAW below), and
# the CPU cost (cpu_s_per_gb, always measured; ref_cpu_s_per_gb and
# cpu_ratio, numbers wherever the row has an iperf3 ratio). Not a timed
# assertion: numbers only have to exist.
#
# This file is both the ctest fragment (included by tests/CMakeLists.txt)
# and, run with `cmake -P`, the checker each test runs:
#   cmake -DTOOL=tcpx-p2p -DARGS="bench|net|..." -DLINES=N
#         -DRATIO=required|optional [-DRAW=sized|null] [-DENDPOINTS=N]
#         -P bench.cmake
# RAW=sized: the raw reference's three keys are numbers > 0 in rows of
# 1 MiB and more and null below (its default); RAW=null: null in every
# row (--ref-raw 0, --gpu, --endpoints); unset: each null or > 0.
# With ENDPOINTS (bench p2p --endpoints N), each row must also say
# "endpoints":N, carry N per-endpoint rates > 0, and per-NIC byte counts
# that add up to at least the bytes the row moved. With GPU=1 (--gpu) each
# row must say "mem":"gpu" and carry its references > 0: the host run
# through the same endpoint and the pinned H2D/D2H copy rates. With
# LOCAL=1 (--gpu --local) each row must be a CUDA IPC row ("path":"ipc",
# "mem":"gpu", "ref":"dtod") with its own figures > 0: the first call
# apart (first_us), the device-to-device reference (ref_gbps, ref_p50_us)
# and the ratio to it; the network references' keys are not there.
# With EXPECT_FAIL=<regex> the tool must exit 1 and its stderr match the
# regex (a byte check shown able to fail), and no row is checked.

# --endpoints rows: the endpoint count, every endpoint's GB/s, and the
# client's NICs having moved at least the row's bytes.
function(p2p_check_endpoints line)
  string(JSON eps GET "${line}" endpoints)
  string(JSON neps LENGTH "${line}" ep_gbps)
  if(NOT eps EQUAL ENDPOINTS OR NOT neps EQUAL ENDPOINTS)
    message(FATAL_ERROR "expected ${ENDPOINTS} endpoints and rates: ${line}")
  endif()
  math(EXPR last "${neps} - 1")
  foreach(i RANGE ${last})
    string(JSON rate GET "${line}" ep_gbps ${i})
    if(NOT rate GREATER 0)
      message(FATAL_ERROR "endpoint ${i}: GB/s must be > 0: ${line}")
    endif()
  endforeach()
  string(JSON size GET "${line}" size)
  string(JSON iters GET "${line}" iters)
  string(JSON nnics LENGTH "${line}" nic_bytes)
  math(EXPR last "${nnics} - 1")
  set(total 0)
  foreach(i RANGE ${last})
    string(JSON nic MEMBER "${line}" nic_bytes ${i})
    string(JSON bytes GET "${line}" nic_bytes ${nic})
    math(EXPR total "${total} + ${bytes}")
  endforeach()
  math(EXPR moved "${size} * ${iters} * ${ENDPOINTS}")
  if(total LESS moved)
    message(FATAL_ERROR "the NICs moved ${total} bytes, less than ${moved}: ${line}")
  endif()
endfunction()

# Each key present in the row, its value as `want` says: number (> 0),
# null, or any (null or a number > 0).
function(p2p_check_keys line want)
  foreach(key ${ARGN})
    string(JSON type ERROR_VARIABLE missing TYPE "${line}" ${key})
    if(missing)
      message(FATAL_ERROR "no \"${key}\": ${line}")
    endif()
    string(JSON value GET "${line}" ${key})
    if(type STREQUAL "NULL")
      if(want STREQUAL "number")
        message(FATAL_ERROR "${key} must be a number > 0: ${line}")
      endif()
    elseif(want STREQUAL "null")
      message(FATAL_ERROR "${key} must be null here: ${line}")
    elseif(NOT type STREQUAL "NUMBER" OR NOT value GREATER 0)
      message(FATAL_ERROR "${key} must be null or a number > 0: ${line}")
    endif()
  endforeach()
endfunction()

# Bandwidth rows' CPU cost: "cpu_s_per_gb" (both side processes, measured
# in every row) a number > 0; "ref_cpu_s_per_gb" and "cpu_ratio" null or
# a number > 0, and numbers whenever the row has an iperf3 ratio (the
# reference ran, so its processes' CPU time is known).
function(p2p_check_cpu line ratio_type)
  p2p_check_keys("${line}" number cpu_s_per_gb)
  set(want any)
  if(ratio_type STREQUAL "NUMBER")
    set(want number)
  endif()
  p2p_check_keys("${line}" ${want} ref_cpu_s_per_gb cpu_ratio)
endfunction()

# Bandwidth rows' raw TCP bulk reference: the three keys present, and
# numbers > 0 or null as RAW asks (see the top of this file).
function(p2p_check_raw line size)
  set(want any)
  if(RAW STREQUAL "null" OR (RAW STREQUAL "sized" AND size LESS 1048576))
    set(want null)
  elseif(RAW STREQUAL "sized")
    set(want number)
  endif()
  p2p_check_keys("${line}" ${want} raw_gbps ratio_raw raw_cpu_s_per_gb)
endfunction()

if(DEFINED CMAKE_SCRIPT_MODE_FILE)
  cmake_policy(VERSION 3.19)
  string(REPLACE "|" ";" args "${ARGS}")
  execute_process(COMMAND ${TOOL} ${args} OUTPUT_VARIABLE out
                  ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 280)
  message("${err}")
  if(DEFINED EXPECT_FAIL)
    if(NOT rc EQUAL 1 OR NOT err MATCHES "${EXPECT_FAIL}")
      message(FATAL_ERROR "`tcpx-p2p ${args}` must exit 1 with stderr "
              "matching '${EXPECT_FAIL}'; it exited with ${rc}")
    endif()
    return()
  endif()
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
    if(DEFINED ENDPOINTS)
      p2p_check_endpoints("${line}")
    endif()
    if(GPU)
      string(JSON mem GET "${line}" mem)
      if(NOT mem STREQUAL "gpu")
        message(FATAL_ERROR "not a GPU row: ${line}")
      endif()
      p2p_check_keys("${line}" number host_gbps ratio_host h2d_gbps d2h_gbps)
    endif()
    if(LOCAL)
      foreach(pair path=ipc mem=gpu ref=dtod)
        string(REPLACE "=" ";" kv "${pair}")
        list(GET kv 0 key)
        list(GET kv 1 want)
        string(JSON value ERROR_VARIABLE missing GET "${line}" ${key})
        if(missing OR NOT value STREQUAL want)
          message(FATAL_ERROR "\"${key}\" must be \"${want}\": ${line}")
        endif()
      endforeach()
      p2p_check_keys("${line}" number p99_us first_us ref_gbps ref_p50_us
                     ref_p99_us ratio)
      continue()
    endif()
    # Reference 2 (N iperf3 processes x 1 stream): in every bandwidth row,
    # null where it was not measured (--ref-seconds 0, --ref-procs 0, no
    # iperf3, a failed client).
    if(NOT op MATCHES "pingpong$")
      p2p_check_keys("${line}" any ref_procs_gbps ratio_procs)
      p2p_check_cpu("${line}" "${ratio_type}")
      p2p_check_raw("${line}" "${size}")
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
                   ${ARGN} -P ${CMAKE_CURRENT_FUNCTION_LIST_FILE})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS bench)
endfunction()

# Transport layer: 2 sizes, 2 rows; in namespaces where they can be made,
# and on loopback.
# The raw TCP bulk reference: measured at 1M and 4M, not at 64K.
p2p_bench_test(bench_net_smoke 2 ${bench_ratio}
               "bench|net|--sizes|64K,1M|--iters|20|--ref-seconds|1|--json"
               -DRAW=sized)
p2p_bench_test(bench_net_loopback 1 ${bench_ratio}
               "bench|net|--loopback|--sizes|4M|--iters|8|--ref-seconds|1|--json"
               -DRAW=sized)
# Transport round trips next to the raw TCP ping-pong (always a ratio).
p2p_bench_test(bench_net_pingpong 2 required
               "bench|net|--pingpong|--sizes|256,64K|--iters|200|--json")
# Endpoint: send, write, read at 2 sizes and one ping-pong row (256 B).
# The raw TCP bulk reference in the 1M rows, not in the 256 B ones.
p2p_bench_test(bench_p2p_smoke 7 ${bench_ratio}
               "bench|p2p|--sizes|256,1M|--iters|20|--ref-seconds|1|--json"
               -DRAW=sized)
# References measured by the server right before each op and size.
p2p_bench_test(bench_p2p_ref_per_size 2 ${bench_ratio}
               "bench|p2p|--ops|send,read|--sizes|1M|--iters|10|--ref-seconds|1|--ref-procs|0|--ref-per-size|--json"
               -DRAW=sized)
# Async window with KV blocks (vectored calls); no iperf3 (ratio null).
p2p_bench_test(bench_p2p_async_kv 6 optional
               "bench|p2p|--async|--kv-blocks|4|--ops|send,write,read|--sizes|64K,1M|--iters|10|--ref-seconds|0|--json"
               -DRAW=sized)
# --ref-raw 0: no raw reference, its keys null.
p2p_bench_test(bench_p2p_no_raw 1 optional
               "bench|p2p|--ops|send|--sizes|1M|--iters|5|--ref-seconds|0|--ref-raw|0|--json"
               -DRAW=null)

# N endpoint pairs at once on A3-shaped hosts (4 veth NICs; loopback where
# namespaces cannot be made): send, write, read at one size each; the
# reference is N iperf3 processes over the same NICs.
p2p_bench_test(bench_p2p_endpoints2 3 ${bench_ratio}
               "bench|p2p|--endpoints|2|--sizes|1M|--iters|10|--ref-seconds|1|--json"
               -DENDPOINTS=2 -DRAW=null)
p2p_bench_test(bench_p2p_endpoints8 3 ${bench_ratio}
               "bench|p2p|--endpoints|8|--sizes|1M|--iters|10|--ref-seconds|1|--json"
               -DENDPOINTS=8 -DRAW=null)
# --gpu without a usable CUDA device: exit 77 (skipped) with a message;
# where a GPU is present it runs and must pass.
add_test(NAME bench_p2p_gpu_smoke
         COMMAND tcpx-p2p bench p2p --gpu --sizes 1M --iters 5 --ref-seconds 0 --json)
set_tests_properties(bench_p2p_gpu_smoke PROPERTIES TIMEOUT 300 LABELS bench
                     SKIP_RETURN_CODE 77)
# The same through the fake driver (tests/fakecuda.cmake) on any machine:
# the --gpu code paths and the engine's staging, byte-checked.
p2p_bench_test(bench_p2p_gpu_fakecuda 3 optional
               "bench|p2p|--gpu|--sizes|1M|--iters|10|--ref-seconds|0|--json"
               -DGPU=1 -DRAW=null)
set_tests_properties(bench_p2p_gpu_fakecuda PROPERTIES
                     ENVIRONMENT "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>")
# GPU messages small enough to travel inline (send, write and read of GPU
# memory, each copied on the library's own stream), and one byte more.
p2p_bench_test(bench_p2p_gpu_inline_fakecuda 9 optional
               "bench|p2p|--gpu|--sizes|4K,64K,65537|--iters|10|--ref-seconds|0|--json"
               -DGPU=1 -DRAW=null)
set_tests_properties(bench_p2p_gpu_inline_fakecuda PROPERTIES
                     ENVIRONMENT "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>")

# The same-host path (--gpu --local): CUDA IPC between two processes
# through the fake driver (device memory is a memfd the peer maps), every
# op at three sizes, one of them odd, each row byte-checked and next to
# its device-to-device reference.
p2p_bench_test(bench_p2p_gpu_local_fakecuda 9 required
               "bench|p2p|--gpu|--local|--sizes|4K,1M,4194307|--iters|10|--json"
               -DLOCAL=1)
set_tests_properties(bench_p2p_gpu_local_fakecuda PROPERTIES
                     ENVIRONMENT "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>")
# The bytes really cross by IPC, and the byte check can fail: with the
# fake's IPC broken (the peer's handle maps a fresh zeroed buffer) each
# op's checked transfer must be reported corrupted and the run fail.
foreach(op send write read)
  p2p_bench_test(bench_p2p_gpu_local_broken_${op}_fakecuda 0 required
                 "bench|p2p|--gpu|--local|--ops|${op}|--sizes|65537|--iters|5|--json"
                 "-DEXPECT_FAIL=checked ${op}: data differs at byte 0 of 65537")
  set_tests_properties(bench_p2p_gpu_local_broken_${op}_fakecuda PROPERTIES
                       ENVIRONMENT
                       "TCPX_P2P_CUDA_LIB=$<TARGET_FILE:fake-cuda>;FAKE_CUDA_IPC_BROKEN=1")
endforeach()
# Without CUDA IPC (or without CUDA): exit 77 with a message; where a GPU
# is present it runs and must pass.
add_test(NAME bench_p2p_gpu_local_smoke
         COMMAND tcpx-p2p bench p2p --gpu --local --sizes 1M --iters 5 --json)
set_tests_properties(bench_p2p_gpu_local_smoke PROPERTIES TIMEOUT 300
                     LABELS bench SKIP_RETURN_CODE 77)

# The checker itself must fail on a bad row: `echo` stands in for the tool
# and prints one row. The good row passes (so the failing ones fail for
# what is wrong with them, not for how the row is passed); each bad row
# lacks a raw key, carries a raw figure that is not > 0, or has none where
# RAW=sized needs one.
set(p2p_row_head "{\"op\":\"send\",\"size\":1048576,\"check\":\"ok\",\"gbps\":2.5,\"p50_us\":400,\"ratio\":null,\"ref_procs_gbps\":null,\"ratio_procs\":null,\"cpu_s_per_gb\":0.4,\"ref_cpu_s_per_gb\":null,\"cpu_ratio\":null")
function(p2p_checker_test name will_fail raw row_tail)
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -DTOOL=echo "-DARGS=${p2p_row_head}${row_tail}"
                   -DLINES=1 -DRATIO=optional -DRAW=${raw}
                   -P ${CMAKE_CURRENT_FUNCTION_LIST_FILE})
  set_tests_properties(${name} PROPERTIES WILL_FAIL ${will_fail} LABELS bench)
endfunction()
p2p_checker_test(bench_checker_good_row FALSE sized
  ",\"raw_gbps\":2,\"ratio_raw\":1.25,\"raw_cpu_s_per_gb\":0.3}")
p2p_checker_test(bench_checker_no_raw_key TRUE sized
  ",\"raw_gbps\":2,\"ratio_raw\":1.25}")
p2p_checker_test(bench_checker_raw_zero TRUE any
  ",\"raw_gbps\":0,\"ratio_raw\":null,\"raw_cpu_s_per_gb\":null}")
p2p_checker_test(bench_checker_raw_missing TRUE sized
  ",\"raw_gbps\":null,\"ratio_raw\":null,\"raw_cpu_s_per_gb\":null}")
p2p_checker_test(bench_checker_raw_unwanted TRUE null
  ",\"raw_gbps\":2,\"ratio_raw\":1.25,\"raw_cpu_s_per_gb\":0.3}")

# TCPX_P2P_TRACE and scripts/trace-summary end to end.
add_test(NAME trace_smoke
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/trace_smoke.sh $<TARGET_FILE:tcpx-p2p>
                 ${PROJECT_SOURCE_DIR})
set_tests_properties(trace_smoke PROPERTIES TIMEOUT 120 LABELS bench)

# Bad arguments are refused (exit 2, with a message), not run; tests/cli_args.sh
# checks each message.
add_test(NAME bench_bad_op COMMAND tcpx-p2p bench p2p --ops bogus)
set_tests_properties(bench_bad_op PROPERTIES WILL_FAIL TRUE LABELS bench)
