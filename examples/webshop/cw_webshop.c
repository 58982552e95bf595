/*  =========================================================================
    cw_webshop - the reference webshop's half of the boundary contract

    Handlers run on cw_http's threads; each takes a database connection
    from the store's pool for the length of its transaction and gives it
    back before replying (the document fetch holds none while it waits
    on the network).
    =========================================================================
*/
#include "cw_webshop.h"
#include "cw_envelope.h"
#include "cw_http.h"
#include "cw_idkey.h"
#include "cw_log.h"
#include "cw_webshop_store.h"

#include <assert.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#define WEBSHOP_ID_MAX 128          //  Longest id field, bytes
#define WEBSHOP_TEXT_MAX 256        //  Longest free text field, bytes
#define WEBSHOP_STATUS_MAX 32       //  Longest status word, bytes
#define WEBSHOP_LINES_MAX 500       //  Most lines in one order
#define WEBSHOP_ATTEMPTS 3          //  Transaction attempts on conflicts
#define WEBSHOP_AUDIENCE "webshop"  //  Default token audience
#define WEBSHOP_DETAIL_SIZE 512     //  Room for a problem detail
#define WEBSHOP_EVENT_ID_BYTES 16   //  Random bytes in an event id
#define WEBSHOP_SOURCE_DEFAULT "urn:causeway:webshop"

struct _cw_webshop_t {
    cw_http_t *http;                //  HTTP server, owned
    cw_webshop_store_t *store;      //  Database pool, owned
    cw_token_verifier_t *verifier;  //  Token checks, borrowed
    long fetch_timeout_msec;        //  Document fetch timeout
    char *source;                   //  CloudEvents source of our events
};

//  What applying a change decided: a reply to store, or a problem.
typedef struct {
    int status;                         //  HTTP status
    json_t *body;                       //  Success body, owned
    const char *slug;                   //  Problem type slug (status >= 400)
    const char *title;                  //  Problem title
    const char *field;                  //  Field the problem is about
    char detail[WEBSHOP_DETAIL_SIZE];   //  Problem detail
} s_outcome_t;

typedef int (s_apply_fn) (cw_webshop_t *self, cw_pg_t *pg, void *args,
                          s_outcome_t *outcome);

//  ---------------------------------------------------------------------
//  Small helpers

static char *
s_strdup (const char *text)
{
    char *copy = strdup (text);
    if (!copy)
        abort ();
    return copy;
}

//  Writes the current time as RFC 3339 UTC with milliseconds.
static void
s_now_text (char *text, size_t size)
{
    struct timeval now;
    gettimeofday (&now, NULL);
    struct tm parts;
    time_t seconds = now.tv_sec;
    gmtime_r (&seconds, &parts);
    char base[32];
    strftime (base, sizeof (base), "%Y-%m-%dT%H:%M:%S", &parts);
    snprintf (text, size, "%s.%03dZ", base, (int) (now.tv_usec / 1000));
}

//  SHA-256 of a JSON value in canonical form (compact, sorted keys), hex.
static void
s_json_sha256 (const json_t *value, char hex[crypto_hash_sha256_BYTES * 2 + 1])
{
    char *text = json_dumps (value, JSON_COMPACT | JSON_SORT_KEYS
                                        | JSON_ENCODE_ANY);
    if (!text)
        abort ();
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) text, strlen (text));
    sodium_bin2hex (hex, crypto_hash_sha256_BYTES * 2 + 1, hash,
                    sizeof (hash));
    free (text);
}

//  Replies 422 (or status) naming the field.
static void
s_reply_invalid (cw_http_request_t *request, int status, const char *field,
                 const char *detail)
{
    json_t *extensions = json_pack ("{s:s}", "field", field);
    cw_http_reply_problem (request, status, "validation",
                           "invalid request", detail, extensions);
    json_decref (extensions);
}

static void
s_reply_unavailable (cw_http_request_t *request)
{
    cw_http_reply_header (request, "Retry-After", "1");
    cw_http_reply_problem (request, 503, "unavailable", "database unavailable",
                           "could not complete the request: database error, "
                           "retry later",
                           NULL);
}

