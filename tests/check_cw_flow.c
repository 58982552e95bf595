/*  =========================================================================
    check_cw_flow - flow registry, http.generic requests, URL templating
    and encoding, the headers of every call
    =========================================================================
*/
#include "cw_flow.h"
#include "cw_flow_http.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const cw_flow_target_t s_target = {.name = "erp",
                                          .base_url = "http://127.0.0.1:8080",
                                          .credential = "s3cret",
                                          .auth = CW_FLOW_AUTH_BEARER,
                                          .connect_timeout_msec = 1000,
                                          .timeout_msec = 5000};

static cw_envelope_t *
s_envelope (const char *data_json)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_idempotency_key (envelope, "key-1");
    cw_envelope_set_correlation_id (envelope, "corr-1");
    json_t *data = json_loads (data_json, 0, NULL);
    ck_assert_ptr_nonnull (data);
    cw_envelope_set_data (envelope, &data);
    return envelope;
}

START_TEST (test_registry)
{
    char reason[256];
    cw_flow_t *flows = cw_flow_new ();
    ck_assert_uint_eq (cw_flow_size (flows), 0);
    ck_assert_ptr_null (cw_flow_lookup (flows, CW_FLOW_HTTP_GENERIC));
    ck_assert_int_eq (cw_flow_register (flows, CW_FLOW_HTTP_GENERIC,
                                        cw_flow_http_generic (), reason,
                                        sizeof (reason)),
                      0);
    ck_assert_ptr_eq (cw_flow_lookup (flows, "http.generic"),
                      cw_flow_http_generic ());
    ck_assert_uint_eq (cw_flow_size (flows), 1);
    ck_assert_str_eq (cw_flow_name (flows, 0), "http.generic");
    //  Twice: refused, naming the flow
    ck_assert_int_eq (cw_flow_register (flows, "http.generic",
                                        cw_flow_http_generic (), reason,
                                        sizeof (reason)),
                      -1);
    ck_assert_ptr_nonnull (strstr (reason, "\"http.generic\""));
    //  Bad names
    ck_assert_int_eq (cw_flow_register (flows, "", cw_flow_http_generic (),
                                        reason, sizeof (reason)),
                      -1);
    ck_assert_int_eq (cw_flow_register (flows, "Bad Name",
                                        cw_flow_http_generic (), reason,
                                        sizeof (reason)),
                      -1);
    ck_assert_ptr_nonnull (strstr (reason, "may only hold"));
    char long_name[CW_FLOW_NAME_MAX + 2];
    memset (long_name, 'a', sizeof (long_name) - 1);
    long_name[sizeof (long_name) - 1] = 0;
    ck_assert_int_eq (cw_flow_register (flows, long_name,
                                        cw_flow_http_generic (), reason,
                                        sizeof (reason)),
                      -1);
    ck_assert_int_eq (cw_flow_register (flows, "customer.upsert",
                                        cw_flow_http_generic (), reason,
                                        sizeof (reason)),
                      0);
    ck_assert_uint_eq (cw_flow_size (flows), 2);
    ck_assert_str_eq (cw_flow_name (flows, 1), "customer.upsert");
    //  noop: no HTTP call (no_call), registered only on request
    ck_assert (cw_flow_noop ()->no_call);
    ck_assert (!cw_flow_http_generic ()->no_call);
    ck_assert_ptr_null (cw_flow_lookup (flows, CW_FLOW_NOOP));
    ck_assert_int_eq (cw_flow_register (flows, CW_FLOW_NOOP, cw_flow_noop (),
                                        reason, sizeof (reason)),
                      0);
    ck_assert_ptr_eq (cw_flow_lookup (flows, "noop"), cw_flow_noop ());
    ck_assert_uint_eq (cw_flow_size (flows), 3);
    cw_flow_destroy (&flows);
    ck_assert_ptr_null (flows);
    cw_flow_destroy (&flows);
}
END_TEST

START_TEST (test_encode)
{
    char *encoded = cw_flow_http_encode ("a b/c?d=e&f%g~h-i_j.k\xc3\xa9");
    ck_assert_str_eq (encoded, "a%20b%2Fc%3Fd%3De%26f%25g~h-i_j.k%C3%A9");
    free (encoded);
    encoded = cw_flow_http_encode ("");
    ck_assert_str_eq (encoded, "");
    free (encoded);
}
END_TEST

