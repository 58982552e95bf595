/*  =========================================================================
    erpsim_server - the ERP simulator: API, idempotency, fault injection,
    feeds and introspection

    Request path of an API call (s_api):
      outage?            -> connection dropped
      credentials        -> 401
      Idempotency-Key    -> in flight: 409, other body: 422, done: replay
      latency + stall    (key stays reserved: a concurrent retry gets 409)
      faults before      -> 500 / 429 / 409, key released, no effect
      handler            -> the effect, under the mutex; result stored
      faults after       -> 500, dropped, malformed or truncated reply
                            (the effect stays: a retry gets the replay)
    =========================================================================
*/
#include "erpsim_server.h"

#include "cw_http.h"
#include "cw_log.h"
#include "erpsim_pdf.h"
#include "erpsim_validate.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define KEY_MAX 255             //  Longest Idempotency-Key, bytes
#define LIST_LIMIT_DEFAULT 100  //  Feed page size by default
#define LIST_LIMIT_MAX 1000     //  Largest feed page
#define FEED_TICK_MSEC 20       //  Feed thread period
#define ARTICLES 200            //  Articles the price feed changes
#define ROUTE_KEY_MAX 96        //  Longest "METHOD pattern"
#define PAYMENT_SCAN_MAX 64     //  Orders looked at per payment

typedef struct _erpsim_route_t erpsim_route_t;

//  What a handler produced, before faults after the effect
typedef struct {
    int status;                //  HTTP status
    char *body;                //  Body, owned
    size_t size;               //  Its size
    const char *content_type;  //  Static string
    bool replayed;             //  Answer replayed for an Idempotency-Key
} result_t;

typedef void (handler_fn) (erpsim_server_t *self,
                           cw_http_request_t *request,
                           result_t *result);

struct _erpsim_route_t {
    const char *method;       //  HTTP method
    const char *pattern;      //  cw_http pattern
    handler_fn *handler;      //  Does the work, under the mutex
    bool mutating;            //  Honours Idempotency-Key
    char key[ROUTE_KEY_MAX];  //  "METHOD pattern"
    erpsim_server_t *server;  //  Back pointer
};

typedef struct {
    char key[ROUTE_KEY_MAX + 4];  //  "*" or "METHOD pattern"
    erpsim_faults_t faults;       //  Its knobs
} route_faults_t;

struct _erpsim_server_t {
    erpsim_server_config_t config;  //  Copy; strings borrowed
    pthread_mutex_t mutex;          //  Guards everything below
    pthread_cond_t cond;            //  Signalled on stop (sleepers wake)
    bool stopping;                  //  Stop requested
    bool feed_running;              //  Feed thread started
    pthread_t feed_thread;          //  Produces feeds
    cw_http_t *api;                 //  API listener
    cw_http_t *control;             //  Control listener
    unsigned char api_key_hash[crypto_hash_sha256_BYTES];  //  Of the key
    erpsim_route_t *routes;                                //  API routes
    size_t route_count;                                    //  Their number
    //  Data
    json_t *customers;       //  ERP id -> customer
    json_t *customer_refs;   //  tenant US customerId -> ERP id
    json_t *orders;          //  ERP id -> order
    json_t *order_refs;      //  tenant US orderId -> ERP id
    json_t *order_ids;       //  ERP order ids, oldest first
    json_t *invoices;        //  Invoices, cursor = index + 1
    json_t *invoice_index;   //  Invoice id -> index in invoices
    json_t *prices;          //  Price changes, cursor = index + 1
    json_t *price_versions;  //  article US list -> last version
    json_t *payments;        //  Payment events, cursor = index + 1
    size_t invoice_next;     //  Next order index to invoice
    size_t payment_next;     //  Next order index for payments
    long long customer_seq;  //  Last customer number
    long long order_seq;     //  Last order number
    //  Idempotency
    json_t *keys;          //  Idempotency-Key -> entry
    char **key_ring;       //  Keys in arrival order, for forgetting
    size_t key_ring_head;  //  Next ring slot
    //  Faults
    json_t *fault_config;    //  As set (validated)
    route_faults_t *faults;  //  Parsed, in config order
    size_t fault_count;      //  Their number
    long long outage_until;  //  Monotonic msec; outage while now < it
    double rates[3];         //  Feed rates per second
    double credit[3];        //  Feed items owed
    //  Introspection
    json_t *effects;             //  kind -> id -> counters
    json_t *requests;            //  route -> status -> count
    json_t *inflight;            //  route -> {current, max}
    long long inflight_current;  //  Requests being served
    long long inflight_max;      //  Most at once since reset
    long long duplicate_hits;    //  Replays of a finished key
    long long key_mismatches;    //  Same key, other body (422)
    long long key_conflicts;     //  Same key while in flight (409)
    json_t *injected;            //  fault kind -> count
};

enum { FEED_PRICES, FEED_INVOICES, FEED_PAYMENTS };

static const char *s_feed_names[] = {"prices", "invoices", "payments"};

//  Helpers ----------------------------------------------------------------