//  True for an id: 1..WEBSHOP_ID_MAX bytes of A-Z a-z 0-9 - . _ ~
static bool
s_id_valid (const char *text)
{
    size_t length = strlen (text);
    if (length == 0 || length > WEBSHOP_ID_MAX)
        return false;
    return strspn (text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789-._~")
           == length;
}

//  True for a status word: 1..WEBSHOP_STATUS_MAX of a-z and _.
static bool
s_status_valid (const char *text)
{
    size_t length = strlen (text);
    return length > 0 && length <= WEBSHOP_STATUS_MAX
           && strspn (text, "abcdefghijklmnopqrstuvwxyz_") == length;
}

//  True for an ISO 4217-shaped currency code (three upper-case letters).
static bool
s_currency_valid (const char *text)
{
    return strlen (text) == 3 && strspn (text, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                                     == 3;
}

typedef enum { S_ID, S_STATUS, S_CURRENCY, S_TEXT, S_TIME, S_TOKEN } s_kind_t;

//  Reads string member field of body checked as kind. Returns it
//  (borrowed), or NULL: when absent and optional (*failed false), or after
//  replying 422 naming the field (*failed true).
static const char *
s_string (cw_http_request_t *request, json_t *body, const char *field,
          s_kind_t kind, bool required, bool *failed)
{
    json_t *item = json_object_get (body, field);
    char detail[WEBSHOP_DETAIL_SIZE];
    if (!item || json_is_null (item)) {
        if (!required)
            return NULL;
        snprintf (detail, sizeof (detail), "field \"%s\" is required",
                  field);
        s_reply_invalid (request, 422, field, detail);
        *failed = true;
        return NULL;
    }
    const char *text = json_string_value (item);
    bool valid = text != NULL;
    const char *shape = "a string";
    if (valid)
        switch (kind) {
            case S_ID:
                valid = s_id_valid (text);
                shape = "1 to 128 characters of A-Z a-z 0-9 - . _ ~";
                break;
            case S_STATUS:
                valid = s_status_valid (text);
                shape = "1 to 32 characters of a-z and _";
                break;
            case S_CURRENCY:
                valid = s_currency_valid (text);
                shape = "a three-letter upper-case currency code";
                break;
            case S_TEXT:
                valid = strlen (text) <= WEBSHOP_TEXT_MAX;
                shape = "a string of at most 256 bytes";
                break;
            case S_TOKEN:
                valid = strlen (text) <= CW_TOKEN_SIZE_MAX;
                shape = "a string of at most 8192 bytes";
                break;
            case S_TIME:
                valid = cw_envelope_time_valid (text);
                shape = "an RFC 3339 date-time with offset";
                break;
        }
    if (!valid) {
        snprintf (detail, sizeof (detail), "field \"%s\" must be %s", field,
                  shape);
        s_reply_invalid (request, 422, field, detail);
        *failed = true;
        return NULL;
    }
    return text;
}

//  Reads integer member field (min..INT64_MAX). Returns 0 with *value, 1
//  when absent and optional, -1 after replying 422 naming the field.
static int
s_integer (cw_http_request_t *request, json_t *body, const char *field,
           bool required, int64_t min, int64_t *value)
{
    json_t *item = json_object_get (body, field);
    char detail[WEBSHOP_DETAIL_SIZE];
    if (!item || json_is_null (item)) {
        if (!required)
            return 1;
        snprintf (detail, sizeof (detail), "field \"%s\" is required",
                  field);
        s_reply_invalid (request, 422, field, detail);
        return -1;
    }
    if (!json_is_integer (item) || json_integer_value (item) < min) {
        snprintf (detail, sizeof (detail),
                  "field \"%s\" must be an integer >= %" PRId64, field, min);
        s_reply_invalid (request, 422, field, detail);
        return -1;
    }
    *value = (int64_t) json_integer_value (item);
    return 0;
}

//  Parses the body: must be a JSON object. NULL after replying.
static json_t *
s_body_object (cw_http_request_t *request)
{
    json_t *body = cw_http_request_json (request);
    if (body && !json_is_object (body)) {
        json_decref (body);
        s_reply_invalid (request, 400, "body", "body must be a JSON object");
        return NULL;
    }
    return body;
}

//  Checks the caller's bearer token. False after replying 401.
static bool
s_authorized (cw_webshop_t *self, cw_http_request_t *request)
{
    const char *header = cw_http_request_header (request, "Authorization");
    char error[WEBSHOP_DETAIL_SIZE];
    const char *token = NULL;
    if (header && strncasecmp (header, "Bearer ", 7) == 0)
        token = header + 7;
    cw_token_claims_t claims;
    if (!token) {
        snprintf (error, sizeof (error), "missing bearer token");
    }
    else
    if (cw_token_verify (self->verifier, token, (int64_t) time (NULL),
                         &claims, error, sizeof (error))
        == 0) {
        cw_log (CW_LOG_DEBUG, "caller_authenticated", "caller authenticated",
                "sub", claims.sub, "iss", claims.iss, "correlation_id",
                cw_http_request_correlation_id (request), NULL);
        cw_token_claims_reset (&claims);
        return true;
    }
    cw_log (CW_LOG_WARN, "caller_rejected", "rejected request without a "
                                            "valid token",
            "reason", error, "path", cw_http_request_path (request),
            "correlation_id", cw_http_request_correlation_id (request),
            NULL);
    cw_http_reply_header (request, "WWW-Authenticate",
                          "Bearer realm=\"webshop\"");
    cw_http_reply_problem (request, 401, "unauthorized",
                           "authentication required", error, NULL);
    return false;
}

//  Compares the Idempotency-Key header with the key built from the body.
//  header_required: a missing header is 400. False after replying.
static bool
s_key_matches (cw_http_request_t *request, const char *expected,
               bool header_required)
{
    const char *header = cw_http_request_header (request, "Idempotency-Key");
    if (!header) {
        if (!header_required)
            return true;
        s_reply_invalid (request, 400, "Idempotency-Key",
                         "header \"Idempotency-Key\" is required");
        return false;
    }
    if (strcmp (header, expected) != 0) {
        char detail[WEBSHOP_DETAIL_SIZE * 2];
        snprintf (detail, sizeof (detail),
                  "Idempotency-Key \"%.200s\" does not match the body "
                  "(expected \"%.255s\")",
                  header, expected);
        s_reply_invalid (request, 422, "Idempotency-Key", detail);
        return false;
    }
    return true;
}

//  ---------------------------------------------------------------------
//  The inbox: de-duplicate, apply, remember the response, in one
//  transaction

static void
s_deliver (cw_webshop_t *self, cw_http_request_t *request, const char *key,
           const char *message_type, const json_t *content,
           s_apply_fn *apply, void *args)
{
    char hash[crypto_hash_sha256_BYTES * 2 + 1];
    s_json_sha256 (content, hash);
    const char *correlation_id = cw_http_request_correlation_id (request);
    for (int attempt = 1; attempt <= WEBSHOP_ATTEMPTS; attempt++) {
        cw_pg_t *pg = cw_webshop_store_acquire (self->store);
        bool retry = false;
        if (cw_pg_begin (pg) != 0) {
            retry = true;
            goto failed;
        }
        //  A concurrent holder of the key makes this wait until it ends.
        int claimed = cw_webshop_store_inbox_claim (pg, key, message_type,
                                                    hash, correlation_id);
        if (claimed < 0) {
            retry = true;
            goto failed;
        }
        if (claimed == 0) {
            cw_pg_rollback (pg);
            int status = 0;
            char *stored = NULL;
            char *stored_hash = NULL;
            int found = cw_webshop_store_inbox_get (pg, key, &status, &stored,
                                                    &stored_hash);
            cw_webshop_store_release (self->store, pg);
            if (found == 1 && stored_hash && strcmp (stored_hash, hash) != 0)
                s_reply_invalid (request, 422, "Idempotency-Key",
                                 "idempotency key was already used with a "
                                 "different body");
            else
            if (found == 1 && stored && status > 0) {
                cw_log (CW_LOG_INFO, "duplicate_acknowledged",
                        "acknowledged duplicate delivery", "idempotency_key",
                        key, "correlation_id", correlation_id, NULL);
                cw_http_reply_header (request, "Idempotent-Replayed", "true");
                cw_http_reply_bytes (request, status, "application/json",
                                     stored, strlen (stored));
            }
            else
            if (found == 0 && attempt < WEBSHOP_ATTEMPTS) {
                //  The holder rolled back between our claim and our read.
                free (stored);
                free (stored_hash);
                continue;
            }
            else
                s_reply_unavailable (request);
            free (stored);
            free (stored_hash);
            return;
        }
        s_outcome_t outcome;
        memset (&outcome, 0, sizeof (outcome));
        if (apply (self, pg, args, &outcome) != 0) {
            json_decref (outcome.body);
            retry = true;
            goto failed;
        }
        if (outcome.status >= 400) {
            //  Rejected: nothing is remembered, a corrected retry may pass.
            cw_webshop_store_release (self->store, pg);
            json_t *extensions =
                outcome.field ? json_pack ("{s:s}", "field", outcome.field)
                              : NULL;
            cw_http_reply_problem (request, outcome.status, outcome.slug,
                                   outcome.title, outcome.detail, extensions);
            json_decref (extensions);
            json_decref (outcome.body);
            cw_log (CW_LOG_WARN, "delivery_rejected", outcome.detail,
                    "idempotency_key", key, "correlation_id", correlation_id,
                    NULL);
            return;
        }
        char *text = json_dumps (outcome.body, JSON_COMPACT);
        json_decref (outcome.body);
        if (cw_webshop_store_inbox_finish (pg, key, outcome.status, text) != 0
            || cw_pg_commit (pg) != 0) {
            free (text);
            retry = true;
            goto failed;
        }
        cw_webshop_store_release (self->store, pg);
        cw_log (CW_LOG_INFO, "delivery_applied", "applied delivery",
                "idempotency_key", key, "message_type", message_type,
                "correlation_id", correlation_id, NULL);
        cw_http_reply_bytes (request, outcome.status, "application/json",
                             text, strlen (text));
        free (text);
        return;
    failed:;
        cw_pg_failure_t failure = cw_pg_failure (pg);
        cw_webshop_store_release (self->store, pg);
        if (!retry || (failure != CW_PG_SERIALIZATION
                       && failure != CW_PG_UNIQUE
                       && failure != CW_PG_CONNECTION))
            break;
    }
    s_reply_unavailable (request);
}

//  ---------------------------------------------------------------------
//  POST /webshop/orders/{orderId}/payment-status

typedef struct {
    const char *order_id;
    const char *status;
    int64_t external_version;
    int64_t amount_minor;
    const char *currency;
} s_payment_t;

static void
s_unknown_order (s_outcome_t *outcome, const char *order_id)
{
    outcome->status = 404;
    outcome->slug = "unknown-order";
    outcome->title = "unknown order";
    outcome->field = "orderId";
    snprintf (outcome->detail, sizeof (outcome->detail),
              "order \"%s\" does not exist", order_id);
}

//  Finds the tenant of an order. Returns 0 with *tenant_id (caller
//  frees), 1 with a 404/409 outcome, -1 on a database error.
static int
s_order_tenant (cw_pg_t *pg, const char *order_id, char **tenant_id,
                s_outcome_t *outcome)
{
    int found = cw_webshop_store_order_tenant (pg, order_id, tenant_id);
    if (found < 0)
        return -1;
    if (found == 0) {
        s_unknown_order (outcome, order_id);
        return 1;
    }
    if (found == 2) {
        outcome->status = 409;
        outcome->slug = "ambiguous-order";
        outcome->title = "ambiguous order id";
        outcome->field = "orderId";
        snprintf (outcome->detail, sizeof (outcome->detail),
                  "order id \"%s\" is used by several tenants", order_id);
        return 1;
    }
    return 0;
}

static int
s_apply_payment (cw_webshop_t *self, cw_pg_t *pg, void *args,
                 s_outcome_t *outcome)
{
    (void) self;
    s_payment_t *payment = (s_payment_t *) args;
    char *tenant_id = NULL;
    int found = s_order_tenant (pg, payment->order_id, &tenant_id, outcome);
    if (found != 0)
        return found < 0 ? -1 : 0;
    int64_t current = 0;
    int applied = cw_webshop_store_payment_apply (
        pg, tenant_id, payment->order_id, payment->status,
        payment->external_version, payment->amount_minor, payment->currency,
        &current);
    free (tenant_id);
    if (applied < 0)
        return -1;
    outcome->status = 200;
    outcome->body = json_pack ("{s:s, s:s, s:I, s:b, s:I}", "orderId",
                               payment->order_id, "status", payment->status,
                               "externalVersion",
                               (json_int_t) payment->external_version,
                               "applied", applied, "currentVersion",
                               (json_int_t) current);
    if (!applied)
        json_object_set_new (outcome->body, "reason",
                             json_string ("stale version"));
    return 0;
}

static void
s_post_payment_status (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    if (!s_authorized (self, request))
        return;
    json_t *body = s_body_object (request);
    if (!body)
        return;
    s_payment_t payment = {0};
    bool failed = false;
    payment.order_id = cw_http_request_param (request, "orderId");
    const char *body_order =
        s_string (request, body, "orderId", S_ID, false, &failed);
    if (!failed && !s_id_valid (payment.order_id)) {
        s_reply_invalid (request, 422, "orderId",
                         "path orderId must be 1 to 128 characters of "
                         "A-Z a-z 0-9 - . _ ~");
        failed = true;
    }
    if (!failed && body_order && strcmp (body_order, payment.order_id) != 0) {
        s_reply_invalid (request, 422, "orderId",
                         "field \"orderId\" does not match the path");
        failed = true;
    }
    if (!failed)
        payment.status =
            s_string (request, body, "status", S_STATUS, true, &failed);
    if (!failed
        && s_integer (request, body, "externalVersion", true, 0,
                      &payment.external_version)
               < 0)
        failed = true;
    if (!failed
        && s_integer (request, body, "amountMinor", true, INT64_MIN,
                      &payment.amount_minor)
               < 0)
        failed = true;
    if (!failed)
        payment.currency =
            s_string (request, body, "currency", S_CURRENCY, true, &failed);
    char *key = NULL;
    if (!failed) {
        char reason[WEBSHOP_DETAIL_SIZE];
        key = cw_idkey_payment_status (payment.order_id, payment.status,
                                       (uint64_t) payment.external_version,
                                       reason, sizeof (reason));
        if (!key) {
            s_reply_invalid (request, 422, "body", reason);
            failed = true;
        }
    }
    if (!failed && s_key_matches (request, key, true))
        s_deliver (self, request, key, "payment-status", body,
                   s_apply_payment, &payment);
    free (key);
    json_decref (body);
}

//  ---------------------------------------------------------------------
//  POST /webshop/orders/{orderId}/invoice-available

typedef struct {
    const char *order_id;
    const char *invoice_number;
    const char *invoice_id;
    int64_t external_version;
    const char *document_url;
    const char *document_token;
} s_invoice_t;

static int
s_apply_invoice (cw_webshop_t *self, cw_pg_t *pg, void *args,
                 s_outcome_t *outcome)
{
    (void) self;
    s_invoice_t *invoice = (s_invoice_t *) args;
    char *tenant_id = NULL;
    int found = s_order_tenant (pg, invoice->order_id, &tenant_id, outcome);
    if (found != 0)
        return found < 0 ? -1 : 0;
    int applied = cw_webshop_store_invoice_apply (
        pg, tenant_id, invoice->order_id, invoice->invoice_number,
        invoice->invoice_id, invoice->external_version,
        invoice->document_url, invoice->document_token);
    free (tenant_id);
    if (applied < 0)
        return -1;
    outcome->status = 200;
    outcome->body = json_pack (
        "{s:s, s:s, s:I, s:b}", "orderId", invoice->order_id,
        "invoiceNumber", invoice->invoice_number, "externalVersion",
        (json_int_t) invoice->external_version, "applied", applied);
    if (!applied)
        json_object_set_new (outcome->body, "reason",
                             json_string ("stale version"));
    return 0;
}

//  Reads the invoice fields of body (the push body or an event's data).
//  False after replying.
static bool
s_read_invoice (cw_http_request_t *request, json_t *body,
                s_invoice_t *invoice)
{
    bool failed = false;
    invoice->invoice_number =
        s_string (request, body, "invoiceNumber", S_ID, true, &failed);
    if (failed
        || s_integer (request, body, "externalVersion", true, 0,
                      &invoice->external_version)
               < 0)
        return false;
    invoice->document_url =
        s_string (request, body, "documentUrl", S_TEXT, true, &failed);
    if (!failed && strncmp (invoice->document_url, "http://", 7) != 0
        && strncmp (invoice->document_url, "https://", 8) != 0) {
        s_reply_invalid (request, 422, "documentUrl",
                         "field \"documentUrl\" must be an http or https "
                         "URL");
        return false;
    }
    if (!failed)
        invoice->document_token = s_string (request, body, "documentToken",
                                            S_TOKEN, false, &failed);
    if (!failed)
        invoice->invoice_id =
            s_string (request, body, "invoiceId", S_ID, false, &failed);
    return !failed;
}

//  Checks that body's optional orderId equals the path's. False after
//  replying.
static bool
s_path_order (cw_http_request_t *request, json_t *body, const char **order_id)
{
    *order_id = cw_http_request_param (request, "orderId");
    if (!s_id_valid (*order_id)) {
        s_reply_invalid (request, 422, "orderId",
                         "path orderId must be 1 to 128 characters of "
                         "A-Z a-z 0-9 - . _ ~");
        return false;
    }
    json_t *item = json_object_get (body, "orderId");
    if (item && (!json_is_string (item)
                 || strcmp (json_string_value (item), *order_id) != 0)) {
        s_reply_invalid (request, 422, "orderId",
                         "field \"orderId\" does not match the path");
        return false;
    }
    return true;
}

static void
s_post_invoice_available (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    if (!s_authorized (self, request))
        return;
    json_t *body = s_body_object (request);
    if (!body)
        return;
    s_invoice_t invoice = {0};
    char *key = NULL;
    if (s_path_order (request, body, &invoice.order_id)
        && s_read_invoice (request, body, &invoice)) {
        char reason[WEBSHOP_DETAIL_SIZE];
        key = cw_idkey_invoice (invoice.order_id, invoice.invoice_number,
                                (uint64_t) invoice.external_version, reason,
                                sizeof (reason));
        if (!key)
            s_reply_invalid (request, 422, "body", reason);
        else
        if (s_key_matches (request, key, true))
            s_deliver (self, request, key, "invoice-available", body,
                       s_apply_invoice, &invoice);
    }
    free (key);
    json_decref (body);
}

//  ---------------------------------------------------------------------
//  POST /webshop/products/prices

typedef struct {
    const char *article_number;
    const char *price_list;
    int64_t external_version;
    int64_t amount_minor;
    const char *currency;
    const char *effective_at;
} s_price_t;

static int
s_apply_price (cw_webshop_t *self, cw_pg_t *pg, void *args,
               s_outcome_t *outcome)
{
    (void) self;
    s_price_t *price = (s_price_t *) args;
    int64_t current = 0;
    int applied = cw_webshop_store_price_apply (
        pg, price->article_number, price->price_list,
        price->external_version, price->amount_minor, price->currency,
        price->effective_at, &current);
    if (applied < 0)
        return -1;
    outcome->status = 200;
    outcome->body = json_pack (
        "{s:s, s:s, s:I, s:b, s:I}", "articleNumber", price->article_number,
        "priceList", price->price_list, "externalVersion",
        (json_int_t) price->external_version, "applied", applied,
        "currentVersion", (json_int_t) current);
    if (!applied)
        json_object_set_new (outcome->body, "reason",
                             json_string ("stale version"));
    return 0;
}

//  Reads a price from body (the push body or an event's data).
static bool
s_read_price (cw_http_request_t *request, json_t *body, s_price_t *price)
{
    bool failed = false;
    price->article_number =
        s_string (request, body, "articleNumber", S_ID, true, &failed);
    if (!failed)
        price->price_list =
            s_string (request, body, "priceList", S_ID, true, &failed);
    if (failed
        || s_integer (request, body, "externalVersion", true, 0,
                      &price->external_version)
               < 0
        || s_integer (request, body, "amountMinor", true, 0,
                      &price->amount_minor)
               < 0)
        return false;
    price->currency =
        s_string (request, body, "currency", S_CURRENCY, true, &failed);
    if (!failed)
        price->effective_at =
            s_string (request, body, "effectiveAt", S_TIME, false, &failed);
    return !failed;
}

static void
s_post_prices (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    if (!s_authorized (self, request))
        return;
    json_t *body = s_body_object (request);
    if (!body)
        return;
    s_price_t price = {0};
    char *key = NULL;
    if (s_read_price (request, body, &price)) {
        char reason[WEBSHOP_DETAIL_SIZE];
        key = cw_idkey_price (price.article_number, price.price_list,
                              (uint64_t) price.external_version, reason,
                              sizeof (reason));
        if (!key)
            s_reply_invalid (request, 422, "body", reason);
        else
        if (s_key_matches (request, key, true))
            s_deliver (self, request, key, "price", body, s_apply_price,
                       &price);
    }
    free (key);
    json_decref (body);
}

//  ---------------------------------------------------------------------
//  POST /webshop/events: erp.*.v1 CloudEvents in structured JSON mode

typedef struct {
    const char *kind;           //  "customer" or "order"
    const char *tenant_id;
    const char *id;
    const char *external_id;
    const char *sync_status;
} s_synced_t;

static int
s_apply_synced (cw_webshop_t *self, cw_pg_t *pg, void *args,
                s_outcome_t *outcome)
{
    (void) self;
    s_synced_t *synced = (s_synced_t *) args;
    bool customer = strcmp (synced->kind, "customer") == 0;
    int changed = customer ? cw_webshop_store_customer_synced (
                                 pg, synced->tenant_id, synced->id,
                                 synced->external_id)
                           : cw_webshop_store_order_synced (
                                 pg, synced->tenant_id, synced->id,
                                 synced->external_id);
    if (changed < 0)
        return -1;
    if (changed == 0) {
        outcome->status = 404;
        outcome->slug = customer ? "unknown-customer" : "unknown-order";
        outcome->title = customer ? "unknown customer" : "unknown order";
        outcome->field = customer ? "customerId" : "orderId";
        snprintf (outcome->detail, sizeof (outcome->detail),
                  "%s \"%s\" of tenant \"%s\" does not exist", synced->kind,
                  synced->id, synced->tenant_id);
        return 0;
    }
    outcome->status = 200;
    outcome->body = json_pack ("{s:s, s:s, s:s, s:b}", "kind", synced->kind,
                               "id", synced->id, "externalId",
                               synced->external_id, "applied", 1);
    return 0;
}

static void
s_post_events (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    if (!s_authorized (self, request))
        return;
    char reason[CW_ENVELOPE_REASON_SIZE];
    cw_envelope_t *event = cw_envelope_decode_json (
        cw_http_request_body (request), cw_http_request_body_size (request),
        reason, sizeof (reason));
    if (!event) {
        s_reply_invalid (request, 400, "envelope", reason);
        return;
    }
    const char *type = cw_envelope_type (event);
    const char *key = cw_envelope_idempotency_key (event);
    json_t *data = cw_envelope_data (event);
    bool failed = false;
    if (!s_key_matches (request, key, false))
        failed = true;
    else
    if (strcmp (type, "erp.customer.synced.v1") == 0
        || strcmp (type, "erp.order.synced.v1") == 0) {
        bool customer = type[4] == 'c';
        s_synced_t synced = {.kind = customer ? "customer" : "order"};
        synced.tenant_id =
            s_string (request, data, "tenantId", S_ID, true, &failed);
        if (!failed)
            synced.id = s_string (request, data,
                                  customer ? "customerId" : "orderId", S_ID,
                                  true, &failed);
        if (!failed)
            synced.external_id =
                s_string (request, data, "externalId", S_ID, true, &failed);
        if (!failed)
            synced.sync_status =
                s_string (request, data, "syncStatus", S_STATUS, true,
                          &failed);
        if (!failed && strcmp (synced.tenant_id,
                               cw_envelope_tenant_id (event))
                           != 0) {
            s_reply_invalid (request, 422, "tenantId",
                             "field \"tenantId\" does not match the "
                             "envelope's tenantid");
            failed = true;
        }
        if (!failed)
            s_deliver (self, request, key, type, data, s_apply_synced,
                       &synced);
    }
    else
    if (strcmp (type, "erp.invoice.available.v1") == 0) {
        s_invoice_t invoice = {0};
        invoice.order_id =
            s_string (request, data, "orderId", S_ID, true, &failed);
        if (!failed && s_read_invoice (request, data, &invoice))
            s_deliver (self, request, key, type, data, s_apply_invoice,
                       &invoice);
    }
    else
    if (strcmp (type, "erp.price.updated.v1") == 0) {
        s_price_t price = {0};
        if (s_read_price (request, data, &price))
            s_deliver (self, request, key, type, data, s_apply_price,
                       &price);
    }
    else {
        char detail[WEBSHOP_DETAIL_SIZE];
        snprintf (detail, sizeof (detail),
                  "event type \"%s\" is not supported (supported: "
                  "erp.customer.synced.v1, erp.order.synced.v1, "
                  "erp.invoice.available.v1, erp.price.updated.v1)",
                  type);
        s_reply_invalid (request, 400, "type", detail);
    }
    cw_envelope_destroy (&event);
}

//  ---------------------------------------------------------------------
//  The shop's own API: domain rows + outbox event in one transaction

//  Builds an envelope around data (taken) and adds it to the outbox.
//  Fills event_id[33]. Returns 0 or -1.
static int
s_outbox_event (cw_webshop_t *self, cw_pg_t *pg, const char *type,
                const char *tenant_id, const char *key,
                const char *correlation_id, json_t *data, char *event_id)
{
    unsigned char random[WEBSHOP_EVENT_ID_BYTES];
    randombytes_buf (random, sizeof (random));
    sodium_bin2hex (event_id, WEBSHOP_EVENT_ID_BYTES * 2 + 1, random,
                    sizeof (random));
    char now[40];
    s_now_text (now, sizeof (now));
    cw_envelope_t *event = cw_envelope_new ();
    cw_envelope_set_id (event, event_id);
    cw_envelope_set_source (event, self->source);
    cw_envelope_set_type (event, type);
    cw_envelope_set_time (event, now);
    cw_envelope_set_tenant_id (event, tenant_id);
    cw_envelope_set_correlation_id (event, correlation_id);
    cw_envelope_set_idempotency_key (event, key);
    cw_envelope_set_data (event, &data);
    char reason[CW_ENVELOPE_REASON_SIZE];
    char *text = cw_envelope_encode_json (event, reason, sizeof (reason));
    cw_envelope_destroy (&event);
    if (!text) {
        cw_log (CW_LOG_ERROR, "event_invalid", "could not encode event",
                "type", type, "reason", reason, NULL);
        return -1;
    }
    int rc = cw_webshop_store_outbox_add (pg, type, tenant_id, key,
                                          correlation_id, text);
    free (text);
    return rc;
}

//  Runs body in a transaction with retries; replies 503 when it fails.
//  run returns 0 committed-ready (reply prepared in outcome), -1 error.
typedef int (s_run_fn) (cw_webshop_t *self, cw_pg_t *pg,
                        cw_http_request_t *request, json_t *body,
                        s_outcome_t *outcome);

static void
s_transaction (cw_webshop_t *self, cw_http_request_t *request, json_t *body,
               s_run_fn *run)
{
    for (int attempt = 1; attempt <= WEBSHOP_ATTEMPTS; attempt++) {
        cw_pg_t *pg = cw_webshop_store_acquire (self->store);
        s_outcome_t outcome;
        memset (&outcome, 0, sizeof (outcome));
        if (cw_pg_begin (pg) == 0 && run (self, pg, request, body, &outcome) == 0
            && (outcome.status >= 400 || cw_pg_commit (pg) == 0)) {
            cw_webshop_store_release (self->store, pg);
            if (outcome.status >= 400) {
                json_t *extensions =
                    outcome.field ? json_pack ("{s:s}", "field", outcome.field)
                                  : NULL;
                cw_http_reply_problem (request, outcome.status, outcome.slug,
                                       outcome.title, outcome.detail,
                                       extensions);
                json_decref (extensions);
            }
            else
                cw_http_reply_json (request, outcome.status, outcome.body);
            json_decref (outcome.body);
            return;
        }
        json_decref (outcome.body);
        cw_pg_failure_t failure = cw_pg_failure (pg);
        cw_webshop_store_release (self->store, pg);
        if (failure != CW_PG_SERIALIZATION && failure != CW_PG_CONNECTION)
            break;
    }
    s_reply_unavailable (request);
}

static int
s_run_customer (cw_webshop_t *self, cw_pg_t *pg, cw_http_request_t *request,
                json_t *body, s_outcome_t *outcome)
{
    const char *tenant_id = json_string_value (json_object_get (body,
                                                                "tenantId"));
    const char *customer_id =
        json_string_value (json_object_get (body, "customerId"));
    const char *email = json_string_value (json_object_get (body, "email"));
    const char *name = json_string_value (json_object_get (body, "name"));
    int64_t version = 0;
    json_t *changed = json_array ();
    int upserted = cw_webshop_store_customer_upsert (
        pg, tenant_id, customer_id, email, name, &version, changed);
    if (upserted <= 0) {
        json_decref (changed);
        if (upserted == 0) {
            //  Nothing changed: no new version, no event.
            outcome->status = 200;
            outcome->body = json_pack (
                "{s:s, s:s, s:I, s:b}", "tenantId", tenant_id, "customerId",
                customer_id, "version", (json_int_t) version, "changed", 0);
        }
        return upserted;
    }
    char reason[WEBSHOP_DETAIL_SIZE];
    char *key = cw_idkey_customer (tenant_id, customer_id, (uint64_t) version,
                                   reason, sizeof (reason));
    if (!key) {
        json_decref (changed);
        return -1;
    }
    json_t *data = json_pack ("{s:s, s:s, s:I, s:o, s:s, s:s}", "tenantId",
                              tenant_id, "customerId", customer_id, "version",
                              (json_int_t) version, "changedFields", changed,
                              "email", email, "name", name);
    char event_id[WEBSHOP_EVENT_ID_BYTES * 2 + 1];
    int rc = s_outbox_event (self, pg, "customer.upsert.requested.v1",
                             tenant_id, key,
                             cw_http_request_correlation_id (request), data,
                             event_id);
    if (rc == 0) {
        outcome->status = version == 1 ? 201 : 200;
        outcome->body = json_pack (
            "{s:s, s:s, s:I, s:b, s:s, s:s}", "tenantId", tenant_id,
            "customerId", customer_id, "version", (json_int_t) version,
            "changed", 1, "eventId", event_id, "idempotencyKey", key);
    }
    free (key);
    return rc;
}

static void
s_post_customers (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    json_t *body = s_body_object (request);
    if (!body)
        return;
    bool failed = false;
    s_string (request, body, "tenantId", S_ID, true, &failed);
    if (!failed)
        s_string (request, body, "customerId", S_ID, true, &failed);
    if (!failed)
        s_string (request, body, "email", S_TEXT, true, &failed);
    if (!failed)
        s_string (request, body, "name", S_TEXT, true, &failed);
    if (!failed)
        s_transaction (self, request, body, s_run_customer);
    json_decref (body);
}

static int
s_run_order (cw_webshop_t *self, cw_pg_t *pg, cw_http_request_t *request,
             json_t *body, s_outcome_t *outcome)
{
    const char *tenant_id = json_string_value (json_object_get (body,
                                                                "tenantId"));
    const char *order_id = json_string_value (json_object_get (body,
                                                               "orderId"));
    const char *customer_id =
        json_string_value (json_object_get (body, "customerId"));
    const char *currency = json_string_value (json_object_get (body,
                                                               "currency"));
    json_t *lines = json_object_get (body, "lines");
    //  Totals: the validator has checked that nothing overflows.
    int64_t total = 0;
    size_t index;
    json_t *line;
    json_t *event_lines = json_array ();
    json_array_foreach (lines, index, line) {
        int64_t quantity = json_integer_value (json_object_get (line,
                                                                "quantity"));
        int64_t price =
            json_integer_value (json_object_get (line, "unitPriceMinor"));
        total += quantity * price;
        json_array_append_new (
            event_lines,
            json_pack ("{s:I, s:s, s:I, s:I, s:I}", "lineNumber",
                       (json_int_t) index + 1, "articleNumber",
                       json_string_value (
                           json_object_get (line, "articleNumber")),
                       "quantity", (json_int_t) quantity, "unitPriceMinor",
                       (json_int_t) price, "lineTotalMinor",
                       (json_int_t) (quantity * price)));
    }
    int created = cw_webshop_store_customer_exists (pg, tenant_id,
                                                    customer_id);
    if (created == 0) {
        json_decref (event_lines);
        outcome->status = 422;
        outcome->slug = "unknown-customer";
        outcome->title = "unknown customer";
        outcome->field = "customerId";
        snprintf (outcome->detail, sizeof (outcome->detail),
                  "customer \"%s\" of tenant \"%s\" does not exist",
                  customer_id, tenant_id);
        return 0;
    }
    //  Order ids are unique across tenants: the ERP pushes name none.
    char *owner = NULL;
    if (created > 0)
        created = cw_webshop_store_order_tenant (pg, order_id, &owner);
    free (owner);
    if (created > 0)
        created = 0;
    else
    if (created == 0)
        created = cw_webshop_store_order_create (
            pg, tenant_id, order_id, customer_id, currency, total, "placed");
    if (created <= 0) {
        json_decref (event_lines);
        if (created == 0) {
            outcome->status = 409;
            outcome->slug = "order-exists";
            outcome->title = "order exists";
            outcome->field = "orderId";
            snprintf (outcome->detail, sizeof (outcome->detail),
                      "order \"%s\" exists already; change it with POST "
                      "/shop/orders/{orderId}/status",
                      order_id);
            return 0;
        }
        return -1;
    }
    json_array_foreach (lines, index, line) {
        if (cw_webshop_store_order_line_add (
                pg, tenant_id, order_id, (int) index + 1,
                json_string_value (json_object_get (line, "articleNumber")),
                json_integer_value (json_object_get (line, "quantity")),
                json_integer_value (
                    json_object_get (line, "unitPriceMinor")))) {
            json_decref (event_lines);
            return -1;
        }
    }
    char reason[WEBSHOP_DETAIL_SIZE];
    char *key = cw_idkey_order (tenant_id, order_id, 1, reason,
                                sizeof (reason));
    if (!key) {
        json_decref (event_lines);
        return -1;
    }
    json_t *data = json_pack (
        "{s:s, s:s, s:I, s:s, s:s, s:o, s:{s:I, s:s}}", "tenantId", tenant_id,
        "orderId", order_id, "version", (json_int_t) 1, "customerId",
        customer_id, "currency", currency, "lines", event_lines, "totals",
        "totalMinor", (json_int_t) total, "currency", currency);
    char event_id[WEBSHOP_EVENT_ID_BYTES * 2 + 1];
    int rc = s_outbox_event (self, pg, "order.created.v1", tenant_id, key,
                             cw_http_request_correlation_id (request), data,
                             event_id);
    if (rc == 0) {
        outcome->status = 201;
        outcome->body = json_pack (
            "{s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "tenantId", tenant_id,
            "orderId", order_id, "version", (json_int_t) 1, "totalMinor",
            (json_int_t) total, "currency", currency, "eventId", event_id,
            "idempotencyKey", key);
    }
    free (key);
    return rc;
}

static void
s_post_orders (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    json_t *body = s_body_object (request);
    if (!body)
        return;
    bool failed = false;
    s_string (request, body, "tenantId", S_ID, true, &failed);
    if (!failed)
        s_string (request, body, "orderId", S_ID, true, &failed);
    if (!failed)
        s_string (request, body, "customerId", S_ID, true, &failed);
    if (!failed)
        s_string (request, body, "currency", S_CURRENCY, true, &failed);
    json_t *lines = json_object_get (body, "lines");
    if (!failed
        && (!json_is_array (lines) || json_array_size (lines) == 0
            || json_array_size (lines) > WEBSHOP_LINES_MAX)) {
        s_reply_invalid (request, 422, "lines",
                         "field \"lines\" must be an array of 1 to 500 "
                         "lines");
        failed = true;
    }
    //  Each line: articleNumber, quantity >= 1, unitPriceMinor >= 0, and
    //  the order total must fit in 64 bits.
    int64_t total = 0;
    size_t index;
    json_t *line;
    if (!failed)
        json_array_foreach (lines, index, line) {
            char field[64];
            int64_t quantity = 0, price = 0;
            if (!json_is_object (line)) {
                snprintf (field, sizeof (field), "lines[%zu]", index);
                s_reply_invalid (request, 422, field,
                                 "each line must be an object");
                failed = true;
                break;
            }
            s_string (request, line, "articleNumber", S_ID, true, &failed);
            if (failed
                || s_integer (request, line, "quantity", true, 1, &quantity)
                       < 0
                || (quantity > INT32_MAX
                    && (s_reply_invalid (request, 422, "quantity",
                                         "field \"quantity\" must be at "
                                         "most 2147483647"),
                        true))
                || s_integer (request, line, "unitPriceMinor", true, 0,
                              &price)
                       < 0) {
                failed = true;
                break;
            }
            int64_t line_total;
            if (__builtin_mul_overflow (quantity, price, &line_total)
                || __builtin_add_overflow (total, line_total, &total)) {
                s_reply_invalid (request, 422, "lines",
                                 "order total does not fit in 64 bits");
                failed = true;
                break;
            }
        }
    if (!failed)
        s_transaction (self, request, body, s_run_order);
    json_decref (body);
}

static int
s_run_status (cw_webshop_t *self, cw_pg_t *pg, cw_http_request_t *request,
              json_t *body, s_outcome_t *outcome)
{
    const char *order_id = cw_http_request_param (request, "orderId");
    const char *status = json_string_value (json_object_get (body, "status"));
    char *tenant_id = NULL;
    char *previous = NULL;
    int64_t version = 0;
    int changed = cw_webshop_store_order_set_status (
        pg, order_id, status, &tenant_id, &previous, &version);
    if (changed != 1) {
        free (tenant_id);
        free (previous);
        if (changed == 0)
            s_unknown_order (outcome, order_id);
        else
        if (changed == 2) {
            outcome->status = 409;
            outcome->slug = "ambiguous-order";
            outcome->title = "ambiguous order id";
            outcome->field = "orderId";
            snprintf (outcome->detail, sizeof (outcome->detail),
                      "order id \"%s\" is used by several tenants",
                      order_id);
        }
        return changed < 0 ? -1 : 0;
    }
    char reason[WEBSHOP_DETAIL_SIZE];
    char *key = cw_idkey_order_status (tenant_id, order_id, status,
                                       (uint64_t) version, reason,
                                       sizeof (reason));
    int rc = -1;
    if (key) {
        char now[40];
        s_now_text (now, sizeof (now));
        json_t *data = json_pack (
            "{s:s, s:s, s:I, s:s, s:s, s:s}", "tenantId", tenant_id,
            "orderId", order_id, "version", (json_int_t) version,
            "previousStatus", previous, "status", status, "changedAt", now);
        char event_id[WEBSHOP_EVENT_ID_BYTES * 2 + 1];
        rc = s_outbox_event (self, pg, "order.status.changed.v1", tenant_id,
                             key,
                             cw_http_request_correlation_id (request), data,
                             event_id);
        if (rc == 0) {
            outcome->status = 200;
            outcome->body = json_pack (
                "{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "tenantId", tenant_id,
                "orderId", order_id, "previousStatus", previous, "status",
                status, "version", (json_int_t) version, "eventId", event_id,
                "idempotencyKey", key);
        }
    }
    free (key);
    free (tenant_id);
    free (previous);
    return rc;
}

static void
s_post_order_status (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    json_t *body = s_body_object (request);
    if (!body)
        return;
    bool failed = false;
    const char *order_id;
    if (s_path_order (request, body, &order_id)) {
        s_string (request, body, "status", S_STATUS, true, &failed);
        if (!failed)
            s_transaction (self, request, body, s_run_status);
    }
    json_decref (body);
}

//  ---------------------------------------------------------------------
//  Customer invoice endpoints

static void
s_get_invoices (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    const char *order_id = cw_http_request_param (request, "orderId");
    if (!s_id_valid (order_id)) {
        s_reply_invalid (request, 400, "orderId", "invalid order id");
        return;
    }
    cw_pg_t *pg = cw_webshop_store_acquire (self->store);
    char *tenant_id = NULL;
    int exists = cw_webshop_store_order_tenant (pg, order_id, &tenant_id);
    json_t *list = exists == 1
                       ? cw_webshop_store_invoices (pg, tenant_id, order_id)
                       : NULL;
    cw_webshop_store_release (self->store, pg);
    free (tenant_id);
    if (exists == 0 || exists == 2) {
        s_reply_invalid (request, exists ? 409 : 404, "orderId",
                         exists ? "order id is used by several tenants"
                                : "order does not exist");
        return;
    }
    if (!list) {
        s_reply_unavailable (request);
        return;
    }
    size_t index;
    json_t *item;
    json_array_foreach (list, index, item) {
        char href[512];
        snprintf (href, sizeof (href),
                  "/webshop/orders/%s/invoices/%s/document", order_id,
                  json_string_value (json_object_get (item, "invoiceNumber")));
        json_object_set_new (item, "documentHref", json_string (href));
    }
    json_t *reply = json_pack ("{s:s, s:o}", "orderId", order_id, "invoices",
                               list);
    cw_http_reply_json (request, 200, reply);
    json_decref (reply);
}

typedef struct {
    unsigned char *data;        //  Bytes so far
    size_t size;                //  How many
    bool too_large;             //  Past CW_WEBSHOP_DOCUMENT_MAX
} s_buffer_t;

static size_t
s_fetch_write (char *data, size_t size, size_t count, void *arg)
{
    s_buffer_t *buffer = (s_buffer_t *) arg;
    size_t length = size * count;
    if (buffer->size + length > CW_WEBSHOP_DOCUMENT_MAX) {
        buffer->too_large = true;
        return 0;
    }
    unsigned char *grown =
        (unsigned char *) realloc (buffer->data, buffer->size + length + 1);
    if (!grown)
        abort ();
    buffer->data = grown;
    memcpy (buffer->data + buffer->size, data, length);
    buffer->size += length;
    return length;
}

//  Fetches url with an optional bearer token. Returns 0 with the bytes
//  and content type (caller frees both), or -1 with a reason.
static int
s_fetch (cw_webshop_t *self, const char *url, const char *token,
         const char *correlation_id, s_buffer_t *buffer,
         char **content_type, char *reason, size_t size)
{
    CURL *curl = curl_easy_init ();
    if (!curl)
        abort ();
    char error[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char header[CW_TOKEN_SIZE_MAX + 64];
    if (token) {
        snprintf (header, sizeof (header), "Authorization: Bearer %s", token);
        headers = curl_slist_append (headers, header);
    }
    snprintf (header, sizeof (header), "X-Correlation-ID: %s",
              correlation_id);
    headers = curl_slist_append (headers, header);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, self->fetch_timeout_msec);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS,
                      self->fetch_timeout_msec);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_fetch_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, buffer);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    CURLcode code = curl_easy_perform (curl);
    long status = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    char *type = NULL;
    curl_easy_getinfo (curl, CURLINFO_CONTENT_TYPE, &type);
    int rc = -1;
    if (buffer->too_large)
        snprintf (reason, size, "document is larger than %d bytes",
                  CW_WEBSHOP_DOCUMENT_MAX);
    else
    if (code != CURLE_OK)
        snprintf (reason, size, "could not fetch document: %s",
                  *error ? error : curl_easy_strerror (code));
    else
    if (status != 200)
        snprintf (reason, size, "could not fetch document: HTTP %ld", status);
    else
    if (buffer->size == 0)
        snprintf (reason, size, "could not fetch document: empty body");
    else {
        *content_type = s_strdup (type ? type : "application/pdf");
        rc = 0;
    }
    curl_slist_free_all (headers);
    curl_easy_cleanup (curl);
    return rc;
}