static void
s_expect_path (const char *template,
               const char *fields_json,
               const char *expected)
{
    char reason[256] = "";
    json_t *fields = json_loads (fields_json, 0, NULL);
    ck_assert_ptr_nonnull (fields);
    char *path =
        cw_flow_http_expand (template, fields, reason, sizeof (reason));
    json_decref (fields);
    if (expected) {
        ck_assert_msg (path != NULL, "%s: %s", template, reason);
        ck_assert_str_eq (path, expected);
    }
    else {
        ck_assert_msg (path == NULL, "%s expanded to %s", template, path);
        ck_assert_msg (strstr (reason, "field") != NULL,
                       "reason names no field: %s", reason);
    }
    free (path);
}

START_TEST (test_expand)
{
    s_expect_path ("/api/v1/customers", "{}", "/api/v1/customers");
    s_expect_path ("/api/v1/orders/{id}/status", "{\"id\":\"ORD-1\"}",
                   "/api/v1/orders/ORD-1/status");
    s_expect_path ("/api/v1/orders/{id}", "{\"id\":42}", "/api/v1/orders/42");
    //  A value cannot add segments or a query: it is percent-encoded
    s_expect_path ("/x/{id}", "{\"id\":\"../../admin?x=1\"}",
                   "/x/..%2F..%2Fadmin%3Fx%3D1");
    s_expect_path ("/x/{a}/{b}?q={c}",
                   "{\"a\":\"1 2\",\"b\":\"\xc3\xa9\",\"c\":\"x&y\"}",
                   "/x/1%202/%C3%A9?q=x%26y");
    //  Refused, each naming the field
    s_expect_path ("api/v1", "{}", NULL);            //  no leading /
    s_expect_path ("//evil.example/x", "{}", NULL);  //  scheme-relative
    s_expect_path ("/a/../b", "{}", NULL);           //  dot segment
    s_expect_path ("/a/./b", "{}", NULL);
    s_expect_path ("/x/{id}", "{\"id\":\"..\"}", NULL);
    //  Percent-encoded dots are dots to the server (RFC 3986 6.2.2.2)
    s_expect_path ("/a/%2e%2e/b", "{}", NULL);
    s_expect_path ("/a/%2E./b", "{}", NULL);
    s_expect_path ("/a/%2e", "{}", NULL);
    s_expect_path ("/a/%{x}%{x}/b", "{\"x\":\"2e\"}", NULL);
    s_expect_path ("/a/%2e%2e%2e/b", "{}", "/a/%2e%2e%2e/b");
    s_expect_path ("/x/{id}", "{}", NULL);  //  missing field
    s_expect_path ("/x/{id}", "{\"id\":\"\"}", NULL);
    s_expect_path ("/x/{id}", "{\"id\":1.5}", NULL);
    s_expect_path ("/x/{id}", "{\"id\":{}}", NULL);
    s_expect_path ("/x/{id", "{\"id\":\"1\"}", NULL);  //  unclosed
    s_expect_path ("/x/{}", "{}", NULL);
    s_expect_path ("/x/{a b}", "{}", NULL);
    s_expect_path ("/x y", "{}", NULL);  //  space
    s_expect_path ("/x#frag", "{}", NULL);
    s_expect_path ("/x\r\nHost: evil", "{}", NULL);  //  header injection
}
END_TEST

