/*  =========================================================================
    check_cw_idkey - the six idempotency-key formats, built and parsed
    =========================================================================
*/
#include "cw_idkey.h"
#include "cw_retry.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  Parses key, expecting failure with exactly this reason.
static void
s_refuse (const char *key, const char *expected)
{
    cw_idkey_t parsed;
    char reason[256] = "";
    ck_assert_msg (cw_idkey_parse (key, &parsed, reason, sizeof (reason)) == -1,
                   "accepted \"%s\"", key);
    ck_assert_str_eq (reason, expected);
}

//  Parses key, expecting success, and checks it rebuilds to itself.
static cw_idkey_t
s_accept (const char *key)
{
    cw_idkey_t parsed;
    char reason[256] = "";
    ck_assert_msg (cw_idkey_parse (key, &parsed, reason, sizeof (reason)) == 0,
                   "refused \"%s\": %s", key, reason);
    const char *fields[CW_IDKEY_FIELDS_MAX];
    for (size_t index = 0; index < parsed.field_count; index++)
        fields[index] = parsed.fields[index];
    char *again = cw_idkey_build (parsed.kind, fields, parsed.version, reason,
                                  sizeof (reason));
    ck_assert_ptr_nonnull (again);
    ck_assert_str_eq (again, key);
    free (again);
    return parsed;
}

START_TEST (test_exact_vectors)
{
    char reason[256];
    char *key = cw_idkey_customer ("t1", "c-42", 7, reason, sizeof (reason));
    ck_assert_str_eq (key, "customer:t1:c-42:7");
    free (key);
    key = cw_idkey_order ("t1", "o_9", 0, reason, sizeof (reason));
    ck_assert_str_eq (key, "order:t1:o_9:0");
    free (key);
    key = cw_idkey_order_status ("t1", "o.9", "shipped", 18446744073709551615u,
                                 reason, sizeof (reason));
    ck_assert_str_eq (key, "order-status:t1:o.9:shipped:18446744073709551615");
    free (key);
    key = cw_idkey_payment_status ("o~1", "PAID", 3, reason, sizeof (reason));
    ck_assert_str_eq (key, "payment-status:o~1:PAID:3");
    free (key);
    key = cw_idkey_invoice ("o1", "INV/2025/001", 12, reason, sizeof (reason));
    ck_assert_str_eq (key, "invoice:o1:INV%2F2025%2F001:12");
    free (key);
    key = cw_idkey_price ("ART 1", "EUR:retail", 99, reason, sizeof (reason));
    ck_assert_str_eq (key, "price:ART%201:EUR%3Aretail:99");
    free (key);

    //  The generic form, and the names of every kind and field
    const char *fields[] = {"t1", "o1", "paid"};
    key = cw_idkey_build (CW_IDKEY_ORDER_STATUS, fields, 5, reason,
                          sizeof (reason));
    ck_assert_str_eq (key, "order-status:t1:o1:paid:5");
    free (key);
    ck_assert_str_eq (cw_idkey_kind_name (CW_IDKEY_PAYMENT_STATUS),
                      "payment-status");
    ck_assert_uint_eq (cw_idkey_field_count (CW_IDKEY_ORDER_STATUS), 3);
    ck_assert_uint_eq (cw_idkey_field_count (CW_IDKEY_PRICE), 2);
    ck_assert_str_eq (cw_idkey_field_name (CW_IDKEY_INVOICE, 1),
                      "invoiceNumber");
    ck_assert_str_eq (cw_idkey_field_name (CW_IDKEY_INVOICE, 2),
                      "externalVersion");
    ck_assert_str_eq (cw_idkey_field_name (CW_IDKEY_CUSTOMER, 2), "version");
}
END_TEST