static void
s_get_document (cw_http_request_t *request, void *arg)
{
    cw_webshop_t *self = (cw_webshop_t *) arg;
    const char *order_id = cw_http_request_param (request, "orderId");
    const char *invoice_number =
        cw_http_request_param (request, "invoiceNumber");
    if (!s_id_valid (order_id) || !s_id_valid (invoice_number)) {
        s_reply_invalid (request, 400,
                         s_id_valid (order_id) ? "invoiceNumber" : "orderId",
                         "invalid order id or invoice number");
        return;
    }
    unsigned char *document = NULL;
    size_t size = 0;
    char *url = NULL, *token = NULL, *tenant_id = NULL;
    cw_pg_t *pg = cw_webshop_store_acquire (self->store);
    int found = cw_webshop_store_order_tenant (pg, order_id, &tenant_id);
    if (found == 1)
        found = cw_webshop_store_document_get (pg, tenant_id, order_id,
                                               invoice_number, &document,
                                               &size, &url, &token);
    else
    if (found == 2)
        found = 0;
    cw_webshop_store_release (self->store, pg);
    if (found < 0)
        s_reply_unavailable (request);
    else
    if (found == 0)
        s_reply_invalid (request, 404, "invoiceNumber",
                         "no such invoice for this order");
    else
    if (document) {
        cw_http_reply_bytes (request, 200, "application/pdf", document,
                             size);
    }
    else {
        s_buffer_t buffer = {0};
        char *fetched_type = NULL;
        char reason[WEBSHOP_DETAIL_SIZE];
        if (s_fetch (self, url, token,
                     cw_http_request_correlation_id (request), &buffer,
                     &fetched_type, reason, sizeof (reason))
            != 0) {
            cw_log (CW_LOG_WARN, "document_fetch_failed", reason, "order_id",
                    order_id, "invoice_number", invoice_number,
                    "correlation_id",
                    cw_http_request_correlation_id (request), NULL);
            cw_http_reply_problem (request, 502, "document-unavailable",
                                   "document unavailable", reason, NULL);
        }
        else {
            pg = cw_webshop_store_acquire (self->store);
            if (cw_webshop_store_document_put (pg, tenant_id, order_id,
                                               invoice_number, buffer.data,
                                               buffer.size))
                cw_log (CW_LOG_WARN, "document_not_stored",
                        "could not store fetched document", "order_id",
                        order_id, "invoice_number", invoice_number, NULL);
            cw_webshop_store_release (self->store, pg);
            cw_log (CW_LOG_INFO, "document_fetched", "fetched and stored "
                                                     "invoice document",
                    "order_id", order_id, "invoice_number", invoice_number,
                    NULL);
            cw_http_reply_bytes (request, 200, "application/pdf",
                                 buffer.data, buffer.size);
        }
        free (buffer.data);
        free (fetched_type);
    }
    free (document);
    free (tenant_id);
    free (url);
    if (token)
        sodium_memzero (token, strlen (token));
    free (token);
}

