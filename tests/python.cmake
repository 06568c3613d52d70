# Python binding and packages (python/): pytest over tests/python/ with the
# build tree's package (<build>/python, made by python/CMakeLists.txt) on
# PYTHONPATH. One ctest entry per test file, so ctest -j runs them side by
# side; the two-process tests run once in network namespaces (loopback
# where they cannot be made) and once forced onto loopback.
set(P2P_PY_TREE ${PROJECT_BINARY_DIR}/python)
set(P2P_PY_ENV "PYTHONPATH=${P2P_PY_TREE}" "PYTHONDONTWRITEBYTECODE=1")

# In sanitizer builds the module needs its runtime loaded before the
# (uninstrumented) interpreter starts, and libstdc++ with it so that the
# runtime finds the C++ functions it wraps (torch throws exceptions);
# Python's own allocations at exit are not leaks of ours.
set(P2P_PY_SAN_LIB "")
if(P2P_SANITIZE MATCHES "address")
  set(P2P_PY_SAN_LIB libasan.so)
  list(APPEND P2P_PY_ENV "ASAN_OPTIONS=detect_leaks=0")
elseif(P2P_SANITIZE MATCHES "thread")
  set(P2P_PY_SAN_LIB libtsan.so)
  list(APPEND P2P_PY_ENV
       "TSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/python/tsan.supp")
endif()
set(P2P_PY_TESTS ON)
if(NOT TARGET tcpx_p2p_ext)
  set(P2P_PY_TESTS OFF)  # no Python headers at configure time
endif()
if(P2P_PY_SAN_LIB)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=${P2P_PY_SAN_LIB}
                  OUTPUT_VARIABLE P2P_PY_SAN_PATH
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(IS_ABSOLUTE "${P2P_PY_SAN_PATH}" AND EXISTS "${P2P_PY_SAN_PATH}")
    list(APPEND P2P_PY_ENV "LD_PRELOAD=${P2P_PY_SAN_PATH}:libstdc++.so.6")
  else()
    message(STATUS "python tests: no ${P2P_PY_SAN_LIB} to preload; skipped")
    set(P2P_PY_TESTS OFF)
  endif()
endif()

if(P2P_PY_TESTS)
  foreach(name api two_process fuzz collective transfer examples stats)
    add_test(NAME python_${name}
             COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
                     ${CMAKE_CURRENT_SOURCE_DIR}/python/test_${name}.py)
    set_tests_properties(python_${name} PROPERTIES
                         ENVIRONMENT "${P2P_PY_ENV}" TIMEOUT 600)
  endforeach()
  add_test(NAME python_two_process_loopback
           COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
                   ${CMAKE_CURRENT_SOURCE_DIR}/python/test_two_process.py)
  set_tests_properties(python_two_process_loopback PROPERTIES
                       ENVIRONMENT "${P2P_PY_ENV};TCPX_P2P_NO_NETNS=1"
                       TIMEOUT 600)
endif()
