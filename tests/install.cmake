# Packaging (cmake/install.cmake): install into a temporary prefix and
# build a program against it with pkg-config and with find_package.
set(P2P_INSTALL_TEST_FLAGS "")
if(P2P_SANITIZE)
  set(P2P_INSTALL_TEST_FLAGS "-fsanitize=${P2P_SANITIZE}")
endif()
add_test(NAME install_pkgconfig_find_package
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install.sh ${PROJECT_BINARY_DIR}
                 ${PROJECT_VERSION} ${CMAKE_C_COMPILER} "${P2P_INSTALL_TEST_FLAGS}")
set_tests_properties(install_pkgconfig_find_package PROPERTIES TIMEOUT 300
                     ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