static long long
s_now_msec (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (long long) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void
s_timestamp (char *text, size_t size)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r (&now.tv_sec, &tm);
    char base[32];
    strftime (base, sizeof (base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (text, size, "%.24s.%03dZ", base,
              (int) (now.tv_nsec / 1000000) % 1000);
}

static json_t *
s_now_json (void)
{
    char text[64];
    s_timestamp (text, sizeof (text));
    return json_string (text);
}

//  True with probability rate.
static bool
s_chance (double rate)
{
    if (rate <= 0)
        return false;
    if (rate >= 1)
        return true;
    return randombytes_uniform (1000000) < (uint32_t) (rate * 1000000);
}

static void
s_ref (char *text, size_t size, const char *tenant, const char *id)
{
    snprintf (text, size, "%s\x1f%s", tenant, id);
}

static void
s_count (json_t *object, const char *key, long long by)
{
    json_t *value = json_object_get (object, key);
    long long now = value ? (long long) json_integer_value (value) : 0;
    json_object_set_new (object, key, json_integer (now + by));
}

//  Results ----------------------------------------------------------------

static void
s_result_json (result_t *result, int status, json_t *json)
{
    assert (!result->body);
    result->status = status;
    result->body = json_dumps (json, JSON_COMPACT);
    assert (result->body);
    result->size = strlen (result->body);
    result->content_type = "application/json";
    json_decref (json);
}

//  Sets a problem result; extensions (may be NULL) is taken.
static void
s_result_problem (result_t *result,
                  int status,
                  const char *slug,
                  const char *title,
                  const char *detail,
                  const char *field,
                  json_t *extensions)
{
    char type[128];
    snprintf (type, sizeof (type), "%s%s", CW_HTTP_PROBLEM_BASE, slug);
    json_t *problem = json_pack ("{s:s, s:s, s:i}", "type", type, "title",
                                 title, "status", status);
    if (detail)
        json_object_set_new (problem, "detail", json_string (detail));
    if (field && *field)
        json_object_set_new (problem, "field", json_string (field));
    if (extensions) {
        json_object_update (problem, extensions);
        json_decref (extensions);
    }
    s_result_json (result, status, problem);
    result->content_type = "application/problem+json";
}

static void
s_result_invalid (result_t *result, const erpsim_problem_t *problem)
{
    s_result_problem (result, problem->status, problem->slug, problem->title,
                      problem->detail, problem->field, NULL);
}

static void
s_not_found (result_t *result, const char *kind, const char *id)
{
    char detail[256];
    snprintf (detail, sizeof (detail), "%s \"%.128s\" does not exist", kind,
              id);
    s_result_problem (result, 404, "not-found", "Not Found", detail, NULL,
                      NULL);
}

//  Effects ----------------------------------------------------------------

static void
s_effect (erpsim_server_t *self,
          const char *kind,
          const char *id,
          const char *counter)
{
    json_t *map = json_object_get (self->effects, kind);
    if (!map) {
        map = json_object ();
        json_object_set_new (self->effects, kind, map);
    }
    json_t *entry = json_object_get (map, id);
    if (!entry) {
        entry = json_pack ("{s:i, s:i}", "creates", 0, "updates", 0);
        json_object_set_new (map, id, entry);
    }
    s_count (entry, counter, 1);
}

//  Customers ----------------------------------------------------------------

static void
s_customer_upsert (erpsim_server_t *self,
                   cw_http_request_t *request,
                   result_t *result)
{
    erpsim_problem_t problem;
    json_t *input = erpsim_validate_customer (
        cw_http_request_body (request), cw_http_request_body_size (request),
        &problem);
    if (!input) {
        s_result_invalid (result, &problem);
        return;
    }
    const char *tenant = json_string_value (json_object_get (input, "tenant"));
    const char *customer_id =
        json_string_value (json_object_get (input, "customerId"));
    char ref[256];
    s_ref (ref, sizeof (ref), tenant, customer_id);
    json_t *known = json_object_get (self->customer_refs, ref);
    if (!known) {
        char id[32];
        snprintf (id, sizeof (id), "CUST-%06lld", ++self->customer_seq);
        json_object_set_new (input, "id", json_string (id));
        json_object_set_new (input, "createdAt", s_now_json ());
        json_object_set_new (input, "updatedAt", s_now_json ());
        json_object_set_new (input, "revision", json_integer (1));
        json_object_set (self->customers, id, input);
        json_object_set_new (self->customer_refs, ref, json_string (id));
        s_effect (self, "customers", id, "creates");
        s_result_json (result, 201, input);
        return;
    }
    const char *id = json_string_value (known);
    json_t *customer = json_object_get (self->customers, id);
    json_t *old_version = json_object_get (customer, "version");
    json_t *new_version = json_object_get (input, "version");
    if (old_version && new_version
        && json_integer_value (new_version)
               < json_integer_value (old_version)) {
        char detail[128];
        snprintf (detail, sizeof (detail),
                  "version %lld is older than the stored version %lld",
                  (long long) json_integer_value (new_version),
                  (long long) json_integer_value (old_version));
        s_result_problem (result, 409, "stale-version", "Stale Version", detail,
                          "version", json_pack ("{s:s}", "id", id));
        json_decref (input);
        return;
    }
    json_object_del (customer, "email");
    json_object_del (customer, "address");
    json_object_update (customer, input);
    json_decref (input);
    json_object_set_new (customer, "updatedAt", s_now_json ());
    s_count (customer, "revision", 1);
    s_effect (self, "customers", id, "updates");
    s_result_json (result, 200, json_incref (customer));
}

static void
s_customer_get (erpsim_server_t *self,
                cw_http_request_t *request,
                result_t *result)
{
    const char *id = cw_http_request_param (request, "id");
    json_t *customer = json_object_get (self->customers, id);
    if (customer)
        s_result_json (result, 200, json_incref (customer));
    else
        s_not_found (result, "customer", id);
}

//  Orders -------------------------------------------------------------------

static bool
s_order_closed (json_t *order)
{
    const char *status = json_string_value (json_object_get (order, "status"));
    return strcmp (status, "cancelled") == 0
           || strcmp (status, "completed") == 0;
}

static bool
s_customer_known (erpsim_server_t *self,
                  const char *tenant,
                  const char *customer_id)
{
    char ref[256];
    s_ref (ref, sizeof (ref), tenant, customer_id);
    return json_object_get (self->customer_refs, ref) != NULL;
}

static void
s_order_create (erpsim_server_t *self,
                cw_http_request_t *request,
                result_t *result)
{
    erpsim_problem_t problem;
    json_t *input = erpsim_validate_order (cw_http_request_body (request),
                                           cw_http_request_body_size (request),
                                           false, &problem);
    if (!input) {
        s_result_invalid (result, &problem);
        return;
    }
    const char *tenant = json_string_value (json_object_get (input, "tenant"));
    const char *order_id =
        json_string_value (json_object_get (input, "orderId"));
    const char *customer_id =
        json_string_value (json_object_get (input, "customerId"));
    char ref[256];
    s_ref (ref, sizeof (ref), tenant, order_id);
    json_t *known = json_object_get (self->order_refs, ref);
    if (known) {
        s_result_problem (result, 409, "order-exists", "Order Exists",
                          "an order with this tenant and orderId exists",
                          "orderId", json_pack ("{s:O}", "id", known));
        json_decref (input);
        return;
    }
    if (self->config.require_customer
        && !s_customer_known (self, tenant, customer_id)) {
        s_result_problem (result, 422, "unknown-customer", "Unknown Customer",
                          "no customer with this tenant and customerId",
                          "customerId", NULL);
        json_decref (input);
        return;
    }
    char id[32];
    snprintf (id, sizeof (id), "ORD-%06lld", ++self->order_seq);
    json_object_set_new (input, "id", json_string (id));
    if (!json_object_get (input, "status"))
        json_object_set_new (input, "status", json_string ("new"));
    json_object_set_new (input, "paymentStatus", json_string ("none"));
    json_object_set_new (input, "createdAt", s_now_json ());
    json_object_set_new (input, "updatedAt", s_now_json ());
    json_object_set_new (input, "revision", json_integer (1));
    json_object_set (self->orders, id, input);
    json_object_set_new (self->order_refs, ref, json_string (id));
    json_array_append_new (self->order_ids, json_string (id));
    s_effect (self, "orders", id, "creates");
    s_result_json (result, 201, input);
}

//  Finds the order of the {id} parameter; sets a 404 result if none.
static json_t *
s_order_find (erpsim_server_t *self,
              cw_http_request_t *request,
              result_t *result)
{
    const char *id = cw_http_request_param (request, "id");
    json_t *order = json_object_get (self->orders, id);
    if (!order)
        s_not_found (result, "order", id);
    return order;
}

//  Refuses changes to closed orders and stale versions (409).
static bool
s_order_changeable (json_t *order, json_t *input, result_t *result)
{
    if (s_order_closed (order)) {
        s_result_problem (result, 409, "order-closed", "Order Closed",
                          "the order is cancelled or completed", "status",
                          NULL);
        return false;
    }
    json_t *old_version = json_object_get (order, "version");
    json_t *new_version = json_object_get (input, "version");
    if (old_version && new_version
        && json_integer_value (new_version)
               < json_integer_value (old_version)) {
        s_result_problem (result, 409, "stale-version", "Stale Version",
                          "the version is older than the stored version",
                          "version", NULL);
        return false;
    }
    return true;
}

static void
s_order_update (erpsim_server_t *self,
                cw_http_request_t *request,
                result_t *result)
{
    json_t *order = s_order_find (self, request, result);
    if (!order)
        return;
    erpsim_problem_t problem;
    json_t *input = erpsim_validate_order (cw_http_request_body (request),
                                           cw_http_request_body_size (request),
                                           true, &problem);
    if (!input) {
        s_result_invalid (result, &problem);
        return;
    }
    if (s_order_changeable (order, input, result)) {
        json_object_update (order, input);
        json_object_set_new (order, "updatedAt", s_now_json ());
        s_count (order, "revision", 1);
        s_effect (self, "orders", cw_http_request_param (request, "id"),
                  "updates");
        s_result_json (result, 200, json_incref (order));
    }
    json_decref (input);
}

static void
s_order_status (erpsim_server_t *self,
                cw_http_request_t *request,
                result_t *result)
{
    json_t *order = s_order_find (self, request, result);
    if (!order)
        return;
    erpsim_problem_t problem;
    json_t *input =
        erpsim_validate_status (cw_http_request_body (request),
                                cw_http_request_body_size (request), &problem);
    if (!input) {
        s_result_invalid (result, &problem);
        return;
    }
    const char *status = json_string_value (json_object_get (input, "status"));
    const char *current = json_string_value (json_object_get (order, "status"));
    if (strcmp (status, current) == 0)
        s_result_json (result, 200, json_incref (order));  //  No change
    else if (s_order_changeable (order, input, result)) {
        json_object_set_new (order, "previousStatus", json_string (current));
        json_object_update (order, input);
        json_object_set_new (order, "updatedAt", s_now_json ());
        s_count (order, "revision", 1);
        s_effect (self, "orders", cw_http_request_param (request, "id"),
                  "updates");
        s_result_json (result, 200, json_incref (order));
    }
    json_decref (input);
}

static void
s_order_get (erpsim_server_t *self,
             cw_http_request_t *request,
             result_t *result)
{
    json_t *order = s_order_find (self, request, result);
    if (order)
        s_result_json (result, 200, json_incref (order));
}

static void
s_order_search (erpsim_server_t *self,
                cw_http_request_t *request,
                result_t *result)
{
    const char *names[] = {"tenant", "orderRef"};
    for (int index = 0; index < 2; index++) {
        const char *value = cw_http_request_query (request, names[index]);
        if (!value || !*value) {
            char detail[96];
            snprintf (detail, sizeof (detail),
                      "query argument \"%s\" is required", names[index]);
            s_result_problem (result, 400, "missing-query",
                              "Missing Query Argument", detail, names[index],
                              NULL);
            return;
        }
    }
    char ref[512];
    s_ref (ref, sizeof (ref), cw_http_request_query (request, "tenant"),
           cw_http_request_query (request, "orderRef"));
    json_t *items = json_array ();
    json_t *id = json_object_get (self->order_refs, ref);
    if (id)
        json_array_append (
            items, json_object_get (self->orders, json_string_value (id)));
    s_result_json (result, 200, json_pack ("{s:o}", "items", items));
}

//  Feeds --------------------------------------------------------------------

static void
s_list (cw_http_request_t *request, json_t *feed, result_t *result)
{
    erpsim_problem_t problem;
    int64_t since, limit;
    if (erpsim_validate_query_int ("since",
                                   cw_http_request_query (request, "since"), 0,
                                   INT64_MAX, 0, &since, &problem)
        || erpsim_validate_query_int (
            "limit", cw_http_request_query (request, "limit"), 1,
            LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &limit, &problem)) {
        s_result_invalid (result, &problem);
        return;
    }
    json_t *items = json_array ();
    size_t size = json_array_size (feed);
    int64_t next = since;
    for (size_t index =
             (size_t) (since < (int64_t) size ? since : (int64_t) size);
         index < size && (int64_t) json_array_size (items) < limit; index++) {
        json_array_append (items, json_array_get (feed, index));
        next = (int64_t) index + 1;
    }
    s_result_json (
        result, 200,
        json_pack ("{s:o, s:I}", "items", items, "next", (json_int_t) next));
}

static void
s_invoice_list (erpsim_server_t *self,
                cw_http_request_t *request,
                result_t *result)
{
    s_list (request, self->invoices, result);
}

static void
s_price_list (erpsim_server_t *self,
              cw_http_request_t *request,
              result_t *result)
{
    s_list (request, self->prices, result);
}

static void
s_payment_list (erpsim_server_t *self,
                cw_http_request_t *request,
                result_t *result)
{
    s_list (request, self->payments, result);
}

static json_t *
s_invoice_find (erpsim_server_t *self,
                cw_http_request_t *request,
                result_t *result)
{
    const char *id = cw_http_request_param (request, "id");
    json_t *index = json_object_get (self->invoice_index, id);
    if (!index) {
        s_not_found (result, "invoice", id);
        return NULL;
    }
    return json_array_get (self->invoices, (size_t) json_integer_value (index));
}

static void
s_invoice_get (erpsim_server_t *self,
               cw_http_request_t *request,
               result_t *result)
{
    json_t *invoice = s_invoice_find (self, request, result);
    if (invoice)
        s_result_json (result, 200, json_incref (invoice));
}

static void
s_invoice_document (erpsim_server_t *self,
                    cw_http_request_t *request,
                    result_t *result)
{
    json_t *invoice = s_invoice_find (self, request, result);
    if (!invoice)
        return;
    result->status = 200;
    result->content_type = "application/pdf";
    result->body = erpsim_pdf_invoice (
        json_string_value (json_object_get (invoice, "number")),
        json_string_value (json_object_get (invoice, "orderId")),
        json_integer_value (json_object_get (invoice, "amountMinor")),
        json_string_value (json_object_get (invoice, "currency")),
        &result->size);
}

static void
s_generate_price (erpsim_server_t *self)
{
    char article[32], key[64];
    snprintf (article, sizeof (article), "A-%04u",
              (unsigned) randombytes_uniform (ARTICLES) + 1);
    const char *list = randombytes_uniform (2) ? "b2b" : "default";
    snprintf (key, sizeof (key), "%s\x1f%s", article, list);
    s_count (self->price_versions, key, 1);
    json_int_t version =
        json_integer_value (json_object_get (self->price_versions, key));
    json_int_t seq = (json_int_t) json_array_size (self->prices) + 1;
    json_t *price = json_pack (
        "{s:I, s:s, s:s, s:I, s:s, s:o, s:I}", "seq", seq, "articleNumber",
        article, "priceList", list, "amountMinor",
        (json_int_t) (100 + randombytes_uniform (99900)), "currency", "EUR",
        "effectiveAt", s_now_json (), "externalVersion", version);
    json_array_append_new (self->prices, price);
}

//  Invoices the next order without one; false when there is none.
static bool
s_generate_invoice (erpsim_server_t *self)
{
    while (self->invoice_next < json_array_size (self->order_ids)) {
        const char *order_id = json_string_value (
            json_array_get (self->order_ids, self->invoice_next++));
        json_t *order = json_object_get (self->orders, order_id);
        if (!order
            || strcmp (json_string_value (json_object_get (order, "status")),
                       "cancelled")
                   == 0)
            continue;
        json_int_t seq = (json_int_t) json_array_size (self->invoices) + 1;
        char id[32], number[32];
        snprintf (id, sizeof (id), "INV-%06lld", (long long) seq);
        snprintf (number, sizeof (number), "R-%08lld", (long long) seq);
        json_t *invoice = json_pack (
            "{s:I, s:s, s:s, s:O, s:O, s:s, s:O, s:O, s:o, s:i}", "seq", seq,
            "id", id, "number", number, "tenant",
            json_object_get (order, "tenant"), "orderId",
            json_object_get (order, "orderId"), "erpOrderId", order_id,
            "amountMinor", json_object_get (order, "totalMinor"), "currency",
            json_object_get (order, "currency"), "issuedAt", s_now_json (),
            "externalVersion", 1);
        json_array_append_new (self->invoices, invoice);
        json_object_set_new (self->invoice_index, id, json_integer (seq - 1));
        json_object_set_new (order, "invoiceId", json_string (id));
        return true;
    }
    return false;
}

//  Advances the payment of the next order that has one to make.
static bool
s_generate_payment (erpsim_server_t *self)
{
    size_t count = json_array_size (self->order_ids);
    for (size_t scan = 0; scan < count && scan < PAYMENT_SCAN_MAX; scan++) {
        size_t index = (self->payment_next + scan) % count;
        const char *order_id =
            json_string_value (json_array_get (self->order_ids, index));
        json_t *order = json_object_get (self->orders, order_id);
        const char *status =
            json_string_value (json_object_get (order, "paymentStatus"));
        const char *next = strcmp (status, "none") == 0         ? "authorized"
                           : strcmp (status, "authorized") == 0 ? "captured"
                                                                : NULL;
        if (!next)
            continue;
        self->payment_next = index + 1;
        json_object_set_new (order, "paymentStatus", json_string (next));
        s_count (order, "paymentVersion", 1);
        json_int_t seq = (json_int_t) json_array_size (self->payments) + 1;
        json_t *payment = json_pack (
            "{s:I, s:O, s:O, s:s, s:s, s:O, s:O, s:O, s:o}", "seq", seq,
            "tenant", json_object_get (order, "tenant"), "orderId",
            json_object_get (order, "orderId"), "erpOrderId", order_id,
            "status", next, "amountMinor",
            json_object_get (order, "totalMinor"), "currency",
            json_object_get (order, "currency"), "externalVersion",
            json_object_get (order, "paymentVersion"), "at", s_now_json ());
        json_array_append_new (self->payments, payment);
        return true;
    }
    return false;
}

//  Generates up to count items of a feed; returns how many it made.
static long long
s_generate (erpsim_server_t *self, int feed, long long count)
{
    long long made = 0;
    for (; made < count; made++) {
        bool ok = true;
        if (feed == FEED_PRICES)
            s_generate_price (self);
        else if (feed == FEED_INVOICES)
            ok = s_generate_invoice (self);
        else
            ok = s_generate_payment (self);
        if (!ok)
            break;
    }
    return made;
}

static void *
s_feed_thread (void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    pthread_mutex_lock (&self->mutex);
    long long last = s_now_msec ();
    while (!self->stopping) {
        struct timespec deadline;
        clock_gettime (CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += FEED_TICK_MSEC * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait (&self->cond, &self->mutex, &deadline);
        long long now = s_now_msec ();
        for (int feed = 0; feed < 3; feed++) {
            self->credit[feed] +=
                self->rates[feed] * (double) (now - last) / 1000.0;
            long long owed = (long long) self->credit[feed];
            if (owed > 0) {
                s_generate (self, feed, owed);
                //  Items that could not be made (no orders) are not owed
                self->credit[feed] -= (double) owed;
            }
        }
        last = now;
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

//  Faults -------------------------------------------------------------------

//  Replaces the fault configuration (validated JSON, borrowed).
static void
s_faults_set (erpsim_server_t *self, json_t *config)
{
    free (self->faults);
    self->fault_count = json_object_size (config);
    self->faults = (route_faults_t *) calloc (self->fault_count + 1,
                                              sizeof (route_faults_t));
    assert (self->faults);
    size_t index = 0;
    const char *key;
    json_t *value;
    json_object_foreach (config, key, value)
    {
        erpsim_problem_t problem;
        snprintf (self->faults[index].key, sizeof (self->faults[index].key),
                  "%s", key);
        int rc = erpsim_validate_faults (value, key,
                                         &self->faults[index].faults, &problem);
        assert (rc == 0);
        index++;
    }
    json_decref (self->fault_config);
    self->fault_config = json_deep_copy (config);
}

//  The knobs for a route: its own entry, else "* pattern", else "*".
static erpsim_faults_t
s_faults_for (erpsim_server_t *self, const erpsim_route_t *route)
{
    erpsim_faults_t faults;
    memset (&faults, 0, sizeof (faults));
    char any[ROUTE_KEY_MAX + 4];
    snprintf (any, sizeof (any), "* %s", route->pattern);
    int best = 0;
    for (size_t index = 0; index < self->fault_count; index++) {
        const char *key = self->faults[index].key;
        int rank = strcmp (key, route->key) == 0 ? 3
                   : strcmp (key, any) == 0      ? 2
                   : strcmp (key, "*") == 0      ? 1
                                                 : 0;
        if (rank > best) {
            best = rank;
            faults = self->faults[index].faults;
        }
    }
    return faults;
}

//  Sleeps msec or until stop; the mutex must not be held.
static void
s_sleep (erpsim_server_t *self, long long msec)
{
    if (msec <= 0)
        return;
    struct timespec deadline;
    clock_gettime (CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += msec / 1000;
    deadline.tv_nsec += (msec % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock (&self->mutex);
    while (!self->stopping)
        if (pthread_cond_timedwait (&self->cond, &self->mutex, &deadline)
            == ETIMEDOUT)
            break;
    pthread_mutex_unlock (&self->mutex);
}

static long long
s_delay (const erpsim_faults_t *faults)
{
    double delay = faults->latency_msec;
    if (faults->jitter_msec > 0) {
        //  u in (0, 1]
        double u = ((double) randombytes_uniform (1000000) + 1) / 1000000.0;
        if (faults->jitter == ERPSIM_JITTER_EXPONENTIAL)
            delay += -log (u) * faults->jitter_msec;
        else
            delay += u * faults->jitter_msec;
    }
    if (delay > ERPSIM_DELAY_MAX_MSEC)
        delay = ERPSIM_DELAY_MAX_MSEC;
    return (long long) delay;
}

static bool
s_outage (erpsim_server_t *self)
{
    pthread_mutex_lock (&self->mutex);
    bool outage = s_now_msec () < self->outage_until;
    pthread_mutex_unlock (&self->mutex);
    return outage;
}

static bool
s_accept (void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    if (!s_outage (self))
        return true;
    pthread_mutex_lock (&self->mutex);
    s_count (self->injected, "outageRefused", 1);
    pthread_mutex_unlock (&self->mutex);
    return false;
}

//  The API request path -------------------------------------------------

static bool
s_authorized (erpsim_server_t *self, cw_http_request_t *request)
{
    const char *presented = cw_http_request_header (request, "X-Api-Key");
    const char *authorization =
        cw_http_request_header (request, "Authorization");
    if (!presented && authorization
        && strncasecmp (authorization, "Bearer ", 7) == 0)
        presented = authorization + 7;
    if (!presented)
        return false;
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) presented,
                        strlen (presented));
    return sodium_memcmp (hash, self->api_key_hash, sizeof (hash)) == 0;
}

static void
s_request_hash (cw_http_request_t *request, char *hex, size_t size)
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    const char *method = cw_http_request_method (request);
    const char *path = cw_http_request_path (request);
    crypto_hash_sha256_update (&state, (const unsigned char *) method,
                               strlen (method));
    crypto_hash_sha256_update (&state, (const unsigned char *) "\n", 1);
    crypto_hash_sha256_update (&state, (const unsigned char *) path,
                               strlen (path));
    crypto_hash_sha256_update (&state, (const unsigned char *) "\n", 1);
    crypto_hash_sha256_update (
        &state, (const unsigned char *) cw_http_request_body (request),
        cw_http_request_body_size (request));
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&state, hash);
    sodium_bin2hex (hex, size, hash, sizeof (hash));
}

//  Remembers a new in-flight key, forgetting the oldest when full. The
//  mutex is held.
static void
s_key_reserve (erpsim_server_t *self, const char *key, const char *hash)
{
    size_t slot = self->key_ring_head;
    if (self->key_ring[slot]) {
        json_object_del (self->keys, self->key_ring[slot]);
        free (self->key_ring[slot]);
    }
    self->key_ring[slot] = strdup (key);
    assert (self->key_ring[slot]);
    self->key_ring_head = (slot + 1) % self->config.idempotency_max;
    json_object_set_new (self->keys, key,
                         json_pack ("{s:s, s:b, s:I}", "hash", hash, "done", 0,
                                    "slot", (json_int_t) slot));
}

typedef enum { KEY_NEW, KEY_ANSWERED } key_outcome_t;

//  Looks up the Idempotency-Key: reserves a new one, or answers (replay,
//  409 in flight, 422 other body, 400 bad key).
static key_outcome_t
s_key_check (erpsim_server_t *self,
             const char *key,
             const char *hash,
             result_t *result)
{
    size_t length = strlen (key);
    bool sane = length >= 1 && length <= KEY_MAX;
    for (size_t index = 0; sane && index < length; index++)
        if (key[index] < 0x20 || key[index] > 0x7e)
            sane = false;
    if (!sane) {
        s_result_problem (result, 400, "invalid-header", "Invalid Header",
                          "Idempotency-Key must be 1 to 255 printable ASCII "
                          "characters",
                          "Idempotency-Key", NULL);
        return KEY_ANSWERED;
    }
    key_outcome_t outcome = KEY_ANSWERED;
    pthread_mutex_lock (&self->mutex);
    json_t *entry = json_object_get (self->keys, key);
    if (!entry) {
        s_key_reserve (self, key, hash);
        outcome = KEY_NEW;
    }
    else if (strcmp (json_string_value (json_object_get (entry, "hash")),
                     hash)) {
        self->key_mismatches++;
        s_result_problem (
            result, 422, "idempotency-key-reused", "Idempotency Key Reused",
            "this Idempotency-Key was used with another request body",
            "Idempotency-Key", NULL);
    }
    else if (!json_is_true (json_object_get (entry, "done"))) {
        self->key_conflicts++;
        s_result_problem (result, 409, "idempotency-key-in-flight",
                          "Request In Flight",
                          "a request with this Idempotency-Key is still being "
                          "processed; retry later",
                          "Idempotency-Key", NULL);
    }
    else {
        self->duplicate_hits++;
        json_t *body = json_object_get (entry, "body");
        result->status =
            (int) json_integer_value (json_object_get (entry, "status"));
        result->size = json_string_length (body);
        result->body = strndup (json_string_value (body), result->size);
        assert (result->body);
        result->content_type =
            json_string_value (json_object_get (entry, "problem"))
                ? "application/problem+json"
                : "application/json";
        result->replayed = true;
    }
    pthread_mutex_unlock (&self->mutex);
    return outcome;
}

//  Stores the result for key (mutex held). A key forgotten meanwhile is
//  not stored again.
static void
s_key_store (erpsim_server_t *self, const char *key, const result_t *result)
{
    json_t *entry = json_object_get (self->keys, key);
    if (!entry)
        return;
    json_object_set_new (entry, "done", json_true ());
    json_object_set_new (entry, "status", json_integer (result->status));
    json_object_set_new (entry, "body",
                         json_stringn (result->body, result->size));
    if (strcmp (result->content_type, "application/problem+json") == 0)
        json_object_set_new (entry, "problem", json_string ("yes"));
}

//  Forgets a reserved key and frees its ring slot, so that a later use
//  of the key does not leave a stale slot that would forget it early.
static void
s_key_release (erpsim_server_t *self, const char *key)
{
    pthread_mutex_lock (&self->mutex);
    json_t *entry = json_object_get (self->keys, key);
    if (entry) {
        size_t slot =
            (size_t) json_integer_value (json_object_get (entry, "slot"));
        free (self->key_ring[slot]);
        self->key_ring[slot] = NULL;
        json_object_del (self->keys, key);
    }
    pthread_mutex_unlock (&self->mutex);
}

static void
s_injected (erpsim_server_t *self, const char *kind)
{
    pthread_mutex_lock (&self->mutex);
    s_count (self->injected, kind, 1);
    pthread_mutex_unlock (&self->mutex);
}

typedef enum {
    REPLY_NORMAL,     //  Send the result
    REPLY_DROP,       //  Close without a reply
    REPLY_MALFORMED,  //  Invalid JSON instead of the body
    REPLY_TRUNCATED   //  Body cut short
} reply_mode_t;

//  Serves one API request into result; returns how to send it.
static reply_mode_t
s_serve (erpsim_server_t *self,
         erpsim_route_t *route,
         const erpsim_faults_t *route_faults,
         cw_http_request_t *request,
         result_t *result,
         char *retry_after,
         size_t retry_size)
{
    if (s_outage (self)) {
        s_injected (self, "outageDropped");
        return REPLY_DROP;
    }
    if (!s_authorized (self, request)) {
        s_result_problem (result, 401, "unauthorized", "Unauthorized",
                          "missing or wrong API key (Authorization: Bearer "
                          "or X-Api-Key)",
                          NULL, NULL);
        return REPLY_NORMAL;
    }
    const erpsim_faults_t faults = *route_faults;
    const char *key = route->mutating
                          ? cw_http_request_header (request, "Idempotency-Key")
                          : NULL;
    if (key) {
        char hash[crypto_hash_sha256_BYTES * 2 + 1];
        s_request_hash (request, hash, sizeof (hash));
        if (s_key_check (self, key, hash, result) == KEY_ANSWERED)
            return REPLY_NORMAL;
    }
    //  Before the effect: delays keep the key reserved
    s_sleep (self, s_delay (&faults));
    if (s_chance (faults.stall_rate)) {
        s_injected (self, "stall");
        s_sleep (self, faults.stall_msec);
    }
    const char *before = NULL;
    if (s_chance (faults.error_rate)) {
        before = "error";
        s_result_problem (result, 500, "injected-error", "Internal Error",
                          "injected server error (no effect)", NULL, NULL);
    }
    else if (s_chance (faults.rate_limit_rate)) {
        before = "rateLimit";
        snprintf (retry_after, retry_size, "%d", faults.retry_after_seconds);
        s_result_problem (
            result, 429, "rate-limited", "Too Many Requests",
            "injected rate limit (no effect)", NULL,
            json_pack ("{s:i}", "retryAfter", faults.retry_after_seconds));
    }
    else if (s_chance (faults.conflict_rate)) {
        before = "conflict";
        s_result_problem (result, 409, "injected-conflict", "Conflict",
                          "injected conflict (no effect)", NULL, NULL);
    }
    if (before) {
        s_injected (self, before);
        if (key)
            s_key_release (self, key);
        return REPLY_NORMAL;
    }
    //  The effect
    pthread_mutex_lock (&self->mutex);
    route->handler (self, request, result);
    assert (result->body);
    if (key)
        s_key_store (self, key, result);
    pthread_mutex_unlock (&self->mutex);
    //  After the effect
    if (s_chance (faults.error_after_effect_rate)) {
        s_injected (self, "errorAfterEffect");
        free (result->body);
        result->body = NULL;
        s_result_problem (
            result, 500, "injected-error-after-effect", "Internal Error",
            "injected server error (the effect happened)", NULL, NULL);
        return REPLY_NORMAL;
    }
    if (s_chance (faults.drop_after_effect_rate)) {
        s_injected (self, "dropAfterEffect");
        return REPLY_DROP;
    }
    if (s_chance (faults.malformed_rate)) {
        s_injected (self, "malformed");
        return REPLY_MALFORMED;
    }
    if (s_chance (faults.truncated_rate)) {
        s_injected (self, "truncated");
        return REPLY_TRUNCATED;
    }
    return REPLY_NORMAL;
}

static void
s_inflight (erpsim_server_t *self, const char *route, int by)
{
    json_t *entry = json_object_get (self->inflight, route);
    if (!entry) {
        entry = json_pack ("{s:i, s:i}", "current", 0, "max", 0);
        json_object_set_new (self->inflight, route, entry);
    }
    s_count (entry, "current", by);
    json_int_t current =
        json_integer_value (json_object_get (entry, "current"));
    if (current > json_integer_value (json_object_get (entry, "max")))
        json_object_set_new (entry, "max", json_integer (current));
    self->inflight_current += by;
    if (self->inflight_current > self->inflight_max)
        self->inflight_max = self->inflight_current;
}

static void
s_api (cw_http_request_t *request, void *arg)
{
    erpsim_route_t *route = (erpsim_route_t *) arg;
    erpsim_server_t *self = route->server;
    pthread_mutex_lock (&self->mutex);
    s_inflight (self, route->key, 1);
    erpsim_faults_t faults = s_faults_for (self, route);
    pthread_mutex_unlock (&self->mutex);

    result_t result;
    memset (&result, 0, sizeof (result));
    char retry_after[16] = "";
    reply_mode_t mode = s_serve (self, route, &faults, request, &result,
                                 retry_after, sizeof (retry_after));
    if (*retry_after)
        cw_http_reply_header (request, "Retry-After", retry_after);
    if (result.replayed)
        cw_http_reply_header (request, "Idempotent-Replayed", "true");
    if (mode == REPLY_DROP)
        cw_http_reply_drop (request);
    else if (mode == REPLY_MALFORMED) {
        //  Half the body, then garbage: never valid JSON
        size_t half = result.size / 2;
        char *text = (char *) malloc (half + 16);
        assert (text);
        memcpy (text, result.body, half);
        memcpy (text + half, "\x01{]<html>", 9);
        cw_http_reply_bytes (request, result.status, result.content_type, text,
                             half + 9);
        free (text);
    }
    else if (mode == REPLY_TRUNCATED)
        cw_http_reply_truncated (request, result.status, result.content_type,
                                 result.body, result.size + 1, result.size / 2);
    else
        cw_http_reply_bytes (request, result.status, result.content_type,
                             result.body, result.size);

    char status[16];
    snprintf (status, sizeof (status), "%d",
              mode == REPLY_DROP ? 0 : result.status);
    static const char *modes[] = {"normal", "drop", "malformed", "truncated"};
    cw_log (CW_LOG_DEBUG, "request_served", "served request", "method",
            route->method, "route", route->pattern, "#status", status, "reply",
            modes[mode], "replayed", result.replayed ? "true" : NULL,
            "correlation_id", cw_http_request_correlation_id (request), NULL);
    pthread_mutex_lock (&self->mutex);
    s_inflight (self, route->key, -1);
    json_t *counts = json_object_get (self->requests, route->key);
    if (!counts) {
        counts = json_object ();
        json_object_set_new (self->requests, route->key, counts);
    }
    s_count (counts, mode == REPLY_DROP ? "dropped" : status, 1);
    pthread_mutex_unlock (&self->mutex);
    free (result.body);
}

//  Control listener -------------------------------------------------------

static void
s_control_invalid (cw_http_request_t *request, const erpsim_problem_t *problem)
{
    json_t *extensions = NULL;
    if (*problem->field)
        extensions = json_pack ("{s:s}", "field", problem->field);
    cw_http_reply_problem (request, problem->status, problem->slug,
                           problem->title, problem->detail, extensions);
    json_decref (extensions);
}

static void
s_faults_get (cw_http_request_t *request, void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    pthread_mutex_lock (&self->mutex);
    json_t *config = json_deep_copy (self->fault_config);
    pthread_mutex_unlock (&self->mutex);
    cw_http_reply_json (request, 200, config);
    json_decref (config);
}

static void
s_faults_put (cw_http_request_t *request, void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    erpsim_problem_t problem;
    json_t *config = erpsim_validate_fault_config (
        cw_http_request_body (request), cw_http_request_body_size (request),
        &problem);
    if (!config) {
        s_control_invalid (request, &problem);
        return;
    }
    const char *unknown = erpsim_server_fault_route_unknown (config);
    if (unknown) {
        memset (&problem, 0, sizeof (problem));
        problem.status = 422;
        snprintf (problem.slug, sizeof (problem.slug), "invalid-value");
        snprintf (problem.title, sizeof (problem.title), "Invalid Value");
        snprintf (problem.field, sizeof (problem.field), "%.100s", unknown);
        snprintf (problem.detail, sizeof (problem.detail),
                  "fault route \"%.100s\" is no route erpsim serves (GET "
                  "/_control/faults lists the keys in use; see docs/erpsim.md)",
                  unknown);
        json_decref (config);
        s_control_invalid (request, &problem);
        return;
    }
    pthread_mutex_lock (&self->mutex);
    s_faults_set (self, config);
    pthread_mutex_unlock (&self->mutex);
    char routes[16];
    snprintf (routes, sizeof (routes), "%zu", json_object_size (config));
    cw_log (CW_LOG_INFO, "faults_set", "set fault configuration", "#routes",
            routes, NULL);
    cw_http_reply_json (request, 200, config);
    json_decref (config);
}

static void
s_outage_post (cw_http_request_t *request, void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    json_t *body = cw_http_request_json (request);
    if (!body)
        return;
    json_t *seconds = json_object_get (body, "seconds");
    if (!json_is_integer (seconds) || json_integer_value (seconds) < 0
        || json_integer_value (seconds) > 86400) {
        json_t *extensions = json_pack ("{s:s}", "field", "seconds");
        cw_http_reply_problem (request, 422, "invalid-value", "Invalid Value",
                               "field \"seconds\" must be an integer between "
                               "0 and 86400",
                               extensions);
        json_decref (extensions);
        json_decref (body);
        return;
    }
    pthread_mutex_lock (&self->mutex);
    self->outage_until = s_now_msec () + json_integer_value (seconds) * 1000;
    pthread_mutex_unlock (&self->mutex);
    cw_http_reply_json (request, 200, body);
    json_decref (body);
}

static json_t *
s_rates_json (erpsim_server_t *self)
{
    return json_pack ("{s:f, s:f, s:f}", "pricesPerSecond",
                      self->rates[FEED_PRICES], "invoicesPerSecond",
                      self->rates[FEED_INVOICES], "paymentsPerSecond",
                      self->rates[FEED_PAYMENTS]);
}

static void
s_feeds_get (cw_http_request_t *request, void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    pthread_mutex_lock (&self->mutex);
    json_t *rates = s_rates_json (self);
    pthread_mutex_unlock (&self->mutex);
    cw_http_reply_json (request, 200, rates);
    json_decref (rates);
}

static void
s_feeds_put (cw_http_request_t *request, void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    erpsim_problem_t problem;
    json_t *rates =
        erpsim_validate_rates (cw_http_request_body (request),
                               cw_http_request_body_size (request), &problem);
    if (!rates) {
        s_control_invalid (request, &problem);
        return;
    }
    const char *names[] = {"pricesPerSecond", "invoicesPerSecond",
                           "paymentsPerSecond"};
    pthread_mutex_lock (&self->mutex);
    for (int feed = 0; feed < 3; feed++) {
        json_t *rate = json_object_get (rates, names[feed]);
        if (rate)
            self->rates[feed] = json_number_value (rate);
    }
    json_decref (rates);
    rates = s_rates_json (self);
    pthread_mutex_unlock (&self->mutex);
    cw_http_reply_json (request, 200, rates);
    json_decref (rates);
}

static void
s_feeds_generate (cw_http_request_t *request, void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    erpsim_problem_t problem;
    json_t *counts = erpsim_validate_generate (
        cw_http_request_body (request), cw_http_request_body_size (request),
        &problem);
    if (!counts) {
        s_control_invalid (request, &problem);
        return;
    }
    json_t *made = json_object ();
    pthread_mutex_lock (&self->mutex);
    for (int feed = 0; feed < 3; feed++) {
        json_t *count = json_object_get (counts, s_feed_names[feed]);
        long long wanted = count ? (long long) json_integer_value (count) : 0;
        json_object_set_new (made, s_feed_names[feed],
                             json_integer (s_generate (self, feed, wanted)));
    }
    pthread_mutex_unlock (&self->mutex);
    cw_http_reply_json (request, 200, made);
    json_decref (made);
    json_decref (counts);
}

static void
s_introspect (cw_http_request_t *request, void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    pthread_mutex_lock (&self->mutex);
    json_t *report = json_pack (
        "{s:O, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:O, s:{s:I, s:I, "
        "s:O}, s:O, s:b, s:I}",
        "effects", self->effects, "counts", "customers",
        (json_int_t) json_object_size (self->customers), "orders",
        (json_int_t) json_object_size (self->orders), "invoices",
        (json_int_t) json_array_size (self->invoices), "prices",
        (json_int_t) json_array_size (self->prices), "payments",
        (json_int_t) json_array_size (self->payments), "duplicateKeyHits",
        (json_int_t) self->duplicate_hits, "keyMismatches",
        (json_int_t) self->key_mismatches, "keyInFlightConflicts",
        (json_int_t) self->key_conflicts, "requests", self->requests,
        "inFlight", "current", (json_int_t) self->inflight_current, "max",
        (json_int_t) self->inflight_max, "routes", self->inflight,
        "faultsInjected", self->injected, "outage",
        s_now_msec () < self->outage_until, "idempotencyKeys",
        (json_int_t) json_object_size (self->keys));
    //  Copy so the reply is made outside the lock
    json_t *copy = json_deep_copy (report);
    json_decref (report);
    pthread_mutex_unlock (&self->mutex);
    cw_http_reply_json (request, 200, copy);
    json_decref (copy);
}

//  Clears data (mutex held).
static void
s_data_clear (erpsim_server_t *self)
{
    json_object_clear (self->customers);
    json_object_clear (self->customer_refs);
    json_object_clear (self->orders);
    json_object_clear (self->order_refs);
    json_array_clear (self->order_ids);
    json_array_clear (self->invoices);
    json_object_clear (self->invoice_index);
    json_array_clear (self->prices);
    json_object_clear (self->price_versions);
    json_array_clear (self->payments);
    json_object_clear (self->keys);
    for (size_t index = 0; index < self->config.idempotency_max; index++) {
        free (self->key_ring[index]);
        self->key_ring[index] = NULL;
    }
    self->key_ring_head = 0;
    self->invoice_next = 0;
    self->payment_next = 0;
    self->customer_seq = 0;
    self->order_seq = 0;
    json_object_clear (self->effects);
}

static void
s_reset (cw_http_request_t *request, void *arg)
{
    erpsim_server_t *self = (erpsim_server_t *) arg;
    bool data = false;
    if (cw_http_request_body_size (request) > 0) {
        json_t *body = cw_http_request_json (request);
        if (!body)
            return;
        json_t *flag = json_object_get (body, "data");
        if (flag && !json_is_boolean (flag)) {
            json_t *extensions = json_pack ("{s:s}", "field", "data");
            cw_http_reply_problem (request, 422, "wrong-type", "Wrong Type",
                                   "field \"data\" must be a boolean",
                                   extensions);
            json_decref (extensions);
            json_decref (body);
            return;
        }
        data = json_is_true (flag);
        json_decref (body);
    }
    pthread_mutex_lock (&self->mutex);
    json_object_clear (self->requests);
    json_object_clear (self->injected);
    self->duplicate_hits = 0;
    self->key_mismatches = 0;
    self->key_conflicts = 0;
    self->inflight_max = self->inflight_current;
    const char *key;
    json_t *entry;
    json_object_foreach (self->inflight, key, entry)
        json_object_set (entry, "max", json_object_get (entry, "current"));
    if (data)
        s_data_clear (self);
    pthread_mutex_unlock (&self->mutex);
    json_t *reply = json_pack ("{s:b, s:b}", "reset", 1, "data", data);
    cw_http_reply_json (request, 200, reply);
    json_decref (reply);
}

//  Construction -----------------------------------------------------------

static const erpsim_route_t s_api_routes[] = {
    {"POST", "/api/v1/customers", s_customer_upsert, true, "", NULL},
    {"GET", "/api/v1/customers/{id}", s_customer_get, false, "", NULL},
    {"POST", "/api/v1/orders", s_order_create, true, "", NULL},
    {"GET", "/api/v1/orders", s_order_search, false, "", NULL},
    {"GET", "/api/v1/orders/{id}", s_order_get, false, "", NULL},
    {"PUT", "/api/v1/orders/{id}", s_order_update, true, "", NULL},
    {"POST", "/api/v1/orders/{id}/status", s_order_status, true, "", NULL},
    {"GET", "/api/v1/invoices", s_invoice_list, false, "", NULL},
    {"GET", "/api/v1/invoices/{id}", s_invoice_get, false, "", NULL},
    {"GET", "/api/v1/invoices/{id}/document", s_invoice_document, false, "",
     NULL},
    {"GET", "/api/v1/prices", s_price_list, false, "", NULL},
    {"GET", "/api/v1/payments", s_payment_list, false, "", NULL},
};

const char *
erpsim_server_fault_route_unknown (const json_t *config)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) config, key, value)
    {
        bool known = strcmp (key, "*") == 0;
        for (size_t index = 0;
             !known && index < sizeof (s_api_routes) / sizeof (s_api_routes[0]);
             index++) {
            char full[ROUTE_KEY_MAX + 4], any[ROUTE_KEY_MAX + 4];
            snprintf (full, sizeof (full), "%s %s", s_api_routes[index].method,
                      s_api_routes[index].pattern);
            snprintf (any, sizeof (any), "* %s", s_api_routes[index].pattern);
            known = strcmp (key, full) == 0 || strcmp (key, any) == 0;
        }
        if (!known)
            return key;
    }
    return NULL;
}

