/*  =========================================================================
    check_worker - causeway-worker as a real process: a test broker (a real
    ROUTER socket with CURVE and ZAP, speaking CWP/1 through cw_msg) and a
    real erpsim. READY, credit, JOB -> RESULT, heartbeats, broker loss and
    reconnect, and the SIGTERM sequence of a worker stopped by pid.
    =========================================================================
*/
#include "cw_curve.h"
#include "cw_log.h"
#include "cw_msg.h"
#include "cw_fixture.h"
#include "cw_test.h"
#include "cw_zap.h"
#include "worker_fixture.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <czmq.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#define WAIT_MSEC 10000
#define HEARTBEAT "200ms"
#define HEARTBEAT_MSEC 200

typedef struct {
    worker_sim_t sim;      //  The ERP
    char *dir;             //  Keys, certs, logs
    char *certs;           //  Allowed public certs (ZAP)
    zactor_t *zap;         //  ZAP handler
    zcert_t *cert;         //  Broker's certificate
    zsock_t *router;       //  The test broker
    char *endpoint;        //  Where it listens
    pid_t pid;             //  The worker
    char *log_path;        //  The worker's log
    zframe_t *peer;        //  Routing id of the worker's session
    int64_t heartbeat_at;  //  Next HEARTBEAT we send
} fixture_t;

//  Starts erpsim, the broker side and the worker with extra environment
//  entries (NULL-terminated).
static fixture_t *
s_start (const char *const *sim_flags, const char *first_env, ...)
{
    fixture_t *self = (fixture_t *) zmalloc (sizeof (fixture_t));
    if (sim_flags && sim_flags[0])
        worker_sim_start (&self->sim, sim_flags[0], sim_flags[1], sim_flags[2],
                          sim_flags[3], NULL);
    else
        worker_sim_start (&self->sim, NULL);
    self->dir = cw_test_tmpdir ("check_worker");
    self->certs = zsys_sprintf ("%s/certs", self->dir);
    ck_assert_int_eq (zsys_dir_create ("%s", self->certs), 0);
    self->log_path = zsys_sprintf ("%s/worker.log", self->dir);

    //  The worker's key pair: public half allowed, secret half its own
    zcert_t *worker_cert = cw_curve_cert_new ("worker", "worker");
    char error[512];
    ck_assert_msg (cw_curve_cert_save (worker_cert, self->dir, "worker", false,
                                       error, sizeof (error))
                       == 0,
                   "%s", error);
    ck_assert_int_eq (cw_curve_cert_save (worker_cert, self->certs, "worker",
                                          false, error, sizeof (error)),
                      0);
    char *secret = zsys_sprintf ("%s/worker.secret", self->certs);
    unlink (secret);
    zstr_free (&secret);
    zcert_destroy (&worker_cert);

    cw_log_init ("check_worker", CW_LOG_ERROR);
    self->zap = cw_zap_new (self->certs, error, sizeof (error));
    ck_assert_msg (self->zap != NULL, "%s", error);
    self->cert = zcert_new ();
    self->router = zsock_new (ZMQ_ROUTER);
    cw_curve_server_setup (self->router, self->cert, NULL);
    ck_assert_int_ne (zsock_bind (self->router, "tcp://127.0.0.1:*"), -1);
    self->endpoint = strdup (zsock_endpoint (self->router));

    char *program = cw_test_build_path ("worker/causeway-worker");
    char *env_endpoint =
        zsys_sprintf ("CW_WORKER_BROKER_ENDPOINTS=%s", self->endpoint);
    char *env_key = zsys_sprintf ("CW_WORKER_BROKER_PUBLIC_KEY=%s",
                                  zcert_public_txt (self->cert));
    char *env_cert = zsys_sprintf (
        "CW_WORKER_SECURITY_CERTIFICATE_FILE=%s/worker.secret", self->dir);
    char *env_base =
        zsys_sprintf ("CW_WORKER_TARGET_BASE_URL=%s", self->sim.base_url);
    char *env_credentials = zsys_sprintf (
        "CW_WORKER_TARGET_CREDENTIALS_FILE=%s", self->sim.key_path);
    const char *envp[32] = {env_endpoint,
                            env_key,
                            env_cert,
                            env_base,
                            env_credentials,
                            "CW_WORKER_TARGET_AUTH=api_key",
                            "CW_WORKER_HEARTBEAT=" HEARTBEAT,
                            "CW_WORKER_RECONNECT=100ms",
                            "CW_WORKER_LOG_LEVEL=debug",
                            "CW_WORKER_NAME=test-worker"};
    size_t count = 10;
    va_list args;
    va_start (args, first_env);
    for (const char *entry = first_env; entry && count < 31;
         entry = va_arg (args, const char *))
        envp[count++] = entry;
    va_end (args);
    envp[count] = NULL;
    const char *argv[] = {program, NULL};
    self->pid = cw_test_spawn (argv, envp, self->log_path);
    ck_assert_int_gt (self->pid, 0);
    zstr_free (&env_endpoint);
    zstr_free (&env_key);
    zstr_free (&env_cert);
    zstr_free (&env_base);
    zstr_free (&env_credentials);
    free (program);
    return self;
}

static void
s_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    if (self->pid > 0)
        cw_test_kill (self->pid);
    zframe_destroy (&self->peer);
    zsock_destroy (&self->router);
    zactor_destroy (&self->zap);
    zcert_destroy (&self->cert);
    free (self->endpoint);
    zstr_free (&self->certs);
    zstr_free (&self->log_path);
    cw_test_tmpdir_destroy (&self->dir);
    worker_sim_stop (&self->sim);
    free (self);
    *self_p = NULL;
}

static void
s_send (fixture_t *self, cw_msg_t **msg_p)
{
    char reason[256];
    cw_msg_frames_t *frames = cw_msg_encode (*msg_p, reason, sizeof (reason));
    ck_assert_msg (frames != NULL, "%s", reason);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *){zframe_dup (self->peer)});
    for (size_t index = 0; index < frames->count; index++)
        zmsg_addmem (msg, frames->frame[index].data, frames->frame[index].size);
    ck_assert_int_eq (zmsg_send (&msg, self->router), 0);
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (msg_p);
    self->heartbeat_at = zclock_mono () + HEARTBEAT_MSEC;
}

static void
s_send_heartbeat (fixture_t *self)
{
    cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
    s_send (self, &heartbeat);
}

