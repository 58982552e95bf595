/*  =========================================================================
    check_cw_http - routing, bodies, replies and problems over real HTTP
    on 127.0.0.1 with libcurl as the client
    =========================================================================
*/
#include "cw_http.h"
#include "cw_test.h"
#include "cw_test_http.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOW_MSEC 1500

static json_t *
s_json (const cw_test_reply_t *reply)
{
    ck_assert_ptr_nonnull (reply->body);
    json_error_t error;
    json_t *json = json_loads (reply->body, 0, &error);
    ck_assert_msg (json != NULL, "not JSON: %s", reply->body);
    return json;
}

static const char *
s_str (json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    ck_assert_msg (json_is_string (value), "no string member %s", key);
    return json_string_value (value);
}

//  Handlers -------------------------------------------------------------

static void
s_echo (cw_http_request_t *request, void *arg)
{
    (void) arg;
    json_t *reply = json_object ();
    json_object_set_new (reply, "method",
                         json_string (cw_http_request_method (request)));
    json_object_set_new (reply, "path",
                         json_string (cw_http_request_path (request)));
    json_object_set_new (reply, "route",
                         json_string (cw_http_request_route (request)));
    const char *id = cw_http_request_param (request, "id");
    if (id)
        json_object_set_new (reply, "id", json_string (id));
    const char *line = cw_http_request_param (request, "line");
    if (line)
        json_object_set_new (reply, "line", json_string (line));
    ck_assert_ptr_null (cw_http_request_param (request, "nope"));
    const char *tenant = cw_http_request_query (request, "tenant");
    if (tenant)
        json_object_set_new (reply, "tenant", json_string (tenant));
    const char *header = cw_http_request_header (request, "x-demo");
    if (header)
        json_object_set_new (reply, "header", json_string (header));
    json_object_set_new (reply, "body",
                         json_stringn (cw_http_request_body (request),
                                       cw_http_request_body_size (request)));
    json_object_set_new (
        reply, "correlation",
        json_string (cw_http_request_correlation_id (request)));
    ck_assert (!cw_http_request_answered (request));
    cw_http_reply_header (request, "Retry-After", "7");
    cw_http_reply_json (request, 200, reply);
    ck_assert (cw_http_request_answered (request));
    json_decref (reply);
}

//  A problem whose detail was cut in the middle of a character
static void
s_cut (cw_http_request_t *request, void *arg)
{
    (void) arg;
    cw_http_reply_problem (request, 422, "cut", "Cut", "caf\xc3", NULL);
}

static void
s_parse (cw_http_request_t *request, void *arg)
{
    (void) arg;
    json_t *body = cw_http_request_json (request);
    if (!body)
        return;
    json_t *extensions = json_pack ("{s:s}", "field", "name");
    if (!json_is_string (json_object_get (body, "name")))
        cw_http_reply_problem (request, 422, "invalid-field", "Invalid Field",
                               "name must be a string", extensions);
    else
        cw_http_reply_json (request, 201, body);
    json_decref (extensions);
    json_decref (body);
}

static void
s_bytes (cw_http_request_t *request, void *arg)
{
    (void) arg;
    cw_http_reply_bytes (request, 200, "application/pdf", "%PDF-1.4\n\0x", 11);
}

static void
s_truncated (cw_http_request_t *request, void *arg)
{
    (void) arg;
    const char *text = "{\"a\":\"0123456789\"}";
    cw_http_reply_truncated (request, 200, "application/json", text,
                             strlen (text), 5);
}

static void
s_silent (cw_http_request_t *request, void *arg)
{
    (void) request;
    (void) arg;
}

static void
s_drop (cw_http_request_t *request, void *arg)
{
    (void) arg;
    cw_http_reply_drop (request);
    ck_assert (cw_http_request_answered (request));
}

static void
s_slow (cw_http_request_t *request, void *arg)
{
    (void) arg;
    usleep (SLOW_MSEC * 1000);
    cw_http_reply_bytes (request, 200, "text/plain", "slow", 4);
}

