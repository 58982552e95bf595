/*  =========================================================================
    check_cw_version - contract versions, upcasting, explicit rejection
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_event.h"
#include "cw_version.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  An order.created envelope of the given version with this data
static cw_envelope_t *
s_order_envelope (const char *type, const char *data_text)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, "evt-1");
    cw_envelope_set_source (envelope, "/webshop/orders");
    cw_envelope_set_type (envelope, type);
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03Z");
    cw_envelope_set_tenant_id (envelope, "acme");
    cw_envelope_set_correlation_id (envelope, "corr-1");
    cw_envelope_set_idempotency_key (envelope, "order:acme:o-1:1");
    json_t *data = json_loads (data_text, 0, NULL);
    ck_assert_ptr_nonnull (data);
    cw_envelope_set_data (envelope, &data);
    return envelope;
}

static const char *s_order_v1 =
    "{\"tenantId\":\"acme\",\"orderId\":\"o-1\",\"version\":1,"
    "\"customerId\":\"c-7\",\"currency\":\"EUR\",\"createdAt\":"
    "\"2025-01-31T10:00:00Z\",\"lines\":[{\"articleNumber\":\"A-1\","
    "\"quantity\":2,\"unitPrice\":1250,\"lineTotal\":2500}],\"totals\":"
    "{\"subtotal\":2500,\"tax\":0,\"shipping\":0,\"total\":2500}}";

//  Test contract v2 of order.created: the customer becomes an object
//  {"customer": {"customerId": ...}} and lines name the article "sku"
static int
s_order_v1_to_v2 (json_t *payload, char *reason, size_t reason_size)
{
    json_t *customer_id = json_object_get (payload, "customerId");
    if (!json_is_string (customer_id)) {
        snprintf (reason, reason_size, "field \"customerId\": missing");
        return -1;
    }
    json_object_set_new (payload, "customer",
                         json_pack ("{s:O}", "customerId", customer_id));
    json_object_del (payload, "customerId");
    size_t index;
    json_t *line;
    json_array_foreach (json_object_get (payload, "lines"), index, line)
    {
        json_t *article = json_object_get (line, "articleNumber");
        if (article) {
            json_object_set (line, "sku", article);
            json_object_del (line, "articleNumber");
        }
    }
    return 0;
}

//  Test contract v3: totals.total is renamed grandTotal
static int
s_order_v2_to_v3 (json_t *payload, char *reason, size_t reason_size)
{
    json_t *totals = json_object_get (payload, "totals");
    json_t *total = json_object_get (totals, "total");
    if (!json_is_integer (total)) {
        snprintf (reason, reason_size, "field \"totals.total\": missing");
        return -1;
    }
    json_object_set (totals, "grandTotal", total);
    json_object_del (totals, "total");
    return 0;
}

//  A broken handler: replaces the payload's content with nothing usable
static int
s_breaks_payload (json_t *payload, char *reason, size_t reason_size)
{
    (void) reason;
    (void) reason_size;
    json_object_clear (payload);
    return 0;
}

START_TEST (test_contract_registry)
{
    cw_version_t *registry = cw_version_new_contract ();
    for (size_t index = 0; index < cw_event_count (); index++) {
        const char *type = cw_event_at (index)->type;
        char family[CW_ENVELOPE_TYPE_MAX + 1];
        int version;
        ck_assert_int_eq (
            cw_envelope_parse_type (type, family, sizeof (family), &version),
            0);
        ck_assert_int_eq (cw_version_current (registry, family), 1);
        ck_assert_int_eq (cw_version_oldest (registry, family), 1);
        ck_assert (cw_version_understands (registry, type));
    }
    ck_assert (!cw_version_understands (registry, "order.created.v2"));
    ck_assert (!cw_version_understands (registry, "order.deleted.v1"));
    ck_assert (!cw_version_understands (registry, "garbage"));
    ck_assert_int_eq (cw_version_current (registry, "order.deleted"), 0);

    //  The current version resolves to itself, untouched
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope = s_order_envelope ("order.created.v1", s_order_v1);
    json_t *before = json_deep_copy (cw_envelope_data (envelope));
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), 0);
    ck_assert_str_eq (cw_envelope_type (envelope), "order.created.v1");
    ck_assert (json_equal (before, cw_envelope_data (envelope)));
    json_decref (before);
    cw_envelope_destroy (&envelope);

    //  A version the shipped contract does not know: explicit error
    envelope = s_order_envelope ("order.created.v7", s_order_v1);
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "unsupported_contract_version: order.created.v7; "
                              "supported: v1");
    ck_assert_str_eq (cw_envelope_type (envelope), "order.created.v7");
    cw_envelope_destroy (&envelope);

    envelope = s_order_envelope ("order.deleted.v1", s_order_v1);
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "unsupported_contract_version: order.deleted.v1; "
                              "unknown event family \"order.deleted\"");
    cw_envelope_destroy (&envelope);

    envelope = s_order_envelope ("order.created", s_order_v1);
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "unsupported_contract_version: "
                              "\"order.created\" has no version suffix");
    cw_envelope_destroy (&envelope);
    cw_version_destroy (&registry);
    ck_assert_ptr_null (registry);
    cw_version_destroy (&registry);
}
END_TEST

START_TEST (test_upcast_chain)
{
    cw_version_t *registry = cw_version_new_contract ();
    ck_assert_int_eq (
        cw_version_register (registry, "order.created", 2, s_order_v1_to_v2),
        0);
    ck_assert_int_eq (
        cw_version_register (registry, "order.created", 3, s_order_v2_to_v3),
        0);
    ck_assert_int_eq (cw_version_current (registry, "order.created"), 3);
    ck_assert_int_eq (cw_version_oldest (registry, "order.created"), 1);
    ck_assert (cw_version_understands (registry, "order.created.v2"));

    //  v1 -> v2 -> v3, type rewritten
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope = s_order_envelope ("order.created.v1", s_order_v1);
    ck_assert_msg (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)) == 0,
        "%s", reason);
    ck_assert_str_eq (cw_envelope_type (envelope), "order.created.v3");
    json_t *data = cw_envelope_data (envelope);
    ck_assert_ptr_null (json_object_get (data, "customerId"));
    ck_assert_str_eq (json_string_value (json_object_get (
                          json_object_get (data, "customer"), "customerId")),
                      "c-7");
    json_t *line = json_array_get (json_object_get (data, "lines"), 0);
    ck_assert_str_eq (json_string_value (json_object_get (line, "sku")), "A-1");
    json_t *totals = json_object_get (data, "totals");
    ck_assert_int_eq (
        json_integer_value (json_object_get (totals, "grandTotal")), 2500);
    ck_assert_ptr_null (json_object_get (totals, "total"));
    //  The upcast envelope still encodes and decodes as an envelope
    size_t size;
    void *bytes =
        cw_envelope_encode_msgpack (envelope, &size, reason, sizeof (reason));
    ck_assert_ptr_nonnull (bytes);
    cw_envelope_t *decoded =
        cw_envelope_decode_msgpack (bytes, size, reason, sizeof (reason));
    ck_assert_str_eq (cw_envelope_type (decoded), "order.created.v3");
    cw_envelope_destroy (&decoded);
    free (bytes);
    //  Resolving again is a no-op
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), 0);
    ck_assert_str_eq (cw_envelope_type (envelope), "order.created.v3");
    cw_envelope_destroy (&envelope);

    //  From v2, only the last step runs
    envelope = s_order_envelope (
        "order.created.v2",
        "{\"customer\":{\"customerId\":\"c-1\"},\"totals\":{\"total\":7}}");
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), 0);
    ck_assert_str_eq (cw_envelope_type (envelope), "order.created.v3");
    ck_assert_int_eq (
        json_integer_value (json_object_get (
            json_object_get (cw_envelope_data (envelope), "totals"),
            "grandTotal")),
        7);
    cw_envelope_destroy (&envelope);

    //  Beyond current: the error lists every supported version
    envelope = s_order_envelope ("order.created.v4", s_order_v1);
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "unsupported_contract_version: order.created.v4; "
                              "supported: v1, v2, v3");
    cw_envelope_destroy (&envelope);

    //  A handler that refuses: the envelope is left exactly as it was
    envelope = s_order_envelope ("order.created.v1",
                                 "{\"orderId\":\"o-1\",\"totals\":{}}");
    json_t *before = json_deep_copy (cw_envelope_data (envelope));
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "could not upcast order.created from v1 to v2: "
                              "field \"customerId\": missing");
    ck_assert_str_eq (cw_envelope_type (envelope), "order.created.v1");
    ck_assert (json_equal (before, cw_envelope_data (envelope)));
    json_decref (before);
    cw_envelope_destroy (&envelope);

    //  Failing in the second step also leaves it untouched
    envelope = s_order_envelope ("order.created.v1",
                                 "{\"customerId\":\"c-1\",\"totals\":{}}");
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "could not upcast order.created from v2 to v3: "
                              "field \"totals.total\": missing");
    ck_assert_str_eq (cw_envelope_type (envelope), "order.created.v1");
    ck_assert_str_eq (json_string_value (json_object_get (
                          cw_envelope_data (envelope), "customerId")),
                      "c-1");
    cw_envelope_destroy (&envelope);
    cw_version_destroy (&registry);
}
END_TEST

START_TEST (test_register_rules)
{
    cw_version_t *registry = cw_version_new ();
    ck_assert_int_eq (cw_version_current (registry, "order.created"), 0);
    //  A new family takes no upcaster
    ck_assert_int_eq (
        cw_version_register (registry, "order.created", 1, s_order_v1_to_v2),
        -1);
    ck_assert_int_eq (cw_version_register (registry, "order.created", 1, NULL),
                      0);
    //  Already registered, skipped, or without an upcaster
    ck_assert_int_eq (cw_version_register (registry, "order.created", 1, NULL),
                      -1);
    ck_assert_int_eq (
        cw_version_register (registry, "order.created", 3, s_order_v2_to_v3),
        -1);
    ck_assert_int_eq (cw_version_register (registry, "order.created", 2, NULL),
                      -1);
    //  Bad names and versions
    ck_assert_int_eq (cw_version_register (registry, "Order", 1, NULL), -1);
    ck_assert_int_eq (
        cw_version_register (registry, "order.created.v1", 1, NULL),
        0);  //  A family may itself end in ".v1"
    ck_assert_int_eq (cw_version_register (registry, "x", 0, NULL), -1);
    ck_assert_int_eq (cw_version_register (registry, "x", 10000, NULL), -1);
    ck_assert_int_eq (cw_version_register (registry, "", 1, NULL), -1);
    //  A family whose oldest understood version is not 1
    ck_assert_int_eq (cw_version_register (registry, "legacy.thing", 4, NULL),
                      0);
    ck_assert_int_eq (
        cw_version_register (registry, "legacy.thing", 5, s_breaks_payload), 0);
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope = s_order_envelope ("legacy.thing.v3", "{}");
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "unsupported_contract_version: legacy.thing.v3; "
                              "supported: v4, v5");
    cw_envelope_destroy (&envelope);
    //  An upcaster may drop fields; the result is the current version
    envelope = s_order_envelope ("legacy.thing.v4", "{\"old\":1}");
    ck_assert_int_eq (
        cw_version_resolve (registry, envelope, reason, sizeof (reason)), 0);
    ck_assert_str_eq (cw_envelope_type (envelope), "legacy.thing.v5");
    ck_assert_uint_eq (json_object_size (cw_envelope_data (envelope)), 0);
    cw_envelope_destroy (&envelope);
    //  Many families grow the registry
    for (int index = 0; index < 40; index++) {
        char family[32];
        snprintf (family, sizeof (family), "family%d.thing", index);
        ck_assert_int_eq (cw_version_register (registry, family, 1, NULL), 0);
    }
    ck_assert_int_eq (cw_version_current (registry, "family39.thing"), 1);
    ck_assert_int_eq (cw_version_current (registry, "legacy.thing"), 5);
    cw_version_destroy (&registry);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_version");
    TCase *versions = tcase_create ("versions");
    tcase_set_timeout (versions, 30);
    tcase_add_test (versions, test_contract_registry);
    tcase_add_test (versions, test_upcast_chain);
    tcase_add_test (versions, test_register_rules);
    suite_add_tcase (suite, versions);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
