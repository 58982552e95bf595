/*  =========================================================================
    check_pipeline - the whole pipeline as real processes: a private
    PostgreSQL database per test (migrated with causeway-migrate),
    causeway-broker(s), causeway-worker(s), erpsim and causeway-relay,
    CURVE certificates made at test time, endpoints and ports chosen at run
    time, every process started and stopped by pid. Jobs go into
    erp_mw.jobs by SQL; every wait polls SQL (or erpsim) with a deadline.

    CW_PIPELINE_JOBS: jobs of the fault scenario (default 10000).
    =========================================================================
*/
#include "cw_curve.h"
#include "cw_fixture.h"
#include "cw_test.h"
#include "worker_fixture.h"

#include <arpa/inet.h>
#include <check.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

//  Measured: 10000 jobs take about 5 s plain and 10 s under ASan on the
//  shared 2-core box, so ASan keeps the default.
#define PIPELINE_JOBS_DEFAULT 10000

#define WAIT_MSEC  20000        //  A process comes up
#define LONG_MSEC 150000        //  A scenario's jobs finish
#define BROKERS_MAX 2
#define WORKERS_MAX 4

typedef struct {
    char *tmp;                  //  Certs, URI files, logs
    char *uri;                  //  Superuser URI of the test database
    zcert_t *server;            //  Brokers' certificate
    zcert_t *worker;            //  Workers' certificate
    zcert_t *relay;             //  Relay's certificate (relay:shop)
    worker_sim_t sim;           //  erpsim
    bool sim_up;
    pid_t brokers [BROKERS_MAX];
    char *endpoints [BROKERS_MAX];
    int broker_count;
    pid_t workers [WORKERS_MAX];
    int worker_count;
    pid_t relay_pid;
    int relay_runs;
} fixture_t;

static char *
s_path (fixture_t *self, const char *name)
{
    return zsys_sprintf ("%s/%s", self->tmp, name);
}

//  A migrated database and certificates; no process yet.
static fixture_t *
s_fixture_new (void)
{
    fixture_t *self = (fixture_t *) calloc (1, sizeof (fixture_t));
    self->tmp = cw_test_tmpdir ("check_pipeline");
    self->uri = cw_test_db_new ("pipeline");
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

//  Stops what still runs (workers first, then relay, brokers, erpsim).
static void
s_fixture_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    for (int index = 0; index < self->worker_count; index++)
        if (self->workers [index] > 0)
            cw_test_stop (self->workers [index], 5000);
    if (self->relay_pid > 0)
        cw_test_stop (self->relay_pid, 5000);
    for (int index = 0; index < self->broker_count; index++) {
        if (self->brokers [index] > 0)
            cw_test_stop (self->brokers [index], 5000);
        free (self->endpoints [index]);
    }
    if (self->sim_up)
        worker_sim_stop (&self->sim);
    zcert_destroy (&self->server);
    zcert_destroy (&self->worker);
    zcert_destroy (&self->relay);
    cw_test_db_destroy (&self->uri);
    cw_test_tmpdir_destroy (&self->tmp);
    free (self);
    *self_p = NULL;
}

//  Appends extra (NULL-terminated) to envp after count entries.
static void
s_env_extend (const char **envp, size_t count, size_t size,
              const char *const *extra)
{
    for (size_t index = 0; extra && extra [index]; index++) {
        ck_assert_uint_lt (count, size - 1);
        envp [count++] = extra [index];
    }
    envp [count] = NULL;
}

//  Starts broker number broker_count; extra: CW_BROKER_* overrides
//  (NULL-terminated; later entries win).
static void
s_broker_launch (fixture_t *self, int index, const char *log_name,
                 const char *const *extra);

static int
s_broker_start (fixture_t *self, const char *const *extra)
{
    ck_assert_int_lt (self->broker_count, BROKERS_MAX);
    int index = self->broker_count++;
    char *log_name = zsys_sprintf ("broker-%d.log", index);
    s_broker_launch (self, index, log_name, extra);
    zstr_free (&log_name);
    return index;
}

//  True when a listener could bind 127.0.0.1:port now.
static bool
s_port_free (int port)
{
    struct sockaddr_in address;
    memset (&address, 0, sizeof (address));
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    address.sin_port = htons ((uint16_t) port);
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (fd, 0);
    int on = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof (on));
    int rc = bind (fd, (struct sockaddr *) &address, sizeof (address));
    close (fd);
    return rc == 0;
}

//  A free port below Linux's ephemeral range (32768 and up; OpenBSD's and
//  NetBSD's start at 49152, FreeBSD's at 10000, so there it only lowers
//  the odds): a broker restarted on it finds it free, since no client
//  connection on the box takes such a port as its local one. An
//  ephemeral port the broker got from bind to 0 could be, while it was
//  down: a restart then failed with "Address already in use" (seen once
//  under ASan with the other suites running).
static int
s_stable_port (void)
{
    static unsigned int seed = 0;
    if (!seed)
        seed = (unsigned int) getpid () ^ (unsigned int) cw_test_now_msec ();
    for (int attempt = 0; attempt < 200; attempt++) {
        int port = 20000 + (int) (rand_r (&seed) % 12000);
        if (s_port_free (port))
            return port;
    }
    ck_abort_msg ("no free port in 20000-31999");
    return -1;
}

//  Waits (up to WAIT_MSEC) until the port of endpoint (tcp://127.0.0.1:N)
//  can be bound again (a last safety: s_stable_port's ports are outside
//  the ephemeral ranges).
static void
s_port_wait_free (const char *endpoint)
{
    const char *colon = strrchr (endpoint, ':');
    ck_assert_ptr_nonnull (colon);
    int port = atoi (colon + 1);
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (true) {
        if (s_port_free (port))
            return;
        ck_assert_msg (cw_test_now_msec () < deadline,
                       "port of %s still in use after %d ms", endpoint,
                       WAIT_MSEC);
        usleep (100 * 1000);
    }
}

//  Starts broker index again (after it stopped) on the same endpoint and
//  under the same broker/id, as a restart by the service manager; its
//  log is broker-<index>-<run>.log.
static void
s_broker_restart (fixture_t *self, int index, int run,
                  const char *const *extra)
{
    ck_assert_int_lt (index, self->broker_count);
    ck_assert_int_eq (self->brokers [index], 0);
    char *bind = zsys_sprintf ("CW_BROKER_SERVER_BIND=%s",
                               self->endpoints [index]);
    const char *list [16] = { bind };
    s_env_extend (list, 1, 16, extra);
    char *log_name = zsys_sprintf ("broker-%d-%d.log", index, run);
    s_port_wait_free (self->endpoints [index]);
    free (self->endpoints [index]);
    self->endpoints [index] = NULL;
    s_broker_launch (self, index, log_name, list);
    zstr_free (&log_name);
    zstr_free (&bind);
}