erpsim_server_t *
erpsim_server_new (const erpsim_server_config_t *config)
{
    assert (config);
    assert (config->host);
    assert (config->control_host);
    assert (config->api_key);
    if (sodium_init () < 0)
        return NULL;
    erpsim_server_t *self =
        (erpsim_server_t *) calloc (1, sizeof (erpsim_server_t));
    assert (self);
    self->config = *config;
    if (self->config.idempotency_max == 0)
        self->config.idempotency_max = ERPSIM_IDEMPOTENCY_MAX;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_condattr_t attributes;
    pthread_condattr_init (&attributes);
    pthread_condattr_setclock (&attributes, CLOCK_MONOTONIC);
    pthread_cond_init (&self->cond, &attributes);
    pthread_condattr_destroy (&attributes);
    crypto_hash_sha256 (self->api_key_hash,
                        (const unsigned char *) config->api_key,
                        strlen (config->api_key));
    self->customers = json_object ();
    self->customer_refs = json_object ();
    self->orders = json_object ();
    self->order_refs = json_object ();
    self->order_ids = json_array ();
    self->invoices = json_array ();
    self->invoice_index = json_object ();
    self->prices = json_array ();
    self->price_versions = json_object ();
    self->payments = json_array ();
    self->keys = json_object ();
    self->key_ring =
        (char **) calloc (self->config.idempotency_max, sizeof (char *));
    assert (self->key_ring);
    self->effects = json_object ();
    self->requests = json_object ();
    self->inflight = json_object ();
    self->injected = json_object ();
    json_t *faults =
        config->faults ? json_deep_copy (config->faults) : json_object ();
    s_faults_set (self, faults);
    json_decref (faults);
    self->rates[FEED_PRICES] = config->prices_per_second;
    self->rates[FEED_INVOICES] = config->invoices_per_second;
    self->rates[FEED_PAYMENTS] = config->payments_per_second;
    self->outage_until = s_now_msec () + config->outage_seconds * 1000LL;

    self->route_count = sizeof (s_api_routes) / sizeof (s_api_routes[0]);
    self->routes =
        (erpsim_route_t *) calloc (self->route_count, sizeof (erpsim_route_t));
    assert (self->routes);
    self->api = cw_http_new (config->host, config->port, config->threads);
    self->control = cw_http_new (config->control_host, config->control_port, 0);
    assert (self->api && self->control);
    for (size_t index = 0; index < self->route_count; index++) {
        erpsim_route_t *route = &self->routes[index];
        *route = s_api_routes[index];
        route->server = self;
        snprintf (route->key, sizeof (route->key), "%s %s", route->method,
                  route->pattern);
        cw_http_route (self->api, route->method, route->pattern, s_api, route);
    }
    cw_http_set_accept (self->api, s_accept, self);
    cw_http_route (self->control, "GET", "/_control/faults", s_faults_get,
                   self);
    cw_http_route (self->control, "PUT", "/_control/faults", s_faults_put,
                   self);
    cw_http_route (self->control, "POST", "/_control/outage", s_outage_post,
                   self);
    cw_http_route (self->control, "GET", "/_control/feeds", s_feeds_get, self);
    cw_http_route (self->control, "PUT", "/_control/feeds", s_feeds_put, self);
    cw_http_route (self->control, "POST", "/_control/feeds/generate",
                   s_feeds_generate, self);
    cw_http_route (self->control, "GET", "/_introspect", s_introspect, self);
    cw_http_route (self->control, "POST", "/_introspect/reset", s_reset, self);
    return self;
}

