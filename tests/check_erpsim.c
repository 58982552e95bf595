/*  =========================================================================
    check_erpsim - the ERP simulator as a real process on a free port,
    driven over HTTP with libcurl; effects proven with /_introspect
    =========================================================================
*/
#include "cw_test.h"
#include "cw_test_http.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define API_KEY "test-key-0123456789"
#define WAIT_MSEC 10000

typedef struct {
    pid_t pid;    //  erpsim process
    int port;     //  API port
    int control;  //  Control port
    char *dir;    //  Private directory
} sim_t;

//  Process --------------------------------------------------------------

static char *
s_write_key (const char *dir, mode_t mode)
{
    char *path = cw_test_write_file (dir, "api-key", API_KEY "\n", mode);
    ck_assert_ptr_nonnull (path);
    return path;
}

//  Starts erpsim with extra flags (NULL-terminated).
static sim_t
s_start (const char *first, ...)
{
    sim_t sim;
    sim.dir = cw_test_tmpdir ("erpsim");
    char *program = cw_test_build_path ("erpsim/erpsim");
    char *key = s_write_key (sim.dir, 0600);
    char port_file[512], control_file[512], log[512];
    snprintf (port_file, sizeof (port_file), "%s/port", sim.dir);
    snprintf (control_file, sizeof (control_file), "%s/control", sim.dir);
    snprintf (log, sizeof (log), "%s/log", sim.dir);
    const char *argv[64] = {
        program,       "--api-key-file", key,
        "--port-file", port_file,        "--control-port-file",
        control_file,  "--listen",       "127.0.0.1:0"};
    int argc = 9;
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg && argc < 62;
         arg = va_arg (args, const char *))
        argv[argc++] = arg;
    va_end (args);
    argv[argc] = NULL;
    sim.pid = cw_test_spawn (argv, NULL, log);
    ck_assert_int_gt (sim.pid, 0);
    char *line = cw_test_wait_file (port_file, WAIT_MSEC);
    ck_assert_msg (line != NULL, "erpsim wrote no port file");
    sim.port = (int) strtol (line, NULL, 10);
    free (line);
    line = cw_test_wait_file (control_file, WAIT_MSEC);
    ck_assert_ptr_nonnull (line);
    sim.control = (int) strtol (line, NULL, 10);
    free (line);
    free (key);
    free (program);
    return sim;
}

static void
s_stop (sim_t *sim)
{
    int status = cw_test_stop (sim->pid, WAIT_MSEC);
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "erpsim did not exit cleanly: %d", status);
    cw_test_tmpdir_destroy (&sim->dir);
}

//  HTTP -----------------------------------------------------------------

typedef struct {
    const char *auth;   //  Full auth header, NULL: X-Api-Key
    const char *key;    //  Idempotency-Key, or NULL
    long timeout_msec;  //  0: 10 s
} options_t;

//  Request headers: JSON body, the API key (or options->auth) and the
//  Idempotency-Key when given. Caller frees the list.
static struct curl_slist *
s_headers (const options_t *options)
{
    struct curl_slist *headers =
        curl_slist_append (NULL, "Content-Type: application/json");
    if (options && options->auth)
        headers = curl_slist_append (headers, options->auth);
    else
        headers = curl_slist_append (headers, "X-Api-Key: " API_KEY);
    if (options && options->key) {
        char line[512];
        snprintf (line, sizeof (line), "Idempotency-Key: %s", options->key);
        headers = curl_slist_append (headers, line);
    }
    return headers;
}

static CURL *
s_easy (int port,
        const char *method,
        const char *path,
        const char *body,
        const options_t *options,
        struct curl_slist **headers_p,
        cw_test_reply_t *reply)
{
    *headers_p = s_headers (options);
    return cw_test_http_easy (port, method, path, body, *headers_p,
                              options ? options->timeout_msec : 0, reply);
}

static void
s_call_with (int port,
             const char *method,
             const char *path,
             const char *body,
             const options_t *options,
             cw_test_reply_t *reply)
{
    struct curl_slist *headers = s_headers (options);
    cw_test_http (port, method, path, body, headers,
                  options ? options->timeout_msec : 0, reply);
    curl_slist_free_all (headers);
}

static void
s_call (int port,
        const char *method,
        const char *path,
        const char *body,
        cw_test_reply_t *reply)
{
    s_call_with (port, method, path, body, NULL, reply);
}

