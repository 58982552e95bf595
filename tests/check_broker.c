/*  =========================================================================
    check_broker - causeway-broker as a process: real PostgreSQL (private
    database per test, migrated with causeway-migrate), real CURVE sockets
    on 127.0.0.1 with certificates made at test time, a worker peer
    speaking CWP/1 from the test (DEALER + cw_msg)
    =========================================================================
*/
#include "cw_curve.h"
#include "cw_envelope.h"
#include "cw_msg.h"
#include "cw_fixture.h"
#include "cw_test.h"
#include "cw_test_http.h"

#include <check.h>
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MSEC 20000

typedef struct {
    char *tmp;                  //  Temp dir: certs, uri file, logs
    char *uri;                  //  Superuser URI of the test database
    zcert_t *server;            //  Broker cert
    zcert_t *worker;            //  Worker cert (allowed)
    zcert_t *relay;             //  Relay cert (allowed, relay:shop)
    char *endpoint;             //  Bound endpoint
    pid_t pid;                  //  Broker
} fixture_t;

//  Starts the broker; extra: more NAME=value entries (NULL-terminated).
static void
s_broker_start (fixture_t *self, const char *const *extra)
{
    const char *settings[] = {
        "CW_BROKER_ID=broker-test",
        "CW_BROKER_DB_POLL=200ms", "CW_BROKER_FLUSH=1ms",
        "CW_BROKER_RETRY_BASE=10ms", "CW_BROKER_RETRY_CAP=20ms",
        "CW_BROKER_RETRY_MAX_ATTEMPTS=3", "CW_BROKER_DRAIN=2s",
        "CW_BROKER_SERVER_HEARTBEAT=200ms", "CW_BROKER_LOG_LEVEL=debug",
        NULL
    };
    self->pid = cw_fixture_broker_start (self->tmp, self->uri, "endpoint",
                                         "broker.log", settings, extra,
                                         WAIT_MSEC, &self->endpoint);
}

static fixture_t *
s_fixture_new (void)
{
    fixture_t *self = (fixture_t *) calloc (1, sizeof (fixture_t));
    self->tmp = cw_test_tmpdir ("check_broker");
    self->uri = cw_test_db_new ("broker");
    const char *islands[] = {"erp_mw", "shop", NULL};
    cw_fixture_migrate_islands (self->tmp, self->uri, islands);
    self->server = cw_curve_cert_new ("admin", "broker");
    self->worker = cw_curve_cert_new ("worker", "worker");
    self->relay = cw_curve_cert_new ("relay:shop", "relay");
    cw_fixture_cert_save (self->tmp, self->server, "server", "broker");
    cw_fixture_cert_save (self->tmp, self->worker, "peers", "worker");
    cw_fixture_cert_save (self->tmp, self->relay, "peers", "relay");
    return self;
}

static void
s_fixture_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    if (self->pid > 0)
        cw_test_stop (self->pid, 5000);
    zcert_destroy (&self->server);
    zcert_destroy (&self->worker);
    zcert_destroy (&self->relay);
    free (self->endpoint);
    cw_test_db_destroy (&self->uri);
    cw_test_tmpdir_destroy (&self->tmp);
    free (self);
    *self_p = NULL;
}

//  An admin certificate, listed in the broker's peers (before it starts,
//  or reloaded). Caller destroys it.
static zcert_t *
s_operator_cert (fixture_t *self)
{
    zcert_t *operator = cw_curve_cert_new ("admin", "operator");
    cw_fixture_cert_save (self->tmp, operator, "peers", "operator");
    return operator;
}

//  --- A peer speaking CWP/1 -------------------------------------------------

static zsock_t *
s_peer_new (fixture_t *self, zcert_t *cert)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (cert)
        cw_curve_client_setup (dealer, cert, zcert_public_txt (self->server));
    zsock_set_linger (dealer, 0);
    ck_assert_int_eq (zsock_connect (dealer, "%s", self->endpoint), 0);
    return dealer;
}

static void
s_peer_send (zsock_t *dealer, cw_msg_t **msg_p)
{
    char reason [CW_MSG_REASON_SIZE];
    cw_msg_frames_t *frames = cw_msg_encode (*msg_p, reason, sizeof (reason));
    ck_assert_msg (frames != NULL, "%s", reason);
    zmsg_t *out = zmsg_new ();
    for (size_t index = 0; index < frames->count; index++)
        zmsg_addmem (out, frames->frame [index].data, frames->frame [index].size);
    ck_assert_int_eq (zmsg_send (&out, dealer), 0);
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (msg_p);
}

//  Next message other than HEARTBEAT, or NULL after timeout.
static cw_msg_t *
s_peer_recv (zsock_t *dealer, int timeout_msec)
{
    long long deadline = cw_test_now_msec () + timeout_msec;
    while (cw_test_now_msec () < deadline) {
        zmq_pollitem_t item = { zsock_resolve (dealer), 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 100) != 1)
            continue;
        zmsg_t *in = zmsg_recv (dealer);
        ck_assert_ptr_nonnull (in);
        cw_msg_frame_t frames [CW_MSG_FRAMES];
        size_t count = 0;
        for (zframe_t *frame = zmsg_first (in); frame && count < CW_MSG_FRAMES;
             frame = zmsg_next (in)) {
            frames [count].data = zframe_data (frame);
            frames [count].size = zframe_size (frame);
            count++;
        }
        char reason [CW_MSG_REASON_SIZE];
        cw_msg_t *msg = cw_msg_decode (frames, count, NULL, reason, sizeof (reason));
        zmsg_destroy (&in);
        ck_assert_msg (msg != NULL, "broker sent a bad message: %s", reason);
        if (msg->command != CW_MSG_HEARTBEAT)
            return msg;
        cw_msg_destroy (&msg);
    }
    return NULL;
}

static void
s_ready (zsock_t *dealer, const char *flow, int credit)
{
    cw_msg_t *ready = cw_msg_new (CW_MSG_WORKER, CW_MSG_READY);
    cw_msg_flow_add (ready, flow);
    ready->ready.credit = credit;
    s_peer_send (dealer, &ready);
}

//  Answers job with a RESULT: want "rejected" (422), "transient" (503),
//  else ok (200); one credit back.
static void
s_answer (zsock_t *dealer, const cw_msg_t *job, const char *want)
{
    cw_msg_t *result = cw_msg_new (CW_MSG_WORKER, CW_MSG_RESULT);
    cw_msg_result_t *entry = cw_msg_result_add (result);
    entry->job_id = job->job.job_id;
    entry->attempt = job->job.attempt;
    entry->duration_ms = 1;
    if (want && streq (want, "rejected")) {
        entry->outcome = CW_MSG_OUTCOME_REJECTED;
        entry->http_status = 422;
        entry->error = strdup ("validation failed");
    }
    else
    if (want && streq (want, "transient")) {
        entry->outcome = CW_MSG_OUTCOME_TRANSIENT;
        entry->http_status = 503;
        entry->error = strdup ("unavailable");
    }
    else {
        entry->outcome = CW_MSG_OUTCOME_OK;
        entry->http_status = 200;
    }
    result->result.credit = 1;
    s_peer_send (dealer, &result);
}

//  A worker peer's HEARTBEAT. A test worker that waits for jobs sends
//  one per turn, as a real worker does: silent for a liveness (600 ms
//  here) it would be counted lost, its jobs handed back and no more sent
//  to it, which a slow machine reaches between two jobs.
static void
s_heartbeat (zsock_t *dealer)
{
    cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
    s_peer_send (dealer, &heartbeat);
}

//  s_peer_recv for a worker peer in session: heartbeats every 100 ms
//  while it waits, so the broker never counts it lost meanwhile.
static cw_msg_t *
s_worker_recv (zsock_t *dealer, int timeout_msec)
{
    long long deadline = cw_test_now_msec () + timeout_msec;
    cw_msg_t *msg = NULL;
    while (!msg && cw_test_now_msec () < deadline) {
        s_heartbeat (dealer);
        long long left = deadline - cw_test_now_msec ();
        msg = s_peer_recv (dealer, left < 100 ? (int) left : 100);
    }
    return msg;
}

//  Answers each JOB by its data's "want" (ok, rejected, transient), or
//  by want_default; records the order of data "seq" values in order[].
//  Runs until until() holds or the timeout passes.
static int
s_work (zsock_t *dealer, fixture_t *self, const char *done_sql, long expected,
        int64_t *order, size_t *order_count)
{
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    int jobs = 0;
    while (cw_test_now_msec () < deadline) {
        s_heartbeat (dealer);
        cw_msg_t *msg = s_peer_recv (dealer, 100);
        if (msg && msg->command == CW_MSG_JOB) {
            jobs++;
            json_t *data = cw_envelope_data (msg->job.envelope);
            const char *want = json_string_value (json_object_get (data, "want"));
            json_t *seq = json_object_get (data, "seq");
            if (order && json_is_integer (seq))
                order [(*order_count)++] = json_integer_value (seq);
            s_answer (dealer, msg, want);
        }
        cw_msg_destroy (&msg);
        char *value = cw_test_sql_value (self->uri, done_sql);
        long count = value ? strtol (value, NULL, 10) : -1;
        free (value);
        if (count == expected)
            return jobs;
    }
    ck_abort_msg ("condition not reached: %s = %ld", done_sql, expected);
    return jobs;
}

static void
s_sql (fixture_t *self, const char *sql)
{
    cw_fixture_sql_ok (self->uri, sql);
}

static long
s_count (fixture_t *self, const char *sql)
{
    return cw_fixture_sql_count (self->uri, sql);
}

//  --- Tests ---------------------------------------------------------------------

START_TEST (test_jobs_done)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 20);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " SELECT 'http.generic', 't1', 'key-' || n, '{\"want\": \"ok\"}'"
                 "   FROM generate_series (1, 200) AS n");
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'",
            200, NULL, NULL);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                                     " WHERE outcome = 'ok'"), 200);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE lease_owner IS NOT NULL"), 0);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

//  Rows written by others wake the broker through LISTEN/NOTIFY: with a
//  poll far longer than the test's wait, a job inserted by SQL is done
//  within seconds; in poll-only mode (no LISTEN) the poll alone finds it.
START_TEST (test_notify_wakes)
{
    fixture_t *self = s_fixture_new ();
    const char *listen[] = {"CW_BROKER_DB_POLL=10m", NULL};
    s_broker_start (self, listen);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 5);
    //  The broker has claimed (nothing) for the new credit by now
    zclock_sleep (500);
    long long inserted = cw_test_now_msec ();
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " VALUES ('http.generic', 't1', 'woken', '{\"want\": \"ok\"}')");
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'",
            1, NULL, NULL);
    long long took = cw_test_now_msec () - inserted;
    ck_assert_msg (took < WAIT_MSEC, "done after %lld ms", took);
    zsock_destroy (&worker);
    cw_test_stop (self->pid, 5000);
    self->pid = 0;
    //  It logged (debug) when the NOTIFY was read, to the microsecond
    char *log_path = zsys_sprintf ("%s/broker.log", self->tmp);
    char *log = cw_fixture_slurp (log_path);
    ck_assert_ptr_nonnull (log);
    const char *notified = strstr (log, "\"event\":\"jobs_notified\"");
    ck_assert_msg (notified != NULL, "%s", log);
    const char *at = strstr (notified, "\"at\":\"");
    ck_assert_ptr_nonnull (at);
    ck_assert_msg (strlen (at) > 34 && at[25] == '.' && at[32] == 'Z',
                   "%.40s", at);
    free (log);
    zstr_free (&log_path);
    free (self->endpoint);
    self->endpoint = NULL;

    const char *poll_only[] = {"CW_BROKER_DB_POLL_ONLY=true",
                               "CW_BROKER_DB_POLL=300ms", NULL};
    s_broker_start (self, poll_only);
    worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 5);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " VALUES ('http.generic', 't1', 'polled', '{\"want\": \"ok\"}')");
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'",
            2, NULL, NULL);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_rejected_and_exhausted)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 10);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
                 "    max_attempts) VALUES"
                 " ('http.generic', 't1', 'rej', '{\"want\": \"rejected\"}', 3),"
                 " ('http.generic', 't1', 'tra', '{\"want\": \"transient\"}', 3)");
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'dead'",
            2, NULL, NULL);
    ck_assert_int_eq (s_count (self, "SELECT attempts FROM erp_mw.jobs"
                                     " WHERE idempotency_key = 'rej'"), 1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE idempotency_key = 'rej'"
                                     "   AND dead_reason = 'rejected'"), 1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE idempotency_key = 'tra'"
                                     "   AND dead_reason = 'exhausted'"
                                     "   AND attempts = 3"), 1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                                     " a JOIN erp_mw.jobs j ON j.id = a.job_id"
                                     " WHERE j.idempotency_key = 'tra'"), 3);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_ordering)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 20);
    //  50 changes of one order, interleaved with another key
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                 "    ordering_key, payload)"
                 " SELECT 'http.generic', 't1', 'o-' || n,"
                 "   CASE WHEN n % 2 = 0 THEN 't1:A' ELSE 't1:B' END,"
                 "   jsonb_build_object ('seq', n)"
                 "   FROM generate_series (1, 100) AS n ORDER BY n");
    int64_t order [400];
    size_t count = 0;
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'",
            100, order, &count);
    ck_assert_int_eq (count, 100);
    int64_t last_a = 0, last_b = 0;
    for (size_t index = 0; index < count; index++) {
        int64_t *last = order [index] % 2 == 0 ? &last_a : &last_b;
        ck_assert_msg (order [index] > *last, "out of order: %lld after %lld",
                       (long long) order [index], (long long) *last);
        *last = order [index];
    }
    //  A dead head parks the rest of its key
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                 "    ordering_key, payload) VALUES"
                 " ('http.generic', 't1', 'p-1', 't1:P', '{\"want\": \"rejected\"}'),"
                 " ('http.generic', 't1', 'p-2', 't1:P', '{\"want\": \"ok\"}'),"
                 " ('http.generic', 't1', 'q-1', 't1:Q', '{\"want\": \"ok\"}')");
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs"
                          " WHERE idempotency_key IN ('p-1', 'q-1')"
                          "   AND state IN ('dead', 'done')", 2, NULL, NULL);
    //  p-2 is never claimed while p-1 is dead: give the poll a few turns
    long long until = cw_test_now_msec () + 1000;
    while (cw_test_now_msec () < until) {
        cw_msg_t *msg = s_worker_recv (worker, 100);
        ck_assert_msg (msg == NULL || msg->command != CW_MSG_JOB,
                       "job of a parked key dispatched");
        cw_msg_destroy (&msg);
    }
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE idempotency_key = 'p-2'"
                                     "   AND state = 'ready'"), 1);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