//  Receives the next message from the worker within timeout_msec (NULL
//  if none), sending our heartbeats meanwhile when keep_alive. Skips the
//  worker's HEARTBEATs unless want_heartbeat. Remembers the routing id.
static cw_msg_t *
s_recv (fixture_t *self, int timeout_msec, bool keep_alive, bool want_heartbeat)
{
    int64_t deadline = zclock_mono () + timeout_msec;
    zpoller_t *poller = zpoller_new (self->router, NULL);
    cw_msg_t *result = NULL;
    while (!result) {
        int64_t now = zclock_mono ();
        if (now >= deadline)
            break;
        if (keep_alive && self->peer && now >= self->heartbeat_at)
            s_send_heartbeat (self);
        int64_t wait = deadline - now;
        if (keep_alive && wait > HEARTBEAT_MSEC / 2)
            wait = HEARTBEAT_MSEC / 2;
        if (!zpoller_wait (poller, (int) wait))
            continue;
        zmsg_t *msg = zmsg_recv (self->router);
        ck_assert_ptr_nonnull (msg);
        zframe_t *peer = zmsg_pop (msg);
        cw_msg_frame_t frames[4];
        size_t count = 0;
        for (zframe_t *frame = zmsg_first (msg); frame && count < 4;
             frame = zmsg_next (msg)) {
            frames[count].data = zframe_data (frame);
            frames[count].size = zframe_size (frame);
            count++;
        }
        //  The broker knows the worker by its CURVE key
        ck_assert_ptr_nonnull (zframe_meta (zmsg_first (msg), "User-Id"));
        char reason[256];
        cw_msg_error_t error;
        cw_msg_t *decoded =
            cw_msg_decode (frames, count, &error, reason, sizeof (reason));
        ck_assert_msg (decoded != NULL, "worker sent bad message: %s", reason);
        ck_assert_int_eq (decoded->protocol, CW_MSG_WORKER);
        zmsg_destroy (&msg);
        zframe_destroy (&self->peer);
        self->peer = peer;
        if (decoded->command == CW_MSG_HEARTBEAT && !want_heartbeat)
            cw_msg_destroy (&decoded);
        else
            result = decoded;
    }
    zpoller_destroy (&poller);
    return result;
}

static cw_msg_t *
s_expect (fixture_t *self, cw_msg_command_t command)
{
    cw_msg_t *msg = s_recv (self, WAIT_MSEC, true, false);
    ck_assert_msg (msg != NULL, "no %s from the worker",
                   cw_msg_command_name (command));
    ck_assert_msg (msg->command == command, "expected %s, got %s",
                   cw_msg_command_name (command),
                   cw_msg_command_name (msg->command));
    return msg;
}

//  An envelope with key "key-<kind>-<id>" and correlation id
//  "corr-<kind>-<id>" carrying data_json.
static cw_envelope_t *
s_envelope (const char *kind, int64_t id, const char *data_json)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    char text[64];
    snprintf (text, sizeof (text), "evt-%s-%lld", kind, (long long) id);
    cw_envelope_set_id (envelope, text);
    cw_envelope_set_source (envelope, "/webshop/customers");
    cw_envelope_set_type (envelope, "customer.upserted.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123Z");
    cw_envelope_set_tenant_id (envelope, "t1");
    snprintf (text, sizeof (text), "corr-%s-%lld", kind, (long long) id);
    cw_envelope_set_correlation_id (envelope, text);
    snprintf (text, sizeof (text), "key-%s-%lld", kind, (long long) id);
    cw_envelope_set_idempotency_key (envelope, text);
    json_t *data = json_loads (data_json, 0, NULL);
    ck_assert_ptr_nonnull (data);
    cw_envelope_set_data (envelope, &data);
    return envelope;
}

//  Sends a JOB whose payload is data_json.
static void
s_send_job (fixture_t *self,
            int64_t job_id,
            const char *flow,
            const char *target,
            const char *data_json)
{
    cw_msg_t *job = cw_msg_new (CW_MSG_WORKER, CW_MSG_JOB);
    job->job.job_id = job_id;
    job->job.attempt = 1;
    job->job.flow = strdup (flow);
    job->job.target = strdup (target);
    job->job.deadline_ms = 30000;
    job->job.envelope = s_envelope ("job", job_id, data_json);
    s_send (self, &job);
}

//  Sends a CALL whose payload is data_json.
static void
s_send_call (fixture_t *self,
             int64_t call_id,
             const char *flow,
             int64_t deadline_ms,
             const char *data_json)
{
    cw_msg_t *call = cw_msg_new (CW_MSG_WORKER, CW_MSG_CALL);
    call->call.call_id = call_id;
    call->call.flow = strdup (flow);
    call->call.deadline_ms = deadline_ms;
    call->call.envelope = s_envelope ("call", call_id, data_json);
    s_send (self, &call);
}

static const char *s_customer_call =
    "{\"path\":\"/api/v1/customers\",\"body\":{\"tenant\":\"t1\","
    "\"customerId\":\"c-call\",\"name\":\"N\"}}";

static void
s_send_customer_job (fixture_t *self, int64_t job_id)
{
    char data[256];
    snprintf (data, sizeof (data),
              "{\"path\":\"/api/v1/customers\",\"body\":{\"tenant\":\"t1\","
              "\"customerId\":\"c-%lld\",\"name\":\"N\"}}",
              (long long) job_id);
    s_send_job (self, job_id, "http.generic", "erp", data);
}

//  Collects RESULTs until count results came; stores each by job_id - 1
//  (a copy of outcome, status, error, response id) and sums the credit.
typedef struct {
    bool seen;
    cw_msg_outcome_t outcome;
    int64_t http_status;
    int64_t retry_after_ms;
    char error[256];
    char erp_id[64];
} seen_t;

static int64_t
s_collect (fixture_t *self, seen_t *seen, size_t slots, size_t count)
{
    int64_t credit = 0;
    size_t got = 0;
    while (got < count) {
        cw_msg_t *msg = s_expect (self, CW_MSG_RESULT);
        if (msg->result.credit > 0)
            credit += msg->result.credit;
        for (size_t index = 0; index < msg->result.results_count; index++) {
            cw_msg_result_t *result = &msg->result.results[index];
            ck_assert_int_ge (result->job_id, 1);
            ck_assert_int_le (result->job_id, (int64_t) slots);
            seen_t *slot = &seen[result->job_id - 1];
            ck_assert_msg (!slot->seen, "job %lld reported twice",
                           (long long) result->job_id);
            slot->seen = true;
            slot->outcome = result->outcome;
            slot->http_status = result->http_status;
            slot->retry_after_ms = result->retry_after_ms;
            ck_assert_int_ge (result->duration_ms, 0);
            ck_assert_int_eq (result->attempt, 1);
            snprintf (slot->error, sizeof (slot->error), "%s",
                      result->error ? result->error : "");
            const char *id =
                json_string_value (json_object_get (result->response, "id"));
            snprintf (slot->erp_id, sizeof (slot->erp_id), "%s", id ? id : "");
            got++;
        }
        cw_msg_destroy (&msg);
    }
    return credit;
}

static bool
s_wait_inflight (fixture_t *self, int64_t current)
{
    int64_t deadline = zclock_mono () + WAIT_MSEC;
    while (zclock_mono () < deadline) {
        json_t *report = worker_sim_introspect (&self->sim);
        int64_t now = json_integer_value (
            json_object_get (json_object_get (report, "inFlight"), "current"));
        json_decref (report);
        if (now == current)
            return true;
        //  Keep the session alive while we wait
        cw_msg_t *msg = s_recv (self, 20, true, false);
        ck_assert_ptr_null (msg);
    }
    return false;
}

