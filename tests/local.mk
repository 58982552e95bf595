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

#  cw_pg (lib): connection, statements, transactions, reconnect
check_PROGRAMS += tests/check_cw_pg
TESTS += tests/check_cw_pg
tests_check_cw_pg_SOURCES = tests/check_cw_pg.c
tests_check_cw_pg_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PQ_CFLAGS)
tests_check_cw_pg_LDADD = lib/libcwrt.a $(RUNTIME_LIBS) $(TEST_LIBS)

#  sql/ + migrate/ (integration): migrations, roles, grants, audit chain,
#  claim index at a million jobs
check_PROGRAMS += tests/check_sql_schema
TESTS += tests/check_sql_schema
tests_check_sql_schema_SOURCES = tests/check_sql_schema.c
tests_check_sql_schema_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PQ_CFLAGS) \
    $(DEP_CFLAGS)
tests_check_sql_schema_LDADD = $(FIXTURE_LIBS) lib/libcwrt.a $(RUNTIME_LIBS) \
    $(TEST_LIBS)
#  cw_token (lib)
check_PROGRAMS += tests/check_cw_token
TESTS += tests/check_cw_token
tests_check_cw_token_SOURCES = tests/check_cw_token.c
tests_check_cw_token_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(SODIUM_CFLAGS)
tests_check_cw_token_LDADD = lib/libcwrt.a $(TEST_LIBS) $(JANSSON_LIBS) \
    $(SODIUM_LIBS)
EXTRA_tests_check_cw_token_DEPENDENCIES = token/causeway-token


#  cw_idkey, cw_retry (proto)
check_PROGRAMS += tests/check_cw_idkey tests/check_cw_retry
TESTS += tests/check_cw_idkey tests/check_cw_retry

#  cw_idkey, cw_retry (proto) and cw_config (lib)
check_PROGRAMS += tests/check_cw_idkey tests/check_cw_retry tests/check_cw_config
TESTS += tests/check_cw_idkey tests/check_cw_retry tests/check_cw_config
tests_check_cw_idkey_SOURCES = tests/check_cw_idkey.c
tests_check_cw_idkey_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_cw_idkey_LDADD = proto/libcwproto.a $(CHECK_LIBS)
#  (uses cw_retry_rng for its random round trips)
tests_check_cw_retry_SOURCES = tests/check_cw_retry.c
tests_check_cw_retry_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_cw_retry_LDADD = proto/libcwproto.a $(CHECK_LIBS)
tests_check_cw_config_SOURCES = tests/check_cw_config.c
tests_check_cw_config_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_cw_config_LDADD = lib/libcwrt.a $(TEST_LIBS) $(CZMQ_LIBS) $(ZMQ_LIBS) $(SODIUM_LIBS)

#  proto: envelope, events, versions (pure unit tests)
PROTO_TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS) $(MSGPACK_CFLAGS)
PROTO_TEST_LIBS = proto/libcwproto.a $(PROTO_LIBS) $(CHECK_LIBS)
check_PROGRAMS += tests/check_cw_envelope tests/check_cw_event tests/check_cw_version
TESTS += tests/check_cw_envelope tests/check_cw_event tests/check_cw_version
tests_check_cw_envelope_SOURCES = tests/check_cw_envelope.c \
    tests/cw_test_envelope.c tests/cw_test_envelope.h
tests_check_cw_envelope_CFLAGS = $(PROTO_TEST_CFLAGS)
tests_check_cw_envelope_LDADD = $(PROTO_TEST_LIBS)
tests_check_cw_event_SOURCES = tests/check_cw_event.c
tests_check_cw_event_CFLAGS = $(PROTO_TEST_CFLAGS)
tests_check_cw_event_LDADD = $(PROTO_TEST_LIBS)
tests_check_cw_version_SOURCES = tests/check_cw_version.c
tests_check_cw_version_CFLAGS = $(PROTO_TEST_CFLAGS)
tests_check_cw_version_LDADD = $(PROTO_TEST_LIBS)
#  Fuzz targets and their seed corpus (built and run by scripts/fuzz)
EXTRA_DIST += tests/fuzz/fuzz_envelope_msgpack.c tests/fuzz/fuzz_envelope_json.c \
    tests/fuzz/make-corpus tests/fuzz/corpus/envelope_msgpack \
    tests/fuzz/corpus/envelope_json
