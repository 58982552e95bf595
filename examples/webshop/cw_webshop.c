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
#include "cw_event.h"
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

#define WEBSHOP_ATTEMPTS 3         //  Transaction attempts on conflicts
#define WEBSHOP_DETAIL_SIZE 512    //  Room for a problem detail
#define WEBSHOP_EVENT_ID_BYTES 16  //  Random bytes in an event id
#define WEBSHOP_SOURCE_DEFAULT "urn:causeway:webshop"
#define WEBSHOP_TIME_SIZE 40  //  Room for an RFC 3339 time

struct _cw_webshop_t {
    cw_http_t *http;                //  HTTP server, owned
    cw_webshop_store_t *store;      //  Database pool, owned
    cw_token_verifier_t *verifier;  //  Token checks, borrowed
    long fetch_timeout_msec;        //  Document fetch timeout
    char *source;                   //  CloudEvents source of our events
};

//  What applying a change decided: a reply to store, or a problem.
typedef struct {
    int status;                        //  HTTP status
    const char *slug;                  //  Problem type slug (status >= 400)
    const char *title;                 //  Problem title
    const char *field;                 //  Field the problem is about
    char detail[WEBSHOP_DETAIL_SIZE];  //  Problem detail
    char name[WEBSHOP_DETAIL_SIZE];    //  Room for a field name
} s_outcome_t;

//  Applies one delivery inside the inbox transaction: sets outcome->status
//  and *reply (a 2xx body), or a problem (status >= 400: rolled back, not
//  remembered). Returns 0, or -1 on a database error.
typedef int (s_apply_fn) (cw_webshop_t *self,
                          cw_pg_t *pg,
                          void *args,
                          s_outcome_t *outcome,
                          json_t **reply);

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
    char *text =
        json_dumps (value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!text)
        abort ();
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) text, strlen (text));
    sodium_bin2hex (hex, crypto_hash_sha256_BYTES * 2 + 1, hash, sizeof (hash));
    free (text);
}

//  Replies with a problem (status) naming the field.
static void
s_reply_invalid (cw_http_request_t *request,
                 int status,
                 const char *field,
                 const char *detail)
{
    json_t *extensions = field ? json_pack ("{s:s}", "field", field) : NULL;
    cw_http_reply_problem (request, status, "validation", "invalid request",
                           detail, extensions);
    json_decref (extensions);
}