static void
s_broker_launch (fixture_t *self, int index, const char *log_name,
                 const char *const *extra)
{
    //  CW_BROKER_ID=... among extra names the broker (a restart under the
    //  same name); else broker-<index>
    char *id = NULL;
    for (size_t at = 0; extra && extra [at]; at++)
        if (strncmp (extra [at], "CW_BROKER_ID=", 13) == 0)
            id = strdup (extra [at]);
    if (!id)
        id = zsys_sprintf ("CW_BROKER_ID=broker-%d", index);
    const char *settings[] = {
        id,
        "CW_BROKER_SERVER_HEARTBEAT=200ms", "CW_BROKER_DB_POLL=200ms",
        "CW_BROKER_RETRY_BASE=10ms", "CW_BROKER_RETRY_CAP=50ms",
        "CW_BROKER_RETRY_MAX_ATTEMPTS=30", "CW_BROKER_DRAIN=2s",
        "CW_BROKER_LOG_LEVEL=info", NULL, NULL
    };
    //  A port restarts can bind again (extra's CW_BROKER_SERVER_BIND,
    //  a restart's, comes later and wins)
    char *bind = zsys_sprintf ("CW_BROKER_SERVER_BIND=tcp://127.0.0.1:%d",
                               s_stable_port ());
    settings [8] = bind;
    char *endpoint_name = zsys_sprintf ("endpoint-%d", index);
    self->brokers [index] = cw_fixture_broker_start (
        self->tmp, self->uri, endpoint_name, log_name, settings, extra,
        WAIT_MSEC, &self->endpoints [index]);
    zstr_free (&bind);
    zstr_free (&endpoint_name);
    zstr_free (&id);
}

//  Starts a worker against every broker started so far and erpsim;
//  extra: CW_WORKER_* overrides (NULL-terminated).
static int
s_worker_start (fixture_t *self, const char *const *extra)
{
    ck_assert_int_lt (self->worker_count, WORKERS_MAX);
    ck_assert (self->sim_up);
    int index = self->worker_count++;
    char endpoints [1024] = "";
    for (int broker = 0; broker < self->broker_count; broker++) {
        if (broker)
            strncat (endpoints, ",", sizeof (endpoints) - strlen (endpoints) - 1);
        strncat (endpoints, self->endpoints [broker],
                 sizeof (endpoints) - strlen (endpoints) - 1);
    }
    char *env [6] = {
        zsys_sprintf ("CW_WORKER_BROKER_ENDPOINTS=%s", endpoints),
        zsys_sprintf ("CW_WORKER_BROKER_PUBLIC_KEY=%s",
                      zcert_public_txt (self->server)),
        zsys_sprintf ("CW_WORKER_SECURITY_CERTIFICATE_FILE=%s/peers/worker.secret",
                      self->tmp),
        zsys_sprintf ("CW_WORKER_TARGET_BASE_URL=%s", self->sim.base_url),
        zsys_sprintf ("CW_WORKER_TARGET_CREDENTIALS_FILE=%s", self->sim.key_path),
        zsys_sprintf ("CW_WORKER_NAME=worker-%d", index)
    };
    //  Target erp unless extra names another
    const char *target = "CW_WORKER_TARGET_NAME=erp";
    for (size_t entry = 0; extra && extra [entry]; entry++)
        if (strncmp (extra [entry], "CW_WORKER_TARGET_NAME=", 22) == 0)
            target = extra [entry];
    const char *envp [32] = {
        env [0], env [1], env [2], env [3], env [4], env [5],
        target, "CW_WORKER_TARGET_AUTH=api_key",
        "CW_WORKER_HEARTBEAT=200ms", "CW_WORKER_RECONNECT=100ms",
        "CW_WORKER_LOG_LEVEL=warn"
    };
    s_env_extend (envp, 11, 32, extra);
    char *program = cw_test_build_path ("worker/causeway-worker");
    const char *argv [] = { program, NULL };
    char *log = zsys_sprintf ("%s/worker-%d.log", self->tmp, index);
    self->workers [index] = cw_test_spawn (argv, envp, log);
    ck_assert_int_gt (self->workers [index], 0);
    zstr_free (&log);
    free (program);
    for (int entry = 0; entry < 6; entry++)
        zstr_free (&env [entry]);
    return index;
}