#define JOBS 40

//  The job_finished log line of job_id: started_at is RFC 3339 UTC to
//  the microsecond, no later than the line's own ts (millisecond).
static void
s_check_started_at (fixture_t *self, int64_t job_id)
{
    char needle[64];
    snprintf (needle, sizeof (needle), "\"job_id\":%" PRId64 ",", job_id);
    FILE *file = fopen (self->log_path, "r");
    ck_assert_ptr_nonnull (file);
    char line[4096];
    bool found = false;
    while (!found && fgets (line, sizeof (line), file)) {
        if (!strstr (line, "\"job_finished\"") || !strstr (line, needle))
            continue;
        json_t *entry = json_loads (line, 0, NULL);
        ck_assert_ptr_nonnull (entry);
        const char *started =
            json_string_value (json_object_get (entry, "started_at"));
        const char *ts = json_string_value (json_object_get (entry, "ts"));
        ck_assert_ptr_nonnull (started);
        ck_assert_ptr_nonnull (ts);
        ck_assert_uint_eq (strlen (started), strlen ("2026-01-01T00:00:00.000000Z"));
        for (size_t index = 0; started[index]; index++)
            ck_assert_msg (strchr ("-T:.Z", started[index])
                               || isdigit ((unsigned char) started[index]),
                           "started_at %s", started);
        ck_assert_int_eq (started[26], 'Z');
        ck_assert_int_le (strncmp (started, ts, 23), 0);
        json_decref (entry);
        found = true;
    }
    fclose (file);
    ck_assert_msg (found, "no job_finished line for job %" PRId64, job_id);
}

START_TEST (test_session)
{
    fixture_t *self = s_start (NULL, "CW_WORKER_INFLIGHT=100", NULL);
    cw_msg_t *ready = s_expect (self, CW_MSG_READY);
    ck_assert_uint_eq (ready->ready.flows_count, 1);
    ck_assert_str_eq (ready->ready.flows[0], "http.generic");
    ck_assert_int_eq (ready->ready.credit, 100);
    ck_assert_str_eq (ready->ready.name, "test-worker");
    //  Its one target: the broker sends only jobs of it (or of none)
    ck_assert_uint_eq (ready->ready.targets_count, 1);
    ck_assert_str_eq (ready->ready.targets[0], "erp");
    cw_msg_destroy (&ready);

    //  Jobs: every one comes back ok with its ERP id, credit returned
    for (int64_t job_id = 1; job_id <= JOBS; job_id++)
        s_send_customer_job (self, job_id);
    seen_t seen[128];
    memset (seen, 0, sizeof (seen));
    int64_t credit = s_collect (self, seen, JOBS, JOBS);
    ck_assert_int_eq (credit, JOBS);
    for (size_t index = 0; index < JOBS; index++) {
        ck_assert_int_eq (seen[index].outcome, CW_MSG_OUTCOME_OK);
        ck_assert_int_eq (seen[index].http_status, 201);
        ck_assert_int_eq (strncmp (seen[index].erp_id, "CUST-", 5), 0);
    }
    json_t *report = worker_sim_introspect (&self->sim);
    json_t *customers =
        json_object_get (json_object_get (report, "effects"), "customers");
    ck_assert_uint_eq (json_object_size (customers), JOBS);
    json_decref (report);
    //  The headers arrived: erpsim logged each job's correlation id
    ck_assert_int_eq (worker_sim_log_count (&self->sim, "\"corr-job-7\""), 1);
    //  The worker logged when each job started
    s_check_started_at (self, 7);

    //  Jobs that cannot run: answered at once, naming why
    memset (seen, 0, sizeof (seen));
    s_send_job (self, 1, "http.generic", "erp", "{\"body\":{}}");
    s_send_job (self, 2, "no.such.flow", "erp", "{\"path\":\"/x\"}");
    s_send_job (self, 3, "http.generic", "webshop", "{\"path\":\"/x\"}");
    credit = s_collect (self, seen, 3, 3);
    ck_assert_int_eq (credit, 3);
    ck_assert_int_eq (seen[0].outcome, CW_MSG_OUTCOME_REJECTED);
    ck_assert_ptr_nonnull (strstr (seen[0].error, "\"path\""));
    ck_assert_int_eq (seen[1].outcome, CW_MSG_OUTCOME_REJECTED);
    ck_assert_ptr_nonnull (strstr (seen[1].error, "no.such.flow"));
    ck_assert_int_eq (seen[2].outcome, CW_MSG_OUTCOME_TRANSIENT);
    ck_assert_ptr_nonnull (strstr (seen[2].error, "webshop"));

    //  4xx from the ERP: rejected; 429: transient with retry_after_ms
    memset (seen, 0, sizeof (seen));
    s_send_job (
        self, 1, "http.generic", "erp",
        "{\"path\":\"/api/v1/customers\",\"body\":{\"tenant\":\"t1\"}}");
    credit = s_collect (self, seen, 1, 1);
    ck_assert_int_eq (seen[0].outcome, CW_MSG_OUTCOME_REJECTED);
    ck_assert_int_eq (seen[0].http_status, 422);
    long status;
    json_decref (worker_sim_control (
        &self->sim, "PUT", "/_control/faults",
        "{\"*\":{\"rateLimitRate\":1,\"retryAfterSeconds\":4}}", &status));
    memset (seen, 0, sizeof (seen));
    s_send_customer_job (self, 50);  //  A fresh key: no replay
    s_collect (self, seen, 50, 1);
    ck_assert_int_eq (seen[49].outcome, CW_MSG_OUTCOME_TRANSIENT);
    ck_assert_int_eq (seen[49].http_status, 429);
    ck_assert_int_eq (seen[49].retry_after_ms, 4000);

    //  Idle: the worker heartbeats about once per interval
    int64_t started = zclock_mono ();
    int heartbeats = 0;
    while (heartbeats < 3) {
        cw_msg_t *msg = s_recv (self, WAIT_MSEC, true, true);
        ck_assert_ptr_nonnull (msg);
        ck_assert_int_eq (msg->command, CW_MSG_HEARTBEAT);
        heartbeats++;
        cw_msg_destroy (&msg);
    }
    int64_t elapsed = zclock_mono () - started;
    ck_assert_int_ge (elapsed, 2 * HEARTBEAT_MSEC - 50);
    ck_assert_int_le (elapsed, 6 * HEARTBEAT_MSEC);

    //  SIGTERM with calls in flight: they finish and are reported (no
    //  more credit), then DISCONNECT, exit 0
    json_decref (worker_sim_control (&self->sim, "PUT", "/_control/faults",
                                     "{\"*\":{\"latencyMs\":700}}", &status));
    for (int64_t job_id = 1; job_id <= 3; job_id++)
        s_send_customer_job (self, 100 + job_id);
    ck_assert (s_wait_inflight (self, 3));
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    size_t reported = 0;
    while (reported < 3) {
        cw_msg_t *msg = s_expect (self, CW_MSG_RESULT);
        ck_assert_int_eq (msg->result.credit, -1);
        for (size_t index = 0; index < msg->result.results_count; index++)
            ck_assert_int_eq (msg->result.results[index].outcome,
                              CW_MSG_OUTCOME_OK);
        reported += msg->result.results_count;
        cw_msg_destroy (&msg);
    }
    cw_msg_t *disconnect = s_expect (self, CW_MSG_DISCONNECT);
    ck_assert_ptr_nonnull (disconnect->disconnect.reason);
    cw_msg_destroy (&disconnect);
    int exit_status = cw_test_stop (self->pid, WAIT_MSEC);
    self->pid = 0;
    ck_assert_msg (WIFEXITED (exit_status) && WEXITSTATUS (exit_status) == 0,
                   "worker exit status %d", exit_status);
    s_destroy (&self);
}
END_TEST