//  Replies 422 with a cw_event reason ("field \"data.x\": ..."), naming
//  the field without its "data." prefix.
static void
s_reply_reason (cw_http_request_t *request, const char *reason)
{
    char field[CW_ENVELOPE_REASON_SIZE] = "";
    const char *start = strstr (reason, "field \"");
    if (start) {
        start += 7;
        if (strncmp (start, "data.", 5) == 0)
            start += 5;
        size_t length = strcspn (start, "\"");
        if (length < sizeof (field)) {
            memcpy (field, start, length);
            field[length] = 0;
        }
    }
    s_reply_invalid (request, 422, *field ? field : "body", reason);
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

//  True for an id as the contract has them: 1..64 bytes of letters,
//  digits, '.', '_' and '-'.
static bool
s_id_valid (const char *text)
{
    size_t length = text ? strlen (text) : 0;
    return length > 0 && length <= CW_EVENT_ID_MAX
           && strspn (text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
                            "xyz0123456789._-")
                  == length;
}

//  String member of an object already validated (or NULL).
static const char *
s_text (const json_t *object, const char *name)
{
    return json_string_value (json_object_get (object, name));
}

//  Integer member of an object already validated (0 when absent).
static int64_t
s_number (const json_t *object, const char *name)
{
    return (int64_t) json_integer_value (json_object_get (object, name));
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
    if (!token)
        snprintf (error, sizeof (error), "missing bearer token");
    else if (cw_token_verify (self->verifier, token, (int64_t) time (NULL),
                              &claims, error, sizeof (error))
             == 0) {
        cw_log (CW_LOG_DEBUG, "caller_authenticated", "caller authenticated",
                "sub", claims.sub, "iss", claims.iss, "correlation_id",
                cw_http_request_correlation_id (request), NULL);
        cw_token_claims_reset (&claims);
        return true;
    }
    cw_log (CW_LOG_WARN, "caller_rejected",
            "rejected request without a valid token", "reason", error, "path",
            cw_http_request_path (request), "correlation_id",
            cw_http_request_correlation_id (request), NULL);
    cw_http_reply_header (request, "WWW-Authenticate",
                          "Bearer realm=\"webshop\"");
    cw_http_reply_problem (request, 401, "unauthorized",
                           "authentication required", error, NULL);
    return false;
}

//  Compares the Idempotency-Key header with the key built from the body.
//  header_required: a missing header is 400. False after replying.
static bool
s_key_matches (cw_http_request_t *request,
               const char *expected,
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

//  Builds a key of kind; NULL after replying 422 with the reason.
static char *
s_build_key (cw_http_request_t *request,
             cw_idkey_kind_t kind,
             const char *const *fields,
             int64_t version)
{
    char reason[WEBSHOP_DETAIL_SIZE];
    char *key = cw_idkey_build (kind, fields, (uint64_t) version, reason,
                                sizeof (reason));
    if (!key)
        s_reply_invalid (request, 422, "body", reason);
    return key;
}

static void
s_outcome_problem (s_outcome_t *outcome,
                   int status,
                   const char *slug,
                   const char *title,
                   const char *field)
{
    outcome->status = status;
    outcome->slug = slug;
    outcome->title = title;
    outcome->field = field;
}

static void
s_reply_outcome (cw_http_request_t *request, s_outcome_t *outcome)
{
    json_t *extensions =
        outcome->field ? json_pack ("{s:s}", "field", outcome->field) : NULL;
    cw_http_reply_problem (request, outcome->status, outcome->slug,
                           outcome->title, outcome->detail, extensions);
    json_decref (extensions);
}

//  ---------------------------------------------------------------------
//  The inbox: de-duplicate, apply and remember the response in one
//  transaction. The result is a status and body text (stored or new),
//  or a problem in result->outcome (status >= 400, nothing remembered).

typedef struct {
    int status;           //  HTTP status
    char *body;           //  JSON text to send, owned (status < 400)
    bool replayed;        //  A stored response of a duplicate
    s_outcome_t outcome;  //  The problem when status >= 400
} s_result_t;

static void
s_process (cw_webshop_t *self,
           const char *correlation_id,
           const char *key,
           const char *message_type,
           const json_t *content,
           s_apply_fn *apply,
           void *args,
           s_result_t *result)
{
    memset (result, 0, sizeof (*result));
    char hash[crypto_hash_sha256_BYTES * 2 + 1];
    s_json_sha256 (content, hash);
    for (int attempt = 1; attempt <= WEBSHOP_ATTEMPTS; attempt++) {
        cw_pg_t *pg = cw_webshop_store_acquire (self->store);
        //  A concurrent holder of the key makes the claim wait until that
        //  transaction ends; then the key is ours (it rolled back) or
        //  theirs (it committed, and its response is stored).
        int claimed = cw_pg_begin (pg) == 0 ? cw_webshop_store_inbox_claim (
                          pg, key, message_type, hash, correlation_id)
                                            : -1;
        if (claimed == 0) {
            cw_pg_rollback (pg);
            char *stored_hash = NULL;
            int found = cw_webshop_store_inbox_get (
                pg, key, &result->status, &result->body, &stored_hash);
            cw_webshop_store_release (self->store, pg);
            if (found == 1 && stored_hash && strcmp (stored_hash, hash) != 0) {
                free (result->body);
                result->body = NULL;
                s_outcome_problem (&result->outcome, 422, "validation",
                                   "invalid request", "Idempotency-Key");
                snprintf (result->outcome.detail,
                          sizeof (result->outcome.detail),
                          "idempotency key \"%.200s\" was already used with "
                          "a different body",
                          key);
                result->status = 422;
            }
            else if (found == 1 && result->body && result->status > 0) {
                result->replayed = true;
                cw_log (CW_LOG_INFO, "duplicate_acknowledged",
                        "acknowledged duplicate delivery", "idempotency_key",
                        key, "correlation_id", correlation_id, NULL);
            }
            else {
                free (result->body);
                result->body = NULL;
                result->status = 0;
            }
            free (stored_hash);
            if (result->status)
                return;
            continue;  //  Gone again: claim once more
        }
        if (claimed == 1) {
            s_outcome_t *outcome = &result->outcome;
            json_t *body = NULL;
            int rc = apply (self, pg, args, outcome, &body);
            if (rc == 0 && outcome->status >= 400) {
                //  Rejected: nothing is remembered; a corrected or later
                //  delivery may pass.
                json_decref (body);
                cw_webshop_store_release (self->store, pg);
                result->status = outcome->status;
                cw_log (CW_LOG_WARN, "delivery_rejected", outcome->detail,
                        "idempotency_key", key, "correlation_id",
                        correlation_id, NULL);
                return;
            }
            if (rc == 0) {
                char *text = json_dumps (body, JSON_COMPACT);
                json_decref (body);
                if (cw_webshop_store_inbox_finish (pg, key, outcome->status,
                                                   text)
                        == 0
                    && cw_pg_commit (pg) == 0) {
                    cw_webshop_store_release (self->store, pg);
                    cw_log (CW_LOG_INFO, "delivery_applied", "applied delivery",
                            "idempotency_key", key, "message_type",
                            message_type, "correlation_id", correlation_id,
                            NULL);
                    result->status = outcome->status;
                    result->body = text;
                    return;
                }
                free (text);
            }
        }
        cw_pg_failure_t failure = cw_pg_failure (pg);
        cw_webshop_store_release (self->store, pg);
        if (failure != CW_PG_SERIALIZATION && failure != CW_PG_UNIQUE
            && failure != CW_PG_CONNECTION)
            break;
    }
    result->status = 503;
}

//  Replies with a result and frees its body.
static void
s_reply_result (cw_http_request_t *request, s_result_t *result)
{
    if (result->status == 503)
        s_reply_unavailable (request);
    else if (result->status >= 400)
        s_reply_outcome (request, &result->outcome);
    else {
        if (result->replayed)
            cw_http_reply_header (request, "Idempotent-Replayed", "true");
        cw_http_reply_bytes (request, result->status, "application/json",
                             result->body, strlen (result->body));
    }
    free (result->body);
    result->body = NULL;
}

static void
s_deliver (cw_webshop_t *self,
           cw_http_request_t *request,
           const char *key,
           const char *message_type,
           const json_t *content,
           s_apply_fn *apply,
           void *args)
{
    s_result_t result;
    s_process (self, cw_http_request_correlation_id (request), key,
               message_type, content, apply, args, &result);
    s_reply_result (request, &result);
}

//  ---------------------------------------------------------------------
//  Orders named by the ERP: order ids are unique across tenants

static void
s_unknown_order (s_outcome_t *outcome, const char *order_id)
{
    s_outcome_problem (outcome, 404, "unknown-order", "unknown order",
                       "orderId");
    snprintf (outcome->detail, sizeof (outcome->detail),
              "order \"%s\" does not exist", order_id);
}

//  Finds the tenant of an order (and checks it against tenant, when the
//  body names one). Returns 0 with *tenant_id (caller frees), 1 with a
//  404 or 409 outcome, -1 on a database error.
static int
s_order_tenant (cw_pg_t *pg,
                const char *order_id,
                const char *tenant,
                char **tenant_id,
                s_outcome_t *outcome)
{
    int found = cw_webshop_store_order_tenant (pg, order_id, tenant_id);
    if (found < 0)
        return -1;
    if (found == 1 && tenant && strcmp (tenant, *tenant_id) != 0) {
        free (*tenant_id);
        *tenant_id = NULL;
        found = 0;
    }
    if (found == 0) {
        s_unknown_order (outcome, order_id);
        return 1;
    }
    if (found == 2) {
        s_outcome_problem (outcome, 409, "ambiguous-order",
                           "ambiguous order id", "orderId");
        snprintf (outcome->detail, sizeof (outcome->detail),
                  "order id \"%s\" is used by several tenants", order_id);
        return 1;
    }
    return 0;
}

//  Checks the path's orderId and the body's optional one. False after
//  replying.
static bool
s_path_order (cw_http_request_t *request, json_t *body, const char **order_id)
{
    *order_id = cw_http_request_param (request, "orderId");
    if (!s_id_valid (*order_id)) {
        s_reply_invalid (request, 422, "orderId",
                         "path orderId must be 1 to 64 letters, digits, "
                         "'.', '_' or '-'");
        return false;
    }
    json_t *item = json_object_get (body, "orderId");
    if (item
        && (!json_is_string (item)
            || strcmp (json_string_value (item), *order_id) != 0)) {
        s_reply_invalid (request, 422, "orderId",
                         "field \"orderId\" does not match the path");
        return false;
    }
    return true;
}

//  Validates a push body against the contract; false after replying 422.
static bool
s_body_valid (cw_http_request_t *request,
              cw_event_endpoint_t endpoint,
              json_t *body)
{
    //  orderId in the body is checked against the path, not the contract.
    json_t *copy = json_copy (body);
    json_object_del (copy, "orderId");
    char reason[CW_ENVELOPE_REASON_SIZE];
    int rc = cw_event_validate_body (endpoint, copy, reason, sizeof (reason));
    json_decref (copy);
    if (rc != 0)
        s_reply_reason (request, reason);
    return rc == 0;
}

//  ---------------------------------------------------------------------
//  POST /webshop/orders/{orderId}/payment-status

typedef struct {
    const char *order_id;
    json_t *body;      //  Validated body, borrowed
    const char *type;  //  Event type (POST /webshop/events), borrowed
} s_args_t;

static int
s_apply_payment (cw_webshop_t *self,
                 cw_pg_t *pg,
                 void *args,
                 s_outcome_t *outcome,
                 json_t **reply)
{
    (void) self;
    s_args_t *payment = (s_args_t *) args;
    char *tenant_id = NULL;
    int found = s_order_tenant (pg, payment->order_id,
                                s_text (payment->body, "tenantId"), &tenant_id,
                                outcome);
    if (found != 0)
        return found < 0 ? -1 : 0;
    int64_t version = s_number (payment->body, "externalVersion");
    int64_t amount = s_number (payment->body, "amount");
    bool has_amount = json_object_get (payment->body, "amount") != NULL;
    int64_t current = 0;
    int applied = cw_webshop_store_payment_apply (
        pg, tenant_id, payment->order_id, s_text (payment->body, "status"),
        version, has_amount ? &amount : NULL,
        s_text (payment->body, "currency"), &current);
    free (tenant_id);
    if (applied < 0)
        return -1;
    outcome->status = 200;
    *reply =
        json_pack ("{s:s, s:s, s:I, s:b, s:I}", "orderId", payment->order_id,
                   "status", s_text (payment->body, "status"),
                   "externalVersion", (json_int_t) version, "applied", applied,
                   "currentVersion", (json_int_t) current);
    if (!applied)
        json_object_set_new (*reply, "reason", json_string ("stale version"));
    return 0;
}

//  An ERP update to one order (payment status, invoice): checks the body
//  against endpoint, builds the key from the order id, the body's field
//  and externalVersion, then delivers it once as message_type.
static void
s_post_order_update (cw_webshop_t *self,
                     cw_http_request_t *request,
                     cw_event_endpoint_t endpoint,
                     cw_idkey_kind_t kind,
                     const char *field,
                     const char *message_type,
                     s_apply_fn *apply)
{
    if (!s_authorized (self, request))
        return;
    json_t *body = s_body_object (request);
    if (!body)
        return;
    s_args_t update = {.body = body};
    if (s_path_order (request, body, &update.order_id)
        && s_body_valid (request, endpoint, body)) {
        const char *fields[] = {update.order_id, s_text (body, field)};
        char *key = s_build_key (request, kind, fields,
                                 s_number (body, "externalVersion"));
        if (key && s_key_matches (request, key, true))
            s_deliver (self, request, key, message_type, body, apply, &update);
        free (key);
    }
    json_decref (body);
}

static void
s_post_payment_status (cw_http_request_t *request, void *arg)
{
    s_post_order_update (
        (cw_webshop_t *) arg, request, CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS,
        CW_IDKEY_PAYMENT_STATUS, "status", "payment-status", s_apply_payment);
}

//  ---------------------------------------------------------------------
//  POST /webshop/orders/{orderId}/invoice-available

static int
s_apply_invoice (cw_webshop_t *self,
                 cw_pg_t *pg,
                 void *args,
                 s_outcome_t *outcome,
                 json_t **reply)
{
    (void) self;
    s_args_t *invoice = (s_args_t *) args;
    json_t *body = invoice->body;
    char *tenant_id = NULL;
    int found = s_order_tenant (pg, invoice->order_id,
                                s_text (body, "tenantId"), &tenant_id, outcome);
    if (found != 0)
        return found < 0 ? -1 : 0;
    int64_t version = s_number (body, "externalVersion");
    int applied = cw_webshop_store_invoice_apply (
        pg, tenant_id, invoice->order_id, s_text (body, "invoiceNumber"),
        s_text (body, "invoiceId"), version, s_text (body, "documentUrl"),
        s_text (body, "documentToken"));
    free (tenant_id);
    if (applied < 0)
        return -1;
    outcome->status = 200;
    *reply =
        json_pack ("{s:s, s:s, s:I, s:b}", "orderId", invoice->order_id,
                   "invoiceNumber", s_text (body, "invoiceNumber"),
                   "externalVersion", (json_int_t) version, "applied", applied);
    if (!applied)
        json_object_set_new (*reply, "reason", json_string ("stale version"));
    return 0;
}

static void
s_post_invoice_available (cw_http_request_t *request, void *arg)
{
    s_post_order_update ((cw_webshop_t *) arg, request,
                         CW_EVENT_ENDPOINT_WEBSHOP_INVOICE_AVAILABLE,
                         CW_IDKEY_INVOICE, "invoiceNumber", "invoice-available",
                         s_apply_invoice);
}

//  ---------------------------------------------------------------------
//  POST /webshop/products/prices

static int
s_apply_price (cw_webshop_t *self,
               cw_pg_t *pg,
               void *args,
               s_outcome_t *outcome,
               json_t **reply)
{
    (void) self;
    json_t *price = ((s_args_t *) args)->body;
    int64_t version = s_number (price, "externalVersion");
    int64_t current = 0;
    int applied = cw_webshop_store_price_apply (
        pg, s_text (price, "articleNumber"), s_text (price, "priceListId"),
        version, s_number (price, "amount"), s_text (price, "currency"),
        s_text (price, "effectiveAt"), &current);
    if (applied < 0)
        return -1;
    outcome->status = 200;
    *reply = json_pack ("{s:s, s:s, s:I, s:b, s:I}", "articleNumber",
                        s_text (price, "articleNumber"), "priceListId",
                        s_text (price, "priceListId"), "externalVersion",
                        (json_int_t) version, "applied", applied,
                        "currentVersion", (json_int_t) current);
    if (!applied)
        json_object_set_new (*reply, "reason", json_string ("stale version"));
    return 0;
}

//  Builds the key of one price; NULL after replying.
static char *
s_price_key (cw_http_request_t *request, json_t *price)
{
    const char *fields[] = {s_text (price, "articleNumber"),
                            s_text (price, "priceListId")};
    return s_build_key (request, CW_IDKEY_PRICE, fields,
                        s_number (price, "externalVersion"));
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
    if (!s_body_valid (request, CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES,
                       body)) {
        json_decref (body);
        return;
    }
    //  Each price is de-duplicated by its own key. With one price the
    //  Idempotency-Key header must be that key; with several it is
    //  optional and each price's outcome is listed in the reply.
    json_t *prices = json_object_get (body, "prices");
    size_t count = json_array_size (prices);
    if (count == 1) {
        json_t *price = json_array_get (prices, 0);
        char *key = s_price_key (request, price);
        s_args_t args = {.body = price};
        if (key && s_key_matches (request, key, true))
            s_deliver (self, request, key, "price", price, s_apply_price,
                       &args);
        free (key);
        json_decref (body);
        return;
    }
    json_t *results = json_array ();
    size_t index;
    json_t *price;
    json_array_foreach (prices, index, price)
    {
        char *key = s_price_key (request, price);
        if (!key)
            break;
        s_args_t args = {.body = price};
        s_result_t result;
        s_process (self, cw_http_request_correlation_id (request), key, "price",
                   price, s_apply_price, &args, &result);
        free (key);
        if (result.status >= 400) {
            //  Prices before this one stay applied (and remembered): a
            //  retry of the whole batch replays them.
            char field[32];
            snprintf (field, sizeof (field), "prices[%zu]", index);
            if (result.status < 500)
                result.outcome.field = field;
            s_reply_result (request, &result);
            break;
        }
        json_t *item = json_loads (result.body, 0, NULL);
        json_object_set_new (item, "replayed", json_boolean (result.replayed));
        json_array_append_new (results, item);
        free (result.body);
    }
    if (!cw_http_request_answered (request)) {
        json_t *reply = json_pack ("{s:o}", "results", results);
        cw_http_reply_json (request, 200, reply);
        json_decref (reply);
    }
    else
        json_decref (results);
    json_decref (body);
}

//  ---------------------------------------------------------------------
//  POST /webshop/events: erp.*.v1 CloudEvents in structured JSON mode

static int
s_apply_synced (cw_webshop_t *self,
                cw_pg_t *pg,
                void *args,
                s_outcome_t *outcome,
                json_t **reply)
{
    (void) self;
    json_t *data = ((s_args_t *) args)->body;
    //  By type: order data may name its customer too.
    bool customer =
        strcmp (((s_args_t *) args)->type, "erp.customer.synced.v1") == 0;
    const char *id = s_text (data, customer ? "customerId" : "orderId");
    const char *tenant_id = s_text (data, "tenantId");
    const char *external_id = s_text (data, "externalId");
    int changed =
        customer
            ? cw_webshop_store_customer_synced (pg, tenant_id, id, external_id)
            : cw_webshop_store_order_synced (pg, tenant_id, id, external_id);
    if (changed < 0)
        return -1;
    if (changed == 0) {
        s_outcome_problem (outcome, 404,
                           customer ? "unknown-customer" : "unknown-order",
                           customer ? "unknown customer" : "unknown order",
                           customer ? "customerId" : "orderId");
        snprintf (outcome->detail, sizeof (outcome->detail),
                  "%s \"%s\" of tenant \"%s\" does not exist",
                  customer ? "customer" : "order", id, tenant_id);
        return 0;
    }
    outcome->status = 200;
    *reply =
        json_pack ("{s:s, s:s, s:s, s:b}", customer ? "customerId" : "orderId",
                   id, "externalId", external_id, "syncStatus",
                   s_text (data, "syncStatus"), "applied", 1);
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
        s_reply_reason (request, reason);
        return;
    }
    const char *type = cw_envelope_type (event);
    const char *key = cw_envelope_idempotency_key (event);
    json_t *data = cw_envelope_data (event);
    s_args_t args = {.body = data, .type = type};
    s_apply_fn *apply = NULL;
    if (strcmp (type, "erp.customer.synced.v1") == 0
        || strcmp (type, "erp.order.synced.v1") == 0)
        apply = s_apply_synced;
    else if (strcmp (type, "erp.invoice.available.v1") == 0)
        apply = s_apply_invoice;
    else if (strcmp (type, "erp.price.updated.v1") == 0)
        apply = s_apply_price;
    if (!apply) {
        char detail[WEBSHOP_DETAIL_SIZE];
        snprintf (detail, sizeof (detail),
                  "event type \"%.128s\" is not taken here (taken: "
                  "erp.customer.synced.v1, erp.order.synced.v1, "
                  "erp.invoice.available.v1, erp.price.updated.v1)",
                  type);
        s_reply_invalid (request, 422, "type", detail);
    }
    else if (cw_event_validate (type, data, reason, sizeof (reason)) != 0)
        s_reply_reason (request, reason);
    else if (json_object_get (data, "tenantId")
             && strcmp (s_text (data, "tenantId"),
                        cw_envelope_tenant_id (event))
                    != 0)
        s_reply_invalid (request, 422, "tenantId",
                         "field \"data.tenantId\" does not match the "
                         "envelope's tenantid");
    else if (s_key_matches (request, key, false)) {
        args.order_id = s_text (data, "orderId");
        s_deliver (self, request, key, type, data, apply, &args);
    }
    cw_envelope_destroy (&event);
}

//  ---------------------------------------------------------------------
//  The shop's own API: domain rows + outbox event in one transaction

//  Builds an envelope around data (borrowed) and adds it to the outbox.
//  Fills event_id. Returns 0, -1 on a database error.
static int
s_outbox_event (cw_webshop_t *self,
                cw_pg_t *pg,
                const char *type,
                const char *tenant_id,
                const char *key,
                const char *correlation_id,
                json_t *data,
                char event_id[WEBSHOP_EVENT_ID_BYTES * 2 + 1])
{
    unsigned char random[WEBSHOP_EVENT_ID_BYTES];
    randombytes_buf (random, sizeof (random));
    sodium_bin2hex (event_id, WEBSHOP_EVENT_ID_BYTES * 2 + 1, random,
                    sizeof (random));
    char now[WEBSHOP_TIME_SIZE];
    s_now_text (now, sizeof (now));
    cw_envelope_t *event = cw_envelope_new ();
    cw_envelope_set_id (event, event_id);
    cw_envelope_set_source (event, self->source);
    cw_envelope_set_type (event, type);
    cw_envelope_set_time (event, now);
    cw_envelope_set_tenant_id (event, tenant_id);
    cw_envelope_set_correlation_id (event, correlation_id);
    cw_envelope_set_idempotency_key (event, key);
    json_t *copy = json_incref (data);
    cw_envelope_set_data (event, &copy);
    char reason[CW_ENVELOPE_REASON_SIZE];
    char *text = cw_envelope_encode_json (event, reason, sizeof (reason));
    cw_envelope_destroy (&event);
    if (!text) {
        //  Our own event broke the contract: a bug, not bad input.
        cw_log (CW_LOG_ERROR, "event_invalid", "could not encode event", "type",
                type, "reason", reason, NULL);
        return -1;
    }
    int rc = cw_webshop_store_outbox_add (pg, type, tenant_id, key,
                                          correlation_id, text);
    free (text);
    return rc;
}

typedef int (s_run_fn) (cw_webshop_t *self,
                        cw_pg_t *pg,
                        cw_http_request_t *request,
                        json_t *body,
                        s_outcome_t *outcome,
                        json_t **reply);

//  Runs run in a transaction, retried on serialization failures and lost
//  connections; replies with its outcome, or 503.
static void
s_transaction (cw_webshop_t *self,
               cw_http_request_t *request,
               json_t *body,
               s_run_fn *run)
{
    for (int attempt = 1; attempt <= WEBSHOP_ATTEMPTS; attempt++) {
        cw_pg_t *pg = cw_webshop_store_acquire (self->store);
        s_outcome_t outcome;
        memset (&outcome, 0, sizeof (outcome));
        json_t *reply = NULL;
        if (cw_pg_begin (pg) == 0
            && run (self, pg, request, body, &outcome, &reply) == 0
            && (outcome.status >= 400 || cw_pg_commit (pg) == 0)) {
            cw_webshop_store_release (self->store, pg);
            if (outcome.status >= 400)
                s_reply_outcome (request, &outcome);
            else
                cw_http_reply_json (request, outcome.status, reply);
            json_decref (reply);
            return;
        }
        json_decref (reply);
        cw_pg_failure_t failure = cw_pg_failure (pg);
        cw_webshop_store_release (self->store, pg);
        if (failure != CW_PG_SERIALIZATION && failure != CW_PG_UNIQUE
            && failure != CW_PG_CONNECTION)
            break;
    }
    s_reply_unavailable (request);
}

//  Checks event data we are about to publish; 422 outcome when invalid.
static bool
s_event_valid (const char *type, json_t *data, s_outcome_t *outcome)
{
    char reason[CW_ENVELOPE_REASON_SIZE];
    if (cw_event_validate (type, data, reason, sizeof (reason)) == 0)
        return true;
    const char *field = strstr (reason, "field \"data.");
    snprintf (outcome->name, sizeof (outcome->name), "%s",
              field ? field + 12 : "body");
    outcome->name[strcspn (outcome->name, "\"")] = 0;
    s_outcome_problem (outcome, 422, "validation", "invalid request",
                       outcome->name);
    snprintf (outcome->detail, sizeof (outcome->detail), "%s", reason);
    return false;
}

//  POST /shop/customers {tenantId, customerId, customer: {name, email,
//  countryCode}}: creates or changes a customer.
static int
s_run_customer (cw_webshop_t *self,
                cw_pg_t *pg,
                cw_http_request_t *request,
                json_t *body,
                s_outcome_t *outcome,
                json_t **reply)
{
    const char *tenant_id = s_text (body, "tenantId");
    const char *customer_id = s_text (body, "customerId");
    json_t *customer = json_object_get (body, "customer");
    int64_t version = 0;
    json_t *changed = json_array ();
    int upserted = cw_webshop_store_customer_upsert (
        pg, tenant_id, customer_id, s_text (customer, "email"),
        s_text (customer, "name"), &version, changed);
    if (upserted <= 0) {
        json_decref (changed);
        if (upserted == 0) {
            //  Nothing changed: no new version, no event.
            outcome->status = 200;
            *reply = json_pack ("{s:s, s:s, s:I, s:b}", "tenantId", tenant_id,
                                "customerId", customer_id, "version",
                                (json_int_t) version, "changed", 0);
        }
        return upserted;
    }
    const char *fields[] = {tenant_id, customer_id};
    char reason[WEBSHOP_DETAIL_SIZE];
    char *key = cw_idkey_build (CW_IDKEY_CUSTOMER, fields, (uint64_t) version,
                                reason, sizeof (reason));
    json_t *data =
        json_pack ("{s:s, s:s, s:I, s:o, s:O}", "tenantId", tenant_id,
                   "customerId", customer_id, "version", (json_int_t) version,
                   "changedFields", changed, "customer", customer);
    int rc = 0;
    char event_id[WEBSHOP_EVENT_ID_BYTES * 2 + 1];
    if (!key)
        rc = -1;
    else if (s_event_valid ("customer.upsert.requested.v1", data, outcome))
        rc = s_outbox_event (
            self, pg, "customer.upsert.requested.v1", tenant_id, key,
            cw_http_request_correlation_id (request), data, event_id);
    if (rc == 0 && outcome->status == 0) {
        outcome->status = version == 1 ? 201 : 200;
        *reply = json_pack ("{s:s, s:s, s:I, s:b, s:s, s:s}", "tenantId",
                            tenant_id, "customerId", customer_id, "version",
                            (json_int_t) version, "changed", 1, "eventId",
                            event_id, "idempotencyKey", key);
    }
    json_decref (data);
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
    //  The same checks as the event it causes, before touching the database.
    json_t *probe = json_pack ("{s:O?, s:O?, s:i, s:[s], s:O?}", "tenantId",
                               json_object_get (body, "tenantId"), "customerId",
                               json_object_get (body, "customerId"), "version",
                               1, "changedFields", "name", "customer",
                               json_object_get (body, "customer"));
    s_outcome_t outcome;
    memset (&outcome, 0, sizeof (outcome));
    json_t *customer = json_object_get (body, "customer");
    if (!s_event_valid ("customer.upsert.requested.v1", probe, &outcome))
        s_reply_outcome (request, &outcome);
    else if (!json_is_string (json_object_get (customer, "email")))
        s_reply_invalid (request, 422, "customer.email",
                         "field \"customer.email\": missing");
    else
        s_transaction (self, request, body, s_run_customer);
    json_decref (probe);
    json_decref (body);
}

//  POST /shop/orders {tenantId, orderId, customerId, currency, lines:
//  [{articleNumber, quantity, unitPrice}], tax, shipping, discount}
static int
s_run_order (cw_webshop_t *self,
             cw_pg_t *pg,
             cw_http_request_t *request,
             json_t *data,
             s_outcome_t *outcome,
             json_t **reply)
{
    const char *tenant_id = s_text (data, "tenantId");
    const char *order_id = s_text (data, "orderId");
    const char *customer_id = s_text (data, "customerId");
    const char *currency = s_text (data, "currency");
    int64_t total = s_number (json_object_get (data, "totals"), "total");
    int found = cw_webshop_store_customer_exists (pg, tenant_id, customer_id);
    if (found < 0)
        return -1;
    if (found == 0) {
        s_outcome_problem (outcome, 422, "unknown-customer", "unknown customer",
                           "customerId");
        snprintf (outcome->detail, sizeof (outcome->detail),
                  "customer \"%s\" of tenant \"%s\" does not exist",
                  customer_id, tenant_id);
        return 0;
    }
    //  Order ids are unique across tenants: the ERP's pushes name none.
    //  The id's lock keeps two tenants from creating it at once.
    char *owner = NULL;
    found = cw_webshop_store_order_id_lock (pg, order_id) == 0
                ? cw_webshop_store_order_tenant (pg, order_id, &owner)
                : -1;
    free (owner);
    int created =
        found == 0 ? cw_webshop_store_order_create (
            pg, tenant_id, order_id, customer_id, currency, total, "pending")
        : found > 0 ? 0
                    : -1;
    if (created <= 0) {
        if (created == 0) {
            s_outcome_problem (outcome, 409, "order-exists", "order exists",
                               "orderId");
            snprintf (outcome->detail, sizeof (outcome->detail),
                      "order \"%s\" exists already; change its status with "
                      "POST /shop/orders/{orderId}/status",
                      order_id);
            return 0;
        }
        return -1;
    }
    size_t index;
    json_t *line;
    json_array_foreach (
        json_object_get (data, "lines"), index,
        line) if (cw_webshop_store_order_line_add (pg, tenant_id, order_id,
                                                   (int) index + 1,
                                                   s_text (line,
                                                           "articleNumber"),
                                                   s_number (line, "quantity"),
                                                   s_number (
                                                       line,
                                                       "unitPrice"))) return -1;
    const char *fields[] = {tenant_id, order_id};
    char reason[WEBSHOP_DETAIL_SIZE];
    char *key =
        cw_idkey_build (CW_IDKEY_ORDER, fields, 1, reason, sizeof (reason));
    if (!key)
        return -1;
    char event_id[WEBSHOP_EVENT_ID_BYTES * 2 + 1];
    int rc = s_outbox_event (self, pg, "order.created.v1", tenant_id, key,
                             cw_http_request_correlation_id (request), data,
                             event_id);
    if (rc == 0) {
        outcome->status = 201;
        *reply = json_pack ("{s:s, s:s, s:I, s:s, s:I, s:s, s:s, s:s}",
                            "tenantId", tenant_id, "orderId", order_id,
                            "version", (json_int_t) 1, "status", "pending",
                            "total", (json_int_t) total, "currency", currency,
                            "eventId", event_id, "idempotencyKey", key);
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
    //  The event's data: the request plus version, createdAt, each line's
    //  lineTotal and the totals; then the contract's checks name any bad
    //  field (lines[1].quantity, totals.total...).
    char now[WEBSHOP_TIME_SIZE];
    s_now_text (now, sizeof (now));
    json_t *data = json_pack (
        "{s:O?, s:O?, s:i, s:O?, s:O?, s:s}", "tenantId",
        json_object_get (body, "tenantId"), "orderId",
        json_object_get (body, "orderId"), "version", 1, "customerId",
        json_object_get (body, "customerId"), "currency",
        json_object_get (body, "currency"), "createdAt", now);
    json_t *lines = json_object_get (body, "lines");
    json_t *event_lines = json_array ();
    json_int_t subtotal = 0;
    bool overflow = false;
    size_t index;
    json_t *line;
    json_array_foreach (lines, index, line)
    {
        json_t *copy =
            json_is_object (line) ? json_deep_copy (line) : json_incref (line);
        json_t *quantity = json_object_get (line, "quantity");
        json_t *price = json_object_get (line, "unitPrice");
        if (json_is_integer (quantity) && json_is_integer (price)) {
            json_int_t product;
            if (__builtin_mul_overflow (json_integer_value (quantity),
                                        json_integer_value (price), &product)
                || __builtin_add_overflow (subtotal, product, &subtotal))
                overflow = true;
            else
                json_object_set_new (copy, "lineTotal", json_integer (product));
        }
        json_array_append_new (event_lines, copy);
    }
    json_object_set_new (data, "lines",
                         json_is_array (lines) ? event_lines
                                               : json_incref (lines));
    if (!json_is_array (lines))
        json_decref (event_lines);
    json_int_t tax = json_integer_value (json_object_get (body, "tax"));
    json_int_t shipping =
        json_integer_value (json_object_get (body, "shipping"));
    json_int_t discount =
        json_integer_value (json_object_get (body, "discount"));
    json_object_set_new (data, "totals",
                         json_pack ("{s:I, s:I, s:I, s:I, s:I}", "subtotal",
                                    subtotal, "discount", discount, "tax", tax,
                                    "shipping", shipping, "total",
                                    subtotal - discount + tax + shipping));
    s_outcome_t outcome;
    memset (&outcome, 0, sizeof (outcome));
    const char *amounts[] = {"tax", "shipping", "discount", NULL};
    const char *bad_amount = NULL;
    for (int which = 0; amounts[which]; which++) {
        json_t *value = json_object_get (body, amounts[which]);
        if (value
            && (!json_is_integer (value) || json_integer_value (value) < 0
                || json_integer_value (value) > CW_EVENT_AMOUNT_MAX))
            bad_amount = amounts[which];
    }
    if (bad_amount) {
        char detail[WEBSHOP_DETAIL_SIZE];
        snprintf (detail, sizeof (detail),
                  "field \"%s\": must be an integer amount in minor units, "
                  "0 to %lld",
                  bad_amount, (long long) CW_EVENT_AMOUNT_MAX);
        s_reply_invalid (request, 422, bad_amount, detail);
    }
    else if (overflow)
        s_reply_invalid (request, 422, "lines",
                         "field \"lines\": order total is too large");
    else if (!s_event_valid ("order.created.v1", data, &outcome))
        s_reply_outcome (request, &outcome);
    else
        s_transaction (self, request, data, s_run_order);
    json_decref (data);
    json_decref (body);
}

//  POST /shop/orders/{orderId}/status {status}
static int
s_run_status (cw_webshop_t *self,
              cw_pg_t *pg,
              cw_http_request_t *request,
              json_t *body,
              s_outcome_t *outcome,
              json_t **reply)
{
    const char *order_id = cw_http_request_param (request, "orderId");
    const char *status = s_text (body, "status");
    char *tenant_id = NULL;
    char *previous = NULL;
    int64_t version = 0;
    int changed = cw_webshop_store_order_set_status (
        pg, order_id, status, &tenant_id, &previous, &version);
    if (changed != 1) {
        if (changed == 0)
            s_unknown_order (outcome, order_id);
        else if (changed == 2) {
            s_outcome_problem (outcome, 409, "ambiguous-order",
                               "ambiguous order id", "orderId");
            snprintf (outcome->detail, sizeof (outcome->detail),
                      "order id \"%s\" is used by several tenants", order_id);
        }
        free (tenant_id);
        free (previous);
        return changed < 0 ? -1 : 0;
    }
    char now[WEBSHOP_TIME_SIZE];
    s_now_text (now, sizeof (now));
    json_t *data = json_pack ("{s:s, s:s, s:I, s:s, s:s, s:s}", "tenantId",
                              tenant_id, "orderId", order_id, "version",
                              (json_int_t) version, "previousStatus", previous,
                              "status", status, "changedAt", now);
    const char *fields[] = {tenant_id, order_id, status};
    char reason[WEBSHOP_DETAIL_SIZE];
    char *key = cw_idkey_build (CW_IDKEY_ORDER_STATUS, fields,
                                (uint64_t) version, reason, sizeof (reason));
    int rc = key ? 0 : -1;
    char event_id[WEBSHOP_EVENT_ID_BYTES * 2 + 1];
    if (key && s_event_valid ("order.status.changed.v1", data, outcome))
        rc = s_outbox_event (self, pg, "order.status.changed.v1", tenant_id,
                             key, cw_http_request_correlation_id (request),
                             data, event_id);
    if (rc == 0 && outcome->status == 0) {
        outcome->status = 200;
        *reply = json_pack ("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "tenantId",
                            tenant_id, "orderId", order_id, "previousStatus",
                            previous, "status", status, "version",
                            (json_int_t) version, "eventId", event_id,
                            "idempotencyKey", key);
    }
    json_decref (data);
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
    const char *order_id;
    if (s_path_order (request, body, &order_id)) {
        if (!json_is_string (json_object_get (body, "status")))
            s_reply_invalid (request, 422, "status",
                             "field \"status\": missing or not a string");
        else
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
    json_array_foreach (list, index, item)
    {
        char href[512];
        snprintf (href, sizeof (href),
                  "/webshop/orders/%s/invoices/%s/document", order_id,
                  json_string_value (json_object_get (item, "invoiceNumber")));
        json_object_set_new (item, "documentHref", json_string (href));
    }
    json_t *reply =
        json_pack ("{s:s, s:o}", "orderId", order_id, "invoices", list);
    cw_http_reply_json (request, 200, reply);
    json_decref (reply);
}

typedef struct {
    unsigned char *data;  //  Bytes so far
    size_t size;          //  How many
    bool too_large;       //  Past CW_WEBSHOP_DOCUMENT_MAX
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
s_fetch (cw_webshop_t *self,
         const char *url,
         const char *token,
         const char *correlation_id,
         s_buffer_t *buffer,
         char **content_type,
         char *reason,
         size_t size)
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
    snprintf (header, sizeof (header), "X-Correlation-ID: %s", correlation_id);
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
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS,
                      CURLPROTO_HTTP | CURLPROTO_HTTPS);
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
    else if (code != CURLE_OK)
        snprintf (reason, size, "could not fetch document: %s",
                  *error ? error : curl_easy_strerror (code));
    else if (status != 200)
        snprintf (reason, size, "could not fetch document: HTTP %ld", status);
    else if (buffer->size == 0)
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
    int64_t version = 0;
    cw_pg_t *pg = cw_webshop_store_acquire (self->store);
    int found = cw_webshop_store_order_tenant (pg, order_id, &tenant_id);
    if (found == 1)
        found = cw_webshop_store_document_get (pg, tenant_id, order_id,
                                               invoice_number, &document, &size,
                                               &url, &token, &version);
    else if (found == 2)
        found = 0;
    cw_webshop_store_release (self->store, pg);
    if (found < 0)
        s_reply_unavailable (request);
    else if (found == 0)
        s_reply_invalid (request, 404, "invoiceNumber",
                         "no such invoice for this order");
    else if (document) {
        cw_http_reply_bytes (request, 200, "application/pdf", document, size);
    }
    else {
        s_buffer_t buffer = {0};
        char *fetched_type = NULL;
        char reason[WEBSHOP_DETAIL_SIZE];
        if (s_fetch (self, url, token, cw_http_request_correlation_id (request),
                     &buffer, &fetched_type, reason, sizeof (reason))
            != 0) {
            cw_log (CW_LOG_WARN, "document_fetch_failed", reason, "order_id",
                    order_id, "invoice_number", invoice_number,
                    "correlation_id", cw_http_request_correlation_id (request),
                    NULL);
            cw_http_reply_problem (request, 502, "document-unavailable",
                                   "document unavailable", reason, NULL);
        }
        else {
            //  Stored only for the version it was fetched for: a newer
            //  one may have replaced the link meanwhile.
            pg = cw_webshop_store_acquire (self->store);
            if (cw_webshop_store_document_put (pg, tenant_id, order_id,
                                               invoice_number, buffer.data,
                                               buffer.size, version)
                != 1)
                cw_log (CW_LOG_WARN, "document_not_stored",
                        "could not store fetched document", "order_id",
                        order_id, "invoice_number", invoice_number, NULL);
            cw_webshop_store_release (self->store, pg);
            cw_log (CW_LOG_INFO, "document_fetched",
                    "fetched and stored "
                    "invoice document",
                    "order_id", order_id, "invoice_number", invoice_number,
                    NULL);
            cw_http_reply_bytes (request, 200, "application/pdf", buffer.data,
                                 buffer.size);
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
    cw_http_route (self->http, "POST", "/webshop/events", s_post_events, self);
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
cw_webshop_write_port_file (cw_webshop_t *self,
                            const char *path,
                            char *error,
                            size_t size)
{
    assert (self);
    return cw_http_write_port_file (self->http, path, error, size);
}