//  Starts the relay against broker 0; its log is relay-<run>.log.
static void
s_relay_start (fixture_t *self, const char *const *extra)
{
    char *uri_path = s_path (self, "relay-uri");
    char *relay_uri = cw_test_uri_as (self->uri, "cw_relay_shop");
    cw_fixture_write (uri_path, relay_uri);
    free (relay_uri);
    char *env [4] = {
        zsys_sprintf ("CW_RELAY_DB_URI_FILE=%s", uri_path),
        zsys_sprintf ("CW_RELAY_SECURITY_CERTIFICATE_FILE=%s/peers/relay.secret",
                      self->tmp),
        zsys_sprintf ("CW_RELAY_BROKER_ENDPOINT=%s", self->endpoints [0]),
        zsys_sprintf ("CW_RELAY_BROKER_PUBLIC_KEY=%s",
                      zcert_public_txt (self->server))
    };
    const char *envp [32] = {
        env [0], env [1], env [2], env [3],
        "CW_RELAY_BROKER_HEARTBEAT=200ms", "CW_RELAY_BROKER_RECONNECT=100ms",
        "CW_RELAY_ACK_TIMEOUT=2s", "CW_RELAY_LOG_LEVEL=info"
    };
    s_env_extend (envp, 8, 32, extra);
    char *program = cw_test_build_path ("relay/causeway-relay");
    const char *argv [] = { program, NULL };
    char *log = zsys_sprintf ("%s/relay-%d.log", self->tmp, self->relay_runs++);
    self->relay_pid = cw_test_spawn (argv, envp, log);
    ck_assert_int_gt (self->relay_pid, 0);
    zstr_free (&log);
    free (program);
    for (int entry = 0; entry < 4; entry++)
        zstr_free (&env [entry]);
    zstr_free (&uri_path);
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

//  Jobs by state, for failure messages. Caller frees.
static char *
s_states (fixture_t *self)
{
    char *value = cw_test_sql_value (self->uri,
        "SELECT coalesce (string_agg (state || '=' || n, ' '), 'none')"
        "  FROM (SELECT state, count(*) AS n FROM erp_mw.jobs"
        "         GROUP BY state ORDER BY state) s");
    return value ? value : strdup ("?");
}

//  Polls sql until it returns at least expected; fails after timeout.
static void
s_wait_count (fixture_t *self, const char *sql, long expected, int timeout_msec)
{
    long long deadline = cw_test_now_msec () + timeout_msec;
    long count = -1;
    while (cw_test_now_msec () < deadline) {
        count = s_count (self, sql);
        if (count >= expected)
            return;
        usleep (50 * 1000);
    }
    char *states = s_states (self);
    ck_abort_msg ("%s: %ld, wanted %ld after %d ms (jobs: %s; logs in %s)",
                  sql, count, expected, timeout_msec, states, self->tmp);
    free (states);
}

//  N customer upserts for target erp, keys <prefix>-1..N, customers
//  <prefix>-C-1..N (one effect each); max_attempts is the row's, or NULL
//  when 0 (the broker's retry policy for the flow decides).
static void
s_insert_upserts (fixture_t *self, const char *prefix, int count,
                  int max_attempts)
{
    char *sql = zsys_sprintf (
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "                         target, correlation_id, max_attempts)"
        " SELECT 'http.generic', 't1', '%s-' || g,"
        "        jsonb_build_object ('method', 'POST', 'path', '/api/v1/customers',"
        "            'body', jsonb_build_object ('tenant', 't1',"
        "                'customerId', '%s-C-' || g, 'name', 'Customer ' || g)),"
        "        'erp', 'corr-%s-' || g, NULLIF (%d, 0)"
        "   FROM generate_series (1, %d) AS g",
        prefix, prefix, prefix, max_attempts, count);
    s_sql (self, sql);
    zstr_free (&sql);
}

//  Upserts of ONE customer with versions first..last, ordering key
//  t1:<customer>, keys <customer>-v<version>.
static void
s_insert_versions (fixture_t *self, const char *customer, int first, int last)
{
    char *sql = zsys_sprintf (
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, ordering_key,"
        "                         payload, target, correlation_id)"
        " SELECT 'http.generic', 't1', '%s-v' || g, 't1:%s',"
        "        jsonb_build_object ('method', 'POST', 'path', '/api/v1/customers',"
        "            'body', jsonb_build_object ('tenant', 't1',"
        "                'customerId', '%s', 'name', 'Version ' || g,"
        "                'version', g)),"
        "        'erp', 'corr-%s-' || g"
        "   FROM generate_series (%d, %d) AS g ORDER BY g",
        customer, customer, customer, customer, first, last);
    s_sql (self, sql);
    zstr_free (&sql);
}

//  One job whose body erpsim refuses with 422 (no "name").
static void
s_insert_bad (fixture_t *self, const char *key, const char *ordering_key,
              const char *customer, int version)
{
    char *sql = zsys_sprintf (
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, ordering_key,"
        "                         payload, target, correlation_id)"
        " VALUES ('http.generic', 't1', '%s', %s%s%s,"
        "         jsonb_build_object ('method', 'POST', 'path', '/api/v1/customers',"
        "            'body', jsonb_build_object ('tenant', 't1',"
        "                'customerId', '%s', 'version', %d)),"
        "         'erp', 'corr-%s')",
        key, ordering_key ? "'" : "", ordering_key ? ordering_key : "NULL",
        ordering_key ? "'" : "", customer, version, key);
    s_sql (self, sql);
    zstr_free (&sql);
}

//  erpsim's counts.customers, and how many customers were created other
//  than exactly once (should be 0).
static void
s_sim_effects (fixture_t *self, long *customers_p, long *not_once_p)
{
    json_t *report = worker_sim_introspect (&self->sim);
    *customers_p = (long) json_integer_value (
        json_object_get (json_object_get (report, "counts"), "customers"));
    long not_once = 0;
    const char *id;
    json_t *effect;
    json_object_foreach (json_object_get (json_object_get (report, "effects"),
                                          "customers"), id, effect) {
        if (json_integer_value (json_object_get (effect, "creates")) != 1)
            not_once++;
    }
    *not_once_p = not_once;
    json_decref (report);
}

//  Waits until erpsim serves nothing (stalled requests have finished).
static void
s_sim_idle (fixture_t *self, int timeout_msec)
{
    long long deadline = cw_test_now_msec () + timeout_msec;
    while (cw_test_now_msec () < deadline) {
        json_t *report = worker_sim_introspect (&self->sim);
        json_int_t current = json_integer_value (json_object_get (
            json_object_get (report, "inFlight"), "current"));
        json_decref (report);
        if (current == 0)
            return;
        usleep (50 * 1000);
    }
    ck_abort_msg ("erpsim still has requests in flight");
}

//  Once erpsim is idle: it created each of the jobs' customers exactly
//  once (one effect per idempotency key).
static void
s_assert_each_once (fixture_t *self, long jobs)
{
    s_sim_idle (self, WAIT_MSEC);
    long customers, not_once;
    s_sim_effects (self, &customers, &not_once);
    ck_assert_int_eq (customers, jobs);
    ck_assert_int_eq (not_once, 0);
}

//  Every job the workers run (flow http.generic) done exactly once in
//  effect, and no attempt spent other than by a failed call: attempts =
//  failed attempt rows + 1 success row.
static void
s_assert_attempts_consistent (fixture_t *self)
{
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM erp_mw.jobs j"
        " WHERE j.flow = 'http.generic'"
        "   AND (SELECT count(*) FROM erp_mw.job_attempts a"
        "         WHERE a.job_id = j.id AND a.outcome IN ('ok', 'duplicate')) <> 1"),
        0);
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM erp_mw.jobs j"
        " WHERE j.flow = 'http.generic'"
        "   AND j.attempts <> 1 + (SELECT count(*) FROM erp_mw.job_attempts a"
        "                           WHERE a.job_id = j.id AND a.outcome = 'retry')"),
        0);
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM erp_mw.jobs j"
        " WHERE j.flow = 'http.generic'"
        "   AND j.attempts <> (SELECT coalesce (max (attempt), 0)"
        "                       FROM erp_mw.job_attempts a WHERE a.job_id = j.id)"),
        0);
}

#define DONE "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'"

//  --- Scenarios ------------------------------------------------------------