START_TEST (test_shutdown_abandons)
{
    //  Calls stall beyond shutdown_timeout: abandoned, not reported
    const char *flags[] = {"--stall-rate", "1", "--stall-ms", "8000"};
    fixture_t *self = s_start (flags, "CW_WORKER_SHUTDOWN_TIMEOUT=300ms", NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    s_send_customer_job (self, 1);
    s_send_customer_job (self, 2);
    ck_assert (s_wait_inflight (self, 2));
    int64_t started = zclock_mono ();
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    //  The next message is DISCONNECT: no RESULT for abandoned jobs
    cw_msg_t *msg = s_expect (self, CW_MSG_DISCONNECT);
    cw_msg_destroy (&msg);
    int exit_status = cw_test_stop (self->pid, WAIT_MSEC);
    self->pid = 0;
    ck_assert (WIFEXITED (exit_status) && WEXITSTATUS (exit_status) == 0);
    ck_assert_int_lt (zclock_mono () - started, 3000);
    s_destroy (&self);
}
END_TEST

//  SIGHUP (a terminal hangup, a reload request) does not end the worker:
//  it has nothing to reload. Before, the default action killed it
//  without a DISCONNECT.
START_TEST (test_sighup_ignored)
{
    fixture_t *self = s_start (NULL, NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    ck_assert_int_eq (kill (self->pid, SIGHUP), 0);
    zclock_sleep (300);
    int exit_status = 0;
    ck_assert_int_eq (waitpid (self->pid, &exit_status, WNOHANG), 0);
    s_send_customer_job (self, 1);
    cw_msg_t *result = s_expect (self, CW_MSG_RESULT);
    cw_msg_destroy (&result);
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    cw_msg_t *msg = s_expect (self, CW_MSG_DISCONNECT);
    cw_msg_destroy (&msg);
    exit_status = cw_test_stop (self->pid, WAIT_MSEC);
    self->pid = 0;
    ck_assert (WIFEXITED (exit_status) && WEXITSTATUS (exit_status) == 0);
    s_destroy (&self);
}
END_TEST

START_TEST (test_second_signal)
{
    const char *flags[] = {"--stall-rate", "1", "--stall-ms", "8000"};
    fixture_t *self = s_start (flags, "CW_WORKER_SHUTDOWN_TIMEOUT=60s", NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    s_send_customer_job (self, 1);
    ck_assert (s_wait_inflight (self, 1));
    int64_t started = zclock_mono ();
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    //  Still draining: no DISCONNECT yet
    cw_msg_t *msg = s_recv (self, 300, true, false);
    ck_assert_ptr_null (msg);
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    int exit_status = 0;
    ck_assert_int_eq (waitpid (self->pid, &exit_status, 0), self->pid);
    self->pid = 0;
    ck_assert (WIFEXITED (exit_status) && WEXITSTATUS (exit_status) == 1);
    ck_assert_int_lt (zclock_mono () - started, 3000);
    s_destroy (&self);
}
END_TEST

//  A worker frozen (SIGSTOP, a suspended VM) past its liveness while a JOB
//  waits in its socket: thawed, it must not start that JOB — the broker
//  forgot the session and gave the job to another worker — but count the
//  session lost (nothing arrived for liveness intervals) and come back
//  with READY. Before, reading the queued messages reset its liveness and
//  it ran the stale JOB: a second call with the key, against the caps.
START_TEST (test_resumed_after_liveness)
{
    fixture_t *self = s_start (NULL, NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    zframe_t *first = zframe_dup (self->peer);
    ck_assert_int_eq (kill (self->pid, SIGSTOP), 0);
    zclock_sleep (5 * HEARTBEAT_MSEC);
    s_send_customer_job (self, 1);
    zclock_sleep (100);
    ck_assert_int_eq (kill (self->pid, SIGCONT), 0);
    cw_msg_t *msg = NULL;
    while (!msg || msg->command == CW_MSG_HEARTBEAT) {
        cw_msg_destroy (&msg);
        msg = s_recv (self, WAIT_MSEC, false, true);
        ck_assert_ptr_nonnull (msg);
    }
    ck_assert_msg (msg->command == CW_MSG_READY, "got %s, not READY",
                   cw_msg_command_name (msg->command));
    ck_assert (!zframe_eq (first, self->peer));
    cw_msg_destroy (&msg);
    zframe_destroy (&first);
    ck_assert_int_eq (worker_sim_log_count (&self->sim, "c-1"), 0);
    s_destroy (&self);
}
END_TEST

START_TEST (test_broker_lost)
{
    const char *flags[] = {"--stall-rate", "1", "--stall-ms", "3000"};
    fixture_t *self = s_start (flags, NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    zframe_t *first = zframe_dup (self->peer);
    s_send_customer_job (self, 1);
    ck_assert (s_wait_inflight (self, 1));
    //  Silence: after liveness intervals the worker gives up, abandons
    //  the job and comes back with a new session and READY
    int64_t started = zclock_mono ();
    cw_msg_t *msg = NULL;
    while (!msg || msg->command != CW_MSG_READY) {
        ck_assert_msg (msg == NULL || msg->command == CW_MSG_HEARTBEAT,
                       "unexpected %s", cw_msg_command_name (msg->command));
        cw_msg_destroy (&msg);
        msg = s_recv (self, WAIT_MSEC, false, true);
        ck_assert_ptr_nonnull (msg);
    }
    int64_t elapsed = zclock_mono () - started;
    ck_assert_int_ge (elapsed, 3 * HEARTBEAT_MSEC - 50);
    ck_assert_int_eq (msg->ready.credit, 64);
    cw_msg_destroy (&msg);
    ck_assert (!zframe_eq (first, self->peer));
    zframe_destroy (&first);
    //  The abandoned job is never reported, even after its stall ends
    msg = s_recv (self, 3500, true, false);
    ck_assert_ptr_null (msg);
    //  The new session works
    json_decref (
        worker_sim_control (&self->sim, "PUT", "/_control/faults", "{}", NULL));
    s_send_customer_job (self, 2);
    seen_t seen[2];
    memset (seen, 0, sizeof (seen));
    s_collect (self, seen, 2, 1);
    ck_assert (seen[1].seen);
    ck_assert_int_eq (seen[1].outcome, CW_MSG_OUTCOME_OK);
    s_destroy (&self);
}
END_TEST

//  A broker that answers every READY with DISCONNECT (one draining, or
//  one refusing this worker) is reconnected to with a growing delay, as
//  after any lost broker: from worker/reconnect (100 ms here), doubling,
//  half of it random. Before, the DISCONNECT itself counted as a sign of
//  a live session and reset the delay, so such a worker came back every
//  50-100 ms for ever.
START_TEST (test_disconnect_backs_off)
{
    fixture_t *self = s_start (NULL, NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    int64_t gaps[5];
    for (size_t turn = 0; turn < 5; turn++) {
        cw_msg_t *disconnect = cw_msg_new (CW_MSG_WORKER, CW_MSG_DISCONNECT);
        disconnect->disconnect.reason = strdup ("draining");
        s_send (self, &disconnect);
        int64_t sent = zclock_mono ();
        cw_msg_t *ready = s_recv (self, WAIT_MSEC, false, false);
        ck_assert_msg (ready != NULL, "no READY after DISCONNECT %zu", turn);
        ck_assert_int_eq (ready->command, CW_MSG_READY);
        cw_msg_destroy (&ready);
        gaps[turn] = zclock_mono () - sent;
    }
    //  Backoffs 100, 200, 400, 800, 1600 ms: at least half of each
    ck_assert_msg (gaps[3] >= 400 && gaps[4] >= 800,
                   "reconnected after %lld, %lld, %lld, %lld, %lld ms",
                   (long long) gaps[0], (long long) gaps[1],
                   (long long) gaps[2], (long long) gaps[3],
                   (long long) gaps[4]);
    //  A session the broker keeps (a HEARTBEAT) starts the delay afresh
    s_send_heartbeat (self);
    zclock_sleep (100);
    cw_msg_t *disconnect = cw_msg_new (CW_MSG_WORKER, CW_MSG_DISCONNECT);
    disconnect->disconnect.reason = strdup ("draining");
    s_send (self, &disconnect);
    int64_t sent = zclock_mono ();
    cw_msg_t *ready = s_recv (self, WAIT_MSEC, false, false);
    ck_assert_ptr_nonnull (ready);
    ck_assert_int_eq (ready->command, CW_MSG_READY);
    cw_msg_destroy (&ready);
    int64_t gap = zclock_mono () - sent;
    ck_assert_msg (gap < 800, "reconnected after %lld ms", (long long) gap);
    s_destroy (&self);
}
END_TEST

static void
s_send_unknown_session (fixture_t *self)
{
    cw_msg_t *error = cw_msg_new (CW_MSG_WORKER, CW_MSG_ERROR);
    error->error.code = strdup ("unknown_session");
    error->error.message = strdup ("send READY first");
    error->error.command = CW_MSG_RESULT;
    s_send (self, &error);
}

START_TEST (test_unknown_session)
{
    //  A broker that restarted answers each RESULT sent before the
    //  worker's new READY with ERROR unknown_session. One READY answers
    //  them all: each READY replaces the session's credit (PROTOCOL.md
    //  4.1), so a READY per ERROR would hand out the credit again for
    //  the jobs the first READY already brought.
    fixture_t *self = s_start (NULL, "CW_WORKER_INFLIGHT=4", NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    s_send_heartbeat (self);
    s_send_unknown_session (self);
    s_send_unknown_session (self);
    s_send_unknown_session (self);
    cw_msg_t *msg = s_expect (self, CW_MSG_READY);
    ck_assert_int_eq (msg->ready.credit, 4);
    cw_msg_destroy (&msg);
    msg = s_recv (self, 600, true, false);
    ck_assert_msg (msg == NULL, "unexpected %s",
                   cw_msg_command_name (msg->command));
    //  Once the broker showed the new session (our heartbeats), a later
    //  unknown_session gets its READY again
    s_send_unknown_session (self);
    msg = s_expect (self, CW_MSG_READY);
    cw_msg_destroy (&msg);
    s_destroy (&self);
}
END_TEST

//  Waits for the REPLY to call_id (RESULTs and heartbeats are skipped).
static cw_msg_t *
s_expect_reply (fixture_t *self, int64_t call_id)
{
    cw_msg_t *msg = s_expect (self, CW_MSG_REPLY);
    ck_assert_int_eq (msg->reply.call_id, call_id);
    ck_assert_int_ge (msg->reply.duration_ms, 0);
    return msg;
}

START_TEST (test_call)
{
    fixture_t *self = s_start (NULL, "CW_WORKER_INFLIGHT=2",
                               "CW_WORKER_FLOWS=http.generic, noop", NULL);
    cw_msg_t *msg = s_expect (self, CW_MSG_READY);
    ck_assert_uint_eq (msg->ready.flows_count, 2);
    ck_assert_str_eq (msg->ready.flows[1], "noop");
    ck_assert_int_eq (msg->ready.credit, 2);
    cw_msg_destroy (&msg);

    //  A CALL runs like a JOB: REPLY with erpsim's 201 and parsed body
    s_send_call (self, 7, "http.generic", 30000, s_customer_call);
    msg = s_expect_reply (self, 7);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_OK);
    ck_assert_int_eq (msg->reply.http_status, 201);
    ck_assert_ptr_null (msg->reply.error);
    const char *erp_id =
        json_string_value (json_object_get (msg->reply.response, "id"));
    ck_assert_ptr_nonnull (erp_id);
    ck_assert_int_eq (strncmp (erp_id, "CUST-", 5), 0);
    char first_id[64];
    snprintf (first_id, sizeof (first_id), "%s", erp_id);
    cw_msg_destroy (&msg);
    //  Same headers as a job: erpsim saw the call's correlation id
    ck_assert_int_eq (worker_sim_log_count (&self->sim, "\"corr-call-7\""), 1);
    //  The same idempotency key again: erpsim replays, one effect
    s_send_call (self, 7, "http.generic", 30000, s_customer_call);
    msg = s_expect_reply (self, 7);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_OK);
    ck_assert_str_eq (
        json_string_value (json_object_get (msg->reply.response, "id")),
        first_id);
    cw_msg_destroy (&msg);
    json_t *report = worker_sim_introspect (&self->sim);
    ck_assert_uint_eq (json_object_size (json_object_get (
                           json_object_get (report, "effects"), "customers")),
                       1);
    json_decref (report);

    //  A flow the worker does not serve: rejected at once, no call
    s_send_call (self, 8, "no.such.flow", 30000, "{\"path\":\"/x\"}");
    msg = s_expect_reply (self, 8);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_REJECTED);
    ck_assert_ptr_nonnull (strstr (msg->reply.error, "no.such.flow"));
    cw_msg_destroy (&msg);

    //  The call's deadline caps the timeout
    long status;
    json_decref (worker_sim_control (&self->sim, "PUT", "/_control/faults",
                                     "{\"*\":{\"latencyMs\":1500}}",
                                     &status));
    s_send_call (self, 9, "http.generic", 300,
                 "{\"path\":\"/api/v1/customers\",\"body\":{\"tenant\":"
                 "\"t1\",\"customerId\":\"c-9\",\"name\":\"N\"}}");
    msg = s_expect_reply (self, 9);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_TRANSIENT);
    ck_assert_int_eq (msg->reply.http_status, 0);
    ck_assert_ptr_nonnull (strstr (msg->reply.error, "timeout after 300 ms"));
    cw_msg_destroy (&msg);
    ck_assert (s_wait_inflight (self, 0));

    //  All inflight slots busy with jobs: REPLY transient "busy" at once
    s_send_customer_job (self, 1);
    s_send_customer_job (self, 2);
    ck_assert (s_wait_inflight (self, 2));
    int64_t sent = zclock_mono ();
    s_send_call (self, 10, "http.generic", 30000, s_customer_call);
    msg = s_expect_reply (self, 10);
    ck_assert_int_lt (zclock_mono () - sent, 1000);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_TRANSIENT);
    ck_assert_str_eq (msg->reply.error, "busy");
    cw_msg_destroy (&msg);
    seen_t seen[2];
    memset (seen, 0, sizeof (seen));
    ck_assert_int_eq (s_collect (self, seen, 2, 2), 2);
    ck_assert_int_eq (seen[0].outcome, CW_MSG_OUTCOME_OK);
    ck_assert_int_eq (seen[1].outcome, CW_MSG_OUTCOME_OK);

    //  noop: a JOB and a CALL answered ok at once, no HTTP at erpsim
    sent = zclock_mono ();
    s_send_job (self, 1, "noop", "erp", "{}");
    memset (seen, 0, sizeof (seen));
    ck_assert_int_eq (s_collect (self, seen, 1, 1), 1);
    ck_assert_int_eq (seen[0].outcome, CW_MSG_OUTCOME_OK);
    ck_assert_int_eq (seen[0].http_status, 0);
    s_send_call (self, 11, "noop", 30000, "{}");
    msg = s_expect_reply (self, 11);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_OK);
    ck_assert_int_eq (msg->reply.http_status, 0);
    cw_msg_destroy (&msg);
    ck_assert_int_lt (zclock_mono () - sent, 1000);
    ck_assert_int_eq (worker_sim_log_count (&self->sim, "\"corr-job-1\""),
                      1);  //  The earlier http job only
    ck_assert_int_eq (worker_sim_log_count (&self->sim, "\"corr-call-11\""),
                      0);

    //  SIGTERM with a call in flight: it finishes and is answered, then
    //  DISCONNECT
    s_send_call (self, 12, "http.generic", 30000,
                 "{\"path\":\"/api/v1/customers\",\"body\":{\"tenant\":"
                 "\"t1\",\"customerId\":\"c-12\",\"name\":\"N\"}}");
    ck_assert (s_wait_inflight (self, 1));
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    msg = s_expect_reply (self, 12);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_OK);
    ck_assert_int_eq (msg->reply.http_status, 201);
    cw_msg_destroy (&msg);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_DISCONNECT)});
    int exit_status = cw_test_stop (self->pid, WAIT_MSEC);
    self->pid = 0;
    ck_assert (WIFEXITED (exit_status) && WEXITSTATUS (exit_status) == 0);
    s_destroy (&self);
}
END_TEST

