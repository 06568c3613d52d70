# `tcpx-p2p doctor` (tools/doctor*.c): each check's failure and its
# explanation, and a host where every check passes, with test stand-ins:
# a libcuda.so.1 that lists GPUs (own folder, so nothing else picks it up)
# and a plugin named like GPUDirect-TCPX that does nothing else.
add_library(doctor-fake-driver SHARED plugins/fake_driver.c)
set_target_properties(doctor-fake-driver PROPERTIES OUTPUT_NAME cuda
                      SOVERSION 1 LIBRARY_OUTPUT_DIRECTORY
                      ${CMAKE_BINARY_DIR}/test-plugins/doctor-driver)
add_library(doctor-tcpx-named MODULE plugins/tcpx_named.c)
target_include_directories(doctor-tcpx-named PRIVATE
                           ${PROJECT_SOURCE_DIR}/src/net)
set_target_properties(doctor-tcpx-named PROPERTIES PREFIX "lib"
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test-plugins)

# One test per mode of tests/cli_doctor.sh; those needing root, mount or
# network namespaces exit 77 (skipped) where they cannot be made.
foreach(mode usage host plugin noexec netns rxdm ready)
  add_test(NAME doctor_${mode}
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_doctor.sh ${mode}
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(doctor_${mode} PROPERTIES TIMEOUT 60
                       SKIP_RETURN_CODE 77)
endforeach()
