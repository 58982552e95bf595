/*  =========================================================================
    check_cw_runner - the outcome mapping (every row, no I/O), and the
    curl multi runner against a real erpsim process: hundreds of calls in
    flight over reused connections, stalls, 429, 4xx, headers
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_flow.h"
#include "cw_runner.h"
#include "cw_test.h"
#include "worker_fixture.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NOW_MSEC 1738317723000LL  //  2025-01-31T10:02:03Z
#define MANY 200                  //  Calls in flight at once
#define WAIT_MSEC 20000

//  Classification -------------------------------------------------------

typedef struct {
    const char *name;  //  Row
    int curl_code;
    long status;
    const char *retry_after;
    const char *body;
    bool body_over;
    cw_outcome_t outcome;      //  Expected
    int64_t retry_after_msec;  //  Expected
    const char *error;         //  Expected substring ("" = empty error)
    bool response;             //  Expected: a response object
} s_row_t;

static const s_row_t s_rows[] = {
    {"200 json", CURLE_OK, 200, NULL, "{\"id\":\"CUST-1\"}", false,
     CW_OUTCOME_OK, -1, "", true},
    {"201 empty", CURLE_OK, 201, NULL, "", false, CW_OUTCOME_OK, -1, "", false},
    {"204", CURLE_OK, 204, NULL, NULL, false, CW_OUTCOME_OK, -1, "", false},
    {"200 array", CURLE_OK, 200, NULL, "[1]", false, CW_OUTCOME_OK, -1, "",
     false},
    {"200 over cap", CURLE_OK, 200, NULL, "{\"a\":", true, CW_OUTCOME_OK, -1,
     "", false},
    {"200 malformed", CURLE_OK, 200, NULL, "<html>oops", false,
     CW_OUTCOME_TRANSIENT, -1, "malformed response (status 200)", false},
    //  An id beyond 64 bits is valid JSON: the ERP did it (a retry would
    //  get the same answer and the job would die although done)
    {"201 big integer", CURLE_OK, 201, NULL,
     "{\"id\":123456789012345678901234567890}", false, CW_OUTCOME_OK, -1, "",
     true},
    {"409", CURLE_OK, 409, NULL,
     "{\"type\":\"x/order-exists\",\"detail\":\"order o-1 exists\"}", false,
     CW_OUTCOME_DUPLICATE, -1, "conflict (409): order o-1 exists", true},
    {"409 stale version", CURLE_OK, 409, NULL,
     "{\"type\":\"https://erp.invalid/problems/stale-version\","
     "\"detail\":\"version 3 is older than 4\"}",
     false, CW_OUTCOME_DUPLICATE, -1, "conflict (409): version 3", true},
    {"409 already processed code", CURLE_OK, 409, NULL,
     "{\"code\":\"already_processed\"}", false, CW_OUTCOME_DUPLICATE, -1,
     "conflict (409)", true},
    //  Conflicts that do not say "already done": the change may never
    //  have been made, so not a duplicate (done) but a dead letter
    {"409 order closed", CURLE_OK, 409, NULL,
     "{\"type\":\"x/order-closed\",\"detail\":\"order o-1 is "
     "completed\"}",
     false, CW_OUTCOME_REJECTED, -1, "rejected (409): order o-1 is completed",
     true},
    {"409 no body", CURLE_OK, 409, NULL, NULL, false, CW_OUTCOME_REJECTED, -1,
     "rejected (409)", false},
    {"409 not json", CURLE_OK, 409, NULL, "Conflict", false,
     CW_OUTCOME_REJECTED, -1, "rejected (409)", false},
    {"409 type only ends alike", CURLE_OK, 409, NULL,
     "{\"type\":\"x/not-a-duplicate\"}", false, CW_OUTCOME_REJECTED, -1,
     "rejected (409)", true},
    {"409 key in flight", CURLE_OK, 409, NULL,
     "{\"type\":\"x/idempotency-key-in-flight\",\"detail\":\"still "
     "processed\"}",
     false, CW_OUTCOME_TRANSIENT, -1, "key in flight (409): still processed",
     true},
    {"422", CURLE_OK, 422, NULL,
     "{\"type\":\"x/missing-field\",\"detail\":\"field \\\"name\\\" is "
     "missing\",\"field\":\"name\"}",
     false, CW_OUTCOME_REJECTED, -1, "rejected (422): field \"name\"", true},
    {"400", CURLE_OK, 400, NULL, "{\"title\":\"Invalid JSON\"}", false,
     CW_OUTCOME_REJECTED, -1, "rejected (400): Invalid JSON", true},
    {"404 no body", CURLE_OK, 404, NULL, NULL, false, CW_OUTCOME_REJECTED, -1,
     "rejected (404)", false},
    {"401 malformed", CURLE_OK, 401, NULL, "nope", false, CW_OUTCOME_REJECTED,
     -1, "rejected (401)", false},
    {"400 version type", CURLE_OK, 400, NULL,
     "{\"type\":\"https://erp.invalid/problems/unsupported_contract_version\"}",
     false, CW_OUTCOME_VERSION, -1, "contract version not supported", true},
    {"400 version code", CURLE_OK, 400, NULL,
     "{\"type\":\"about:blank\",\"code\":\"unsupported-contract-version\","
     "\"detail\":\"v3 unknown\"}",
     false, CW_OUTCOME_VERSION, -1,
     "contract version not supported (400): v3 unknown", true},
    {"422 version type is rejected", CURLE_OK, 422, NULL,
     "{\"type\":\"x/unsupported_contract_version\"}", false,
     CW_OUTCOME_REJECTED, -1, "rejected (422)", true},
    {"400 lookalike type", CURLE_OK, 400, NULL,
     "{\"type\":\"x/not_unsupported_contract_version\"}", false,
     CW_OUTCOME_REJECTED, -1, "rejected (400)", true},
    {"429 seconds", CURLE_OK, 429, "3", "{}", false, CW_OUTCOME_TRANSIENT, 3000,
     "rate limited (429)", true},
    {"429 date", CURLE_OK, 429, "Fri, 31 Jan 2025 10:02:13 GMT", NULL, false,
     CW_OUTCOME_TRANSIENT, 10000, "rate limited (429)", false},
    {"429 bad retry-after", CURLE_OK, 429, "soon", NULL, false,
     CW_OUTCOME_TRANSIENT, -1, "rate limited (429)", false},
    {"429 none", CURLE_OK, 429, NULL, NULL, false, CW_OUTCOME_TRANSIENT, -1,
     "rate limited (429)", false},
    {"408", CURLE_OK, 408, NULL, NULL, false, CW_OUTCOME_TRANSIENT, -1,
     "request timeout (408)", false},
    {"500", CURLE_OK, 500, NULL, "{\"detail\":\"boom\"}", false,
     CW_OUTCOME_TRANSIENT, -1, "server error (500): boom", true},
    {"503 retry-after", CURLE_OK, 503, "2", "garbage", false,
     CW_OUTCOME_TRANSIENT, 2000, "server error (503)", false},
    {"302", CURLE_OK, 302, NULL, NULL, false, CW_OUTCOME_TRANSIENT, -1,
     "unexpected HTTP status 302", false},
    {"timeout", CURLE_OPERATION_TIMEDOUT, 0, NULL, NULL, false,
     CW_OUTCOME_TRANSIENT, -1, "timeout after 1500 ms", false},
    {"refused", CURLE_COULDNT_CONNECT, 0, NULL, NULL, false,
     CW_OUTCOME_TRANSIENT, -1, "could not complete call: ", false},
    {"empty reply", CURLE_GOT_NOTHING, 0, NULL, NULL, false,
     CW_OUTCOME_TRANSIENT, -1, "could not complete call: ", false},
    {"truncated", CURLE_PARTIAL_FILE, 200, NULL, "{\"id\":", false,
     CW_OUTCOME_TRANSIENT, -1, "could not complete call: ", false},
    {"recv error", CURLE_RECV_ERROR, 0, NULL, NULL, false, CW_OUTCOME_TRANSIENT,
     -1, "could not complete call: ", false},
    {"dns", CURLE_COULDNT_RESOLVE_HOST, 0, NULL, NULL, false,
     CW_OUTCOME_TRANSIENT, -1, "could not complete call: ", false},
};

START_TEST (test_classify)
{
    const s_row_t *row = &s_rows[_i];
    cw_runner_result_t result;
    memset (&result, 0, sizeof (result));
    cw_runner_classify (row->curl_code, "", row->status, row->retry_after,
                        row->body, row->body ? strlen (row->body) : 0,
                        row->body_over, 1500, NOW_MSEC, &result);
    ck_assert_msg (result.outcome == row->outcome, "%s: got %s", row->name,
                   cw_outcome_name (result.outcome));
    ck_assert_int_eq (result.http_status, row->status);
    ck_assert_msg (result.retry_after_msec == row->retry_after_msec,
                   "%s: retry_after_msec %lld", row->name,
                   (long long) result.retry_after_msec);
    if (*row->error)
        ck_assert_msg (strstr (result.error, row->error) == result.error,
                       "%s: error \"%s\"", row->name, result.error);
    else
        ck_assert_msg (result.error[0] == 0, "%s: error \"%s\"", row->name,
                       result.error);
    ck_assert_msg ((result.response != NULL) == row->response, "%s: response",
                   row->name);
    json_decref (result.response);
}
END_TEST

START_TEST (test_classify_curl_error_text)
{
    //  curl's error buffer wins over the generic text
    cw_runner_result_t result;
    memset (&result, 0, sizeof (result));
    cw_runner_classify (CURLE_COULDNT_CONNECT, "Failed to connect to x", 0,
                        NULL, NULL, 0, false, 100, NOW_MSEC, &result);
    ck_assert_str_eq (result.error,
                      "could not complete call: Failed to connect to x");
    ck_assert_str_eq (cw_outcome_name (CW_OUTCOME_OK), "ok");
    ck_assert_str_eq (cw_outcome_name (CW_OUTCOME_REJECTED), "rejected");
    ck_assert_str_eq (cw_outcome_name (CW_OUTCOME_DUPLICATE), "duplicate");
    ck_assert_str_eq (cw_outcome_name (CW_OUTCOME_TRANSIENT), "transient");
    ck_assert_str_eq (cw_outcome_name (CW_OUTCOME_VERSION), "version");
}
END_TEST

START_TEST (test_classify_error_utf8)
{
    //  A long non-ASCII problem detail is cut to the error's size: the
    //  cut must not split a character (RESULT carries UTF-8 only)
    char body[1024] = "{\"detail\":\"";
    for (int index = 0; index < 200; index++)
        strcat (body, "\xc3\xa9");
    strcat (body, "\"}");
    cw_runner_result_t result;
    memset (&result, 0, sizeof (result));
    cw_runner_classify (CURLE_OK, "", 422, NULL, body, strlen (body), false,
                        100, NOW_MSEC, &result);
    ck_assert_int_eq (result.outcome, CW_OUTCOME_REJECTED);
    ck_assert_int_gt (strlen (result.error), CW_RUNNER_ERROR_MAX - 8);
    ck_assert_msg (cw_envelope_utf8_valid (result.error, strlen (result.error)),
                   "error is not UTF-8: %s", result.error);
    json_decref (result.response);
    //  Likewise the curl error buffer, whatever bytes it holds
    memset (&result, 0, sizeof (result));
    cw_runner_classify (CURLE_COULDNT_CONNECT, "host \xff\xc3 down", 0, NULL,
                        NULL, 0, false, 100, NOW_MSEC, &result);
    ck_assert_msg (cw_envelope_utf8_valid (result.error, strlen (result.error)),
                   "error is not UTF-8: %s", result.error);
    ck_assert_str_eq (result.error, "could not complete call: host  down");
}
END_TEST

//  Runner against erpsim ------------------------------------------------

static const char *s_auth = "X-Api-Key: " WORKER_FIXTURE_API_KEY;

//  Starts a POST /api/v1/customers for customer with key.
static void
s_start_customer (cw_runner_t *runner,
                  worker_sim_t *sim,
                  const char *key,
                  const char *correlation,
                  const char *customer,
                  void *tag,
                  int64_t timeout_msec)
{
    char url[128], body[256], key_line[128], correlation_line[128];
    snprintf (url, sizeof (url), "%s/api/v1/customers", sim->base_url);
    snprintf (body, sizeof (body),
              "{\"tenant\":\"t1\",\"customerId\":\"%s\",\"name\":\"N\"}",
              customer);
    snprintf (key_line, sizeof (key_line), "Idempotency-Key: %s", key);
    snprintf (correlation_line, sizeof (correlation_line),
              "X-Correlation-ID: %s", correlation);
    const char *headers[] = {key_line, correlation_line,
                             "Content-Type: application/json", s_auth, NULL};
    cw_runner_call_t call = {.method = "POST",
                             .url = url,
                             .body = body,
                             .headers = headers,
                             .connect_timeout_msec = 2000,
                             .timeout_msec = timeout_msec,
                             .tag = tag};
    char error[256];
    ck_assert_msg (cw_runner_start (runner, &call, error, sizeof (error)) == 0,
                   "%s", error);
}

//  Runs the runner until every call is done; returns results by tag
//  index (tags are 1..count cast to pointers).
static void
s_finish (cw_runner_t *runner, cw_runner_result_t **results, size_t count)
{
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    size_t done = 0;
    while (done < count) {
        ck_assert_msg (cw_test_now_msec () < deadline,
                       "only %zu of %zu calls finished", done, count);
        cw_runner_wait (runner, 1000);
        cw_runner_result_t *result;
        while ((result = cw_runner_next (runner))) {
            size_t index = (size_t) (uintptr_t) result->tag - 1;
            ck_assert_uint_lt (index, count);
            ck_assert_ptr_null (results[index]);
            results[index] = result;
            done++;
        }
    }
    ck_assert_uint_eq (cw_runner_inflight (runner), 0);
}

START_TEST (test_many_in_flight)
{
    worker_sim_t sim;
    worker_sim_start (&sim, "--latency-ms", "100", NULL);
    cw_runner_t *runner = cw_runner_new (MANY);
    cw_runner_result_t *results[MANY] = {NULL};
    long long started = cw_test_now_msec ();
    for (size_t index = 0; index < MANY; index++) {
        char key[64], customer[64], correlation[64];
        snprintf (key, sizeof (key), "k1-%zu", index);
        snprintf (customer, sizeof (customer), "c-%zu", index);
        snprintf (correlation, sizeof (correlation), "corr-%zu", index);
        s_start_customer (runner, &sim, key, correlation, customer,
                          (void *) (uintptr_t) (index + 1), 10000);
    }
    //  Full: one more is refused
    char error[256];
    cw_runner_call_t extra = {.method = "GET",
                              .url = sim.base_url,
                              .connect_timeout_msec = 100,
                              .timeout_msec = 100};
    ck_assert_int_eq (cw_runner_start (runner, &extra, error, sizeof (error)),
                      -1);
    ck_assert_uint_eq (cw_runner_inflight (runner), MANY);
    s_finish (runner, results, MANY);
    long long first_msec = cw_test_now_msec () - started;
    for (size_t index = 0; index < MANY; index++) {
        ck_assert_msg (results[index]->outcome == CW_OUTCOME_OK, "%zu: %s",
                       index, results[index]->error);
        ck_assert_int_eq (results[index]->http_status, 201);
        ck_assert_str_eq (json_string_value (json_object_get (
                              results[index]->response, "customerId")),
                          json_string_value (json_object_get (
                              results[index]->response, "customerId")));
        ck_assert_int_ge (results[index]->duration_msec, 100);
        cw_runner_result_destroy (&results[index]);
    }
    uint64_t first_connections = cw_runner_connections (runner);
    ck_assert_uint_eq (cw_runner_calls (runner), MANY);
    ck_assert_uint_le (first_connections, MANY);

    //  A second round reuses the connections of the first
    started = cw_test_now_msec ();
    for (size_t index = 0; index < MANY; index++) {
        char key[64], customer[64], correlation[64];
        snprintf (key, sizeof (key), "k2-%zu", index);
        snprintf (customer, sizeof (customer), "c-%zu", index);
        snprintf (correlation, sizeof (correlation), "corr2-%zu", index);
        s_start_customer (runner, &sim, key, correlation, customer,
                          (void *) (uintptr_t) (index + 1), 10000);
    }
    s_finish (runner, results, MANY);
    long long second_msec = cw_test_now_msec () - started;
    for (size_t index = 0; index < MANY; index++) {
        ck_assert_int_eq (results[index]->http_status, 200);
        cw_runner_result_destroy (&results[index]);
    }
    uint64_t second_connections =
        cw_runner_connections (runner) - first_connections;
    fprintf (stderr,
             "runner: %d calls in flight, 100 ms latency: round 1 %lld ms, "
             "%llu connections; round 2 %lld ms, %llu new connections\n",
             MANY, first_msec, (unsigned long long) first_connections,
             second_msec, (unsigned long long) second_connections);
    ck_assert_uint_le (second_connections, MANY / 20);
    //  Concurrency: far less than 200 x 100 ms
    ck_assert_int_lt (first_msec, 5000);

    json_t *report = worker_sim_introspect (&sim);
    json_t *inflight = json_object_get (report, "inFlight");
    ck_assert_int_gt (json_integer_value (json_object_get (inflight, "max")),
                      1);
    json_t *customers =
        json_object_get (json_object_get (report, "effects"), "customers");
    ck_assert_uint_eq (json_object_size (customers), MANY);
    const char *id;
    json_t *effect;
    json_object_foreach (customers, id, effect)
    {
        ck_assert_int_eq (
            json_integer_value (json_object_get (effect, "creates")), 1);
        ck_assert_int_eq (
            json_integer_value (json_object_get (effect, "updates")), 1);
    }
    json_decref (report);
    cw_runner_destroy (&runner);
    ck_assert_ptr_null (runner);
    worker_sim_stop (&sim);
}
END_TEST

START_TEST (test_headers_arrive)
{
    worker_sim_t sim;
    worker_sim_start (&sim, NULL);
    cw_runner_t *runner = cw_runner_new (4);
    cw_runner_result_t *results[2] = {NULL};
    //  The same key twice: one effect, the second is a replay
    s_start_customer (runner, &sim, "key-same", "corr-headers-1", "c-h",
                      (void *) 1, 5000);
    s_finish (runner, results, 1);
    s_start_customer (runner, &sim, "key-same", "corr-headers-2", "c-h",
                      (void *) 1, 5000);
    s_finish (runner, results + 1, 1);
    ck_assert_int_eq (results[0]->http_status, 201);
    ck_assert_int_eq (results[1]->http_status, 201);
    ck_assert_int_eq (results[1]->outcome, CW_OUTCOME_OK);
    ck_assert_str_eq (
        json_string_value (json_object_get (results[0]->response, "id")),
        json_string_value (json_object_get (results[1]->response, "id")));
    json_t *report = worker_sim_introspect (&sim);
    ck_assert_int_eq (
        json_integer_value (json_object_get (report, "duplicateKeyHits")), 1);
    json_decref (report);
    ck_assert_int_eq (worker_sim_log_count (&sim, "\"corr-headers-1\""), 1);
    ck_assert_int_eq (worker_sim_log_count (&sim, "\"corr-headers-2\""), 1);
    cw_runner_result_destroy (&results[0]);
    cw_runner_result_destroy (&results[1]);
    cw_runner_destroy (&runner);
    worker_sim_stop (&sim);
}
END_TEST

//  cw_runner_start sends the request at once on a pooled connection: the
//  server has it before the caller drives the runner again
START_TEST (test_sent_on_start)
{
    worker_sim_t sim;
    worker_sim_start (&sim, "--latency-ms", "400", NULL);
    cw_runner_t *runner = cw_runner_new (4);
    cw_runner_result_t *results[2] = {NULL};
    //  The first call opens the connection
    s_start_customer (runner, &sim, "key-sent-1", "corr-sent-1", "c-s1",
                      (void *) 1, 5000);
    s_finish (runner, results, 1);
    //  The second reuses it: started, not driven, yet in flight at erpsim
    s_start_customer (runner, &sim, "key-sent-2", "corr-sent-2", "c-s2",
                      (void *) 1, 5000);
    struct timespec pause = {0, 200 * 1000000L};
    nanosleep (&pause, NULL);
    json_t *report = worker_sim_introspect (&sim);
    ck_assert_int_eq (json_integer_value (json_object_get (
                          json_object_get (report, "inFlight"), "current")),
                      1);
    json_decref (report);
    s_finish (runner, results + 1, 1);
    ck_assert_int_eq (results[1]->http_status, 201);
    ck_assert_int_eq (results[1]->new_connections, 0);
    cw_runner_result_destroy (&results[0]);
    cw_runner_result_destroy (&results[1]);
    cw_runner_destroy (&runner);
    worker_sim_stop (&sim);
}
END_TEST

START_TEST (test_faults)
{
    worker_sim_t sim;
    worker_sim_start (&sim, NULL);
    cw_runner_t *runner = cw_runner_new (4);
    cw_runner_result_t *results[1] = {NULL};
    long status = 0;

    //  Stall beyond the timeout: transient, no status
    json_decref (worker_sim_control (
        &sim, "PUT", "/_control/faults",
        "{\"*\":{\"stallRate\":1,\"stallMs\":3000}}", &status));
    ck_assert_int_eq (status, 200);
    s_start_customer (runner, &sim, "key-stall", "corr-stall", "c-s",
                      (void *) 1, 500);
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_TRANSIENT);
    ck_assert_int_eq (results[0]->http_status, 0);
    ck_assert_str_eq (results[0]->error, "timeout after 500 ms");
    ck_assert_int_lt (results[0]->duration_msec, 2000);
    cw_runner_result_destroy (&results[0]);

    //  429 with Retry-After
    json_decref (worker_sim_control (
        &sim, "PUT", "/_control/faults",
        "{\"*\":{\"rateLimitRate\":1,\"retryAfterSeconds\":7}}", &status));
    s_start_customer (runner, &sim, "key-429", "corr-429", "c-r", (void *) 1,
                      5000);
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_TRANSIENT);
    ck_assert_int_eq (results[0]->http_status, 429);
    ck_assert_int_eq (results[0]->retry_after_msec, 7000);
    cw_runner_result_destroy (&results[0]);

    //  500
    json_decref (worker_sim_control (&sim, "PUT", "/_control/faults",
                                     "{\"*\":{\"errorRate\":1}}", &status));
    s_start_customer (runner, &sim, "key-500", "corr-500", "c-e", (void *) 1,
                      5000);
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_TRANSIENT);
    ck_assert_int_eq (results[0]->http_status, 500);
    cw_runner_result_destroy (&results[0]);

    //  Truncated body after the effect: transient
    json_decref (worker_sim_control (&sim, "PUT", "/_control/faults",
                                     "{\"*\":{\"truncatedRate\":1}}", &status));
    s_start_customer (runner, &sim, "key-trunc", "corr-trunc", "c-t",
                      (void *) 1, 5000);
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_TRANSIENT);
    cw_runner_result_destroy (&results[0]);

    //  Malformed body after the effect: transient
    json_decref (worker_sim_control (&sim, "PUT", "/_control/faults",
                                     "{\"*\":{\"malformedRate\":1}}", &status));
    s_start_customer (runner, &sim, "key-mal", "corr-mal", "c-m", (void *) 1,
                      5000);
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_TRANSIENT);
    ck_assert_ptr_nonnull (strstr (results[0]->error, "malformed"));
    cw_runner_result_destroy (&results[0]);

    //  Injected conflict (erpsim made no change): a dead letter, not a
    //  duplicate, which would count the job done without its effect
    json_decref (worker_sim_control (&sim, "PUT", "/_control/faults",
                                     "{\"*\":{\"conflictRate\":1}}", &status));
    s_start_customer (runner, &sim, "key-409", "corr-409", "c-d", (void *) 1,
                      5000);
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_REJECTED);
    ck_assert_ptr_nonnull (strstr (results[0]->error, "injected conflict"));
    ck_assert_int_eq (results[0]->http_status, 409);
    cw_runner_result_destroy (&results[0]);

    //  Validation: 422 rejected, naming the field
    json_decref (
        worker_sim_control (&sim, "PUT", "/_control/faults", "{}", &status));
    char url[128];
    snprintf (url, sizeof (url), "%s/api/v1/customers", sim.base_url);
    const char *headers[] = {"Idempotency-Key: key-422",
                             "Content-Type: application/json", s_auth, NULL};
    cw_runner_call_t call = {.method = "POST",
                             .url = url,
                             .body = "{\"tenant\":\"t1\",\"customerId\":\"x\"}",
                             .headers = headers,
                             .connect_timeout_msec = 1000,
                             .timeout_msec = 5000,
                             .tag = (void *) 1};
    char error[256];
    ck_assert_int_eq (cw_runner_start (runner, &call, error, sizeof (error)),
                      0);
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_REJECTED);
    ck_assert_int_eq (results[0]->http_status, 422);
    ck_assert_ptr_nonnull (strstr (results[0]->error, "name"));
    cw_runner_result_destroy (&results[0]);

    //  No credential: 401 rejected
    headers[2] = NULL;
    ck_assert_int_eq (cw_runner_start (runner, &call, error, sizeof (error)),
                      0);
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_REJECTED);
    ck_assert_int_eq (results[0]->http_status, 401);
    cw_runner_result_destroy (&results[0]);

    //  Unsupported method
    call.method = "TRACE";
    ck_assert_int_eq (cw_runner_start (runner, &call, error, sizeof (error)),
                      -1);
    ck_assert_ptr_nonnull (strstr (error, "TRACE"));
    cw_runner_destroy (&runner);
    worker_sim_stop (&sim);
}
END_TEST

START_TEST (test_refused_and_cancel)
{
    //  A port nobody listens on: bind, read it back, close
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    ck_assert_int_eq (bind (fd, (struct sockaddr *) &address, sizeof (address)),
                      0);
    socklen_t length = sizeof (address);
    getsockname (fd, (struct sockaddr *) &address, &length);
    close (fd);
    char url[128];
    snprintf (url, sizeof (url), "http://127.0.0.1:%d/x",
              ntohs (address.sin_port));
    cw_runner_t *runner = cw_runner_new (2);
    cw_runner_call_t call = {.method = "GET",
                             .url = url,
                             .connect_timeout_msec = 1000,
                             .timeout_msec = 2000,
                             .tag = (void *) 1};
    char error[256];
    ck_assert_int_eq (cw_runner_start (runner, &call, error, sizeof (error)),
                      0);
    cw_runner_result_t *results[1] = {NULL};
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_TRANSIENT);
    ck_assert_int_eq (results[0]->http_status, 0);
    ck_assert_ptr_nonnull (strstr (results[0]->error, "could not complete"));
    cw_runner_result_destroy (&results[0]);

    //  Cancel: the call is gone, no result comes
    worker_sim_t sim;
    worker_sim_start (&sim, "--stall-rate", "1", "--stall-ms", "2000", NULL);
    snprintf (url, sizeof (url), "%s/api/v1/customers/CUST-1", sim.base_url);
    call.tag = (void *) 7;
    ck_assert_int_eq (cw_runner_start (runner, &call, error, sizeof (error)),
                      0);
    cw_runner_wait (runner, 50);
    ck_assert_uint_eq (cw_runner_inflight (runner), 1);
    ck_assert_int_eq (cw_runner_cancel (runner, (void *) 7), 0);
    ck_assert_int_eq (cw_runner_cancel (runner, (void *) 7), -1);
    ck_assert_uint_eq (cw_runner_inflight (runner), 0);
    ck_assert_ptr_null (cw_runner_next (runner));
    cw_runner_destroy (&runner);
    worker_sim_stop (&sim);
}
END_TEST

START_TEST (test_connect_timeout)
{
    //  A listener whose accept queue is full: the kernel drops further
    //  SYNs, so a connect hangs until curl's connect timeout
    int listener = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    ck_assert_int_eq (
        bind (listener, (struct sockaddr *) &address, sizeof (address)), 0);
    ck_assert_int_eq (listen (listener, 0), 0);
    socklen_t length = sizeof (address);
    getsockname (listener, (struct sockaddr *) &address, &length);
    int fillers[4];
    for (size_t index = 0; index < 4; index++) {
        fillers[index] = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect (fillers[index], (struct sockaddr *) &address,
                 sizeof (address));
    }
    usleep (100 * 1000);
    char url[128];
    snprintf (url, sizeof (url), "http://127.0.0.1:%d/x",
              ntohs (address.sin_port));
    cw_runner_t *runner = cw_runner_new (2);
    cw_runner_call_t call = {.method = "GET",
                             .url = url,
                             .connect_timeout_msec = 300,
                             .timeout_msec = 5000,
                             .tag = (void *) 1};
    char error[256];
    ck_assert_int_eq (cw_runner_start (runner, &call, error, sizeof (error)),
                      0);
    cw_runner_result_t *results[1] = {NULL};
    s_finish (runner, results, 1);
    ck_assert_int_eq (results[0]->outcome, CW_OUTCOME_TRANSIENT);
    ck_assert_int_eq (results[0]->http_status, 0);
    ck_assert_int_lt (results[0]->duration_msec, 2000);
    //  The connect timed out, not the whole call's 5000 ms
    ck_assert_str_eq (results[0]->error, "connect timeout after 300 ms");
    cw_runner_result_destroy (&results[0]);
    cw_runner_destroy (&runner);
    for (size_t index = 0; index < 4; index++)
        close (fillers[index]);
    close (listener);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("cw_runner");
    TCase *tcase = tcase_create ("classify");
    tcase_set_timeout (tcase, 10);
    tcase_add_loop_test (tcase, test_classify, 0,
                         (int) (sizeof (s_rows) / sizeof (s_rows[0])));
    tcase_add_test (tcase, test_classify_curl_error_text);
    tcase_add_test (tcase, test_classify_error_utf8);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("erpsim");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_many_in_flight);
    tcase_add_test (tcase, test_headers_arrive);
    tcase_add_test (tcase, test_sent_on_start);
    tcase_add_test (tcase, test_faults);
    tcase_add_test (tcase, test_refused_and_cancel);
    tcase_add_test (tcase, test_connect_timeout);
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