START_TEST (test_faults_all_done_exactly_once)
{
    long jobs = PIPELINE_JOBS_DEFAULT;
    const char *given = getenv ("CW_PIPELINE_JOBS");
    if (given && *given)
        jobs = strtol (given, NULL, 10);
    ck_assert_int_gt (jobs, 0);
    fixture_t *self = s_fixture_new ();
    //  20% 5xx (half before the effect, half after) and a few stalls past
    //  the worker's 1 s timeout (the retry meets the key in flight: 409)
    worker_sim_start (&self->sim, "--error-rate", "0.1",
                      "--error-after-effect-rate", "0.1", "--stall-rate",
                      "0.002", "--stall-ms", "1500", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    s_insert_upserts (self, "f", (int) jobs, 30);
    const char *worker [] = { "CW_WORKER_TARGET_TIMEOUT=1s",
                              "CW_WORKER_INFLIGHT=64", NULL };
    s_worker_start (self, worker);
    s_worker_start (self, worker);
    long long start = cw_test_now_msec ();
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    long long took = cw_test_now_msec () - start;
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE state <> 'done'"), 0);
    s_assert_each_once (self, jobs);
    long failed = s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                                 " WHERE outcome = 'retry'");
    ck_assert_int_gt (failed, 0);
    s_assert_attempts_consistent (self);
    fprintf (stderr, "pipeline: %ld jobs done in %lld ms (%.0f/s), %ld failed"
             " attempts retried\n", jobs, took,
             took ? jobs * 1000.0 / took : 0.0, failed);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_rejected_dead_after_one_attempt)
{
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    s_worker_start (self, NULL);
    s_insert_bad (self, "bad-1", NULL, "B-1", 1);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'dead'",
                  1, WAIT_MSEC);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE state = 'dead' AND dead_reason = 'rejected'"
                                     "   AND attempts = 1 AND last_error LIKE '%name%'"),
                      1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                                     " WHERE http_status = 422"), 1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"), 1);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_exhausted_dead)
{
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--faults",
                      "{\"POST /api/v1/customers\": {\"errorRate\": 1}}", NULL);
    self->sim_up = true;
    //  The flow's policy (3 attempts) applies to jobs that name no
    //  max_attempts of their own, over the default of 10
    const char *broker [] = {
        "CW_BROKER_RETRY_FLOWS=http.generic=3:100ms:1s", NULL
    };
    s_broker_start (self, broker);
    s_worker_start (self, NULL);
    s_insert_upserts (self, "x", 2, 0);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'dead'",
                  2, WAIT_MSEC);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE dead_reason = 'exhausted'"
                                     "   AND attempts = 3"), 2);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                                     " WHERE outcome = 'retry' AND http_status = 500"),
                      6);
    long customers, not_once;
    s_sim_effects (self, &customers, &not_once);
    ck_assert_int_eq (customers, 0);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_retry_after_honoured)
{
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--rate-limit-rate", "1", "--retry-after",
                      "2", NULL);
    self->sim_up = true;
    //  Retry-After wins over the backoff, up to retry/cap
    const char *broker [] = { "CW_BROKER_RETRY_CAP=10s", NULL };
    s_broker_start (self, broker);
    s_worker_start (self, NULL);
    s_insert_upserts (self, "r", 1, 30);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                        " WHERE http_status = 429", 1, WAIT_MSEC);
    long status = 0;
    json_t *reply = worker_sim_control (&self->sim, "PUT", "/_control/faults",
                                        "{}", &status);
    json_decref (reply);
    ck_assert_int_eq (status, 200);
    s_wait_count (self, DONE, 1, WAIT_MSEC);
    //  The second attempt started no sooner than 2 s after the first ended
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM erp_mw.job_attempts a2"
        "  JOIN erp_mw.job_attempts a1 ON a1.job_id = a2.job_id"
        "   AND a1.attempt = 1 AND a2.attempt = 2"
        " WHERE a1.http_status = 429 AND a2.outcome = 'ok'"
        "   AND a2.started_at >= a1.finished_at + interval '2 seconds'"), 1);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"), 2);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_worker_killed_jobs_finish_elsewhere)
{
    const int jobs = 600;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "100", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    const char *worker [] = { "CW_WORKER_INFLIGHT=16", NULL };
    s_worker_start (self, worker);
    s_worker_start (self, worker);
    s_insert_upserts (self, "w", jobs, 30);
    s_wait_count (self, DONE, 100, LONG_MSEC);
    //  Both workers busy: kill one with calls in flight
    ck_assert_int_gt (s_count (self, "SELECT count(DISTINCT worker)"
                                     "  FROM erp_mw.job_attempts"), 1);
    ck_assert_int_gt (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE state = 'leased'"), 0);
    cw_test_kill (self->workers [0]);
    self->workers [0] = 0;
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    s_assert_each_once (self, jobs);
    //  No attempt spent by the kill: attempts = failed calls + 1
    s_assert_attempts_consistent (self);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_broker_killed_other_finishes)
{
    const int jobs = 600;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "50", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    const char *broker [] = { "CW_BROKER_LEASE=2s", "CW_BROKER_RENEW_MARGIN=1s",
                              "CW_BROKER_JOB_DEADLINE=1s", NULL };
    s_broker_start (self, broker);
    s_broker_start (self, broker);
    const char *worker [] = { "CW_WORKER_INFLIGHT=32", NULL };
    s_worker_start (self, worker);
    s_insert_upserts (self, "b", jobs, 30);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs"
                        " WHERE state = 'leased' AND lease_owner LIKE 'broker-0/%'",
                  1, LONG_MSEC);
    s_wait_count (self, DONE, 100, LONG_MSEC);
    cw_test_kill (self->brokers [0]);
    self->brokers [0] = 0;
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    s_assert_each_once (self, jobs);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE lease_owner IS NOT NULL"), 0);
    s_assert_attempts_consistent (self);
    s_fixture_destroy (&self);
}
END_TEST

