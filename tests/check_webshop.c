/*  =========================================================================
    check_webshop - the reference webshop over real HTTP and PostgreSQL

    Every test gets its own database prepared by causeway-migrate (roles,
    then the shop island), starts webshop-ref on a free port as role
    cw_webshop, talks to it with libcurl, checks the rows in SQL, and
    stops it by pid (a clean SIGTERM exit is part of the check).
    =========================================================================
*/
#include "cw_http.h"
#include "cw_pg.h"
#include "cw_test.h"
#include "cw_test_http.h"
#include "cw_token.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MSEC 15000
#define CONCURRENT 8  //  Simultaneous duplicate deliveries

//  One test's world: database, keys, the webshop process
typedef struct {
    char *dir;                    //  Private temporary directory
    char *db_uri;                 //  Superuser URI of the test database
    pid_t pid;                    //  webshop-ref
    int port;                     //  Its port
    cw_token_signer_t *signer;    //  Key 1 (old)
    cw_token_signer_t *rotated;   //  Key 2 (new), both accepted
    cw_token_signer_t *stranger;  //  Key 3, not accepted
} world_t;

static world_t s_world;

//  ---------------------------------------------------------------------
//  Helpers

static char *
s_path (const char *name)
{
    size_t size = strlen (s_world.dir) + strlen (name) + 2;
    char *path = (char *) malloc (size);
    snprintf (path, size, "%s/%s", s_world.dir, name);
    return path;
}

//  Writes text to a fresh 0600 file in the world's directory.
static char *
s_secret_file (const char *name, const char *text)
{
    char *path = cw_test_write_file (s_world.dir, name, text, 0600);
    ck_assert_msg (path != NULL, "could not write %s", name);
    return path;
}

//  Runs a program to its end; returns its exit code.
static int
s_run (const char *const argv[], const char *const envp[])
{
    char *log = s_path ("run.log");
    pid_t pid = cw_test_spawn (argv, envp, log);
    free (log);
    ck_assert_int_gt (pid, 0);
    int status = 0;
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

static void
s_migrate (void)
{
    char *program = cw_test_build_path ("migrate/causeway-migrate");
    char *sql_dir = cw_test_src_path ("sql");
    char *super_file = s_secret_file ("super.uri", s_world.db_uri);
    char *owner_uri = cw_test_uri_as (s_world.db_uri, "cw_shop_owner");
    char *owner_file = s_secret_file ("owner.uri", owner_uri);
    char env_super[1024], env_owner[1024];
    snprintf (env_super, sizeof (env_super), "CW_DB_URI_FILE=%s", super_file);
    snprintf (env_owner, sizeof (env_owner), "CW_DB_URI_FILE=%s", owner_file);
    const char *roles[] = {program, "roles", "--sql-dir", sql_dir, NULL};
    const char *roles_env[] = {env_super, NULL};
    ck_assert_int_eq (s_run (roles, roles_env), 0);
    const char *apply[] = {program,     "apply", "--island", "shop",
                           "--sql-dir", sql_dir, NULL};
    const char *apply_env[] = {env_owner, NULL};
    ck_assert_int_eq (s_run (apply, apply_env), 0);
    free (program);
    free (sql_dir);
    free (super_file);
    free (owner_uri);
    free (owner_file);
}

static cw_token_signer_t *
s_keygen (const char *name)
{
    char *prefix = s_path (name);
    char error[256];
    ck_assert_int_eq (cw_token_keygen (prefix, error, sizeof (error)), 0);
    size_t size = strlen (prefix) + 8;
    char *secret = (char *) malloc (size);
    snprintf (secret, size, "%s.secret", prefix);
    cw_token_signer_t *signer =
        cw_token_signer_load (secret, error, sizeof (error));
    ck_assert_msg (signer != NULL, "%s", error);
    free (secret);
    free (prefix);
    return signer;
}

//  A failed assertion ends the test process (CK_FORK) without s_stop:
//  this still stops the webshop by its pid, so none is left running.
static void
s_kill_leftover (void)
{
    if (s_world.pid > 0)
        cw_test_kill (s_world.pid);
    s_world.pid = 0;
}

static void
s_start (void)
{
    memset (&s_world, 0, sizeof (s_world));
    atexit (s_kill_leftover);
    s_world.dir = cw_test_tmpdir ("webshop");
    s_world.db_uri = cw_test_db_new ("webshop");
    s_migrate ();
    s_world.signer = s_keygen ("k1");
    s_world.rotated = s_keygen ("k2");
    s_world.stranger = s_keygen ("k3");

    char *webshop_uri = cw_test_uri_as (s_world.db_uri, "cw_webshop");
    char *uri_file = s_secret_file ("webshop.uri", webshop_uri);
    char env_uri[1024];
    snprintf (env_uri, sizeof (env_uri), "CW_WEBSHOP_DB_URI_FILE=%s", uri_file);
    char *program = cw_test_build_path ("examples/webshop/webshop-ref");
    char *port_file = s_path ("port");
    char *key1 = s_path ("k1.public");
    char *key2 = s_path ("k2.public");
    char *log = s_path ("webshop.log");
    const char *argv[] = {
        program,   "--listen",           "127.0.0.1:0", "--port-file",
        port_file, "--token-public-key", key1,          "--token-public-key",
        key2,      "--log-level",        "debug",       NULL};
    const char *envp[] = {env_uri, NULL};
    s_world.pid = cw_test_spawn (argv, envp, log);
    ck_assert_int_gt (s_world.pid, 0);
    char *port = cw_test_wait_file (port_file, TIMEOUT_MSEC);
    ck_assert_msg (port != NULL, "webshop-ref wrote no port file (see %s)",
                   log);
    s_world.port = (int) strtol (port, NULL, 10);
    ck_assert (cw_test_wait_port (s_world.port, TIMEOUT_MSEC));
    free (port);
    free (webshop_uri);
    free (uri_file);
    free (program);
    free (port_file);
    free (key1);
    free (key2);
    free (log);
}

static void
s_stop (void)
{
    //  A clean stop on SIGTERM: exit status 0.
    int status = cw_test_stop (s_world.pid, TIMEOUT_MSEC);
    s_world.pid = 0;
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "webshop-ref did not stop cleanly (status %d)", status);
    cw_token_signer_destroy (&s_world.signer);
    cw_token_signer_destroy (&s_world.rotated);
    cw_token_signer_destroy (&s_world.stranger);
    cw_test_db_destroy (&s_world.db_uri);
    cw_test_tmpdir_destroy (&s_world.dir);
}