START_TEST (test_call_abandoned)
{
    //  A call still stalled at the end of shutdown_timeout: REPLY
    //  transient before DISCONNECT
    const char *flags[] = {"--stall-rate", "1", "--stall-ms", "8000"};
    fixture_t *self = s_start (flags, "CW_WORKER_SHUTDOWN_TIMEOUT=300ms", NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    s_send_call (self, 1, "http.generic", 30000, s_customer_call);
    ck_assert (s_wait_inflight (self, 1));
    ck_assert_int_eq (kill (self->pid, SIGTERM), 0);
    cw_msg_t *msg = s_expect_reply (self, 1);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_TRANSIENT);
    ck_assert_ptr_nonnull (strstr (msg->reply.error, "shutting down"));
    cw_msg_destroy (&msg);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_DISCONNECT)});
    int exit_status = cw_test_stop (self->pid, WAIT_MSEC);
    self->pid = 0;
    ck_assert (WIFEXITED (exit_status) && WEXITSTATUS (exit_status) == 0);
    s_destroy (&self);
}
END_TEST

//  A canned HTTP server for answers erpsim never gives: a child process
//  on 127.0.0.1 that answers each request (one per connection) with the
//  raw response of the first route whose path prefixes the request's.
//  With batch > 0 it holds requests until batch of them came, writes a
//  byte to ready, and answers them all when a byte comes on go.
typedef struct {
    pid_t pid;  //  The server
    int port;   //  Its port
    int ready;  //  Read end: a batch of requests is held
    int go;     //  Write end: answer the batch held
} canned_t;

