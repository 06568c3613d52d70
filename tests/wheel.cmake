# pip install . (pyproject.toml, cmake/wheel.cmake): build the wheel from
# the local wheelhouse scripts/setup fills (offline), install it into a
# fresh venv, move bytes over loopback, run the console command. It builds
# its own tree, so the sanitizer builds do not run it again.
set(P2P_WHEELHOUSE ${PROJECT_SOURCE_DIR}/.wheels CACHE PATH
    "scikit-build-core and its dependencies as wheels, for the wheel test")
if(NOT P2P_SANITIZE)
  add_test(NAME wheel_venv_loopback
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/wheel.sh ${PROJECT_SOURCE_DIR}
                   ${PROJECT_VERSION} ${P2P_WHEELHOUSE})
  set_tests_properties(wheel_venv_loopback PROPERTIES TIMEOUT 300
                       SKIP_RETURN_CODE 77)
endif()