//  READY with targets: a worker gets only jobs of its targets (a job
//  naming none runs at the worker's own); a job of a target no worker
//  serves is not claimed at all, so it stays ready, no attempt spent.
static void
s_ready_target (zsock_t *dealer, const char *flow, int credit,
                const char *target)
{
    cw_msg_t *ready = cw_msg_new (CW_MSG_WORKER, CW_MSG_READY);
    cw_msg_flow_add (ready, flow);
    cw_msg_target_add (ready, target);
    ready->ready.credit = credit;
    s_peer_send (dealer, &ready);
}

START_TEST (test_targets)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *workers [2] = {
        s_peer_new (self, self->worker), s_peer_new (self, self->worker)
    };
    const char *targets [2] = {"ledger", "shop"};
    s_ready_target (workers [0], "http.generic", 8, targets [0]);
    s_ready_target (workers [1], "http.generic", 8, targets [1]);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                 "    target, payload)"
                 " SELECT 'http.generic', 't1', 'tg-' || n,"
                 "   (ARRAY ['ledger', 'shop', NULL, 'nobody']) [n % 4 + 1],"
                 "   '{}'"
                 "   FROM generate_series (1, 40) AS n");
    const char *done_sql = "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'";
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    int sent [2] = {0, 0};
    while (s_count (self, done_sql) < 30 && cw_test_now_msec () < deadline)
        for (int index = 0; index < 2; index++) {
            s_heartbeat (workers [index]);
            cw_msg_t *msg = s_peer_recv (workers [index], 50);
            if (msg && msg->command == CW_MSG_JOB) {
                ck_assert_msg (streq (msg->job.target, targets [index]),
                               "job %lld of target %s sent to the %s worker",
                               (long long) msg->job.job_id, msg->job.target,
                               targets [index]);
                sent [index]++;
                s_answer (workers [index], msg, "ok");
            }
            cw_msg_destroy (&msg);
        }
    ck_assert_int_eq (s_count (self, done_sql), 30);
    //  The broker logged what each worker announced
    char *log_path = zsys_sprintf ("%s/broker.log", self->tmp);
    char *log = cw_fixture_slurp (log_path);
    ck_assert_ptr_nonnull (log);
    ck_assert_msg (strstr (log, "\"flows\":\"http.generic\",\"targets\":"
                                "\"shop\"") != NULL, "%s", log);
    free (log);
    zstr_free (&log_path);
    //  Each ran its ten and some of the ten naming no target
    ck_assert_int_ge (sent [0], 10);
    ck_assert_int_ge (sent [1], 10);
    ck_assert_int_eq (sent [0] + sent [1], 30);
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM erp_mw.jobs WHERE target IS NULL"
        "   AND state = 'done'"), 10);
    //  Nobody serves "nobody": never leased, never sent
    long long until = cw_test_now_msec () + 1000;
    while (cw_test_now_msec () < until)
        for (int index = 0; index < 2; index++) {
            s_heartbeat (workers [index]);
            cw_msg_t *msg = s_peer_recv (workers [index], 50);
            ck_assert_msg (msg == NULL || msg->command != CW_MSG_JOB,
                           "job of an unserved target dispatched");
            cw_msg_destroy (&msg);
        }
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM erp_mw.jobs WHERE target = 'nobody'"
        "   AND state = 'ready' AND attempts = 0 AND lease_owner IS NULL"), 10);
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM erp_mw.job_attempts a JOIN erp_mw.jobs j"
        "    ON j.id = a.job_id WHERE j.target = 'nobody'"), 0);
    zsock_destroy (&workers [0]);
    zsock_destroy (&workers [1]);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_security)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    //  A worker key sending PUBLISH: ERROR forbidden
    zsock_t *worker = s_peer_new (self, self->worker);
    cw_msg_t *publish = cw_msg_new (CW_MSG_RELAY, CW_MSG_PUBLISH);
    publish->publish.batch_id = 1;
    publish->publish.island = strdup ("shop");
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, "e1");
    cw_envelope_set_source (envelope, "shop");
    cw_envelope_set_type (envelope, "order.created.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123Z");
    cw_envelope_set_tenant_id (envelope, "t1");
    cw_envelope_set_correlation_id (envelope, "c1");
    cw_envelope_set_idempotency_key (envelope, "k1");
    json_t *data = json_object ();
    cw_envelope_set_data (envelope, &data);
    cw_msg_event_add (publish, &envelope);
    s_peer_send (worker, &publish);
    cw_msg_t *answer = s_peer_recv (worker, WAIT_MSEC);
    ck_assert_ptr_nonnull (answer);
    ck_assert_int_eq (answer->command, CW_MSG_ERROR);
    ck_assert_str_eq (answer->error.code, "forbidden");
    ck_assert_int_eq (answer->error.command, CW_MSG_PUBLISH);
    cw_msg_destroy (&answer);

    //  RESULT before READY: unknown_session
    cw_msg_t *result = cw_msg_new (CW_MSG_WORKER, CW_MSG_RESULT);
    cw_msg_result_t *entry = cw_msg_result_add (result);
    entry->job_id = 1;
    entry->attempt = 1;
    entry->outcome = CW_MSG_OUTCOME_OK;
    s_peer_send (worker, &result);
    answer = s_peer_recv (worker, WAIT_MSEC);
    ck_assert_ptr_nonnull (answer);
    ck_assert_str_eq (answer->error.code, "unknown_session");
    cw_msg_destroy (&answer);

    //  Garbage frames from an authenticated peer: dropped, no answer
    for (int index = 0; index < 5; index++) {
        zstr_sendm (worker, "CWW01");
        zstr_sendm (worker, "\x01");
        zstr_send (worker, "not msgpack");
        zstr_send (worker, "one frame");
    }

    //  Unknown CURVE key and a plaintext client: never answered
    zcert_t *stranger = cw_curve_cert_new ("worker", "stranger");
    zsock_t *unknown = s_peer_new (self, stranger);
    s_ready (unknown, "http.generic", 5);
    zsock_t *plain = s_peer_new (self, NULL);
    s_ready (plain, "http.generic", 5);

    //  The good worker is still served
    s_ready (worker, "http.generic", 5);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " SELECT 'http.generic', 't1', 's-' || n, '{}'"
                 "   FROM generate_series (1, 10) AS n");
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'",
            10, NULL, NULL);
    cw_msg_t *nothing = s_peer_recv (unknown, 300);
    ck_assert_ptr_null (nothing);
    nothing = s_peer_recv (plain, 300);
    ck_assert_ptr_null (nothing);
    zsock_destroy (&plain);
    zsock_destroy (&unknown);
    zcert_destroy (&stranger);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

//  Sends REQUEST op (args taken) from an admin peer; returns the
//  RESPONSE to it, or NULL after timeout_msec.
static cw_msg_t *
s_admin_request (zsock_t *admin, int64_t request_id, const char *op,
                 json_t *args, int timeout_msec)
{
    cw_msg_t *request = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
    request->request.request_id = request_id;
    request->request.op = strdup (op);
    request->request.args = args;
    s_peer_send (admin, &request);
    long long deadline = cw_test_now_msec () + timeout_msec;
    while (cw_test_now_msec () < deadline) {
        cw_msg_t *msg = s_peer_recv (admin, 100);
        if (msg && msg->command == CW_MSG_RESPONSE
        &&  msg->response.request_id == request_id)
            return msg;
        cw_msg_destroy (&msg);
    }
    return NULL;
}

//  Waits until the admin status counts workers live workers.
static void
s_wait_workers (zsock_t *admin, int64_t workers)
{
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    for (int64_t request_id = 1000; cw_test_now_msec () < deadline;
         request_id++) {
        cw_msg_t *msg = s_admin_request (admin, request_id, "status",
                                         json_object (), WAIT_MSEC);
        ck_assert_ptr_nonnull (msg);
        int64_t now = json_integer_value (
            json_object_get (msg->response.result, "workers"));
        cw_msg_destroy (&msg);
        if (now == workers)
            return;
        zclock_sleep (50);
    }
    ck_abort_msg ("broker never counted %lld workers", (long long) workers);
}

//  args of op call: flow http.generic, an envelope with key
static json_t *
s_call_args (const char *key)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, key);
    cw_envelope_set_source (envelope, "shop");
    cw_envelope_set_type (envelope, "customer.upserted.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123Z");
    cw_envelope_set_tenant_id (envelope, "t1");
    cw_envelope_set_correlation_id (envelope, "c1");
    cw_envelope_set_idempotency_key (envelope, key);
    json_t *data = json_object ();
    cw_envelope_set_data (envelope, &data);
    char reason [256];
    char *text = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    ck_assert_msg (text != NULL, "%s", reason);
    cw_envelope_destroy (&envelope);
    json_t *envelope_json = json_loads (text, 0, NULL);
    free (text);
    ck_assert_ptr_nonnull (envelope_json);
    return json_pack ("{s:s, s:o}", "flow", "http.generic",
                      "envelope", envelope_json);
}

static void
s_reply (zsock_t *dealer, int64_t call_id, int http_status)
{
    cw_msg_t *reply = cw_msg_new (CW_MSG_WORKER, CW_MSG_REPLY);
    reply->reply.call_id = call_id;
    reply->reply.outcome = CW_MSG_OUTCOME_OK;
    reply->reply.http_status = http_status;
    reply->reply.duration_ms = 1;
    s_peer_send (dealer, &reply);
}

//  A REPLY answers a call only from the worker the CALL went to: from a
//  peer without a session it is unknown_session (PROTOCOL.md §5), from
//  another worker it is ignored. Before, any worker-role connection
//  could answer any call (call ids count up from 1), READY or not.
START_TEST (test_reply_from_called_worker_only)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    //  Long heartbeats: the called worker stays alive without sending
    const char *slow[] = {"CW_BROKER_SERVER_HEARTBEAT=5s", NULL};
    s_broker_start (self, slow);
    zsock_t *called = s_peer_new (self, self->worker);
    s_ready (called, "http.generic", 5);
    zsock_t *admin = s_peer_new (self, operator);
    s_wait_workers (admin, 1);
    cw_msg_t *request = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
    request->request.request_id = 1;
    request->request.op = strdup ("call");
    request->request.args = s_call_args ("call-1");
    s_peer_send (admin, &request);
    cw_msg_t *call = s_peer_recv (called, WAIT_MSEC);
    ck_assert_ptr_nonnull (call);
    ck_assert_int_eq (call->command, CW_MSG_CALL);
    int64_t call_id = call->call.call_id;
    cw_msg_destroy (&call);

    //  Another connection with a worker key, no READY: unknown_session
    zsock_t *other = s_peer_new (self, self->worker);
    s_reply (other, call_id, 299);
    cw_msg_t *answer = s_peer_recv (other, WAIT_MSEC);
    ck_assert_ptr_nonnull (answer);
    ck_assert_int_eq (answer->command, CW_MSG_ERROR);
    ck_assert_str_eq (answer->error.code, "unknown_session");
    ck_assert_int_eq (answer->error.command, CW_MSG_REPLY);
    cw_msg_destroy (&answer);
    //  In session, but not the called worker: ignored
    s_ready (other, "http.generic", 5);
    s_reply (other, call_id, 298);
    cw_msg_t *response = s_peer_recv (admin, 500);
    ck_assert_msg (response == NULL,
                   "the admin got another worker's REPLY (http_status %lld)",
                   response ? (long long) json_integer_value (json_object_get (
                                  response->response.result, "http_status"))
                            : 0LL);
    //  The called worker's REPLY answers the call
    s_reply (called, call_id, 200);
    response = s_peer_recv (admin, WAIT_MSEC);
    ck_assert_ptr_nonnull (response);
    ck_assert_int_eq (response->command, CW_MSG_RESPONSE);
    ck_assert_int_eq (response->response.request_id, 1);
    ck_assert_ptr_null (response->response.error_code);
    ck_assert_int_eq (json_integer_value (json_object_get (
                          response->response.result, "http_status")), 200);
    cw_msg_destroy (&response);
    zsock_destroy (&other);
    zsock_destroy (&admin);
    zcert_destroy (&operator);
    zsock_destroy (&called);
    s_fixture_destroy (&self);
}
END_TEST

