/*  =========================================================================
    check_relay - causeway-relay as a process: rows in shop.outbox (written
    as the webshop role) -> relay -> causeway-broker -> erp_mw.inbox and
    jobs. Real PostgreSQL (private database per test, migrated with
    causeway-migrate), real broker and relay processes on 127.0.0.1 with
    CURVE certificates made at test time.
    =========================================================================
*/
#include "cw_curve.h"
#include "cw_fixture.h"
#include "cw_test.h"

#include <check.h>
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MSEC 20000

typedef struct {
    char *tmp;         //  Temp dir: certs, uri files, logs
    char *uri;         //  Superuser URI of the test database
    zcert_t *server;   //  Broker cert
    zcert_t *relay;    //  Relay cert (relay:shop, allowed)
    zcert_t *worker;   //  Worker cert (allowed, but not a relay)
    char *endpoint;    //  Broker's bound endpoint
    pid_t broker;      //  Broker process
    pid_t relay_pid;   //  Relay process
    int relay_runs;    //  Relays started (log file names)
} fixture_t;

static char *
s_path (fixture_t *self, const char *name)
{
    return zsys_sprintf ("%s/%s", self->tmp, name);
}

static void
s_broker_start (fixture_t *self)
{
    const char *settings[] = {"CW_BROKER_ID=broker-test",
                              "CW_BROKER_DB_POLL=200ms",
                              "CW_BROKER_FLUSH=1ms",
                              "CW_BROKER_DRAIN=1s",
                              "CW_BROKER_SERVER_HEARTBEAT=200ms",
                              NULL};
    self->broker = cw_fixture_broker_start (self->tmp, self->uri, "endpoint",
                                            "broker.log", settings, NULL,
                                            WAIT_MSEC, &self->endpoint);
}

//  Starts a relay with the secret cert dir/name.secret; extra: more
//  NAME=value entries (NULL-terminated). Its log is relay-<run>.log.
static char *
s_relay_start (fixture_t *self, const char *cert, const char *const *extra)
{
    char *uri_path = s_path (self, "relay-uri");
    char *relay_uri = cw_test_uri_as (self->uri, "cw_relay_shop");
    cw_fixture_write (uri_path, relay_uri);
    free (relay_uri);
    char *env[4] = {
        zsys_sprintf ("CW_RELAY_DB_URI_FILE=%s", uri_path),
        zsys_sprintf ("CW_RELAY_SECURITY_CERTIFICATE_FILE=%s/%s", self->tmp,
                      cert),
        zsys_sprintf ("CW_RELAY_BROKER_ENDPOINT=%s", self->endpoint),
        zsys_sprintf ("CW_RELAY_BROKER_PUBLIC_KEY=%s",
                      zcert_public_txt (self->server))};
    const char *envp[32] = {env[0],
                            env[1],
                            env[2],
                            env[3],
                            "CW_RELAY_BROKER_HEARTBEAT=200ms",
                            "CW_RELAY_BROKER_RECONNECT=100ms",
                            "CW_RELAY_ACK_TIMEOUT=2s",
                            "CW_RELAY_SHUTDOWN_TIMEOUT=5s",
                            "CW_RELAY_LOG_LEVEL=debug"};
    size_t count = 9;
    for (size_t index = 0; extra && extra[index]; index++)
        envp[count++] = extra[index];
    envp[count] = NULL;
    char *program = cw_test_build_path ("relay/causeway-relay");
    const char *argv[] = {program, NULL};
    char *log = zsys_sprintf ("%s/relay-%d.log", self->tmp, self->relay_runs++);
    self->relay_pid = cw_test_spawn (argv, envp, log);
    ck_assert_int_gt (self->relay_pid, 0);
    free (program);
    for (int index = 0; index < 4; index++)
        zstr_free (&env[index]);
    zstr_free (&uri_path);
    return log;
}

//  Stops the relay with SIGTERM; it must exit 0.
static void
s_relay_stop (fixture_t *self)
{
    int status = cw_test_stop (self->relay_pid, 10000);
    self->relay_pid = 0;
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "relay did not exit 0 on SIGTERM (status %d)", status);
}

