/*  =========================================================================
    check_store - the broker's SQL (broker/cw_store) against real PostgreSQL

    Drives cw_store_actor as the broker does (requests over its pipe) on a
    migrated database: leases are fenced by their token, so a COMMIT,
    RENEW or RELEASE of an older lease of the same job by the same broker
    never touches the current one; the expired-lease sweep frees any lease
    that ran out, the sweeping broker's own included.
    =========================================================================
*/
#include "cw_store.h"
#include "cw_fixture.h"
#include "cw_test.h"

#include <check.h>
#include <libpq-fe.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MSEC 10000

typedef struct {
    char *tmp;
    char *uri;                  //  Superuser URI of the test database
    char *broker_uri;           //  As cw_broker
} fixture_t;

static fixture_t *
s_fixture_new (void)
{
    fixture_t *self = (fixture_t *) calloc (1, sizeof (fixture_t));
    self->tmp = cw_test_tmpdir ("check_store");
    self->uri = cw_test_db_new ("store");
    const char *islands[] = {"erp_mw", "shop", NULL};
    cw_fixture_migrate_islands (self->tmp, self->uri, islands);
    self->broker_uri = cw_test_uri_as (self->uri, "cw_broker");
    return self;
}

static void
s_fixture_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    free (self->broker_uri);
    cw_test_db_destroy (&self->uri);
    cw_test_tmpdir_destroy (&self->tmp);
    free (self);
    *self_p = NULL;
}

//  Sends req and waits for it to come back (WAKEs skipped).
static cw_store_req_t *
s_ask (zactor_t *store, cw_store_req_t *req)
{
    ck_assert_int_eq (cw_store_send (store, &req), 0);
    zpoller_t *poller = zpoller_new (store, NULL);
    cw_store_req_t *done = NULL;
    while (!done) {
        ck_assert_ptr_nonnull (zpoller_wait (poller, WAIT_MSEC));
        done = cw_store_recv (store);
        ck_assert_ptr_nonnull (done);
        if (done->op == CW_STORE_WAKE)
            cw_store_req_destroy (&done);
    }
    zpoller_destroy (&poller);
    ck_assert_msg (done->status == 0, "%s", done->error);
    return done;
}

//  CLAIM of up to 10 jobs under token for (flows[i], targets[i]) pairs
//  (a NULL target: any).
static cw_store_req_t *
s_claim_pairs (zactor_t *store, int64_t token, const char *const *flows,
               const char *const *targets, size_t count)
{
    cw_store_req_t *req = cw_store_req_new (CW_STORE_CLAIM);
    req->batch_id = (uint64_t) token;
    req->lease_token = token;
    req->limit = 10;
    req->lease_msec = 30000;
    req->flows = (char **) calloc (count + 1, sizeof (char *));
    req->flow_targets = (char **) calloc (count + 1, sizeof (char *));
    for (size_t index = 0; index < count; index++) {
        req->flows[index] = strdup (flows[index]);
        req->flow_targets[index] = targets[index] ? strdup (targets[index])
                                                  : NULL;
    }
    req->flow_count = count;
    return s_ask (store, req);
}

//  CLAIM of noop jobs at any target.
static cw_store_req_t *
s_claim (zactor_t *store, int64_t token)
{
    const char *flows[] = {"noop"};
    const char *any[] = {NULL};
    return s_claim_pairs (store, token, flows, any, 1);
}

//  RENEW (op CW_STORE_RENEW) or RELEASE of one job under token; returns
//  how many were reported lost (RENEW).
static size_t
s_lease_op (zactor_t *store, cw_store_op_t op, int64_t id, int64_t token)
{
    cw_store_req_t *req = cw_store_req_new (op);
    req->job_ids = (int64_t *) calloc (1, sizeof (int64_t));
    req->lease_tokens = (int64_t *) calloc (1, sizeof (int64_t));
    req->job_ids[0] = id;
    req->lease_tokens[0] = token;
    req->job_count = 1;
    //  In the broker's clock, which the store never compares with the
    //  database's: 60 s from the moment sent
    req->now = zclock_mono ();
    req->lease_expires_at = req->now + 60000;
    cw_store_req_t *done = s_ask (store, req);
    size_t lost = done->lost_count;
    cw_store_req_destroy (&done);
    return lost;
}