static bool
s_open (void *arg)
{
    return atomic_load ((atomic_bool *) arg);
}

static cw_http_t *
s_server (int threads)
{
    cw_http_t *http = cw_http_new ("127.0.0.1", 0, threads);
    ck_assert_ptr_nonnull (http);
    cw_http_route (http, "GET", "/echo", s_echo, NULL);
    cw_http_route (http, "*", "/items/{id}", s_echo, NULL);
    cw_http_route (http, "GET", "/items/{id}/lines/{line}", s_echo, NULL);
    cw_http_route (http, "POST", "/parse", s_parse, NULL);
    cw_http_route (http, "GET", "/cut", s_cut, NULL);
    cw_http_route (http, "GET", "/bytes", s_bytes, NULL);
    cw_http_route (http, "GET", "/truncated", s_truncated, NULL);
    cw_http_route (http, "GET", "/silent", s_silent, NULL);
    cw_http_route (http, "GET", "/slow", s_slow, NULL);
    cw_http_route (http, "GET", "/drop", s_drop, NULL);
    cw_http_set_body_limit (http, 1024);
    char error[256];
    int rc = cw_http_start (http, error, sizeof (error));
    ck_assert_msg (rc == 0, "%s", error);
    ck_assert_int_gt (cw_http_port (http), 0);
    return http;
}

//  Tests ----------------------------------------------------------------

START_TEST (test_routing)
{
    cw_http_t *http = s_server (_i);
    int port = cw_http_port (http);
    cw_test_reply_t reply;
    struct curl_slist *headers = curl_slist_append (NULL, "X-Demo: hello");
    headers = curl_slist_append (headers, "X-Correlation-ID: corr-1");
    cw_test_http (port, "GET", "/echo?tenant=t%201", NULL, headers, 0, &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_str_eq (reply.content_type, "application/json");
    ck_assert_str_eq (reply.correlation_id, "corr-1");
    ck_assert_str_eq (reply.retry_after, "7");
    json_t *json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "method"), "GET");
    ck_assert_str_eq (s_str (json, "path"), "/echo");
    ck_assert_str_eq (s_str (json, "tenant"), "t 1");
    ck_assert_str_eq (s_str (json, "header"), "hello");
    ck_assert_str_eq (s_str (json, "correlation"), "corr-1");
    json_decref (json);
    free (reply.body);
    curl_slist_free_all (headers);

    cw_test_http (port, "PUT", "/items/42", "abc", NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "id"), "42");
    ck_assert_str_eq (s_str (json, "route"), "/items/{id}");
    ck_assert_str_eq (s_str (json, "body"), "abc");
    //  A minted correlation id: 32 hex digits, echoed
    ck_assert_int_eq (strlen (s_str (json, "correlation")), 32);
    ck_assert_str_eq (s_str (json, "correlation"), reply.correlation_id);
    json_decref (json);
    free (reply.body);

    cw_test_http (port, "GET", "/items/7/lines/3", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "id"), "7");
    ck_assert_str_eq (s_str (json, "line"), "3");
    json_decref (json);
    free (reply.body);

    const char *missing[] = {"/nothing",   "/items",     "/items/",
                             "/items/1/x", "/echo/more", "/items/1/lines/"};
    for (size_t index = 0; index < sizeof (missing) / sizeof (missing[0]);
         index++) {
        cw_test_http (port, "GET", missing[index], NULL, NULL, 0, &reply);
        ck_assert_msg (reply.status == 404, "%s gave %ld", missing[index],
                       reply.status);
        ck_assert_str_eq (reply.content_type, "application/problem+json");
        free (reply.body);
    }
    //  A detail cut in the middle of a character keeps what it can
    cw_test_http (port, "GET", "/cut", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 422);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "detail"), "caf?");
    json_decref (json);
    free (reply.body);
    cw_test_http (port, "DELETE", "/echo", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 405);
    //  RFC 9110: a 405 names the methods the path takes
    ck_assert_str_eq (reply.allow, "GET");
    json = s_json (&reply);
    ck_assert_int_eq (json_integer_value (json_object_get (json, "status")),
                      405);
    json_decref (json);
    free (reply.body);
    cw_http_destroy (&http);
    ck_assert_ptr_null (http);
    cw_http_destroy (&http);
}
END_TEST