static void
s_stop (erpsim_server_t *self)
{
    pthread_mutex_lock (&self->mutex);
    self->stopping = true;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->mutex);
    if (self->feed_running) {
        pthread_join (self->feed_thread, NULL);
        self->feed_running = false;
    }
    cw_http_stop (self->api);
    cw_http_stop (self->control);
}

void
erpsim_server_destroy (erpsim_server_t **self_p)
{
    assert (self_p);
    erpsim_server_t *self = *self_p;
    if (!self)
        return;
    s_stop (self);
    cw_http_destroy (&self->api);
    cw_http_destroy (&self->control);
    s_data_clear (self);
    json_decref (self->customers);
    json_decref (self->customer_refs);
    json_decref (self->orders);
    json_decref (self->order_refs);
    json_decref (self->order_ids);
    json_decref (self->invoices);
    json_decref (self->invoice_index);
    json_decref (self->prices);
    json_decref (self->price_versions);
    json_decref (self->payments);
    json_decref (self->keys);
    json_decref (self->effects);
    json_decref (self->requests);
    json_decref (self->inflight);
    json_decref (self->injected);
    json_decref (self->fault_config);
    free (self->key_ring);
    free (self->faults);
    free (self->routes);
    pthread_cond_destroy (&self->cond);
    pthread_mutex_destroy (&self->mutex);
    sodium_memzero (self->api_key_hash, sizeof (self->api_key_hash));
    free (self);
    *self_p = NULL;
}

int
erpsim_server_start (erpsim_server_t *self, char *error, size_t size)
{
    assert (self);
    if (cw_http_start (self->api, error, size)
        || cw_http_start (self->control, error, size))
        return -1;
    if (pthread_create (&self->feed_thread, NULL, s_feed_thread, self)) {
        snprintf (error, size, "could not start feed thread");
        return -1;
    }
    self->feed_running = true;
    return 0;
}

int
erpsim_server_port (erpsim_server_t *self)
{
    assert (self);
    return cw_http_port (self->api);
}

int
erpsim_server_control_port (erpsim_server_t *self)
{
    assert (self);
    return cw_http_port (self->control);
}

int
erpsim_server_write_port_files (erpsim_server_t *self,
                                const char *port_file,
                                const char *control_port_file,
                                char *error,
                                size_t size)
{
    assert (self);
    if (port_file
        && cw_http_write_port_file (self->api, port_file, error, size))
        return -1;
    if (control_port_file
        && cw_http_write_port_file (self->control, control_port_file, error,
                                    size))
        return -1;
    return 0;
}
