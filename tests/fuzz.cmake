# libFuzzer targets (tests/fuzz/), built only in a clang configuration with
# -DP2P_FUZZ=ON: scripts/fuzz makes one in build-fuzz/ and runs them all.
# The main (gcc) build never sees them.
option(P2P_FUZZ "build the libFuzzer targets of tests/fuzz (needs clang)" OFF)
if(P2P_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "P2P_FUZZ=ON needs clang (CC=clang), not "
                        "${CMAKE_C_COMPILER_ID}")
  endif()
  set(FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
  set(FUZZ_SANITIZE address,undefined)

  # The core once more, with coverage for libFuzzer and the sanitizers.
  add_library(p2p_core_fuzz STATIC ${P2P_CORE_SOURCES})
  target_include_directories(p2p_core_fuzz PUBLIC
      ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src
      ${PROJECT_SOURCE_DIR}/src/common ${PROJECT_SOURCE_DIR}/src/net
      ${PROJECT_SOURCE_DIR}/src/engine ${PROJECT_SOURCE_DIR}/src/gpu ${FUZZ_DIR})
  target_compile_options(p2p_core_fuzz PUBLIC
      -fsanitize=fuzzer-no-link,${FUZZ_SANITIZE} -fno-sanitize-recover=all
      -fno-omit-frame-pointer -g)
  target_link_options(p2p_core_fuzz PUBLIC -fsanitize=${FUZZ_SANITIZE})
  target_link_libraries(p2p_core_fuzz PUBLIC Threads::Threads ${CMAKE_DL_LIBS})

  # p2p_parse_metadata belongs to the engine: fuzz it once a source under
  # src/ defines it (a line starting with its return type).
  set(FUZZ_HAVE_METADATA OFF)
  foreach(src ${P2P_CORE_SOURCES})
    file(STRINGS ${src} def REGEX "^[a-z].*[ *]p2p_parse_metadata\\(")
    if(def)
      set(FUZZ_HAVE_METADATA ON)
    endif()
  endforeach()

  # fuzz-targets.txt lists "name path" or "name SKIP reason" per target,
  # for scripts/fuzz.
  set_property(GLOBAL PROPERTY P2P_FUZZ_LIST "")
  add_custom_target(p2p_fuzz)
  function(p2p_fuzz_target name)
    add_executable(${name} ${FUZZ_DIR}/${name}.c)
    target_link_libraries(${name} PRIVATE p2p_core_fuzz)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(p2p_fuzz ${name})
    set_property(GLOBAL APPEND_STRING PROPERTY P2P_FUZZ_LIST
                 "${name} $<TARGET_FILE:${name}>\n")
    # Replay the seed corpus once: every seed must run clean.
    file(GLOB seeds ${FUZZ_DIR}/corpus/${name}/*)
    if(seeds)
      add_test(NAME ${name}_seeds COMMAND ${name} ${seeds})
      set_tests_properties(${name}_seeds PROPERTIES TIMEOUT 120 LABELS fuzz)
    endif()
  endfunction()

  p2p_fuzz_target(fuzz_ctrl)
  p2p_fuzz_target(fuzz_tcp_connect)
  p2p_fuzz_target(fuzz_tcp_accept)
  if(FUZZ_HAVE_METADATA)
    p2p_fuzz_target(fuzz_metadata)
  else()
    set_property(GLOBAL APPEND_STRING PROPERTY P2P_FUZZ_LIST
        "fuzz_metadata SKIP p2p_parse_metadata is not defined under src/ yet\n")
  endif()
  get_property(fuzz_list GLOBAL PROPERTY P2P_FUZZ_LIST)
  file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/fuzz-targets.txt CONTENT "${fuzz_list}")

  add_executable(fuzz_gen_corpus ${FUZZ_DIR}/gen_corpus.c)
  target_link_libraries(fuzz_gen_corpus PRIVATE p2p_core_fuzz)
  add_dependencies(p2p_fuzz fuzz_gen_corpus)
endif()
