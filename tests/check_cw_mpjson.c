/*  =========================================================================
    check_cw_mpjson - canonical msgpack form of a JSON value: exact bytes,
    key order, smallest integers, keys holding NUL bytes, random trees
    against a reference packer, round trip through the envelope codec
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_mpjson.h"
#include "cw_msg.h"
#include "cw_retry.h"

#include <check.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEEP_LEVELS 200    //  Nesting packed without recursion limits
#define S_SEEDS 400          //  Random trees per property test
#define S_RANDOM_DEPTH 6     //  Deepest container level in a random tree
#define S_RANDOM_NODES 1500  //  Values in a random tree, about
#define S_PIECES_MAX 12      //  Pieces in an ordinary random key or string
#define S_TEXT_SIZE 512      //  Longest random key or string, bytes
#define S_FEW_MEMBERS 16     //  Objects wider than this are "wide"
#define S_STACK_MEMBERS 64   //  Entries the packer keeps on the C stack
#define S_NESTED_LEVELS 6    //  Wide objects nested in one another
#define S_NESTED_WIDTH 50    //  Members of each of those
#define S_MAP32_KEYS 70000   //  Members of an object that needs map32
#define S_KEY_SIZE 16        //  Room for "k%05d" keys

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

//  The packer as it was before keys were packed with their length: key
//  pointers sorted by strcmp, then each looked up again. Straightforward,
//  and what every canonical byte string written so far came from; valid
//  for keys without NUL bytes only.
static int
s_reference_compare (const void *left, const void *right)
{
    return strcmp (*(const char *const *) left, *(const char *const *) right);
}

static void
s_reference_pack (msgpack_packer *packer, const json_t *value)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT: {
            size_t count = json_object_size (value);
            const char **keys =
                (const char **) calloc (count ? count : 1, sizeof (char *));
            ck_assert_ptr_nonnull (keys);
            size_t index = 0;
            const char *key;
            json_t *member;
            json_object_foreach ((json_t *) value, key, member)
            {
                keys[index++] = key;
            }
            qsort (keys, count, sizeof (char *), s_reference_compare);
            msgpack_pack_map (packer, count);
            for (index = 0; index < count; index++) {
                size_t length = strlen (keys[index]);
                msgpack_pack_str (packer, length);
                msgpack_pack_str_body (packer, keys[index], length);
                member = json_object_get (value, keys[index]);
                ck_assert_ptr_nonnull (member);
                s_reference_pack (packer, member);
            }
            free (keys);
            break;
        }
        case JSON_ARRAY:
            msgpack_pack_array (packer, json_array_size (value));
            for (size_t index = 0; index < json_array_size (value); index++)
                s_reference_pack (packer, json_array_get (value, index));
            break;
        case JSON_STRING:
            msgpack_pack_str (packer, json_string_length (value));
            msgpack_pack_str_body (packer, json_string_value (value),
                                   json_string_length (value));
            break;
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

//  Asserts that cw_mpjson_pack and the reference write the same bytes.
static void
s_assert_as_reference (const json_t *value, unsigned seed)
{
    msgpack_sbuffer actual;
    s_pack (&actual, value);
    msgpack_sbuffer expected;
    msgpack_sbuffer_init (&expected);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &expected, msgpack_sbuffer_write);
    s_reference_pack (&packer, value);
    ck_assert_msg (actual.size == expected.size
                       && memcmp (actual.data, expected.data, actual.size) == 0,
                   "seed %u: %zu bytes, reference %zu bytes, not the same",
                   seed, actual.size, expected.size);
    msgpack_sbuffer_destroy (&expected);
    msgpack_sbuffer_destroy (&actual);
}

//  Seeded splitmix64, the same sequence on every machine (proto's)
typedef cw_retry_rng_t s_rng_t;

//  0 .. bound - 1
static size_t
s_below (s_rng_t *rng, size_t bound)
{
    return (size_t) (cw_retry_rng_next (rng) % bound);
}

static bool
s_percent (s_rng_t *rng, int percent)
{
    return (int) s_below (rng, 100) < percent;
}

//  Random JSON trees, and what they held, so that a test can assert its
//  random input reached the cases it is about
typedef struct {
    s_rng_t rng;
    bool nul;              //  Keys may hold NUL bytes
    size_t budget;         //  Values still to make in this tree
    size_t wide;           //  Objects of more than S_FEW_MEMBERS members
    size_t long_keys;      //  Keys of 32 bytes or more (str8 and up)
    size_t prefix_keys;    //  Keys that extend another key of their object
    size_t non_utf8_keys;  //  Keys with bytes that are not UTF-8
    size_t nul_keys;       //  Keys holding a NUL byte
} s_gen_t;

//  ASCII (some prefixes of others), UTF-8 of 2, 3 and 4 bytes, bytes that
//  are not UTF-8 (a lone continuation byte, 0xff, a cut sequence)
static const char *const s_pieces[] = {"a",
                                       "b",
                                       "ab",
                                       "Z",
                                       "_",
                                       "0",
                                       "~",
                                       " ",
                                       "\x7f",
                                       "\xc3\xa9",
                                       "\xe2\x82\xac",
                                       "\xf0\x9f\x98\x80",
                                       "\xef\xbf\xbf",
                                       "\x80",
                                       "\xff",
                                       "\xc3"};
#define S_PIECES (sizeof (s_pieces) / sizeof (s_pieces[0]))
#define S_NON_UTF8_PIECE 13  //  s_pieces from here on are not UTF-8

//  Fills text with random bytes; returns their count. NUL bytes only if
//  nul is true.
static size_t
s_random_text (s_gen_t *gen, char *text, bool nul, bool *non_utf8)
{
    size_t length = 0;
    *non_utf8 = false;
    if (s_percent (&gen->rng, 5))
        return 0;
    if (s_percent (&gen->rng, 6)) {
        //  Long: str8 or str16, often sharing a long prefix with another
        size_t run = 28 + s_below (&gen->rng, 300);
        memset (text, 'k', run);
        length = run;
    }
    size_t pieces =
        1 + s_below (&gen->rng, s_percent (&gen->rng, 80) ? 4 : S_PIECES_MAX);
    for (size_t index = 0; index < pieces; index++) {
        if (nul && s_percent (&gen->rng, 15)) {
            text[length++] = 0;
            continue;
        }
        size_t piece = s_below (&gen->rng, S_PIECES);
        if (piece >= S_NON_UTF8_PIECE)
            *non_utf8 = true;
        size_t size = strlen (s_pieces[piece]);
        memcpy (text + length, s_pieces[piece], size);
        length += size;
    }
    ck_assert_uint_le (length, S_TEXT_SIZE);
    return length;
}

static json_int_t
s_random_integer (s_gen_t *gen)
{
    static const json_int_t edges[] = {0,
                                       1,
                                       -1,
                                       31,
                                       32,
                                       -32,
                                       -33,
                                       127,
                                       128,
                                       255,
                                       256,
                                       -128,
                                       -129,
                                       32767,
                                       32768,
                                       65535,
                                       65536,
                                       -32768,
                                       -32769,
                                       INT32_MAX,
                                       INT32_MIN,
                                       UINT32_MAX,
                                       (json_int_t) INT32_MIN - 1,
                                       (json_int_t) UINT32_MAX + 1,
                                       INT64_MAX,
                                       INT64_MIN};
    if (s_percent (&gen->rng, 50))
        return edges[s_below (&gen->rng, sizeof (edges) / sizeof (edges[0]))];
    //  Any magnitude, either sign
    return (json_int_t) (cw_retry_rng_next (&gen->rng) >> s_below (&gen->rng, 64));
}

static double
s_random_real (s_gen_t *gen)
{
    static const double edges[] = {0.0, -0.0, 1.5, -1e300, 5e-324, DBL_MAX};
    if (s_percent (&gen->rng, 30))
        return edges[s_below (&gen->rng, sizeof (edges) / sizeof (edges[0]))];
    uint64_t bits = cw_retry_rng_next (&gen->rng);
    double real;
    memcpy (&real, &bits, sizeof (real));
    return isfinite (real) ? real : (double) (int64_t) bits / 3.0;
}

static json_t *s_random_value (s_gen_t *gen, int depth);

//  Members: mostly a few, sometimes over S_FEW_MEMBERS, now and then
//  several hundred (map16, and more than S_STACK_MEMBERS at once)
static json_t *
s_random_object (s_gen_t *gen, int depth)
{
    json_t *object = json_object ();
    size_t count = s_below (&gen->rng, 7);
    if (s_percent (&gen->rng, 20))
        count = 1 + s_below (&gen->rng, 40);
    if (s_percent (&gen->rng, 3))
        count = 100 + s_below (&gen->rng, 200);
    char key[S_TEXT_SIZE + 1];
    size_t length = 0;
    for (size_t index = 0; index < count && gen->budget; index++) {
        bool non_utf8;
        if (length && s_percent (&gen->rng, 15)) {
            //  The previous key and more: "a" then "ab", "a\0", "a\xff"
            char tail[S_TEXT_SIZE + 1];
            size_t more = s_random_text (gen, tail, gen->nul, &non_utf8);
            if (more == 0 || length + more > S_TEXT_SIZE)
                more = 0;
            memcpy (key + length, tail, more);
            length += more;
            if (more)
                gen->prefix_keys++;
        }
        else
            length = s_random_text (gen, key, gen->nul, &non_utf8);
        key[length] = 0;
        if (non_utf8)
            gen->non_utf8_keys++;
        if (length >= 32)
            gen->long_keys++;
        if (memchr (key, 0, length))
            gen->nul_keys++;
        json_t *member = s_random_value (gen, depth + 1);
#if JANSSON_VERSION_HEX >= 0x020e00
        json_object_setn_new_nocheck (object, key, length, member);
#else
        json_object_set_new_nocheck (object, key, member);
#endif
    }
    if (json_object_size (object) > S_FEW_MEMBERS)
        gen->wide++;
    return object;
}

static json_t *
s_random_value (s_gen_t *gen, int depth)
{
    if (gen->budget)
        gen->budget--;
    size_t kind;
    if (depth == 0)
        kind = 0;
    else if (depth >= S_RANDOM_DEPTH || !gen->budget)
        kind = 2 + s_below (&gen->rng, 6);
    else
        kind = s_below (&gen->rng, 8);
    switch (kind) {
        case 0:
            return s_random_object (gen, depth);
        case 1: {
            json_t *array = json_array ();
            size_t count =
                s_below (&gen->rng, s_percent (&gen->rng, 10) ? 40 : 6);
            for (size_t index = 0; index < count; index++)
                json_array_append_new (array, s_random_value (gen, depth + 1));
            return array;
        }
        case 2: {
            char text[S_TEXT_SIZE];
            bool non_utf8;
            size_t length = s_random_text (gen, text, true, &non_utf8);
            return json_stringn_nocheck (text, length);
        }
        case 3:
            return json_integer (s_random_integer (gen));
        case 4:
            return json_real (s_random_real (gen));
        case 5:
            return json_true ();
        case 6:
            return json_false ();
        default:
            return json_null ();
    }
}

static void
s_gen_init (s_gen_t *gen, unsigned seed, bool nul)
{
    memset (gen, 0, sizeof (*gen));
    gen->rng.state = seed;
    gen->nul = nul;
}

static json_t *
s_gen_tree (s_gen_t *gen)
{
    gen->budget = S_RANDOM_NODES;
    return s_random_value (gen, 0);
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

START_TEST (test_same_bytes_as_reference)
{
    //  Keys without NUL: every byte as the packer always wrote it
    s_gen_t total;
    memset (&total, 0, sizeof (total));
    for (unsigned seed = 1; seed <= S_SEEDS; seed++) {
        s_gen_t gen;
        s_gen_init (&gen, seed, false);
        json_t *value = s_gen_tree (&gen);
        s_assert_as_reference (value, seed);
        json_decref (value);
        total.wide += gen.wide;
        total.long_keys += gen.long_keys;
        total.prefix_keys += gen.prefix_keys;
        total.non_utf8_keys += gen.non_utf8_keys;
        total.nul_keys += gen.nul_keys;
    }
    //  The trees reached what the packer's order depends on
    ck_assert_uint_gt (total.wide, 0);
    ck_assert_uint_gt (total.long_keys, 0);
    ck_assert_uint_gt (total.prefix_keys, 0);
    ck_assert_uint_gt (total.non_utf8_keys, 0);
    ck_assert_uint_eq (total.nul_keys, 0);
}
END_TEST

START_TEST (test_wide_and_nested_objects)
{
    //  Wide objects inside one another: more members waiting at once
    //  than fit on the stack, so their entries move while in use
    json_t *root = json_object ();
    json_t *parent = root;
    for (int level = 0; level < S_NESTED_LEVELS; level++) {
        json_t *child = json_object ();
        for (int index = S_NESTED_WIDTH - 1; index >= 0; index--) {
            char key[S_KEY_SIZE];
            snprintf (key, sizeof (key), "%c%d", 'a' + index % 3, index);
            if (index == S_NESTED_WIDTH / 2)
                json_object_set (parent, key, child);
            else
                json_object_set_new (parent, key, json_integer (index));
        }
        json_decref (child);
        parent = child;
    }
    ck_assert_int_gt (S_NESTED_LEVELS * S_NESTED_WIDTH, S_STACK_MEMBERS);
    s_assert_as_reference (root, 0);
    json_decref (root);

    //  More members than map16 holds, inserted out of order
    json_t *wide = json_object ();
    for (unsigned index = 0; index < S_MAP32_KEYS; index++) {
        char key[S_KEY_SIZE];
        unsigned scrambled = (index * 7919u) % S_MAP32_KEYS;
        snprintf (key, sizeof (key), "k%05u", scrambled);
        json_object_set_new (wide, key, json_integer (scrambled));
    }
    ck_assert_uint_eq (json_object_size (wide), S_MAP32_KEYS);
    s_assert_as_reference (wide, 0);
    msgpack_sbuffer buffer;
    s_pack (&buffer, wide);
    ck_assert_uint_eq ((uint8_t) buffer.data[0], 0xdf);  //  map32
    ck_assert_mem_eq (buffer.data + 5, "\xa6k00000\x00\xa6k00001\x01", 16);
    msgpack_sbuffer_destroy (&buffer);
    json_decref (wide);
}
END_TEST

#if JANSSON_VERSION_HEX >= 0x020e00
START_TEST (test_nul_keys)
{
    //  Once fatal: the key was cut at its NUL and looked up again ("n"
    //  is not there). Now written whole.
    json_t *lone = json_object ();
    json_t *inner = json_object ();
    json_object_setn_new (inner, "x\0", 2, json_pack ("[b]", 1));
    json_object_setn_new (lone, "n\0ul", 4, inner);
    const uint8_t lone_bytes[] = {0x81, 0xa4, 'n', 0x00, 'u',  'l',
                                  0x81, 0xa2, 'x', 0x00, 0x91, 0xc3};
    s_assert_bytes (lone, lone_bytes, sizeof (lone_bytes));
    json_decref (lone);

    //  Once wrong: "a\0x" was written as a second "a" with the value of
    //  "a". Now every key is whole, in byte order, a key before the keys
    //  that extend it; insertion order does not matter
    const uint8_t bytes[] = {0x84, 0xa0, 0x04, 0xa1, 'a', 0x01, 0xa3, 'a',
                             0x00, 'x',  0x02, 0xa2, 'a', 0x01, 0x03};
    json_t *object = json_object ();
    json_object_setn_new (object, "a\0x", 3, json_integer (2));
    json_object_setn_new (object, "a\x01", 2, json_integer (3));
    json_object_set_new (object, "a", json_integer (1));
    json_object_set_new (object, "", json_integer (4));
    s_assert_bytes (object, bytes, sizeof (bytes));
    json_t *other = json_object ();
    json_object_set_new (other, "", json_integer (4));
    json_object_set_new (other, "a", json_integer (1));
    json_object_setn_new (other, "a\x01", 2, json_integer (3));
    json_object_setn_new (other, "a\0x", 3, json_integer (2));
    s_assert_bytes (other, bytes, sizeof (bytes));
    //  The order jansson sorts such keys in
    char *text = json_dumps (object, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq (text, "{\"\":4,\"a\":1,\"a\\u0000x\":2,\"a\\u0001\":3}");
    free (text);
    json_decref (other);
    json_decref (object);
}
END_TEST

//  An object with a key holding a NUL byte: alone (which made the old
//  packer abort) or beside the key it would have been cut to. Built here:
//  jansson 2.14's json_deep_copy and json_equal cut such keys too.
//  Caller owns return value and must destroy it when done.
static json_t *
s_nul_key_object (bool twin)
{
    json_t *object = json_object ();
    if (twin) {
        json_object_set_new (object, "a", json_integer (1));
        json_object_setn_new (object, "a\0x", 3, json_integer (2));
    }
    else
        json_object_setn_new (object, "n\0ul", 4, json_true ());
    return object;
}

START_TEST (test_nul_keys_refused_by_encoders)
{
    //  The packer writes such keys whole; the encoders refuse them with a
    //  reason, before writing (envelope) or over the bytes written (CWP/1)
    for (int twin = 0; twin <= 1; twin++) {
        cw_msg_t *msg = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
        msg->request.request_id = 5;
        msg->request.op = strdup ("dlq.list");
        msg->request.args = s_nul_key_object (twin);
        char reason[CW_MSG_REASON_SIZE] = "";
        cw_msg_frames_t *frames = cw_msg_encode (msg, reason, sizeof (reason));
        ck_assert_ptr_null (frames);
        ck_assert_str_eq (reason, "field \"args\": map key must be 1 to 255 "
                                  "bytes of UTF-8 without NUL");
        cw_msg_destroy (&msg);

        cw_envelope_t *envelope = cw_envelope_new ();
        cw_envelope_set_id (envelope, "evt-1");
        cw_envelope_set_source (envelope, "/webshop");
        cw_envelope_set_type (envelope, "order.created.v1");
        cw_envelope_set_time (envelope, "2025-01-31T10:02:03Z");
        cw_envelope_set_tenant_id (envelope, "acme");
        cw_envelope_set_correlation_id (envelope, "corr-1");
        cw_envelope_set_idempotency_key (envelope, "order:acme:o-1:1");
        json_t *data = s_nul_key_object (twin);
        cw_envelope_set_data (envelope, &data);
        char envelope_reason[CW_ENVELOPE_REASON_SIZE] = "";
        size_t size = 0;
        ck_assert_ptr_null (cw_envelope_encode_msgpack (
            envelope, &size, envelope_reason, sizeof (envelope_reason)));
        ck_assert_str_eq (envelope_reason, "field \"data\": map keys must not "
                                           "contain NUL characters");
        cw_envelope_destroy (&envelope);
    }
}
END_TEST

//  Asserts that item is value's msgpack form: same structure and bytes,
//  each map's keys strictly increasing by bytes, a key before the keys
//  that extend it, each found in value with exactly its bytes.
static void
s_assert_unpacked (const msgpack_object *item,
                   const json_t *value,
                   unsigned seed)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT:
            ck_assert_msg (item->type == MSGPACK_OBJECT_MAP, "seed %u", seed);
            ck_assert_msg (item->via.map.size == json_object_size (value),
                           "seed %u: map size", seed);
            for (uint32_t index = 0; index < item->via.map.size; index++) {
                const msgpack_object_kv *pair = &item->via.map.ptr[index];
                ck_assert_msg (pair->key.type == MSGPACK_OBJECT_STR,
                               "seed %u: key type", seed);
                const msgpack_object_str *key = &pair->key.via.str;
                //  An empty string unpacks with no pointer at all
                const char *bytes = key->size ? key->ptr : "";
                if (index > 0) {
                    const msgpack_object_str *previous =
                        &item->via.map.ptr[index - 1].key.via.str;
                    uint32_t common =
                        previous->size < key->size ? previous->size : key->size;
                    int order =
                        common ? memcmp (previous->ptr, bytes, common) : 0;
                    ck_assert_msg (
                        order < 0 || (order == 0 && previous->size < key->size),
                        "seed %u: keys out of order", seed);
                }
                const json_t *member =
                    json_object_getn (value, bytes, key->size);
                ck_assert_msg (member != NULL, "seed %u: key not in value",
                               seed);
                s_assert_unpacked (&pair->val, member, seed);
            }
            break;
        case JSON_ARRAY:
            ck_assert_msg (item->type == MSGPACK_OBJECT_ARRAY, "seed %u", seed);
            ck_assert_msg (item->via.array.size == json_array_size (value),
                           "seed %u: array size", seed);
            for (uint32_t index = 0; index < item->via.array.size; index++)
                s_assert_unpacked (&item->via.array.ptr[index],
                                   json_array_get (value, index), seed);
            break;
        case JSON_STRING:
            ck_assert_msg (
                item->type == MSGPACK_OBJECT_STR
                    && item->via.str.size == json_string_length (value)
                    && (item->via.str.size == 0
                        || memcmp (item->via.str.ptr, json_string_value (value),
                                   item->via.str.size)
                               == 0),
                "seed %u: string", seed);
            break;
        case JSON_INTEGER: {
            json_int_t integer = json_integer_value (value);
            if (integer >= 0)
                ck_assert_msg (item->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                   && item->via.u64 == (uint64_t) integer,
                               "seed %u: integer", seed);
            else
                ck_assert_msg (item->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
                                   && item->via.i64 == integer,
                               "seed %u: integer", seed);
            break;
        }
        case JSON_REAL: {
            double real = json_real_value (value);
            ck_assert_msg (item->type == MSGPACK_OBJECT_FLOAT64
                               && memcmp (&item->via.f64, &real, sizeof (real))
                                      == 0,
                           "seed %u: real", seed);
            break;
        }
        case JSON_TRUE:
        case JSON_FALSE:
            ck_assert_msg (item->type == MSGPACK_OBJECT_BOOLEAN
                               && item->via.boolean == json_is_true (value),
                           "seed %u: boolean", seed);
            break;
        case JSON_NULL:
            ck_assert_msg (item->type == MSGPACK_OBJECT_NIL, "seed %u", seed);
            break;
    }
}

//  A deep copy of value whose objects were filled in the opposite order
//  (jansson iterates an object in insertion order). Caller owns it.
static json_t *
s_reversed_copy (const json_t *value)
{
    if (json_is_array (value)) {
        json_t *array = json_array ();
        for (size_t index = 0; index < json_array_size (value); index++)
            json_array_append_new (
                array, s_reversed_copy (json_array_get (value, index)));
        return array;
    }
    if (!json_is_object (value))
        return json_incref ((json_t *) value);
    size_t count = json_object_size (value);
    void **iterators = (void **) calloc (count ? count : 1, sizeof (void *));
    ck_assert_ptr_nonnull (iterators);
    size_t index = 0;
    for (void *iterator = json_object_iter ((json_t *) value); iterator;
         iterator = json_object_iter_next ((json_t *) value, iterator))
        iterators[index++] = iterator;
    json_t *object = json_object ();
    while (index-- > 0)
        json_object_setn_new_nocheck (
            object, json_object_iter_key (iterators[index]),
            json_object_iter_key_len (iterators[index]),
            s_reversed_copy (json_object_iter_value (iterators[index])));
    free (iterators);
    return object;
}

START_TEST (test_nul_keys_random)
{
    //  Keys with NUL bytes among the others: unpacked, the bytes are the
    //  value, every key whole and in order, whatever the insertion order
    size_t nul_keys = 0;
    size_t prefix_keys = 0;
    for (unsigned seed = 1; seed <= S_SEEDS; seed++) {
        s_gen_t gen;
        s_gen_init (&gen, seed, true);
        json_t *value = s_gen_tree (&gen);
        nul_keys += gen.nul_keys;
        prefix_keys += gen.prefix_keys;
        msgpack_sbuffer buffer;
        s_pack (&buffer, value);
        msgpack_unpacked unpacked;
        msgpack_unpacked_init (&unpacked);
        size_t offset = 0;
        ck_assert_msg (
            msgpack_unpack_next (&unpacked, buffer.data, buffer.size, &offset)
                == MSGPACK_UNPACK_SUCCESS,
            "seed %u: cannot unpack", seed);
        ck_assert_uint_eq (offset, buffer.size);
        s_assert_unpacked (&unpacked.data, value, seed);
        msgpack_unpacked_destroy (&unpacked);
        //  (not json_equal: jansson 2.14 compares such keys cut at NUL)
        json_t *reversed = s_reversed_copy (value);
        msgpack_sbuffer again;
        s_pack (&again, reversed);
        ck_assert_msg (again.size == buffer.size
                           && memcmp (again.data, buffer.data, buffer.size)
                                  == 0,
                       "seed %u: insertion order changed the bytes", seed);
        msgpack_sbuffer_destroy (&again);
        json_decref (reversed);
        msgpack_sbuffer_destroy (&buffer);
        json_decref (value);
    }
    ck_assert_uint_gt (nul_keys, 0);
    ck_assert_uint_gt (prefix_keys, 0);
}
END_TEST
#endif

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
    TCase *keys = tcase_create ("keys");
    tcase_set_timeout (keys, 60);
    tcase_add_test (keys, test_same_bytes_as_reference);
    tcase_add_test (keys, test_wide_and_nested_objects);
#if JANSSON_VERSION_HEX >= 0x020e00
    tcase_add_test (keys, test_nul_keys);
    tcase_add_test (keys, test_nul_keys_refused_by_encoders);
    tcase_add_test (keys, test_nul_keys_random);
#endif
    suite_add_tcase (suite, keys);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
