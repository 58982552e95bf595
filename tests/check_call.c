/*  =========================================================================
    check_call - a sync call end to end with real processes: a private
    PostgreSQL database migrated by causeway-migrate, causeway-broker,
    causeway-worker and erpsim, certificates made at test time, and an
    admin client (DEALER with an admin certificate) sending REQUEST op
    "call" (docs/broker.md, PROTOCOL.md §4.7 and §4.9)
    =========================================================================
*/
#include "cw_curve.h"
#include "cw_envelope.h"
#include "cw_log.h"
#include "cw_msg.h"
#include "cw_fixture.h"
#include "cw_test.h"
#include "worker_fixture.h"

#include <check.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MSEC 20000

typedef struct {
    char *tmp;             //  Certs, uri files, logs
    char *uri;             //  Superuser URI of the test database
    worker_sim_t sim;      //  erpsim
    zcert_t *server;       //  Broker cert
    zcert_t *worker;       //  Worker cert (allowed)
    zcert_t *admin;        //  Admin cert (allowed)
    char *endpoint;        //  Broker's bound endpoint
    pid_t broker;          //  Broker process
    pid_t worker_pid;      //  Worker process
    zsock_t *client;       //  The admin DEALER
    int64_t request_id;    //  Last REQUEST id
} fixture_t;

static char *
s_path (fixture_t *self, const char *name)
{
    return zsys_sprintf ("%s/%s", self->tmp, name);
}

static void
s_broker_start (fixture_t *self)
{
    const char *settings[] = {"CW_BROKER_ID=broker-call",
                              "CW_BROKER_SERVER_HEARTBEAT=200ms",
                              "CW_BROKER_DRAIN=2s",
                              "CW_BROKER_LOG_LEVEL=debug",
                              NULL};
    self->broker = cw_fixture_broker_start (self->tmp, self->uri, "endpoint",
                                            "broker.log", settings, NULL,
                                            WAIT_MSEC, &self->endpoint);
}

static void
s_worker_start (fixture_t *self)
{
    char *program = cw_test_build_path ("worker/causeway-worker");
    char *env_endpoint =
        zsys_sprintf ("CW_WORKER_BROKER_ENDPOINTS=%s", self->endpoint);
    char *env_key = zsys_sprintf ("CW_WORKER_BROKER_PUBLIC_KEY=%s",
                                  zcert_public_txt (self->server));
    char *env_cert = zsys_sprintf (
        "CW_WORKER_SECURITY_CERTIFICATE_FILE=%s/own/worker.secret", self->tmp);
    char *env_base =
        zsys_sprintf ("CW_WORKER_TARGET_BASE_URL=%s", self->sim.base_url);
    char *env_credentials = zsys_sprintf (
        "CW_WORKER_TARGET_CREDENTIALS_FILE=%s", self->sim.key_path);
    const char *envp[] = {env_endpoint,
                          env_key,
                          env_cert,
                          env_base,
                          env_credentials,
                          "CW_WORKER_TARGET_AUTH=api_key",
                          "CW_WORKER_HEARTBEAT=200ms",
                          "CW_WORKER_RECONNECT=100ms",
                          "CW_WORKER_LOG_LEVEL=debug",
                          NULL};
    const char *argv[] = {program, NULL};
    char *log = s_path (self, "worker.log");
    self->worker_pid = cw_test_spawn (argv, envp, log);
    ck_assert_int_gt (self->worker_pid, 0);
    zstr_free (&log);
    zstr_free (&env_endpoint);
    zstr_free (&env_key);
    zstr_free (&env_cert);
    zstr_free (&env_base);
    zstr_free (&env_credentials);
    free (program);
}

static fixture_t *
s_fixture_new (void)
{
    fixture_t *self = (fixture_t *) zmalloc (sizeof (fixture_t));
    cw_log_init ("check_call", CW_LOG_ERROR);
    self->tmp = cw_test_tmpdir ("check_call");
    self->uri = cw_test_db_new ("call");
    const char *islands[] = {"erp_mw", NULL};
    cw_fixture_migrate_islands (self->tmp, self->uri, islands);
    self->server = cw_curve_cert_new ("admin", "broker");
    self->worker = cw_curve_cert_new ("worker", "worker");
    self->admin = cw_curve_cert_new ("admin", "operator");
    cw_fixture_cert_save (self->tmp, self->server, "server", "broker");
    cw_fixture_cert_save (self->tmp, self->worker, "peers", "worker");
    cw_fixture_cert_save (self->tmp, self->worker, "own", "worker");
    cw_fixture_cert_save (self->tmp, self->admin, "peers", "operator");
    worker_sim_start (&self->sim, NULL);
    s_broker_start (self);
    s_worker_start (self);
    self->client = zsock_new (ZMQ_DEALER);
    cw_curve_client_setup (self->client, self->admin,
                           zcert_public_txt (self->server));
    zsock_set_linger (self->client, 0);
    ck_assert_int_eq (zsock_connect (self->client, "%s", self->endpoint), 0);
    return self;
}

