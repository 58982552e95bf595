#  relay/: fragment of the top Makefile.am (see there).
#  causeway-relay: publishes an island's outbox to the broker
#  (docs/relay.md).
bin_PROGRAMS += relay/causeway-relay
relay_causeway_relay_SOURCES = relay/main.c relay/cw_relay.c relay/cw_relay.h
relay_causeway_relay_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)
relay_causeway_relay_LDADD = lib/libcwrt.a proto/libcwproto.a $(RUNTIME_LIBS)
EXTRA_DIST += etc/causeway-relay.cfg

#  Integration: webshop-side rows -> relay -> broker -> erp_mw, real
#  PostgreSQL, real processes, CURVE certificates made at test time
check_PROGRAMS += tests/check_relay
TESTS += tests/check_relay
tests_check_relay_SOURCES = tests/check_relay.c
tests_check_relay_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_relay_LDADD = $(FIXTURE_LIBS) lib/libcwrt.a proto/libcwproto.a $(TEST_LIBS) \
    $(RUNTIME_LIBS)