//  COMMIT of one ok result of job id under token that took duration
//  msec; returns lost count.
static size_t
s_commit_took (zactor_t *store, int64_t id, int64_t token, int64_t duration)
{
    cw_store_req_t *req = cw_store_req_new (CW_STORE_COMMIT);
    req->transitions = (cw_core_transition_t *) calloc (
        1, sizeof (cw_core_transition_t));
    cw_core_transition_t *t = &req->transitions[0];
    t->job_id = id;
    t->lease_token = token;
    t->state = CW_CORE_STATE_DONE;
    t->attempts = 1;
    t->worker = strdup ("w1");
    t->attempt = 1;
    t->outcome = CW_CORE_OK;
    t->http_status = 200;
    t->duration_msec = duration;
    req->transition_count = 1;
    cw_store_req_t *done = s_ask (store, req);
    size_t lost = done->lost_count;
    cw_store_req_destroy (&done);
    return lost;
}

//  COMMIT of one ok result of job id under token; returns lost count.
static size_t
s_commit (zactor_t *store, int64_t id, int64_t token)
{
    return s_commit_took (store, id, token, 3);
}

static zactor_t *
s_store_new (const char *db_uri, const char *broker_id, int64_t expire_msec)
{
    cw_store_config_t config = {
        .db_uri = db_uri,
        .broker_id = broker_id,
        .poll_only = true,
        .inbox_ttl_msec = 60000,
        .expire_msec = expire_msec,
    };
    zactor_t *store = zactor_new (cw_store_actor, &config);
    ck_assert_ptr_nonnull (store);
    return store;
}

//  Inserts one ready noop job (key noop:t1:N); returns its id and puts
//  the query of its "state:token:attempts" in job_row[size].
static int64_t
s_job_new (fixture_t *fx, int n, char *job_row, size_t size)
{
    char sql[256];
    snprintf (sql, sizeof (sql), "INSERT INTO erp_mw.jobs (flow, tenant,"
              " idempotency_key, payload) VALUES ('noop', 't1', 'noop:t1:%d',"
              " '{\"n\": %d}') RETURNING id", n, n);
    char *id_text = cw_fixture_sql_value (fx->uri, sql);
    int64_t id = strtoll (id_text, NULL, 10);
    snprintf (job_row, size, "SELECT state || ':' || coalesce (lease_token"
              "::text, '-') || ':' || attempts FROM erp_mw.jobs WHERE id = %s",
              id_text);
    free (id_text);
    return id;
}