static fixture_t *
s_fixture_new (void)
{
    fixture_t *self = (fixture_t *) calloc (1, sizeof (fixture_t));
    self->tmp = cw_test_tmpdir ("check_relay");
    self->uri = cw_test_db_new ("relay");
    const char *islands[] = {"erp_mw", "shop", NULL};
    cw_fixture_migrate_islands (self->tmp, self->uri, islands);
    self->server = cw_curve_cert_new ("admin", "broker");
    self->relay = cw_curve_cert_new ("relay:shop", "relay");
    self->worker = cw_curve_cert_new ("worker", "worker");
    cw_fixture_cert_save (self->tmp, self->server, "server", "broker");
    cw_fixture_cert_save (self->tmp, self->relay, "peers", "relay");
    cw_fixture_cert_save (self->tmp, self->worker, "peers", "worker");
    s_broker_start (self);
    return self;
}

static void
s_fixture_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    if (self->relay_pid > 0)
        cw_test_stop (self->relay_pid, 5000);
    if (self->broker > 0)
        cw_test_stop (self->broker, 5000);
    zcert_destroy (&self->server);
    zcert_destroy (&self->relay);
    zcert_destroy (&self->worker);
    free (self->endpoint);
    cw_test_db_destroy (&self->uri);
    cw_test_tmpdir_destroy (&self->tmp);
    free (self);
    *self_p = NULL;
}

static long
s_count (fixture_t *self, const char *sql)
{
    return cw_fixture_sql_count (self->uri, sql);
}

//  Waits until sql counts expected; returns the last count.
static long
s_wait_count (fixture_t *self, const char *sql, long expected)
{
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    long count = -1;
    while (cw_test_now_msec () < deadline) {
        count = s_count (self, sql);
        if (count == expected)
            break;
        usleep (20 * 1000);  //  Polling interval, not synchronisation
    }
    return count;
}

//  True once the file holds text (within WAIT_MSEC).
static bool
s_wait_log (const char *path, const char *text)
{
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (cw_test_now_msec () < deadline) {
        char *content = cw_fixture_slurp (path);
        bool found = content && strstr (content, text) != NULL;
        free (content);
        if (found)
            return true;
        usleep (20 * 1000);
    }
    return false;
}

//  True once the last line of the file holds text (within WAIT_MSEC).
static bool
s_wait_last_line (const char *path, const char *text)
{
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (cw_test_now_msec () < deadline) {
        FILE *file = fopen (path, "r");
        if (file) {
            char *line = NULL, *last = NULL;
            size_t size = 0;
            while (getline (&line, &size, file) > 0) {
                free (last);
                last = strdup (line);
            }
            bool found = last && strstr (last, text);
            free (line);
            free (last);
            fclose (file);
            if (found)
                return true;
        }
        usleep (5 * 1000);
    }
    return false;
}

//  Inserts events first..last as the webshop does: valid envelopes of
//  order.status.changed.v1, one order each, key "<prefix>-<n>".
static void
s_insert (fixture_t *self, const char *prefix, int first, int last)
{
    char *webshop = cw_test_uri_as (self->uri, "cw_webshop");
    char *sql = zsys_sprintf (
        "INSERT INTO shop.outbox (event_type, tenant, idempotency_key, "
        "payload, correlation_id) "
        "SELECT 'order.status.changed.v1', 't1', '%s-' || i, "
        "jsonb_build_object ('specversion', '1.0', 'id', '%s-' || i, "
        "'source', 'shop', 'type', 'order.status.changed.v1', "
        "'time', '2025-01-31T10:02:03.123Z', "
        "'datacontenttype', 'application/json', 'tenantid', 't1', "
        "'correlationid', 'c-' || i, 'idempotencykey', '%s-' || i, "
        "'data', jsonb_build_object ('tenantId', 't1', "
        "'orderId', '%s-O-' || i, 'version', 2, "
        "'previousStatus', 'confirmed', 'status', 'shipped', "
        "'changedAt', '2025-01-31T10:02:03.123Z')), 'c-' || i "
        "FROM generate_series (%d, %d) AS i",
        prefix, prefix, prefix, prefix, first, last);
    char error[512] = "";
    ck_assert_msg (cw_test_sql (webshop, sql, error, sizeof (error)) == 0, "%s",
                   error);
    zstr_free (&sql);
    free (webshop);
}