START_TEST (test_escaping)
{
    char reason[256];
    //  ':' '%', non-ASCII (UTF-8 bytes), control characters, space
    char *key = cw_idkey_order ("t:1", "100%\xc3\xa9\n\x7f", 1, reason,
                                sizeof (reason));
    ck_assert_str_eq (key, "order:t%3A1:100%25%C3%A9%0A%7F:1");
    cw_idkey_t parsed = s_accept (key);
    ck_assert_int_eq (parsed.kind, CW_IDKEY_ORDER);
    ck_assert_uint_eq (parsed.field_count, 2);
    ck_assert_str_eq (parsed.fields[0], "t:1");
    ck_assert_str_eq (parsed.fields[1], "100%\xc3\xa9\n\x7f");
    ck_assert_uint_eq (parsed.version, 1);
    free (key);

    //  Every byte value 1..255 survives the round trip
    char all[256];
    for (int byte = 1; byte < 256; byte++)
        all[byte - 1] = (char) byte;
    all[255] = 0;
    //  Too long escaped as one field, so split in halves
    char first[128], second[129];
    memcpy (first, all, 127);
    first[127] = 0;
    memcpy (second, all + 127, 128);
    second[128] = 0;
    for (const char *half = first; half; half = half == first ? second : NULL) {
        char part[40];
        for (size_t start = 0; start < strlen (half); start += 39) {
            size_t take =
                strlen (half + start) < 39 ? strlen (half + start) : 39;
            memcpy (part, half + start, take);
            part[take] = 0;
            key = cw_idkey_price (part, "x", 1, reason, sizeof (reason));
            ck_assert_msg (key != NULL, "%s", reason);
            parsed = s_accept (key);
            ck_assert_str_eq (parsed.fields[0], part);
            for (const char *at = key; *at; at++)
                ck_assert (*at > 0x20 && *at < 0x7F);
            free (key);
        }
    }
}
END_TEST