static json_t *
s_json (const cw_test_reply_t *reply)
{
    ck_assert_msg (reply->body != NULL, "empty reply (curl %d)", reply->code);
    json_t *json = json_loads (reply->body, 0, NULL);
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

static long long
s_int (json_t *object, const char *path)
{
    //  path: keys separated by '/'
    char copy[256];
    snprintf (copy, sizeof (copy), "%s", path);
    json_t *node = object;
    char *cursor = copy;
    while (cursor && node) {
        char *slash = strchr (cursor, '/');
        if (slash)
            *slash = '\0';
        node = json_object_get (node, cursor);
        cursor = slash ? slash + 1 : NULL;
    }
    return node ? (long long) json_integer_value (node) : 0;
}

//  Asserts a problem+json reply with status and, if given, field.
static void
s_assert_problem (cw_test_reply_t *reply, long status, const char *field)
{
    ck_assert_msg (reply->status == status, "wanted %ld, got %ld: %s", status,
                   reply->status, reply->body ? reply->body : "");
    ck_assert_str_eq (reply->content_type, "application/problem+json");
    json_t *json = s_json (reply);
    ck_assert_int_eq (s_int (json, "status"), status);
    ck_assert_ptr_nonnull (json_object_get (json, "type"));
    ck_assert_ptr_nonnull (json_object_get (json, "title"));
    if (field)
        ck_assert_str_eq (s_str (json, "field"), field);
    json_decref (json);
    free (reply->body);
    reply->body = NULL;
}

static json_t *
s_introspect (sim_t *sim)
{
    cw_test_reply_t reply;
    s_call (sim->control, "GET", "/_introspect", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    json_t *json = s_json (&reply);
    free (reply.body);
    return json;
}

static void
s_control (sim_t *sim, const char *method, const char *path, const char *body)
{
    cw_test_reply_t reply;
    s_call (sim->control, method, path, body, &reply);
    ck_assert_msg (reply.status == 200, "control %s: %ld %s", path,
                   reply.status, reply.body ? reply.body : "");
    free (reply.body);
}

static char *
s_customer (const char *id, const char *name)
{
    char *body = (char *) malloc (256);
    snprintf (body, 256,
              "{\"tenant\":\"t1\",\"customerId\":\"%s\",\"name\":\"%s\"}", id,
              name);
    return body;
}

static const char *ORDER =
    "{\"tenant\":\"t1\",\"orderId\":\"o-1\",\"customerId\":\"c-1\","
    "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A-1\","
    "\"quantity\":2,\"unitPriceMinor\":1999},{\"articleNumber\":\"A-2\","
    "\"quantity\":1,\"unitPriceMinor\":500}],\"totalMinor\":4498}";

//  Tests ----------------------------------------------------------------

START_TEST (test_routes)
{
    sim_t sim = s_start (NULL);
    cw_test_reply_t reply;
    char *body = s_customer ("c-1", "Ada");
    s_call (sim.port, "POST", "/api/v1/customers", body, &reply);
    free (body);
    ck_assert_int_eq (reply.status, 201);
    json_t *json = s_json (&reply);
    char customer_id[64];
    snprintf (customer_id, sizeof (customer_id), "%s", s_str (json, "id"));
    ck_assert_str_eq (s_str (json, "name"), "Ada");
    json_decref (json);
    free (reply.body);
    //  Upsert by the webshop's reference: same ERP id, updated
    body = s_customer ("c-1", "Ada Lovelace");
    s_call (sim.port, "POST", "/api/v1/customers", body, &reply);
    free (body);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "id"), customer_id);
    json_decref (json);
    free (reply.body);
    char path[256];
    snprintf (path, sizeof (path), "/api/v1/customers/%s", customer_id);
    s_call (sim.port, "GET", path, NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "name"), "Ada Lovelace");
    json_decref (json);
    free (reply.body);
    s_call (sim.port, "GET", "/api/v1/customers/CUST-999", NULL, &reply);
    s_assert_problem (&reply, 404, NULL);

    //  Orders
    s_call (sim.port, "POST", "/api/v1/orders", ORDER, &reply);
    ck_assert_int_eq (reply.status, 201);
    json = s_json (&reply);
    char order_id[64];
    snprintf (order_id, sizeof (order_id), "%s", s_str (json, "id"));
    ck_assert_str_eq (s_str (json, "status"), "new");
    ck_assert_int_eq (s_int (json, "totalMinor"), 4498);
    json_decref (json);
    free (reply.body);
    s_call (sim.port, "POST", "/api/v1/orders", ORDER, &reply);
    s_assert_problem (&reply, 409, "orderId");
    snprintf (path, sizeof (path), "/api/v1/orders/%s", order_id);
    s_call (sim.port, "PUT", path,
            "{\"customerId\":\"c-1\",\"currency\":\"EUR\",\"lines\":[{"
            "\"articleNumber\":\"A-1\",\"quantity\":3,\"unitPriceMinor\":"
            "1999}],\"totalMinor\":5997,\"version\":2}",
            &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert_int_eq (s_int (json, "totalMinor"), 5997);
    json_decref (json);
    free (reply.body);
    snprintf (path, sizeof (path), "/api/v1/orders/%s/status", order_id);
    s_call (sim.port, "POST", path, "{\"status\":\"confirmed\"}", &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "status"), "confirmed");
    ck_assert_str_eq (s_str (json, "previousStatus"), "new");
    json_decref (json);
    free (reply.body);
    s_call (sim.port, "POST", path, "{\"status\":\"lost\"}", &reply);
    s_assert_problem (&reply, 422, "status");
    snprintf (path, sizeof (path), "/api/v1/orders/%s", order_id);
    s_call (sim.port, "GET", path, NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "status"), "confirmed");
    json_decref (json);
    free (reply.body);
    s_call (sim.port, "GET", "/api/v1/orders/ORD-404", NULL, &reply);
    s_assert_problem (&reply, 404, NULL);
    //  Reconciliation search
    s_call (sim.port, "GET", "/api/v1/orders?tenant=t1&orderRef=o-1", NULL,
            &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    json_t *items = json_object_get (json, "items");
    ck_assert_int_eq (json_array_size (items), 1);
    ck_assert_str_eq (s_str (json_array_get (items, 0), "id"), order_id);
    json_decref (json);
    free (reply.body);
    s_call (sim.port, "GET", "/api/v1/orders?tenant=t2&orderRef=o-1", NULL,
            &reply);
    json = s_json (&reply);
    ck_assert_int_eq (json_array_size (json_object_get (json, "items")), 0);
    json_decref (json);
    free (reply.body);
    s_call (sim.port, "GET", "/api/v1/orders?orderRef=o-1", NULL, &reply);
    s_assert_problem (&reply, 400, "tenant");
    //  An order for an unknown customer
    s_call (sim.port, "POST", "/api/v1/orders",
            "{\"tenant\":\"t1\",\"orderId\":\"o-2\",\"customerId\":\"nobody\","
            "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A\","
            "\"quantity\":1,\"unitPriceMinor\":1}],\"totalMinor\":1}",
            &reply);
    s_assert_problem (&reply, 422, "customerId");

    //  Feeds on demand: invoices, prices, payments
    s_control (&sim, "POST", "/_control/feeds/generate",
               "{\"invoices\":5,\"prices\":4,\"payments\":1}");
    s_call (sim.port, "GET", "/api/v1/invoices?since=0", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    items = json_object_get (json, "items");
    ck_assert_int_eq (json_array_size (items), 1);  //  One order held
    json_t *invoice = json_array_get (items, 0);
    char invoice_id[64];
    snprintf (invoice_id, sizeof (invoice_id), "%s", s_str (invoice, "id"));
    ck_assert_str_eq (s_str (invoice, "orderId"), "o-1");
    ck_assert_int_eq (s_int (invoice, "amountMinor"), 5997);
    ck_assert_str_eq (s_str (invoice, "currency"), "EUR");
    ck_assert_int_eq (s_int (json, "next"), 1);
    json_decref (json);
    free (reply.body);
    snprintf (path, sizeof (path), "/api/v1/invoices/%s", invoice_id);
    s_call (sim.port, "GET", path, NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert_str_eq (s_str (json, "number"), "R-00000001");
    json_decref (json);
    free (reply.body);
    s_call (sim.port, "GET", "/api/v1/invoices/INV-404/document", NULL, &reply);
    s_assert_problem (&reply, 404, NULL);
    s_call (sim.port, "GET", "/api/v1/prices?since=0&limit=3", NULL, &reply);
    json = s_json (&reply);
    ck_assert_int_eq (json_array_size (json_object_get (json, "items")), 3);
    ck_assert_int_eq (s_int (json, "next"), 3);
    json_t *price = json_array_get (json_object_get (json, "items"), 0);
    ck_assert_ptr_nonnull (json_object_get (price, "articleNumber"));
    ck_assert_ptr_nonnull (json_object_get (price, "priceList"));
    ck_assert (json_is_integer (json_object_get (price, "amountMinor")));
    ck_assert_ptr_nonnull (json_object_get (price, "currency"));
    ck_assert_ptr_nonnull (json_object_get (price, "effectiveAt"));
    ck_assert (json_is_integer (json_object_get (price, "externalVersion")));
    json_decref (json);
    free (reply.body);
    s_call (sim.port, "GET", "/api/v1/payments?since=0", NULL, &reply);
    json = s_json (&reply);
    json_t *payment = json_array_get (json_object_get (json, "items"), 0);
    ck_assert_str_eq (s_str (payment, "orderId"), "o-1");
    ck_assert_str_eq (s_str (payment, "status"), "authorized");
    ck_assert_int_eq (s_int (payment, "amountMinor"), 5997);
    ck_assert_int_eq (s_int (payment, "externalVersion"), 1);
    json_decref (json);
    free (reply.body);

    json = s_introspect (&sim);
    ck_assert_int_eq (s_int (json, "counts/customers"), 1);
    ck_assert_int_eq (s_int (json, "counts/orders"), 1);
    ck_assert_int_eq (s_int (json, "counts/invoices"), 1);
    ck_assert_int_eq (s_int (json, "counts/prices"), 4);
    ck_assert_int_eq (s_int (json, "counts/payments"), 1);
    char key[128];
    snprintf (key, sizeof (key), "effects/customers/%s/creates", customer_id);
    ck_assert_int_eq (s_int (json, key), 1);
    snprintf (key, sizeof (key), "effects/customers/%s/updates", customer_id);
    ck_assert_int_eq (s_int (json, key), 1);
    snprintf (key, sizeof (key), "effects/orders/%s/updates", order_id);
    ck_assert_int_eq (s_int (json, key), 2);
    json_t *orders = json_object_get (json_object_get (json, "requests"),
                                      "POST /api/v1/orders");
    ck_assert_int_eq (s_int (orders, "201"), 1);
    ck_assert_int_eq (s_int (orders, "409"), 1);
    json_decref (json);
    //  Reset: counters only, then data too
    s_control (&sim, "POST", "/_introspect/reset", NULL);
    json = s_introspect (&sim);
    ck_assert_int_eq (json_object_size (json_object_get (json, "requests")), 0);
    ck_assert_int_eq (s_int (json, "counts/orders"), 1);
    json_decref (json);
    s_control (&sim, "POST", "/_introspect/reset", "{\"data\":true}");
    json = s_introspect (&sim);
    ck_assert_int_eq (s_int (json, "counts/orders"), 0);
    ck_assert_int_eq (s_int (json, "counts/invoices"), 0);
    json_decref (json);
    s_stop (&sim);
}
END_TEST

//  Checks the PDF: header, trailer, and that every xref offset points at
//  its object and startxref at the xref table.
START_TEST (test_pdf)
{
    sim_t sim = s_start ("--allow-unknown-customers", NULL);
    cw_test_reply_t reply;
    s_call (sim.port, "POST", "/api/v1/orders", ORDER, &reply);
    ck_assert_int_eq (reply.status, 201);
    free (reply.body);
    s_control (&sim, "POST", "/_control/feeds/generate", "{\"invoices\":1}");
    s_call (sim.port, "GET", "/api/v1/invoices/INV-000001/document", NULL,
            &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_str_eq (reply.content_type, "application/pdf");
    const char *pdf = reply.body;
    size_t size = reply.size;
    ck_assert_int_eq (memcmp (pdf, "%PDF-", 5), 0);
    ck_assert_int_ge (size, 6);
    //  Ends with %%EOF (and an optional end of line)
    size_t end = size;
    while (end > 0 && (pdf[end - 1] == '\n' || pdf[end - 1] == '\r'))
        end--;
    ck_assert_int_eq (memcmp (pdf + end - 5, "%%EOF", 5), 0);
    const char *startxref = strstr (pdf, "startxref\n");
    ck_assert_ptr_nonnull (startxref);
    long xref = strtol (startxref + 10, NULL, 10);
    ck_assert_int_gt (xref, 0);
    ck_assert_int_lt (xref, (long) size);
    ck_assert_int_eq (memcmp (pdf + xref, "xref\n", 5), 0);
    const char *cursor = pdf + xref + 5;
    char *after;
    long first = strtol (cursor, &after, 10);
    long count = strtol (after, &after, 10);
    ck_assert_int_eq (first, 0);
    ck_assert_int_ge (count, 5);
    cursor = after + 1;
    for (long object = 0; object < count; object++) {
        //  Each entry is 20 bytes
        const char *entry = cursor + object * 20;
        ck_assert (entry[17] == 'n' || entry[17] == 'f');
        ck_assert (entry[19] == '\n');
        if (entry[17] == 'f')
            continue;
        long offset = strtol (entry, NULL, 10);
        char expected[32];
        snprintf (expected, sizeof (expected), "%ld 0 obj", object);
        ck_assert_msg (memcmp (pdf + offset, expected, strlen (expected)) == 0,
                       "xref entry %ld points at the wrong place", object);
    }
    ck_assert_ptr_nonnull (strstr (pdf, "(Invoice R-00000001)"));
    ck_assert_ptr_nonnull (strstr (pdf, "(Amount: 44.98 EUR)"));
    //  The content stream's /Length is right
    const char *length = strstr (pdf, "/Length ");
    ck_assert_ptr_nonnull (length);
    long stream_length = strtol (length + 8, NULL, 10);
    const char *stream = strstr (length, "stream\n") + 7;
    ck_assert_int_eq (memcmp (stream + stream_length, "endstream", 9), 0);
    free (reply.body);
    s_stop (&sim);
}
END_TEST

START_TEST (test_idempotency)
{
    sim_t sim = s_start (NULL);
    cw_test_reply_t first, again;
    char *body = s_customer ("c-9", "Grace");
    options_t options = {NULL, "customer:t1:c-9:1", 0};
    s_call_with (sim.port, "POST", "/api/v1/customers", body, &options, &first);
    ck_assert_int_eq (first.status, 201);
    ck_assert_str_eq (first.replayed, "");
    s_call_with (sim.port, "POST", "/api/v1/customers", body, &options, &again);
    ck_assert_int_eq (again.status, 201);
    ck_assert_str_eq (again.replayed, "true");
    ck_assert_str_eq (again.body, first.body);
    free (again.body);
    //  Same key, another body: 422
    char *other = s_customer ("c-9", "Someone Else");
    s_call_with (sim.port, "POST", "/api/v1/customers", other, &options,
                 &again);
    s_assert_problem (&again, 422, "Idempotency-Key");
    free (other);
    //  Same key, same body on another path: 422 too (path is hashed)
    s_call_with (sim.port, "POST", "/api/v1/orders", body, &options, &again);
    s_assert_problem (&again, 422, "Idempotency-Key");
    json_t *json = s_json (&first);
    char path[128];
    snprintf (path, sizeof (path), "effects/customers/%s/creates",
              s_str (json, "id"));
    json_t *report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, path), 1);
    snprintf (path, sizeof (path), "effects/customers/%s/updates",
              s_str (json, "id"));
    ck_assert_int_eq (s_int (report, path), 0);
    ck_assert_int_eq (s_int (report, "duplicateKeyHits"), 1);
    ck_assert_int_eq (s_int (report, "keyMismatches"), 2);
    json_decref (report);
    json_decref (json);
    free (first.body);
    free (body);
    s_stop (&sim);
}
END_TEST

static void
s_faults (sim_t *sim, const char *config)
{
    s_control (sim, "PUT", "/_control/faults", config);
}

//  --idempotency-max 2 remembers the last two keys, also when one of them
//  was released by a fault before the effect and then used again.
START_TEST (test_key_limit)
{
    sim_t sim = s_start ("--idempotency-max", "2", NULL);
    cw_test_reply_t reply;
    char *first = s_customer ("m-1", "First");
    char *second = s_customer ("m-2", "Second");
    options_t key_a = {NULL, "key-a", 0}, key_b = {NULL, "key-b", 0};
    s_faults (&sim, "{\"*\":{\"errorRate\":1}}");
    s_call_with (sim.port, "POST", "/api/v1/customers", first, &key_a, &reply);
    s_assert_problem (&reply, 500, NULL);
    s_faults (&sim, "{}");
    s_call_with (sim.port, "POST", "/api/v1/customers", first, &key_a, &reply);
    ck_assert_int_eq (reply.status, 201);
    free (reply.body);
    s_call_with (sim.port, "POST", "/api/v1/customers", second, &key_b, &reply);
    ck_assert_int_eq (reply.status, 201);
    free (reply.body);
    //  Two keys, both remembered: key-a is replayed, not run again
    s_call_with (sim.port, "POST", "/api/v1/customers", first, &key_a, &reply);
    ck_assert_int_eq (reply.status, 201);
    ck_assert_str_eq (reply.replayed, "true");
    free (reply.body);
    json_t *report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, "idempotencyKeys"), 2);
    ck_assert_int_eq (s_int (report, "effects/customers/CUST-000001/updates"),
                      0);
    json_decref (report);
    //  A third key forgets the oldest (key-a)
    char *third = s_customer ("m-3", "Third");
    options_t key_c = {NULL, "key-c", 0};
    s_call_with (sim.port, "POST", "/api/v1/customers", third, &key_c, &reply);
    ck_assert_int_eq (reply.status, 201);
    free (reply.body);
    s_call_with (sim.port, "POST", "/api/v1/customers", second, &key_b, &reply);
    ck_assert_str_eq (reply.replayed, "true");
    free (reply.body);
    s_call_with (sim.port, "POST", "/api/v1/customers", first, &key_a, &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_str_eq (reply.replayed, "");
    free (reply.body);
    free (first);
    free (second);
    free (third);
    s_stop (&sim);
}
END_TEST

