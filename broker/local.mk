#  broker/: the pure decision core (cw_core), linked by the broker shell
#  and the simulator.
noinst_LIBRARIES += broker/libcwcore.a
broker_libcwcore_a_SOURCES = broker/cw_core.c broker/cw_core.h
broker_libcwcore_a_CFLAGS = $(AM_CFLAGS) $(CZMQ_CFLAGS) $(ZMQ_CFLAGS)
CORE_LIBS = broker/libcwcore.a proto/libcwproto.a $(CZMQ_LIBS) $(ZMQ_LIBS)
#  Programs and tests using the core add these to their CFLAGS / LDADD.
CORE_CFLAGS = -I$(top_srcdir)/broker $(CZMQ_CFLAGS) $(ZMQ_CFLAGS)

#  causeway-broker: the shell around cw_core (ROUTER + CURVE, timers) and
#  cw_store (all SQL, its own thread). docs/broker.md
bin_PROGRAMS += broker/causeway-broker
broker_causeway_broker_SOURCES = broker/main.c \
    broker/cw_broker.c broker/cw_broker.h \
    broker/cw_store.c broker/cw_store.h
broker_causeway_broker_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS) \
    -I$(top_srcdir)/broker
broker_causeway_broker_LDADD = broker/libcwcore.a lib/libcwrt.a \
    proto/libcwproto.a $(RUNTIME_LIBS)
EXTRA_DIST += etc/causeway-broker.cfg docs/broker.md

#  Integration: broker + store + a CURVE worker peer over real sockets,
#  real PostgreSQL (CW_TEST_PGURI), erpsim
check_PROGRAMS += tests/check_broker
TESTS += tests/check_broker
tests_check_broker_SOURCES = tests/check_broker.c
tests_check_broker_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_broker_LDADD = $(FIXTURE_LIBS) lib/libcwrt.a proto/libcwproto.a $(TEST_LIBS) \
    $(RUNTIME_LIBS)

#  Integration: the store's SQL (leases, tokens, the sweep) driven
#  directly through cw_store_actor against real PostgreSQL
check_PROGRAMS += tests/check_store
TESTS += tests/check_store
tests_check_store_SOURCES = tests/check_store.c broker/cw_store.c \
    broker/cw_store.h
tests_check_store_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS) \
    -I$(top_srcdir)/broker
tests_check_store_LDADD = $(FIXTURE_LIBS) broker/libcwcore.a lib/libcwrt.a \
    proto/libcwproto.a $(TEST_LIBS) $(RUNTIME_LIBS)