START_TEST (test_json_and_problems)
{
    cw_http_t *http = s_server (0);
    int port = cw_http_port (http);
    cw_test_reply_t reply;
    cw_test_http (port, "POST", "/parse", "{\"name\":\"x\"}", NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 201);
    json_t *json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "name"), "x");
    json_decref (json);
    free (reply.body);

    cw_test_http (port, "POST", "/parse", "{\"name\":\n 1,}", NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 400);
    ck_assert_str_eq (reply.content_type, "application/problem+json");
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "type"),
                      CW_HTTP_PROBLEM_BASE "invalid-json");
    ck_assert_str_eq (s_str (json, "title"), "Invalid JSON");
    ck_assert_ptr_nonnull (strstr (s_str (json, "detail"), "line 2"));
    ck_assert_int_eq (json_integer_value (json_object_get (json, "line")), 2);
    json_decref (json);
    free (reply.body);

    cw_test_http (port, "POST", "/parse", "{\"name\":1}", NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 422);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "field"), "name");
    ck_assert_str_eq (s_str (json, "detail"), "name must be a string");
    ck_assert_int_eq (json_integer_value (json_object_get (json, "status")),
                      422);
    json_decref (json);
    free (reply.body);

    //  Over the body limit
    char big[2048];
    memset (big, 'x', sizeof (big) - 1);
    big[sizeof (big) - 1] = '\0';
    cw_test_http (port, "POST", "/parse", big, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 413);
    ck_assert_str_eq (reply.content_type, "application/problem+json");
    free (reply.body);

    //  Handler that forgets to reply
    cw_test_http (port, "GET", "/silent", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 500);
    free (reply.body);
    cw_http_destroy (&http);
}
END_TEST