//  A broker killed and started again under the same broker/id: its
//  previous run's leases are not its own (they expire and are swept back),
//  so every job still finishes, once each
START_TEST (test_broker_restarted_same_id)
{
    const int jobs = 300;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "50", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    const char *broker [] = { "CW_BROKER_ID=fixed", "CW_BROKER_LEASE=2s",
                              "CW_BROKER_RENEW_MARGIN=1s",
                              "CW_BROKER_JOB_DEADLINE=1s", NULL };
    s_broker_start (self, broker);
    const char *worker [] = { "CW_WORKER_INFLIGHT=32", NULL };
    s_worker_start (self, worker);
    s_insert_upserts (self, "r", jobs, 30);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs"
                        " WHERE state = 'leased' AND lease_owner LIKE 'fixed/%'",
                  1, LONG_MSEC);
    cw_test_kill (self->brokers [0]);
    self->brokers [0] = 0;
    s_broker_start (self, broker);
    s_worker_start (self, worker);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    s_assert_each_once (self, jobs);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE lease_owner IS NOT NULL"), 0);
    s_assert_attempts_consistent (self);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_ordering_kept_per_key)
{
    const int jobs = 100;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--jitter-ms", "5", NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    s_worker_start (self, NULL);
    s_worker_start (self, NULL);
    s_insert_versions (self, "O-1", 1, jobs);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    //  In order at erpsim: a version older than the stored one is 409
    //  (stale-version), so 99 updates mean every upsert came after the last
    json_t *report = worker_sim_introspect (&self->sim);
    json_t *customers = json_object_get (json_object_get (report, "effects"),
                                         "customers");
    ck_assert_int_eq (json_object_size (customers), 1);
    const char *id;
    json_t *effect;
    json_object_foreach (customers, id, effect) {
        ck_assert_int_eq (json_integer_value (json_object_get (effect, "creates")), 1);
        ck_assert_int_eq (json_integer_value (json_object_get (effect, "updates")),
                          jobs - 1);
    }
    json_decref (report);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                                     " WHERE http_status <> 200 AND http_status <> 201"),
                      0);
    //  And in the database: each attempt of the key started after the
    //  previous job's attempt finished
    ck_assert_int_eq (s_count (self,
        "SELECT count(*) FROM (SELECT a.started_at, lag (a.finished_at)"
        "                        OVER (ORDER BY a.job_id) AS previous"
        "                        FROM erp_mw.job_attempts a) s"
        " WHERE s.started_at < s.previous"), 0);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_dead_parks_successors)
{
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    s_worker_start (self, NULL);
    //  Key A: versions 1-4, a bad one (5), then 6-10; key B: 1-10
    s_insert_versions (self, "A", 1, 4);
    s_insert_bad (self, "A-v5", "t1:A", "A", 5);
    s_insert_versions (self, "A", 6, 10);
    s_insert_versions (self, "B", 1, 10);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs"
                        " WHERE idempotency_key = 'A-v5' AND state = 'dead'"
                        "   AND dead_reason = 'rejected'", 1, WAIT_MSEC);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs"
                        " WHERE ordering_key = 't1:B' AND state = 'done'",
                  10, WAIT_MSEC);
    //  A job inserted after all that, without a key, done too: the broker
    //  has had its chances to claim A's successors
    s_insert_upserts (self, "sentinel", 1, 30);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs"
                        " WHERE idempotency_key = 'sentinel-1' AND state = 'done'",
                  1, WAIT_MSEC);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE ordering_key = 't1:A' AND state = 'done'"),
                      4);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE ordering_key = 't1:A'"
                                     "   AND idempotency_key <> 'A-v5'"
                                     "   AND state IN ('ready', 'parked')"), 5);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts a"
                                     "  JOIN erp_mw.jobs j ON j.id = a.job_id"
                                     " WHERE j.ordering_key = 't1:A'"), 5);
    s_fixture_destroy (&self);
}
END_TEST

START_TEST (test_target_cap_respected)
{
    const int jobs = 200, cap = 5;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "50", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    const char *broker [] = { "CW_BROKER_TARGETS=erp=5:0:0", NULL };
    s_broker_start (self, broker);
    const char *worker [] = { "CW_WORKER_INFLIGHT=64", NULL };
    s_worker_start (self, worker);
    s_insert_upserts (self, "cap", jobs, 30);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    json_t *report = worker_sim_introspect (&self->sim);
    json_int_t max = json_integer_value (json_object_get (
        json_object_get (report, "inFlight"), "max"));
    json_decref (report);
    ck_assert_int_le (max, cap);
    //  The cap, not the worker, was the limit
    ck_assert_int_ge (max, 2);
    s_fixture_destroy (&self);
}
END_TEST

//  An ERP worker and a webshop worker serve the same flow: each gets only
//  its target's jobs (before READY carried targets, half of them went to
//  the other worker, were answered transient and died exhausted).
START_TEST (test_targets_kept_apart)
{
    const int jobs = 200;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--log-level", "warn", NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    s_insert_upserts (self, "erp", jobs / 2, 3);
    s_sql (self, "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                 "    payload, target, correlation_id, max_attempts)"
                 " SELECT 'http.generic', 't1', 'shop-' || g,"
                 "        jsonb_build_object ('method', 'POST', 'path',"
                 "            '/api/v1/customers', 'body', jsonb_build_object ("
                 "                'tenant', 't1', 'customerId', 'shop-C-' || g,"
                 "                'name', 'Customer ' || g)),"
                 "        'webshop', 'corr-shop-' || g, 3"
                 "   FROM generate_series (1, 100) AS g");
    const char *shop [] = { "CW_WORKER_TARGET_NAME=webshop", NULL };
    s_worker_start (self, NULL);
    s_worker_start (self, shop);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    //  Not one attempt at the wrong worker (it answers transient)
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"
                                     " WHERE outcome <> 'ok'"), 0);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.job_attempts"),
                      jobs);
    s_assert_each_once (self, jobs);
    s_fixture_destroy (&self);
}
END_TEST

#define PUBLISHED "SELECT count(*) FROM shop.outbox WHERE published_at IS NOT NULL"

//  rows order.status.changed events in shop.outbox, keys ev-1..rows,
//  written as the webshop writes them (role cw_webshop)
static void
s_insert_outbox (fixture_t *self, int rows)
{
    char *webshop = cw_test_uri_as (self->uri, "cw_webshop");
    char *sql = zsys_sprintf (
        "INSERT INTO shop.outbox (event_type, tenant, idempotency_key,"
        "                         payload, correlation_id)"
        " SELECT 'order.status.changed.v1', 't1', 'ev-' || i,"
        "   jsonb_build_object ('specversion', '1.0', 'id', 'ev-' || i,"
        "     'source', 'shop', 'type', 'order.status.changed.v1',"
        "     'time', '2025-01-31T10:02:03.123Z',"
        "     'datacontenttype', 'application/json', 'tenantid', 't1',"
        "     'correlationid', 'c-' || i, 'idempotencykey', 'ev-' || i,"
        "     'data', jsonb_build_object ('tenantId', 't1',"
        "       'orderId', 'O-' || i, 'version', 2,"
        "       'previousStatus', 'confirmed', 'status', 'shipped',"
        "       'changedAt', '2025-01-31T10:02:03.123Z')), 'c-' || i"
        "   FROM generate_series (1, %d) AS i", rows);
    char error [512] = "";
    ck_assert_msg (cw_test_sql (webshop, sql, error, sizeof (error)) == 0,
                   "%s", error);
    zstr_free (&sql);
    free (webshop);
}