#define CANNED_BATCH_MAX 64

//  Starts the server; routes: path, response, ..., NULL (borrowed).
static void
s_canned_start (canned_t *canned, const char *const *routes, size_t batch)
{
    ck_assert_uint_le (batch, CANNED_BATCH_MAX);
    int listener = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (listener, 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    ck_assert_int_eq (
        bind (listener, (struct sockaddr *) &address, sizeof (address)), 0);
    ck_assert_int_eq (listen (listener, CANNED_BATCH_MAX), 0);
    socklen_t length = sizeof (address);
    getsockname (listener, (struct sockaddr *) &address, &length);
    canned->port = ntohs (address.sin_port);
    int ready[2], go[2];
    ck_assert_int_eq (pipe (ready), 0);
    ck_assert_int_eq (pipe (go), 0);
    pid_t parent = getpid ();
    canned->pid = fork ();
    ck_assert_int_ge (canned->pid, 0);
    if (canned->pid > 0) {
        close (listener);
        close (ready[1]);
        close (go[0]);
        canned->ready = ready[0];
        canned->go = go[1];
        return;
    }
#if defined(__linux__)
    prctl (PR_SET_PDEATHSIG, SIGKILL);
#endif
    if (getppid () != parent)
        _exit (1);
    int held[CANNED_BATCH_MAX];
    const char *answers[CANNED_BATCH_MAX];
    size_t holding = 0;
    while (true) {
        int fd = accept (listener, NULL, NULL);
        if (fd < 0)
            continue;
        //  Read the head and the body it announces
        char request[65536];
        size_t used = 0;
        char *end = NULL;
        while (!end && used < sizeof (request) - 1) {
            ssize_t got =
                read (fd, request + used, sizeof (request) - 1 - used);
            if (got <= 0)
                break;
            used += (size_t) got;
            request[used] = 0;
            end = strstr (request, "\r\n\r\n");
        }
        const char *response = NULL;
        if (end) {
            const char *field = strcasestr (request, "\r\nContent-Length:");
            size_t body =
                field && field < end ? strtoul (field + 17, NULL, 10) : 0;
            size_t want = (size_t) (end + 4 - request) + body;
            while (used < want && used < sizeof (request) - 1) {
                ssize_t got =
                    read (fd, request + used, sizeof (request) - 1 - used);
                if (got <= 0)
                    break;
                used += (size_t) got;
            }
            const char *path = strchr (request, ' ');
            for (size_t index = 0; path && routes[index]; index += 2)
                if (strncmp (path + 1, routes[index], strlen (routes[index]))
                    == 0) {
                    response = routes[index + 1];
                    break;
                }
        }
        held[holding] = fd;
        answers[holding++] = response;
        if (holding < batch)
            continue;
        char byte = 0;
        if (batch
            && (write (ready[1], &byte, 1) != 1 || read (go[0], &byte, 1) != 1))
            _exit (1);
        for (size_t index = 0; index < holding; index++) {
            if (answers[index]) {
                ssize_t rc = write (held[index], answers[index],
                                    strlen (answers[index]));
                (void) rc;
            }
            close (held[index]);
        }
        holding = 0;
    }
}

static void
s_canned_stop (canned_t *canned)
{
    kill (canned->pid, SIGKILL);
    waitpid (canned->pid, NULL, 0);
    close (canned->ready);
    close (canned->go);
}

//  An HTTP/1.1 response with a JSON body (caller frees).
static char *
s_http_response (const char *status, const char *body)
{
    return zsys_sprintf ("HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         status, strlen (body), body);
}

START_TEST (test_result_encodable)
{
    //  Answers a RESULT cannot carry as they are: a response object
    //  nested deeper than 16 levels (PROTOCOL.md 3) and a long non-ASCII
    //  problem detail (cut to the error's size). The job still gets its
    //  RESULT, and so do the others of the same batch.
    char deep[256] = "";
    for (int level = 0; level < 20; level++)
        strcat (deep, "{\"a\":");
    strcat (deep, "1");
    for (int level = 0; level < 20; level++)
        strcat (deep, "}");
    char detail[1024] = "{\"detail\":\"";
    for (int index = 0; index < 200; index++)
        strcat (detail, "\xc3\xa9");
    strcat (detail, "\"}");
    char *deep_response = s_http_response ("200 OK", deep);
    char *detail_response =
        s_http_response ("422 Unprocessable Content", detail);
    char *ok_response = s_http_response ("200 OK", "{\"id\":\"X-1\"}");
    const char *routes[] = {"/deep", deep_response, "/detail", detail_response,
                            "/ok",   ok_response,   NULL};
    canned_t canned;
    s_canned_start (&canned, routes, 0);
    char *env_base = zsys_sprintf (
        "CW_WORKER_TARGET_BASE_URL=http://127.0.0.1:%d", canned.port);
    fixture_t *self = s_start (NULL, env_base, NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});

    s_send_job (self, 1, "http.generic", "erp", "{\"path\":\"/deep\"}");
    s_send_job (self, 2, "http.generic", "erp", "{\"path\":\"/detail\"}");
    s_send_job (self, 3, "http.generic", "erp", "{\"path\":\"/ok\"}");
    seen_t seen[3];
    memset (seen, 0, sizeof (seen));
    ck_assert_int_eq (s_collect (self, seen, 3, 3), 3);
    ck_assert_int_eq (seen[0].outcome, CW_MSG_OUTCOME_OK);
    ck_assert_int_eq (seen[0].http_status, 200);
    ck_assert_int_eq (seen[1].outcome, CW_MSG_OUTCOME_REJECTED);
    ck_assert_int_eq (seen[1].http_status, 422);
    ck_assert_int_eq (strncmp (seen[1].error, "rejected (422): \xc3\xa9", 18),
                      0);
    ck_assert_int_eq (seen[2].outcome, CW_MSG_OUTCOME_OK);
    ck_assert_str_eq (seen[2].erp_id, "X-1");

    //  A CALL is answered too
    s_send_call (self, 4, "http.generic", 30000, "{\"path\":\"/deep\"}");
    cw_msg_t *msg = s_expect_reply (self, 4);
    ck_assert_int_eq (msg->reply.outcome, CW_MSG_OUTCOME_OK);
    ck_assert_int_eq (msg->reply.http_status, 200);
    cw_msg_destroy (&msg);

    s_destroy (&self);
    s_canned_stop (&canned);
    zstr_free (&env_base);
    zstr_free (&deep_response);
    zstr_free (&detail_response);
    zstr_free (&ok_response);
}
END_TEST

START_TEST (test_result_batch_size)
{
    //  Results finished in one turn go in one RESULT, cut before 1 MiB.
    //  A response of reals is small as JSON but not as msgpack (a real
    //  takes 9 bytes, "0.0," 4): 40 such responses of 16 KiB each, all
    //  answered while the worker is stopped, must come back in RESULTs
    //  the broker can take; a RESULT over 1 MiB is refused whole.
    json_t *array = json_array ();
    json_t *object = json_pack ("{s:o}", "a", array);
    char *body = NULL;
    while (true) {
        json_array_append_new (array, json_real (0.0));
        char *text = json_dumps (object, JSON_COMPACT);
        if (strlen (text) > 16384) {
            free (text);
            break;
        }
        free (body);
        body = text;
    }
    json_decref (object);
    char *response = s_http_response ("200 OK", body);
    free (body);
    const char *routes[] = {"/reals", response, NULL};
    canned_t canned;
    s_canned_start (&canned, routes, 40);
    char *env_base = zsys_sprintf (
        "CW_WORKER_TARGET_BASE_URL=http://127.0.0.1:%d", canned.port);
    fixture_t *self = s_start (NULL, env_base, NULL);
    cw_msg_destroy (&(cw_msg_t *){s_expect (self, CW_MSG_READY)});
    for (int64_t job_id = 1; job_id <= 40; job_id++)
        s_send_job (self, job_id, "http.generic", "erp",
                    "{\"path\":\"/reals\"}");
    //  All 40 requests are held by the server
    zmq_pollitem_t item = {NULL, canned.ready, ZMQ_POLLIN, 0};
    int64_t deadline = zclock_mono () + WAIT_MSEC;
    while (zmq_poll (&item, 1, 0) == 0) {
        ck_assert_msg (zclock_mono () < deadline, "requests not all held");
        cw_msg_t *msg = s_recv (self, 20, true, false);
        ck_assert_ptr_null (msg);
    }
    char byte;
    ck_assert_int_eq (read (canned.ready, &byte, 1), 1);
    //  Answered while the worker is stopped: one poll turn sees them all
    s_send_heartbeat (self);
    ck_assert_int_eq (kill (self->pid, SIGSTOP), 0);
    ck_assert_int_eq (write (canned.go, &byte, 1), 1);
    zclock_sleep (150);
    ck_assert_int_eq (kill (self->pid, SIGCONT), 0);
    seen_t seen[40];
    memset (seen, 0, sizeof (seen));
    ck_assert_int_eq (s_collect (self, seen, 40, 40), 40);
    for (size_t index = 0; index < 40; index++)
        ck_assert_int_eq (seen[index].outcome, CW_MSG_OUTCOME_OK);
    s_destroy (&self);
    s_canned_stop (&canned);
    zstr_free (&env_base);
    zstr_free (&response);
}
END_TEST

//  A target name READY cannot carry: exit 2 naming target/name.
START_TEST (test_bad_target_name)
{
    char name[CW_MSG_FLOW_MAX + 2];
    memset (name, 't', sizeof (name) - 1);
    name[sizeof (name) - 1] = 0;
    char *env = zsys_sprintf ("CW_WORKER_TARGET_NAME=%s", name);
    fixture_t *self = s_start (NULL, env, NULL);
    int status = 0;
    ck_assert_int_eq (waitpid (self->pid, &status, 0), self->pid);
    self->pid = 0;
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 2);
    FILE *file = fopen (self->log_path, "r");
    char line[2048] = "";
    ck_assert_ptr_nonnull (fgets (line, sizeof (line), file));
    fclose (file);
    ck_assert_msg (strstr (line, "target/name") != NULL, "%s", line);
    zstr_free (&env);
    s_destroy (&self);
}
END_TEST