//  While the first request with a key is delayed, a second one gets 409;
//  concurrent requests show in the in-flight peak.
START_TEST (test_in_flight)
{
    sim_t sim = s_start (NULL);
    s_control (&sim, "PUT", "/_control/faults",
               "{\"POST /api/v1/customers\":{\"latencyMs\":1500}}");
    char *body = s_customer ("c-5", "Slow");
    options_t options = {NULL, "key-in-flight", 0};
    CURLM *multi = curl_multi_init ();
    cw_test_reply_t slow;
    struct curl_slist *headers;
    CURL *easy = s_easy (sim.port, "POST", "/api/v1/customers", body, &options,
                         &headers, &slow);
    curl_multi_add_handle (multi, easy);
    //  Wait until the server holds it
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    int running = 1;
    bool held = false;
    while (!held && cw_test_now_msec () < deadline) {
        curl_multi_perform (multi, &running);
        curl_multi_poll (multi, NULL, 0, 20, NULL);
        json_t *report = s_introspect (&sim);
        held = s_int (report, "inFlight/current") == 1;
        json_decref (report);
    }
    ck_assert (held);
    cw_test_reply_t second;
    s_call_with (sim.port, "POST", "/api/v1/customers", body, &options,
                 &second);
    s_assert_problem (&second, 409, "Idempotency-Key");
    //  Other keys run concurrently, each delayed
    cw_test_reply_t others[4];
    CURL *other_easy[4];
    struct curl_slist *other_headers[4];
    options_t other_options[4];
    char keys[4][32], bodies[4][160];
    for (int index = 0; index < 4; index++) {
        snprintf (keys[index], sizeof (keys[index]), "key-%d", index);
        snprintf (bodies[index], sizeof (bodies[index]),
                  "{\"tenant\":\"t1\",\"customerId\":\"p-%d\",\"name\":\"P\"}",
                  index);
        other_options[index] = (options_t){NULL, keys[index], 0};
        other_easy[index] = s_easy (sim.port, "POST", "/api/v1/customers",
                                    bodies[index], &other_options[index],
                                    &other_headers[index], &others[index]);
        curl_multi_add_handle (multi, other_easy[index]);
    }
    do {
        curl_multi_perform (multi, &running);
        if (running)
            curl_multi_poll (multi, NULL, 0, 50, NULL);
    } while (running);
    curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &slow.status);
    ck_assert_int_eq (slow.status, 201);
    for (int index = 0; index < 4; index++) {
        long status;
        curl_easy_getinfo (other_easy[index], CURLINFO_RESPONSE_CODE, &status);
        ck_assert_int_eq (status, 201);
        curl_multi_remove_handle (multi, other_easy[index]);
        curl_easy_cleanup (other_easy[index]);
        curl_slist_free_all (other_headers[index]);
        free (others[index].body);
    }
    json_t *report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, "keyInFlightConflicts"), 1);
    ck_assert_int_eq (s_int (report, "counts/customers"), 5);
    ck_assert_int_ge (s_int (report, "inFlight/max"), 4);
    json_t *route = json_object_get (
        json_object_get (json_object_get (report, "inFlight"), "routes"),
        "POST /api/v1/customers");
    ck_assert_int_ge (s_int (route, "max"), 4);
    ck_assert_int_eq (s_int (route, "current"), 0);
    json_decref (report);
    curl_multi_remove_handle (multi, easy);
    curl_easy_cleanup (easy);
    curl_slist_free_all (headers);
    curl_multi_cleanup (multi);
    free (slow.body);
    free (body);
    s_stop (&sim);
}
END_TEST