START_TEST (test_relay_killed_no_loss_no_duplicate)
{
    const int rows = 2000;
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    s_insert_outbox (self, rows);
    const char *relay [] = { "CW_RELAY_BATCH_SIZE=20", "CW_RELAY_DB_POLL=100ms",
                             NULL };
    s_relay_start (self, relay);
    s_wait_count (self, PUBLISHED, 200, WAIT_MSEC);
    cw_test_kill (self->relay_pid);
    self->relay_pid = 0;
    long published = s_count (self, PUBLISHED);
    ck_assert_int_lt (published, rows);
    s_relay_start (self, relay);
    s_wait_count (self, PUBLISHED, rows, LONG_MSEC);
    int status = cw_test_stop (self->relay_pid, 10000);
    self->relay_pid = 0;
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "relay exit status %d", status);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE rejected_reason IS NOT NULL"), 0);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), rows);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"), rows);
    ck_assert_int_eq (s_count (self, "SELECT count(DISTINCT idempotency_key)"
                                     "  FROM erp_mw.jobs"), rows);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox i"
                                     "  JOIN erp_mw.jobs j ON j.id = i.job_id"
                                     " WHERE j.idempotency_key = i.idempotency_key"),
                      rows);
    s_fixture_destroy (&self);
}
END_TEST

//  Every connection the broker and the relay hold to the database is
//  terminated several times while jobs run and events are published (a
//  PostgreSQL restart, a failover, a proxy dropping connections): the
//  broker and the relay reconnect and go on; every job ends done with one
//  effect each and no attempt spent by the loss; every event is published
//  once, into one job.
//  Every line of a log is one JSON record.
static void
s_assert_records (const char *text, const char *path)
{
    for (const char *line = text; *line;) {
        const char *end = strchr (line, '\n');
        ck_assert_msg (*line == '{', "%s: not a log record: %.*s", path,
                       (int) (end ? end - line : (long) strlen (line)), line);
        if (!end)
            break;
        line = end + 1;
    }
}

#define OTHERS "SELECT count (pg_terminate_backend (pid)) FROM pg_stat_activity" \
               " WHERE datname = current_database () AND pid <> pg_backend_pid ()"

//  The database-loss scenarios' start: erpsim (5 ms), broker 0, one
//  worker, the relay publishing rows outbox events, jobs upserts under
//  prefix; returns once 100 jobs are done (mid-run).
static void
s_database_scenario (fixture_t *self, const char *prefix, int jobs, int rows)
{
    worker_sim_start (&self->sim, "--latency-ms", "5", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    const char *worker [] = { "CW_WORKER_INFLIGHT=32", NULL };
    s_worker_start (self, worker);
    s_insert_outbox (self, rows);
    const char *relay [] = { "CW_RELAY_BATCH_SIZE=20", "CW_RELAY_DB_POLL=100ms",
                             NULL };
    s_relay_start (self, relay);
    s_insert_upserts (self, prefix, jobs, 30);
    s_wait_count (self, DONE, 100, LONG_MSEC);
}

//  The database-loss scenarios' end: every upsert done once at erpsim
//  with no attempt spent by the loss, every event published into one
//  inbox row and one job, broker 0 and the relay still running. Returns
//  broker 0's log (caller frees), every line checked to be a JSON record.
static char *
s_database_scenario_end (fixture_t *self, int jobs, int rows)
{
    s_wait_count (self, DONE " AND flow = 'http.generic'", jobs, LONG_MSEC);
    s_wait_count (self, PUBLISHED, rows, LONG_MSEC);
    s_assert_each_once (self, jobs);
    s_assert_attempts_consistent (self);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), rows);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE flow <> 'http.generic'"), rows);
    ck_assert_int_eq (kill (self->brokers [0], 0), 0);
    ck_assert_int_eq (kill (self->relay_pid, 0), 0);
    char *log = s_path (self, "broker-0.log");
    char *text = cw_fixture_slurp (log);
    ck_assert_ptr_nonnull (text);
    s_assert_records (text, log);
    zstr_free (&log);
    return text;
}

START_TEST (test_database_connections_lost)
{
    const int jobs = 2000;
    const int rows = 1000;
    fixture_t *self = s_fixture_new ();
    s_database_scenario (self, "lost", jobs, rows);
    long terminated = 0;
    for (int round = 0; round < 8; round++) {
        terminated += s_count (self, OTHERS);
        usleep (150 * 1000);
    }
    ck_assert_int_gt (terminated, 0);
    //  Both still serve, and said what happened in their logs, nothing
    //  else: every line a JSON record (none of libpq's own)
    char *text = s_database_scenario_end (self, jobs, rows);
    char *relay_log = s_path (self, "relay-0.log");
    char *relay_text = cw_fixture_slurp (relay_log);
    ck_assert_ptr_nonnull (relay_text);
    s_assert_records (relay_text, relay_log);
    ck_assert_msg (strstr (relay_text, "\"listen_lost\""), "no listen_lost in %s",
                   relay_log);
    free (relay_text);
    zstr_free (&relay_log);
    ck_assert_msg (strstr (text, "\"db_reconnect\""), "no db_reconnect");
    ck_assert_msg (strstr (text, "\"listen_lost\""), "no listen_lost");
    int reconnects = 0;
    for (const char *at = text; (at = strstr (at, "\"db_reconnect\"")); at++)
        reconnects++;
    fprintf (stderr, "pipeline: %ld connections terminated, broker"
             " reconnected %d times\n", terminated, reconnects);
    if (getenv ("CW_TEST_KEEP_LOG"))
        fprintf (stderr, "%s", text);
    free (text);
    s_fixture_destroy (&self);
}
END_TEST