START_TEST (test_build_refusals)
{
    char reason[256];
    ck_assert_ptr_null (cw_idkey_order ("t1", "", 1, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"orderId\": empty");
    ck_assert_ptr_null (
        cw_idkey_customer ("", "c", 1, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"tenantId\": empty");
    ck_assert_ptr_null (cw_idkey_invoice ("o", "", 1, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"invoiceNumber\": empty");
    ck_assert_ptr_null (cw_idkey_price ("a", "", 1, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"priceList\": empty");
    ck_assert_ptr_null (
        cw_idkey_order_status ("t", "o", "", 1, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"status\": empty");
    ck_assert_ptr_null (
        cw_idkey_payment_status ("o", "", 1, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"status\": empty");

    //  Length limit: exactly 255 bytes is fine, 256 is not
    //  "order:" (6) + tenant (1) + ":" + id + ":1" (2) = 255 -> id 245
    char id[300];
    memset (id, 'a', 245);
    id[245] = 0;
    char *key = cw_idkey_order ("t", id, 1, reason, sizeof (reason));
    ck_assert_ptr_nonnull (key);
    ck_assert_uint_eq (strlen (key), CW_IDKEY_MAX);
    s_accept (key);
    free (key);
    id[245] = 'a';
    id[246] = 0;
    ck_assert_ptr_null (cw_idkey_order ("t", id, 1, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "key: longer than 255 bytes once escaped (order key)");
    //  Escaping counts: 82 spaces -> 246 bytes
    memset (id, ' ', 82);
    id[82] = 0;
    ck_assert_ptr_null (cw_idkey_order ("t", id, 1, reason, sizeof (reason)));
    //  A long version pushes it over too
    memset (id, 'a', 227);
    id[227] = 0;
    key = cw_idkey_order ("t", id, 1, reason, sizeof (reason));
    ck_assert_ptr_nonnull (key);
    free (key);
    ck_assert_ptr_null (
        cw_idkey_order ("t", id, UINT64_MAX, reason, sizeof (reason)));
    //  NULL reason buffer is allowed
    ck_assert_ptr_null (cw_idkey_order ("t", "", 1, NULL, 0));
}
END_TEST

START_TEST (test_parse_vectors)
{
    cw_idkey_t parsed = s_accept ("customer:t1:c-42:7");
    ck_assert_int_eq (parsed.kind, CW_IDKEY_CUSTOMER);
    ck_assert_str_eq (parsed.fields[0], "t1");
    ck_assert_str_eq (parsed.fields[1], "c-42");
    ck_assert_uint_eq (parsed.version, 7);
    parsed = s_accept ("order-status:t1:o1:SHIPPED:0");
    ck_assert_int_eq (parsed.kind, CW_IDKEY_ORDER_STATUS);
    ck_assert_uint_eq (parsed.field_count, 3);
    ck_assert_str_eq (parsed.fields[2], "SHIPPED");
    ck_assert_uint_eq (parsed.version, 0);
    parsed = s_accept ("payment-status:o1:paid:18446744073709551615");
    ck_assert_int_eq (parsed.kind, CW_IDKEY_PAYMENT_STATUS);
    ck_assert (parsed.version == UINT64_MAX);
    parsed = s_accept ("invoice:o1:INV%2F1:2");
    ck_assert_int_eq (parsed.kind, CW_IDKEY_INVOICE);
    ck_assert_str_eq (parsed.fields[1], "INV/1");
    parsed = s_accept ("price:A1:EUR:3");
    ck_assert_int_eq (parsed.kind, CW_IDKEY_PRICE);
    parsed = s_accept ("order:t1:o1:10");
    ck_assert_int_eq (parsed.kind, CW_IDKEY_ORDER);
    ck_assert_uint_eq (parsed.version, 10);
}
END_TEST

START_TEST (test_parse_malformed)
{
    //  Prefix
    s_refuse ("", "key: missing or unknown prefix (expected customer, order, "
                  "order-status, payment-status, invoice or price)");
    s_refuse ("orders:t:o:1", "key: unknown prefix \"orders\" (expected "
                              "customer, order, order-status, payment-status, "
                              "invoice or price)");
    s_refuse ("Order:t:o:1", "key: unknown prefix \"Order\" (expected "
                             "customer, order, order-status, payment-status, "
                             "invoice or price)");
    s_refuse ("order", "key: order key has 0 fields after the prefix, "
                       "expected 3");
    s_refuse ("\x01:t:o:1", "key: missing or unknown prefix (expected "
                            "customer, order, order-status, payment-status, "
                            "invoice or price)");
    //  Field count
    s_refuse ("order:t:1", "key: order key has 2 fields after the prefix, "
                           "expected 3");
    s_refuse ("order:t:o:x:1", "key: order key has 4 fields after the "
                               "prefix, expected 3");
    s_refuse ("order-status:t:o:1", "key: order-status key has 3 fields "
                                    "after the prefix, expected 4");
    //  Empty fields, each one named
    s_refuse ("order::o:1", "field \"tenantId\": empty");
    s_refuse ("order:t::1", "field \"orderId\": empty");
    s_refuse ("order:t:o:", "field \"version\": empty");
    s_refuse ("payment-status:o:paid:", "field \"externalVersion\": empty");
    s_refuse ("price:a::1", "field \"priceList\": empty");
    s_refuse ("customer:t::1", "field \"customerId\": empty");
    s_refuse ("invoice::n:1", "field \"orderId\": empty");
    s_refuse ("price::l:1", "field \"articleNumber\": empty");
    s_refuse ("order-status:t:o::1", "field \"status\": empty");
    //  Escapes
    s_refuse ("order:t:o%2:1", "field \"orderId\": truncated escape at byte 2");
    s_refuse ("order:t:o%:1", "field \"orderId\": truncated escape at byte 2");
    s_refuse ("order:t:%2f:1", "field \"orderId\": bad escape \"%2f\" at "
                               "byte 1 (use upper-case hex)");
    s_refuse ("order:t:%G0:1", "field \"orderId\": bad escape \"%G0\" at "
                               "byte 1 (use upper-case hex)");
    s_refuse ("order:t:%41:1", "field \"orderId\": \"%41\" at byte 1 escapes "
                               "'A', which must be written as is");
    s_refuse ("order:t:%7E:1", "field \"orderId\": \"%7E\" at byte 1 escapes "
                               "'~', which must be written as is");
    s_refuse ("order:t:%00:1", "field \"orderId\": escaped NUL byte at byte 1");
    //  Bytes that must be escaped
    s_refuse ("order:t:a b:1", "field \"orderId\": byte ' ' at byte 2 must "
                               "be escaped as %20");
    s_refuse ("order:t/x:o:1", "field \"tenantId\": byte '/' at byte 2 must "
                               "be escaped as %2F");
    s_refuse ("order:t:\xc3\xa9:1", "field \"orderId\": byte 0xC3 at byte 1 "
                                    "must be escaped as %C3");
    s_refuse ("order:t:a\tb:1", "field \"orderId\": byte 0x09 at byte 2 must "
                                "be escaped as %09");
    //  Versions
    s_refuse ("order:t:o:01", "field \"version\": leading zero");
    s_refuse ("order:t:o:00", "field \"version\": leading zero");
    s_refuse ("order:t:o:+1",
              "field \"version\": not an unsigned decimal integer");
    s_refuse ("order:t:o:-1",
              "field \"version\": not an unsigned decimal integer");
    s_refuse ("order:t:o:1 ",
              "field \"version\": not an unsigned decimal integer");
    s_refuse ("order:t:o:0x1",
              "field \"version\": not an unsigned decimal integer");
    s_refuse ("order:t:o:18446744073709551616",
              "field \"version\": out of range (largest is "
              "18446744073709551615)");
    s_refuse ("price:a:l:99999999999999999999",
              "field \"externalVersion\": out of range (largest is "
              "18446744073709551615)");
    //  Length: 256 bytes refused before anything else
    char key[300] = "order:t:";
    memset (key + 8, 'a', 246);
    memcpy (key + 254, ":1", 3);
    ck_assert_uint_eq (strlen (key), 256);
    s_refuse (key, "key: longer than 255 bytes");
    key[253] = 0;
    memcpy (key + 252, ":1", 3);
    s_accept (key);
    //  NULL reason buffer is allowed
    cw_idkey_t parsed;
    ck_assert_int_eq (cw_idkey_parse ("nope", &parsed, NULL, 0), -1);
}
END_TEST

START_TEST (test_random_round_trips)
{
    //  Random byte strings survive build + parse; random mutations of a
    //  valid key are either refused or still canonical.
    cw_retry_rng_t rng;
    cw_retry_rng_seed (&rng, 2026);
    char reason[256];
    for (int round = 0; round < 20000; round++) {
        char fields[3][41];
        const char *pointers[3];
        for (int index = 0; index < 3; index++) {
            size_t length = 1 + cw_retry_rng_next (&rng) % 40;
            for (size_t at = 0; at < length; at++)
                fields[index][at] = (char) (1 + cw_retry_rng_next (&rng) % 255);
            fields[index][length] = 0;
            pointers[index] = fields[index];
        }
        cw_idkey_kind_t kind =
            (cw_idkey_kind_t) (cw_retry_rng_next (&rng) % CW_IDKEY_KIND_COUNT);
        uint64_t version = cw_retry_rng_next (&rng) >> (round % 64);
        char *key =
            cw_idkey_build (kind, pointers, version, reason, sizeof (reason));
        if (!key) {
            ck_assert_str_eq (reason + strlen (reason) - 5, " key)");
            continue;
        }
        cw_idkey_t parsed = s_accept (key);
        ck_assert_int_eq (parsed.kind, kind);
        ck_assert (parsed.version == version);
        for (size_t index = 0; index < parsed.field_count; index++)
            ck_assert_str_eq (parsed.fields[index], fields[index]);
        //  Flip one byte to a random non-NUL value
        size_t at = cw_retry_rng_next (&rng) % strlen (key);
        key[at] = (char) (1 + cw_retry_rng_next (&rng) % 255);
        cw_idkey_t mutated;
        if (cw_idkey_parse (key, &mutated, reason, sizeof (reason)) == 0)
            s_accept (key);
        free (key);
    }
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_idkey");
    TCase *build = tcase_create ("build");
    tcase_set_timeout (build, 10);
    tcase_add_test (build, test_exact_vectors);
    tcase_add_test (build, test_escaping);
    tcase_add_test (build, test_build_refusals);
    suite_add_tcase (suite, build);
    TCase *parse = tcase_create ("parse");
    tcase_set_timeout (parse, 10);
    tcase_add_test (parse, test_parse_vectors);
    tcase_add_test (parse, test_parse_malformed);
    tcase_add_test (parse, test_random_round_trips);
    suite_add_tcase (suite, parse);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