static void
s_fixture_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    zsock_destroy (&self->client);
    if (self->worker_pid > 0) {
        int status = cw_test_stop (self->worker_pid, WAIT_MSEC);
        ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                       "worker exit status %d", status);
    }
    if (self->broker > 0) {
        int status = cw_test_stop (self->broker, WAIT_MSEC);
        ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                       "broker exit status %d", status);
    }
    worker_sim_stop (&self->sim);
    zcert_destroy (&self->server);
    zcert_destroy (&self->worker);
    zcert_destroy (&self->admin);
    zstr_free (&self->endpoint);
    cw_test_db_destroy (&self->uri);
    cw_test_tmpdir_destroy (&self->tmp);
    free (self);
    *self_p = NULL;
}

//  Sends REQUEST op with args (taken) and returns the RESPONSE to it.
static cw_msg_t *
s_request (fixture_t *self, const char *op, json_t *args)
{
    cw_msg_t *request = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
    request->request.request_id = ++self->request_id;
    request->request.op = strdup (op);
    request->request.args = args;
    char reason[CW_MSG_REASON_SIZE];
    cw_msg_frames_t *frames = cw_msg_encode (request, reason, sizeof (reason));
    ck_assert_msg (frames != NULL, "%s", reason);
    zmsg_t *out = zmsg_new ();
    for (size_t index = 0; index < frames->count; index++)
        zmsg_addmem (out, frames->frame[index].data, frames->frame[index].size);
    ck_assert_int_eq (zmsg_send (&out, self->client), 0);
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (&request);

    int64_t deadline = zclock_mono () + WAIT_MSEC;
    while (zclock_mono () < deadline) {
        zmq_pollitem_t item = {zsock_resolve (self->client), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 100) != 1) {
            int status = 0;
            if (waitpid (self->broker, &status, WNOHANG) == self->broker) {
                self->broker = 0;
                //  Stop the others before failing, leaving no orphans
                cw_test_kill (self->worker_pid);
                self->worker_pid = 0;
                worker_sim_stop (&self->sim);
                ck_abort_msg ("broker died (status %d); see %s/broker.log",
                              status, self->tmp);
            }
            continue;
        }
        zmsg_t *in = zmsg_recv (self->client);
        ck_assert_ptr_nonnull (in);
        cw_msg_frame_t frames_in[CW_MSG_FRAMES];
        size_t count = 0;
        for (zframe_t *frame = zmsg_first (in); frame && count < CW_MSG_FRAMES;
             frame = zmsg_next (in)) {
            frames_in[count].data = zframe_data (frame);
            frames_in[count].size = zframe_size (frame);
            count++;
        }
        cw_msg_t *msg =
            cw_msg_decode (frames_in, count, NULL, reason, sizeof (reason));
        zmsg_destroy (&in);
        ck_assert_msg (msg != NULL, "broker sent a bad message: %s", reason);
        if (msg->command == CW_MSG_RESPONSE
            && msg->response.request_id == self->request_id)
            return msg;
        cw_msg_destroy (&msg);
    }
    ck_abort_msg ("no RESPONSE to REQUEST %s", op);
    return NULL;
}

//  Waits until the broker counts `workers` live workers.
static void
s_wait_workers (fixture_t *self, int64_t workers)
{
    int64_t deadline = zclock_mono () + WAIT_MSEC;
    while (zclock_mono () < deadline) {
        cw_msg_t *msg = s_request (self, "status", json_object ());
        ck_assert_ptr_null (msg->response.error_code);
        int64_t now = json_integer_value (
            json_object_get (msg->response.result, "workers"));
        cw_msg_destroy (&msg);
        if (now == workers)
            return;
        zclock_sleep (50);  //  Polling a counter: no event to wait on
    }
    ck_abort_msg ("broker never counted %lld workers", (long long) workers);
}