START_TEST (test_bytes_and_truncated)
{
    cw_http_t *http = s_server (1);
    int port = cw_http_port (http);
    cw_test_reply_t reply;
    cw_test_http (port, "GET", "/bytes", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_str_eq (reply.content_type, "application/pdf");
    ck_assert_int_eq (reply.size, 11);
    ck_assert_int_eq (memcmp (reply.body, "%PDF-1.4\n\0x", 11), 0);
    free (reply.body);

    cw_test_http (port, "GET", "/truncated", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_int_ne (reply.code, CURLE_OK);
    ck_assert_int_eq (reply.size, 5);
    free (reply.body);
    cw_test_http (port, "GET", "/drop", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 0);
    ck_assert_int_eq (reply.code, CURLE_GOT_NOTHING);
    free (reply.body);
    //  The server keeps serving
    cw_test_http (port, "GET", "/bytes", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 200);
    free (reply.body);
    cw_http_destroy (&http);
}
END_TEST

START_TEST (test_accept_and_port_file)
{
    atomic_bool open = true;
    cw_http_t *http = cw_http_new ("127.0.0.1", 0, 0);
    cw_http_route (http, "GET", "/echo", s_echo, NULL);
    cw_http_set_accept (http, s_open, &open);
    char error[256];
    ck_assert_int_eq (cw_http_port (http), 0);
    ck_assert_int_eq (cw_http_start (http, error, sizeof (error)), 0);
    int port = cw_http_port (http);
    cw_test_reply_t reply;
    cw_test_http (port, "GET", "/echo", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 200);
    free (reply.body);
    atomic_store (&open, false);
    cw_test_http (port, "GET", "/echo", NULL, NULL, 0, &reply);
    ck_assert_int_eq (reply.status, 0);
    ck_assert_int_ne (reply.code, CURLE_OK);
    free (reply.body);

    char *dir = cw_test_tmpdir ("cw_http");
    char path[512];
    snprintf (path, sizeof (path), "%s/port", dir);
    ck_assert_int_eq (
        cw_http_write_port_file (http, path, error, sizeof (error)), 0);
    char *line = cw_test_wait_file (path, 1000);
    ck_assert_ptr_nonnull (line);
    ck_assert_int_eq (strtol (line, NULL, 10), port);
    free (line);
    snprintf (path, sizeof (path), "%s/none/port", dir);
    ck_assert_int_eq (
        cw_http_write_port_file (http, path, error, sizeof (error)), -1);
    ck_assert_ptr_nonnull (strstr (error, "could not create port file"));
    cw_test_tmpdir_destroy (&dir);
    cw_http_stop (http);
    cw_http_stop (http);
    ck_assert_int_eq (cw_http_port (http), 0);
    cw_http_destroy (&http);

    http = cw_http_new ("not-an-ip", 0, 0);
    ck_assert_int_eq (cw_http_start (http, error, sizeof (error)), -1);
    ck_assert_ptr_nonnull (strstr (error, "invalid listen address"));
    cw_http_destroy (&http);
}
END_TEST

//  A slow handler does not delay another connection (thread per
//  connection).
START_TEST (test_concurrent)
{
    cw_http_t *http = s_server (0);
    int port = cw_http_port (http);
    CURLM *multi = curl_multi_init ();
    cw_test_reply_t slow, fast;
    memset (&slow, 0, sizeof (slow));
    memset (&fast, 0, sizeof (fast));
    CURL *slow_easy =
        cw_test_http_easy (port, "GET", "/slow", NULL, NULL, 0, &slow);
    CURL *fast_easy =
        cw_test_http_easy (port, "GET", "/bytes", NULL, NULL, 0, &fast);
    long long start = cw_test_now_msec ();
    curl_multi_add_handle (multi, slow_easy);
    curl_multi_add_handle (multi, fast_easy);
    long long fast_done = 0, slow_done = 0;
    while (!fast_done || !slow_done) {
        int running;
        curl_multi_perform (multi, &running);
        CURLMsg *message;
        int left;
        while ((message = curl_multi_info_read (multi, &left))) {
            if (message->msg != CURLMSG_DONE)
                continue;
            if (message->easy_handle == fast_easy)
                fast_done = cw_test_now_msec ();
            else
                slow_done = cw_test_now_msec ();
        }
        curl_multi_poll (multi, NULL, 0, 100, NULL);
    }
    ck_assert_int_lt (fast_done - start, SLOW_MSEC / 2);
    ck_assert_int_ge (slow_done - start, SLOW_MSEC);
    curl_easy_getinfo (slow_easy, CURLINFO_RESPONSE_CODE, &slow.status);
    ck_assert_int_eq (slow.status, 200);
    ck_assert_str_eq (slow.body, "slow");
    curl_multi_remove_handle (multi, slow_easy);
    curl_multi_remove_handle (multi, fast_easy);
    curl_easy_cleanup (slow_easy);
    curl_easy_cleanup (fast_easy);
    curl_multi_cleanup (multi);
    free (slow.body);
    free (fast.body);
    cw_http_destroy (&http);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("cw_http");
    TCase *tcase = tcase_create ("routing");
    tcase_set_timeout (tcase, 30);
    //  Loop 0..2: thread per connection, one polling thread, a pool of 2
    tcase_add_loop_test (tcase, test_routing, 0, 3);
    tcase_add_test (tcase, test_json_and_problems);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("replies");
    tcase_set_timeout (tcase, 30);
    tcase_add_test (tcase, test_bytes_and_truncated);
    tcase_add_test (tcase, test_accept_and_port_file);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("threads");
    tcase_set_timeout (tcase, 30);
    tcase_add_test (tcase, test_concurrent);
    suite_add_tcase (suite, tcase);
    return suite;
}

int
main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    SRunner *runner = srunner_create (s_suite ());
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    curl_global_cleanup ();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