//  ---------------------------------------------------------------------
//  Life cycle

cw_webshop_t *
cw_webshop_new (const cw_webshop_config_t *config, char *error, size_t size)
{
    assert (config);
    assert (config->host);
    assert (config->db_uri);
    assert (config->verifier);
    if (sodium_init () < 0)
        abort ();
    cw_webshop_t *self = (cw_webshop_t *) calloc (1, sizeof (cw_webshop_t));
    if (!self)
        abort ();
    self->verifier = config->verifier;
    self->fetch_timeout_msec = config->fetch_timeout_msec > 0
                                   ? config->fetch_timeout_msec
                                   : CW_WEBSHOP_FETCH_TIMEOUT;
    self->source =
        s_strdup (config->source ? config->source : WEBSHOP_SOURCE_DEFAULT);
    self->store = cw_webshop_store_new (
        config->db_uri,
        config->pool_size > 0 ? config->pool_size : CW_WEBSHOP_POOL_DEFAULT,
        error, size);
    if (!self->store) {
        cw_webshop_destroy (&self);
        return NULL;
    }
    self->http = cw_http_new (config->host, config->port, 0);
    cw_http_route (self->http, "POST",
                   "/webshop/orders/{orderId}/payment-status",
                   s_post_payment_status, self);
    cw_http_route (self->http, "POST",
                   "/webshop/orders/{orderId}/invoice-available",
                   s_post_invoice_available, self);
    cw_http_route (self->http, "POST", "/webshop/products/prices",
                   s_post_prices, self);
    cw_http_route (self->http, "POST", "/webshop/events", s_post_events,
                   self);
    cw_http_route (self->http, "GET", "/webshop/orders/{orderId}/invoices",
                   s_get_invoices, self);
    cw_http_route (self->http, "GET",
                   "/webshop/orders/{orderId}/invoices/{invoiceNumber}/"
                   "document",
                   s_get_document, self);
    cw_http_route (self->http, "POST", "/shop/customers", s_post_customers,
                   self);
    cw_http_route (self->http, "POST", "/shop/orders", s_post_orders, self);
    cw_http_route (self->http, "POST", "/shop/orders/{orderId}/status",
                   s_post_order_status, self);
    return self;
}

void
cw_webshop_destroy (cw_webshop_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cw_webshop_t *self = *self_p;
    cw_http_destroy (&self->http);
    cw_webshop_store_destroy (&self->store);
    free (self->source);
    free (self);
    *self_p = NULL;
}

int
cw_webshop_start (cw_webshop_t *self, char *error, size_t size)
{
    assert (self);
    return cw_http_start (self->http, error, size);
}

int
cw_webshop_port (cw_webshop_t *self)
{
    assert (self);
    return cw_http_port (self->http);
}

int
cw_webshop_write_port_file (cw_webshop_t *self, const char *path,
                            char *error, size_t size)
{
    assert (self);
    return cw_http_write_port_file (self->http, path, error, size);
}