static void
s_insert_raw (fixture_t *self, const char *key, const char *payload)
{
    char *webshop = cw_test_uri_as (self->uri, "cw_webshop");
    char *sql = zsys_sprintf (
        "INSERT INTO shop.outbox (event_type, tenant, idempotency_key, "
        "payload) VALUES ('order.status.changed.v1', 't1', '%s', '%s')",
        key, payload);
    char error[512] = "";
    ck_assert_msg (cw_test_sql (webshop, sql, error, sizeof (error)) == 0, "%s",
                   error);
    zstr_free (&sql);
    free (webshop);
}

//  Inserts a valid envelope "<key>" whose data carries an array of
//  samples 0.5: about 5 bytes of JSON each, 9 of msgpack (a float64)
static void
s_insert_samples (fixture_t *self, const char *key, int samples)
{
    char *webshop = cw_test_uri_as (self->uri, "cw_webshop");
    char *sql = zsys_sprintf (
        "INSERT INTO shop.outbox (event_type, tenant, idempotency_key, "
        "payload) SELECT 'order.status.changed.v1', 't1', '%s', "
        "jsonb_build_object ('specversion', '1.0', 'id', '%s', "
        "'source', 'shop', 'type', 'order.status.changed.v1', "
        "'time', '2025-01-31T10:02:03.123Z', "
        "'datacontenttype', 'application/json', 'tenantid', 't1', "
        "'correlationid', 'c', 'idempotencykey', '%s', "
        "'data', jsonb_build_object ('tenantId', 't1', "
        "'orderId', '%s-O', 'version', 2, "
        "'previousStatus', 'confirmed', 'status', 'shipped', "
        "'changedAt', '2025-01-31T10:02:03.123Z', 'samples', "
        "(SELECT jsonb_agg (0.5) FROM generate_series (1, %d))))",
        key, key, key, key, samples);
    char error[512] = "";
    ck_assert_msg (cw_test_sql (webshop, sql, error, sizeof (error)) == 0, "%s",
                   error);
    zstr_free (&sql);
    free (webshop);
}

#define PUBLISHED "SELECT count(*) FROM shop.outbox WHERE published_at IS NOT NULL"

//  --- Tests ------------------------------------------------------------------