START_TEST (test_auth)
{
    sim_t sim = s_start (NULL);
    cw_test_reply_t reply;
    const char *customer =
        "{\"tenant\":\"t\",\"customerId\":\"c\",\"name\":\"n\"}";
    options_t none = {"X-Nothing: 1", NULL, 0};
    s_call_with (sim.port, "POST", "/api/v1/customers", customer, &none,
                 &reply);
    s_assert_problem (&reply, 401, NULL);
    options_t wrong = {"X-Api-Key: wrong", NULL, 0};
    s_call_with (sim.port, "GET", "/api/v1/prices", NULL, &wrong, &reply);
    s_assert_problem (&reply, 401, NULL);
    options_t prefix = {"Authorization: Bearer test-key", NULL, 0};
    s_call_with (sim.port, "GET", "/api/v1/prices", NULL, &prefix, &reply);
    s_assert_problem (&reply, 401, NULL);
    options_t bearer = {"Authorization: Bearer " API_KEY, NULL, 0};
    s_call_with (sim.port, "POST", "/api/v1/customers", customer, &bearer,
                 &reply);
    ck_assert_int_eq (reply.status, 201);
    free (reply.body);
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    free (reply.body);
    json_t *report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, "counts/customers"), 1);
    json_decref (report);
    s_stop (&sim);

    //  A key file readable by others is refused at start (exit 2)
    char *dir = cw_test_tmpdir ("erpsim_key");
    char *key = s_write_key (dir, 0644);
    char *program = cw_test_build_path ("erpsim/erpsim");
    const char *argv[] = {program, "--api-key-file", key, NULL};
    char log[512];
    snprintf (log, sizeof (log), "%s/log", dir);
    pid_t pid = cw_test_spawn (argv, NULL, log);
    int status;
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert (WIFEXITED (status));
    ck_assert_int_eq (WEXITSTATUS (status), 2);
    free (program);
    free (key);
    cw_test_tmpdir_destroy (&dir);
}
END_TEST