#  cw_http (lib): real HTTP on 127.0.0.1, libcurl client
check_PROGRAMS += tests/check_cw_http
TESTS += tests/check_cw_http
tests_check_cw_http_SOURCES = tests/check_cw_http.c
tests_check_cw_http_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_cw_http_LDADD = lib/libcwrt.a $(TEST_LIBS) $(RUNTIME_LIBS)

#  webshop-ref (examples/webshop): real process, PostgreSQL and HTTP
check_PROGRAMS += tests/check_webshop
TESTS += tests/check_webshop
tests_check_webshop_SOURCES = tests/check_webshop.c
tests_check_webshop_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_webshop_LDADD = lib/libcwrt.a $(TEST_LIBS) $(RUNTIME_LIBS)
EXTRA_tests_check_webshop_DEPENDENCIES = examples/webshop/webshop-ref \
    migrate/causeway-migrate

#  erpsim (integration): the simulator as a process, libcurl client
check_PROGRAMS += tests/check_erpsim
TESTS += tests/check_erpsim
tests_check_erpsim_SOURCES = tests/check_erpsim.c
tests_check_erpsim_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_erpsim_LDADD = $(TEST_LIBS) $(CURL_LIBS) $(JANSSON_LIBS)

#  erpsim fuzz target (built and run by scripts/fuzz) and its seeds
EXTRA_DIST += tests/fuzz/fuzz_erpsim_json.c tests/fuzz/corpus/erpsim_json
#  cw_curve, cw_zap (lib) + causeway cert (client): CURVE over tcp loopback
check_PROGRAMS += tests/check_cw_curve
TESTS += tests/check_cw_curve
tests_check_cw_curve_SOURCES = tests/check_cw_curve.c
tests_check_cw_curve_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_cw_curve_LDADD = lib/libcwrt.a $(RUNTIME_LIBS) $(TEST_LIBS)
#  cw_msg (proto): CWP/1 wire codec; its fuzz target and seed corpus
#  (regenerate: CW_MSG_CORPUS=tests/fuzz/corpus/cw_msg build/plain/tests/check_cw_msg)
check_PROGRAMS += tests/check_cw_msg
TESTS += tests/check_cw_msg
tests_check_cw_msg_SOURCES = tests/check_cw_msg.c \
    tests/cw_test_envelope.c tests/cw_test_envelope.h
tests_check_cw_msg_CFLAGS = $(PROTO_TEST_CFLAGS)
tests_check_cw_msg_LDADD = $(PROTO_TEST_LIBS)
EXTRA_DIST += tests/fuzz/fuzz_cw_msg.c tests/fuzz/corpus/cw_msg
#  cw_core (broker): the pure decision core, rule by rule + random events
check_PROGRAMS += tests/check_cw_core
TESTS += tests/check_cw_core
tests_check_cw_core_SOURCES = tests/check_cw_core.c
tests_check_cw_core_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(CORE_CFLAGS)
tests_check_cw_core_LDADD = $(CORE_LIBS) $(CHECK_LIBS)



#  Seeded simulation of the broker's decision core (issue #5): the
#  simulator (tests/sim), its driver for scripts/simulate, and the suite
check_LIBRARIES += tests/sim/libcwsim.a
tests_sim_libcwsim_a_SOURCES = tests/sim/cw_sim.c tests/sim/cw_sim.h
tests_sim_libcwsim_a_CFLAGS = $(AM_CFLAGS) $(CORE_CFLAGS)
SIM_LIBS = tests/sim/libcwsim.a $(CORE_LIBS)
check_PROGRAMS += tests/sim/cw_simulate
tests_sim_cw_simulate_SOURCES = tests/sim/cw_simulate.c
tests_sim_cw_simulate_CFLAGS = $(AM_CFLAGS) $(CORE_CFLAGS)
tests_sim_cw_simulate_LDADD = $(SIM_LIBS)
check_PROGRAMS += tests/check_sim
TESTS += tests/check_sim
tests_check_sim_SOURCES = tests/check_sim.c
tests_check_sim_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(CORE_CFLAGS) \
    -I$(top_srcdir)/tests/sim