START_TEST (test_lease_token_fence)
{
    fixture_t *fx = s_fixture_new ();
    char job_row[256];
    int64_t id = s_job_new (fx, 1, job_row, sizeof (job_row));
    zactor_t *store = s_store_new (fx->broker_uri, "b1/0000000a", 0);

    //  The first lease: token 11
    cw_store_req_t *claim = s_claim (store, 11);
    ck_assert_uint_eq (claim->jobs_count, 1);
    ck_assert_int_eq (claim->jobs[0].id, id);
    ck_assert_int_eq (claim->jobs[0].lease_token, 11);
    cw_store_req_destroy (&claim);
    cw_fixture_sql_eq (fx->uri, job_row, "leased:11:0");

    //  It runs out; another broker's sweep frees it (with no attempt
    //  spent), and this broker claims the job again: token 12
    cw_fixture_sql_ok (fx->uri, "UPDATE erp_mw.jobs SET lease_expires_at ="
                                " now () - interval '1 second'");
    zactor_t *other = s_store_new (fx->broker_uri, "b2/0000000b", 1);
    for (int tries = 0; tries < 200; tries++) {
        char *state = cw_fixture_sql_value (fx->uri, job_row);
        bool swept = streq (state, "ready:-:0");
        free (state);
        if (swept)
            break;
        zclock_sleep (20);
    }
    cw_fixture_sql_eq (fx->uri, job_row, "ready:-:0");
    zactor_destroy (&other);
    claim = s_claim (store, 12);
    ck_assert_uint_eq (claim->jobs_count, 1);
    ck_assert_int_eq (claim->jobs[0].lease_token, 12);
    cw_store_req_destroy (&claim);

    //  Everything under the old token is fenced: the row keeps lease 12
    ck_assert_uint_eq (s_commit (store, id, 11), 1);
    cw_fixture_sql_eq (fx->uri, job_row, "leased:12:0");
    cw_fixture_sql_eq (fx->uri, "SELECT count(*) FROM erp_mw.job_attempts",
                       "0");
    ck_assert_uint_eq (s_lease_op (store, CW_STORE_RENEW, id, 11), 1);
    s_lease_op (store, CW_STORE_RELEASE, id, 11);
    cw_fixture_sql_eq (fx->uri, job_row, "leased:12:0");

    //  Under the current token: renewed, then committed
    ck_assert_uint_eq (s_lease_op (store, CW_STORE_RENEW, id, 12), 0);
    cw_fixture_sql_eq (fx->uri,
                       "SELECT lease_expires_at > now () + interval"
                       " '50 seconds' FROM erp_mw.jobs",
                       "t");
    ck_assert_uint_eq (s_commit (store, id, 12), 0);
    cw_fixture_sql_eq (fx->uri, job_row, "done:-:1");
    cw_fixture_sql_eq (fx->uri,
                       "SELECT count(*) || ':' || min (outcome) FROM"
                       " erp_mw.job_attempts",
                       "1:ok");

    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

START_TEST (test_release_by_token)
{
    fixture_t *fx = s_fixture_new ();
    char job_row[256];
    int64_t id = s_job_new (fx, 2, job_row, sizeof (job_row));
    zactor_t *store = s_store_new (fx->broker_uri, "b1/0000000c", 0);
    cw_store_req_t *claim = s_claim (store, 5);
    ck_assert_uint_eq (claim->jobs_count, 1);
    cw_store_req_destroy (&claim);
    //  Another token of the same owner: nothing happens
    s_lease_op (store, CW_STORE_RELEASE, id, 6);
    cw_fixture_sql_eq (fx->uri, job_row, "leased:5:0");
    //  Its own token: ready again, no attempt spent
    s_lease_op (store, CW_STORE_RELEASE, id, 5);
    cw_fixture_sql_eq (fx->uri, job_row, "ready:-:0");
    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

START_TEST (test_claim_head_of_line)
{
    //  One job per ordering key at a time: a job leased to this very
    //  broker blocks its successors too (its core may have lost track of
    //  it: a claim whose reply was lost, a RELEASE not yet run on the
    //  other connection), and so does a dead one
    fixture_t *fx = s_fixture_new ();
    cw_fixture_sql_ok (fx->uri,
                       "INSERT INTO erp_mw.jobs (flow, tenant,"
                       " idempotency_key, ordering_key, payload) VALUES"
                       " ('noop', 't1', 'k-1', 't1:O-1', '{}'),"
                       " ('noop', 't1', 'k-2', 't1:O-1', '{}'),"
                       " ('noop', 't1', 'x-1', 't1:O-2', '{}')");
    zactor_t *store = s_store_new (fx->broker_uri, "b1/0000000e", 0);
    //  The heads of both keys, never a successor in the same claim
    cw_store_req_t *claim = s_claim (store, 1);
    ck_assert_uint_eq (claim->jobs_count, 2);
    cw_store_req_destroy (&claim);
    cw_fixture_sql_eq (fx->uri,
                       "SELECT string_agg (idempotency_key, ',' ORDER BY"
                       " id) FROM erp_mw.jobs WHERE state = 'leased'",
                       "k-1,x-1");
    //  k-1 leased to this broker: k-2 still waits
    claim = s_claim (store, 2);
    ck_assert_uint_eq (claim->jobs_count, 0);
    cw_store_req_destroy (&claim);
    //  k-1 dead: k-2 parks behind it
    cw_fixture_sql_ok (
        fx->uri, "UPDATE erp_mw.jobs SET state = 'dead', dead_reason ="
                 " 'rejected', lease_owner = NULL, lease_token = NULL,"
                 " lease_expires_at = NULL WHERE idempotency_key = 'k-1'");
    claim = s_claim (store, 3);
    ck_assert_uint_eq (claim->jobs_count, 0);
    cw_store_req_destroy (&claim);
    //  k-1 done (say, replayed and run): k-2 goes
    cw_fixture_sql_ok (fx->uri,
                       "UPDATE erp_mw.jobs SET state = 'done', dead_reason ="
                       " NULL WHERE idempotency_key = 'k-1'");
    claim = s_claim (store, 4);
    ck_assert_uint_eq (claim->jobs_count, 1);
    ck_assert_str_eq (claim->jobs[0].ordering_key, "t1:O-1");
    cw_store_req_destroy (&claim);
    cw_fixture_sql_eq (fx->uri,
                       "SELECT state FROM erp_mw.jobs WHERE"
                       " idempotency_key = 'k-2'",
                       "leased");
    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

START_TEST (test_claim_targets)
{
    //  A claim takes a job only for a (flow, target) pair it names: a
    //  pair's NULL target takes any, a job naming no target goes with
    //  any pair of its flow
    fixture_t *fx = s_fixture_new ();
    cw_fixture_sql_ok (fx->uri,
                       "INSERT INTO erp_mw.jobs (flow, tenant,"
                       " idempotency_key, target, payload) VALUES"
                       " ('noop', 't1', 'l-1', 'ledger', '{}'),"
                       " ('noop', 't1', 's-1', 'shop', '{}'),"
                       " ('noop', 't1', 'n-1', NULL, '{}'),"
                       " ('http.generic', 't1', 'o-1', 'other', '{}')");
    zactor_t *store = s_store_new (fx->broker_uri, "b1/0000000f", 0);
    const char *flows[] = {"noop", "http.generic"};
    const char *ledger[] = {"ledger", "ledger"};
    cw_store_req_t *claim = s_claim_pairs (store, 1, flows, ledger, 2);
    ck_assert_uint_eq (claim->jobs_count, 2);
    cw_store_req_destroy (&claim);
    cw_fixture_sql_eq (fx->uri,
                       "SELECT string_agg (idempotency_key, ',' ORDER BY"
                       " id) FROM erp_mw.jobs WHERE state = 'leased'",
                       "l-1,n-1");
    //  Any target of http.generic: o-1; s-1 (noop at shop) stays
    const char *any[] = {NULL};
    claim = s_claim_pairs (store, 2, flows + 1, any, 1);
    ck_assert_uint_eq (claim->jobs_count, 1);
    ck_assert_str_eq (claim->jobs[0].target, "other");
    cw_store_req_destroy (&claim);
    cw_fixture_sql_eq (fx->uri,
                       "SELECT state FROM erp_mw.jobs WHERE"
                       " idempotency_key = 's-1'",
                       "ready");
    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

START_TEST (test_own_expired_lease_swept)
{
    //  A lease its own broker let run out (say a claim answered after the
    //  lease ended, which the core hands back) is swept by that broker's
    //  store too: with one broker nothing stays leased for ever
    fixture_t *fx = s_fixture_new ();
    cw_fixture_sql_ok (fx->uri,
                       "INSERT INTO erp_mw.jobs (flow, tenant,"
                       " idempotency_key, payload, state, lease_owner,"
                       " lease_token, lease_expires_at) VALUES ('noop', 't1',"
                       " 'noop:t1:3', '{}', 'leased', 'b1/0000000d', 3,"
                       " now () - interval '1 second')");
    zactor_t *store = s_store_new (fx->broker_uri, "b1/0000000d", 1);
    zpoller_t *poller = zpoller_new (store, NULL);
    ck_assert_ptr_nonnull (zpoller_wait (poller, WAIT_MSEC));
    cw_store_req_t *wake = cw_store_recv (store);
    ck_assert_ptr_nonnull (wake);
    ck_assert_int_eq (wake->op, CW_STORE_WAKE);
    cw_store_req_destroy (&wake);
    zpoller_destroy (&poller);
    cw_fixture_sql_eq (fx->uri,
                       "SELECT state || ':' || coalesce (lease_owner, '-')"
                       " || ':' || attempts FROM erp_mw.jobs",
                       "ready:-:0");
    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

//  A PUBLISH event: a valid envelope of type order.created.v1 at time
static void
s_event (cw_store_event_t *event, const char *key, const char *time)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, key);
    cw_envelope_set_source (envelope, "shop");
    cw_envelope_set_type (envelope, "order.created.v1");
    cw_envelope_set_time (envelope, time);
    cw_envelope_set_tenant_id (envelope, "t1");
    cw_envelope_set_correlation_id (envelope, key);
    cw_envelope_set_idempotency_key (envelope, key);
    json_t *data = json_pack ("{s:s}", "orderId", key);
    cw_envelope_set_data (envelope, &data);
    char reason[256];
    ck_assert_msg (cw_envelope_validate (envelope, reason, sizeof (reason))
                       == 0,
                   "%s", reason);
    event->envelope = envelope;
    event->flow = strdup ("noop");
    event->payload = cw_store_payload_json (envelope, reason, sizeof (reason));
    ck_assert_ptr_nonnull (event->payload);
}

START_TEST (test_publish_any_valid_time)
{
    //  Every time the envelope check accepts is one PostgreSQL stores:
    //  its edges (year 0001, offsets of 15:59, 9 fraction digits). The
    //  check took offsets to 23:59 and year 0000, which PostgreSQL
    //  refuses: one such event failed its whole PUBLISH, every time the
    //  relay sent the batch again
    fixture_t *fx = s_fixture_new ();
    zactor_t *store = s_store_new (fx->broker_uri, "b1/00000010", 0);
    cw_store_req_t *req = cw_store_req_new (CW_STORE_PUBLISH);
    req->source = strdup ("shop");
    req->lease_msec = 30000;
    req->lease_token = 1;
    req->events = (cw_store_event_t *) calloc (5, sizeof (cw_store_event_t));
    s_event (&req->events[0], "p-1", "2026-11-27T10:00:00+15:59");
    s_event (&req->events[1], "p-2", "2026-11-27T10:00:00.25-03:30");
    s_event (&req->events[2], "p-3", "0001-03-01T00:00:00Z");
    s_event (&req->events[3], "p-4", "9999-12-31T23:59:59.123456789-15:59");
    req->event_count = 4;
    cw_store_req_t *done = s_ask (store, req);
    ck_assert_msg (done->status == 0, "%s", done->error);
    ck_assert_uint_eq (done->jobs_count, 4);
    cw_store_req_destroy (&done);
    cw_fixture_sql_eq (fx->uri,
                       "SET TIME ZONE 'UTC'; SELECT string_agg (produced_at"
                       "::text, ',' ORDER BY id) FROM erp_mw.jobs",
                       "2026-11-26 18:01:00+00,2026-11-27 13:30:00.25+00,"
                       "0001-03-01 00:00:00+00,10000-01-01 15:58:59.123457+00");
    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

START_TEST (test_commit_long_duration)
{
    //  A worker's duration_ms is any int64 (proto/PROTOCOL.md): one far
    //  beyond the 24.8 days the attempt row holds is stored clamped, and
    //  its started_at with it. Before, started_at = now () - duration
    //  overflowed ("timestamp out of range"): that COMMIT failed at every
    //  retry, and with it every result in its batch, for ever
    fixture_t *fx = s_fixture_new ();
    char job_row[256];
    int64_t id = s_job_new (fx, 4, job_row, sizeof (job_row));
    zactor_t *store = s_store_new (fx->broker_uri, "b1/00000011", 0);
    cw_store_req_t *claim = s_claim (store, 1);
    ck_assert_uint_eq (claim->jobs_count, 1);
    cw_store_req_destroy (&claim);
    ck_assert_uint_eq (s_commit_took (store, id, 1, INT64_MAX / 2), 0);
    cw_fixture_sql_eq (fx->uri, job_row, "done:-:1");
    cw_fixture_sql_eq (fx->uri,
                       "SELECT duration_ms || ':' || (finished_at - started_at"
                       " = 2147483647 * interval '1 millisecond')"
                       " FROM erp_mw.job_attempts",
                       "2147483647:true");
    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

//  Retention in the store's own time: done jobs finished longer ago than
//  retention_msec go, with their attempts, in batches paced between
//  requests; inbox rows past expires_at go; recent done jobs, dead
//  letters, waiting jobs and live inbox rows stay. Before, nothing in the
//  project ran the purge functions.
//  A publish of an order whose earlier job another transaction inserted
//  and has not committed: the publish waits for that commit
//  (sql/erp_mw/011's key locks, taken before the insert), then sees the
//  earlier job and leaves its own ready behind it. Before, it went
//  through at once and leased its job as the key's head: two heads of
//  one order, run at the same time.
START_TEST (test_publish_waits_for_key)
{
    fixture_t *fx = s_fixture_new ();
    PGconn *writer = PQconnectdb (fx->uri);
    ck_assert_int_eq (PQstatus (writer), CONNECTION_OK);
    PGresult *result = PQexec (writer,
        "BEGIN; INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
        " ordering_key, payload) VALUES ('noop', 't1', 'w-1', 't1:p-7', '{}')");
    ck_assert_int_eq (PQresultStatus (result), PGRES_COMMAND_OK);
    PQclear (result);
    zactor_t *store = s_store_new (fx->broker_uri, "b1/00000012", 0);
    cw_store_req_t *req = cw_store_req_new (CW_STORE_PUBLISH);
    req->source = strdup ("shop");
    req->lease_msec = 30000;
    req->lease_token = 1;
    req->events = (cw_store_event_t *) calloc (2, sizeof (cw_store_event_t));
    s_event (&req->events[0], "p-7", "2026-11-27T10:00:00Z");
    req->events[0].ordering_key = strdup ("t1:p-7");
    req->event_count = 1;
    ck_assert_int_eq (cw_store_send (store, &req), 0);
    zpoller_t *poller = zpoller_new (store, NULL);
    ck_assert_msg (zpoller_wait (poller, 500) == NULL,
                   "the publish did not wait for the uncommitted earlier job");
    result = PQexec (writer, "COMMIT");
    ck_assert_int_eq (PQresultStatus (result), PGRES_COMMAND_OK);
    PQclear (result);
    cw_store_req_t *done = NULL;
    while (!done) {
        ck_assert_ptr_nonnull (zpoller_wait (poller, WAIT_MSEC));
        done = cw_store_recv (store);
        ck_assert_ptr_nonnull (done);
        if (done->op == CW_STORE_WAKE)
            cw_store_req_destroy (&done);
    }
    ck_assert_msg (done->status == 0, "%s", done->error);
    ck_assert_uint_eq (done->jobs_count, 0);    //  Not a head: not leased
    cw_store_req_destroy (&done);
    zpoller_destroy (&poller);
    cw_fixture_sql_eq (fx->uri,
        "SELECT string_agg (idempotency_key || '=' || state, ',' ORDER BY id)"
        "  FROM erp_mw.jobs WHERE ordering_key = 't1:p-7'",
        "w-1=ready,p-7=ready");
    PQfinish (writer);
    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

START_TEST (test_retention)
{
    fixture_t *fx = s_fixture_new ();
    cw_fixture_sql_ok (fx->uri,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "                         state, attempts, finished_at)"
        " SELECT 'noop', 't1', 'old-' || g, '{}', 'done', 1,"
        "        now () - interval '2 days'"
        "   FROM generate_series (1, 1200) AS g;"
        "INSERT INTO erp_mw.job_attempts (job_id, attempt, worker, outcome,"
        "                                 started_at)"
        " SELECT id, 1, 'w', 'ok', now () - interval '2 days'"
        "   FROM erp_mw.jobs;"
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "                         state, attempts, finished_at)"
        " SELECT 'noop', 't1', 'new-' || g, '{}', 'done', 1,"
        "        now () - interval '1 hour'"
        "   FROM generate_series (1, 3) AS g;"
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "                         state, attempts, finished_at, dead_reason)"
        " SELECT 'noop', 't1', 'dead-' || g, '{}', 'dead', 1,"
        "        now () - interval '2 days', 'rejected'"
        "   FROM generate_series (1, 2) AS g;"
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload)"
        " VALUES ('noop', 't1', 'ready-1', '{}');"
        "INSERT INTO erp_mw.inbox (idempotency_key, source, event_type,"
        "                          expires_at)"
        " SELECT 'in-old-' || g, 'shop', 'x.v1', now () - interval '1 hour'"
        "   FROM generate_series (1, 700) AS g;"
        "INSERT INTO erp_mw.inbox (idempotency_key, source, event_type,"
        "                          expires_at)"
        " SELECT 'in-new-' || g, 'shop', 'x.v1', now () + interval '1 hour'"
        "   FROM generate_series (1, 2) AS g");
    cw_store_config_t config = {
        .db_uri = fx->broker_uri,
        .broker_id = "b1/00000011",
        .poll_only = true,
        .inbox_ttl_msec = 60000,
        .retention_msec = 86400000,
        .purge_msec = 100,
    };
    zactor_t *store = zactor_new (cw_store_actor, &config);
    ck_assert_ptr_nonnull (store);
    const char *left =
        "SELECT (SELECT count(*) FROM erp_mw.jobs"
        "         WHERE idempotency_key LIKE 'old-%')"
        "     + (SELECT count(*) FROM erp_mw.inbox"
        "         WHERE idempotency_key LIKE 'in-old-%')";
    long long deadline = cw_test_now_msec () + 30000;
    while (cw_fixture_sql_count (fx->uri, left) > 0
           && cw_test_now_msec () < deadline)
        usleep (100 * 1000);
    ck_assert_int_eq (cw_fixture_sql_count (fx->uri, left), 0);
    ck_assert_int_eq (cw_fixture_sql_count (fx->uri,
        "SELECT count(*) FROM erp_mw.job_attempts"), 0);
    cw_fixture_sql_eq (fx->uri,
        "SELECT string_agg (state || '=' || n, ',' ORDER BY state)"
        "  FROM (SELECT state, count(*) AS n FROM erp_mw.jobs"
        "         GROUP BY state) s",
        "dead=2,done=3,ready=1");
    ck_assert_int_eq (cw_fixture_sql_count (fx->uri,
        "SELECT count(*) FROM erp_mw.inbox"), 2);
    zactor_destroy (&store);
    s_fixture_destroy (&fx);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("store");
    TCase *tcase = tcase_create ("leases");
    tcase_set_timeout (tcase, 120);
    tcase_add_test (tcase, test_lease_token_fence);
    tcase_add_test (tcase, test_release_by_token);
    tcase_add_test (tcase, test_claim_head_of_line);
    tcase_add_test (tcase, test_claim_targets);
    tcase_add_test (tcase, test_own_expired_lease_swept);
    tcase_add_test (tcase, test_publish_any_valid_time);
    tcase_add_test (tcase, test_retention);
    tcase_add_test (tcase, test_publish_waits_for_key);
    tcase_add_test (tcase, test_commit_long_duration);
    suite_add_tcase (suite, tcase);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