START_TEST (test_faults)
{
    sim_t sim = s_start (NULL);
    cw_test_reply_t reply;
    char *body = s_customer ("f-1", "Fault");
    options_t keyed = {NULL, "fault-key-1", 0};

    //  500 before the effect: nothing created, the key is free again
    s_faults (&sim, "{\"*\":{\"errorRate\":1}}");
    s_call_with (sim.port, "POST", "/api/v1/customers", body, &keyed, &reply);
    s_assert_problem (&reply, 500, NULL);
    json_t *report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, "counts/customers"), 0);
    ck_assert_int_eq (s_int (report, "faultsInjected/error"), 1);
    json_decref (report);

    //  429 with Retry-After
    s_faults (&sim, "{\"*\":{\"rateLimitRate\":1,\"retryAfterSeconds\":3}}");
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_str_eq (reply.retry_after, "3");
    s_assert_problem (&reply, 429, NULL);

    //  409 conflict, before the effect
    s_faults (&sim, "{\"*\":{\"conflictRate\":1}}");
    s_call_with (sim.port, "POST", "/api/v1/customers", body, &keyed, &reply);
    s_assert_problem (&reply, 409, NULL);

    //  500 after the effect: created; the retry replays the real answer
    s_faults (&sim,
              "{\"POST /api/v1/customers\":{\"errorAfterEffectRate\":1}}");
    s_call_with (sim.port, "POST", "/api/v1/customers", body, &keyed, &reply);
    s_assert_problem (&reply, 500, NULL);
    report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, "counts/customers"), 1);
    json_decref (report);
    s_faults (&sim, "{}");
    s_call_with (sim.port, "POST", "/api/v1/customers", body, &keyed, &reply);
    ck_assert_int_eq (reply.status, 201);
    ck_assert_str_eq (reply.replayed, "true");
    free (reply.body);
    report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, "counts/customers"), 1);
    json_decref (report);

    //  Connection dropped after the effect
    s_faults (&sim, "{\"*\":{\"dropAfterEffectRate\":1}}");
    char *second = s_customer ("f-2", "Dropped");
    s_call (sim.port, "POST", "/api/v1/customers", second, &reply);
    ck_assert_int_eq (reply.status, 0);
    ck_assert_int_eq (reply.code, CURLE_GOT_NOTHING);
    free (reply.body);
    free (second);
    report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, "counts/customers"), 2);
    json_decref (report);

    //  Malformed JSON
    s_faults (&sim, "{\"*\":{\"malformedRate\":1}}");
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_ptr_nonnull (reply.body);
    ck_assert_ptr_null (json_loads (reply.body, 0, NULL));
    free (reply.body);

    //  Truncated: Content-Length larger than the body, connection closed
    s_faults (&sim, "{\"*\":{\"truncatedRate\":1}}");
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_int_eq (reply.code, CURLE_PARTIAL_FILE);
    free (reply.body);

    //  Latency (fixed + jitter)
    s_faults (&sim, "{\"*\":{\"latencyMs\":300,\"jitterMs\":50,"
                    "\"jitter\":\"exponential\"}}");
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    ck_assert_int_ge (reply.msec, 300);
    free (reply.body);

    //  Stall longer than the client's timeout
    s_faults (&sim, "{\"*\":{\"stallRate\":1,\"stallMs\":3000}}");
    options_t impatient = {NULL, NULL, 500};
    s_call_with (sim.port, "GET", "/api/v1/prices", NULL, &impatient, &reply);
    ck_assert_int_eq (reply.code, CURLE_OPERATION_TIMEDOUT);
    free (reply.body);

    //  Per route: only orders fail
    s_faults (&sim, "{\"POST /api/v1/orders\":{\"errorRate\":1}}");
    s_call (sim.port, "POST", "/api/v1/orders", ORDER, &reply);
    s_assert_problem (&reply, 500, NULL);
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    free (reply.body);

    //  Invalid knob: 422 naming it
    s_call (sim.control, "PUT", "/_control/faults", "{\"*\":{\"errorRate\":2}}",
            &reply);
    s_assert_problem (&reply, 422, "*.errorRate");
    s_call (sim.control, "PUT", "/_control/faults",
            "{\"PATCH /x\":{\"errorRate\":0}}", &reply);
    s_assert_problem (&reply, 422, NULL);
    //  A well-formed key that names no route (a typo, a method the path
    //  does not take): 422 naming it, instead of injecting nothing
    const char *unknown[] = {"POST /api/v1/order", "DELETE /api/v1/orders",
                             "* /api/v1/nothing"};
    for (size_t index = 0; index < 3; index++) {
        char body[128];
        snprintf (body, sizeof (body), "{\"%s\":{\"errorRate\":1}}",
                  unknown[index]);
        s_call (sim.control, "PUT", "/_control/faults", body, &reply);
        s_assert_problem (&reply, 422, unknown[index]);
    }
    s_call (sim.control, "GET", "/_control/faults", NULL, &reply);
    json_t *json = s_json (&reply);
    ck_assert_ptr_nonnull (json_object_get (json, "POST /api/v1/orders"));
    json_decref (json);
    free (reply.body);

    //  Outage: connections refused, then served again
    s_faults (&sim, "{}");
    s_control (&sim, "POST", "/_control/outage", "{\"seconds\":30}");
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_eq (reply.status, 0);
    ck_assert_int_ne (reply.code, CURLE_OK);
    free (reply.body);
    report = s_introspect (&sim);
    ck_assert (json_is_true (json_object_get (report, "outage")));
    json_decref (report);
    s_control (&sim, "POST", "/_control/outage", "{\"seconds\":0}");
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    free (reply.body);
    free (body);
    s_stop (&sim);
}
END_TEST