START_TEST (test_publish)
{
    fixture_t *self = s_fixture_new ();
    //  Rows present before the relay starts, then rows that only NOTIFY
    //  announces (the poll interval is far longer than the test)
    s_insert (self, "a", 1, 30);
    const char *extra[] = {"CW_RELAY_DB_POLL=1h", "CW_RELAY_BATCH_SIZE=7",
                           NULL};
    char *log = s_relay_start (self, "peers/relay.secret", extra);
    ck_assert_int_eq (s_wait_count (self, PUBLISHED, 30), 30);
    s_insert (self, "b", 1, 20);
    ck_assert_int_eq (s_wait_count (self, PUBLISHED, 50), 50);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), 50);
    ck_assert_int_eq (
        s_count (self, "SELECT count(*) FROM erp_mw.jobs j"
                       " JOIN shop.outbox o USING (idempotency_key)"
                       " WHERE j.flow = 'order.status'"),
        50);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE rejected_reason IS NOT NULL"),
                      0);
    //  Every job is linked from its inbox row
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox i"
                                     " JOIN erp_mw.jobs j ON j.id = i.job_id"),
                      50);
    s_relay_stop (self);
    ck_assert (s_wait_log (log, "\"event\":\"stopped\""));
    zstr_free (&log);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_rejected)
{
    fixture_t *self = s_fixture_new ();
    //  Poll only (no LISTEN): the safety net alone moves rows
    const char *extra[] = {"CW_RELAY_DB_POLL_ONLY=true",
                           "CW_RELAY_DB_POLL=50ms", NULL};
    s_insert (self, "a", 1, 3);
    //  Not an envelope: rejected by the relay itself
    s_insert_raw (self, "bad-1", "{\"specversion\": \"1.0\"}");
    //  A valid envelope whose data the broker refuses
    s_insert_raw (
        self, "bad-2",
        "{\"specversion\": \"1.0\", \"id\": \"bad-2\", \"source\": \"shop\","
        " \"type\": \"order.status.changed.v1\","
        " \"time\": \"2025-01-31T10:02:03Z\","
        " \"datacontenttype\": \"application/json\", \"tenantid\": \"t1\","
        " \"correlationid\": \"c\", \"idempotencykey\": \"bad-2\","
        " \"data\": {\"orderId\": \"O-1\"}}");
    //  A data key over 255 bytes, not ASCII: the decoder's reason quotes
    //  its path cut at a byte count, in the middle of a character
    char name[512] = "x";
    for (int index = 0; index < 200; index++)
        memcpy (name + 1 + 2 * index, "\xc3\xa9", 2);
    char *payload = zsys_sprintf (
        "{\"specversion\": \"1.0\", \"id\": \"bad-3\", \"source\": \"shop\","
        " \"type\": \"order.status.changed.v1\","
        " \"time\": \"2025-01-31T10:02:03Z\","
        " \"datacontenttype\": \"application/json\", \"tenantid\": \"t1\","
        " \"correlationid\": \"c\", \"idempotencykey\": \"bad-3\","
        " \"data\": {\"%s\": 1}}",
        name);
    s_insert_raw (self, "bad-3", payload);
    zstr_free (&payload);
    //  An RFC 3339 time PostgreSQL cannot store (offset beyond 15:59):
    //  refused by the relay with the envelope rules; before, it reached
    //  the broker, whose insert failed, and the batch was never ACKed
    s_insert_raw (
        self, "bad-4",
        "{\"specversion\": \"1.0\", \"id\": \"bad-4\", \"source\": \"shop\","
        " \"type\": \"order.status.changed.v1\","
        " \"time\": \"2025-01-31T10:02:03+16:00\","
        " \"datacontenttype\": \"application/json\", \"tenantid\": \"t1\","
        " \"correlationid\": \"c\", \"idempotencykey\": \"bad-4\","
        " \"data\": {\"tenantId\": \"t1\", \"orderId\": \"O-4\","
        " \"version\": 2, \"previousStatus\": \"confirmed\","
        " \"status\": \"shipped\", \"changedAt\": \"2025-01-31T10:02:03Z\"}}");
    s_insert (self, "b", 1, 3);
    char *log = s_relay_start (self, "peers/relay.secret", extra);
    ck_assert_int_eq (s_wait_count (self, PUBLISHED, 10), 10);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), 6);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"), 6);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE idempotency_key = 'bad-1'"
                                     " AND rejected_reason LIKE 'field%'"),
                      1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE idempotency_key = 'bad-2'"
                                     " AND rejected_reason LIKE '%data%'"),
                      1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE idempotency_key = 'bad-3'"
                                     " AND rejected_reason LIKE"
                                     " '%key longer than 255 bytes'"),
                      1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE idempotency_key = 'bad-4'"
                                     " AND rejected_reason LIKE '%time%'"),
                      1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE rejected_reason IS NOT NULL"),
                      4);
    ck_assert (s_wait_log (log, "\"event\":\"row_rejected\""));
    ck_assert (s_wait_log (log, "\"event\":\"event_rejected\""));
    //  Not retried: later rows flow, the rejected ones are never sent again
    char *published = cw_test_sql_value (
        self->uri, "SELECT string_agg (published_at::text, ',' ORDER BY id)"
                   " FROM shop.outbox WHERE rejected_reason IS NOT NULL");
    s_insert (self, "c", 1, 2);
    ck_assert_int_eq (s_wait_count (self, PUBLISHED, 12), 12);
    char *again = cw_test_sql_value (
        self->uri, "SELECT string_agg (published_at::text, ',' ORDER BY id)"
                   " FROM shop.outbox WHERE rejected_reason IS NOT NULL");
    ck_assert_str_eq (published, again);
    free (published);
    free (again);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), 8);
    s_relay_stop (self);
    zstr_free (&log);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_kill)
{
    fixture_t *self = s_fixture_new ();
    const int rows = 3000;
    s_insert (self, "k", 1, rows);
    const char *extra[] = {"CW_RELAY_BATCH_SIZE=25", "CW_RELAY_DB_POLL=100ms",
                           NULL};
    char *log = s_relay_start (self, "peers/relay.secret", extra);
    //  While batches flow (some published, most not), freeze the broker,
    //  so that the relay's next PUBLISH gets no ACK, then kill -9 the
    //  relay between publish and mark, and thaw the broker
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (s_count (self, PUBLISHED) < 100 && cw_test_now_msec () < deadline)
        usleep (1000);
    ck_assert_int_eq (kill (self->broker, SIGSTOP), 0);
    ck_assert (s_wait_last_line (log, "\"event\":\"publish\""));
    cw_test_kill (self->relay_pid);
    self->relay_pid = 0;
    ck_assert_int_eq (kill (self->broker, SIGCONT), 0);
    long published = s_count (self, PUBLISHED);
    ck_assert_int_gt (published, 0);
    ck_assert_int_lt (published, rows);
    zstr_free (&log);
    log = s_relay_start (self, "peers/relay.secret", extra);
    ck_assert_int_eq (s_wait_count (self, PUBLISHED, rows), rows);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), rows);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"), rows);
    ck_assert_int_eq (
        s_count (self,
                 "SELECT count(DISTINCT idempotency_key) FROM erp_mw.jobs"),
        rows);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE rejected_reason IS NOT NULL"),
                      0);
    s_relay_stop (self);
    zstr_free (&log);
    s_fixture_destroy (&self);
}
END_TEST