//  The worker exits 2 within 5 s, its first log line naming key.
static void
s_expect_config_exit (fixture_t *self, const char *key)
{
    int status = 0;
    ck_assert_msg (cw_test_wait_exit (self->pid, 5000, &status) == 1,
                   "worker still running");
    self->pid = 0;
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 2);
    FILE *file = fopen (self->log_path, "r");
    char line[2048] = "";
    ck_assert_ptr_nonnull (fgets (line, sizeof (line), file));
    fclose (file);
    ck_assert_msg (strstr (line, key) != NULL, "%s", line);
}

//  A worker/name READY cannot carry (over 128 bytes; cutting it would
//  split a character): exit 2 naming worker/name, not a worker whose
//  READY the encoder refuses on every connect.
//  A credentials file with a line break inside: the credential goes
//  into a header line, where CR/LF would start another header. Exit 2
//  naming target/credentials_file (before, the header went out split).
START_TEST (test_credential_line_break)
{
    char *dir = cw_test_tmpdir ("check_worker_cred");
    char *path = zsys_sprintf ("%s/credential", dir);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge (fd, 0);
    const char *text = "key-1\r\nX-Injected: 1\n";
    ck_assert_int_eq (write (fd, text, strlen (text)), (ssize_t) strlen (text));
    close (fd);
    char *env = zsys_sprintf ("CW_WORKER_TARGET_CREDENTIALS_FILE=%s", path);
    fixture_t *self = s_start (NULL, env, NULL);
    s_expect_config_exit (self, "target/credentials_file");
    zstr_free (&env);
    s_destroy (&self);
    zstr_free (&path);
    cw_test_tmpdir_destroy (&dir);
}
END_TEST