//  Faults set by flags at start
START_TEST (test_fault_flags)
{
    sim_t sim = s_start ("--error-rate", "1", "--latency-ms", "100", NULL);
    cw_test_reply_t reply;
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_ge (reply.msec, 100);
    s_assert_problem (&reply, 500, NULL);
    s_stop (&sim);
    sim = s_start ("--faults", "{\"GET /api/v1/prices\":{\"rateLimitRate\":1}}",
                   "--outage-seconds", "0", NULL);
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_str_eq (reply.retry_after, "1");
    s_assert_problem (&reply, 429, NULL);
    s_call (sim.port, "GET", "/api/v1/payments", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    free (reply.body);
    s_stop (&sim);
}
END_TEST

//  With 30% injected 5xx before and after the effect, retrying with the
//  same key until success gives exactly one effect per customer.
START_TEST (test_exactly_once)
{
    sim_t sim = s_start ("--error-rate", "0.3", "--error-after-effect-rate",
                         "0.3", NULL);
    const int customers = 20;
    int attempts = 0;
    for (int index = 0; index < customers; index++) {
        char id[32], key[64];
        snprintf (id, sizeof (id), "r-%d", index);
        snprintf (key, sizeof (key), "customer:t1:%s:1", id);
        char *body = s_customer (id, "Retry");
        options_t options = {NULL, key, 0};
        cw_test_reply_t reply;
        bool done = false;
        for (int attempt = 0; attempt < 200 && !done; attempt++) {
            attempts++;
            s_call_with (sim.port, "POST", "/api/v1/customers", body, &options,
                         &reply);
            ck_assert (reply.status == 201 || reply.status == 500);
            done = reply.status == 201;
            free (reply.body);
        }
        ck_assert (done);
        free (body);
    }
    json_t *report = s_introspect (&sim);
    ck_assert_int_eq (s_int (report, "counts/customers"), customers);
    json_t *effects =
        json_object_get (json_object_get (report, "effects"), "customers");
    ck_assert_int_eq (json_object_size (effects), customers);
    const char *id;
    json_t *entry;
    json_object_foreach (effects, id, entry)
    {
        ck_assert_int_eq (s_int (entry, "creates"), 1);
        ck_assert_int_eq (s_int (entry, "updates"), 0);
    }
    ck_assert_int_gt (attempts, customers);
    ck_assert_int_gt (s_int (report, "faultsInjected/error")
                          + s_int (report, "faultsInjected/errorAfterEffect"),
                      0);
    ck_assert_int_eq (s_int (report, "duplicateKeyHits"),
                      s_int (report, "faultsInjected/errorAfterEffect"));
    json_decref (report);
    s_stop (&sim);
}
END_TEST

//  Feeds at configured rates: data appears, cursors increase
START_TEST (test_feeds)
{
    sim_t sim = s_start ("--prices-per-second", "200", "--invoices-per-second",
                         "50", "--payments-per-second", "50",
                         "--allow-unknown-customers", NULL);
    cw_test_reply_t reply;
    for (int index = 0; index < 3; index++) {
        char body[512];
        snprintf (body, sizeof (body),
                  "{\"tenant\":\"t1\",\"orderId\":\"feed-%d\",\"customerId\":"
                  "\"c\",\"currency\":\"JPY\",\"lines\":[{\"articleNumber\":"
                  "\"A\",\"quantity\":1,\"unitPriceMinor\":1250}],"
                  "\"totalMinor\":1250}",
                  index);
        s_call (sim.port, "POST", "/api/v1/orders", body, &reply);
        ck_assert_int_eq (reply.status, 201);
        free (reply.body);
    }
    //  Wait for the feeds (condition, not a fixed sleep)
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    bool ready = false;
    while (!ready && cw_test_now_msec () < deadline) {
        json_t *report = s_introspect (&sim);
        ready = s_int (report, "counts/prices") >= 20
                && s_int (report, "counts/invoices") == 3
                && s_int (report, "counts/payments") == 6;
        json_decref (report);
    }
    ck_assert (ready);
    const char *feeds[] = {"/api/v1/prices", "/api/v1/invoices",
                           "/api/v1/payments"};
    for (int feed = 0; feed < 3; feed++) {
        char path[128];
        snprintf (path, sizeof (path), "%s?since=0&limit=5", feeds[feed]);
        s_call (sim.port, "GET", path, NULL, &reply);
        json_t *json = s_json (&reply);
        free (reply.body);
        json_t *items = json_object_get (json, "items");
        ck_assert_int_ge (json_array_size (items), 3);
        long long previous = 0;
        size_t index;
        json_t *item;
        json_array_foreach (items, index, item)
        {
            long long seq = s_int (item, "seq");
            ck_assert_int_gt (seq, previous);
            previous = seq;
        }
        ck_assert_int_eq (s_int (json, "next"), previous);
        //  The next page starts after the cursor
        snprintf (path, sizeof (path), "%s?since=%lld", feeds[feed], previous);
        s_call (sim.port, "GET", path, NULL, &reply);
        json_t *page = s_json (&reply);
        free (reply.body);
        json_t *later = json_object_get (page, "items");
        if (json_array_size (later))
            ck_assert_int_gt (s_int (json_array_get (later, 0), "seq"),
                              previous);
        json_decref (page);
        json_decref (json);
    }
    //  Payments go authorized then captured, versions increase
    s_call (sim.port, "GET", "/api/v1/payments?since=0", NULL, &reply);
    json_t *json = s_json (&reply);
    free (reply.body);
    int captured = 0;
    size_t index;
    json_t *item;
    json_array_foreach (json_object_get (json, "items"), index, item)
    {
        if (strcmp (s_str (item, "status"), "captured") == 0) {
            captured++;
            ck_assert_int_eq (s_int (item, "externalVersion"), 2);
        }
        ck_assert_int_eq (s_int (item, "amountMinor"), 1250);
        ck_assert_str_eq (s_str (item, "currency"), "JPY");
    }
    ck_assert_int_eq (captured, 3);
    json_decref (json);
    //  Rates can be changed at run time
    s_call (sim.control, "PUT", "/_control/feeds", "{\"pricesPerSecond\":0}",
            &reply);
    ck_assert_int_eq (reply.status, 200);
    json = s_json (&reply);
    ck_assert (json_number_value (json_object_get (json, "pricesPerSecond"))
               == 0);
    json_decref (json);
    free (reply.body);
    s_call (sim.control, "PUT", "/_control/feeds",
            "{\"pricesPerSecond\":\"fast\"}", &reply);
    s_assert_problem (&reply, 422, "pricesPerSecond");
    s_stop (&sim);
}
END_TEST

//  Bad input: a 4xx problem naming the problem, and the server serves on
START_TEST (test_bad_input)
{
    sim_t sim = s_start (NULL);
    struct {
        const char *method, *path, *body;
        long status;
        const char *field;
    } cases[] = {
        {"POST", "/api/v1/customers", "{", 400, NULL},
        {"POST", "/api/v1/customers", "", 400, NULL},
        {"POST", "/api/v1/customers", "[1,2]", 422, NULL},
        {"POST", "/api/v1/customers", "\xff\xfe\x00garbage", 400, NULL},
        {"POST", "/api/v1/customers", "{\"tenant\":\"t\"}", 422, "customerId"},
        {"POST", "/api/v1/customers",
         "{\"tenant\":1,\"customerId\":\"c\",\"name\":\"n\"}", 422, "tenant"},
        {"POST", "/api/v1/customers",
         "{\"tenant\":\"t\",\"customerId\":\"c\",\"name\":\"n\",\"email\":"
         "\"nope\"}",
         422, "email"},
        {"POST", "/api/v1/customers",
         "{\"tenant\":\"t\",\"tenant\":\"u\",\"customerId\":\"c\"}", 400, NULL},
        {"POST", "/api/v1/orders",
         "{\"tenant\":\"t1\",\"orderId\":\"o\",\"customerId\":\"c-1\","
         "\"currency\":\"eur\",\"lines\":[],\"totalMinor\":0}",
         422, "currency"},
        {"POST", "/api/v1/orders",
         "{\"tenant\":\"t1\",\"orderId\":\"o\",\"customerId\":\"c-1\","
         "\"currency\":\"EUR\",\"lines\":[],\"totalMinor\":0}",
         422, "lines"},
        {"POST", "/api/v1/orders",
         "{\"tenant\":\"t1\",\"orderId\":\"o\",\"customerId\":\"c-1\","
         "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A\","
         "\"quantity\":1,\"unitPriceMinor\":19.99}],\"totalMinor\":1999}",
         422, "lines[0].unitPriceMinor"},
        {"POST", "/api/v1/orders",
         "{\"tenant\":\"t1\",\"orderId\":\"o\",\"customerId\":\"c-1\","
         "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A\","
         "\"quantity\":2,\"unitPriceMinor\":100}],\"totalMinor\":100}",
         422, "totalMinor"},
        {"GET", "/api/v1/prices?since=abc", NULL, 400, "since"},
        {"GET", "/api/v1/invoices?since=-1", NULL, 400, "since"},
        {"GET", "/api/v1/payments?limit=0", NULL, 400, "limit"},
        {"GET", "/api/v1/nothing", NULL, 404, NULL},
        {"DELETE", "/api/v1/customers", NULL, 405, NULL},
    };
    cw_test_reply_t reply;
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        s_call (sim.port, cases[index].method, cases[index].path,
                cases[index].body, &reply);
        s_assert_problem (&reply, cases[index].status, cases[index].field);
    }
    //  A body over the limit
    size_t big = 2 * 1024 * 1024;
    char *huge = (char *) malloc (big + 1);
    memset (huge, ' ', big);
    huge[big] = '\0';
    s_call (sim.port, "POST", "/api/v1/customers", huge, &reply);
    s_assert_problem (&reply, 413, NULL);
    free (huge);
    //  A bad Idempotency-Key (too long)
    char long_key[300];
    memset (long_key, 'k', sizeof (long_key) - 1);
    long_key[sizeof (long_key) - 1] = '\0';
    options_t bad_key = {NULL, long_key, 0};
    s_call_with (sim.port, "POST", "/api/v1/customers",
                 "{\"tenant\":\"t\",\"customerId\":\"c\",\"name\":\"n\"}",
                 &bad_key, &reply);
    s_assert_problem (&reply, 400, "Idempotency-Key");
    s_call (sim.port, "GET", "/api/v1/prices", NULL, &reply);
    ck_assert_int_eq (reply.status, 200);
    free (reply.body);
    s_stop (&sim);
}
END_TEST