//  A worker that stays alive (heartbeats) but never answers a CALL: the
//  broker gives up after the call's deadline plus a worker's liveness
//  and answers the caller call_failed; the worker keeps its session.
//  Before, the caller waited as long as the worker lived.
START_TEST (test_call_overdue)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    const char *short_deadline[] = {"CW_BROKER_JOB_DEADLINE=500ms", NULL};
    s_broker_start (self, short_deadline);
    zsock_t *silent = s_peer_new (self, self->worker);
    s_ready (silent, "http.generic", 5);
    zsock_t *admin = s_peer_new (self, operator);
    s_wait_workers (admin, 1);
    cw_msg_t *request = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
    request->request.request_id = 7;
    request->request.op = strdup ("call");
    request->request.args = s_call_args ("call-overdue");
    long long asked_at = cw_test_now_msec ();
    s_peer_send (admin, &request);
    bool called = false;
    cw_msg_t *response = NULL;
    long long deadline = asked_at + WAIT_MSEC;
    while (!response && cw_test_now_msec () < deadline) {
        cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
        s_peer_send (silent, &heartbeat);
        cw_msg_t *in = s_peer_recv (silent, 1);
        if (in && in->command == CW_MSG_CALL)
            called = true;
        cw_msg_destroy (&in);
        response = s_peer_recv (admin, 100);
    }
    long long waited = cw_test_now_msec () - asked_at;
    ck_assert (called);
    ck_assert_msg (response != NULL, "no answer in %d ms", WAIT_MSEC);
    ck_assert_int_eq (response->command, CW_MSG_RESPONSE);
    ck_assert_int_eq (response->response.request_id, 7);
    ck_assert_str_eq (response->response.error_code, "call_failed");
    ck_assert_msg (strstr (response->response.error_message, "deadline"),
                   "%s", response->response.error_message);
    //  Not before the deadline plus the liveness grace (200 ms x 3)
    ck_assert_int_ge (waited, 500 + 600);
    cw_msg_destroy (&response);
    s_wait_workers (admin, 1);
    zsock_destroy (&admin);
    zsock_destroy (&silent);
    zcert_destroy (&operator);
    s_fixture_destroy (&self);
}
END_TEST

//  The admin status counter name, as an integer.
static json_int_t
s_status_counter (zsock_t *admin, int64_t request_id, const char *name)
{
    cw_msg_t *response = s_admin_request (admin, request_id, "status",
                                          json_object (), WAIT_MSEC);
    ck_assert_ptr_nonnull (response);
    json_t *value = json_object_get (response->response.result, name);
    ck_assert_msg (json_is_integer (value), "status has no %s", name);
    json_int_t number = json_integer_value (value);
    cw_msg_destroy (&response);
    return number;
}

//  A frame over the body limit: libzmq drops that connection before the
//  broker buffers it, so it never reaches the decoder (before, the broker
//  took the 2 MiB in and counted it malformed); the broker keeps serving.
START_TEST (test_oversized_frame_dropped)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    s_broker_start (self, NULL);
    zsock_t *admin = s_peer_new (self, operator);
    ck_assert_int_eq (s_status_counter (admin, 1, "malformed"), 0);
    zsock_t *big = s_peer_new (self, self->worker);
    size_t big_size = 2 * 1024 * 1024;
    char *body = (char *) malloc (big_size);
    ck_assert_ptr_nonnull (body);
    memset (body, 'x', big_size);
    zstr_sendm (big, "CWW01");
    zstr_sendm (big, "\x01");
    zsock_send (big, "b", body, big_size);
    free (body);
    zclock_sleep (500);
    //  A small malformed message after it is counted: the one count
    zsock_t *small = s_peer_new (self, self->worker);
    zstr_sendm (small, "CWW01");
    zstr_sendm (small, "\x01");
    zstr_send (small, "not msgpack");
    json_int_t malformed = 0;
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    for (int64_t request_id = 2;
         malformed == 0 && cw_test_now_msec () < deadline; request_id++) {
        malformed = s_status_counter (admin, request_id, "malformed");
        if (malformed == 0)
            zclock_sleep (50);
    }
    //  Nothing more comes in later
    zclock_sleep (500);
    malformed = s_status_counter (admin, 1000, "malformed");
    ck_assert_int_eq (malformed, 1);
    zsock_destroy (&small);
    zsock_destroy (&big);
    zsock_destroy (&admin);
    zcert_destroy (&operator);
    s_fixture_destroy (&self);
}
END_TEST

//  The role is the sending connection's, whatever routing id it chose:
//  a connection with a worker key that takes the routing id an admin
//  connection used before is refused admin requests. Before, the broker
//  kept the role of the first connection it saw under a routing id for
//  ever and served the second one as admin.
START_TEST (test_routing_id_reused)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    s_broker_start (self, NULL);
    zsock_t *admin = zsock_new (ZMQ_DEALER);
    cw_curve_client_setup (admin, operator, zcert_public_txt (self->server));
    zsock_set_linger (admin, 0);
    zsock_set_identity (admin, "ops");
    ck_assert_int_eq (zsock_connect (admin, "%s", self->endpoint), 0);
    cw_msg_t *response = s_admin_request (admin, 1, "status", json_object (),
                                          WAIT_MSEC);
    ck_assert_ptr_nonnull (response);
    ck_assert_ptr_null (response->response.error_code);
    cw_msg_destroy (&response);
    zsock_destroy (&admin);

    //  The broker takes the routing id once the admin's connection is gone
    cw_msg_t *answer = NULL;
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (!answer && cw_test_now_msec () < deadline) {
        zsock_t *worker = zsock_new (ZMQ_DEALER);
        cw_curve_client_setup (worker, self->worker,
                               zcert_public_txt (self->server));
        zsock_set_linger (worker, 0);
        zsock_set_identity (worker, "ops");
        ck_assert_int_eq (zsock_connect (worker, "%s", self->endpoint), 0);
        cw_msg_t *request = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
        request->request.request_id = 2;
        request->request.op = strdup ("status");
        request->request.args = json_object ();
        s_peer_send (worker, &request);
        answer = s_peer_recv (worker, 500);
        zsock_destroy (&worker);
    }
    ck_assert_ptr_nonnull (answer);
    ck_assert_msg (answer->command == CW_MSG_ERROR,
                   "a worker key was answered an admin request");
    ck_assert_str_eq (answer->error.code, "forbidden");
    ck_assert_int_eq (answer->error.command, CW_MSG_REQUEST);
    cw_msg_destroy (&answer);
    zcert_destroy (&operator);
    s_fixture_destroy (&self);
}
END_TEST

//  Peers that go away without DISCONNECT (admin clients, relays, dead
//  workers) are forgotten after twice a worker's liveness: the broker's
//  peer table does not grow with every connection ever made
START_TEST (test_idle_peers_forgotten)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    s_broker_start (self, NULL);
    const int clients = 20;
    for (int client = 0; client < clients; client++) {
        zsock_t *admin = s_peer_new (self, operator);
        cw_msg_t *response = s_admin_request (admin, 1, "status",
                                              json_object (), WAIT_MSEC);
        ck_assert_ptr_nonnull (response);
        cw_msg_destroy (&response);
        zsock_destroy (&admin);
    }
    //  One admin stays and asks until only it is left
    zsock_t *admin = s_peer_new (self, operator);
    json_int_t peers = -1, most = 0;
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    for (int64_t request_id = 1; cw_test_now_msec () < deadline; request_id++) {
        cw_msg_t *response = s_admin_request (admin, request_id, "status",
                                              json_object (), WAIT_MSEC);
        ck_assert_ptr_nonnull (response);
        json_t *count = json_object_get (response->response.result, "peers");
        ck_assert (json_is_integer (count));
        peers = json_integer_value (count);
        ck_assert (json_is_integer (json_object_get (
            response->response.result, "unknown_session")));
        ck_assert (json_is_integer (json_object_get (
            response->response.result, "commit_lost")));
        cw_msg_destroy (&response);
        if (peers > most)
            most = peers;
        if (peers == 1)
            break;
        zclock_sleep (100);
    }
    ck_assert_int_gt (most, 1);
    ck_assert_int_eq (peers, 1);
    zsock_destroy (&admin);
    zcert_destroy (&operator);
    s_fixture_destroy (&self);
}
END_TEST

static char *
s_log_line (fixture_t *self, const char *event);

//  An admin REQUEST op with args given as JSON text; returns the RESPONSE.
static cw_msg_t *
s_admin_json (zsock_t *admin, int64_t request_id, const char *op,
              const char *args_json)
{
    json_error_t error;
    json_t *args = json_loads (args_json, 0, &error);
    ck_assert_msg (args != NULL, "%s: %s", args_json, error.text);
    cw_msg_t *response = s_admin_request (admin, request_id, op, args,
                                          WAIT_MSEC);
    ck_assert_msg (response != NULL, "no RESPONSE to %s %s", op, args_json);
    return response;
}

//  The RESPONSE to op args_json is error malformed naming field.
static void
s_admin_malformed (zsock_t *admin, int64_t request_id, const char *op,
                   const char *args_json, const char *field)
{
    cw_msg_t *response = s_admin_json (admin, request_id, op, args_json);
    ck_assert_msg (response->response.error_code
                   && streq (response->response.error_code, "malformed"),
                   "%s %s: not malformed", op, args_json);
    ck_assert_msg (response->response.error_field
                   && streq (response->response.error_field, field),
                   "%s %s: field %s, not %s", op, args_json,
                   response->response.error_field, field);
    cw_msg_destroy (&response);
}

//  The ids of a result's array member name (job ids or job objects'
//  ids), as "1,2,3".
static char *
s_result_ids (const cw_msg_t *response, const char *name)
{
    ck_assert_ptr_null (response->response.error_code);
    json_t *array = json_object_get (response->response.result, name);
    ck_assert_msg (json_is_array (array), "result has no array %s", name);
    char *text = strdup ("");
    for (size_t index = 0; index < json_array_size (array); index++) {
        json_t *item = json_array_get (array, index);
        json_t *id = json_is_object (item) ? json_object_get (item, "id")
                                           : item;
        ck_assert (json_is_integer (id));
        char *longer = zsys_sprintf ("%s%s%lld", text, index ? "," : "",
                                     (long long) json_integer_value (id));
        free (text);
        text = strdup (longer);
        zstr_free (&longer);
    }
    return text;
}