//  args of op call: a customer upsert through http.generic with key.
static json_t *
s_call_args (const char *flow, const char *key)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, "evt-call-1");
    cw_envelope_set_source (envelope, "/webshop/customers");
    cw_envelope_set_type (envelope, "customer.upserted.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123Z");
    cw_envelope_set_tenant_id (envelope, "t1");
    cw_envelope_set_correlation_id (envelope, "corr-call-1");
    cw_envelope_set_idempotency_key (envelope, key);
    json_t *data = json_loads (
        "{\"path\":\"/api/v1/customers\",\"body\":{\"tenant\":\"t1\","
        "\"customerId\":\"c-sync\",\"name\":\"Sync\"}}",
        0, NULL);
    ck_assert_ptr_nonnull (data);
    cw_envelope_set_data (envelope, &data);
    char reason[256];
    char *text = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    ck_assert_msg (text != NULL, "%s", reason);
    cw_envelope_destroy (&envelope);
    json_t *envelope_json = json_loads (text, 0, NULL);
    free (text);
    ck_assert_ptr_nonnull (envelope_json);
    return json_pack ("{s:s, s:s, s:o}", "flow", flow, "target", "erp",
                      "envelope", envelope_json);
}

START_TEST (test_call)
{
    fixture_t *self = s_fixture_new ();
    s_wait_workers (self, 1);

    //  A customer upsert through the worker: erpsim's 201 and its body
    cw_msg_t *msg =
        s_request (self, "call", s_call_args ("http.generic", "key-sync-1"));
    ck_assert_msg (msg->response.error_code == NULL, "call failed: %s",
                   msg->response.error_message);
    json_t *result = msg->response.result;
    ck_assert_str_eq (
        json_string_value (json_object_get (result, "outcome")), "ok");
    ck_assert_int_eq (
        json_integer_value (json_object_get (result, "http_status")), 201);
    ck_assert (json_is_integer (json_object_get (result, "duration_ms")));
    const char *erp_id = json_string_value (
        json_object_get (json_object_get (result, "response"), "id"));
    ck_assert_ptr_nonnull (erp_id);
    ck_assert_int_eq (strncmp (erp_id, "CUST-", 5), 0);
    char first_id[64];
    snprintf (first_id, sizeof (first_id), "%s", erp_id);
    cw_msg_destroy (&msg);

    //  The same idempotency key again: erpsim replays, one effect
    msg = s_request (self, "call", s_call_args ("http.generic", "key-sync-1"));
    ck_assert_ptr_null (msg->response.error_code);
    result = msg->response.result;
    ck_assert_str_eq (
        json_string_value (json_object_get (result, "outcome")), "ok");
    ck_assert_str_eq (json_string_value (json_object_get (
                          json_object_get (result, "response"), "id")),
                      first_id);
    cw_msg_destroy (&msg);
    json_t *report = worker_sim_introspect (&self->sim);
    ck_assert_uint_eq (json_object_size (json_object_get (
                           json_object_get (report, "effects"), "customers")),
                       1);
    json_decref (report);

    //  A flow no worker serves: RESPONSE error, no HTTP call
    msg = s_request (self, "call", s_call_args ("customer.nope", "key-sync-2"));
    ck_assert_ptr_nonnull (msg->response.error_code);
    ck_assert_str_eq (msg->response.error_code, "call_failed");
    ck_assert_ptr_nonnull (strstr (msg->response.error_message,
                                   "customer.nope"));
    cw_msg_destroy (&msg);
    ck_assert_int_eq (worker_sim_log_count (&self->sim, "key-sync-2"), 0);

    //  A target that no CALL could carry: malformed, naming args.target
    //  (before, an empty or 65-byte target was taken and its CALL failed
    //  to encode, leaving the caller waiting)
    const char *targets[] = {
        "", "t2345678901234567890123456789012345678901234567890123456789012345"
    };
    for (size_t index = 0; index < 2; index++) {
        json_t *args = s_call_args ("http.generic", "key-sync-3");
        json_object_set_new (args, "target", json_string (targets [index]));
        msg = s_request (self, "call", args);
        ck_assert_ptr_nonnull (msg->response.error_code);
        ck_assert_str_eq (msg->response.error_code, "malformed");
        ck_assert_msg (strstr (msg->response.error_message, "args.target"),
                       "%s", msg->response.error_message);
        cw_msg_destroy (&msg);
    }
    ck_assert_int_eq (worker_sim_log_count (&self->sim, "key-sync-3"), 0);
    s_fixture_destroy (&self);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("call");
    TCase *tcase = tcase_create ("end_to_end");
    tcase_set_timeout (tcase, 90);
    tcase_add_test (tcase, test_call);
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