//  The database refuses every connection for 5 s (as during a PostgreSQL
//  restart or failover) while jobs run and events are published: broker
//  and relay keep trying, keep what they were given, and finish when it
//  is back; nothing lost, nothing twice.
START_TEST (test_database_outage)
{
    const int jobs = 2000;
    const int rows = 1000;
    fixture_t *self = s_fixture_new ();
    s_database_scenario (self, "out", jobs, rows);
    long terminated = cw_fixture_db_refuse (self->uri, true);
    long long down_at = cw_test_now_msec ();
    long done_before = -1;
    while (cw_test_now_msec () < down_at + 5000)
        usleep (100 * 1000);
    cw_fixture_db_refuse (self->uri, false);
    done_before = s_count (self, DONE " AND flow = 'http.generic'");
    ck_assert_int_gt (terminated, 0);
    char *text = s_database_scenario_end (self, jobs, rows);
    ck_assert_msg (strstr (text, "\"db_connect_failed\""),
                   "no db_connect_failed");
    if (getenv ("CW_TEST_KEEP_LOG"))
        fprintf (stderr, "%s", text);
    fprintf (stderr, "pipeline: outage of 5 s, %ld connections terminated,"
             " %ld of %d jobs done when it ended\n", terminated, done_before,
             jobs);
    free (text);
    s_fixture_destroy (&self);
}
END_TEST

//  --- Processes coming and going -------------------------------------------

#define NOT_OK "SELECT count(*) FROM erp_mw.job_attempts WHERE outcome <> 'ok'"

//  A job done by the only broker left: the workers serve it (again)
static void
s_assert_served (fixture_t *self, const char *prefix, int jobs)
{
    s_insert_upserts (self, prefix, jobs, 30);
    char *sql = zsys_sprintf ("SELECT count(*) FROM erp_mw.jobs"
                              " WHERE idempotency_key LIKE '%s-%%'"
                              "   AND state = 'done'", prefix);
    s_wait_count (self, sql, jobs, WAIT_MSEC);
    zstr_free (&sql);
}

//  A worker on two brokers; broker 0 killed with jobs out at the worker
//  and started again at once on the same endpoint (faster than the
//  worker's liveness: the worker's DEALER reconnects by itself). The
//  worker opens a new session with it (its RESULTs for the old run are
//  refused unknown_session, or its liveness runs out), the old run's
//  leases expire and are run again, and the restarted broker alone then
//  gets jobs done by the worker.
START_TEST (test_broker_restart_same_endpoint)
{
    const int jobs = 300;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "50", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    const char *broker [] = { "CW_BROKER_LEASE=2s", "CW_BROKER_RENEW_MARGIN=1s",
                              "CW_BROKER_JOB_DEADLINE=1s", NULL };
    s_broker_start (self, broker);
    s_broker_start (self, broker);
    const char *worker [] = { "CW_WORKER_INFLIGHT=16", NULL };
    s_worker_start (self, worker);
    s_insert_upserts (self, "rs", jobs, 30);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs"
                        " WHERE state = 'leased' AND lease_owner LIKE 'broker-0/%'",
                  1, LONG_MSEC);
    s_wait_count (self, DONE, 50, LONG_MSEC);
    cw_test_kill (self->brokers [0]);
    self->brokers [0] = 0;
    s_broker_restart (self, 0, 1, broker);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    //  Broker 1 gone: the restarted broker 0 alone has the worker
    int status = cw_test_stop (self->brokers [1], 10000);
    self->brokers [1] = 0;
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "broker 1 exit status %d", status);
    s_assert_served (self, "after", 20);
    s_assert_each_once (self, jobs + 20);
    s_assert_attempts_consistent (self);
    ck_assert_int_eq (s_count (self, NOT_OK), 0);
    s_fixture_destroy (&self);
}
END_TEST

//  A worker frozen (SIGSTOP, a paused VM) for longer than the liveness
//  while it runs jobs: the broker forgets it and gives its jobs to the
//  other worker without spending an attempt; thawed, the frozen worker
//  comes back into service.
START_TEST (test_worker_frozen)
{
    const int jobs = 400;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "50", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    const char *worker [] = { "CW_WORKER_INFLIGHT=8", NULL };
    s_worker_start (self, worker);
    s_worker_start (self, worker);
    s_insert_upserts (self, "wf", jobs, 30);
    s_wait_count (self, DONE, 50, LONG_MSEC);
    ck_assert_int_eq (kill (self->workers [0], SIGSTOP), 0);
    usleep (1500 * 1000);
    ck_assert_int_eq (kill (self->workers [0], SIGCONT), 0);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    int status = cw_test_stop (self->workers [1], 10000);
    self->workers [1] = 0;
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "worker 1 exit status %d", status);
    s_assert_served (self, "after", 20);
    s_assert_each_once (self, jobs + 20);
    s_assert_attempts_consistent (self);
    ck_assert_int_eq (s_count (self, NOT_OK), 0);
    s_fixture_destroy (&self);
}
END_TEST

//  The only broker frozen (SIGSTOP) for longer than the workers'
//  liveness: the worker abandons its jobs and reconnects with backoff;
//  thawed, the broker forgets the old session and re-dispatches its jobs
//  without spending an attempt, and everything finishes.
START_TEST (test_broker_frozen)
{
    const int jobs = 400;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "50", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    const char *worker [] = { "CW_WORKER_INFLIGHT=16", NULL };
    s_worker_start (self, worker);
    s_insert_upserts (self, "bf", jobs, 30);
    s_wait_count (self, DONE, 50, LONG_MSEC);
    ck_assert_int_eq (kill (self->brokers [0], SIGSTOP), 0);
    usleep (1500 * 1000);
    ck_assert_int_eq (kill (self->brokers [0], SIGCONT), 0);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    s_assert_each_once (self, jobs);
    s_assert_attempts_consistent (self);
    ck_assert_int_eq (s_count (self, NOT_OK), 0);
    s_fixture_destroy (&self);
}
END_TEST

//  Rolling restart of two brokers (SIGTERM, wait for the drain, start
//  again on the same endpoint, then the other) under one pool of two
//  workers: every job done once, no attempt spent, none lost.
START_TEST (test_rolling_restart)
{
    const int jobs = 600;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "20", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    const char *broker [] = { "CW_BROKER_LEASE=2s", "CW_BROKER_RENEW_MARGIN=1s",
                              "CW_BROKER_JOB_DEADLINE=1s", NULL };
    s_broker_start (self, broker);
    s_broker_start (self, broker);
    const char *worker [] = { "CW_WORKER_INFLIGHT=8", NULL };
    s_worker_start (self, worker);
    s_worker_start (self, worker);
    s_insert_upserts (self, "rr", jobs, 30);
    long done = 50;
    for (int index = 0; index < 2; index++) {
        s_wait_count (self, DONE, done, LONG_MSEC);
        int status = cw_test_stop (self->brokers [index], 10000);
        self->brokers [index] = 0;
        ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                       "broker %d exit status %d", index, status);
        s_broker_restart (self, index, 1, broker);
        done = s_count (self, DONE) + 50;
        ck_assert_int_lt (done, jobs);
    }
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    s_assert_each_once (self, jobs);
    s_assert_attempts_consistent (self);
    ck_assert_int_eq (s_count (self, NOT_OK), 0);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"
                                     " WHERE lease_owner IS NOT NULL"), 0);
    s_fixture_destroy (&self);
}
END_TEST