START_TEST (test_build)
{
    char reason[256];
    cw_flow_request_t request = {0};
    const cw_flow_handler_t *generic = cw_flow_http_generic ();
    cw_envelope_t *envelope = s_envelope (
        "{\"path\":\"/api/v1/customers\",\"body\":{\"tenant\":\"t1\"}}");
    ck_assert_int_eq (
        generic->build (envelope, &s_target, &request, reason, sizeof (reason)),
        0);
    ck_assert_str_eq (request.method, "POST");
    ck_assert_str_eq (request.url, "http://127.0.0.1:8080/api/v1/customers");
    ck_assert_str_eq (request.body, "{\"tenant\":\"t1\"}");
    cw_flow_request_reset (&request);
    ck_assert_ptr_null (request.url);
    cw_envelope_destroy (&envelope);

    envelope =
        s_envelope ("{\"method\":\"GET\",\"path\":\"/api/v1/orders/{erpId}\","
                    "\"erpId\":\"ORD-000001\"}");
    ck_assert_int_eq (
        generic->build (envelope, &s_target, &request, reason, sizeof (reason)),
        0);
    ck_assert_str_eq (request.method, "GET");
    ck_assert_str_eq (request.url,
                      "http://127.0.0.1:8080/api/v1/orders/ORD-000001");
    ck_assert_ptr_null (request.body);
    cw_flow_request_reset (&request);
    cw_envelope_destroy (&envelope);

    //  Bad payloads: refused, naming the field; nothing allocated
    const char *bad[][2] = {
        {"{\"body\":{}}", "\"path\""},
        {"{\"path\":7}", "\"path\""},
        {"{\"path\":\"/x\",\"method\":\"TRACE\"}", "\"method\""},
        {"{\"path\":\"/x\",\"method\":1}", "\"method\""},
        {"{\"path\":\"/x\",\"body\":\"text\"}", "\"body\""},
        {"{\"path\":\"/x\",\"method\":\"GET\",\"body\":{}}", "\"body\""},
        {"{\"path\":\"http://evil.example/x\"}", "\"path\""},
        {"[1,2]", "payload"}};
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad[0]); index++) {
        envelope = s_envelope (bad[index][0]);
        ck_assert_int_eq (generic->build (envelope, &s_target, &request, reason,
                                          sizeof (reason)),
                          -1);
        ck_assert_msg (strstr (reason, bad[index][1]) != NULL, "%s: %s",
                       bad[index][0], reason);
        ck_assert_ptr_null (request.url);
        cw_envelope_destroy (&envelope);
    }
}
END_TEST

START_TEST (test_headers)
{
    char reason[256];
    cw_envelope_t *envelope = s_envelope ("{}");
    cw_envelope_set_traceparent (
        envelope, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    char **headers =
        cw_flow_headers (envelope, &s_target, reason, sizeof (reason));
    ck_assert_ptr_nonnull (headers);
    ck_assert_str_eq (headers[0], "Idempotency-Key: key-1");
    ck_assert_str_eq (headers[1], "X-Correlation-ID: corr-1");
    //  A child span: same trace id, new span id, same flags
    ck_assert_int_eq (
        strncmp (headers[2],
                 "traceparent: 00-0af7651916cd43dd8448eb211c80319c-", 49),
        0);
    ck_assert_int_eq (strlen (headers[2]), 13 + 55);
    ck_assert_int_ne (strncmp (headers[2] + 49, "b7ad6b7169203331", 16), 0);
    ck_assert_str_eq (headers[2] + 65, "-01");
    ck_assert_str_eq (headers[3], "Content-Type: application/json");
    ck_assert_str_eq (headers[4], "Accept: application/json");
    ck_assert_str_eq (headers[5], "Authorization: Bearer s3cret");
    ck_assert_ptr_null (headers[6]);
    cw_flow_headers_destroy (&headers);
    ck_assert_ptr_null (headers);

    //  No or a bad traceparent: a new trace
    cw_envelope_set_traceparent (envelope, "garbage");
    cw_flow_target_t target = s_target;
    target.auth = CW_FLOW_AUTH_API_KEY;
    headers = cw_flow_headers (envelope, &target, reason, sizeof (reason));
    ck_assert_int_eq (strncmp (headers[2], "traceparent: 00-", 16), 0);
    ck_assert_str_eq (headers[2] + 13 + 52, "-01");
    ck_assert_str_eq (headers[5], "X-Api-Key: s3cret");
    cw_flow_headers_destroy (&headers);

    //  Without key or correlation id: refused
    cw_envelope_set_idempotency_key (envelope, "");
    ck_assert_ptr_null (
        cw_flow_headers (envelope, &s_target, reason, sizeof (reason)));
    ck_assert_ptr_nonnull (strstr (reason, "idempotency key"));
    cw_envelope_destroy (&envelope);

    char child[CW_FLOW_TRACEPARENT_SIZE], again[CW_FLOW_TRACEPARENT_SIZE];
    cw_flow_traceparent_child (NULL, child, sizeof (child));
    cw_flow_traceparent_child (NULL, again, sizeof (again));
    ck_assert_int_eq (strlen (child), 55);
    ck_assert_str_ne (child, again);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("cw_flow");
    TCase *tcase = tcase_create ("registry");
    tcase_set_timeout (tcase, 10);
    tcase_add_test (tcase, test_registry);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("http.generic");
    tcase_set_timeout (tcase, 10);
    tcase_add_test (tcase, test_encode);
    tcase_add_test (tcase, test_expand);
    tcase_add_test (tcase, test_build);
    tcase_add_test (tcase, test_headers);
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