//  Dead letters (PROTOCOL.md 4.9): dlq.list selects by tenant, order,
//  customer, reason and time, pages with limit and after_id;
//  replay.preview names the exact ids and changes nothing; replay.confirm
//  makes the still-dead ones of the tenant ready in place (same id, a
//  fresh attempt budget, still ahead of the job parked behind it) with
//  one audit row, and skips the rest. Bad args are malformed, naming the
//  member.
START_TEST (test_dead_letters)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    s_broker_start (self, NULL);
    //  1: dead head of order O-1; 2: parked behind it; 3: a customer's,
    //  exhausted, its payload an envelope; 4: another tenant's
    s_sql (self,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, ordering_key,"
        "  payload, state, dead_reason, attempts, last_error, finished_at)"
        " VALUES ('http.generic', 't1', 'dl-1', 't1:O-1',"
        "   '{\"orderId\": \"O-1\", \"want\": \"ok\", \"seq\": 1}', 'dead',"
        "   'rejected', 1, 'rejected (422): name', now ())");
    s_sql (self,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, ordering_key,"
        "  payload)"
        " VALUES ('http.generic', 't1', 'dl-2', 't1:O-1',"
        "   '{\"orderId\": \"O-1\", \"want\": \"ok\", \"seq\": 2}')");
    s_sql (self,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, ordering_key,"
        "  payload, state, dead_reason, attempts, last_error, finished_at,"
        "  correlation_id)"
        " VALUES ('http.generic', 't1', 'dl-3', 't1:C-1',"
        "   '{\"id\": \"dl-3\", \"data\": {\"customerId\": \"C-1\"}}', 'dead',"
        "   'exhausted', 3, 'timeout after 1000 ms',"
        "   now () - interval '2 days', 'corr-3')");
    s_sql (self,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "  state, dead_reason, attempts, finished_at)"
        " VALUES ('http.generic', 't2', 'dl-4', '{}', 'dead', 'rejected', 1,"
        "   now ())");
    //  5: parked behind the customer's dead job 3
    s_sql (self,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, ordering_key,"
        "  payload)"
        " VALUES ('http.generic', 't1', 'dl-5', 't1:C-1',"
        "   '{\"customerId\": \"C-1\", \"want\": \"ok\", \"seq\": 5}')");
    char *id1 = cw_test_sql_value (self->uri, "SELECT id FROM erp_mw.jobs"
                                              " WHERE idempotency_key = 'dl-1'");
    char *id3 = cw_test_sql_value (self->uri, "SELECT id FROM erp_mw.jobs"
                                              " WHERE idempotency_key = 'dl-3'");
    char *id4 = cw_test_sql_value (self->uri, "SELECT id FROM erp_mw.jobs"
                                              " WHERE idempotency_key = 'dl-4'");
    zsock_t *admin = s_peer_new (self, operator);

    //  dlq.list: the tenant's dead jobs, by id, with what an operator needs
    cw_msg_t *response = s_admin_json (admin, 1, "dlq.list",
                                       "{\"tenant\": \"t1\"}");
    char *ids = s_result_ids (response, "jobs");
    char *expected = zsys_sprintf ("%s,%s", id1, id3);
    ck_assert_str_eq (ids, expected);
    zstr_free (&expected);
    free (ids);
    json_t *result = response->response.result;
    ck_assert (json_is_false (json_object_get (result, "more")));
    json_t *first = json_array_get (json_object_get (result, "jobs"), 0);
    json_t *second = json_array_get (json_object_get (result, "jobs"), 1);
    ck_assert_str_eq (json_string_value (json_object_get (first, "order")),
                      "O-1");
    ck_assert (json_is_null (json_object_get (first, "customer")));
    ck_assert_str_eq (json_string_value (json_object_get (first, "reason")),
                      "rejected");
    ck_assert_str_eq (json_string_value (json_object_get (first,
                                                          "idempotency_key")),
                      "dl-1");
    ck_assert_str_eq (json_string_value (json_object_get (first,
                                                          "ordering_key")),
                      "t1:O-1");
    ck_assert_int_eq (json_integer_value (json_object_get (first, "attempts")),
                      1);
    ck_assert_str_eq (json_string_value (json_object_get (first,
                                                          "last_error")),
                      "rejected (422): name");
    const char *died = json_string_value (json_object_get (first, "died_at"));
    ck_assert_msg (died && cw_envelope_time_valid (died), "died_at %s", died);
    ck_assert_str_eq (json_string_value (json_object_get (second,
                                                          "customer")),
                      "C-1");
    ck_assert_str_eq (json_string_value (json_object_get (second,
                                                          "correlation_id")),
                      "corr-3");
    cw_msg_destroy (&response);
    //  Paging
    response = s_admin_json (admin, 2, "dlq.list",
                             "{\"tenant\": \"t1\", \"limit\": 1}");
    ids = s_result_ids (response, "jobs");
    ck_assert_str_eq (ids, id1);
    free (ids);
    ck_assert (json_is_true (json_object_get (response->response.result,
                                              "more")));
    cw_msg_destroy (&response);
    char *args = zsys_sprintf ("{\"tenant\": \"t1\", \"limit\": 1,"
                               " \"after_id\": %s}", id1);
    response = s_admin_json (admin, 3, "dlq.list", args);
    zstr_free (&args);
    ids = s_result_ids (response, "jobs");
    ck_assert_str_eq (ids, id3);
    free (ids);
    ck_assert (json_is_false (json_object_get (response->response.result,
                                               "more")));
    cw_msg_destroy (&response);
    //  Each selector
    const char *selections [][2] = {
        { "{\"tenant\": \"t1\", \"order\": \"O-1\"}", id1 },
        { "{\"tenant\": \"t1\", \"customer\": \"C-1\"}", id3 },
        { "{\"tenant\": \"t1\", \"reason\": \"exhausted\"}", id3 },
        { "{\"tenant\": \"t1\", \"flow\": \"other.flow\"}", "" },
        { "{\"tenant\": \"t2\"}", id4 },
        { "{\"tenant\": \"t1\", \"since\": \"2000-01-01T00:00:00Z\","
          " \"until\": \"2999-01-01T00:00:00+01:00\"}", NULL },
        { "{\"tenant\": \"t1\", \"until\": \"2000-01-01T00:00:00Z\"}", "" },
        { "{\"tenant\": \"t3\"}", "" }
    };
    char *both = zsys_sprintf ("%s,%s", id1, id3);
    for (size_t index = 0; index < sizeof (selections) / sizeof (selections [0]);
         index++) {
        response = s_admin_json (admin, 10 + (int64_t) index, "dlq.list",
                                 selections [index][0]);
        ids = s_result_ids (response, "jobs");
        const char *want = selections [index][1] ? selections [index][1] : both;
        ck_assert_msg (streq (ids, want), "%s: %s, not %s",
                       selections [index][0], ids, want);
        free (ids);
        cw_msg_destroy (&response);
    }
    zstr_free (&both);
    //  The job that died two days ago, by time
    response = s_admin_json (admin, 30, "dlq.list",
                             "{\"tenant\": \"t1\", \"until\":"
                             " \"2999-01-01T00:00:00Z\", \"reason\":"
                             " \"exhausted\"}");
    ids = s_result_ids (response, "jobs");
    ck_assert_str_eq (ids, id3);
    free (ids);
    cw_msg_destroy (&response);

    //  Bad args name the member
    s_admin_malformed (admin, 40, "dlq.list", "{}", "args.tenant");
    s_admin_malformed (admin, 41, "dlq.list", "{\"tenant\": \"\"}",
                       "args.tenant");
    s_admin_malformed (admin, 42, "dlq.list",
                       "{\"tenant\": \"t1\", \"limit\": 0}", "args.limit");
    s_admin_malformed (admin, 43, "dlq.list",
                       "{\"tenant\": \"t1\", \"limit\": 1001}", "args.limit");
    s_admin_malformed (admin, 44, "dlq.list",
                       "{\"tenant\": \"t1\", \"customerId\": \"C-1\"}",
                       "args.customerId");
    s_admin_malformed (admin, 45, "dlq.list",
                       "{\"tenant\": \"t1\", \"since\": \"yesterday\"}",
                       "args.since");
    s_admin_malformed (admin, 46, "dlq.list",
                       "{\"tenant\": \"t1\", \"reason\": \"tired\"}",
                       "args.reason");
    s_admin_malformed (admin, 47, "replay.preview",
                       "{\"tenant\": \"t1\", \"after_id\": 3}",
                       "args.after_id");
    s_admin_malformed (admin, 48, "replay.confirm",
                       "{\"tenant\": \"t1\", \"job_ids\": [1]}",
                       "args.reason");
    s_admin_malformed (admin, 49, "replay.confirm",
                       "{\"tenant\": \"t1\", \"job_ids\": [], \"reason\": \"x\"}",
                       "args.job_ids");
    s_admin_malformed (admin, 50, "replay.confirm",
                       "{\"tenant\": \"t1\", \"job_ids\": [1, -2],"
                       " \"reason\": \"x\"}", "args.job_ids");
    s_admin_malformed (admin, 51, "replay.confirm",
                       "{\"tenant\": 7, \"job_ids\": [1], \"reason\": \"x\"}",
                       "args.tenant");
    //  A worker key may not ask
    zsock_t *worker = s_peer_new (self, self->worker);
    cw_msg_t *request = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
    request->request.request_id = 60;
    request->request.op = strdup ("dlq.list");
    request->request.args = json_pack ("{s:s}", "tenant", "t1");
    s_peer_send (worker, &request);
    cw_msg_t *answer = s_peer_recv (worker, WAIT_MSEC);
    ck_assert_ptr_nonnull (answer);
    ck_assert_int_eq (answer->command, CW_MSG_ERROR);
    ck_assert_str_eq (answer->error.code, "forbidden");
    cw_msg_destroy (&answer);

    //  Preview: the exact ids, nothing changed; the order waits meanwhile
    s_ready (worker, "http.generic", 5);
    response = s_admin_json (admin, 70, "replay.preview",
                             "{\"tenant\": \"t1\", \"order\": \"O-1\"}");
    ids = s_result_ids (response, "job_ids");
    ck_assert_str_eq (ids, id1);
    free (ids);
    cw_msg_destroy (&response);
    cw_msg_t *early = s_worker_recv (worker, 300);
    ck_assert_msg (early == NULL, "job %lld sent while its order's head is dead",
                   early ? (long long) early->job.job_id : 0LL);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE state = 'dead'"), 3);

    //  Confirm: the tenant's dead one replayed; the other tenant's and an
    //  unknown id skipped; one audit row with the actor and the reason
    cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
    s_peer_send (worker, &heartbeat);
    args = zsys_sprintf ("{\"tenant\": \"t1\", \"job_ids\": [999999, %s, %s,"
                         " %s], \"reason\": \"name fixed in the shop\"}",
                         id4, id1, id1);
    response = s_admin_json (admin, 71, "replay.confirm", args);
    zstr_free (&args);
    ids = s_result_ids (response, "replayed");
    ck_assert_str_eq (ids, id1);
    free (ids);
    ids = s_result_ids (response, "skipped");
    expected = zsys_sprintf ("%s,999999", id4);
    ck_assert_str_eq (ids, expected);
    zstr_free (&expected);
    free (ids);
    cw_msg_destroy (&response);
    //  The head runs first, then the job parked behind it
    int64_t order [4];
    size_t order_count = 0;
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs"
                          " WHERE state = 'done' AND tenant = 't1'", 2,
            order, &order_count);
    ck_assert_int_eq (order_count, 2);
    ck_assert_int_eq (order [0], 1);
    ck_assert_int_eq (order [1], 2);
    //  In place: same row, the second attempt, a fresh budget of 3
    char *sql = zsys_sprintf ("SELECT attempts || '/' || max_attempts"
                              "  FROM erp_mw.jobs WHERE id = %s", id1);
    cw_fixture_sql_eq (self->uri, sql, "2/4");
    zstr_free (&sql);
    const char *key = zcert_public_txt (operator);
    sql = zsys_sprintf ("SELECT count(*) FROM erp_mw.audit_log"
                        " WHERE action = 'replay' AND actor = 'admin:%s'"
                        "   AND target = 'tenant:t1'"
                        "   AND detail ->> 'reason' = 'name fixed in the shop'"
                        "   AND detail -> 'replayed' = '[%s]'::jsonb"
                        "   AND detail -> 'skipped' = '[%s, 999999]'::jsonb",
                        key, id1, id4);
    ck_assert_int_eq (s_count (self, sql), 1);
    zstr_free (&sql);
    //  Again: nothing dead to replay, skipped, no audit row
    args = zsys_sprintf ("{\"tenant\": \"t1\", \"job_ids\": [%s],"
                         " \"reason\": \"twice\"}", id1);
    response = s_admin_json (admin, 72, "replay.confirm", args);
    zstr_free (&args);
    ids = s_result_ids (response, "skipped");
    ck_assert_str_eq (ids, id1);
    free (ids);
    cw_msg_destroy (&response);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.audit_log"),
                      1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE state = 'dead'"), 2);
    char *line = s_log_line (self, "replayed");
    ck_assert_ptr_nonnull (line);
    free (line);

    //  Discard: the customer's dead job leaves the dead letters, stays
    //  in the table, and the job parked behind it runs
    s_admin_malformed (admin, 80, "dlq.discard",
                       "{\"tenant\": \"t1\", \"job_ids\": [1]}",
                       "args.reason");
    args = zsys_sprintf ("{\"tenant\": \"t1\", \"job_ids\": [%s, %s],"
                         " \"reason\": \"customer deleted\"}", id3, id4);
    response = s_admin_json (admin, 81, "dlq.discard", args);
    zstr_free (&args);
    ids = s_result_ids (response, "discarded");
    ck_assert_str_eq (ids, id3);
    free (ids);
    ids = s_result_ids (response, "skipped");
    ck_assert_str_eq (ids, id4);
    free (ids);
    cw_msg_destroy (&response);
    order_count = 0;
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs"
                          " WHERE state = 'done' AND tenant = 't1'", 3,
            order, &order_count);
    ck_assert_int_eq (order_count, 1);
    ck_assert_int_eq (order [0], 5);
    sql = zsys_sprintf ("SELECT state || ' ' || dead_reason || ' ' || attempts"
                        "  FROM erp_mw.jobs WHERE id = %s", id3);
    cw_fixture_sql_eq (self->uri, sql, "discarded exhausted 3");
    zstr_free (&sql);
    sql = zsys_sprintf ("SELECT count(*) FROM erp_mw.audit_log"
                        " WHERE action = 'discard' AND actor = 'admin:%s'"
                        "   AND detail ->> 'reason' = 'customer deleted'"
                        "   AND detail -> 'discarded' = '[%s]'::jsonb",
                        key, id3);
    ck_assert_int_eq (s_count (self, sql), 1);
    zstr_free (&sql);
    response = s_admin_json (admin, 82, "dlq.list", "{\"tenant\": \"t1\"}");
    ids = s_result_ids (response, "jobs");
    ck_assert_str_eq (ids, "");
    free (ids);
    cw_msg_destroy (&response);
    //  The chain of the two audit rows holds
    cw_fixture_sql_eq (self->uri, "SELECT checked || ' ' ||"
                                  " (first_broken IS NULL)"
                                  "  FROM erp_mw.audit_verify ()", "2 true");
    free (id1);
    free (id3);
    free (id4);
    zsock_destroy (&worker);
    zsock_destroy (&admin);
    zcert_destroy (&operator);
    s_fixture_destroy (&self);
}
END_TEST

//  replay/rate: replayed jobs fall due that many per second, in id
//  order, so a large replay reaches the ERP at a bounded pace even with
//  no target cap. Five at 2/s: due now, +0.5 s, ... +2 s.
START_TEST (test_replay_paced)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    const char *paced [] = { "CW_BROKER_REPLAY_RATE=2", NULL };
    s_broker_start (self, paced);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                 "  payload, state, dead_reason, attempts, finished_at)"
                 " SELECT 'nobody.serves', 't1', 'pace-' || n, '{}', 'dead',"
                 "   'exhausted', 3, now () FROM generate_series (1, 5) n");
    char *ids = cw_test_sql_value (self->uri,
        "SELECT string_agg (id::text, ',' ORDER BY id) FROM erp_mw.jobs");
    zsock_t *admin = s_peer_new (self, operator);
    char *args = zsys_sprintf ("{\"tenant\": \"t1\", \"job_ids\": [%s],"
                               " \"reason\": \"paced\"}", ids);
    cw_msg_t *response = s_admin_json (admin, 1, "replay.confirm", args);
    zstr_free (&args);
    char *replayed = s_result_ids (response, "replayed");
    ck_assert_str_eq (replayed, ids);
    free (replayed);
    cw_msg_destroy (&response);
    //  Half a second apart, in id order, the first now
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM (SELECT next_run_at - lag (next_run_at)"
        "   OVER (ORDER BY id) AS gap FROM erp_mw.jobs) g"
        " WHERE gap BETWEEN interval '499 ms' AND interval '501 ms'"), 4);
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM erp_mw.jobs WHERE state = 'ready'"
        "   AND next_run_at <= now () + interval '100 ms'"), 1);
    free (ids);
    zsock_destroy (&admin);
    zcert_destroy (&operator);
    s_fixture_destroy (&self);
}
END_TEST

