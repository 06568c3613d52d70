# The repository's docs stand alone: no links outside it, none to files
# that do not exist (tests/docs_links.py); its self-test proves each kind
# of problem is caught.
add_test(NAME docs_links
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/docs_links.py
                 ${PROJECT_SOURCE_DIR})
add_test(NAME docs_links_self_test
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/docs_links.py
                 --self-test)
set_tests_properties(docs_links docs_links_self_test PROPERTIES
                     ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