START_TEST (test_usage)
{
    char *program = cw_test_build_path ("erpsim/erpsim");
    char *dir = cw_test_tmpdir ("erpsim_usage");
    char log[512];
    snprintf (log, sizeof (log), "%s/log", dir);
    const char *help[] = {program, "--help", NULL};
    const char *bad[] = {
        program, "--api-key-file", "/nonexistent", "--error-rate", "x", NULL};
    const char *missing[] = {program, NULL};
    const char *faults[] = {program,
                            "--api-key-file",
                            "/nonexistent",
                            "--faults",
                            "{\"*\":{\"jitter\":\"gauss\"}}",
                            NULL};
    const char *typo[] = {program,
                          "--api-key-file",
                          "/nonexistent",
                          "--faults",
                          "{\"POST /api/v1/order\":{\"errorRate\":1}}",
                          NULL};
    const char *nan[] = {program, "--api-key-file", "/nonexistent",
                         "--error-rate", "nan", NULL};
    const char *const *runs[] = {help, bad, missing, faults, typo, nan};
    int expected[] = {0, 2, 2, 2, 2, 2};
    for (int run = 0; run < 6; run++) {
        pid_t pid = cw_test_spawn (runs[run], NULL, log);
        int status;
        ck_assert_int_eq (waitpid (pid, &status, 0), pid);
        ck_assert (WIFEXITED (status));
        ck_assert_int_eq (WEXITSTATUS (status), expected[run]);
    }
    //  The typo is named (not the missing key file, checked after it)
    char text[16384] = "";
    FILE *file = fopen (log, "r");
    ck_assert_ptr_nonnull (file);
    text[fread (text, 1, sizeof (text) - 1, file)] = 0;
    fclose (file);
    ck_assert_msg (strstr (text, "\"field\":\"POST /api/v1/order\""), "%s",
                   text);
    ck_assert_msg (strstr (text, "\"value\":\"nan\""), "%s", text);
    free (program);
    cw_test_tmpdir_destroy (&dir);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("erpsim");
    TCase *tcase = tcase_create ("routes");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_routes);
    tcase_add_test (tcase, test_pdf);
    tcase_add_test (tcase, test_feeds);
    tcase_add_test (tcase, test_usage);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("idempotency");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_idempotency);
    tcase_add_test (tcase, test_in_flight);
    tcase_add_test (tcase, test_key_limit);
    tcase_add_test (tcase, test_exactly_once);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("auth");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_auth);
    suite_add_tcase (suite, tcase);
    tcase = tcase_create ("faults");
    tcase_set_timeout (tcase, 60);
    tcase_add_test (tcase, test_faults);
    tcase_add_test (tcase, test_fault_flags);
    tcase_add_test (tcase, test_bad_input);
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