//  A token from signer for audience, valid from now + from for ttl.
static char *
s_token (cw_token_signer_t *signer, const char *audience, long from, long ttl)
{
    int64_t now = (int64_t) time (NULL) + from;
    cw_token_claims_t claims = {.iss = "erp-mw",
                                .sub = "worker-1",
                                .aud = (char *) audience,
                                .iat = now,
                                .nbf = now,
                                .exp = now + ttl};
    char error[256];
    char *token = cw_token_sign (signer, &claims, error, sizeof (error));
    ck_assert_msg (token != NULL, "%s", error);
    return token;
}

//  Request headers: JSON body, a bearer token and an Idempotency-Key,
//  each when not NULL. Caller frees the list.
static struct curl_slist *
s_headers (const char *token, const char *key)
{
    char header[10240];
    struct curl_slist *headers =
        curl_slist_append (NULL, "Content-Type: application/json");
    if (token) {
        snprintf (header, sizeof (header), "Authorization: Bearer %s", token);
        headers = curl_slist_append (headers, header);
    }
    if (key) {
        snprintf (header, sizeof (header), "Idempotency-Key: %s", key);
        headers = curl_slist_append (headers, header);
    }
    return headers;
}

//  Prepares a request; token and key may be NULL.
static CURL *
s_easy (const char *method,
        const char *path,
        const char *body,
        const char *token,
        const char *key,
        cw_test_reply_t *reply,
        struct curl_slist **headers)
{
    *headers = s_headers (token, key);
    return cw_test_http_easy (s_world.port, method, path, body, *headers,
                              TIMEOUT_MSEC, reply);
}

static void
s_call (const char *method,
        const char *path,
        const char *body,
        const char *token,
        const char *key,
        cw_test_reply_t *reply)
{
    struct curl_slist *headers = s_headers (token, key);
    cw_test_http (s_world.port, method, path, body, headers, TIMEOUT_MSEC,
                  reply);
    curl_slist_free_all (headers);
    ck_assert_msg (reply->code == CURLE_OK, "%s %s: %s", method, path,
                   curl_easy_strerror (reply->code));
}

static json_t *
s_json (const cw_test_reply_t *reply)
{
    json_t *json = json_loads (reply->body ? reply->body : "", 0, NULL);
    ck_assert_msg (json != NULL, "not JSON: %s", reply->body);
    return json;
}

//  Expects status and, for a problem, that it names field.
static void
s_expect (cw_test_reply_t *reply, long status, const char *field)
{
    ck_assert_msg (reply->status == status, "status %ld, wanted %ld: %s",
                   reply->status, status, reply->body ? reply->body : "");
    if (field) {
        json_t *json = s_json (reply);
        const char *named = json_string_value (json_object_get (json, "field"));
        ck_assert_msg (named && strcmp (named, field) == 0,
                       "problem names \"%s\", wanted \"%s\": %s",
                       named ? named : "(none)", field, reply->body);
        json_decref (json);
    }
}

//  One SQL value from the test database, compared as text.
static void
s_sql_is (const char *sql, const char *expected)
{
    char *value = cw_test_sql_value (s_world.db_uri, sql);
    ck_assert_msg (value != NULL, "no value for %s", sql);
    ck_assert_msg (strcmp (value, expected) == 0,
                   "%s gave \"%s\", wanted "
                   "\"%s\"",
                   sql, value, expected);
    free (value);
}

//  A customer and an order, through the checkout API.
static void
s_place_order (const char *order_id)
{
    cw_test_reply_t reply;
    s_call ("POST", "/shop/customers",
            "{\"tenantId\":\"t1\",\"customerId\":\"c1\",\"customer\":"
            "{\"name\":\"Ada\",\"email\":\"ada@example.com\"}}",
            NULL, NULL, &reply);
    ck_assert (reply.status == 201 || reply.status == 200);
    cw_test_reply_free (&reply);
    char body[512];
    snprintf (body, sizeof (body),
              "{\"tenantId\":\"t1\",\"orderId\":\"%s\",\"customerId\":\"c1\","
              "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A-1\","
              "\"quantity\":2,\"unitPrice\":1250},{\"articleNumber\":\"B-2\","
              "\"quantity\":1,\"unitPrice\":500}],\"tax\":570,"
              "\"shipping\":490}",
              order_id);
    s_call ("POST", "/shop/orders", body, NULL, NULL, &reply);
    s_expect (&reply, 201, NULL);
    cw_test_reply_free (&reply);
}

//  ---------------------------------------------------------------------
//  Tests