//  slo: the contract's SLIs from the job rows finished since a time:
//  per flow, over the sync flows, over all; latency percentiles from
//  produced_at to finished_at; the retry-to-success rate; the oldest done
//  job left (retention).
START_TEST (test_slo)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    s_broker_start (self, NULL);
    //  customer.upsert: ten done in 1..10 s; order.create: two done on
    //  their second attempt in 30 s, one dead after three; http.generic:
    //  one done in 500 ms; and one done three days ago
    s_sql (self,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "  state, attempts, produced_at, finished_at)"
        " SELECT 'customer.upsert', 't1', 'slo-c' || n, '{}'::jsonb, 'done', 1,"
        "   now () - n * interval '1 second', now ()"
        "   FROM generate_series (1, 10) n"
        " UNION ALL SELECT 'order.create', 't1', 'slo-o' || n, '{}', 'done',"
        "   2, now () - interval '30 seconds', now ()"
        "   FROM generate_series (1, 2) n"
        " UNION ALL SELECT 'http.generic', 't1', 'slo-h', '{}', 'done', 1,"
        "   now () - interval '500 milliseconds', now ()"
        " UNION ALL SELECT 'http.generic', 't1', 'slo-old', '{}', 'done', 1,"
        "   now () - interval '3 days 1 second', now () - interval '3 days'");
    s_sql (self,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "  state, dead_reason, attempts, produced_at, finished_at)"
        " VALUES ('order.create', 't1', 'slo-d', '{}', 'dead', 'exhausted',"
        "   3, now () - interval '1 minute', now ())");
    char *since = cw_test_sql_value (self->uri,
        "SELECT to_char ((now () - interval '1 hour') AT TIME ZONE 'UTC',"
        "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
    zsock_t *admin = s_peer_new (self, operator);
    char *args = zsys_sprintf ("{\"since\": \"%s\"}", since);
    cw_msg_t *response = s_admin_json (admin, 1, "slo", args);
    zstr_free (&args);
    ck_assert_ptr_null (response->response.error_code);
    json_t *result = response->response.result;
    json_t *flows = json_object_get (result, "flows");
    ck_assert_int_eq (json_array_size (flows), 3);
    json_t *customer = NULL, *order = NULL;
    for (size_t index = 0; index < json_array_size (flows); index++) {
        json_t *entry = json_array_get (flows, index);
        const char *flow = json_string_value (json_object_get (entry, "flow"));
        if (streq (flow, "customer.upsert"))
            customer = entry;
        if (streq (flow, "order.create"))
            order = entry;
    }
    ck_assert_ptr_nonnull (customer);
    ck_assert_ptr_nonnull (order);
    ck_assert_int_eq (json_integer_value (json_object_get (customer, "done")),
                      10);
    //  percentile_cont over 1,000 ... 10,000 msec
    ck_assert_int_eq (json_integer_value (json_object_get (customer,
                          "latency_p50_ms")), 5500);
    ck_assert_int_eq (json_integer_value (json_object_get (customer,
                          "latency_p95_ms")), 9550);
    ck_assert_int_eq (json_integer_value (json_object_get (order, "dead")), 1);
    ck_assert_int_eq (json_integer_value (json_object_get (order, "retried")),
                      3);
    ck_assert_int_eq (json_integer_value (json_object_get (order,
                          "retried_done")), 2);
    json_t *sync = json_object_get (result, "sync");
    ck_assert_int_eq (json_integer_value (json_object_get (sync, "done")), 12);
    ck_assert_int_eq (json_integer_value (json_object_get (sync,
                          "latency_p95_ms")), 30000);
    json_t *all = json_object_get (result, "all");
    ck_assert_int_eq (json_integer_value (json_object_get (all, "done")), 13);
    ck_assert_int_eq (json_integer_value (json_object_get (all, "dead")), 1);
    const char *oldest = json_string_value (json_object_get (result,
                                                              "oldest_done_at"));
    ck_assert_msg (oldest && cw_envelope_time_valid (oldest), "%s", oldest);
    ck_assert_int_eq (json_integer_value (json_object_get (json_object_get (
                          result, "targets"), "sync_latency_p95_ms")), 120000);
    cw_msg_destroy (&response);
    //  One flow; and a window with nothing in it
    args = zsys_sprintf ("{\"since\": \"%s\", \"flow\": \"http.generic\"}",
                         since);
    response = s_admin_json (admin, 2, "slo", args);
    zstr_free (&args);
    flows = json_object_get (response->response.result, "flows");
    ck_assert_int_eq (json_array_size (flows), 1);
    ck_assert_int_eq (json_integer_value (json_object_get (
                          json_array_get (flows, 0), "latency_p95_ms")), 500);
    cw_msg_destroy (&response);
    response = s_admin_json (admin, 3, "slo",
                             "{\"since\": \"2000-01-01T00:00:00Z\","
                             " \"until\": \"2000-01-02T00:00:00Z\"}");
    ck_assert_int_eq (json_array_size (json_object_get (
                          response->response.result, "flows")), 0);
    ck_assert (json_is_null (json_object_get (json_object_get (
        response->response.result, "all"), "latency_p95_ms")));
    cw_msg_destroy (&response);
    s_admin_malformed (admin, 4, "slo", "{}", "args.since");
    s_admin_malformed (admin, 5, "slo", "{\"since\": \"yesterday\"}",
                       "args.since");
    s_admin_malformed (admin, 6, "slo",
                       "{\"since\": \"2000-01-01T00:00:00Z\", \"window\": 1}",
                       "args.window");
    free (since);
    zsock_destroy (&admin);
    zcert_destroy (&operator);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_publish)
{
    fixture_t *self = s_fixture_new ();
    zcert_t *operator = s_operator_cert (self);
    s_broker_start (self, NULL);
    zsock_t *relay = s_peer_new (self, self->relay);
    for (int round = 0; round < 2; round++) {
        cw_msg_t *publish = cw_msg_new (CW_MSG_RELAY, CW_MSG_PUBLISH);
        publish->publish.batch_id = 7;
        publish->publish.island = strdup ("shop");
        const char *keys [] = { "ev-1", "ev-2" };
        for (int index = 0; index < 2; index++) {
            cw_envelope_t *envelope = cw_envelope_new ();
            cw_envelope_set_id (envelope, keys [index]);
            cw_envelope_set_source (envelope, "shop");
            cw_envelope_set_type (envelope, "order.status.changed.v1");
            cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123Z");
            cw_envelope_set_tenant_id (envelope, "t1");
            cw_envelope_set_correlation_id (envelope, "c1");
            cw_envelope_set_idempotency_key (envelope, keys [index]);
            json_t *data = index == 0
                ? json_pack ("{s:s, s:s, s:i, s:s, s:s, s:s}", "tenantId", "t1",
                             "orderId", "O-1", "version", 2,
                             "previousStatus", "confirmed", "status", "shipped",
                             "changedAt", "2025-01-31T10:02:03.123Z")
                : json_pack ("{s:s}", "orderId", "O-1");
            cw_envelope_set_data (envelope, &data);
            cw_msg_event_add (publish, &envelope);
        }
        s_peer_send (relay, &publish);
        cw_msg_t *ack = s_peer_recv (relay, WAIT_MSEC);
        ck_assert_ptr_nonnull (ack);
        ck_assert_int_eq (ack->command, CW_MSG_ACK);
        ck_assert_int_eq (ack->ack.batch_id, 7);
        ck_assert_int_eq (ack->ack.rejected_count, 1);
        ck_assert_str_eq (ack->ack.rejected [0].key, "ev-2");
        if (round == 0) {
            ck_assert_int_eq (ack->ack.accepted_count, 1);
            ck_assert_int_eq (ack->ack.duplicates_count, 0);
        }
        else {
            ck_assert_int_eq (ack->ack.accepted_count, 0);
            ck_assert_int_eq (ack->ack.duplicates_count, 1);
            ck_assert_str_eq (ack->ack.duplicates [0], "ev-1");
        }
        cw_msg_destroy (&ack);
    }
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE idempotency_key = 'ev-1'"
                                     "   AND flow = 'order.status'"
                                     "   AND ordering_key = 't1:O-1'"), 1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox i"
                                     " JOIN erp_mw.jobs j ON j.id = i.job_id"
                                     " WHERE i.idempotency_key = 'ev-1'"), 1);
    //  No worker serves order.status: after a worker's liveness (200 ms x
    //  3) the broker hands the job back, ready, no attempt spent
    const char *back = "SELECT count(*) FROM erp_mw.jobs"
                       " WHERE idempotency_key = 'ev-1' AND state = 'ready'"
                       "   AND lease_owner IS NULL AND attempts = 0";
    int64_t deadline = zclock_mono () + WAIT_MSEC;
    while (s_count (self, back) == 0 && zclock_mono () < deadline)
        zclock_sleep (50);
    ck_assert_int_eq (s_count (self, back), 1);
    //  The admin status counts it
    zsock_t *admin = s_peer_new (self, operator);
    cw_msg_t *request = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
    request->request.request_id = 1;
    request->request.op = strdup ("status");
    request->request.args = json_object ();
    s_peer_send (admin, &request);
    cw_msg_t *response = s_peer_recv (admin, WAIT_MSEC);
    ck_assert_ptr_nonnull (response);
    ck_assert_int_eq (response->command, CW_MSG_RESPONSE);
    ck_assert_ptr_null (response->response.error_code);
    ck_assert_int_eq (json_integer_value (json_object_get (
                          response->response.result, "orphans_released")),
                      1);
    ck_assert_int_ge (json_integer_value (json_object_get (
                          response->response.result, "released")),
                      1);
    cw_msg_destroy (&response);
    zsock_destroy (&admin);
    zcert_destroy (&operator);
    zsock_destroy (&relay);
    s_fixture_destroy (&self);
}
END_TEST

//  An order.status.changed.v1 event of order for tenant t1.
static cw_envelope_t *
s_status_event (const char *key, const char *order, int version)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, key);
    cw_envelope_set_source (envelope, "shop");
    cw_envelope_set_type (envelope, "order.status.changed.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123Z");
    cw_envelope_set_tenant_id (envelope, "t1");
    cw_envelope_set_correlation_id (envelope, "c1");
    cw_envelope_set_idempotency_key (envelope, key);
    json_t *data = json_pack ("{s:s, s:s, s:i, s:s, s:s, s:s}", "tenantId", "t1",
                              "orderId", order, "version", version,
                              "previousStatus", "confirmed", "status", "shipped",
                              "changedAt", "2025-01-31T10:02:03.123Z");
    cw_envelope_set_data (envelope, &data);
    return envelope;
}

//  Publishes keys (events of order, versions 1, 2, ...) and waits for
//  the ACK accepting them all.
static void
s_publish_status (zsock_t *relay, int64_t batch_id, const char *order,
                  const char *const *keys, int count)
{
    cw_msg_t *publish = cw_msg_new (CW_MSG_RELAY, CW_MSG_PUBLISH);
    publish->publish.batch_id = batch_id;
    publish->publish.island = strdup ("shop");
    for (int index = 0; index < count; index++) {
        cw_envelope_t *envelope = s_status_event (keys [index], order,
                                                  index + 1);
        cw_msg_event_add (publish, &envelope);
    }
    s_peer_send (relay, &publish);
    cw_msg_t *ack = s_peer_recv (relay, WAIT_MSEC);
    ck_assert_ptr_nonnull (ack);
    ck_assert_int_eq (ack->command, CW_MSG_ACK);
    ck_assert_int_eq (ack->ack.accepted_count, count);
    cw_msg_destroy (&ack);
}

//  An event whose msgpack fits but whose canonical JSON (the jobs.payload
//  text) is over the 1 MiB limit: 60,000 times 0.1 is 540 kB of msgpack
//  and 1.2 MB of JSON. It is rejected alone, naming the payload; the rest
//  of the batch is accepted. Before, the whole batch failed in the store
//  and no ACK came, at every PUBLISH of it, for ever.
START_TEST (test_publish_payload_too_large)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *relay = s_peer_new (self, self->relay);
    cw_msg_t *publish = cw_msg_new (CW_MSG_RELAY, CW_MSG_PUBLISH);
    publish->publish.batch_id = 3;
    publish->publish.island = strdup ("shop");
    cw_envelope_t *big = s_status_event ("big-1", "O-1", 1);
    json_t *data = json_deep_copy (cw_envelope_data (big));
    json_t *blob = json_array ();
    for (int index = 0; index < 60000; index++)
        json_array_append_new (blob, json_real (0.1));
    json_object_set_new (data, "blob", blob);
    cw_envelope_set_data (big, &data);
    cw_msg_event_add (publish, &big);
    cw_envelope_t *small = s_status_event ("small-1", "O-2", 1);
    cw_msg_event_add (publish, &small);
    s_peer_send (relay, &publish);
    cw_msg_t *ack = s_peer_recv (relay, WAIT_MSEC);
    ck_assert_msg (ack != NULL, "no ACK for the batch");
    ck_assert_int_eq (ack->command, CW_MSG_ACK);
    ck_assert_int_eq (ack->ack.batch_id, 3);
    ck_assert_int_eq (ack->ack.accepted_count, 1);
    ck_assert_str_eq (ack->ack.accepted [0], "small-1");
    ck_assert_int_eq (ack->ack.rejected_count, 1);
    ck_assert_str_eq (ack->ack.rejected [0].key, "big-1");
    ck_assert_msg (strstr (ack->ack.rejected [0].reason, "payload"), "%s",
                   ack->ack.rejected [0].reason);
    cw_msg_destroy (&ack);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"), 1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"
                                     " WHERE idempotency_key = 'small-1'"), 1);
    zsock_destroy (&relay);
    s_fixture_destroy (&self);
}
END_TEST

