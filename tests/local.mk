#  Test helpers shared by integration tests (libpq, processes, ports).
check_LIBRARIES += tests/libcwtest.a
tests_libcwtest_a_SOURCES = tests/cw_test.c tests/cw_test.h
tests_libcwtest_a_CFLAGS = $(AM_CFLAGS) $(PQ_CFLAGS)
TEST_LIBS = tests/libcwtest.a $(CHECK_LIBS) $(PQ_LIBS)

#  cw_log (lib)
check_PROGRAMS += tests/check_cw_log
TESTS += tests/check_cw_log
tests_check_cw_log_SOURCES = tests/check_cw_log.c
tests_check_cw_log_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_check_cw_log_LDADD = lib/libcwrt.a $(CHECK_LIBS) $(JANSSON_LIBS)

#  cw_secret (lib)
check_PROGRAMS += tests/check_cw_secret
TESTS += tests/check_cw_secret
tests_check_cw_secret_SOURCES = tests/check_cw_secret.c
tests_check_cw_secret_LDADD = lib/libcwrt.a $(TEST_LIBS) $(SODIUM_LIBS)

#  cw_http (lib): real HTTP on 127.0.0.1, libcurl client
check_PROGRAMS += tests/check_cw_http
TESTS += tests/check_cw_http
tests_check_cw_http_SOURCES = tests/check_cw_http.c
tests_check_cw_http_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_cw_http_LDADD = lib/libcwrt.a $(TEST_LIBS) $(RUNTIME_LIBS)

#  erpsim (integration): the simulator as a process, libcurl client
check_PROGRAMS += tests/check_erpsim
TESTS += tests/check_erpsim
tests_check_erpsim_SOURCES = tests/check_erpsim.c
tests_check_erpsim_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_erpsim_LDADD = $(TEST_LIBS) $(CURL_LIBS) $(JANSSON_LIBS)

#  erpsim fuzz target (built and run by scripts/fuzz) and its seeds
EXTRA_DIST += tests/fuzz/fuzz_erpsim_json.c tests/fuzz/corpus/erpsim_json