//  Lines of the file holding text
static int
s_log_count (const char *path, const char *text)
{
    char *content = cw_fixture_slurp (path);
    ck_assert_ptr_nonnull (content);
    int count = 0;
    for (const char *at = strstr (content, text); at;
         at = strstr (at + 1, text))
        count++;
    free (content);
    return count;
}

START_TEST (test_reject_mark_failed)
{
    fixture_t *self = s_fixture_new ();
    //  Full reads of rows the relay rejects, and a mark that fails (here a
    //  missing grant; a standby after a failover does the same): the
    //  relay must back off, not read and fail again at once
    cw_fixture_sql_ok (self->uri, "REVOKE UPDATE (rejected_reason) ON"
                                  " shop.outbox FROM cw_relay_shop");
    s_insert_raw (self, "bad-1", "{\"specversion\": \"1.0\"}");
    s_insert_raw (self, "bad-2", "{\"specversion\": \"1.0\"}");
    s_insert_raw (self, "bad-3", "{\"specversion\": \"1.0\"}");
    const char *extra[] = {"CW_RELAY_BATCH_SIZE=2", "CW_RELAY_DB_POLL=50ms",
                           NULL};
    char *log = s_relay_start (self, "peers/relay.secret", extra);
    ck_assert (s_wait_log (log, "\"event\":\"mark_failed\""));
    usleep (2000 * 1000);  //  Measures a rate: what 2 s of failing cost
    //  Backoff from 100 ms, doubling: about 5 attempts in 2 s
    int failed = s_log_count (log, "\"event\":\"mark_failed\"");
    ck_assert_msg (failed <= 20, "%d failed marks in 2 s: no backoff", failed);
    cw_fixture_sql_ok (self->uri, "GRANT UPDATE (rejected_reason) ON"
                                  " shop.outbox TO cw_relay_shop");
    ck_assert_int_eq (s_wait_count (self, PUBLISHED, 3), 3);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE rejected_reason IS NOT NULL"),
                      3);
    s_relay_stop (self);
    zstr_free (&log);
    s_fixture_destroy (&self);
}
END_TEST

//  CPU time (user + system) the process used so far, in clock ticks
static long
s_cpu_ticks (pid_t pid)
{
    char path[64];
    snprintf (path, sizeof (path), "/proc/%d/stat", (int) pid);
    char *content = cw_fixture_slurp (path);
    ck_assert_ptr_nonnull (content);
    //  Fields after the ")" of the command name: state is field 3, utime
    //  field 14, stime field 15
    const char *at = strrchr (content, ')');
    ck_assert_ptr_nonnull (at);
    long utime = 0, stime = 0;
    ck_assert_int_eq (sscanf (at + 2,
                              "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u"
                              " %ld %ld",
                              &utime, &stime),
                      2);
    free (content);
    return utime + stime;
}

#define LISTENING                                                              \
    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'cw_relay_shop'"    \
    " AND query LIKE 'LISTEN%'"

