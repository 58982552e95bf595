/*  =========================================================================
    cw_event - the events and sync-API bodies of the boundary contract,
    with a payload validator for each

    Validators check the core fields of the contract's tables: presence,
    JSON type, format and consistency (order totals). Fields they do not
    know are allowed (a producer may add optional fields within a version);
    a known field with a wrong type is always rejected.
    =========================================================================
*/
#include "cw_event.h"
#include "cw_envelope.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define S_PREFIX_MAX 128  //  Field path prefix for reasons

//  Where a validator is: the object, its path prefix, the reason buffer
typedef struct {
    const json_t *object;       //  Object whose fields are checked
    char prefix[S_PREFIX_MAX];  //  "data.", "data.lines[2]." or ""
    char *reason;               //  Caller's buffer
    size_t reason_size;         //  Its size
} s_scope_t;

static int s_fail (s_scope_t *scope, const char *name, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (s_scope_t *scope, const char *name, const char *format, ...)
{
    if (!scope->reason || scope->reason_size == 0)
        return -1;
    char problem[CW_ENVELOPE_REASON_SIZE];
    va_list args;
    va_start (args, format);
    vsnprintf (problem, sizeof (problem), format, args);
    va_end (args);
    if (name)
        snprintf (scope->reason, scope->reason_size, "field \"%s%s\": %s",
                  scope->prefix, name, problem);
    else {
        //  The scope's own object: its path is the prefix without the dot
        size_t length = strlen (scope->prefix);
        int shown = length && scope->prefix[length - 1] == '.'
                        ? (int) length - 1
                        : (int) length;
        if (shown)
            snprintf (scope->reason, scope->reason_size, "field \"%.*s\": %s",
                      shown, scope->prefix, problem);
        else
            snprintf (scope->reason, scope->reason_size, "body %s", problem);
    }
    return -1;
}

//  A scope for a member object or an array element of a parent scope
static void s_child (s_scope_t *child,
                     const s_scope_t *parent,
                     const json_t *object,
                     const char *format,
                     ...) __attribute__ ((format (printf, 4, 5)));

static void
s_child (s_scope_t *child,
         const s_scope_t *parent,
         const json_t *object,
         const char *format,
         ...)
{
    child->object = object;
    child->reason = parent->reason;
    child->reason_size = parent->reason_size;
    size_t length = strlen (parent->prefix);
    memcpy (child->prefix, parent->prefix, length + 1);
    va_list args;
    va_start (args, format);
    vsnprintf (child->prefix + length, S_PREFIX_MAX - length, format, args);
    va_end (args);
}

//  Gets a member; -1 if required and missing
static int
s_member (s_scope_t *scope,
          const char *name,
          bool required,
          const json_t **value_p)
{
    *value_p = json_object_get (scope->object, name);
    if (!*value_p && required)
        return s_fail (scope, name, "missing");
    return 0;
}

//  ---------------------------------------------------------------------
//  Field kinds

static bool
s_id_chars (const char *text)
{
    for (const char *cursor = text; *cursor; cursor++) {
        char c = *cursor;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool
cw_event_id_valid (const char *text)
{
    assert (text);
    size_t length = strlen (text);
    return length > 0 && length <= CW_EVENT_ID_MAX && s_id_chars (text);
}

static int
s_string (s_scope_t *scope,
          const char *name,
          bool required,
          const char **text_p)
{
    const json_t *value;
    *text_p = NULL;
    if (s_member (scope, name, required, &value))
        return -1;
    if (!value)
        return 0;
    if (!json_is_string (value))
        return s_fail (scope, name, "must be a string");
    *text_p = json_string_value (value);
    return 0;
}

//  Identifier: 1..CW_EVENT_ID_MAX of [A-Za-z0-9._-]; these end up inside
//  idempotency keys, where ':' separates parts
static int
s_id (s_scope_t *scope, const char *name, bool required, const char **text_p)
{
    const char *text;
    if (s_string (scope, name, required, &text))
        return -1;
    if (text) {
        if (!cw_event_id_valid (text))
            return s_fail (scope, name,
                           "must be 1 to %d letters, digits, '.', '_' or '-'",
                           CW_EVENT_ID_MAX);
    }
    if (text_p)
        *text_p = text;
    return 0;
}

//  Free text: 1..max bytes, no control characters
static int
s_text (s_scope_t *scope,
        const char *name,
        bool required,
        size_t max,
        const char **text_p)
{
    const char *text;
    if (s_string (scope, name, required, &text))
        return -1;
    if (text) {
        size_t length = strlen (text);
        if (length == 0 || length > max)
            return s_fail (scope, name, "must be 1 to %zu bytes, not %zu", max,
                           length);
        for (size_t index = 0; index < length; index++)
            if ((unsigned char) text[index] < 0x20 || text[index] == 0x7f)
                return s_fail (scope, name,
                               "must not contain control characters");
    }
    if (text_p)
        *text_p = text;
    return 0;
}

static int
s_integer (s_scope_t *scope,
           const char *name,
           bool required,
           json_int_t minimum,
           json_int_t maximum,
           json_int_t *number_p)
{
    const json_t *value;
    if (s_member (scope, name, required, &value))
        return -1;
    if (!value)
        return 0;
    if (!json_is_integer (value))
        return s_fail (scope, name, "must be an integer");
    json_int_t number = json_integer_value (value);
    if (number < minimum || number > maximum)
        return s_fail (scope, name, "must be between %lld and %lld, not %lld",
                       (long long) minimum, (long long) maximum,
                       (long long) number);
    if (number_p)
        *number_p = number;
    return 0;
}

static int
s_version (s_scope_t *scope, const char *name, bool required)
{
    return s_integer (scope, name, required, 1, INT64_MAX, NULL);
}

//  Money amount: integer minor units, never floating point
static int
s_amount (s_scope_t *scope,
          const char *name,
          bool required,
          json_int_t *amount_p)
{
    const json_t *value;
    if (s_member (scope, name, required, &value))
        return -1;
    if (!value)
        return 0;
    if (json_is_real (value))
        return s_fail (scope, name,
                       "must be an integer amount in minor units, not a "
                       "floating-point number");
    return s_integer (scope, name, required, 0, CW_EVENT_AMOUNT_MAX, amount_p);
}

static int
s_currency (s_scope_t *scope, const char *name, bool required)
{
    const char *text;
    if (s_string (scope, name, required, &text))
        return -1;
    if (text
        && !(strlen (text) == 3 && text[0] >= 'A' && text[0] <= 'Z'
             && text[1] >= 'A' && text[1] <= 'Z' && text[2] >= 'A'
             && text[2] <= 'Z'))
        return s_fail (scope, name,
                       "must be an ISO 4217 code of three upper-case letters");
    return 0;
}

static int
s_time (s_scope_t *scope, const char *name, bool required)
{
    const char *text;
    if (s_string (scope, name, required, &text))
        return -1;
    if (text && !cw_envelope_time_valid (text))
        return s_fail (scope, name,
                       "must be an RFC 3339 timestamp with offset, like "
                       "\"2025-01-31T10:02:03Z\"");
    return 0;
}

static int
s_enum (s_scope_t *scope,
        const char *name,
        bool required,
        const char *const *set,
        const char **text_p)
{
    const char *text;
    if (s_string (scope, name, required, &text))
        return -1;
    if (text_p)
        *text_p = text;
    if (!text)
        return 0;
    char list[CW_ENVELOPE_REASON_SIZE / 2] = "";
    size_t length = 0;
    for (size_t index = 0; set[index]; index++) {
        if (strcmp (text, set[index]) == 0)
            return 0;
        int written = snprintf (list + length, sizeof (list) - length, "%s%s",
                                index ? ", " : "", set[index]);
        if (written > 0 && (size_t) written < sizeof (list) - length)
            length += (size_t) written;
    }
    return s_fail (scope, name, "must be one of: %s", list);
}

static int
s_url (s_scope_t *scope, const char *name, bool required, const char **text_p)
{
    const char *text;
    if (s_text (scope, name, required, CW_EVENT_URL_MAX, &text))
        return -1;
    if (text
        && (strncmp (text, "https://", 8) != 0
            && strncmp (text, "http://", 7) != 0))
        return s_fail (scope, name, "must be an http or https URL");
    if (text && strchr (text, ' '))
        return s_fail (scope, name, "must not contain spaces");
    if (text_p)
        *text_p = text;
    return 0;
}

static int
s_object (s_scope_t *scope,
          const char *name,
          bool required,
          const json_t **object_p)
{
    if (s_member (scope, name, required, object_p))
        return -1;
    if (*object_p && !json_is_object (*object_p))
        return s_fail (scope, name, "must be an object");
    return 0;
}

static int
s_array (s_scope_t *scope,
         const char *name,
         bool required,
         size_t maximum,
         const json_t **array_p)
{
    if (s_member (scope, name, required, array_p))
        return -1;
    if (!*array_p)
        return 0;
    if (!json_is_array (*array_p))
        return s_fail (scope, name, "must be an array");
    size_t size = json_array_size (*array_p);
    if (size == 0 || size > maximum)
        return s_fail (scope, name, "must have 1 to %zu elements, not %zu",
                       maximum, size);
    return 0;
}

//  ---------------------------------------------------------------------
//  Closed sets (documented in docs/envelope.md)

static const char *const s_order_statuses[] = {
    "pending",   "confirmed", "processing", "shipped",
    "delivered", "cancelled", "returned",   NULL};
static const char *const s_payment_statuses[] = {
    "pending",  "authorized", "paid",      "partially_refunded",
    "refunded", "failed",     "cancelled", NULL};
static const char *const s_sync_statuses[] = {"created", "updated", "unchanged",
                                              NULL};

//  ---------------------------------------------------------------------
//  Shared parts

static int
s_customer (s_scope_t *scope)
{
    const json_t *customer;
    if (s_object (scope, "customer", true, &customer))
        return -1;
    s_scope_t inner;
    s_child (&inner, scope, customer, "customer.");
    const char *email;
    if (s_text (&inner, "name", true, CW_EVENT_TEXT_MAX, NULL)
        || s_text (&inner, "email", false, CW_EVENT_TEXT_MAX, &email))
        return -1;
    if (email && !strchr (email, '@'))
        return s_fail (&inner, "email", "must be an e-mail address");
    const char *country;
    if (s_string (&inner, "countryCode", false, &country))
        return -1;
    if (country
        && !(strlen (country) == 2 && country[0] >= 'A' && country[0] <= 'Z'
             && country[1] >= 'A' && country[1] <= 'Z'))
        return s_fail (&inner, "countryCode",
                       "must be an ISO 3166-1 alpha-2 code of two upper-case "
                       "letters");
    return 0;
}

static int
s_changed_fields (s_scope_t *scope, bool required)
{
    const json_t *fields;
    if (s_array (scope, "changedFields", required, CW_EVENT_FIELDS_MAX,
                 &fields))
        return -1;
    if (!fields)
        return 0;
    for (size_t index = 0; index < json_array_size (fields); index++) {
        const json_t *field = json_array_get (fields, index);
        char name[48];
        snprintf (name, sizeof (name), "changedFields[%zu]", index);
        if (!json_is_string (field) || json_string_length (field) == 0
            || json_string_length (field) > CW_EVENT_ID_MAX)
            return s_fail (scope, name, "must be a field name of 1 to %d bytes",
                           CW_EVENT_ID_MAX);
        for (size_t before = 0; before < index; before++)
            if (json_equal (field, json_array_get (fields, before)))
                return s_fail (scope, name, "repeats changedFields[%zu]",
                               before);
    }
    return 0;
}

//  Order lines and totals: lineTotal = quantity * unitPrice, subtotal =
//  sum of lineTotal, total = subtotal - discount + tax + shipping
static int
s_order (s_scope_t *scope)
{
    if (s_id (scope, "tenantId", true, NULL)
        || s_id (scope, "orderId", true, NULL)
        || s_version (scope, "version", true)
        || s_id (scope, "customerId", true, NULL)
        || s_currency (scope, "currency", true)
        || s_time (scope, "createdAt", true))
        return -1;
    const json_t *lines;
    if (s_array (scope, "lines", true, CW_EVENT_LINES_MAX, &lines))
        return -1;
    json_int_t subtotal = 0;
    for (size_t index = 0; index < json_array_size (lines); index++) {
        const json_t *line = json_array_get (lines, index);
        s_scope_t inner;
        s_child (&inner, scope, line, "lines[%zu].", index);
        if (!json_is_object (line))
            return s_fail (&inner, NULL, "must be an object");
        json_int_t quantity = 0, unit_price = 0, line_total = 0;
        if (s_id (&inner, "articleNumber", true, NULL)
            || s_integer (&inner, "quantity", true, 1, CW_EVENT_QUANTITY_MAX,
                          &quantity)
            || s_amount (&inner, "unitPrice", true, &unit_price)
            || s_amount (&inner, "lineTotal", true, &line_total))
            return -1;
        //  quantity >= 1; the product is checked before it is formed
        if (unit_price > CW_EVENT_AMOUNT_MAX / quantity)
            return s_fail (&inner, "lineTotal",
                           "quantity * unitPrice exceeds %lld",
                           (long long) CW_EVENT_AMOUNT_MAX);
        json_int_t expected = quantity * unit_price;
        if (line_total != expected)
            return s_fail (&inner, "lineTotal",
                           "must equal quantity * unitPrice (%lld), not %lld",
                           (long long) expected, (long long) line_total);
        subtotal += line_total;
    }
    const json_t *totals;
    if (s_object (scope, "totals", true, &totals))
        return -1;
    s_scope_t inner;
    s_child (&inner, scope, totals, "totals.");
    json_int_t given_subtotal = 0, discount = 0, tax = 0, shipping = 0,
               total = 0;
    if (s_amount (&inner, "subtotal", true, &given_subtotal)
        || s_amount (&inner, "discount", false, &discount)
        || s_amount (&inner, "tax", true, &tax)
        || s_amount (&inner, "shipping", true, &shipping)
        || s_amount (&inner, "total", true, &total))
        return -1;
    if (given_subtotal != subtotal)
        return s_fail (&inner, "subtotal",
                       "must equal the sum of lines[].lineTotal (%lld), not "
                       "%lld",
                       (long long) subtotal, (long long) given_subtotal);
    if (discount > subtotal)
        return s_fail (&inner, "discount", "must not exceed subtotal (%lld)",
                       (long long) subtotal);
    json_int_t expected = subtotal - discount + tax + shipping;
    if (total != expected)
        return s_fail (&inner, "total",
                       "must equal subtotal - discount + tax + shipping "
                       "(%lld), not %lld",
                       (long long) expected, (long long) total);
    return 0;
}

static int
s_invoice (s_scope_t *scope, bool with_ids)
{
    if (s_id (scope, "tenantId", with_ids, NULL)
        || (with_ids && s_id (scope, "orderId", true, NULL))
        || s_id (scope, "invoiceNumber", true, NULL)
        || s_id (scope, "invoiceId", false, NULL)
        || s_version (scope, "externalVersion", true)
        || s_time (scope, "issuedAt", false))
        return -1;
    const char *url, *token;
    if (s_url (scope, "documentUrl", false, &url)
        || s_text (scope, "documentToken", false, CW_EVENT_TOKEN_MAX, &token))
        return -1;
    if (!url && !token)
        return s_fail (scope, "documentUrl",
                       "missing (give documentUrl or documentToken)");
    json_int_t total = 0;
    const json_t *total_value = json_object_get (scope->object, "total");
    if (s_amount (scope, "total", false, &total)
        || s_currency (scope, "currency", total_value != NULL))
        return -1;
    return 0;
}

static int
s_price (s_scope_t *scope)
{
    if (s_id (scope, "tenantId", false, NULL)
        || s_id (scope, "articleNumber", true, NULL)
        || s_id (scope, "priceListId", true, NULL)
        || s_amount (scope, "amount", true, NULL)
        || s_currency (scope, "currency", true)
        || s_time (scope, "effectiveAt", true)
        || s_version (scope, "externalVersion", true))
        return -1;
    return 0;
}

static int
s_status_change (s_scope_t *scope, bool with_ids)
{
    const char *previous, *status;
    if (s_id (scope, "tenantId", true, NULL)
        || (with_ids && s_id (scope, "orderId", true, NULL))
        || s_version (scope, "version", true)
        || s_enum (scope, "previousStatus", with_ids, s_order_statuses,
                   &previous)
        || s_enum (scope, "status", true, s_order_statuses, &status)
        || s_time (scope, "changedAt", true))
        return -1;
    if (previous && strcmp (previous, status) == 0)
        return s_fail (scope, "status", "must differ from previousStatus");
    return 0;
}

static int
s_synced (s_scope_t *scope, const char *id_name)
{
    if (s_id (scope, "tenantId", true, NULL)
        || s_id (scope, id_name, true, NULL)
        || s_id (scope, "externalId", true, NULL)
        || s_enum (scope, "syncStatus", true, s_sync_statuses, NULL)
        || s_version (scope, "version", true)
        || s_time (scope, "syncedAt", true))
        return -1;
    return 0;
}

//  ---------------------------------------------------------------------
//  Events

static int
s_customer_upsert_requested (s_scope_t *scope)
{
    if (s_id (scope, "tenantId", true, NULL)
        || s_id (scope, "customerId", true, NULL)
        || s_version (scope, "version", true) || s_changed_fields (scope, true)
        || s_customer (scope))
        return -1;
    return 0;
}

static int
s_order_created (s_scope_t *scope)
{
    return s_order (scope);
}

static int
s_order_status_changed (s_scope_t *scope)
{
    return s_status_change (scope, true);
}

static int
s_customer_synced (s_scope_t *scope)
{
    return s_synced (scope, "customerId");
}

static int
s_order_synced (s_scope_t *scope)
{
    return s_synced (scope, "orderId");
}

static int
s_invoice_available (s_scope_t *scope)
{
    return s_invoice (scope, true);
}

static int
s_price_updated (s_scope_t *scope)
{
    return s_price (scope);
}

typedef int (s_validator_fn) (s_scope_t *scope);

static const struct {
    cw_event_info_t info;
    s_validator_fn *validate;
} s_events[] = {
    {{"customer.upsert.requested.v1", "webshop",
      "a customer was created or changed; upsert it in the ERP"},
     s_customer_upsert_requested},
    {{"order.created.v1", "webshop",
      "an order was placed; create it in the ERP"},
     s_order_created},
    {{"order.status.changed.v1", "webshop",
      "an order's status changed in the webshop"},
     s_order_status_changed},
    {{"erp.customer.synced.v1", "erp-middleware",
      "a customer is now in the ERP under an external id"},
     s_customer_synced},
    {{"erp.order.synced.v1", "erp-middleware",
      "an order is now in the ERP under an external id"},
     s_order_synced},
    {{"erp.invoice.available.v1", "erp-middleware",
      "the ERP issued an invoice for an order"},
     s_invoice_available},
    {{"erp.price.updated.v1", "erp-middleware",
      "the ERP changed an article's price in a price list"},
     s_price_updated},
};

#define S_EVENT_COUNT (sizeof (s_events) / sizeof (s_events[0]))

size_t
cw_event_count (void)
{
    return S_EVENT_COUNT;
}

const cw_event_info_t *
cw_event_at (size_t index)
{
    assert (index < S_EVENT_COUNT);
    return &s_events[index].info;
}

const cw_event_info_t *
cw_event_find (const char *type)
{
    assert (type);
    for (size_t index = 0; index < S_EVENT_COUNT; index++)
        if (strcmp (s_events[index].info.type, type) == 0)
            return &s_events[index].info;
    return NULL;
}

int
cw_event_validate (const char *type,
                   const json_t *payload,
                   char *reason,
                   size_t reason_size)
{
    assert (type);
    s_scope_t scope = {.object = payload,
                       .prefix = "data.",
                       .reason = reason,
                       .reason_size = reason_size};
    for (size_t index = 0; index < S_EVENT_COUNT; index++)
        if (strcmp (s_events[index].info.type, type) == 0) {
            if (!json_is_object (payload))
                return s_fail (&scope, NULL, "must be an object");
            return s_events[index].validate (&scope);
        }
    if (reason && reason_size)
        snprintf (reason, reason_size,
                  "field \"type\": unknown event type \"%.*s\"",
                  CW_ENVELOPE_TYPE_MAX, type);
    return -1;
}

//  ---------------------------------------------------------------------
//  Sync API bodies

static int
s_body_erp_customers (s_scope_t *scope)
{
    if (s_id (scope, "tenantId", true, NULL)
        || s_id (scope, "customerId", true, NULL)
        || s_version (scope, "version", true) || s_changed_fields (scope, false)
        || s_customer (scope))
        return -1;
    return 0;
}

static int
s_body_erp_order_status (s_scope_t *scope)
{
    return s_status_change (scope, false);
}

static int
s_body_payment_status (s_scope_t *scope)
{
    json_int_t amount;
    const json_t *amount_value = json_object_get (scope->object, "amount");
    if (s_id (scope, "tenantId", false, NULL)
        || s_enum (scope, "status", true, s_payment_statuses, NULL)
        || s_version (scope, "externalVersion", true)
        || s_time (scope, "changedAt", true)
        || s_amount (scope, "amount", false, &amount)
        || s_currency (scope, "currency", amount_value != NULL))
        return -1;
    return 0;
}

static int
s_body_invoice_available (s_scope_t *scope)
{
    return s_invoice (scope, false);
}

static int
s_body_product_prices (s_scope_t *scope)
{
    const json_t *prices;
    if (s_array (scope, "prices", true, CW_EVENT_PRICES_MAX, &prices))
        return -1;
    for (size_t index = 0; index < json_array_size (prices); index++) {
        const json_t *price = json_array_get (prices, index);
        s_scope_t inner;
        s_child (&inner, scope, price, "prices[%zu].", index);
        if (!json_is_object (price))
            return s_fail (&inner, NULL, "must be an object");
        if (s_price (&inner))
            return -1;
    }
    return 0;
}

static const struct {
    const char *path;          //  Template, {orderId} marks the parameter
    s_validator_fn *validate;  //  Body validator
} s_endpoints[CW_EVENT_ENDPOINT_COUNT] = {
    [CW_EVENT_ENDPOINT_ERP_CUSTOMERS] = {"/erp/customers",
                                         s_body_erp_customers},
    [CW_EVENT_ENDPOINT_ERP_ORDERS] = {"/erp/orders", s_order},
    [CW_EVENT_ENDPOINT_ERP_ORDER_STATUS] = {"/erp/orders/{orderId}/status",
                                            s_body_erp_order_status},
    [CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS] =
        {"/webshop/orders/{orderId}/payment-status", s_body_payment_status},
    [CW_EVENT_ENDPOINT_WEBSHOP_INVOICE_AVAILABLE] =
        {"/webshop/orders/{orderId}/invoice-available",
         s_body_invoice_available},
    [CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES] = {"/webshop/products/prices",
                                                  s_body_product_prices},
};

#define S_PARAMETER "{orderId}"

const char *
cw_event_endpoint_method (cw_event_endpoint_t endpoint)
{
    assert (endpoint < CW_EVENT_ENDPOINT_COUNT);
    return "POST";
}

const char *
cw_event_endpoint_path (cw_event_endpoint_t endpoint)
{
    assert (endpoint < CW_EVENT_ENDPOINT_COUNT);
    return s_endpoints[endpoint].path;
}

int
cw_event_endpoint_match (const char *method,
                         const char *path,
                         cw_event_endpoint_t *endpoint_p,
                         char *order_id,
                         size_t order_id_size)
{
    assert (method);
    assert (path);
    assert (endpoint_p);
    if (strcmp (method, "POST"))
        return -1;
    for (int endpoint = 0; endpoint < CW_EVENT_ENDPOINT_COUNT; endpoint++) {
        const char *pattern = s_endpoints[endpoint].path;
        const char *parameter = strstr (pattern, S_PARAMETER);
        if (!parameter) {
            if (strcmp (pattern, path) == 0) {
                *endpoint_p = (cw_event_endpoint_t) endpoint;
                return 0;
            }
            continue;
        }
        size_t head = (size_t) (parameter - pattern);
        const char *tail = parameter + strlen (S_PARAMETER);
        size_t tail_length = strlen (tail);
        size_t path_length = strlen (path);
        if (path_length <= head + tail_length
            || strncmp (path, pattern, head) != 0
            || strcmp (path + path_length - tail_length, tail) != 0)
            continue;
        size_t id_length = path_length - head - tail_length;
        char id[CW_EVENT_ID_MAX + 1];
        if (id_length > CW_EVENT_ID_MAX)
            return -1;
        memcpy (id, path + head, id_length);
        id[id_length] = 0;
        if (!s_id_chars (id))
            return -1;
        if (order_id) {
            if (id_length + 1 > order_id_size)
                return -1;
            memcpy (order_id, id, id_length + 1);
        }
        *endpoint_p = (cw_event_endpoint_t) endpoint;
        return 0;
    }
    return -1;
}

int
cw_event_validate_body (cw_event_endpoint_t endpoint,
                        const json_t *body,
                        char *reason,
                        size_t reason_size)
{
    assert (endpoint < CW_EVENT_ENDPOINT_COUNT);
    s_scope_t scope = {.object = body,
                       .prefix = "",
                       .reason = reason,
                       .reason_size = reason_size};
    if (!json_is_object (body))
        return s_fail (&scope, NULL, "must be a JSON object");
    return s_endpoints[endpoint].validate (&scope);
}