START_TEST (test_tokens)
{
    s_start ();
    s_place_order ("o-1");
    const char *path = "/webshop/orders/o-1/payment-status";
    const char *body = "{\"status\":\"paid\",\"externalVersion\":1,"
                       "\"changedAt\":\"2026-01-01T10:00:00Z\"}";
    const char *key = "payment-status:o-1:paid:1";
    cw_test_reply_t reply;
    s_call ("POST", path, body, NULL, key, &reply);
    s_expect (&reply, 401, NULL);
    ck_assert_ptr_nonnull (strstr (reply.body, "missing bearer token"));
    cw_test_reply_free (&reply);
    s_call ("POST", path, body, "not.a.token", key, &reply);
    s_expect (&reply, 401, NULL);
    cw_test_reply_free (&reply);
    char *token = s_token (s_world.signer, "webshop", -600, 300);
    s_call ("POST", path, body, token, key, &reply);
    s_expect (&reply, 401, NULL);
    ck_assert_ptr_nonnull (strstr (reply.body, "token expired at"));
    cw_test_reply_free (&reply);
    free (token);
    token = s_token (s_world.signer, "erp", 0, 300);
    s_call ("POST", path, body, token, key, &reply);
    s_expect (&reply, 401, NULL);
    ck_assert_ptr_nonnull (strstr (reply.body, "audience mismatch"));
    cw_test_reply_free (&reply);
    free (token);
    token = s_token (s_world.stranger, "webshop", 0, 300);
    s_call ("POST", path, body, token, key, &reply);
    s_expect (&reply, 401, NULL);
    ck_assert_ptr_nonnull (strstr (reply.body, "unknown key id"));
    cw_test_reply_free (&reply);
    free (token);
    //  Nothing was applied or remembered.
    s_sql_is ("SELECT count(*) FROM shop.inbox", "0");
    //  Rotation: the new key is accepted as well as the old one.
    token = s_token (s_world.rotated, "webshop", 0, 300);
    s_call ("POST", path, body, token, key, &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    free (token);
    s_sql_is ("SELECT payment_status FROM shop.orders WHERE order_id = 'o-1'",
              "paid");
    s_stop ();
}
END_TEST

START_TEST (test_payment_status)
{
    s_start ();
    s_place_order ("o-1");
    char *token = s_token (s_world.signer, "webshop", 0, 300);
    const char *path = "/webshop/orders/o-1/payment-status";
    const char *body = "{\"status\":\"authorized\",\"externalVersion\":5,"
                       "\"changedAt\":\"2026-01-01T10:00:00Z\","
                       "\"amount\":3560,\"currency\":\"EUR\"}";
    const char *key = "payment-status:o-1:authorized:5";
    cw_test_reply_t first, again;
    s_call ("POST", path, body, token, key, &first);
    s_expect (&first, 200, NULL);
    ck_assert_str_eq (first.replayed, "");
    s_sql_is ("SELECT status || ' ' || external_version || ' ' || "
              "amount_minor || ' ' || currency FROM shop.payments "
              "WHERE order_id = 'o-1'",
              "authorized 5 3560 EUR");
    s_sql_is ("SELECT payment_status || ' ' || payment_version FROM "
              "shop.orders WHERE order_id = 'o-1'",
              "authorized 5");
    s_sql_is ("SELECT response_status FROM shop.inbox WHERE "
              "idempotency_key = 'payment-status:o-1:authorized:5'",
              "200");

    //  Duplicate: the stored response, no second side effect.
    cw_test_sql (s_world.db_uri,
                 "UPDATE shop.payments SET updated_at = '2000-01-01'", NULL, 0);
    s_call ("POST", path, body, token, key, &again);
    s_expect (&again, 200, NULL);
    ck_assert_str_eq (again.replayed, "true");
    ck_assert_str_eq (again.body, first.body);
    s_sql_is ("SELECT updated_at = '2000-01-01' FROM shop.payments", "t");
    s_sql_is ("SELECT count(*) FROM shop.inbox", "1");
    cw_test_reply_free (&again);
    cw_test_reply_free (&first);

    //  An older version is acknowledged, remembered, and ignored.
    cw_test_reply_t reply;
    s_call ("POST", path,
            "{\"status\":\"pending\",\"externalVersion\":4,"
            "\"changedAt\":\"2026-01-01T09:00:00Z\"}",
            token, "payment-status:o-1:pending:4", &reply);
    s_expect (&reply, 200, NULL);
    json_t *json = s_json (&reply);
    ck_assert (json_is_false (json_object_get (json, "applied")));
    ck_assert_int_eq (
        json_integer_value (json_object_get (json, "currentVersion")), 5);
    json_decref (json);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT status FROM shop.payments", "authorized");
    s_sql_is ("SELECT count(*) FROM shop.inbox", "2");

    //  A newer one applies; amount defaults to the order total.
    s_call ("POST", path,
            "{\"status\":\"paid\",\"externalVersion\":6,"
            "\"changedAt\":\"2026-01-01T11:00:00Z\"}",
            token, "payment-status:o-1:paid:6", &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT status || ' ' || amount_minor FROM shop.payments",
              "paid 4060");

    //  Key and body disagree: 422, nothing remembered.
    s_call ("POST", path, body, token, "payment-status:o-1:paid:5", &reply);
    s_expect (&reply, 422, "Idempotency-Key");
    cw_test_reply_free (&reply);
    //  Missing key: 400.
    s_call ("POST", path, body, token, NULL, &reply);
    s_expect (&reply, 400, "Idempotency-Key");
    cw_test_reply_free (&reply);
    //  The same key with another body: 422.
    s_call ("POST", path,
            "{\"status\":\"authorized\",\"externalVersion\":5,"
            "\"changedAt\":\"2026-01-02T10:00:00Z\"}",
            token, key, &reply);
    s_expect (&reply, 422, "Idempotency-Key");
    cw_test_reply_free (&reply);
    //  Bad bodies name the field.
    s_call ("POST", path,
            "{\"status\":\"weird\",\"externalVersion\":7,"
            "\"changedAt\":\"2026-01-01T11:00:00Z\"}",
            token, "payment-status:o-1:weird:7", &reply);
    s_expect (&reply, 422, "status");
    cw_test_reply_free (&reply);
    s_call ("POST", path, "{\"status\":\"paid\",\"externalVersion\":\"7\"}",
            token, "payment-status:o-1:paid:7", &reply);
    s_expect (&reply, 422, "externalVersion");
    cw_test_reply_free (&reply);
    s_call ("POST", path, "{\"status\":", token, "x", &reply);
    s_expect (&reply, 400, NULL);
    ck_assert_ptr_nonnull (strstr (reply.body, "problem"));
    cw_test_reply_free (&reply);
    //  Unknown order: 404, not remembered.
    s_call ("POST", "/webshop/orders/o-404/payment-status",
            "{\"status\":\"paid\",\"externalVersion\":1,"
            "\"changedAt\":\"2026-01-01T11:00:00Z\"}",
            token, "payment-status:o-404:paid:1", &reply);
    s_expect (&reply, 404, "orderId");
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT count(*) FROM shop.inbox", "3");
    s_sql_is ("SELECT status FROM shop.payments", "paid");
    //  Without an amount the order's total is recorded, in the order's
    //  currency: a currency alone does not relabel that total.
    s_call ("POST", path,
            "{\"status\":\"partially_refunded\",\"externalVersion\":7,"
            "\"changedAt\":\"2026-01-01T12:00:00Z\",\"currency\":\"USD\"}",
            token, "payment-status:o-1:partially_refunded:7", &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT status || ' ' || amount_minor || ' ' || currency FROM "
              "shop.payments",
              "partially_refunded 4060 EUR");
    free (token);
    s_stop ();
}
END_TEST

START_TEST (test_concurrent_duplicates)
{
    s_start ();
    s_place_order ("o-1");
    char *token = s_token (s_world.signer, "webshop", 0, 300);
    const char *body = "{\"status\":\"paid\",\"externalVersion\":9,"
                       "\"changedAt\":\"2026-01-01T10:00:00Z\"}";
    CURLM *multi = curl_multi_init ();
    CURL *easy[CONCURRENT];
    cw_test_reply_t replies[CONCURRENT];
    struct curl_slist *headers[CONCURRENT];
    for (int index = 0; index < CONCURRENT; index++) {
        easy[index] = s_easy ("POST", "/webshop/orders/o-1/payment-status",
                              body, token, "payment-status:o-1:paid:9",
                              &replies[index], &headers[index]);
        curl_multi_add_handle (multi, easy[index]);
    }
    int running = 1;
    while (running) {
        ck_assert_int_eq (curl_multi_perform (multi, &running), CURLM_OK);
        if (running)
            curl_multi_poll (multi, NULL, 0, 1000, NULL);
    }
    int applied = 0;
    for (int index = 0; index < CONCURRENT; index++) {
        curl_easy_getinfo (easy[index], CURLINFO_RESPONSE_CODE,
                           &replies[index].status);
        s_expect (&replies[index], 200, NULL);
        ck_assert_str_eq (replies[index].body, replies[0].body);
        if (strcmp (replies[index].replayed, "true") != 0)
            applied++;
        curl_multi_remove_handle (multi, easy[index]);
        curl_easy_cleanup (easy[index]);
        curl_slist_free_all (headers[index]);
    }
    //  Exactly one delivery applied; the others got its stored response.
    ck_assert_int_eq (applied, 1);
    for (int index = 0; index < CONCURRENT; index++)
        cw_test_reply_free (&replies[index]);
    curl_multi_cleanup (multi);
    s_sql_is ("SELECT count(*) FROM shop.inbox", "1");
    s_sql_is ("SELECT count(*) || ' ' || max (status) FROM shop.payments",
              "1 paid");
    free (token);
    s_stop ();
}
END_TEST

START_TEST (test_prices)
{
    s_start ();
    char *token = s_token (s_world.signer, "webshop", 0, 300);
    cw_test_reply_t reply;
    const char *one = "{\"prices\":[{\"articleNumber\":\"A-1\","
                      "\"priceListId\":\"retail\",\"amount\":1299,"
                      "\"currency\":\"EUR\",\"effectiveAt\":"
                      "\"2026-02-01T00:00:00Z\",\"externalVersion\":3}]}";
    s_call ("POST", "/webshop/products/prices", one, token,
            "price:A-1:retail:3", &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT amount_minor || ' ' || currency || ' ' || "
              "external_version FROM shop.product_prices",
              "1299 EUR 3");
    //  Older price: acknowledged and ignored.
    s_call ("POST", "/webshop/products/prices",
            "{\"prices\":[{\"articleNumber\":\"A-1\",\"priceListId\":"
            "\"retail\",\"amount\":999,\"currency\":\"EUR\",\"effectiveAt\":"
            "\"2026-01-01T00:00:00Z\",\"externalVersion\":2}]}",
            token, "price:A-1:retail:2", &reply);
    s_expect (&reply, 200, NULL);
    ck_assert_ptr_nonnull (strstr (reply.body, "\"applied\":false"));
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT amount_minor FROM shop.product_prices", "1299");
    //  A batch: each price by its own key; the first is a duplicate.
    s_call ("POST", "/webshop/products/prices",
            "{\"prices\":[{\"articleNumber\":\"A-1\",\"priceListId\":"
            "\"retail\",\"amount\":1299,\"currency\":\"EUR\",\"effectiveAt\":"
            "\"2026-02-01T00:00:00Z\",\"externalVersion\":3},"
            "{\"articleNumber\":\"B-2\",\"priceListId\":\"retail\","
            "\"amount\":500,\"currency\":\"EUR\",\"effectiveAt\":"
            "\"2026-02-01T00:00:00Z\",\"externalVersion\":1}]}",
            token, NULL, &reply);
    s_expect (&reply, 200, NULL);
    json_t *json = s_json (&reply);
    json_t *results = json_object_get (json, "results");
    ck_assert_int_eq (json_array_size (results), 2);
    ck_assert (json_is_true (
        json_object_get (json_array_get (results, 0), "replayed")));
    ck_assert (json_is_false (
        json_object_get (json_array_get (results, 1), "replayed")));
    json_decref (json);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT count(*) FROM shop.product_prices", "2");
    s_sql_is ("SELECT count(*) FROM shop.inbox", "3");
    //  Bad price: the field is named with its place in the batch.
    s_call ("POST", "/webshop/products/prices",
            "{\"prices\":[{\"articleNumber\":\"A-1\",\"priceListId\":"
            "\"retail\",\"amount\":12.5,\"currency\":\"EUR\",\"effectiveAt\":"
            "\"2026-02-01T00:00:00Z\",\"externalVersion\":4}]}",
            token, "price:A-1:retail:4", &reply);
    s_expect (&reply, 422, "prices[0].amount");
    cw_test_reply_free (&reply);
    free (token);
    s_stop ();
}
END_TEST

//  The document source: serves PDF bytes to callers with the right token.
static const char s_pdf[] = "%PDF-1.4\n1 0 obj <<>> endobj\n\x00\x01\xff"
                            "binary tail\n%%EOF\n";

static void
s_serve_document (cw_http_request_t *request, void *arg)
{
    (void) arg;
    const char *header = cw_http_request_header (request, "Authorization");
    if (!header || strcmp (header, "Bearer doc-token-1") != 0)
        cw_http_reply_problem (request, 401, NULL, "no token", NULL, NULL);
    else
        cw_http_reply_bytes (request, 200, "application/pdf", s_pdf,
                             sizeof (s_pdf) - 1);
}

START_TEST (test_invoice_document)
{
    s_start ();
    s_place_order ("o-1");
    cw_http_t *source = cw_http_new ("127.0.0.1", 0, 0);
    cw_http_route (source, "GET", "/api/v1/invoices/{id}/document",
                   s_serve_document, NULL);
    char error[256];
    ck_assert_int_eq (cw_http_start (source, error, sizeof (error)), 0);
    char body[1024];
    snprintf (body, sizeof (body),
              "{\"invoiceNumber\":\"INV-7\",\"invoiceId\":\"inv-7\","
              "\"externalVersion\":1,\"issuedAt\":\"2026-01-03T00:00:00Z\","
              "\"documentUrl\":\"http://127.0.0.1:%d/api/v1/invoices/inv-7/"
              "document\",\"documentToken\":\"doc-token-1\","
              "\"total\":4060,\"currency\":\"EUR\"}",
              cw_http_port (source));
    char *token = s_token (s_world.signer, "webshop", 0, 300);
    cw_test_reply_t reply;
    s_call ("POST", "/webshop/orders/o-1/invoice-available", body, token,
            "invoice:o-1:INV-7:1", &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT invoice_id || ' ' || external_version || ' ' || "
              "(pdf IS NULL) FROM shop.order_documents",
              "inv-7 1 true");

    //  The customer sees the invoice, then its document: the source's
    //  bytes, fetched with the event's token, then stored.
    s_call ("GET", "/webshop/orders/o-1/invoices", NULL, NULL, NULL, &reply);
    s_expect (&reply, 200, NULL);
    json_t *json = s_json (&reply);
    json_t *invoice = json_array_get (json_object_get (json, "invoices"), 0);
    ck_assert_str_eq (
        json_string_value (json_object_get (invoice, "invoiceNumber")),
        "INV-7");
    ck_assert_str_eq (
        json_string_value (json_object_get (invoice, "documentHref")),
        "/webshop/orders/o-1/invoices/INV-7/document");
    json_decref (json);
    cw_test_reply_free (&reply);
    s_call ("GET", "/webshop/orders/o-1/invoices/INV-7/document", NULL, NULL,
            NULL, &reply);
    s_expect (&reply, 200, NULL);
    ck_assert_uint_eq (reply.size, sizeof (s_pdf) - 1);
    ck_assert_int_eq (memcmp (reply.body, s_pdf, reply.size), 0);
    cw_test_reply_free (&reply);
    char length[32];
    snprintf (length, sizeof (length), "%zu", sizeof (s_pdf) - 1);
    s_sql_is ("SELECT length (pdf) FROM shop.order_documents", length);

    //  With the source gone, the stored copy is served.
    cw_http_destroy (&source);
    s_call ("GET", "/webshop/orders/o-1/invoices/INV-7/document", NULL, NULL,
            NULL, &reply);
    s_expect (&reply, 200, NULL);
    ck_assert_uint_eq (reply.size, sizeof (s_pdf) - 1);
    ck_assert_int_eq (memcmp (reply.body, s_pdf, reply.size), 0);
    cw_test_reply_free (&reply);
    s_call ("GET", "/webshop/orders/o-1/invoices/INV-8/document", NULL, NULL,
            NULL, &reply);
    s_expect (&reply, 404, "invoiceNumber");
    cw_test_reply_free (&reply);
    s_call ("GET", "/webshop/orders/o-9/invoices", NULL, NULL, NULL, &reply);
    s_expect (&reply, 404, "orderId");
    cw_test_reply_free (&reply);
    free (token);
    s_stop ();
}
END_TEST

//  A source whose first document changes while it is being fetched: on
//  the request for "inv-7" it first pushes version 2 of the invoice (now
//  at "inv-7b") to the webshop, then answers with version 1's bytes.
typedef struct {
    const char *token;  //  Bearer token for the push
    int source_port;    //  The source's own port
    long pushed;        //  Status of the push, 0 before it
} s_changing_source_t;

static const char s_pdf_v2[] = "%PDF-1.4\nversion two\n%%EOF\n";

static void
s_serve_changing_document (cw_http_request_t *request, void *arg)
{
    s_changing_source_t *source = (s_changing_source_t *) arg;
    const char *id = cw_http_request_param (request, "id");
    if (strcmp (id, "inv-7b") == 0) {
        cw_http_reply_bytes (request, 200, "application/pdf", s_pdf_v2,
                             sizeof (s_pdf_v2) - 1);
        return;
    }
    char body[1024];
    snprintf (body, sizeof (body),
              "{\"invoiceNumber\":\"INV-7\",\"invoiceId\":\"inv-7b\","
              "\"externalVersion\":2,\"issuedAt\":\"2026-01-04T00:00:00Z\","
              "\"documentUrl\":\"http://127.0.0.1:%d/api/v1/invoices/inv-7b/"
              "document\",\"documentToken\":\"doc-token-1\"}",
              source->source_port);
    struct curl_slist *headers =
        s_headers (source->token, "invoice:o-1:INV-7:2");
    cw_test_reply_t reply;
    cw_test_http (s_world.port, "POST", "/webshop/orders/o-1/invoice-available",
                  body, headers, TIMEOUT_MSEC, &reply);
    curl_slist_free_all (headers);
    source->pushed = reply.status;
    cw_test_reply_free (&reply);
    cw_http_reply_bytes (request, 200, "application/pdf", s_pdf,
                         sizeof (s_pdf) - 1);
}

START_TEST (test_invoice_replaced_during_fetch)
{
    s_start ();
    s_place_order ("o-1");
    char *token = s_token (s_world.signer, "webshop", 0, 300);
    s_changing_source_t state = {.token = token};
    cw_http_t *source = cw_http_new ("127.0.0.1", 0, 0);
    cw_http_route (source, "GET", "/api/v1/invoices/{id}/document",
                   s_serve_changing_document, &state);
    char error[256];
    ck_assert_int_eq (cw_http_start (source, error, sizeof (error)), 0);
    state.source_port = cw_http_port (source);
    char body[1024];
    snprintf (body, sizeof (body),
              "{\"invoiceNumber\":\"INV-7\",\"invoiceId\":\"inv-7\","
              "\"externalVersion\":1,\"issuedAt\":\"2026-01-03T00:00:00Z\","
              "\"documentUrl\":\"http://127.0.0.1:%d/api/v1/invoices/inv-7/"
              "document\",\"documentToken\":\"doc-token-1\"}",
              state.source_port);
    cw_test_reply_t reply;
    s_call ("POST", "/webshop/orders/o-1/invoice-available", body, token,
            "invoice:o-1:INV-7:1", &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    //  The download that was running when version 2 arrived gets version
    //  1's bytes, but must not store them as version 2's document.
    s_call ("GET", "/webshop/orders/o-1/invoices/INV-7/document", NULL, NULL,
            NULL, &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    ck_assert_int_eq (state.pushed, 200);
    s_sql_is ("SELECT external_version || ' ' || (pdf IS NULL) FROM "
              "shop.order_documents",
              "2 true");
    //  The next download fetches version 2.
    s_call ("GET", "/webshop/orders/o-1/invoices/INV-7/document", NULL, NULL,
            NULL, &reply);
    s_expect (&reply, 200, NULL);
    ck_assert_uint_eq (reply.size, sizeof (s_pdf_v2) - 1);
    ck_assert_int_eq (memcmp (reply.body, s_pdf_v2, reply.size), 0);
    cw_test_reply_free (&reply);
    cw_http_destroy (&source);
    free (token);
    s_stop ();
}
END_TEST

START_TEST (test_events)
{
    s_start ();
    s_place_order ("o-1");
    char *token = s_token (s_world.signer, "webshop", 0, 300);
    const char *customer_event =
        "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":"
        "\"urn:causeway:erp-mw\",\"type\":\"erp.customer.synced.v1\","
        "\"time\":\"2026-01-01T10:00:00Z\",\"datacontenttype\":"
        "\"application/json\",\"tenantid\":\"t1\",\"correlationid\":"
        "\"corr-1\",\"idempotencykey\":\"customer-synced:t1:c1:1\","
        "\"data\":{\"tenantId\":\"t1\",\"customerId\":\"c1\","
        "\"externalId\":\"ERP-C-100\",\"syncStatus\":\"created\","
        "\"version\":1,\"syncedAt\":\"2026-01-01T10:00:00Z\"}}";
    cw_test_reply_t reply, again;
    s_call ("POST", "/webshop/events", customer_event, token, NULL, &reply);
    s_expect (&reply, 200, NULL);
    s_sql_is ("SELECT erp_customer_id FROM shop.customers", "ERP-C-100");
    s_call ("POST", "/webshop/events", customer_event, token,
            "customer-synced:t1:c1:1", &again);
    s_expect (&again, 200, NULL);
    ck_assert_str_eq (again.replayed, "true");
    ck_assert_str_eq (again.body, reply.body);
    cw_test_reply_free (&reply);
    cw_test_reply_free (&again);
    s_call ("POST", "/webshop/events",
            "{\"specversion\":\"1.0\",\"id\":\"e-2\",\"source\":"
            "\"urn:causeway:erp-mw\",\"type\":\"erp.order.synced.v1\","
            "\"time\":\"2026-01-01T10:00:00Z\",\"datacontenttype\":"
            "\"application/json\",\"tenantid\":\"t1\",\"correlationid\":"
            "\"corr-2\",\"idempotencykey\":\"order-synced:t1:o-1:1\","
            "\"data\":{\"tenantId\":\"t1\",\"orderId\":\"o-1\","
            "\"externalId\":\"ERP-O-9\",\"syncStatus\":\"created\","
            "\"version\":1,\"syncedAt\":\"2026-01-01T10:00:00Z\"}}",
            token, NULL, &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT erp_order_id FROM shop.orders", "ERP-O-9");
    s_sql_is ("SELECT count(*) FROM shop.inbox", "2");
    //  The event's type decides what is synced: an order event naming its
    //  customer (an extra member, allowed) still syncs the order.
    s_call ("POST", "/webshop/events",
            "{\"specversion\":\"1.0\",\"id\":\"e-5\",\"source\":"
            "\"urn:causeway:erp-mw\",\"type\":\"erp.order.synced.v1\","
            "\"time\":\"2026-01-01T10:00:00Z\",\"datacontenttype\":"
            "\"application/json\",\"tenantid\":\"t1\",\"correlationid\":"
            "\"corr-5\",\"idempotencykey\":\"order-synced:t1:o-1:2\","
            "\"data\":{\"tenantId\":\"t1\",\"orderId\":\"o-1\","
            "\"customerId\":\"c1\",\"externalId\":\"ERP-O-10\","
            "\"syncStatus\":\"updated\",\"version\":2,"
            "\"syncedAt\":\"2026-01-01T10:00:00Z\"}}",
            token, NULL, &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT erp_order_id FROM shop.orders", "ERP-O-10");
    s_sql_is ("SELECT erp_customer_id FROM shop.customers", "ERP-C-100");
    s_sql_is ("SELECT count(*) FROM shop.inbox", "3");
    //  Not an envelope, a type we do not take, a bad payload.
    s_call ("POST", "/webshop/events", "{\"type\":\"x\"}", token, NULL, &reply);
    s_expect (&reply, 422, NULL);
    cw_test_reply_free (&reply);
    s_call ("POST", "/webshop/events",
            "{\"specversion\":\"1.0\",\"id\":\"e-3\",\"source\":\"s\","
            "\"type\":\"order.created.v1\",\"time\":\"2026-01-01T10:00:00Z\","
            "\"datacontenttype\":\"application/json\",\"tenantid\":\"t1\","
            "\"correlationid\":\"c\",\"idempotencykey\":\"k\",\"data\":{}}",
            token, NULL, &reply);
    s_expect (&reply, 422, "type");
    cw_test_reply_free (&reply);
    s_call ("POST", "/webshop/events",
            "{\"specversion\":\"1.0\",\"id\":\"e-4\",\"source\":\"s\","
            "\"type\":\"erp.order.synced.v1\",\"time\":"
            "\"2026-01-01T10:00:00Z\",\"datacontenttype\":"
            "\"application/json\",\"tenantid\":\"t1\",\"correlationid\":"
            "\"c\",\"idempotencykey\":\"k4\",\"data\":{\"tenantId\":\"t1\","
            "\"orderId\":\"o-1\",\"syncStatus\":\"created\",\"version\":1,"
            "\"syncedAt\":\"2026-01-01T10:00:00Z\"}}",
            token, NULL, &reply);
    s_expect (&reply, 422, "externalId");
    cw_test_reply_free (&reply);
    free (token);
    s_stop ();
}
END_TEST

START_TEST (test_checkout)
{
    s_start ();
    cw_test_reply_t reply;
    const char *customer = "{\"tenantId\":\"t1\",\"customerId\":\"c1\","
                           "\"customer\":{\"name\":\"Ada\",\"email\":"
                           "\"ada@example.com\"}}";
    s_call ("POST", "/shop/customers", customer, NULL, NULL, &reply);
    s_expect (&reply, 201, NULL);
    cw_test_reply_free (&reply);
    //  The same data again: no new version, no event.
    s_call ("POST", "/shop/customers", customer, NULL, NULL, &reply);
    s_expect (&reply, 200, NULL);
    ck_assert_ptr_nonnull (strstr (reply.body, "\"changed\":false"));
    cw_test_reply_free (&reply);
    s_call ("POST", "/shop/customers",
            "{\"tenantId\":\"t1\",\"customerId\":\"c1\",\"customer\":"
            "{\"name\":\"Ada L.\",\"email\":\"ada@example.com\"}}",
            NULL, NULL, &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT name || ' ' || version FROM shop.customers", "Ada L. 2");
    s_sql_is ("SELECT string_agg (idempotency_key, ' ' ORDER BY id) FROM "
              "shop.outbox WHERE event_type = 'customer.upsert.requested.v1'",
              "customer:t1:c1:1 customer:t1:c1:2");
    s_sql_is ("SELECT payload->'data'->>'changedFields' FROM shop.outbox "
              "WHERE idempotency_key = 'customer:t1:c1:2'",
              "[\"name\"]");

    s_place_order ("o-1");
    s_sql_is ("SELECT status || ' ' || version || ' ' || total_minor FROM "
              "shop.orders",
              "pending 1 4060");
    s_sql_is ("SELECT count(*) || ' ' || sum (line_total_minor) FROM "
              "shop.order_lines",
              "2 3000");
    s_sql_is ("SELECT payload->>'type' || ' ' || (payload->'data'->'totals'"
              "->>'total') || ' ' || (payload->>'tenantid') FROM shop.outbox "
              "WHERE idempotency_key = 'order:t1:o-1:1'",
              "order.created.v1 4060 t1");
    s_call ("POST", "/shop/orders/o-1/status", "{\"status\":\"confirmed\"}",
            NULL, NULL, &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_call ("POST", "/shop/orders/o-1/status", "{\"status\":\"shipped\"}", NULL,
            NULL, &reply);
    s_expect (&reply, 200, NULL);
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT status || ' ' || version FROM shop.orders", "shipped 3");
    s_sql_is ("SELECT string_agg (idempotency_key, ' ' ORDER BY id) FROM "
              "shop.outbox WHERE event_type = 'order.status.changed.v1'",
              "order-status:t1:o-1:confirmed:2 order-status:t1:o-1:shipped:3");
    s_sql_is ("SELECT payload->'data'->>'previousStatus' FROM shop.outbox "
              "WHERE idempotency_key = 'order-status:t1:o-1:shipped:3'",
              "confirmed");

    //  Failures change nothing: neither domain rows nor outbox. (Six
    //  events so far: s_place_order renamed the customer back to "Ada".)
    s_sql_is ("SELECT count(*) FROM shop.outbox", "6");
    s_call ("POST", "/shop/orders/o-1/status", "{\"status\":\"shipped\"}", NULL,
            NULL, &reply);
    s_expect (&reply, 422, "status");
    cw_test_reply_free (&reply);
    s_call ("POST", "/shop/orders/o-1/status", "{\"status\":\"lost\"}", NULL,
            NULL, &reply);
    s_expect (&reply, 422, "status");
    cw_test_reply_free (&reply);
    s_place_order ("o-2");
    s_call ("POST", "/shop/orders",
            "{\"tenantId\":\"t1\",\"orderId\":\"o-2\",\"customerId\":\"c1\","
            "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A-1\","
            "\"quantity\":1,\"unitPrice\":1}]}",
            NULL, NULL, &reply);
    s_expect (&reply, 409, "orderId");
    cw_test_reply_free (&reply);
    s_call ("POST", "/shop/orders",
            "{\"tenantId\":\"t1\",\"orderId\":\"o-3\",\"customerId\":\"c1\","
            "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A-1\","
            "\"quantity\":0,\"unitPrice\":1}]}",
            NULL, NULL, &reply);
    s_expect (&reply, 422, "lines[0].quantity");
    cw_test_reply_free (&reply);
    s_call (
        "POST", "/shop/orders",
        "{\"tenantId\":\"t1\",\"orderId\":\"o-4\",\"customerId\":\"nobody\","
        "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A-1\","
        "\"quantity\":1,\"unitPrice\":1}]}",
        NULL, NULL, &reply);
    s_expect (&reply, 422, "customerId");
    cw_test_reply_free (&reply);
    s_call ("POST", "/shop/customers", "{\"tenantId\":\"t1\"}", NULL, NULL,
            &reply);
    s_expect (&reply, 422, "customerId");
    cw_test_reply_free (&reply);
    s_sql_is ("SELECT count(*) FROM shop.outbox", "7");
    s_sql_is ("SELECT count(*) FROM shop.orders", "2");
    s_stop ();
}
END_TEST

//  Drives multi until n sessions of the test database wait on a lock.
static void
s_wait_lock_waiters (CURLM *multi, const char *n)
{
    for (int tries = 0; tries < 1000; tries++) {
        int running = 0;
        ck_assert_int_eq (curl_multi_perform (multi, &running), CURLM_OK);
        char *count = cw_test_sql_value (
            s_world.db_uri,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
            "current_database () AND wait_event_type = 'Lock'");
        bool reached = count && strcmp (count, n) == 0;
        free (count);
        if (reached)
            return;
        usleep (10000);
    }
    ck_abort_msg ("no session waited on a lock");
}

//  Drives a curl multi handle until no transfer runs, or at most msec.
static void
s_multi_run (CURLM *multi, int msec)
{
    int running = 1;
    for (int waited = 0; running && waited < msec; waited += 50) {
        ck_assert_int_eq (curl_multi_perform (multi, &running), CURLM_OK);
        if (running)
            curl_multi_poll (multi, NULL, 0, 50, NULL);
    }
}

START_TEST (test_order_id_race)
{
    //  Order ids are unique across tenants, also when two tenants create
    //  the same id at once: the first creation is held (its outbox event
    //  waits on a row the test inserted) while the second one runs.
    s_start ();
    cw_test_reply_t reply;
    s_call ("POST", "/shop/customers",
            "{\"tenantId\":\"t1\",\"customerId\":\"c1\",\"customer\":"
            "{\"name\":\"Ada\",\"email\":\"ada@example.com\"}}",
            NULL, NULL, &reply);
    s_expect (&reply, 201, NULL);
    cw_test_reply_free (&reply);
    s_call ("POST", "/shop/customers",
            "{\"tenantId\":\"t2\",\"customerId\":\"c2\",\"customer\":"
            "{\"name\":\"Bo\",\"email\":\"bo@example.com\"}}",
            NULL, NULL, &reply);
    s_expect (&reply, 201, NULL);
    cw_test_reply_free (&reply);
    cw_pg_t *holder = cw_pg_new (s_world.db_uri);
    ck_assert_int_eq (cw_pg_connect (holder), 0);
    ck_assert_int_eq (cw_pg_begin (holder), 0);
    ck_assert_int_eq (
        cw_pg_exec_sql (holder,
                        "INSERT INTO shop.outbox (event_type, tenant, "
                        "idempotency_key, payload) VALUES ('x', 't1', "
                        "'order:t1:o-9:1', '{}')",
                        0, NULL, NULL),
        0);
    const char *bodies[] = {
        "{\"tenantId\":\"t1\",\"orderId\":\"o-9\",\"customerId\":\"c1\","
        "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A-1\","
        "\"quantity\":1,\"unitPrice\":100}]}",
        "{\"tenantId\":\"t2\",\"orderId\":\"o-9\",\"customerId\":\"c2\","
        "\"currency\":\"EUR\",\"lines\":[{\"articleNumber\":\"A-1\","
        "\"quantity\":1,\"unitPrice\":100}]}"};
    CURLM *multi = curl_multi_init ();
    CURL *easy[2];
    cw_test_reply_t replies[2];
    struct curl_slist *headers[2];
    for (int index = 0; index < 2; index++) {
        easy[index] = s_easy ("POST", "/shop/orders", bodies[index], NULL, NULL,
                              &replies[index], &headers[index]);
        curl_multi_add_handle (multi, easy[index]);
        //  The first waits on the held outbox row; then the second runs.
        if (index == 0)
            s_wait_lock_waiters (multi, "1");
        else
            s_multi_run (multi, 2000);
    }
    ck_assert_int_eq (cw_pg_rollback (holder), 0);
    cw_pg_destroy (&holder);
    s_multi_run (multi, TIMEOUT_MSEC);
    for (int index = 0; index < 2; index++) {
        curl_easy_getinfo (easy[index], CURLINFO_RESPONSE_CODE,
                           &replies[index].status);
        curl_multi_remove_handle (multi, easy[index]);
        curl_easy_cleanup (easy[index]);
        curl_slist_free_all (headers[index]);
    }
    curl_multi_cleanup (multi);
    s_expect (&replies[0], 201, NULL);
    s_expect (&replies[1], 409, "orderId");
    for (int index = 0; index < 2; index++)
        cw_test_reply_free (&replies[index]);
    s_sql_is ("SELECT string_agg (tenant, ' ') FROM shop.orders "
              "WHERE order_id = 'o-9'",
              "t1");
    s_stop ();
}
END_TEST

START_TEST (test_usage)
{
    //  Bad flags exit 2 without starting.
    char *dir = cw_test_tmpdir ("webshop_usage");
    char *program = cw_test_build_path ("examples/webshop/webshop-ref");
    const char *no_key[] = {program, "--listen", "127.0.0.1:0", NULL};
    pid_t pid = cw_test_spawn (no_key, NULL, "/dev/null");
    int status = 0;
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert_int_eq (WEXITSTATUS (status), 2);
    const char *bad_listen[] = {program, "--listen", "nowhere", NULL};
    pid = cw_test_spawn (bad_listen, NULL, "/dev/null");
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert_int_eq (WEXITSTATUS (status), 2);
    const char *help[] = {program, "--help", NULL};
    pid = cw_test_spawn (help, NULL, "/dev/null");
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert_int_eq (WEXITSTATUS (status), 0);
    free (program);
    cw_test_tmpdir_destroy (&dir);
}
END_TEST

int
main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    Suite *suite = suite_create ("webshop");
    TCase *inbound = tcase_create ("inbound");
    tcase_set_timeout (inbound, 60);
    tcase_add_test (inbound, test_tokens);
    tcase_add_test (inbound, test_payment_status);
    tcase_add_test (inbound, test_concurrent_duplicates);
    tcase_add_test (inbound, test_prices);
    tcase_add_test (inbound, test_invoice_document);
    tcase_add_test (inbound, test_invoice_replaced_during_fetch);
    tcase_add_test (inbound, test_events);
    suite_add_tcase (suite, inbound);
    TCase *checkout = tcase_create ("checkout");
    tcase_set_timeout (checkout, 60);
    tcase_add_test (checkout, test_checkout);
    tcase_add_test (checkout, test_order_id_race);
    tcase_add_test (checkout, test_usage);
    suite_add_tcase (suite, checkout);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    curl_global_cleanup ();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