//  An event type whose rules do not cover orderId, carrying one no index
//  can hold (3,000 bytes): the broker orders events by it, so it is
//  rejected alone, naming the field. Before, the ordering key failed the
//  insert ("index row size exceeds ... maximum") and with it the whole
//  PUBLISH, at every try, with no ACK.
START_TEST (test_publish_ordering_key_refused)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *relay = s_peer_new (self, self->relay);
    cw_msg_t *publish = cw_msg_new (CW_MSG_RELAY, CW_MSG_PUBLISH);
    publish->publish.batch_id = 4;
    publish->publish.island = strdup ("shop");
    cw_envelope_t *customer = cw_envelope_new ();
    cw_envelope_set_id (customer, "cust-1");
    cw_envelope_set_source (customer, "shop");
    cw_envelope_set_type (customer, "customer.upsert.requested.v1");
    cw_envelope_set_time (customer, "2025-01-31T10:02:03.123Z");
    cw_envelope_set_tenant_id (customer, "t1");
    cw_envelope_set_correlation_id (customer, "c1");
    cw_envelope_set_idempotency_key (customer, "cust-1");
    char *long_id = (char *) malloc (3001);
    ck_assert_ptr_nonnull (long_id);
    //  Not compressible, or the index entry would fit after all
    uint32_t seed = 12345;
    for (int at = 0; at < 3000; at++) {
        seed = seed * 1103515245u + 12345u;
        long_id [at] = "abcdefghijklmnopqrstuvwxyz0123456789" [(seed >> 16) % 36];
    }
    long_id [3000] = 0;
    json_t *data = json_pack (
        "{s:s, s:s, s:i, s:[s], s:{s:s, s:s, s:s}, s:s}", "tenantId", "t1",
        "customerId", "C-1", "version", 1, "changedFields", "name",
        "customer", "name", "Ada", "email", "ada@example.org", "countryCode",
        "GB", "orderId", long_id);
    free (long_id);
    ck_assert_ptr_nonnull (data);
    cw_envelope_set_data (customer, &data);
    cw_msg_event_add (publish, &customer);
    cw_envelope_t *small = s_status_event ("small-2", "O-2", 1);
    cw_msg_event_add (publish, &small);
    s_peer_send (relay, &publish);
    cw_msg_t *ack = s_peer_recv (relay, WAIT_MSEC);
    ck_assert_msg (ack != NULL, "no ACK for the batch");
    ck_assert_int_eq (ack->command, CW_MSG_ACK);
    ck_assert_int_eq (ack->ack.accepted_count, 1);
    ck_assert_str_eq (ack->ack.accepted [0], "small-2");
    ck_assert_int_eq (ack->ack.rejected_count, 1);
    ck_assert_str_eq (ack->ack.rejected [0].key, "cust-1");
    ck_assert_msg (strstr (ack->ack.rejected [0].reason, "data.orderId"),
                   "%s", ack->ack.rejected [0].reason);
    cw_msg_destroy (&ack);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"), 1);
    zsock_destroy (&relay);
    s_fixture_destroy (&self);
}
END_TEST

//  The broker.log line of event (the first), or NULL; caller frees.
static char *
s_log_line (fixture_t *self, const char *event)
{
    char *log_path = zsys_sprintf ("%s/broker.log", self->tmp);
    char *log = cw_fixture_slurp (log_path);
    zstr_free (&log_path);
    char *needle = zsys_sprintf ("\"event\":\"%s\"", event);
    const char *found = log ? strstr (log, needle) : NULL;
    char *line = NULL;
    if (found) {
        const char *start = found;
        while (start > log && start [-1] != '\n')
            start--;
        const char *end = strchr (found, '\n');
        line = strndup (start, end ? (size_t) (end - start) : strlen (start));
    }
    zstr_free (&needle);
    free (log);
    return line;
}

//  A PUBLISH for another island is refused, and the refusal is logged
//  with the peer's address (PROTOCOL.md §8), as a command outside the
//  role is. Before, that forbidden line had no address.
START_TEST (test_forbidden_island_logged)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *relay = s_peer_new (self, self->relay);
    cw_msg_t *publish = cw_msg_new (CW_MSG_RELAY, CW_MSG_PUBLISH);
    publish->publish.batch_id = 1;
    publish->publish.island = strdup ("erp");
    cw_envelope_t *envelope = s_status_event ("other-island", "O-1", 1);
    cw_msg_event_add (publish, &envelope);
    s_peer_send (relay, &publish);
    cw_msg_t *answer = s_peer_recv (relay, WAIT_MSEC);
    ck_assert_ptr_nonnull (answer);
    ck_assert_int_eq (answer->command, CW_MSG_ERROR);
    ck_assert_str_eq (answer->error.code, "forbidden");
    cw_msg_destroy (&answer);
    char *line = NULL;
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (!line && cw_test_now_msec () < deadline) {
        line = s_log_line (self, "forbidden");
        if (!line)
            zclock_sleep (50);
    }
    ck_assert_ptr_nonnull (line);
    ck_assert_msg (strstr (line, "\"peer_address\":\"127.0.0.1\""), "%s", line);
    free (line);
    zsock_destroy (&relay);
    s_fixture_destroy (&self);
}
END_TEST

//  10 malformed messages in a row from a relay: DISCONNECT under the
//  relay's protocol id, which the relay understands. Before, the broker
//  sent it under CWW01, which a relay drops as malformed, so it never
//  learned that its session had ended.
START_TEST (test_malformed_disconnects_relay)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *relay = s_peer_new (self, self->relay);
    for (int index = 0; index < 10; index++) {
        zstr_sendm (relay, "CWR01");
        zstr_sendm (relay, "\x10");
        zstr_send (relay, "not msgpack");
    }
    cw_msg_t *answer = s_peer_recv (relay, WAIT_MSEC);
    ck_assert_ptr_nonnull (answer);
    ck_assert_int_eq (answer->command, CW_MSG_DISCONNECT);
    ck_assert_msg (answer->protocol == CW_MSG_RELAY,
                   "DISCONNECT to a relay under protocol %d", answer->protocol);
    cw_msg_destroy (&answer);
    zsock_destroy (&relay);
    s_fixture_destroy (&self);
}
END_TEST

//  Published events of one order run one at a time, in order; when one
//  goes dead its successors, published with it or later, are never sent
//  (they wait, ready, parked behind it). Before, the broker leased every
//  published job to itself at once and sent a successor of a dead job.
START_TEST (test_publish_ordering)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "order.status", 10);
    zsock_t *relay = s_peer_new (self, self->relay);
    const char *ok_keys [] = {"ok-1", "ok-2", "ok-3"};
    const char *bad_keys [] = {"bad-1", "bad-2", "bad-3"};
    s_publish_status (relay, 1, "O-8", ok_keys, 3);
    s_publish_status (relay, 2, "O-9", bad_keys, 3);
    //  Answer: ok for O-8, rejected for bad-1; nothing else of O-9 may come
    char seen [8][16];
    int seen_count = 0;
    long long deadline = cw_test_now_msec () + 3000;
    while (cw_test_now_msec () < deadline) {
        cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
        s_peer_send (worker, &heartbeat);   //  Stay alive (liveness 600 ms)
        cw_msg_t *msg = s_peer_recv (worker, 100);
        if (msg && msg->command == CW_MSG_JOB) {
            const char *key = cw_envelope_idempotency_key (msg->job.envelope);
            ck_assert_int_lt (seen_count, 8);
            snprintf (seen [seen_count++], sizeof (seen [0]), "%s", key);
            s_answer (worker, msg, streq (key, "bad-1") ? "rejected" : "ok");
        }
        cw_msg_destroy (&msg);
    }
    //  O-8 in order; of O-9 only its head
    int ok_next = 0;
    for (int index = 0; index < seen_count; index++) {
        if (strncmp (seen [index], "ok-", 3) == 0) {
            ck_assert_str_eq (seen [index], ok_keys [ok_next]);
            ok_next++;
        }
        else
            ck_assert_str_eq (seen [index], "bad-1");
    }
    ck_assert_int_eq (ok_next, 3);
    ck_assert_int_eq (seen_count, 4);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE ordering_key = 't1:O-8'"
                                     "   AND state = 'done'"), 3);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE idempotency_key = 'bad-1'"
                                     "   AND state = 'dead'"), 1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE idempotency_key IN ('bad-2', 'bad-3')"
                                     "   AND state = 'ready' AND attempts = 0"
                                     "   AND lease_owner IS NULL"), 2);
    //  Published later, behind the dead head: inserted ready, never sent
    const char *late [] = {"bad-4"};
    s_publish_status (relay, 3, "O-9", late, 1);
    deadline = cw_test_now_msec () + 1500;
    while (cw_test_now_msec () < deadline) {
        cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
        s_peer_send (worker, &heartbeat);
        cw_msg_t *msg = s_peer_recv (worker, 100);
        ck_assert_msg (msg == NULL || msg->command != CW_MSG_JOB,
                       "job %s, behind a dead head, was sent",
                       msg ? cw_envelope_idempotency_key (msg->job.envelope)
                           : "");
        cw_msg_destroy (&msg);
    }
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE idempotency_key = 'bad-4'"
                                     "   AND state = 'ready'"), 1);
    zsock_destroy (&relay);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_sigterm_releases)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 5);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " SELECT 'http.generic', 't1', 'd-' || n, '{}'"
                 "   FROM generate_series (1, 20) AS n");
    //  Take jobs, answer none: they are in flight at SIGTERM
    cw_msg_t *job = s_worker_recv (worker, WAIT_MSEC);
    ck_assert_ptr_nonnull (job);
    ck_assert_int_eq (job->command, CW_MSG_JOB);
    cw_msg_destroy (&job);
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    //  The worker is told DISCONNECT
    bool disconnected = false;
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (!disconnected && cw_test_now_msec () < deadline) {
        cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
        s_peer_send (worker, &heartbeat);
        cw_msg_t *msg = s_peer_recv (worker, 100);
        disconnected = msg && msg->command == CW_MSG_DISCONNECT;
        cw_msg_destroy (&msg);
    }
    ck_assert (disconnected);
    int status = 0;
    ck_assert_msg (cw_test_wait_exit (self->pid, WAIT_MSEC, &status) == 1,
                   "the broker did not end its drain");
    self->pid = 0;
    ck_assert (WIFEXITED (status));
    ck_assert_int_eq (WEXITSTATUS (status), 0);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE state = 'leased'"), 0);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE state = 'ready' AND attempts = 0"), 20);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

//  SIGTERM while the database refuses every connection: the result in
//  hand cannot be recorded nor the leases released. The broker gives up
//  broker/drain plus a 5 s grace after the signal and exits 1 with
//  drain_unfinished (the leases expire, the jobs run again under the same
//  keys). Before, it waited for the database for ever.
START_TEST (test_drain_database_down)
{
    fixture_t *self = s_fixture_new ();
    const char *drain[] = {"CW_BROKER_DRAIN=1s", NULL};
    s_broker_start (self, drain);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 1);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " VALUES ('http.generic', 't1', 'down-1', '{}')");
    cw_msg_t *job = s_worker_recv (worker, WAIT_MSEC);
    ck_assert_ptr_nonnull (job);
    ck_assert_int_eq (job->command, CW_MSG_JOB);
    cw_fixture_db_refuse (self->uri, true);
    s_answer (worker, job, "ok");
    cw_msg_destroy (&job);
    long long signalled = cw_test_now_msec ();
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    int status = 0;
    bool done = cw_test_wait_exit (self->pid, WAIT_MSEC, &status) == 1;
    long long took = cw_test_now_msec () - signalled;
    cw_fixture_db_refuse (self->uri, false);
    ck_assert_msg (done, "broker still draining after %d ms", WAIT_MSEC);
    self->pid = 0;
    ck_assert (WIFEXITED (status));
    ck_assert_int_eq (WEXITSTATUS (status), 1);
    ck_assert_int_ge (took, 1000 + 5000);
    char *line = s_log_line (self, "drain_unfinished");
    ck_assert_ptr_nonnull (line);
    free (line);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

//  SIGHUP reloads the allowed keys (docs/security.md, key rotation): a
//  key installed after start is served once the broker got SIGHUP, and
//  the broker keeps running. Before, SIGHUP had its default action and
//  killed the broker on the spot (no drain, leases left to expire).
START_TEST (test_sighup_reloads_keys)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    zcert_t *late = cw_curve_cert_new ("worker", "late");
    cw_fixture_cert_save (self->tmp, late, "peers", "late");
    ck_assert_int_eq (kill (self->pid, SIGHUP), 0);
    cw_msg_t *answer = NULL;
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (!answer && cw_test_now_msec () < deadline) {
        int status = 0;
        if (waitpid (self->pid, &status, WNOHANG) == self->pid) {
            self->pid = 0;
            ck_abort_msg ("broker ended on SIGHUP (status %d)", status);
        }
        //  A fresh connection each turn: a refused one is not retried
        zsock_t *worker = s_peer_new (self, late);
        cw_msg_t *credit = cw_msg_new (CW_MSG_WORKER, CW_MSG_CREDIT);
        credit->credit.credit = 1;
        s_peer_send (worker, &credit);
        answer = s_peer_recv (worker, 300);
        zsock_destroy (&worker);
    }
    ck_assert_ptr_nonnull (answer);
    ck_assert_int_eq (answer->command, CW_MSG_ERROR);
    ck_assert_str_eq (answer->error.code, "unknown_session");
    cw_msg_destroy (&answer);
    //  Still running: SIGTERM drains and exits 0
    int status = cw_test_stop (self->pid, WAIT_MSEC);
    self->pid = 0;
    ck_assert (WIFEXITED (status));
    ck_assert_int_eq (WEXITSTATUS (status), 0);
    zcert_destroy (&late);
    s_fixture_destroy (&self);
}
END_TEST

//  libfaketime's library for threaded programs, or NULL when it is not
//  installed (scripts/deps installs it).
static const char *
s_faketime_library (void)
{
    static const char *const paths [] = {
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
        NULL };
    for (size_t index = 0; paths [index]; index++)
        if (access (paths [index], R_OK) == 0)
            return paths [index];
    return NULL;
}