tests_check_sim_LDADD = $(SIM_LIBS) $(CHECK_LIBS)
#  scripts/simulate: builds tests/sim/cw_simulate and runs more seeds
EXTRA_DIST += scripts/simulate
#  tests/sim/mutate: re-introduces known mistakes in a scratch copy of
#  cw_core.c to show the simulation catches them (docs/simulation.md)
EXTRA_DIST += tests/sim/mutate

#  proto: canonical msgpack packing of JSON values (pure unit tests)
check_PROGRAMS += tests/check_cw_mpjson
TESTS += tests/check_cw_mpjson
tests_check_cw_mpjson_SOURCES = tests/check_cw_mpjson.c
tests_check_cw_mpjson_CFLAGS = $(PROTO_TEST_CFLAGS)
tests_check_cw_mpjson_LDADD = $(PROTO_TEST_LIBS)

#  libcwtest: HTTP request helpers (tests/cw_test_http.h) link libcurl
tests_libcwtest_a_SOURCES += tests/cw_test_http.c tests/cw_test_http.h
tests_libcwtest_a_CFLAGS += $(CURL_CFLAGS)
TEST_LIBS += $(CURL_LIBS)

#  pipeline (integration, issue #4): scenarios against real processes:
#  erpsim, broker(s), worker(s), relay, PostgreSQL (docs/broker.md,
#  "Pipeline scenarios")
check_PROGRAMS += tests/check_pipeline
TESTS += tests/check_pipeline
tests_check_pipeline_SOURCES = tests/check_pipeline.c \
    tests/worker_fixture.c tests/worker_fixture.h
tests_check_pipeline_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_pipeline_LDADD = $(FIXTURE_LIBS) lib/libcwrt.a proto/libcwproto.a $(TEST_LIBS) \
    $(RUNTIME_LIBS)
EXTRA_tests_check_pipeline_DEPENDENCIES = broker/causeway-broker \
    worker/causeway-worker erpsim/erpsim relay/causeway-relay \
    migrate/causeway-migrate
#  End to end: admin REQUEST op "call" through a real broker, worker and
#  erpsim, private PostgreSQL (docs/worker.md "CALL / REPLY")
check_PROGRAMS += tests/check_call
TESTS += tests/check_call
tests_check_call_SOURCES = tests/check_call.c \
    tests/worker_fixture.c tests/worker_fixture.h
tests_check_call_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_call_LDADD = $(FIXTURE_LIBS) lib/libcwrt.a proto/libcwproto.a $(TEST_LIBS) \
    $(RUNTIME_LIBS)

#  cw_fixture: integration fixtures shared by the process suites
#  (migrated database, CURVE certs, a broker, sample configs); link it
#  before lib/libcwrt.a (it uses cw_curve)
check_LIBRARIES += tests/libcwfixture.a
tests_libcwfixture_a_SOURCES = tests/cw_fixture.c tests/cw_fixture.h
tests_libcwfixture_a_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
FIXTURE_LIBS = tests/libcwfixture.a

#  cw_wire (lib): CWP/1 messages over real inproc sockets
check_PROGRAMS += tests/check_cw_wire
TESTS += tests/check_cw_wire
tests_check_cw_wire_SOURCES = tests/check_cw_wire.c
tests_check_cw_wire_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_cw_wire_LDADD = lib/libcwrt.a proto/libcwproto.a $(RUNTIME_LIBS) \
    $(CHECK_LIBS)

#  causeway (client): the operator CLI as a process against a real broker
#  and PostgreSQL: status, dlq list, replay, usage and connection errors
check_PROGRAMS += tests/check_client
TESTS += tests/check_client
tests_check_client_SOURCES = tests/check_client.c
tests_check_client_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(DEP_CFLAGS)
tests_check_client_LDADD = $(FIXTURE_LIBS) lib/libcwrt.a proto/libcwproto.a \
    $(TEST_LIBS) $(RUNTIME_LIBS)
EXTRA_tests_check_client_DEPENDENCIES = client/causeway \
    broker/causeway-broker migrate/causeway-migrate
