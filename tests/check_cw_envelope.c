/*  =========================================================================
    check_cw_envelope - attributes, canonical codecs, strict decoding
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_mpjson.h"
#include "cw_retry.h"
#include "cw_test_envelope.h"

#include <check.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TRACEPARENT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

//  A valid order.created.v1 envelope with a varied payload
static const char *s_valid_json =
    "{\"specversion\":\"1.0\",\"id\":\"evt-1\",\"source\":\"/webshop/orders\","
    "\"type\":\"order.created.v1\",\"time\":\"2025-01-31T10:02:03.123Z\","
    "\"datacontenttype\":\"application/json\",\"tenantid\":\"acme\","
    "\"correlationid\":\"corr-9\",\"traceparent\":\"" TRACEPARENT "\","
    "\"idempotencykey\":\"order:acme:o-1:1\","
    "\"data\":{\"orderId\":\"o-1\",\"tenantId\":\"acme\",\"version\":1,"
    "\"customerId\":\"c-7\",\"currency\":\"EUR\","
    "\"createdAt\":\"2025-01-31T10:00:00+01:00\","
    "\"lines\":[{\"articleNumber\":\"A-1\",\"quantity\":2,"
    "\"unitPrice\":1250,\"lineTotal\":2500}],"
    "\"totals\":{\"subtotal\":2500,\"tax\":475,\"shipping\":0,"
    "\"total\":2975},\"note\":\"caf\xc3\xa9 \\\"x\\\"\",\"ratio\":0.1,"
    "\"big\":9007199254740993,\"neg\":-129,\"flag\":true,\"none\":null,"
    "\"nested\":{\"z\":[1,[2,{\"y\":false}]],\"a\":-1.5e300}}}";

//  Canonical JSON of a minimal envelope: keys in byte order, compact
static const char *s_minimal_json =
    "{\"correlationid\":\"c\",\"data\":{\"a\":1,\"b\":[true,null,2.5]},"
    "\"datacontenttype\":\"application/json\",\"id\":\"1\","
    "\"idempotencykey\":\"k\",\"source\":\"s\",\"specversion\":\"1.0\","
    "\"tenantid\":\"t\",\"time\":\"2025-01-31T10:02:03Z\","
    "\"type\":\"x.v1\"}";

static cw_envelope_t *
s_decode_json (const char *text)
{
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope =
        cw_envelope_decode_json (text, strlen (text), reason, sizeof (reason));
    ck_assert_msg (envelope != NULL, "rejected: %s", reason);
    return envelope;
}

//  Decodes JSON text that must be rejected with exactly this reason
static void
s_json_rejected (const char *text, const char *expected)
{
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope =
        cw_envelope_decode_json (text, strlen (text), reason, sizeof (reason));
    ck_assert_msg (envelope == NULL, "accepted: %s", text);
    ck_assert_str_eq (reason, expected);
}

//  Valid envelope as a tree, for tests that change one thing
static json_t *
s_valid_tree (void)
{
    json_t *tree = json_loads (s_valid_json, 0, NULL);
    ck_assert_ptr_nonnull (tree);
    return tree;
}

//  Rejects the tree in both forms with the same reason
static void s_pack_test (msgpack_packer *packer, const json_t *value);

static void
s_tree_rejected (json_t *tree, const char *expected)
{
    char *text = json_dumps (tree, JSON_COMPACT);
    s_json_rejected (text, expected);
    free (text);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    s_pack_test (&packer, tree);
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope = cw_envelope_decode_msgpack (
        buffer.data, buffer.size, reason, sizeof (reason));
    ck_assert_ptr_null (envelope);
    ck_assert_str_eq (reason, expected);
    msgpack_sbuffer_destroy (&buffer);
    json_decref (tree);
}

//  Test packer: insertion order, and sentinel strings that stand for what
//  JSON cannot say: "@bin", "@ext", "@nan", "@huge" (uint64 max), "@f32"
//  (float32 1.5), "@i64" (5 as int64), "@key" (a map with an integer key)
static void
s_pack_test (msgpack_packer *packer, const json_t *value)
{
    const char *key;
    json_t *member;
    switch (json_typeof (value)) {
        case JSON_OBJECT:
            msgpack_pack_map (packer, json_object_size (value));
            json_object_foreach ((json_t *) value, key, member)
            {
                msgpack_pack_str_with_body (packer, key, strlen (key));
                s_pack_test (packer, member);
            }
            break;
        case JSON_ARRAY:
            msgpack_pack_array (packer, json_array_size (value));
            for (size_t index = 0; index < json_array_size (value); index++)
                s_pack_test (packer, json_array_get (value, index));
            break;
        case JSON_STRING: {
            const char *text = json_string_value (value);
            if (strcmp (text, "@bin") == 0)
                msgpack_pack_bin_with_body (packer, "ab", 2);
            else if (strcmp (text, "@ext") == 0)
                msgpack_pack_ext_with_body (packer, "ab", 2, 7);
            else if (strcmp (text, "@nan") == 0)
                msgpack_pack_double (packer, NAN);
            else if (strcmp (text, "@huge") == 0)
                msgpack_pack_uint64 (packer, UINT64_MAX);
            else if (strcmp (text, "@f32") == 0)
                msgpack_pack_float (packer, 1.5f);
            else if (strcmp (text, "@i64") == 0) {
                //  Non-canonical: int64 marker for a small number
                const char raw[] = {(char) 0xd3, 0, 0, 0, 0, 0, 0, 0, 5};
                msgpack_sbuffer_write (packer->data, raw, sizeof (raw));
            }
            else if (strcmp (text, "@key") == 0) {
                msgpack_pack_map (packer, 1);
                msgpack_pack_int (packer, 1);
                msgpack_pack_true (packer);
            }
            else
                msgpack_pack_str_with_body (packer, text,
                                            json_string_length (value));
            break;
        }
        case JSON_INTEGER:
            msgpack_pack_int64 (packer, json_integer_value (value));
            break;
        case JSON_REAL:
            msgpack_pack_double (packer, json_real_value (value));
            break;
        case JSON_TRUE:
            msgpack_pack_true (packer);
            break;
        case JSON_FALSE:
            msgpack_pack_false (packer);
            break;
        case JSON_NULL:
            msgpack_pack_nil (packer);
            break;
    }
}

//  Packs a tree with the test packer; caller frees
static void *
s_pack_tree (const json_t *tree, size_t *size_p)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    s_pack_test (&packer, tree);
    *size_p = buffer.size;
    return msgpack_sbuffer_release (&buffer);
}

START_TEST (test_accessors)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    char reason[CW_ENVELOPE_REASON_SIZE];
    ck_assert_int_eq (cw_envelope_validate (envelope, reason, sizeof (reason)),
                      -1);
    ck_assert_str_eq (reason, "field \"id\": missing");
    cw_envelope_set_id (envelope, "evt-1");
    cw_envelope_set_id (envelope, "evt-2");
    cw_envelope_set_source (envelope, "/webshop");
    cw_envelope_set_type (envelope, "order.created.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03Z");
    cw_envelope_set_tenant_id (envelope, "acme");
    cw_envelope_set_correlation_id (envelope, "corr-1");
    cw_envelope_set_idempotency_key (envelope, "order:acme:o-1:1");
    ck_assert_int_eq (cw_envelope_validate (envelope, reason, sizeof (reason)),
                      -1);
    ck_assert_str_eq (reason, "field \"data\": missing");
    json_t *data = json_pack ("{s:s}", "orderId", "o-1");
    cw_envelope_set_data (envelope, &data);
    ck_assert_ptr_null (data);
    ck_assert_int_eq (cw_envelope_validate (envelope, reason, sizeof (reason)),
                      0);
    ck_assert_ptr_null (cw_envelope_traceparent (envelope));
    cw_envelope_set_traceparent (envelope, TRACEPARENT);

    ck_assert_str_eq (cw_envelope_specversion (envelope), "1.0");
    ck_assert_str_eq (cw_envelope_datacontenttype (envelope),
                      "application/json");
    ck_assert_str_eq (cw_envelope_id (envelope), "evt-2");
    ck_assert_str_eq (cw_envelope_source (envelope), "/webshop");
    ck_assert_str_eq (cw_envelope_type (envelope), "order.created.v1");
    ck_assert_str_eq (cw_envelope_time (envelope), "2025-01-31T10:02:03Z");
    ck_assert_str_eq (cw_envelope_tenant_id (envelope), "acme");
    ck_assert_str_eq (cw_envelope_correlation_id (envelope), "corr-1");
    ck_assert_str_eq (cw_envelope_traceparent (envelope), TRACEPARENT);
    ck_assert_str_eq (cw_envelope_idempotency_key (envelope),
                      "order:acme:o-1:1");

    cw_envelope_t *copy = cw_envelope_dup (envelope);
    json_object_set_new (cw_envelope_data (envelope), "orderId",
                         json_string ("changed"));
    ck_assert_str_eq (json_string_value (
                          json_object_get (cw_envelope_data (copy), "orderId")),
                      "o-1");
    cw_envelope_set_traceparent (copy, NULL);
    ck_assert_ptr_null (cw_envelope_traceparent (copy));
    ck_assert_str_eq (cw_envelope_traceparent (envelope), TRACEPARENT);

    cw_envelope_destroy (&copy);
    cw_envelope_destroy (&envelope);
    ck_assert_ptr_null (envelope);
    cw_envelope_destroy (&envelope);
}
END_TEST

START_TEST (test_round_trip)
{
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope = s_decode_json (s_valid_json);
    size_t size_1;
    void *msgpack_1 =
        cw_envelope_encode_msgpack (envelope, &size_1, reason, sizeof (reason));
    ck_assert_msg (msgpack_1 != NULL, "%s", reason);
    cw_envelope_destroy (&envelope);

    //  msgpack -> envelope -> JSON -> envelope -> msgpack: same bytes
    envelope =
        cw_envelope_decode_msgpack (msgpack_1, size_1, reason, sizeof (reason));
    ck_assert_msg (envelope != NULL, "%s", reason);
    char *json = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    ck_assert_ptr_nonnull (json);
    cw_envelope_destroy (&envelope);
    envelope = s_decode_json (json);
    size_t size_2;
    void *msgpack_2 =
        cw_envelope_encode_msgpack (envelope, &size_2, reason, sizeof (reason));
    ck_assert_uint_eq (size_1, size_2);
    ck_assert_int_eq (memcmp (msgpack_1, msgpack_2, size_1), 0);
    //  And JSON -> envelope -> JSON: same text
    char *json_2 = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    ck_assert_str_eq (json, json_2);

    //  Integers stay integers (exactly, past 2^53), reals stay reals
    json_t *data = cw_envelope_data (envelope);
    json_t *big = json_object_get (data, "big");
    ck_assert (json_is_integer (big));
    ck_assert (json_integer_value (big) == 9007199254740993LL);
    ck_assert (json_is_integer (json_object_get (data, "neg")));
    ck_assert_int_eq (json_integer_value (json_object_get (data, "neg")), -129);
    json_t *ratio = json_object_get (data, "ratio");
    ck_assert (json_is_real (ratio));
    ck_assert (json_real_value (ratio) == 0.1);
    json_t *huge = json_object_get (json_object_get (data, "nested"), "a");
    ck_assert (json_real_value (huge) == -1.5e300);
    ck_assert_str_eq (json_string_value (json_object_get (data, "note")),
                      "caf\xc3\xa9 \"x\"");
    ck_assert (json_is_null (json_object_get (data, "none")));
    ck_assert_str_eq (cw_envelope_traceparent (envelope), TRACEPARENT);

    free (json);
    free (json_2);
    free (msgpack_1);
    free (msgpack_2);
    cw_envelope_destroy (&envelope);
}
END_TEST

START_TEST (test_canonical_form)
{
    //  Any key order in, byte order out (every level); no traceparent
    const char *shuffled =
        "{\"type\":\"x.v1\",\"data\":{\"b\":[true,null,2.5],\"a\":1},"
        "\"id\":\"1\",\"time\":\"2025-01-31T10:02:03Z\",\"source\":\"s\","
        "\"tenantid\":\"t\",\"idempotencykey\":\"k\",\"correlationid\":"
        "\"c\",\"specversion\":\"1.0\",\"datacontenttype\":"
        "\"application/json\"}";
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope = s_decode_json (shuffled);
    char *json = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    ck_assert_str_eq (json, s_minimal_json);
    free (json);

    //  msgpack: the first bytes are a map of 10 and "correlationid"
    size_t size;
    uint8_t *bytes = (uint8_t *) cw_envelope_encode_msgpack (
        envelope, &size, reason, sizeof (reason));
    ck_assert_uint_eq (bytes[0], 0x8a);
    ck_assert_uint_eq (bytes[1], 0xa0 | 13);
    ck_assert_int_eq (memcmp (bytes + 2, "correlationid", 13), 0);
    free (bytes);
    cw_envelope_destroy (&envelope);

    //  Non-canonical msgpack (int64 for 5, float32) is accepted and
    //  re-encoded canonically: smallest integer, float64
    json_t *tree = json_loads (s_minimal_json, 0, NULL);
    json_object_set_new (json_object_get (tree, "data"), "a",
                         json_string ("@i64"));
    json_object_set_new (json_object_get (tree, "data"), "c",
                         json_string ("@f32"));
    void *packed = s_pack_tree (tree, &size);
    envelope =
        cw_envelope_decode_msgpack (packed, size, reason, sizeof (reason));
    ck_assert_msg (envelope != NULL, "%s", reason);
    json_t *data = cw_envelope_data (envelope);
    ck_assert_int_eq (json_integer_value (json_object_get (data, "a")), 5);
    ck_assert (json_real_value (json_object_get (data, "c")) == 1.5);
    json = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    ck_assert_ptr_nonnull (strstr (json, "\"data\":{\"a\":5,\"b\":[true,null,"
                                         "2.5],\"c\":1.5}"));
    free (json);
    free (packed);
    json_decref (tree);
    cw_envelope_destroy (&envelope);
}
END_TEST

START_TEST (test_truncated)
{
    char reason[CW_ENVELOPE_REASON_SIZE];
    cw_envelope_t *envelope = s_decode_json (s_valid_json);
    size_t size;
    uint8_t *bytes = (uint8_t *) cw_envelope_encode_msgpack (
        envelope, &size, reason, sizeof (reason));
    char *json = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    cw_envelope_destroy (&envelope);
    //  Every prefix of a valid message is rejected, with a reason; the
    //  copy makes ASan catch any read past the prefix
    for (size_t length = 0; length < size; length++) {
        uint8_t *prefix = (uint8_t *) malloc (length ? length : 1);
        memcpy (prefix, bytes, length);
        reason[0] = 0;
        envelope = cw_envelope_decode_msgpack (prefix, length, reason,
                                               sizeof (reason));
        ck_assert_msg (envelope == NULL, "prefix %zu accepted", length);
        ck_assert_msg (reason[0] != 0, "prefix %zu: no reason", length);
        free (prefix);
    }
    size_t json_size = strlen (json);
    for (size_t length = 0; length < json_size; length++) {
        reason[0] = 0;
        envelope =
            cw_envelope_decode_json (json, length, reason, sizeof (reason));
        ck_assert_msg (envelope == NULL, "JSON prefix %zu accepted", length);
        ck_assert (reason[0] != 0);
    }
    //  A cut names the field being read ("type" is last in byte order)
    envelope =
        cw_envelope_decode_msgpack (bytes, size - 1, reason, sizeof (reason));
    ck_assert_ptr_null (envelope);
    ck_assert_str_eq (reason, "field \"type\": truncated");
    //  And the whole message still decodes
    envelope =
        cw_envelope_decode_msgpack (bytes, size, reason, sizeof (reason));
    ck_assert_ptr_nonnull (envelope);
    cw_envelope_destroy (&envelope);
    free (bytes);
    free (json);
}
END_TEST

START_TEST (test_malformed_msgpack)
{
    char reason[CW_ENVELOPE_REASON_SIZE];
    struct {
        const char *bytes;
        size_t size;
        const char *reason;
    } cases[] = {
        {"", 0, "invalid msgpack: empty message"},
        {"\x92\x01\x02", 3, "envelope must be a map of attributes"},
        {"\xc1", 1, "envelope must be a map of attributes"},
        {"\x81\xa1x\xc1", 4, "field \"x\": invalid type marker 0xc1"},
        {"\x80\x00", 2, "invalid msgpack: 1 bytes after the envelope"},
        {"\x80", 1, "field \"specversion\": missing"},
        {"\xdf\xff\xff\xff\xff\x00", 6, "invalid msgpack: truncated"},
        {"\x81\x01\x02", 3, "invalid msgpack: map keys must be strings"},
        {"\x82\xa1x\x01\xa1x\x02", 7, "field \"x\": duplicate key"},
        {"\x81\xa2\xff\xfe\x01", 5,
         "invalid msgpack: map keys must be valid UTF-8"},
        {"\x81\xa1x\xa2\xc3\x28", 6, "field \"x\": must be valid UTF-8"},
        {"\x81\xa1x\xa2\x61\x00", 6,
         "field \"x\": must not contain NUL characters"},
        {"\x81\xa1x\xdd\xff\xff\xff\xff", 8, "field \"x\": truncated"},
        {"\x81\xa1x\xdb\xff\xff\xff\xff", 8, "field \"x\": truncated"},
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        reason[0] = 0;
        cw_envelope_t *envelope = cw_envelope_decode_msgpack (
            cases[index].bytes, cases[index].size, reason, sizeof (reason));
        ck_assert_msg (envelope == NULL, "case %zu accepted", index);
        ck_assert_str_eq (reason, cases[index].reason);
    }
    cw_envelope_t *envelope;
    //  What JSON cannot express is rejected by field name
    struct {
        const char *sentinel;
        const char *reason;
    } values[] = {
        {"@bin", "field \"data.lines[0].blob\": binary data is not allowed "
                 "(JSON cannot express it)"},
        {"@ext", "field \"data.lines[0].blob\": extension types are not "
                 "allowed (JSON cannot express them)"},
        {"@nan", "field \"data.lines[0].blob\": must be a finite number"},
        {"@huge", "field \"data.lines[0].blob\": integer out of range"},
        {"@key", "field \"data.lines[0].blob\": map keys must be strings"},
    };
    for (size_t index = 0; index < sizeof (values) / sizeof (values[0]);
         index++) {
        json_t *tree = s_valid_tree ();
        json_t *line = json_array_get (
            json_object_get (json_object_get (tree, "data"), "lines"), 0);
        json_object_set_new (line, "blob",
                             json_string (values[index].sentinel));
        size_t size;
        void *packed = s_pack_tree (tree, &size);
        envelope =
            cw_envelope_decode_msgpack (packed, size, reason, sizeof (reason));
        ck_assert_ptr_null (envelope);
        ck_assert_str_eq (reason, values[index].reason);
        free (packed);
        json_decref (tree);
    }
}
END_TEST

START_TEST (test_malformed_json)
{
    s_json_rejected ("{\"id\":", "invalid JSON: unexpected token near end "
                                 "of file at line 1 column 6");
    s_json_rejected ("", "invalid JSON: empty message");
    s_json_rejected ("[]", "envelope must be a map of attributes");
    s_json_rejected ("\"x\"", "envelope must be a map of attributes");
    s_json_rejected ("{\"id\":\"a\",\"id\":\"b\"}",
                     "invalid JSON: duplicate object key near '\"id\"' at "
                     "line 1 column 14");
    s_json_rejected ("{\"x\":1} trailing",
                     "invalid JSON: end of file expected near 'trailing' at "
                     "line 1 column 16");
    s_json_rejected ("{\"x\":\"\\u0000\"}",
                     "invalid JSON: \\u0000 is not allowed without "
                     "JSON_ALLOW_NUL near '\"\\u0000\"' at line 1 column 13");
    s_json_rejected ("{\"x\":\"\xff\"}",
                     "invalid JSON: unable to decode byte 0xff near '\"' at "
                     "line 1 column 6");
    s_json_rejected ("{\"n\":1e400}",
                     "invalid JSON: real number overflow near '1e400' at "
                     "line 1 column 10");
    s_json_rejected ("{\"n\":99999999999999999999}",
                     "invalid JSON: too big integer near "
                     "'99999999999999999999' at line 1 column 25");
}
END_TEST

START_TEST (test_wrong_fields)
{
    struct {
        const char *name;
        json_t *value;  //  NULL removes the attribute
        const char *reason;
    } cases[] = {
        {"tenantid", NULL, "field \"tenantid\": missing"},
        {"specversion", NULL, "field \"specversion\": missing"},
        {"datacontenttype", NULL, "field \"datacontenttype\": missing"},
        {"id", NULL, "field \"id\": missing"},
        {"source", NULL, "field \"source\": missing"},
        {"type", NULL, "field \"type\": missing"},
        {"time", NULL, "field \"time\": missing"},
        {"correlationid", NULL, "field \"correlationid\": missing"},
        {"idempotencykey", NULL, "field \"idempotencykey\": missing"},
        {"data", NULL, "field \"data\": missing"},
        {"id", json_integer (5), "field \"id\": must be a string"},
        {"tenantid", json_null (), "field \"tenantid\": must be a string"},
        {"data", json_array (), "field \"data\": must be an object"},
        {"data", json_string ("{}"), "field \"data\": must be an object"},
        {"specversion", json_string ("0.3"),
         "field \"specversion\": must be \"1.0\""},
        {"datacontenttype", json_string ("text/plain"),
         "field \"datacontenttype\": must be \"application/json\""},
        {"subject", json_string ("x"), "field \"subject\": unknown attribute"},
        {"TenantId", json_string ("x"),
         "field \"TenantId\": unknown attribute"},
        {"type", json_string ("order.created"),
         "field \"type\": must be a lower-case dotted name with a version "
         "suffix like \"order.created.v1\" (at most 128 bytes)"},
        {"type", json_string ("order.created.v0"),
         "field \"type\": must be a lower-case dotted name with a version "
         "suffix like \"order.created.v1\" (at most 128 bytes)"},
        {"type", json_string ("Order.created.v1"),
         "field \"type\": must be a lower-case dotted name with a version "
         "suffix like \"order.created.v1\" (at most 128 bytes)"},
        {"time", json_string ("2025-01-31T10:02:03"),
         "field \"time\": must be an RFC 3339 timestamp with offset"},
        {"traceparent",
         json_string (
             "00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
         "field \"traceparent\": must be a W3C traceparent "
         "\"00-<32 hex>-<16 hex>-<2 hex>\" with non-zero ids"},
        {"tenantid", json_string ("acme:eu"),
         "field \"tenantid\": must contain only letters, digits, '.', '_' "
         "and '-'"},
        {"id", json_string (""), "field \"id\": must be 1 to 128 bytes, not 0"},
        {"correlationid", json_string ("a b"),
         "field \"correlationid\": must be printable ASCII without spaces"},
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        json_t *tree = s_valid_tree ();
        if (cases[index].value)
            json_object_set_new (tree, cases[index].name, cases[index].value);
        else
            json_object_del (tree, cases[index].name);
        s_tree_rejected (tree, cases[index].reason);
    }
    //  traceparent is optional
    json_t *tree = s_valid_tree ();
    json_object_del (tree, "traceparent");
    char *text = json_dumps (tree, 0);
    cw_envelope_t *envelope = s_decode_json (text);
    ck_assert_ptr_null (cw_envelope_traceparent (envelope));
    cw_envelope_destroy (&envelope);
    free (text);
    json_decref (tree);
}
END_TEST

//  Makes an envelope tree whose data nests levels containers deep
static json_t *
s_deep_tree (int levels)
{
    json_t *tree = json_loads (s_minimal_json, 0, NULL);
    json_t *inner = json_object ();
    json_t *data = inner;
    for (int level = 1; level < levels; level++) {
        json_t *next = level % 2 ? json_array () : json_object ();
        if (json_is_array (inner))
            json_array_append_new (inner, next);
        else
            json_object_set_new (inner, "n", next);
        inner = next;
    }
    json_object_set_new (tree, "data", data);
    return tree;
}

START_TEST (test_limits)
{
    char reason[CW_ENVELOPE_REASON_SIZE];
    //  Attribute lengths: at the limit accepted, one more rejected
    char id[CW_ENVELOPE_ID_MAX + 2];
    memset (id, 'i', sizeof (id) - 1);
    id[sizeof (id) - 1] = 0;
    json_t *tree = s_valid_tree ();
    json_object_set_new (tree, "id", json_string (id));
    s_tree_rejected (tree, "field \"id\": must be 1 to 128 bytes, not 129");
    id[CW_ENVELOPE_ID_MAX] = 0;
    tree = s_valid_tree ();
    json_object_set_new (tree, "id", json_string (id));
    char *text = json_dumps (tree, 0);
    cw_envelope_t *envelope = s_decode_json (text);
    cw_envelope_destroy (&envelope);
    free (text);
    json_decref (tree);

    char source[CW_ENVELOPE_SOURCE_MAX + 2];
    memset (source, 's', sizeof (source) - 1);
    source[sizeof (source) - 1] = 0;
    tree = s_valid_tree ();
    json_object_set_new (tree, "source", json_string (source));
    s_tree_rejected (tree, "field \"source\": must be 1 to 256 bytes, not 257");

    //  Keys in data: at most 255 bytes
    char key[CW_ENVELOPE_KEY_MAX + 2];
    memset (key, 'k', sizeof (key) - 1);
    key[sizeof (key) - 1] = 0;
    tree = s_valid_tree ();
    json_object_set_new (json_object_get (tree, "data"), key, json_true ());
    text = json_dumps (tree, JSON_COMPACT);
    envelope =
        cw_envelope_decode_json (text, strlen (text), reason, sizeof (reason));
    ck_assert_ptr_null (envelope);
    ck_assert_ptr_nonnull (strstr (reason, ": key longer than 255 bytes"));
    free (text);
    size_t size;
    void *packed = s_pack_tree (tree, &size);
    envelope =
        cw_envelope_decode_msgpack (packed, size, reason, sizeof (reason));
    ck_assert_ptr_null (envelope);
    ck_assert_str_eq (reason, "field \"data\": map key longer than 255 bytes");
    free (packed);
    json_decref (tree);

    //  Depth: 16 levels in data accepted, 17 rejected, in both forms
    tree = s_deep_tree (CW_ENVELOPE_MAX_DEPTH);
    text = json_dumps (tree, JSON_COMPACT);
    envelope = s_decode_json (text);
    cw_envelope_destroy (&envelope);
    free (text);
    packed = s_pack_tree (tree, &size);
    envelope =
        cw_envelope_decode_msgpack (packed, size, reason, sizeof (reason));
    ck_assert_msg (envelope != NULL, "%s", reason);
    cw_envelope_destroy (&envelope);
    free (packed);
    json_decref (tree);
    tree = s_deep_tree (CW_ENVELOPE_MAX_DEPTH + 1);
    s_tree_rejected (tree, "field \"data.n[0].n[0].n[0].n[0].n[0].n[0].n[0]"
                           ".n[0]\": nesting deeper than 16 levels");

    //  Whole message: 1 MiB
    size_t big = CW_ENVELOPE_MAX_SIZE + 1;
    char *huge = (char *) malloc (big);
    memset (huge, ' ', big);
    envelope = cw_envelope_decode_json (huge, big, reason, sizeof (reason));
    ck_assert_ptr_null (envelope);
    ck_assert_str_eq (reason,
                      "envelope too large: 1048577 bytes, limit is 1048576");
    envelope = cw_envelope_decode_msgpack (huge, big, reason, sizeof (reason));
    ck_assert_ptr_null (envelope);
    ck_assert_str_eq (reason,
                      "envelope too large: 1048577 bytes, limit is 1048576");
    free (huge);

    //  An envelope too large to encode is refused by the encoders
    envelope = s_decode_json (s_minimal_json);
    char *filler = (char *) malloc (CW_ENVELOPE_MAX_SIZE);
    memset (filler, 'f', CW_ENVELOPE_MAX_SIZE - 1);
    filler[CW_ENVELOPE_MAX_SIZE - 1] = 0;
    json_object_set_new (cw_envelope_data (envelope), "filler",
                         json_string (filler));
    free (filler);
    ck_assert_ptr_null (
        cw_envelope_encode_msgpack (envelope, &size, reason, sizeof (reason)));
    ck_assert_ptr_nonnull (strstr (reason, "envelope too large: "));
    ck_assert_ptr_null (
        cw_envelope_encode_json (envelope, reason, sizeof (reason)));
    ck_assert_ptr_nonnull (strstr (reason, "envelope too large: "));
    cw_envelope_destroy (&envelope);

    //  A reason buffer that is too small is truncated, never overrun
    char tiny[8];
    envelope = cw_envelope_decode_json ("[]", 2, tiny, sizeof (tiny));
    ck_assert_ptr_null (envelope);
    ck_assert_str_eq (tiny, "envelop");
    envelope = cw_envelope_decode_json ("[]", 2, NULL, 0);
    ck_assert_ptr_null (envelope);
}
END_TEST

START_TEST (test_formats)
{
    const char *good_times[] = {"2025-01-31T10:02:03Z",
                                "2025-01-31T10:02:03.123Z",
                                "2024-02-29T23:59:59+14:00",
                                "2025-12-31T00:00:00.123456789-05:30",
                                "0001-01-01T00:00:00Z",
                                "9999-12-31T23:59:59-15:59", NULL};
    const char *bad_times[] = {"2025-01-31T10:02:03",
                               "2025-01-31 10:02:03Z",
                               "2025-01-31t10:02:03Z",
                               "2025-01-31T10:02:03z",
                               "2023-02-29T10:00:00Z",
                               "2025-13-01T10:00:00Z",
                               "2025-04-31T10:00:00Z",
                               "2025-01-31T24:00:00Z",
                               "2025-01-31T10:60:00Z",
                               "2025-01-31T10:00:60Z",
                               "2025-01-31T10:00:00.Z",
                               "2025-01-31T10:00:00.1234567890Z",
                               "2025-01-31T10:00:00+0100",
                               "2025-01-31T10:00:00+24:00",
                               "2025-01-31T10:00:00+16:00",
                               "2025-01-31T10:00:00-23:59",
                               "0000-01-01T00:00:00Z",
                               "2025-1-31T10:00:00Z",
                               "",
                               NULL};
    for (int index = 0; good_times[index]; index++)
        ck_assert_msg (cw_envelope_time_valid (good_times[index]), "%s",
                       good_times[index]);
    for (int index = 0; bad_times[index]; index++)
        ck_assert_msg (!cw_envelope_time_valid (bad_times[index]), "%s",
                       bad_times[index]);
    ck_assert (!cw_envelope_time_valid (NULL));

    ck_assert (cw_envelope_traceparent_valid (TRACEPARENT));
    const char *bad_traces[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        NULL};
    for (int index = 0; bad_traces[index]; index++)
        ck_assert_msg (!cw_envelope_traceparent_valid (bad_traces[index]), "%s",
                       bad_traces[index]);

    char family[64];
    int version = 0;
    ck_assert_int_eq (cw_envelope_parse_type ("erp.price.updated.v12", family,
                                              sizeof (family), &version),
                      0);
    ck_assert_str_eq (family, "erp.price.updated");
    ck_assert_int_eq (version, 12);
    const char *bad_types[] = {"v1",
                               ".v1",
                               "order..created.v1",
                               "order.created.v",
                               "order.created.v01",
                               "order.created.v10000",
                               "order.Created.v1",
                               "order.1created.v1",
                               "order.created.V1",
                               "order-created.v1",
                               NULL};
    for (int index = 0; bad_types[index]; index++)
        ck_assert_msg (cw_envelope_parse_type (bad_types[index], family,
                                               sizeof (family), &version)
                           == -1,
                       "%s", bad_types[index]);
    //  Family buffer too small
    ck_assert_int_eq (
        cw_envelope_parse_type ("order.created.v1", family, 5, &version), -1);
}
END_TEST

START_TEST (test_utf8)
{
    struct {
        const char *text;
        size_t size;
        bool valid;
    } cases[] = {
        {"", 0, true},
        {"plain ascii", 11, true},
        {"a\0b", 3, true},  //  NUL is UTF-8; the codecs refuse it apart
        {"caf\xc3\xa9", 5, true},
        {"\xe2\x82\xac", 3, true},
        {"\xf0\x9f\x98\x80", 4, true},
        {"\xf4\x8f\xbf\xbf", 4, true},  //  U+10FFFF
        {"\xc3", 1, false},             //  Cut short
        {"\xe2\x82", 2, false},
        {"\x80", 1, false},              //  Continuation byte first
        {"\xc0\xaf", 2, false},          //  Overlong '/'
        {"\xe0\x80\xaf", 3, false},      //  Overlong, 3 bytes
        {"\xed\xa0\x80", 3, false},      //  Surrogate U+D800
        {"\xf4\x90\x80\x80", 4, false},  //  Above U+10FFFF
        {"\xf8\x88\x80\x80\x80", 5, false},
        {"ok\xff", 3, false},
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]); index++)
        ck_assert_msg (
            cw_envelope_utf8_valid (cases[index].text, cases[index].size)
                == cases[index].valid,
            "case %zu", index);
    ck_assert (cw_envelope_utf8_valid (NULL, 0));
}
END_TEST

START_TEST (test_append)
{
    char reason[CW_ENVELOPE_REASON_SIZE];
    cw_envelope_t *envelope = s_decode_json (s_valid_json);
    size_t size;
    void *bytes =
        cw_envelope_encode_msgpack (envelope, &size, reason, sizeof (reason));
    ck_assert_ptr_nonnull (bytes);

    //  Appended after what the buffer holds: the same bytes
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_sbuffer_write (&buffer, "\x93\x01\x02", 3);
    ck_assert_int_eq (
        cw_envelope_append_msgpack (envelope, &buffer, reason, sizeof (reason)),
        0);
    ck_assert_uint_eq (buffer.size, 3 + size);
    ck_assert_int_eq (memcmp (buffer.data, "\x93\x01\x02", 3), 0);
    ck_assert_int_eq (memcmp (buffer.data + 3, bytes, size), 0);

    //  Refused: the buffer keeps its size, the reason names the field
    cw_envelope_set_time (envelope, "yesterday");
    ck_assert_int_eq (
        cw_envelope_append_msgpack (envelope, &buffer, reason, sizeof (reason)),
        -1);
    ck_assert_str_eq (
        reason, "field \"time\": must be an RFC 3339 timestamp with offset");
    ck_assert_uint_eq (buffer.size, 3 + size);
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03Z");
    char *filler = (char *) malloc (CW_ENVELOPE_MAX_SIZE);
    memset (filler, 'f', CW_ENVELOPE_MAX_SIZE - 1);
    filler[CW_ENVELOPE_MAX_SIZE - 1] = 0;
    json_object_set_new (cw_envelope_data (envelope), "filler",
                         json_string (filler));
    free (filler);
    ck_assert_int_eq (
        cw_envelope_append_msgpack (envelope, &buffer, reason, sizeof (reason)),
        -1);
    ck_assert_ptr_nonnull (strstr (reason, "envelope too large: "));
    ck_assert_uint_eq (buffer.size, 3 + size);
    msgpack_sbuffer_destroy (&buffer);
    free (bytes);
    cw_envelope_destroy (&envelope);
}
END_TEST

//  What an envelope in memory can hold and the msgpack reader refuses:
//  the encoders refuse it too (they write nothing a decoder refuses),
//  named as the reader names it
START_TEST (test_unreadable_data)
{
    struct {
        const char *key;
        size_t key_size;
        json_t *value;
        const char *reason;
    } cases[] = {
        {"x", 1, json_stringn_nocheck ("caf\xc3", 4),
         "field \"data.x\": must be valid UTF-8"},
        {"x", 1, json_stringn ("a\0b", 3),
         "field \"data.x\": must not contain NUL characters"},
        {"k\xff", 2, json_true (),
         "field \"data\": map keys must be valid UTF-8"},
        //  cw_mpjson_pack writes it whole; validation refuses it
        {"n\0ul", 4, json_true (),
         "field \"data\": map keys must not contain NUL characters"},
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        cw_envelope_t *envelope = s_decode_json (s_valid_json);
        json_t *data = cw_envelope_data (envelope);
        json_object_setn_new_nocheck (
            data, cases[index].key, cases[index].key_size, cases[index].value);
        char reason[CW_ENVELOPE_REASON_SIZE] = "";
        ck_assert_int_eq (
            cw_envelope_validate (envelope, reason, sizeof (reason)), -1);
        ck_assert_str_eq (reason, cases[index].reason);
        size_t size;
        reason[0] = 0;
        ck_assert_ptr_null (cw_envelope_encode_msgpack (envelope, &size, reason,
                                                        sizeof (reason)));
        ck_assert_str_eq (reason, cases[index].reason);
        reason[0] = 0;
        ck_assert_ptr_null (
            cw_envelope_encode_json (envelope, reason, sizeof (reason)));
        ck_assert_str_eq (reason, cases[index].reason);
        cw_envelope_destroy (&envelope);
    }
}
END_TEST

//  ---------------------------------------------------------------------
//  Property: cw_envelope_encode_msgpack refuses an envelope exactly when
//  cw_envelope_decode_msgpack refuses its tree written canonically, and
//  what it writes are those bytes, which decode to the same envelope.

#define S_SEED 0x0e1e0b0e5eed4242ULL
#define S_ENVELOPES 3000

//  Seeded splitmix64, the same sequence on every machine (proto's)
typedef cw_retry_rng_t s_rng_t;

static uint64_t
s_below (s_rng_t *rng, uint64_t bound)
{
    return cw_retry_rng_next (rng) % bound;
}

static const char *
s_pick (s_rng_t *rng, const char *const *values, size_t count)
{
    return values[s_below (rng, count)];
}

#define S_PICK(rng, values)                                                    \
    s_pick (rng, values, sizeof (values) / sizeof (values[0]))

//  Attribute values, good ones then wrong ones; NULL leaves it out
static const char *s_ids[] = {"evt-1", "evt-2", NULL, "", "a b", "\xff"};
static const char *s_sources[] = {"/webshop/orders", "urn:x", NULL, " "};
static const char *s_types[] = {"order.created.v1",
                                "erp.price.updated.v12",
                                NULL,
                                "order.created",
                                "x.v0",
                                "X.v1"};
static const char *s_times[] = {"2025-01-31T10:02:03Z",
                                "2024-02-29T23:59:59.5+14:00", NULL,
                                "2025-01-31T10:02:03", "2023-02-29T00:00:00Z"};
static const char *s_tenants[] = {"acme", "t-1.eu_2", NULL, "acme:eu", ""};
static const char *s_traces[] = {
    NULL, TRACEPARENT,
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"};
#define S_GOOD 2  //  Good values at the start of each list

//  A value of list: a good one, or a wrong one when wrong
static const char *
s_attribute_value (s_rng_t *rng,
                   const char *const *list,
                   size_t count,
                   bool wrong)
{
    return wrong ? list[S_GOOD + s_below (rng, count - S_GOOD)]
                 : list[s_below (rng, S_GOOD)];
}

#define S_ATTRIBUTE(rng, list, wrong)                                          \
    s_attribute_value (rng, list, sizeof (list) / sizeof (list[0]), wrong)

//  A JSON value, up to depth container levels; one in bad values (at
//  each level) is one the reader refuses
static json_t *
s_gen_value (s_rng_t *rng, int depth, int bad)
{
    if (bad && s_below (rng, (uint64_t) bad) == 0) {
        json_t *object = json_object ();
        switch (s_below (rng, 6)) {
            case 0:
                json_decref (object);
                return json_stringn_nocheck ("\xed\xa0\x80", 3);
            case 1:
                json_decref (object);
                return json_stringn ("n\0l", 3);
            case 2: {
                char key[CW_ENVELOPE_KEY_MAX + 2];
                memset (key, 'k', sizeof (key) - 1);
                key[sizeof (key) - 1] = 0;
                json_object_set_new (object, key, json_null ());
                return object;
            }
            case 3:
                json_object_set_new_nocheck (object, "\xc0\xaf", json_null ());
                return object;
            case 4:
                //  Written as "a" twice
                json_object_set_new (object, "a", json_null ());
                json_object_setn_new (object, "a\0b", 3, json_null ());
                return object;
            default: {
                json_t *inner = object;
                //  Around the limit: 13 to 16 arrays below a member of data
                int levels = CW_ENVELOPE_MAX_DEPTH - 3 + (int) s_below (rng, 4);
                for (int level = 0; level < levels; level++) {
                    json_t *outer = json_array ();
                    json_array_append_new (outer, inner);
                    inner = outer;
                }
                return inner;
            }
        }
    }
    if (depth > 0 && s_below (rng, 3) == 0) {
        size_t count = s_below (rng, 4);
        if (s_below (rng, 2)) {
            json_t *array = json_array ();
            for (size_t index = 0; index < count; index++)
                json_array_append_new (array,
                                       s_gen_value (rng, depth - 1, bad));
            return array;
        }
        json_t *object = json_object ();
        static const char *keys[] = {"",   "a",         "b", "caf\xc3\xa9",
                                     "z9", "customerId"};
        for (size_t index = 0; index < count; index++)
            json_object_set_new (object, S_PICK (rng, keys),
                                 s_gen_value (rng, depth - 1, bad));
        return object;
    }
    switch (s_below (rng, 6)) {
        case 0:
            return json_integer ((json_int_t) cw_retry_rng_next (rng));
        case 1:
            return json_real ((double) (int64_t) cw_retry_rng_next (rng) / 3.0);
        case 2:
            return json_boolean (s_below (rng, 2));
        case 3:
            return json_null ();
        default: {
            static const char *texts[] = {"", "o-1", "caf\xc3\xa9 \"x\"",
                                          "\xf0\x9f\x98\x80", "line\nbreak"};
            return json_string (S_PICK (rng, texts));
        }
    }
}

//  Half the envelopes are valid; the others have one thing wrong: an
//  attribute, data missing or not an object, or data's values
static cw_envelope_t *
s_gen_envelope (s_rng_t *rng)
{
    int wrong = s_below (rng, 2) ? -1 : (int) s_below (rng, 8);
    cw_envelope_t *envelope = cw_envelope_new ();
    const char *value = S_ATTRIBUTE (rng, s_ids, wrong == 0);
    if (value)
        cw_envelope_set_id (envelope, value);
    if ((value = S_ATTRIBUTE (rng, s_sources, wrong == 1)))
        cw_envelope_set_source (envelope, value);
    if ((value = S_ATTRIBUTE (rng, s_types, wrong == 2)))
        cw_envelope_set_type (envelope, value);
    if ((value = S_ATTRIBUTE (rng, s_times, wrong == 3)))
        cw_envelope_set_time (envelope, value);
    if ((value = S_ATTRIBUTE (rng, s_tenants, wrong == 4)))
        cw_envelope_set_tenant_id (envelope, value);
    cw_envelope_set_traceparent (envelope,
                                 S_ATTRIBUTE (rng, s_traces, wrong == 5));
    cw_envelope_set_correlation_id (envelope, "corr-9");
    cw_envelope_set_idempotency_key (envelope, "order:acme:o-1:1");
    json_t *data = json_object ();
    size_t count = 1 + s_below (rng, 4);
    for (size_t index = 0; index < count; index++) {
        char key[16];
        snprintf (key, sizeof (key), "k%zu", index);
        json_object_set_new (data, key,
                             s_gen_value (rng, 4, wrong == 7 ? 3 : 0));
    }
    if (wrong == 6) {
        json_decref (data);
        data = s_below (rng, 2) ? json_array () : NULL;
    }
    if (data)
        cw_envelope_set_data (envelope, &data);
    return envelope;
}

//  The envelope's reference bytes (tests/cw_test_envelope): what the
//  encoder writes when it writes
static void *
s_reference (const cw_envelope_t *envelope, size_t *size_p)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    cw_test_envelope_pack (&packer, envelope);
    *size_p = buffer.size;
    return msgpack_sbuffer_release (&buffer);
}

static bool
s_same_text (const char *left, const char *right)
{
    return (!left && !right) || (left && right && strcmp (left, right) == 0);
}

static void
s_assert_same (const cw_envelope_t *expected,
               const cw_envelope_t *actual,
               int index)
{
    ck_assert_ptr_nonnull (actual);
    ck_assert_msg (
        s_same_text (cw_envelope_id (expected), cw_envelope_id (actual))
            && s_same_text (cw_envelope_source (expected),
                            cw_envelope_source (actual))
            && s_same_text (cw_envelope_type (expected),
                            cw_envelope_type (actual))
            && s_same_text (cw_envelope_time (expected),
                            cw_envelope_time (actual))
            && s_same_text (cw_envelope_tenant_id (expected),
                            cw_envelope_tenant_id (actual))
            && s_same_text (cw_envelope_correlation_id (expected),
                            cw_envelope_correlation_id (actual))
            && s_same_text (cw_envelope_traceparent (expected),
                            cw_envelope_traceparent (actual))
            && s_same_text (cw_envelope_idempotency_key (expected),
                            cw_envelope_idempotency_key (actual))
            && json_equal (cw_envelope_data (expected),
                           cw_envelope_data (actual)),
        "envelope %d came back different", index);
}

START_TEST (test_encode_as_decode)
{
    s_rng_t rng = {S_SEED};
    int written = 0;
    int refused = 0;
    for (int index = 0; index < S_ENVELOPES; index++) {
        cw_envelope_t *envelope = s_gen_envelope (&rng);
        size_t reference_size;
        void *reference = s_reference (envelope, &reference_size);
        char expected[CW_ENVELOPE_REASON_SIZE] = "";
        cw_envelope_t *decoded = cw_envelope_decode_msgpack (
            reference, reference_size, expected, sizeof (expected));
        char reason[CW_ENVELOPE_REASON_SIZE] = "";
        size_t size;
        void *bytes = cw_envelope_encode_msgpack (envelope, &size, reason,
                                                  sizeof (reason));
        char validated[CW_ENVELOPE_REASON_SIZE] = "";
        int valid =
            cw_envelope_validate (envelope, validated, sizeof (validated));
        if (decoded) {
            ck_assert_msg (bytes != NULL,
                           "envelope %d: the decoder accepts it, the encoder "
                           "refused: %s",
                           index, reason);
            ck_assert_int_eq (valid, 0);
            ck_assert_uint_eq (size, reference_size);
            ck_assert_msg (memcmp (bytes, reference, size) == 0,
                           "envelope %d: other bytes than the reference",
                           index);
            s_assert_same (envelope, decoded, index);
            //  The JSON form holds the same envelope
            char *json =
                cw_envelope_encode_json (envelope, reason, sizeof (reason));
            ck_assert_ptr_nonnull (json);
            cw_envelope_t *from_json = s_decode_json (json);
            s_assert_same (envelope, from_json, index);
            cw_envelope_destroy (&from_json);
            free (json);
            written++;
        }
        else {
            ck_assert_msg (bytes == NULL,
                           "envelope %d: the encoder wrote what the decoder "
                           "refuses: %s",
                           index, expected);
            ck_assert_msg (strncmp (reason, "field \"", 7) == 0
                               || strncmp (reason, "envelope", 8) == 0,
                           "envelope %d: reason \"%s\" names no field", index,
                           reason);
            //  The encoder refuses with cw_envelope_validate's words
            ck_assert_int_eq (valid, -1);
            ck_assert_str_eq (reason, validated);
            refused++;
        }
        free (bytes);
        free (reference);
        cw_envelope_destroy (&decoded);
        cw_envelope_destroy (&envelope);
    }
    ck_assert_int_gt (written, S_ENVELOPES / 4);
    ck_assert_int_gt (refused, S_ENVELOPES / 4);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_envelope");
    TCase *codec = tcase_create ("codec");
    tcase_set_timeout (codec, 30);
    tcase_add_test (codec, test_accessors);
    tcase_add_test (codec, test_round_trip);
    tcase_add_test (codec, test_canonical_form);
    tcase_add_test (codec, test_utf8);
    tcase_add_test (codec, test_append);
    suite_add_tcase (suite, codec);
    TCase *malformed = tcase_create ("malformed");
    tcase_set_timeout (malformed, 60);
    tcase_add_test (malformed, test_truncated);
    tcase_add_test (malformed, test_malformed_msgpack);
    tcase_add_test (malformed, test_malformed_json);
    tcase_add_test (malformed, test_wrong_fields);
    tcase_add_test (malformed, test_limits);
    tcase_add_test (malformed, test_formats);
    tcase_add_test (malformed, test_unreadable_data);
    suite_add_tcase (suite, malformed);
    TCase *property = tcase_create ("property");
    tcase_set_timeout (property, 120);
    tcase_add_test (property, test_encode_as_decode);
    suite_add_tcase (suite, property);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