//  One run of test_clock_skew: the broker's wall clock offset by skew
//  (libfaketime: "-60" is a minute behind the database's host, "+60" a
//  minute ahead), 3 s leases, a worker that takes 600 ms per job and
//  asks one at a time, so the jobs claimed ahead of it wait up to 4.2 s
//  and their leases must be renewed. Every job runs once; no lease in
//  the table is ever seen expired while its job is held or running.
static void
s_clock_skew_run (const char *skew)
{
    const char *library = s_faketime_library ();
    ck_assert_msg (library != NULL,
                   "libfaketime is not installed (run scripts/deps)");
    fixture_t *self = s_fixture_new ();
    char *preload = zsys_sprintf ("LD_PRELOAD=%s", library);
    char *faketime = zsys_sprintf ("FAKETIME=%s", skew);
    const char *asan = getenv ("ASAN_OPTIONS");
    //  ASan wants to be the first library; libfaketime is preloaded
    char *asan_options = zsys_sprintf ("ASAN_OPTIONS=%s%sverify_asan_link_order=0",
                                       asan ? asan : "", asan ? ":" : "");
    const char *extra [] = {
        preload, faketime, "FAKETIME_DONT_FAKE_MONOTONIC=1", asan_options,
        "CW_BROKER_LEASE=3s", "CW_BROKER_RENEW_MARGIN=1500ms",
        "CW_BROKER_JOB_DEADLINE=1400ms", NULL };
    time_t started = time (NULL);
    s_broker_start (self, extra);
    char *log_path = zsys_sprintf ("%s/broker.log", self->tmp);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 1);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " SELECT 'http.generic', 't1', 'skew-' || n,"
                 "        jsonb_build_object ('want', 'ok', 'seq', n)"
                 "   FROM generate_series (1, 8) AS n");
    int64_t seen [8] = { 0 };
    size_t seen_count = 0;
    long expired_seen = 0;
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (cw_test_now_msec () < deadline
    &&     s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                          " WHERE state = 'done'") < 8) {
        long expired = s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                      " WHERE state = 'leased'"
                                      "   AND lease_expires_at < now ()");
        if (expired > expired_seen)
            expired_seen = expired;
        cw_msg_t *job = s_peer_recv (worker, 100);
        if (!job) {
            cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
            s_peer_send (worker, &heartbeat);
            continue;
        }
        ck_assert_int_eq (job->command, CW_MSG_JOB);
        for (size_t index = 0; index < seen_count; index++)
            ck_assert_msg (seen [index] != job->job.job_id,
                           "skew %s: job %lld sent twice", skew,
                           (long long) job->job.job_id);
        ck_assert_msg (seen_count < 8, "skew %s: a ninth JOB", skew);
        seen [seen_count++] = job->job.job_id;
        //  600 ms of work, heartbeating
        long long done_at = cw_test_now_msec () + 600;
        while (cw_test_now_msec () < done_at) {
            cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
            s_peer_send (worker, &heartbeat);
            zclock_sleep (100);
            expired = s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE state = 'leased'"
                                     "   AND lease_expires_at < now ()");
            if (expired > expired_seen)
                expired_seen = expired;
        }
        s_answer (worker, job, "ok");
        cw_msg_destroy (&job);
    }
    ck_assert_msg (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                  " WHERE state = 'done'") == 8,
                   "skew %s: %zu jobs sent, not all done", skew, seen_count);
    ck_assert_int_eq (seen_count, 8);
    ck_assert_msg (expired_seen == 0, "skew %s: %ld leases seen expired in"
                   " the table while held", skew, expired_seen);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"),
                      8);
    //  The broker did run with the skewed wall clock: its log's first
    //  time stamp is about skew seconds off ours
    char *log = cw_fixture_slurp (log_path);
    ck_assert_ptr_nonnull (log);
    const char *ts = strstr (log, "\"ts\":\"");
    ck_assert_ptr_nonnull (ts);
    struct tm stamp;
    memset (&stamp, 0, sizeof (stamp));
    ck_assert_ptr_nonnull (strptime (ts + 6, "%Y-%m-%dT%H:%M:%S", &stamp));
    long long offset = (long long) timegm (&stamp) - (long long) started;
    long long wanted = strtoll (skew, NULL, 10);
    ck_assert_msg (offset > wanted - 15 && offset < wanted + 15,
                   "skew %s: the broker's log is %lld s off", skew, offset);
    free (log);
    zstr_free (&log_path);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
    zstr_free (&asan_options);
    zstr_free (&faketime);
    zstr_free (&preload);
}

//  Counts the HEARTBEATs the broker sends worker within msec, while the
//  worker heartbeats too (so it stays alive).
static int
s_heartbeats_within (zsock_t *worker, int msec)
{
    int heartbeats = 0;
    long long deadline = cw_test_now_msec () + msec;
    while (cw_test_now_msec () < deadline) {
        cw_msg_t *mine = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
        s_peer_send (worker, &mine);
        zmq_pollitem_t item = { zsock_resolve (worker), 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 100) != 1)
            continue;
        zmsg_t *in = zmsg_recv (worker);
        ck_assert_ptr_nonnull (in);
        cw_msg_frame_t frames [CW_MSG_FRAMES];
        size_t count = 0;
        for (zframe_t *frame = zmsg_first (in); frame && count < CW_MSG_FRAMES;
             frame = zmsg_next (in)) {
            frames [count].data = zframe_data (frame);
            frames [count].size = zframe_size (frame);
            count++;
        }
        cw_msg_t *msg = cw_msg_decode (frames, count, NULL, NULL, 0);
        zmsg_destroy (&in);
        if (msg && msg->command == CW_MSG_HEARTBEAT)
            heartbeats++;
        cw_msg_destroy (&msg);
    }
    return heartbeats;
}

//  The broker's wall clock is stepped an hour back while it runs (NTP
//  correcting a clock that ran ahead, a VM resumed from a snapshot): it
//  goes on heartbeating its workers and dispatching jobs; stepped an hour
//  forward, it does not count its worker lost. Before, its timers ran on
//  the wall clock: a step back stopped heartbeats and claims for the hour
//  (the workers then gave up on it), a step forward expired every worker
//  and lease at once.
START_TEST (test_clock_step)
{
    const char *library = s_faketime_library ();
    ck_assert_msg (library != NULL,
                   "libfaketime is not installed (run scripts/deps)");
    fixture_t *self = s_fixture_new ();
    char *step_path = zsys_sprintf ("%s/faketime", self->tmp);
    cw_fixture_write (step_path, "+0\n");
    char *preload = zsys_sprintf ("LD_PRELOAD=%s", library);
    char *step_file = zsys_sprintf ("FAKETIME_TIMESTAMP_FILE=%s", step_path);
    const char *asan = getenv ("ASAN_OPTIONS");
    char *asan_options = zsys_sprintf ("ASAN_OPTIONS=%s%sverify_asan_link_order=0",
                                       asan ? asan : "", asan ? ":" : "");
    const char *extra [] = {
        preload, step_file, "FAKETIME_NO_CACHE=1",
        "FAKETIME_DONT_FAKE_MONOTONIC=1", asan_options, NULL };
    s_broker_start (self, extra);
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 5);
    ck_assert_int_ge (s_heartbeats_within (worker, 600), 1);
    const char *steps [] = { "-3600\n", "+3600\n" };
    for (size_t index = 0; index < 2; index++) {
        cw_fixture_write (step_path, steps [index]);
        //  At 200 ms, a second holds about 5; one would do
        int heartbeats = s_heartbeats_within (worker, 1000);
        ck_assert_msg (heartbeats >= 2, "stepped %s: %d HEARTBEATs in 1 s",
                       steps [index], heartbeats);
        char *insert = zsys_sprintf (
            "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
            " VALUES ('http.generic', 't1', 'step-%zu', '{\"want\": \"ok\"}')",
            index);
        s_sql (self, insert);
        zstr_free (&insert);
        char *done = zsys_sprintf ("SELECT count(*) FROM erp_mw.jobs"
                                   " WHERE state = 'done'");
        s_work (worker, self, done, (long) index + 1, NULL, NULL);
        zstr_free (&done);
    }
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                                     " WHERE outcome = 'ok'"), 2);
    //  One session all along: the worker was never counted lost (a lost
    //  one is told unknown_session and sends READY again)
    char *log_path = zsys_sprintf ("%s/broker.log", self->tmp);
    char *log = cw_fixture_slurp (log_path);
    ck_assert_ptr_nonnull (log);
    int sessions = 0;
    for (const char *at = strstr (log, "\"event\":\"worker_ready\""); at;
         at = strstr (at + 1, "\"event\":\"worker_ready\""))
        sessions++;
    ck_assert_int_eq (sessions, 1);
    free (log);
    zstr_free (&log_path);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
    zstr_free (&asan_options);
    zstr_free (&step_file);
    zstr_free (&preload);
    zstr_free (&step_path);
}
END_TEST

//  The broker's host clock and the database's differ (hosts drift; NTP
//  is not everywhere): a minute behind or ahead, the broker still holds
//  its leases, renews them in time and runs each job once. Before, it
//  sent RENEW an expiry in its own clock, which the database and every
//  other broker's expire sweep read in theirs: a minute behind, every
//  renewed lease was already expired in the table; a minute ahead, a
//  claimed lease looked expired to the broker at once.
START_TEST (test_clock_skew)
{
    s_clock_skew_run ("-60");
    s_clock_skew_run ("+60");
}
END_TEST

//  Runs the broker with env (NULL-terminated, after the fixture's
//  certificate, peers and URI settings) and waits up to 10 s for it to
//  exit; returns its exit code (-1: still running, killed). The log
//  goes to dir/log_name.
static int
s_broker_exit_code (fixture_t *self, const char *const *extra,
                    const char *log_name)
{
    char *uri_path = zsys_sprintf ("%s/broker-uri", self->tmp);
    char *broker_uri = cw_test_uri_as (self->uri, "cw_broker");
    cw_fixture_write (uri_path, broker_uri);
    free (broker_uri);
    char *env [3] = {
        zsys_sprintf ("CW_BROKER_DB_URI_FILE=%s", uri_path),
        zsys_sprintf ("CW_BROKER_SERVER_CERT_FILE=%s/server/broker.secret",
                      self->tmp),
        zsys_sprintf ("CW_BROKER_SERVER_PEERS=%s/peers", self->tmp)
    };
    const char *envp [16] = { env [0], env [1], env [2] };
    size_t count = 3;
    for (size_t index = 0; extra [index] && count < 15; index++)
        envp [count++] = extra [index];
    char *program = cw_test_build_path ("broker/causeway-broker");
    const char *argv [] = { program, NULL };
    char *log = zsys_sprintf ("%s/%s", self->tmp, log_name);
    pid_t pid = cw_test_spawn (argv, envp, log);
    ck_assert_int_gt (pid, 0);
    int status = 0, code = -1;
    if (cw_test_wait_exit (pid, 10000, &status) == 1)
        code = WIFEXITED (status) ? WEXITSTATUS (status) : -1;
    else
        cw_test_kill (pid);
    for (int index = 0; index < 3; index++)
        zstr_free (&env [index]);
    zstr_free (&log);
    free (program);
    zstr_free (&uri_path);
    return code;
}

//  GET path on the broker's HTTP port until its status is want and its
//  body holds needle (or WAIT_MSEC passes); fails otherwise.
static void
s_http_until (int port, const char *path, long want, const char *needle)
{
    cw_test_reply_t reply;
    memset (&reply, 0, sizeof (reply));
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (true) {
        cw_test_http (port, "GET", path, NULL, NULL, 0, &reply);
        bool done = reply.status == want && reply.body
                 && strstr (reply.body, needle);
        if (done || cw_test_now_msec () > deadline) {
            ck_assert_msg (done, "GET %s: %ld %s, wanted %ld with %s", path,
                           reply.status, reply.body ? reply.body : "", want,
                           needle);
            cw_test_reply_free (&reply);
            return;
        }
        cw_test_reply_free (&reply);
        zclock_sleep (50);
    }
}