START_TEST (test_stop_listen_lost)
{
    fixture_t *self = s_fixture_new ();
    const char *extra[] = {"CW_RELAY_DB_POLL=100ms", NULL};
    char *log = s_relay_start (self, "peers/relay.secret", extra);
    ck_assert_int_eq (s_wait_count (self, LISTENING, 1), 1);
    //  The LISTEN connection is lost and cannot come back (no new
    //  connection to this database); reads go on over the other one
    cw_fixture_sql_ok (self->uri, "DO $$ BEGIN EXECUTE format ('REVOKE"
                                  " CONNECT ON DATABASE %I FROM PUBLIC',"
                                  " current_database ()); END $$");
    cw_fixture_sql_ok (self->uri, "DO $$ BEGIN EXECUTE format ('GRANT"
                                  " CONNECT ON DATABASE %I TO cw_webshop',"
                                  " current_database ()); END $$");
    cw_fixture_sql_ok (self->uri, "SELECT pg_terminate_backend (pid) FROM"
                                  " pg_stat_activity WHERE usename ="
                                  " 'cw_relay_shop' AND query LIKE 'LISTEN%'");
    ck_assert (s_wait_log (log, "\"event\":\"listen_lost\""));
    //  A batch in flight whose ACK does not come (broker frozen)
    ck_assert_int_eq (kill (self->broker, SIGSTOP), 0);
    s_insert (self, "s", 1, 3);
    ck_assert (s_wait_log (log, "\"event\":\"publish\""));
    //  SIGTERM: the relay waits shutdown_timeout (5 s) for the ACK, and
    //  should sleep while it waits
    ck_assert_int_eq (kill (self->relay_pid, SIGTERM), 0);
    ck_assert (s_wait_log (log, "\"event\":\"stopping\""));
    long before = s_cpu_ticks (self->relay_pid);
    usleep (3000 * 1000);  //  Measures CPU use over 3 s of waiting
    long used = s_cpu_ticks (self->relay_pid) - before;
    int status = 0;
    ck_assert_int_eq (waitpid (self->relay_pid, &status, 0), self->relay_pid);
    self->relay_pid = 0;
    cw_fixture_sql_ok (self->uri, "DO $$ BEGIN EXECUTE format ('GRANT"
                                  " CONNECT ON DATABASE %I TO PUBLIC',"
                                  " current_database ()); END $$");
    ck_assert_int_eq (kill (self->broker, SIGCONT), 0);
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    ck_assert (s_wait_log (log, "\"event\":\"batch_abandoned\""));
    ck_assert_msg (used < sysconf (_SC_CLK_TCK) / 2,
                   "relay used %ld ticks of CPU in 3 s waiting for an ACK",
                   used);
    zstr_free (&log);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_signal_database_down)
{
    fixture_t *self = s_fixture_new ();
    const char *extra[] = {"CW_RELAY_DB_POLL=100ms", NULL};
    char *log = s_relay_start (self, "peers/relay.secret", extra);
    ck_assert_int_eq (s_wait_count (self, LISTENING, 1), 1);
    //  The database refuses every connection (a restart, a failover),
    //  from the cluster's maintenance database
    char *name = cw_test_sql_value (self->uri, "SELECT current_database ()");
    ck_assert_ptr_nonnull (name);
    char *refuse =
        zsys_sprintf ("ALTER DATABASE %s ALLOW_CONNECTIONS false", name);
    char *allow =
        zsys_sprintf ("ALTER DATABASE %s ALLOW_CONNECTIONS true", name);
    char *end = zsys_sprintf ("SELECT count (pg_terminate_backend (pid)) FROM"
                              " pg_stat_activity WHERE datname = '%s'",
                              name);
    cw_fixture_sql_ok (cw_test_pguri (), refuse);
    cw_fixture_sql_count (cw_test_pguri (), end);
    //  The relay saw the loss and tries to reconnect 100 ms later
    //  (broker/reconnect): SIGTERM then, with no batch in flight, must end
    //  it at once
    ck_assert (s_wait_log (log, "\"event\":\"read_failed\""));
    usleep (150 * 1000);  //  Into the reconnect, not synchronisation
    long long signalled = cw_test_now_msec ();
    ck_assert_int_eq (kill (self->relay_pid, SIGTERM), 0);
    int status = 0;
    int done = cw_test_wait_exit (self->relay_pid, WAIT_MSEC, &status);
    long long took = cw_test_now_msec () - signalled;
    cw_fixture_sql_ok (cw_test_pguri (), allow);
    ck_assert_int_eq (done, 1);
    self->relay_pid = 0;
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    ck_assert_msg (took < 1000, "relay took %lld ms to exit on SIGTERM", took);
    zstr_free (&refuse);
    zstr_free (&allow);
    zstr_free (&end);
    free (name);
    zstr_free (&log);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_too_large)
{
    fixture_t *self = s_fixture_new ();
    //  Sizes as sent, not as stored: 130000 samples are 650 kB of JSON
    //  but 1.1 MiB of msgpack, more than one PUBLISH can carry; ten rows
    //  of 15000 samples are 750 kB of JSON together but 1.3 MiB of
    //  msgpack, more than one PUBLISH too
    s_insert (self, "a", 1, 3);
    s_insert_samples (self, "huge", 130000);
    char key[32];
    for (int index = 1; index <= 10; index++) {
        snprintf (key, sizeof (key), "big-%d", index);
        s_insert_samples (self, key, 15000);
    }
    s_insert (self, "b", 1, 3);
    const char *extra[] = {"CW_RELAY_DB_POLL=50ms", NULL};
    char *log = s_relay_start (self, "peers/relay.secret", extra);
    //  The huge row is rejected at once, the others all flow
    ck_assert_int_eq (s_wait_count (self, PUBLISHED, 17), 17);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE idempotency_key = 'huge'"
                                     " AND rejected_reason LIKE"
                                     " 'envelope too large%'"),
                      1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE rejected_reason IS NOT NULL"),
                      1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), 16);
    s_relay_stop (self);
    char *content = cw_fixture_slurp (log);
    ck_assert_ptr_nonnull (content);
    ck_assert_msg (!strstr (content, "\"event\":\"encode_failed\""),
                   "relay built a PUBLISH it could not encode: %s", log);
    free (content);
    zstr_free (&log);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_forbidden)
{
    fixture_t *self = s_fixture_new ();
    s_insert (self, "f", 1, 3);
    //  A worker certificate: the broker refuses its PUBLISH
    char *log = s_relay_start (self, "peers/worker.secret", NULL);
    ck_assert (s_wait_log (log, "\"event\":\"publish_refused\""));
    ck_assert (s_wait_log (log, "\"code\":\"forbidden\""));
    ck_assert_int_eq (s_count (self, PUBLISHED), 0);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), 0);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"), 0);
    s_relay_stop (self);
    zstr_free (&log);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_config)
{
    char *program = cw_test_build_path ("relay/causeway-relay");
    char *dir = cw_test_tmpdir ("check_relay_cfg");
    char *log = zsys_sprintf ("%s/log", dir);
    //  A required key missing: exit 2 with a line naming it
    const char *argv[] = {program, NULL};
    const char *envp[] = {"CW_RELAY_BROKER_PUBLIC_KEY=", NULL};
    pid_t pid = cw_test_spawn (argv, envp, log);
    int status = 0;
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 2);
    ck_assert (s_wait_log (log, "broker/public_key"));
    //  A bad value: exit 2 naming the key
    char *log2 = zsys_sprintf ("%s/log2", dir);
    const char *envp2[] = {"CW_RELAY_BROKER_PUBLIC_KEY=x",
                           "CW_RELAY_BROKER_HEARTBEAT=ten", NULL};
    pid = cw_test_spawn (argv, envp2, log2);
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 2);
    ck_assert (s_wait_log (log2, "broker/heartbeat"));
    //  --help: exit 0
    const char *help[] = {program, "--help", NULL};
    pid = cw_test_spawn (help, NULL, log);
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    //  etc/causeway-relay.cfg is exactly the generated sample
    cw_fixture_sample_config_check (dir, "relay/causeway-relay", "etc/causeway-relay.cfg");
    zstr_free (&log2);
    zstr_free (&log);
    cw_test_tmpdir_destroy (&dir);
    free (program);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("relay");
    TCase *tcase = tcase_create ("publish");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_publish);
    tcase_add_test (tcase, test_rejected);
    tcase_add_test (tcase, test_too_large);
    tcase_add_test (tcase, test_reject_mark_failed);
    tcase_add_test (tcase, test_forbidden);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("crash");
    tcase_set_timeout (tcase, 90);
    tcase_add_test (tcase, test_kill);
    tcase_add_test (tcase, test_stop_listen_lost);
    tcase_add_test (tcase, test_signal_database_down);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("config");
    tcase_set_timeout (tcase, 30);
    tcase_add_test (tcase, test_config);
    suite_add_tcase (suite, tcase);
    return suite;
}

int
main (void)
{
    SRunner *runner = srunner_create (s_suite ());
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? 0 : 1;
}