//  SIGTERM to a worker whose broker cannot be reached (frozen): it
//  finishes its calls, cannot report them, and still exits 0 within its
//  shutdown_timeout; the jobs are run again by another worker once the
//  broker is back, each once in effect.
START_TEST (test_worker_stop_broker_unreachable)
{
    const int jobs = 40;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "300", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    s_broker_start (self, NULL);
    const char *worker [] = { "CW_WORKER_INFLIGHT=8",
                              "CW_WORKER_SHUTDOWN_TIMEOUT=2s", NULL };
    s_worker_start (self, worker);
    s_insert_upserts (self, "su", jobs, 30);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs"
                        " WHERE state = 'leased'", 1, WAIT_MSEC);
    usleep (100 * 1000);
    ck_assert_int_eq (kill (self->brokers [0], SIGSTOP), 0);
    long long start = cw_test_now_msec ();
    int status = cw_test_stop (self->workers [0], 6000);
    long long took = cw_test_now_msec () - start;
    self->workers [0] = 0;
    ck_assert_int_eq (kill (self->brokers [0], SIGCONT), 0);
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "worker exit status %d after %lld ms", status, took);
    ck_assert_int_lt (took, 4000);
    s_worker_start (self, worker);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    s_assert_each_once (self, jobs);
    s_assert_attempts_consistent (self);
    s_fixture_destroy (&self);
}
END_TEST

//  One of two brokers frozen (SIGSTOP) for longer than its leases: the
//  other broker sweeps them back and runs the jobs; thawed, the frozen
//  one must not send out again the jobs whose lease ran out (the same job
//  at two workers at once: erpsim answers the second 409 "key in flight",
//  an attempt spent), and its late results are not recorded.
START_TEST (test_broker_frozen_past_lease)
{
    const int jobs = 600;
    fixture_t *self = s_fixture_new ();
    worker_sim_start (&self->sim, "--latency-ms", "200", "--log-level", "warn",
                      NULL);
    self->sim_up = true;
    const char *broker [] = { "CW_BROKER_LEASE=2s", "CW_BROKER_RENEW_MARGIN=1s",
                              "CW_BROKER_JOB_DEADLINE=1s", NULL };
    s_broker_start (self, broker);
    s_broker_start (self, broker);
    const char *worker [] = { "CW_WORKER_INFLIGHT=16", NULL };
    s_worker_start (self, worker);
    s_worker_start (self, worker);
    s_insert_upserts (self, "fl", jobs, 30);
    s_wait_count (self, "SELECT count(*) FROM erp_mw.jobs"
                        " WHERE state = 'leased' AND lease_owner LIKE 'broker-0/%'",
                  1, LONG_MSEC);
    ck_assert_int_eq (kill (self->brokers [0], SIGSTOP), 0);
    usleep (3000 * 1000);
    ck_assert_int_eq (kill (self->brokers [0], SIGCONT), 0);
    s_wait_count (self, DONE, jobs, LONG_MSEC);
    s_assert_each_once (self, jobs);
    s_assert_attempts_consistent (self);
    ck_assert_int_eq (s_count (self, NOT_OK), 0);
    ck_assert_int_eq (kill (self->brokers [0], 0), 0);
    s_fixture_destroy (&self);
}
END_TEST

//  The relay and the broker both killed while events flow, the broker
//  started again on its endpoint, then the relay: every event published
//  once, into one inbox row and one job.
START_TEST (test_relay_and_broker_restarted)
{
    const int rows = 2000;
    fixture_t *self = s_fixture_new ();
    s_broker_start (self, NULL);
    s_insert_outbox (self, rows);
    const char *relay [] = { "CW_RELAY_BATCH_SIZE=20", "CW_RELAY_DB_POLL=100ms",
                             NULL };
    s_relay_start (self, relay);
    s_wait_count (self, PUBLISHED, 200, WAIT_MSEC);
    cw_test_kill (self->brokers [0]);
    self->brokers [0] = 0;
    usleep (300 * 1000);
    cw_test_kill (self->relay_pid);
    self->relay_pid = 0;
    ck_assert_int_lt (s_count (self, PUBLISHED), rows);
    s_broker_restart (self, 0, 1, NULL);
    s_relay_start (self, relay);
    s_wait_count (self, PUBLISHED, rows, LONG_MSEC);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM shop.outbox"
                                     " WHERE rejected_reason IS NOT NULL"), 0);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.inbox"), rows);
    ck_assert_int_eq (s_count (self, "SELECT count(DISTINCT idempotency_key)"
                                     "  FROM erp_mw.jobs"), rows);
    ck_assert_int_eq (s_count (self, "SELECT count(*) FROM erp_mw.jobs"), rows);
    s_fixture_destroy (&self);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("pipeline");
    struct {
        const char *name;
        const TTest *test;
    } cases [] = {
        { "faults", test_faults_all_done_exactly_once },
        { "rejected", test_rejected_dead_after_one_attempt },
        { "exhausted", test_exhausted_dead },
        { "retry_after", test_retry_after_honoured },
        { "worker_killed", test_worker_killed_jobs_finish_elsewhere },
        { "broker_killed", test_broker_killed_other_finishes },
        { "broker_restarted", test_broker_restarted_same_id },
        { "ordering", test_ordering_kept_per_key },
        { "dead_parks", test_dead_parks_successors },
        { "target_cap", test_target_cap_respected },
        { "targets", test_targets_kept_apart },
        { "relay_killed", test_relay_killed_no_loss_no_duplicate },
        { "database_lost", test_database_connections_lost },
        { "database_outage", test_database_outage },
        { "broker_restart_same_endpoint", test_broker_restart_same_endpoint },
        { "worker_frozen", test_worker_frozen },
        { "broker_frozen", test_broker_frozen },
        { "rolling_restart", test_rolling_restart },
        { "worker_stop_unreachable", test_worker_stop_broker_unreachable },
        { "broker_frozen_past_lease", test_broker_frozen_past_lease },
        { "relay_and_broker", test_relay_and_broker_restarted },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        TCase *tcase = tcase_create (cases [index].name);
        tcase_set_timeout (tcase, 300);
        tcase_add_test (tcase, cases [index].test);
        suite_add_tcase (suite, tcase);
    }
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
