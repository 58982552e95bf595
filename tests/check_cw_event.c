/*  =========================================================================
    check_cw_event - the contract's events and sync bodies, validated
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_event.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

//  One valid payload per event type of the contract
static const struct {
    const char *type;
    const char *payload;
} s_valid_events[] = {
    {"customer.upsert.requested.v1",
     "{\"tenantId\":\"acme\",\"customerId\":\"c-7\",\"version\":3,"
     "\"changedFields\":[\"email\",\"name\"],\"customer\":{\"name\":\"Ada "
     "Lovelace\",\"email\":\"ada@example.org\",\"countryCode\":\"GB\"}}"},
    {"order.created.v1",
     "{\"tenantId\":\"acme\",\"orderId\":\"o-1\",\"version\":1,"
     "\"customerId\":\"c-7\",\"currency\":\"EUR\",\"createdAt\":"
     "\"2025-01-31T10:00:00+01:00\",\"lines\":[{\"articleNumber\":\"A-1\","
     "\"quantity\":2,\"unitPrice\":1250,\"lineTotal\":2500},"
     "{\"articleNumber\":\"B-2\",\"quantity\":1,\"unitPrice\":999,"
     "\"lineTotal\":999},{\"articleNumber\":\"C-3\",\"quantity\":3,"
     "\"unitPrice\":0,\"lineTotal\":0}],\"totals\":{\"subtotal\":3499,"
     "\"discount\":499,\"tax\":570,\"shipping\":495,\"total\":4065}}"},
    {"order.status.changed.v1",
     "{\"tenantId\":\"acme\",\"orderId\":\"o-1\",\"version\":2,"
     "\"previousStatus\":\"confirmed\",\"status\":\"shipped\","
     "\"changedAt\":\"2025-02-01T08:00:00Z\"}"},
    {"erp.customer.synced.v1",
     "{\"tenantId\":\"acme\",\"customerId\":\"c-7\",\"externalId\":\"D10042\","
     "\"syncStatus\":\"created\",\"version\":3,\"syncedAt\":"
     "\"2025-02-01T08:00:01.5Z\"}"},
    {"erp.order.synced.v1",
     "{\"tenantId\":\"acme\",\"orderId\":\"o-1\",\"externalId\":\"SO-77\","
     "\"syncStatus\":\"updated\",\"version\":2,\"syncedAt\":"
     "\"2025-02-01T08:00:01Z\"}"},
    {"erp.invoice.available.v1",
     "{\"tenantId\":\"acme\",\"orderId\":\"o-1\",\"invoiceNumber\":\"INV-9\","
     "\"invoiceId\":\"9\",\"externalVersion\":1,\"documentUrl\":"
     "\"https://erp.example/invoices/9.pdf\",\"issuedAt\":"
     "\"2025-02-02T00:00:00Z\",\"total\":4065,\"currency\":\"EUR\"}"},
    {"erp.price.updated.v1",
     "{\"articleNumber\":\"A-1\",\"priceListId\":\"retail-eu\","
     "\"amount\":1299,\"currency\":\"EUR\",\"effectiveAt\":"
     "\"2025-03-01T00:00:00+01:00\",\"externalVersion\":17}"},
};

//  One valid body per sync endpoint
static const char *s_valid_bodies[CW_EVENT_ENDPOINT_COUNT] = {
    [CW_EVENT_ENDPOINT_ERP_CUSTOMERS] =
        "{\"tenantId\":\"acme\",\"customerId\":\"c-7\",\"version\":3,"
        "\"customer\":{\"name\":\"Ada\"}}",
    [CW_EVENT_ENDPOINT_ERP_ORDERS] =
        "{\"tenantId\":\"acme\",\"orderId\":\"o-1\",\"version\":1,"
        "\"customerId\":\"c-7\",\"currency\":\"SEK\",\"createdAt\":"
        "\"2025-01-31T10:00:00Z\",\"lines\":[{\"articleNumber\":\"A-1\","
        "\"quantity\":1,\"unitPrice\":100,\"lineTotal\":100}],\"totals\":"
        "{\"subtotal\":100,\"tax\":25,\"shipping\":0,\"total\":125}}",
    [CW_EVENT_ENDPOINT_ERP_ORDER_STATUS] =
        "{\"tenantId\":\"acme\",\"status\":\"cancelled\",\"version\":4,"
        "\"changedAt\":\"2025-01-31T10:00:00Z\"}",
    [CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS] =
        "{\"status\":\"paid\",\"externalVersion\":5,\"changedAt\":"
        "\"2025-01-31T10:00:00Z\",\"amount\":4065,\"currency\":\"EUR\"}",
    [CW_EVENT_ENDPOINT_WEBSHOP_INVOICE_AVAILABLE] =
        "{\"invoiceNumber\":\"INV-9\",\"externalVersion\":1,"
        "\"documentToken\":\"tok-abc\"}",
    [CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES] =
        "{\"prices\":[{\"articleNumber\":\"A-1\",\"priceListId\":\"retail\","
        "\"amount\":1299,\"currency\":\"EUR\",\"effectiveAt\":"
        "\"2025-03-01T00:00:00Z\",\"externalVersion\":1},{\"articleNumber\":"
        "\"B-2\",\"priceListId\":\"retail\",\"amount\":0,\"currency\":\"EUR\","
        "\"effectiveAt\":\"2025-03-01T00:00:00Z\",\"externalVersion\":2}]}",
};

static json_t *
s_parse (const char *text)
{
    json_error_t error;
    json_t *value = json_loads (text, 0, &error);
    ck_assert_msg (value != NULL, "bad test JSON: %s", error.text);
    return value;
}

//  Applies a JSON-path-like edit: sets member "key" of the object found by
//  following "a.b[1]" style parents (parents exist); value NULL deletes
static json_t *
s_edited (const char *text,
          const char *parent_path,
          const char *key,
          json_t *value)
{
    json_t *root = s_parse (text);
    json_t *object = root;
    if (parent_path) {
        const char *cursor = parent_path;
        while (cursor && *cursor) {
            const char *dot = strchr (cursor, '.');
            size_t length = dot ? (size_t) (dot - cursor) : strlen (cursor);
            char part[64];
            snprintf (part, sizeof (part), "%.*s", (int) length, cursor);
            char *bracket = strchr (part, '[');
            if (bracket) {
                *bracket = 0;
                object = json_array_get (json_object_get (object, part),
                                         strtoul (bracket + 1, NULL, 10));
            }
            else
                object = json_object_get (object, part);
            cursor = dot ? dot + 1 : NULL;
        }
    }
    ck_assert_ptr_nonnull (object);
    if (value)
        json_object_set_new (object, key, value);
    else
        json_object_del (object, key);
    return root;
}

static void
s_event_rejected (const char *type, json_t *payload, const char *expected)
{
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    ck_assert_int_eq (
        cw_event_validate (type, payload, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, expected);
    json_decref (payload);
}

static void
s_body_rejected (cw_event_endpoint_t endpoint,
                 json_t *body,
                 const char *expected)
{
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    ck_assert_int_eq (
        cw_event_validate_body (endpoint, body, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, expected);
    json_decref (body);
}

START_TEST (test_id_valid)
{
    //  The identifier rule the validators and the broker's ordering key
    //  share: 1 to CW_EVENT_ID_MAX of [A-Za-z0-9._-]
    char longest[CW_EVENT_ID_MAX + 2];
    memset (longest, 'a', CW_EVENT_ID_MAX);
    longest[CW_EVENT_ID_MAX] = 0;
    ck_assert (cw_event_id_valid (longest));
    ck_assert (cw_event_id_valid ("O-1.x_2"));
    longest[CW_EVENT_ID_MAX] = 'a';
    longest[CW_EVENT_ID_MAX + 1] = 0;
    ck_assert (!cw_event_id_valid (longest));
    const char *bad[] = {"", "a b", "a:b", "a/b", "\xc3\xa9", NULL};
    for (int index = 0; bad[index]; index++)
        ck_assert_msg (!cw_event_id_valid (bad[index]), "%s", bad[index]);
}
END_TEST

START_TEST (test_lookup)
{
    ck_assert_uint_eq (cw_event_count (), 7);
    for (size_t index = 0; index < cw_event_count (); index++) {
        const cw_event_info_t *info = cw_event_at (index);
        ck_assert_ptr_eq (cw_event_find (info->type), info);
        ck_assert (strcmp (info->producer, "webshop") == 0
                   || strcmp (info->producer, "erp-middleware") == 0);
        ck_assert (strlen (info->summary) > 0);
        ck_assert_int_eq (cw_envelope_parse_type (info->type, NULL, 0, NULL),
                          0);
    }
    ck_assert_str_eq (cw_event_find ("erp.price.updated.v1")->producer,
                      "erp-middleware");
    ck_assert_ptr_null (cw_event_find ("order.created.v2"));
    ck_assert_ptr_null (cw_event_find ("order.created"));
    json_t *payload = json_object ();
    s_event_rejected (
        "order.deleted.v1", payload,
        "field \"type\": unknown event type \"order.deleted.v1\"");
}
END_TEST

START_TEST (test_valid_events)
{
    ck_assert_uint_eq (sizeof (s_valid_events) / sizeof (s_valid_events[0]),
                       cw_event_count ());
    for (size_t index = 0; index < cw_event_count (); index++) {
        ck_assert_ptr_nonnull (cw_event_find (s_valid_events[index].type));
        json_t *payload = s_parse (s_valid_events[index].payload);
        char reason[CW_ENVELOPE_REASON_SIZE] = "";
        int rc = cw_event_validate (s_valid_events[index].type, payload, reason,
                                    sizeof (reason));
        ck_assert_msg (rc == 0, "%s: %s", s_valid_events[index].type, reason);
        //  Fields outside the contract are allowed
        json_object_set_new (payload, "extra", json_string ("x"));
        ck_assert_int_eq (cw_event_validate (s_valid_events[index].type,
                                             payload, reason, sizeof (reason)),
                          0);
        json_decref (payload);
    }
    //  Not an object
    json_t *array = json_array ();
    s_event_rejected ("order.created.v1", array,
                      "field \"data\": must be an object");
}
END_TEST

START_TEST (test_order_rules)
{
    const char *type = "order.created.v1";
    const char *order = s_valid_events[1].payload;
    s_event_rejected (
        type, s_edited (order, "lines[0]", "unitPrice", json_real (12.5)),
        "field \"data.lines[0].unitPrice\": must be an integer "
        "amount in minor units, not a floating-point number");
    s_event_rejected (type,
                      s_edited (order, "totals", "total", json_real (4065.0)),
                      "field \"data.totals.total\": must be an integer "
                      "amount in minor units, not a floating-point number");
    s_event_rejected (type,
                      s_edited (order, "lines[2]", "quantity", json_real (3.0)),
                      "field \"data.lines[2].quantity\": must be an integer");
    s_event_rejected (
        type, s_edited (order, "lines[2]", "quantity", json_string ("3")),
        "field \"data.lines[2].quantity\": must be an integer");
    s_event_rejected (
        type, s_edited (order, "lines[1]", "quantity", json_integer (0)),
        "field \"data.lines[1].quantity\": must be between 1 "
        "and 1000000, not 0");
    s_event_rejected (
        type, s_edited (order, "lines[0]", "unitPrice", json_integer (-5)),
        "field \"data.lines[0].unitPrice\": must be between 0 "
        "and 1000000000000000, not -5");
    s_event_rejected (
        type, s_edited (order, "lines[0]", "lineTotal", json_integer (2400)),
        "field \"data.lines[0].lineTotal\": must equal "
        "quantity * unitPrice (2500), not 2400");
    s_event_rejected (type, s_edited (order, "lines[0]", "articleNumber", NULL),
                      "field \"data.lines[0].articleNumber\": missing");
    s_event_rejected (
        type, s_edited (order, "totals", "subtotal", json_integer (3500)),
        "field \"data.totals.subtotal\": must equal the sum of "
        "lines[].lineTotal (3499), not 3500");
    s_event_rejected (type,
                      s_edited (order, "totals", "total", json_integer (4066)),
                      "field \"data.totals.total\": must equal subtotal - "
                      "discount + tax + shipping (4065), not 4066");
    s_event_rejected (
        type, s_edited (order, "totals", "discount", json_integer (3500)),
        "field \"data.totals.discount\": must not exceed "
        "subtotal (3499)");
    s_event_rejected (type, s_edited (order, NULL, "lines", json_array ()),
                      "field \"data.lines\": must have 1 to 1000 elements, "
                      "not 0");
    s_event_rejected (type, s_edited (order, NULL, "lines", json_object ()),
                      "field \"data.lines\": must be an array");
    json_t *payload = s_parse (order);
    json_array_set_new (json_object_get (payload, "lines"), 1,
                        json_string ("B-2"));
    s_event_rejected (type, payload,
                      "field \"data.lines[1]\": must be an object");
    s_event_rejected (type,
                      s_edited (order, NULL, "currency", json_string ("eur")),
                      "field \"data.currency\": must be an ISO 4217 code of "
                      "three upper-case letters");
    s_event_rejected (type,
                      s_edited (order, NULL, "createdAt",
                                json_string ("2025-01-31T10:00:00")),
                      "field \"data.createdAt\": must be an RFC 3339 "
                      "timestamp with offset, like \"2025-01-31T10:02:03Z\"");
    s_event_rejected (type, s_edited (order, NULL, "version", json_integer (0)),
                      "field \"data.version\": must be between 1 and "
                      "9223372036854775807, not 0");
    s_event_rejected (type, s_edited (order, NULL, "tenantId", NULL),
                      "field \"data.tenantId\": missing");
    s_event_rejected (type,
                      s_edited (order, NULL, "orderId", json_string ("o:1")),
                      "field \"data.orderId\": must be 1 to 64 letters, "
                      "digits, '.', '_' or '-'");
    s_event_rejected (type, s_edited (order, NULL, "totals", NULL),
                      "field \"data.totals\": missing");
    //  A product too large for the amount limit is refused, not wrapped
    payload = s_edited (order, "lines[0]", "unitPrice",
                        json_integer (1000000000000000LL));
    json_object_set_new (json_array_get (json_object_get (payload, "lines"), 0),
                         "quantity", json_integer (1000000));
    s_event_rejected (type, payload,
                      "field \"data.lines[0].lineTotal\": quantity * "
                      "unitPrice exceeds 1000000000000000");
}
END_TEST

START_TEST (test_other_events)
{
    s_event_rejected ("order.status.changed.v1",
                      s_edited (s_valid_events[2].payload, NULL, "status",
                                json_string ("lost")),
                      "field \"data.status\": must be one of: pending, "
                      "confirmed, processing, shipped, delivered, cancelled, "
                      "returned");
    s_event_rejected ("order.status.changed.v1",
                      s_edited (s_valid_events[2].payload, NULL, "status",
                                json_string ("confirmed")),
                      "field \"data.status\": must differ from "
                      "previousStatus");
    s_event_rejected (
        "order.status.changed.v1",
        s_edited (s_valid_events[2].payload, NULL, "previousStatus", NULL),
        "field \"data.previousStatus\": missing");
    s_event_rejected ("customer.upsert.requested.v1",
                      s_edited (s_valid_events[0].payload, NULL,
                                "changedFields", json_pack ("[s,s]", "a", "a")),
                      "field \"data.changedFields[1]\": repeats "
                      "changedFields[0]");
    s_event_rejected ("customer.upsert.requested.v1",
                      s_edited (s_valid_events[0].payload, "customer", "email",
                                json_string ("nobody")),
                      "field \"data.customer.email\": must be an e-mail "
                      "address");
    s_event_rejected ("customer.upsert.requested.v1",
                      s_edited (s_valid_events[0].payload, "customer", "name",
                                json_string ("a\nb")),
                      "field \"data.customer.name\": must not contain "
                      "control characters");
    s_event_rejected ("erp.customer.synced.v1",
                      s_edited (s_valid_events[3].payload, NULL, "syncStatus",
                                json_string ("failed")),
                      "field \"data.syncStatus\": must be one of: created, "
                      "updated, unchanged");
    s_event_rejected ("erp.order.synced.v1",
                      s_edited (s_valid_events[4].payload, NULL, "externalId",
                                json_integer (77)),
                      "field \"data.externalId\": must be a string");
    s_event_rejected (
        "erp.invoice.available.v1",
        s_edited (s_valid_events[5].payload, NULL, "documentUrl", NULL),
        "field \"data.documentUrl\": missing (give documentUrl "
        "or documentToken)");
    s_event_rejected ("erp.invoice.available.v1",
                      s_edited (s_valid_events[5].payload, NULL, "documentUrl",
                                json_string ("ftp://x/y")),
                      "field \"data.documentUrl\": must be an http or https "
                      "URL");
    s_event_rejected (
        "erp.invoice.available.v1",
        s_edited (s_valid_events[5].payload, NULL, "currency", NULL),
        "field \"data.currency\": missing");
    s_event_rejected (
        "erp.price.updated.v1",
        s_edited (s_valid_events[6].payload, NULL, "amount", json_real (12.99)),
        "field \"data.amount\": must be an integer amount in "
        "minor units, not a floating-point number");
    s_event_rejected ("erp.price.updated.v1",
                      s_edited (s_valid_events[6].payload, NULL, "effectiveAt",
                                json_string ("2025-02-30T00:00:00Z")),
                      "field \"data.effectiveAt\": must be an RFC 3339 "
                      "timestamp with offset, like \"2025-01-31T10:02:03Z\"");
}
END_TEST

START_TEST (test_bodies)
{
    for (int endpoint = 0; endpoint < CW_EVENT_ENDPOINT_COUNT; endpoint++) {
        json_t *body = s_parse (s_valid_bodies[endpoint]);
        char reason[CW_ENVELOPE_REASON_SIZE] = "";
        int rc = cw_event_validate_body ((cw_event_endpoint_t) endpoint, body,
                                         reason, sizeof (reason));
        ck_assert_msg (rc == 0, "%s: %s",
                       cw_event_endpoint_path ((cw_event_endpoint_t) endpoint),
                       reason);
        json_decref (body);
        //  Any body that is not an object
        s_body_rejected ((cw_event_endpoint_t) endpoint, json_integer (1),
                         "body must be a JSON object");
    }
    //  Fields of a body are named without the "data." prefix
    s_body_rejected (CW_EVENT_ENDPOINT_ERP_ORDERS,
                     s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_ERP_ORDERS],
                               "lines[0]", "quantity", json_string ("1")),
                     "field \"lines[0].quantity\": must be an integer");
    s_body_rejected (CW_EVENT_ENDPOINT_ERP_CUSTOMERS,
                     s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_ERP_CUSTOMERS],
                               NULL, "customer", json_string ("Ada")),
                     "field \"customer\": must be an object");
    s_body_rejected (CW_EVENT_ENDPOINT_ERP_CUSTOMERS,
                     s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_ERP_CUSTOMERS],
                               "customer", "countryCode", json_string ("gb")),
                     "field \"customer.countryCode\": must be an ISO 3166-1 "
                     "alpha-2 code of two upper-case letters");
    s_body_rejected (
        CW_EVENT_ENDPOINT_ERP_ORDER_STATUS,
        s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_ERP_ORDER_STATUS], NULL,
                  "previousStatus", json_string ("cancelled")),
        "field \"status\": must differ from previousStatus");
    s_body_rejected (
        CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS,
        s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS],
                  NULL, "status", json_string ("shipped")),
        "field \"status\": must be one of: pending, authorized, paid, "
        "partially_refunded, refunded, failed, cancelled");
    s_body_rejected (
        CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS,
        s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS],
                  NULL, "amount", json_real (40.65)),
        "field \"amount\": must be an integer amount in minor units, not a "
        "floating-point number");
    s_body_rejected (
        CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS,
        s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS],
                  NULL, "externalVersion", json_true ()),
        "field \"externalVersion\": must be an integer");
    s_body_rejected (
        CW_EVENT_ENDPOINT_WEBSHOP_INVOICE_AVAILABLE,
        s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_WEBSHOP_INVOICE_AVAILABLE],
                  NULL, "invoiceNumber", NULL),
        "field \"invoiceNumber\": missing");
    s_body_rejected (
        CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES,
        s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES],
                  "prices[1]", "amount", json_real (1.0)),
        "field \"prices[1].amount\": must be an integer amount in minor "
        "units, not a floating-point number");
    s_body_rejected (
        CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES,
        s_edited (s_valid_bodies[CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES],
                  NULL, "prices", json_pack ("[i]", 1)),
        "field \"prices[0]\": must be an object");
}
END_TEST

START_TEST (test_endpoints)
{
    cw_event_endpoint_t endpoint;
    char order_id[CW_EVENT_ID_MAX + 1];
    for (int index = 0; index < CW_EVENT_ENDPOINT_COUNT; index++)
        ck_assert_str_eq (
            cw_event_endpoint_method ((cw_event_endpoint_t) index), "POST");
    ck_assert_str_eq (
        cw_event_endpoint_path (CW_EVENT_ENDPOINT_ERP_ORDER_STATUS),
        "/erp/orders/{orderId}/status");

    ck_assert_int_eq (
        cw_event_endpoint_match ("POST", "/erp/customers", &endpoint, NULL, 0),
        0);
    ck_assert_int_eq (endpoint, CW_EVENT_ENDPOINT_ERP_CUSTOMERS);
    ck_assert_int_eq (cw_event_endpoint_match ("POST", "/erp/orders", &endpoint,
                                               order_id, sizeof (order_id)),
                      0);
    ck_assert_int_eq (endpoint, CW_EVENT_ENDPOINT_ERP_ORDERS);
    struct {
        const char *path;
        cw_event_endpoint_t endpoint;
    } cases[] = {
        {"/erp/orders/o-1/status", CW_EVENT_ENDPOINT_ERP_ORDER_STATUS},
        {"/webshop/orders/o-1/payment-status",
         CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS},
        {"/webshop/orders/o-1/invoice-available",
         CW_EVENT_ENDPOINT_WEBSHOP_INVOICE_AVAILABLE},
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        order_id[0] = 0;
        ck_assert_int_eq (cw_event_endpoint_match ("POST", cases[index].path,
                                                   &endpoint, order_id,
                                                   sizeof (order_id)),
                          0);
        ck_assert_int_eq (endpoint, cases[index].endpoint);
        ck_assert_str_eq (order_id, "o-1");
    }
    ck_assert_int_eq (cw_event_endpoint_match ("POST",
                                               "/webshop/products/prices",
                                               &endpoint, NULL, 0),
                      0);
    ck_assert_int_eq (endpoint, CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES);

    const char *misses[] = {"/erp/orders//status",
                            "/erp/orders/a/b/status",
                            "/erp/orders/o%201/status",
                            "/erp/order",
                            "/erp/customers/",
                            "/webshop/products/prices/x",
                            "/erp/orders/o-1/statuses",
                            "",
                            NULL};
    for (int index = 0; misses[index]; index++)
        ck_assert_msg (cw_event_endpoint_match ("POST", misses[index],
                                                &endpoint, order_id,
                                                sizeof (order_id))
                           == -1,
                       "%s", misses[index]);
    ck_assert_int_eq (
        cw_event_endpoint_match ("GET", "/erp/customers", &endpoint, NULL, 0),
        -1);
    //  An id longer than the limit, or a buffer too small for it
    char path[160];
    char long_id[CW_EVENT_ID_MAX + 2];
    memset (long_id, 'x', sizeof (long_id) - 1);
    long_id[sizeof (long_id) - 1] = 0;
    snprintf (path, sizeof (path), "/erp/orders/%s/status", long_id);
    ck_assert_int_eq (cw_event_endpoint_match ("POST", path, &endpoint,
                                               order_id, sizeof (order_id)),
                      -1);
    char small[3];
    ck_assert_int_eq (cw_event_endpoint_match ("POST", "/erp/orders/o-1/status",
                                               &endpoint, small,
                                               sizeof (small)),
                      -1);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_event");
    TCase *events = tcase_create ("events");
    tcase_set_timeout (events, 30);
    tcase_add_test (events, test_lookup);
    tcase_add_test (events, test_id_valid);
    tcase_add_test (events, test_valid_events);
    tcase_add_test (events, test_order_rules);
    tcase_add_test (events, test_other_events);
    suite_add_tcase (suite, events);
    TCase *bodies = tcase_create ("bodies");
    tcase_set_timeout (bodies, 30);
    tcase_add_test (bodies, test_bodies);
    tcase_add_test (bodies, test_endpoints);
    suite_add_tcase (suite, bodies);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
