/*  =========================================================================
    cw_mpjson - canonical msgpack form of a JSON value
    =========================================================================
*/
#include "cw_mpjson.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static int
s_compare_keys (const void *left, const void *right)
{
    return strcmp (*(const char *const *) left, *(const char *const *) right);
}

void
cw_mpjson_pack (msgpack_packer *packer, const json_t *value)
{
    assert (packer);
    assert (value);
    switch (json_typeof (value)) {
        case JSON_OBJECT: {
            size_t count = json_object_size (value);
            const char **keys =
                (const char **) calloc (count ? count : 1, sizeof (char *));
            assert (keys);
            size_t index = 0;
            const char *key;
            json_t *member;
            json_object_foreach ((json_t *) value, key, member) keys[index++] =
                key;
            qsort (keys, count, sizeof (char *), s_compare_keys);
            msgpack_pack_map (packer, count);
            for (index = 0; index < count; index++) {
                size_t length = strlen (keys[index]);
                msgpack_pack_str (packer, length);
                msgpack_pack_str_body (packer, keys[index], length);
                cw_mpjson_pack (packer, json_object_get (value, keys[index]));
            }
            free (keys);
            break;
        }
        case JSON_ARRAY:
            msgpack_pack_array (packer, json_array_size (value));
            for (size_t index = 0; index < json_array_size (value); index++)
                cw_mpjson_pack (packer, json_array_get (value, index));
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
