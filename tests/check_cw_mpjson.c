/*  =========================================================================
    check_cw_mpjson - canonical msgpack form of a JSON value: exact bytes,
    key order, smallest integers, round trip through the envelope codec
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_mpjson.h"

#include <check.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_DEEP_LEVELS 200  //  Nesting packed without recursion limits

//  Packs value into buffer (initialised here, the caller destroys it).
static void
s_pack (msgpack_sbuffer *buffer, const json_t *value)
{
    msgpack_sbuffer_init (buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    cw_mpjson_pack (&packer, value);
}

static void
s_assert_bytes (const json_t *value, const uint8_t *expected, size_t size)
{
    msgpack_sbuffer buffer;
    s_pack (&buffer, value);
    ck_assert_uint_eq (buffer.size, size);
    ck_assert_mem_eq (buffer.data, expected, size);
    msgpack_sbuffer_destroy (&buffer);
}

static json_t *
s_load (const char *text)
{
    json_error_t error;
    json_t *value = json_loads (text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    ck_assert_msg (value != NULL, "bad test JSON: %s", error.text);
    return value;
}

START_TEST (test_exact_bytes)
{
    json_t *value = s_load ("{\"b\":1,\"a\":[true,null,-1,false],\"c\":1.5}");
    const uint8_t expected[] = {0x83, 0xa1, 'a',  0x94, 0xc3, 0xc0, 0xff, 0xc2,
                                0xa1, 'b',  0x01, 0xa1, 'c',  0xcb, 0x3f, 0xf8,
                                0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    s_assert_bytes (value, expected, sizeof (expected));
    json_decref (value);
}
END_TEST

START_TEST (test_key_order_bytewise_every_level)
{
    //  strcmp order: "Z" < "a" < "aa" < "\xc3\xa9" (é), nested maps too
    json_t *value = s_load ("{\"\\u00e9\":0,\"aa\":{\"y\":1,\"x\":2},"
                            "\"a\":0,\"Z\":0}");
    const uint8_t expected[] = {0x84, 0xa1, 'Z',  0x00, 0xa1, 'a',  0x00,
                                0xa2, 'a',  'a',  0x82, 0xa1, 'x',  0x02,
                                0xa1, 'y',  0x01, 0xa2, 0xc3, 0xa9, 0x00};
    s_assert_bytes (value, expected, sizeof (expected));
    //  Insertion order does not matter: same bytes from another order
    json_t *other = s_load ("{\"Z\":0,\"a\":0,\"aa\":{\"x\":2,\"y\":1},"
                            "\"\\u00e9\":0}");
    s_assert_bytes (other, expected, sizeof (expected));
    json_decref (other);
    json_decref (value);
}
END_TEST

START_TEST (test_smallest_integers)
{
    struct {
        json_int_t value;
        uint8_t bytes[9];
        size_t size;
    } cases[] = {
        {0, {0x00}, 1},
        {127, {0x7f}, 1},
        {128, {0xcc, 0x80}, 2},
        {300, {0xcd, 0x01, 0x2c}, 3},
        {-32, {0xe0}, 1},
        {-33, {0xd0, 0xdf}, 2},
        {-200, {0xd1, 0xff, 0x38}, 3},
        {INT64_MAX, {0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
        {INT64_MIN, {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9},
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        json_t *value = json_integer (cases[index].value);
        s_assert_bytes (value, cases[index].bytes, cases[index].size);
        json_decref (value);
    }
}
END_TEST

START_TEST (test_strings_and_empty_containers)
{
    json_t *value = s_load ("[\"\",{},[],\"x\\u0000y\"]");
    //  Embedded NUL is packed as is (the readers reject it, not the packer)
    const uint8_t expected[] = {0x94, 0xa0, 0x80, 0x90, 0xa3, 'x', 0x00, 'y'};
    s_assert_bytes (value, expected, sizeof (expected));
    json_decref (value);
    //  A 32-byte string needs the str8 form
    char text[33];
    memset (text, 'q', 32);
    text[32] = 0;
    json_t *string = json_string (text);
    msgpack_sbuffer buffer;
    s_pack (&buffer, string);
    ck_assert_uint_eq (buffer.size, 34);
    ck_assert_uint_eq ((uint8_t) buffer.data[0], 0xd9);
    ck_assert_uint_eq ((uint8_t) buffer.data[1], 32);
    msgpack_sbuffer_destroy (&buffer);
    json_decref (string);
}
END_TEST

START_TEST (test_deep_nesting)
{
    json_t *value = json_integer (7);
    for (int level = 0; level < S_DEEP_LEVELS; level++) {
        json_t *array = json_array ();
        json_array_append_new (array, value);
        value = array;
    }
    msgpack_sbuffer buffer;
    s_pack (&buffer, value);
    ck_assert_uint_eq (buffer.size, S_DEEP_LEVELS + 1);
    for (int level = 0; level < S_DEEP_LEVELS; level++)
        ck_assert_uint_eq ((uint8_t) buffer.data[level], 0x91);
    ck_assert_uint_eq ((uint8_t) buffer.data[S_DEEP_LEVELS], 0x07);
    msgpack_sbuffer_destroy (&buffer);
    json_decref (value);
}
END_TEST

START_TEST (test_round_trip_through_envelope)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, "evt-1");
    cw_envelope_set_source (envelope, "/webshop");
    cw_envelope_set_type (envelope, "order.created.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03Z");
    cw_envelope_set_tenant_id (envelope, "acme");
    cw_envelope_set_correlation_id (envelope, "corr-1");
    cw_envelope_set_idempotency_key (envelope, "order:acme:o-1:1");
    json_t *data = s_load ("{\"orderId\":\"o-1\",\"lines\":[{\"sku\":\"A\","
                           "\"qty\":2,\"price\":9.99}],\"paid\":true,"
                           "\"note\":null,\"total\":-19980}");
    json_t *expected = json_deep_copy (data);
    cw_envelope_set_data (envelope, &data);
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    size_t size = 0;
    void *bytes =
        cw_envelope_encode_msgpack (envelope, &size, reason, sizeof (reason));
    ck_assert_msg (bytes != NULL, "encode: %s", reason);
    cw_envelope_t *decoded =
        cw_envelope_decode_msgpack (bytes, size, reason, sizeof (reason));
    ck_assert_msg (decoded != NULL, "decode: %s", reason);
    ck_assert (json_equal (cw_envelope_data (decoded), expected));
    //  Canonical: encoding the decoded envelope gives the same bytes
    size_t again_size = 0;
    void *again = cw_envelope_encode_msgpack (decoded, &again_size, reason,
                                              sizeof (reason));
    ck_assert_ptr_nonnull (again);
    ck_assert_uint_eq (again_size, size);
    ck_assert_mem_eq (again, bytes, size);
    free (again);
    free (bytes);
    json_decref (expected);
    cw_envelope_destroy (&decoded);
    cw_envelope_destroy (&envelope);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_mpjson");
    TCase *pack = tcase_create ("pack");
    tcase_set_timeout (pack, 10);
    tcase_add_test (pack, test_exact_bytes);
    tcase_add_test (pack, test_key_order_bytewise_every_level);
    tcase_add_test (pack, test_smallest_integers);
    tcase_add_test (pack, test_strings_and_empty_containers);
    tcase_add_test (pack, test_deep_nesting);
    tcase_add_test (pack, test_round_trip_through_envelope);
    suite_add_tcase (suite, pack);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