START_TEST (test_bad_name)
{
    char name[CW_MSG_NAME_MAX + 8] = "x";
    while (strlen (name) < CW_MSG_NAME_MAX + 1)
        strcat (name, "\xc3\xa9");
    char *env = zsys_sprintf ("CW_WORKER_NAME=%s", name);
    fixture_t *self = s_start (NULL, env, NULL);
    s_expect_config_exit (self, "worker/name");
    zstr_free (&env);
    s_destroy (&self);
}
END_TEST

//  More brokers than worker/inflight: each broker's credit is at least
//  1, so the worker would take more jobs than inflight (and more than
//  its runner has room for). Exit 2 naming worker/inflight.
START_TEST (test_inflight_below_brokers)
{
    fixture_t *self = s_start (NULL, "CW_WORKER_INFLIGHT=1",
                               "CW_WORKER_BROKER_ENDPOINTS=tcp://127.0.0.1:1,"
                               "tcp://127.0.0.1:2,tcp://127.0.0.1:3",
                               NULL);
    s_expect_config_exit (self, "worker/inflight");
    s_destroy (&self);
}
END_TEST

START_TEST (test_bad_config)
{
    //  Missing required keys: exit 2 with a line naming the key
    char *program = cw_test_build_path ("worker/causeway-worker");
    char *dir = cw_test_tmpdir ("check_worker_cfg");
    char *log = zsys_sprintf ("%s/log", dir);
    const char *argv[] = {program, NULL};
    const char *envp[] = {"CW_WORKER_BROKER_PUBLIC_KEY=", NULL};
    pid_t pid = cw_test_spawn (argv, envp, log);
    int status = 0;
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 2);
    FILE *file = fopen (log, "r");
    char line[2048] = "";
    ck_assert_ptr_nonnull (fgets (line, sizeof (line), file));
    fclose (file);
    ck_assert_ptr_nonnull (strstr (line, "broker/public_key"));
    //  --help: exit 0
    const char *help[] = {program, "--help", NULL};
    pid = cw_test_spawn (help, NULL, log);
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    //  etc/causeway-worker.cfg is exactly the generated sample
    cw_fixture_sample_config_check (dir, "worker/causeway-worker", "etc/causeway-worker.cfg");
    zstr_free (&log);
    cw_test_tmpdir_destroy (&dir);
    free (program);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("worker");
    TCase *tcase = tcase_create ("session");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_session);
    tcase_add_test (tcase, test_broker_lost);
    tcase_add_test (tcase, test_disconnect_backs_off);
    tcase_add_test (tcase, test_resumed_after_liveness);
    tcase_add_test (tcase, test_unknown_session);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("call");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_call);
    tcase_add_test (tcase, test_call_abandoned);
    tcase_add_test (tcase, test_result_encodable);
    tcase_add_test (tcase, test_result_batch_size);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("shutdown");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_shutdown_abandons);
    tcase_add_test (tcase, test_second_signal);
    tcase_add_test (tcase, test_sighup_ignored);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("config");
    tcase_set_timeout (tcase, 30);
    tcase_add_test (tcase, test_bad_config);
    tcase_add_test (tcase, test_bad_target_name);
    tcase_add_test (tcase, test_inflight_below_brokers);
    tcase_add_test (tcase, test_bad_name);
    tcase_add_test (tcase, test_credential_line_break);
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
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
