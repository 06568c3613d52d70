# One version everywhere (CMakeLists.txt's project VERSION).
set(P2P_VERSION_PY_TREE "")
# The Python half needs the module, and an uninstrumented interpreter
# cannot load a sanitized one without preloading (python.cmake does that).
if(TARGET tcpx_p2p_ext AND NOT P2P_SANITIZE)
  set(P2P_VERSION_PY_TREE ${PROJECT_BINARY_DIR}/python)
endif()
add_test(NAME version_everywhere
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/version.sh ${PROJECT_VERSION}
                 $<TARGET_FILE:tcpx-p2p> ${P2P_VERSION_PY_TREE})