//  server/http: GET /healthz is 200 while the database answers and the
//  broker is not draining, 503 with the reason otherwise; GET /metrics
//  is the Prometheus text of the status counters. A bad server/http is
//  refused at start, naming the key.
START_TEST (test_http_health)
{
    fixture_t *self = s_fixture_new ();
    const char *bad [] = { "CW_BROKER_SERVER_HTTP=localhost:9464", NULL };
    ck_assert_int_eq (s_broker_exit_code (self, bad, "http-bad.log"), 2);
    char *bad_path = zsys_sprintf ("%s/http-bad.log", self->tmp);
    char *bad_log = cw_fixture_slurp (bad_path);
    ck_assert_msg (bad_log && strstr (bad_log, "server/http"), "%s", bad_log);
    free (bad_log);
    zstr_free (&bad_path);
    //  A port another socket holds: exit 1, http_failed
    zsock_t *taken = zsock_new (ZMQ_ROUTER);
    int taken_port = zsock_bind (taken, "tcp://127.0.0.1:*");
    ck_assert_int_gt (taken_port, 0);
    char *busy = zsys_sprintf ("CW_BROKER_SERVER_HTTP=127.0.0.1:%d",
                               taken_port);
    const char *busy_env [] = { busy, NULL };
    ck_assert_int_eq (s_broker_exit_code (self, busy_env, "http-busy.log"), 1);
    bad_path = zsys_sprintf ("%s/http-busy.log", self->tmp);
    bad_log = cw_fixture_slurp (bad_path);
    ck_assert_msg (bad_log && strstr (bad_log, "http_failed"), "%s", bad_log);
    free (bad_log);
    zstr_free (&bad_path);
    zstr_free (&busy);
    zsock_destroy (&taken);
    const char *http [] = { "CW_BROKER_SERVER_HTTP=127.0.0.1:0", NULL };
    s_broker_start (self, http);
    char *line = s_log_line (self, "http_started");
    ck_assert_ptr_nonnull (line);
    const char *port_text = strstr (line, "\"port\":");
    ck_assert_ptr_nonnull (port_text);
    int port = atoi (port_text + 7);
    ck_assert_int_gt (port, 0);
    free (line);

    s_http_until (port, "/healthz", 200, "\"status\":\"ok\"");
    s_http_until (port, "/healthz", 200, "\"database\":\"up\"");
    cw_test_reply_t reply;
    cw_test_http (port, "GET", "/metrics", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_msg (strncmp (reply.content_type, "text/plain", 10) == 0, "%s",
                   reply.content_type);
    ck_assert_ptr_nonnull (strstr (reply.body, "\ncauseway_broker_up 1\n"));
    ck_assert_ptr_nonnull (strstr (reply.body,
        "# TYPE causeway_broker_dispatched_total counter\n"
        "causeway_broker_dispatched_total 0\n"));
    ck_assert_ptr_nonnull (strstr (reply.body,
        "# TYPE causeway_broker_workers gauge\n"));
    ck_assert_ptr_nonnull (strstr (reply.body,
                                   "\ncauseway_broker_database_up 1\n"));
    cw_test_reply_free (&reply);
    cw_test_http (port, "POST", "/metrics", "x", NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 405);
    cw_test_reply_free (&reply);

    //  A job runs: the counters follow
    zsock_t *worker = s_peer_new (self, self->worker);
    s_ready (worker, "http.generic", 1);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " VALUES ('http.generic', 't1', 'http-1', '{\"want\": \"ok\"}')");
    s_work (worker, self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'",
            1, NULL, NULL);
    s_http_until (port, "/metrics", 200,
                  "\ncauseway_broker_dispatched_total 1\n");
    s_http_until (port, "/metrics", 200, "\ncauseway_broker_workers 1\n");
    s_http_until (port, "/metrics", 200,
                  "\ncauseway_broker_results_total{outcome=\"ok\"} 1\n");
    s_http_until (port, "/metrics", 200,
                  "# TYPE causeway_broker_claims_total counter\n");
    s_http_until (port, "/metrics", 200,
                  "\ncauseway_broker_flow_results_total{flow=\"http.generic\","
                  "target=\"\",outcome=\"ok\"} 1\n");
    s_http_until (port, "/metrics", 200,
                  "\ncauseway_broker_flow_dispatched_total{flow=\"http.generic\","
                  "target=\"\"} 1\n");

    //  From the table, every 5 s: the lag (a job due an hour ago that no
    //  worker takes) and the dead letters by flow
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                 "  payload, next_run_at)"
                 " VALUES ('nobody.serves', 't1', 'http-late', '{}',"
                 "   now () - interval '1 hour')");
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                 "  payload, state, dead_reason, finished_at)"
                 " VALUES ('http.generic', 't1', 'http-dead', '{}', 'dead',"
                 "   'rejected', now ())");
    s_http_until (port, "/metrics", 200,
                  "\ncauseway_broker_flow_dead_jobs{flow=\"http.generic\"} 1\n");
    s_http_until (port, "/metrics", 200,
                  "\ncauseway_broker_oldest_due_seconds 36");
    //  Silent that long, the worker was counted lost: a new session
    s_ready (worker, "http.generic", 1);

    //  The database refuses: 503 once a claim fails; back: 200 again
    cw_fixture_db_refuse (self->uri, true);
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    bool down = false;
    while (!down && cw_test_now_msec () < deadline) {
        s_heartbeat (worker);
        cw_test_http (port, "GET", "/healthz", NULL, NULL, 0, &reply);
        down = reply.status == 503 && reply.body
            && strstr (reply.body, "\"database\":\"down\"");
        cw_test_reply_free (&reply);
        zclock_sleep (50);
    }
    cw_fixture_db_refuse (self->uri, false);
    ck_assert_msg (down, "healthz never said the database is down");
    deadline = cw_test_now_msec () + WAIT_MSEC;
    bool up = false;
    while (!up && cw_test_now_msec () < deadline) {
        s_heartbeat (worker);
        cw_test_http (port, "GET", "/healthz", NULL, NULL, 0, &reply);
        up = reply.status == 200;
        cw_test_reply_free (&reply);
        zclock_sleep (50);
    }
    ck_assert_msg (up, "healthz never came back to 200");

    //  Draining (a job in flight holds it): 503, draining
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
                 " VALUES ('http.generic', 't1', 'http-2', '{}')");
    cw_msg_t *job = s_worker_recv (worker, WAIT_MSEC);
    ck_assert_ptr_nonnull (job);
    ck_assert_int_eq (job->command, CW_MSG_JOB);
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    s_http_until (port, "/healthz", 503, "\"draining\":true");
    s_answer (worker, job, "ok");
    cw_msg_destroy (&job);
    //  The drain ends, the HTTP server with it: exit 0 (under the
    //  sanitizers, nothing leaked)
    int status = 0;
    ck_assert_msg (cw_test_wait_exit (self->pid, WAIT_MSEC, &status) == 1,
                   "the broker did not end its drain");
    self->pid = 0;
    ck_assert (WIFEXITED (status));
    ck_assert_int_eq (WEXITSTATUS (status), 0);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

//  The broker that cannot bind its endpoint exits 1 at once. Before, it
//  hung for ever: zactor_new returns the actor whatever it signals, so
//  main.c's "cannot start" branch never ran and it waited for an
//  ENDPOINT answer and an EXIT from an actor that had already ended.
START_TEST (test_bind_failure_exits)
{
    fixture_t *self = s_fixture_new ();
    zsock_t *taken = zsock_new (ZMQ_ROUTER);
    int port = zsock_bind (taken, "tcp://127.0.0.1:*");
    ck_assert_int_gt (port, 0);
    char *bind = zsys_sprintf ("CW_BROKER_SERVER_BIND=tcp://127.0.0.1:%d",
                               port);
    const char *extra [] = { bind, NULL };
    ck_assert_int_eq (s_broker_exit_code (self, extra, "bind.log"), 1);
    char *path = zsys_sprintf ("%s/bind.log", self->tmp);
    char *log = cw_fixture_slurp (path);
    ck_assert_msg (log && strstr (log, "bind_failed"), "%s", log);
    free (log);
    zstr_free (&path);
    zstr_free (&bind);
    zsock_destroy (&taken);
    s_fixture_destroy (&self);
}
END_TEST

//  Tables (retry/flows, targets/caps, publish/routes): a name given
//  twice, an empty field, a fourth field or a route with one field
//  too many is bad configuration (exit 2, naming the key); white space
//  around names and fields is no part of them. Before, the second entry
//  of a name was silently ignored (or the first), "type=:erp" became the
//  route to flow "erp" with no target, "erp=5:0:0:1" dropped its 1, and
//  "type=flow:erp " routed to a target "erp " no worker serves.
START_TEST (test_config_tables)
{
    fixture_t *self = s_fixture_new ();
    const char *bad [][2] = {
        { "CW_BROKER_PUBLISH_ROUTES=a.v1=flow.a:erp,a.v1=flow.b:erp",
          "publish/routes" },
        { "CW_BROKER_PUBLISH_ROUTES=a.v1=:erp", "publish/routes" },
        { "CW_BROKER_PUBLISH_ROUTES=a.v1=flow.a:erp:x", "publish/routes" },
        { "CW_BROKER_RETRY_FLOWS=f=3:1s:1m,f=5:1s:1m", "retry/flows" },
        { "CW_BROKER_RETRY_FLOWS=f=3:1s:1m:9", "retry/flows" },
        { "CW_BROKER_TARGETS=erp=5:0:0, erp=9:0:0", "targets/caps" },
        { "CW_BROKER_TARGETS=erp=5::0:0", "targets/caps" },
        { "CW_BROKER_RETRY_FLOWS=f=3:1s:9223372036854775807", "retry/flows" },
        { "CW_BROKER_RETRY_FLOWS=f=3:1s:99999999999999h", "retry/flows" }
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        const char *extra [] = { bad [index][0], NULL };
        char *name = zsys_sprintf ("tables-%zu.log", index);
        ck_assert_msg (s_broker_exit_code (self, extra, name) == 2, "%s",
                       bad [index][0]);
        char *path = zsys_sprintf ("%s/%s", self->tmp, name);
        char *log = cw_fixture_slurp (path);
        ck_assert_msg (log && strstr (log, "config_invalid")
                       && strstr (log, bad [index][1]), "%s: %s",
                       bad [index][0], log);
        free (log);
        zstr_free (&path);
        zstr_free (&name);
    }
    //  White space is trimmed: this route reaches flow "order.status" at
    //  target "erp", as the default does
    s_broker_start (self, (const char *[]) {
        "CW_BROKER_PUBLISH_ROUTES= order.status.changed.v1 = order.status :"
        " erp ", NULL });
    zsock_t *worker = s_peer_new (self, self->worker);
    cw_msg_t *ready = cw_msg_new (CW_MSG_WORKER, CW_MSG_READY);
    cw_msg_flow_add (ready, "order.status");
    cw_msg_target_add (ready, "erp");
    ready->ready.credit = 1;
    s_peer_send (worker, &ready);
    zsock_t *relay = s_peer_new (self, self->relay);
    const char *keys [] = { "ws-1" };
    s_publish_status (relay, 1, "O-9", keys, 1);
    cw_msg_t *job = s_worker_recv (worker, WAIT_MSEC);
    ck_assert_ptr_nonnull (job);
    ck_assert_int_eq (job->command, CW_MSG_JOB);
    ck_assert_str_eq (job->job.flow, "order.status");
    ck_assert_str_eq (job->job.target, "erp");
    cw_msg_destroy (&job);
    zsock_destroy (&relay);
    zsock_destroy (&worker);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_sample_config_current)
{
    //  etc/causeway-broker.cfg is exactly what --sample-config prints;
    //  a bad value is one error naming the key, exit 2
    char *dir = cw_test_tmpdir ("broker-config");
    char *program = cw_test_build_path ("broker/causeway-broker");
    cw_fixture_sample_config_check (dir, "broker/causeway-broker",
                                    "etc/causeway-broker.cfg");
    int status = 0;

    char *bad_path = zsys_sprintf ("%s/bad", dir);
    const char *bad [] = { program, "--print-config", NULL };
    char *secret = cw_test_write_file (dir, "secret", "not used\n", 0600);
    ck_assert_ptr_nonnull (secret);
    char *cert_env = zsys_sprintf ("CW_BROKER_SERVER_CERT_FILE=%s", secret);
    char *uri_env = zsys_sprintf ("CW_BROKER_DB_URI_FILE=%s", secret);
    char *peers_env = zsys_sprintf ("CW_BROKER_SERVER_PEERS=%s", dir);
    const char *env [] = {
        cert_env, uri_env, peers_env, "CW_BROKER_SERVER_HEARTBEAT=ten", NULL
    };
    pid_t pid = cw_test_spawn (bad, env, bad_path);
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 2);
    char *log = cw_fixture_slurp (bad_path);
    ck_assert_ptr_nonnull (log);
    ck_assert_msg (strstr (log, "CW_BROKER_SERVER_HEARTBEAT"), "%s", log);
    free (log);
    zstr_free (&cert_env);
    zstr_free (&uri_env);
    zstr_free (&peers_env);
    free (secret);
    zstr_free (&bad_path);
    free (program);
    cw_test_tmpdir_destroy (&dir);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("broker");
    TCase *jobs = tcase_create ("jobs");
    tcase_set_timeout (jobs, 60);
    tcase_add_test (jobs, test_jobs_done);
    tcase_add_test (jobs, test_notify_wakes);
    tcase_add_test (jobs, test_rejected_and_exhausted);
    tcase_add_test (jobs, test_ordering);
    tcase_add_test (jobs, test_targets);
    suite_add_tcase (suite, jobs);
    TCase *security = tcase_create ("security");
    tcase_set_timeout (security, 60);
    tcase_add_test (security, test_security);
    tcase_add_test (security, test_reply_from_called_worker_only);
    tcase_add_test (security, test_call_overdue);
    tcase_add_test (security, test_oversized_frame_dropped);
    tcase_add_test (security, test_routing_id_reused);
    tcase_add_test (security, test_idle_peers_forgotten);
    tcase_add_test (security, test_dead_letters);
    tcase_add_test (security, test_replay_paced);
    tcase_add_test (security, test_slo);
    suite_add_tcase (suite, security);
    TCase *relay = tcase_create ("publish");
    tcase_set_timeout (relay, 60);
    tcase_add_test (relay, test_publish);
    tcase_add_test (relay, test_publish_ordering);
    tcase_add_test (relay, test_publish_payload_too_large);
    tcase_add_test (relay, test_publish_ordering_key_refused);
    tcase_add_test (relay, test_forbidden_island_logged);
    tcase_add_test (relay, test_malformed_disconnects_relay);
    suite_add_tcase (suite, relay);
    TCase *drain = tcase_create ("drain");
    tcase_set_timeout (drain, 60);
    tcase_add_test (drain, test_sigterm_releases);
    tcase_add_test (drain, test_drain_database_down);
    tcase_add_test (drain, test_sighup_reloads_keys);

    TCase *http = tcase_create ("http");
    tcase_set_timeout (http, 60);
    tcase_add_test (http, test_http_health);
    suite_add_tcase (suite, http);

    TCase *clock = tcase_create ("clock");
    tcase_set_timeout (clock, 60);
    tcase_add_test (clock, test_clock_skew);
    tcase_add_test (clock, test_clock_step);
    suite_add_tcase (suite, clock);
    suite_add_tcase (suite, drain);
    TCase *config = tcase_create ("config");
    tcase_set_timeout (config, 30);
    tcase_add_test (config, test_sample_config_current);
    tcase_add_test (config, test_bind_failure_exits);
    tcase_add_test (config, test_config_tables);
    suite_add_tcase (suite, config);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
