#  worker/: fragment of the top Makefile.am (see there).
#  causeway-worker: stateless worker, libcurl multi, flows (docs/worker.md).
noinst_LIBRARIES += worker/libcwworker.a
worker_libcwworker_a_SOURCES = \
    worker/cw_runner.c worker/cw_runner.h \
    worker/cw_flow.c worker/cw_flow.h \
    worker/cw_flow_http.c worker/cw_flow_http.h
worker_libcwworker_a_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)
WORKER_LIBS = worker/libcwworker.a lib/libcwrt.a proto/libcwproto.a \
    $(RUNTIME_LIBS)

#  Unit: the outcome mapping and the runner against real HTTP (erpsim)
check_PROGRAMS += tests/check_cw_runner tests/check_cw_flow
TESTS += tests/check_cw_runner tests/check_cw_flow
tests_check_cw_runner_SOURCES = tests/check_cw_runner.c \
    tests/worker_fixture.c tests/worker_fixture.h
tests_check_cw_runner_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS) \
    -I$(top_srcdir)/worker
tests_check_cw_runner_LDADD = $(WORKER_LIBS) $(TEST_LIBS)
tests_check_cw_flow_SOURCES = tests/check_cw_flow.c
tests_check_cw_flow_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS) \
    -I$(top_srcdir)/worker
tests_check_cw_flow_LDADD = $(WORKER_LIBS) $(TEST_LIBS)

#  The worker: sessions with brokers, jobs, results
worker_libcwworker_a_SOURCES += worker/cw_worker.c worker/cw_worker.h
bin_PROGRAMS += worker/causeway-worker
worker_causeway_worker_SOURCES = worker/main.c
worker_causeway_worker_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)
worker_causeway_worker_LDADD = $(WORKER_LIBS)

#  Integration: the worker process against a test broker and erpsim
check_PROGRAMS += tests/check_worker
TESTS += tests/check_worker
tests_check_worker_SOURCES = tests/check_worker.c \
    tests/worker_fixture.c tests/worker_fixture.h
tests_check_worker_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_worker_LDADD = $(FIXTURE_LIBS) $(WORKER_LIBS) $(TEST_LIBS)
