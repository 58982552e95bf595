/*  =========================================================================
    cw_envelope - the CloudEvents envelope around every event, with strict
    msgpack and JSON codecs

    The canonical form of an envelope is its JSON tree (attributes and
    data) with every map's keys in byte order (strcmp), at every level.
    JSON is written from that tree, compact with JSON_SORT_KEYS; msgpack is
    written without building it: the attributes in that order, then data
    by cw_mpjson_pack (same order, smallest integer encoding). So msgpack
    -> envelope -> JSON -> envelope -> msgpack gives back the same bytes.
    The msgpack reader is hand-written so that every limit is checked
    before anything is allocated and every rejection names a field;
    cw_envelope_validate holds an envelope in memory to the same rules, so
    the encoders never write what the decoders refuse.
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_mpjson.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PATH_MAX 256  //  Field path kept for reasons, truncated beyond
#define S_STRINGIFY(x) #x
#define S_TOSTRING(x) S_STRINGIFY (x)
#define S_TOO_DEEP                                                             \
    "nesting deeper than " S_TOSTRING (CW_ENVELOPE_MAX_DEPTH) " levels"

struct _cw_envelope_t {
    char *id;               //  CloudEvents id
    char *source;           //  CloudEvents source (URI-reference)
    char *type;             //  family.vN
    char *time;             //  RFC 3339 timestamp
    char *tenant_id;        //  Extension "tenantid"
    char *correlation_id;   //  Extension "correlationid"
    char *traceparent;      //  Extension "traceparent", optional
    char *idempotency_key;  //  Extension "idempotencykey"
    json_t *data;           //  Payload object, owned
};

//  Attribute names on the wire
#define S_SPECVERSION "specversion"
#define S_DATACONTENTTYPE "datacontenttype"
#define S_ID "id"
#define S_SOURCE "source"
#define S_TYPE "type"
#define S_TIME "time"
#define S_TENANTID "tenantid"
#define S_CORRELATIONID "correlationid"
#define S_TRACEPARENT "traceparent"
#define S_IDEMPOTENCYKEY "idempotencykey"
#define S_DATA "data"

static void s_reason (char *reason, size_t reason_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_reason (char *reason, size_t reason_size, const char *format, ...)
{
    if (!reason || reason_size == 0)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (reason, reason_size, format, args);
    va_end (args);
}

static char *
s_strdup_or_null (const char *text)
{
    if (!text)
        return NULL;
    char *copy = strdup (text);
    assert (copy);
    return copy;
}

static void
s_replace (char **field_p, const char *value)
{
    free (*field_p);
    *field_p = s_strdup_or_null (value);
}

cw_envelope_t *
cw_envelope_new (void)
{
    cw_envelope_t *self = (cw_envelope_t *) calloc (1, sizeof (cw_envelope_t));
    assert (self);
    return self;
}

void
cw_envelope_destroy (cw_envelope_t **self_p)
{
    assert (self_p);
    cw_envelope_t *self = *self_p;
    if (!self)
        return;
    free (self->id);
    free (self->source);
    free (self->type);
    free (self->time);
    free (self->tenant_id);
    free (self->correlation_id);
    free (self->traceparent);
    free (self->idempotency_key);
    json_decref (self->data);
    free (self);
    *self_p = NULL;
}

cw_envelope_t *
cw_envelope_dup (const cw_envelope_t *self)
{
    assert (self);
    cw_envelope_t *copy = cw_envelope_new ();
    copy->id = s_strdup_or_null (self->id);
    copy->source = s_strdup_or_null (self->source);
    copy->type = s_strdup_or_null (self->type);
    copy->time = s_strdup_or_null (self->time);
    copy->tenant_id = s_strdup_or_null (self->tenant_id);
    copy->correlation_id = s_strdup_or_null (self->correlation_id);
    copy->traceparent = s_strdup_or_null (self->traceparent);
    copy->idempotency_key = s_strdup_or_null (self->idempotency_key);
    if (self->data) {
        copy->data = json_deep_copy (self->data);
        assert (copy->data);
    }
    return copy;
}

const char *
cw_envelope_specversion (const cw_envelope_t *self)
{
    assert (self);
    return CW_ENVELOPE_SPECVERSION;
}

const char *
cw_envelope_datacontenttype (const cw_envelope_t *self)
{
    assert (self);
    return CW_ENVELOPE_DATACONTENTTYPE;
}

const char *
cw_envelope_id (const cw_envelope_t *self)
{
    assert (self);
    return self->id;
}

void
cw_envelope_set_id (cw_envelope_t *self, const char *id)
{
    assert (self);
    assert (id);
    s_replace (&self->id, id);
}

const char *
cw_envelope_source (const cw_envelope_t *self)
{
    assert (self);
    return self->source;
}

void
cw_envelope_set_source (cw_envelope_t *self, const char *source)
{
    assert (self);
    assert (source);
    s_replace (&self->source, source);
}

const char *
cw_envelope_type (const cw_envelope_t *self)
{
    assert (self);
    return self->type;
}

void
cw_envelope_set_type (cw_envelope_t *self, const char *type)
{
    assert (self);
    assert (type);
    s_replace (&self->type, type);
}

const char *
cw_envelope_time (const cw_envelope_t *self)
{
    assert (self);
    return self->time;
}

void
cw_envelope_set_time (cw_envelope_t *self, const char *time)
{
    assert (self);
    assert (time);
    s_replace (&self->time, time);
}

const char *
cw_envelope_tenant_id (const cw_envelope_t *self)
{
    assert (self);
    return self->tenant_id;
}

void
cw_envelope_set_tenant_id (cw_envelope_t *self, const char *tenant_id)
{
    assert (self);
    assert (tenant_id);
    s_replace (&self->tenant_id, tenant_id);
}

const char *
cw_envelope_correlation_id (const cw_envelope_t *self)
{
    assert (self);
    return self->correlation_id;
}

void
cw_envelope_set_correlation_id (cw_envelope_t *self, const char *correlation_id)
{
    assert (self);
    assert (correlation_id);
    s_replace (&self->correlation_id, correlation_id);
}

const char *
cw_envelope_traceparent (const cw_envelope_t *self)
{
    assert (self);
    return self->traceparent;
}

void
cw_envelope_set_traceparent (cw_envelope_t *self, const char *traceparent)
{
    assert (self);
    s_replace (&self->traceparent, traceparent);
}

const char *
cw_envelope_idempotency_key (const cw_envelope_t *self)
{
    assert (self);
    return self->idempotency_key;
}

void
cw_envelope_set_idempotency_key (cw_envelope_t *self,
                                 const char *idempotency_key)
{
    assert (self);
    assert (idempotency_key);
    s_replace (&self->idempotency_key, idempotency_key);
}

json_t *
cw_envelope_data (const cw_envelope_t *self)
{
    assert (self);
    return self->data;
}

void
cw_envelope_set_data (cw_envelope_t *self, json_t **data_p)
{
    assert (self);
    assert (data_p);
    json_decref (self->data);
    self->data = *data_p;
    *data_p = NULL;
}

//  ---------------------------------------------------------------------
//  Attribute checks

static bool
s_digits (const char *text, int count, int *value_p)
{
    int value = 0;
    for (int index = 0; index < count; index++) {
        if (text[index] < '0' || text[index] > '9')
            return false;
        value = value * 10 + (text[index] - '0');
    }
    *value_p = value;
    return true;
}

static int
s_days_in_month (int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

bool
cw_envelope_time_valid (const char *text)
{
    if (!text)
        return false;
    //  YYYY-MM-DDTHH:MM:SS is 19 characters
    size_t length = strlen (text);
    if (length < 20 || length > 35)
        return false;
    int year, month, day, hour, minute, second;
    if (!s_digits (text, 4, &year) || text[4] != '-'
        || !s_digits (text + 5, 2, &month) || text[7] != '-'
        || !s_digits (text + 8, 2, &day) || text[10] != 'T'
        || !s_digits (text + 11, 2, &hour) || text[13] != ':'
        || !s_digits (text + 14, 2, &minute) || text[16] != ':'
        || !s_digits (text + 17, 2, &second))
        return false;
    //  Year 0000 and offsets past 15:59 are RFC 3339 but no PostgreSQL
    //  timestamptz: such a time could be accepted here and then fail the
    //  transaction that stores it, for ever
    if (year < 1 || month < 1 || month > 12 || day < 1
        || day > s_days_in_month (year, month) || hour > 23 || minute > 59
        || second > 59)
        return false;
    const char *cursor = text + 19;
    if (*cursor == '.') {
        cursor++;
        int fraction = 0;
        while (*cursor >= '0' && *cursor <= '9') {
            cursor++;
            fraction++;
        }
        if (fraction < 1 || fraction > 9)
            return false;
    }
    if (*cursor == 'Z')
        return cursor[1] == 0;
    if (*cursor != '+' && *cursor != '-')
        return false;
    int offset_hour, offset_minute;
    if (strlen (cursor) != 6 || !s_digits (cursor + 1, 2, &offset_hour)
        || cursor[3] != ':' || !s_digits (cursor + 4, 2, &offset_minute))
        return false;
    return offset_hour <= 15 && offset_minute <= 59;
}

//  True if text has count lower-case hex digits, not all zero when
//  nonzero is set
static bool
s_hex (const char *text, size_t count, bool nonzero)
{
    bool seen_nonzero = false;
    for (size_t index = 0; index < count; index++) {
        char c = text[index];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            seen_nonzero = true;
    }
    return !nonzero || seen_nonzero;
}

bool
cw_envelope_traceparent_valid (const char *text)
{
    //  00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>
    if (!text || strlen (text) != 55)
        return false;
    return text[0] == '0' && text[1] == '0' && text[2] == '-'
           && s_hex (text + 3, 32, true) && text[35] == '-'
           && s_hex (text + 36, 16, true) && text[52] == '-'
           && s_hex (text + 53, 2, false);
}

int
cw_envelope_parse_type (const char *type,
                        char *family,
                        size_t family_size,
                        int *version_p)
{
    assert (type);
    if (strlen (type) > CW_ENVELOPE_TYPE_MAX)
        return -1;
    const char *suffix = strrchr (type, '.');
    if (!suffix || suffix == type || suffix[1] != 'v')
        return -1;
    //  Version: 1-9999, no leading zero
    const char *digits = suffix + 2;
    size_t digit_count = strlen (digits);
    if (digit_count < 1 || digit_count > 4 || digits[0] == '0')
        return -1;
    int version = 0;
    if (!s_digits (digits, (int) digit_count, &version))
        return -1;
    //  Family: segments of [a-z][a-z0-9]* separated by single dots
    size_t family_length = (size_t) (suffix - type);
    bool segment_start = true;
    for (size_t index = 0; index < family_length; index++) {
        char c = type[index];
        if (segment_start) {
            if (c < 'a' || c > 'z')
                return -1;
            segment_start = false;
        }
        else if (c == '.')
            segment_start = true;
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return -1;
    }
    if (segment_start)
        return -1;
    if (family) {
        if (family_length + 1 > family_size)
            return -1;
        memcpy (family, type, family_length);
        family[family_length] = 0;
    }
    if (version_p)
        *version_p = version;
    return 0;
}

//  Checks a token attribute: 1..max bytes of printable ASCII, no space
static int
s_check_token (const char *name,
               const char *value,
               size_t max,
               char *reason,
               size_t reason_size)
{
    if (!value) {
        s_reason (reason, reason_size, "field \"%s\": missing", name);
        return -1;
    }
    size_t length = strlen (value);
    if (length == 0 || length > max) {
        s_reason (reason, reason_size,
                  "field \"%s\": must be 1 to %zu bytes, not %zu", name, max,
                  length);
        return -1;
    }
    for (size_t index = 0; index < length; index++) {
        unsigned char c = (unsigned char) value[index];
        if (c < 0x21 || c > 0x7e) {
            s_reason (reason, reason_size,
                      "field \"%s\": must be printable ASCII without spaces",
                      name);
            return -1;
        }
    }
    return 0;
}

static int
s_check_tenant_id (const char *value, char *reason, size_t reason_size)
{
    if (s_check_token (S_TENANTID, value, CW_ENVELOPE_TENANTID_MAX, reason,
                       reason_size))
        return -1;
    for (const char *cursor = value; *cursor; cursor++)
        if (!isalnum ((unsigned char) *cursor) && *cursor != '.'
            && *cursor != '_' && *cursor != '-') {
            s_reason (reason, reason_size,
                      "field \"%s\": must contain only letters, digits, "
                      "'.', '_' and '-'",
                      S_TENANTID);
            return -1;
        }
    return 0;
}

//  Appends size bytes of text to a path, truncating safely (the path
//  keeps at most S_PATH_MAX - 1 bytes); returns the new length
static size_t
s_path_append (char *path, size_t length, const char *text, size_t size)
{
    if (length >= S_PATH_MAX - 1)
        return length;
    if (size > S_PATH_MAX - 1 - length)
        size = S_PATH_MAX - 1 - length;
    memcpy (path + length, text, size);
    path[length + size] = 0;
    return length + size;
}

//  Appends ".key" (or "key" when dot is false) to a path
static size_t
s_path_key (char *path, size_t length, bool dot, const char *key)
{
    if (dot)
        length = s_path_append (path, length, ".", 1);
    return s_path_append (path, length, key, strlen (key));
}

//  Appends "[index]" to a path
static size_t
s_path_index (char *path, size_t length, size_t index)
{
    char text[24];  //  "[" + 20 digits + "]"
    size_t at = sizeof (text);
    text[--at] = ']';
    do {
        text[--at] = (char) ('0' + index % 10);
        index /= 10;
    } while (index);
    text[--at] = '[';
    return s_path_append (path, length, text + at, sizeof (text) - at);
}

bool
cw_envelope_utf8_valid (const void *text, size_t size)
{
    assert (text || size == 0);
    const uint8_t *bytes = (const uint8_t *) text;
    size_t index = 0;
    while (index < size) {
        uint8_t byte = bytes[index];
        size_t more;
        uint32_t code, min;
        if (byte < 0x80) {
            index++;
            continue;
        }
        if ((byte & 0xe0) == 0xc0) {
            more = 1;
            code = byte & 0x1f;
            min = 0x80;
        }
        else if ((byte & 0xf0) == 0xe0) {
            more = 2;
            code = byte & 0x0f;
            min = 0x800;
        }
        else if ((byte & 0xf8) == 0xf0) {
            more = 3;
            code = byte & 0x07;
            min = 0x10000;
        }
        else
            return false;
        if (size - index - 1 < more)
            return false;
        for (size_t next = 1; next <= more; next++) {
            if ((bytes[index + next] & 0xc0) != 0x80)
                return false;
            code = (code << 6) | (bytes[index + next] & 0x3f);
        }
        if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return false;
        index += more + 1;
    }
    return true;
}

//  Byte length of an object key (since jansson 2.14 a key may hold NUL
//  bytes, set with json_object_setn)
static size_t
s_key_length (const char *key)
{
#if JANSSON_VERSION_HEX >= 0x020e00
    return json_object_iter_key_len (json_object_key_to_iter (key));
#else
    return strlen (key);
#endif
}

//  Checks a data value by the rules the msgpack reader applies to it:
//  depth; keys of at most CW_ENVELOPE_KEY_MAX bytes of UTF-8 without NUL;
//  strings of UTF-8 without NUL. (jansson keeps strings made with its
//  _nocheck functions as they are, so UTF-8 is checked here too.)
static int
s_check_value (const json_t *value,
               char *path,
               size_t path_length,
               int depth,
               char *reason,
               size_t reason_size)
{
    if (json_is_object (value) || json_is_array (value)) {
        if (depth > CW_ENVELOPE_MAX_DEPTH) {
            s_reason (reason, reason_size, "field \"%s\": %s", path,
                      S_TOO_DEEP);
            return -1;
        }
    }
    if (json_is_object (value)) {
        const char *key;
        json_t *member;
        json_object_foreach ((json_t *) value, key, member)
        {
            size_t key_length = s_key_length (key);
            size_t length = s_path_key (path, path_length, true, key);
            if (key_length > CW_ENVELOPE_KEY_MAX) {
                s_reason (reason, reason_size,
                          "field \"%s\": key longer than %d bytes", path,
                          CW_ENVELOPE_KEY_MAX);
                return -1;
            }
            const char *problem = NULL;
            if (memchr (key, 0, key_length))
                problem = "map keys must not contain NUL characters";
            else if (!cw_envelope_utf8_valid (key, key_length))
                problem = "map keys must be valid UTF-8";
            if (problem) {
                path[path_length] = 0;
                s_reason (reason, reason_size, "field \"%s\": %s", path,
                          problem);
                return -1;
            }
            int rc = s_check_value (member, path, length, depth + 1, reason,
                                    reason_size);
            path[path_length] = 0;
            if (rc)
                return -1;
        }
    }
    else if (json_is_array (value)) {
        for (size_t index = 0; index < json_array_size (value); index++) {
            size_t length = s_path_index (path, path_length, index);
            int rc = s_check_value (json_array_get (value, index), path, length,
                                    depth + 1, reason, reason_size);
            path[path_length] = 0;
            if (rc)
                return -1;
        }
    }
    else if (json_is_string (value)) {
        const char *text = json_string_value (value);
        size_t size = json_string_length (value);
        if (memchr (text, 0, size)) {
            s_reason (reason, reason_size,
                      "field \"%s\": must not contain NUL characters", path);
            return -1;
        }
        if (!cw_envelope_utf8_valid (text, size)) {
            s_reason (reason, reason_size, "field \"%s\": must be valid UTF-8",
                      path);
            return -1;
        }
    }
    return 0;
}

//  cw_envelope_validate; the walk over data's values is left out when
//  values is false (the msgpack reader has applied the same rules)
static int
s_validate (const cw_envelope_t *self,
            bool values,
            char *reason,
            size_t reason_size)
{
    if (s_check_token (S_ID, self->id, CW_ENVELOPE_ID_MAX, reason, reason_size)
        || s_check_token (S_SOURCE, self->source, CW_ENVELOPE_SOURCE_MAX,
                          reason, reason_size))
        return -1;
    if (!self->type) {
        s_reason (reason, reason_size, "field \"%s\": missing", S_TYPE);
        return -1;
    }
    if (cw_envelope_parse_type (self->type, NULL, 0, NULL)) {
        s_reason (reason, reason_size,
                  "field \"%s\": must be a lower-case dotted name with a "
                  "version suffix like \"order.created.v1\" (at most %d "
                  "bytes)",
                  S_TYPE, CW_ENVELOPE_TYPE_MAX);
        return -1;
    }
    if (!self->time) {
        s_reason (reason, reason_size, "field \"%s\": missing", S_TIME);
        return -1;
    }
    if (!cw_envelope_time_valid (self->time)) {
        s_reason (reason, reason_size,
                  "field \"%s\": must be an RFC 3339 timestamp with offset",
                  S_TIME);
        return -1;
    }
    if (s_check_tenant_id (self->tenant_id, reason, reason_size)
        || s_check_token (S_CORRELATIONID, self->correlation_id,
                          CW_ENVELOPE_CORRELATIONID_MAX, reason, reason_size))
        return -1;
    if (self->traceparent
        && !cw_envelope_traceparent_valid (self->traceparent)) {
        s_reason (reason, reason_size,
                  "field \"%s\": must be a W3C traceparent "
                  "\"00-<32 hex>-<16 hex>-<2 hex>\" with non-zero ids",
                  S_TRACEPARENT);
        return -1;
    }
    if (s_check_token (S_IDEMPOTENCYKEY, self->idempotency_key,
                       CW_ENVELOPE_IDEMPOTENCYKEY_MAX, reason, reason_size))
        return -1;
    if (!self->data) {
        s_reason (reason, reason_size, "field \"%s\": missing", S_DATA);
        return -1;
    }
    if (!json_is_object (self->data)) {
        s_reason (reason, reason_size, "field \"%s\": must be an object",
                  S_DATA);
        return -1;
    }
    if (!values)
        return 0;
    char path[S_PATH_MAX] = S_DATA;
    return s_check_value (self->data, path, strlen (path), 1, reason,
                          reason_size);
}

int
cw_envelope_validate (const cw_envelope_t *self,
                      char *reason,
                      size_t reason_size)
{
    assert (self);
    return s_validate (self, true, reason, reason_size);
}

//  ---------------------------------------------------------------------
//  Encoders: JSON through the canonical tree, msgpack written directly

static void
s_tree_set (json_t *tree, const char *name, const char *value)
{
    if (value) {
        int rc = json_object_set_new (tree, name, json_string (value));
        assert (rc == 0);
    }
}

static json_t *
s_tree (const cw_envelope_t *self, char *reason, size_t reason_size)
{
    if (cw_envelope_validate (self, reason, reason_size))
        return NULL;
    json_t *tree = json_object ();
    assert (tree);
    s_tree_set (tree, S_SPECVERSION, CW_ENVELOPE_SPECVERSION);
    s_tree_set (tree, S_ID, self->id);
    s_tree_set (tree, S_SOURCE, self->source);
    s_tree_set (tree, S_TYPE, self->type);
    s_tree_set (tree, S_TIME, self->time);
    s_tree_set (tree, S_DATACONTENTTYPE, CW_ENVELOPE_DATACONTENTTYPE);
    s_tree_set (tree, S_TENANTID, self->tenant_id);
    s_tree_set (tree, S_CORRELATIONID, self->correlation_id);
    s_tree_set (tree, S_TRACEPARENT, self->traceparent);
    s_tree_set (tree, S_IDEMPOTENCYKEY, self->idempotency_key);
    int rc = json_object_set (tree, S_DATA, self->data);
    assert (rc == 0);
    return tree;
}

//  Writes a string attribute: name, then value
static void
s_pack_attribute (msgpack_packer *packer, const char *name, const char *value)
{
    size_t length = strlen (name);
    msgpack_pack_str (packer, length);
    msgpack_pack_str_body (packer, name, length);
    length = strlen (value);
    msgpack_pack_str (packer, length);
    msgpack_pack_str_body (packer, value, length);
}

//  Writes the canonical form of a valid envelope without building its
//  tree: the attributes in byte order of their names, as cw_mpjson_pack
//  orders the tree s_tree makes, and data through cw_mpjson_pack.
static void
s_pack (const cw_envelope_t *self, msgpack_packer *packer)
{
    msgpack_pack_map (packer, self->traceparent ? 11 : 10);
    s_pack_attribute (packer, S_CORRELATIONID, self->correlation_id);
    msgpack_pack_str (packer, strlen (S_DATA));
    msgpack_pack_str_body (packer, S_DATA, strlen (S_DATA));
    cw_mpjson_pack (packer, self->data);
    s_pack_attribute (packer, S_DATACONTENTTYPE, CW_ENVELOPE_DATACONTENTTYPE);
    s_pack_attribute (packer, S_ID, self->id);
    s_pack_attribute (packer, S_IDEMPOTENCYKEY, self->idempotency_key);
    s_pack_attribute (packer, S_SOURCE, self->source);
    s_pack_attribute (packer, S_SPECVERSION, CW_ENVELOPE_SPECVERSION);
    s_pack_attribute (packer, S_TENANTID, self->tenant_id);
    s_pack_attribute (packer, S_TIME, self->time);
    if (self->traceparent)
        s_pack_attribute (packer, S_TRACEPARENT, self->traceparent);
    s_pack_attribute (packer, S_TYPE, self->type);
}

int
cw_envelope_append_msgpack (const cw_envelope_t *self,
                            msgpack_sbuffer *buffer,
                            char *reason,
                            size_t reason_size)
{
    assert (self);
    assert (buffer);
    if (cw_envelope_validate (self, reason, reason_size))
        return -1;
    size_t start = buffer->size;
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    s_pack (self, &packer);
    size_t size = buffer->size - start;
    if (size > CW_ENVELOPE_MAX_SIZE) {
        s_reason (reason, reason_size,
                  "envelope too large: %zu bytes encoded, limit is %d", size,
                  CW_ENVELOPE_MAX_SIZE);
        buffer->size = start;
        return -1;
    }
    return 0;
}

void *
cw_envelope_encode_msgpack (const cw_envelope_t *self,
                            size_t *size_p,
                            char *reason,
                            size_t reason_size)
{
    assert (self);
    assert (size_p);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    if (cw_envelope_append_msgpack (self, &buffer, reason, reason_size)) {
        msgpack_sbuffer_destroy (&buffer);
        return NULL;
    }
    *size_p = buffer.size;
    //  The sbuffer's storage becomes the caller's
    return msgpack_sbuffer_release (&buffer);
}

char *
cw_envelope_encode_json (const cw_envelope_t *self,
                         char *reason,
                         size_t reason_size)
{
    assert (self);
    json_t *tree = s_tree (self, reason, reason_size);
    if (!tree)
        return NULL;
    char *text = json_dumps (tree, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref (tree);
    assert (text);
    size_t size = strlen (text);
    if (size > CW_ENVELOPE_MAX_SIZE) {
        s_reason (reason, reason_size,
                  "envelope too large: %zu bytes encoded, limit is %d", size,
                  CW_ENVELOPE_MAX_SIZE);
        free (text);
        return NULL;
    }
    return text;
}

//  ---------------------------------------------------------------------
//  Decoding: tree -> envelope, shared by both decoders

static const char *s_known[] = {S_SPECVERSION, S_ID,
                                S_SOURCE,      S_TYPE,
                                S_TIME,        S_DATACONTENTTYPE,
                                S_TENANTID,    S_CORRELATIONID,
                                S_TRACEPARENT, S_IDEMPOTENCYKEY,
                                S_DATA,        NULL};

//  Returns the string attribute, NULL with reason if present and not a
//  string; *present_p says whether it was there
static int
s_attribute (const json_t *tree,
             const char *name,
             const char **value_p,
             char *reason,
             size_t reason_size)
{
    *value_p = NULL;
    json_t *value = json_object_get (tree, name);
    if (!value)
        return 0;
    if (!json_is_string (value)) {
        s_reason (reason, reason_size, "field \"%s\": must be a string", name);
        return -1;
    }
    if (memchr (json_string_value (value), 0, json_string_length (value))) {
        s_reason (reason, reason_size,
                  "field \"%s\": must not contain NUL characters", name);
        return -1;
    }
    *value_p = json_string_value (value);
    return 0;
}

//  Makes the envelope of a decoded tree. values_checked: the reader
//  has held data's values to s_check_value's rules already.
static cw_envelope_t *
s_from_tree (json_t *tree,
             bool values_checked,
             char *reason,
             size_t reason_size)
{
    if (!json_is_object (tree)) {
        s_reason (reason, reason_size, "envelope must be a map of attributes");
        return NULL;
    }
    //  Unknown top-level attributes are rejected: nothing is dropped
    //  silently, and a typo in an extension name is caught at once.
    const char *key;
    json_t *member;
    json_object_foreach (tree, key, member)
    {
        bool known = false;
        for (int index = 0; s_known[index] && !known; index++)
            known = strcmp (key, s_known[index]) == 0;
        if (!known) {
            s_reason (reason, reason_size, "field \"%.*s\": unknown attribute",
                      CW_ENVELOPE_KEY_MAX, key);
            return NULL;
        }
    }
    const char *value;
    if (s_attribute (tree, S_SPECVERSION, &value, reason, reason_size))
        return NULL;
    if (!value) {
        s_reason (reason, reason_size, "field \"%s\": missing", S_SPECVERSION);
        return NULL;
    }
    if (strcmp (value, CW_ENVELOPE_SPECVERSION)) {
        s_reason (reason, reason_size, "field \"%s\": must be \"%s\"",
                  S_SPECVERSION, CW_ENVELOPE_SPECVERSION);
        return NULL;
    }
    if (s_attribute (tree, S_DATACONTENTTYPE, &value, reason, reason_size))
        return NULL;
    if (!value) {
        s_reason (reason, reason_size, "field \"%s\": missing",
                  S_DATACONTENTTYPE);
        return NULL;
    }
    if (strcmp (value, CW_ENVELOPE_DATACONTENTTYPE)) {
        s_reason (reason, reason_size, "field \"%s\": must be \"%s\"",
                  S_DATACONTENTTYPE, CW_ENVELOPE_DATACONTENTTYPE);
        return NULL;
    }
    cw_envelope_t *self = cw_envelope_new ();
    struct {
        const char *name;
        char **field;
    } strings[] = {{S_ID, &self->id},
                   {S_SOURCE, &self->source},
                   {S_TYPE, &self->type},
                   {S_TIME, &self->time},
                   {S_TENANTID, &self->tenant_id},
                   {S_CORRELATIONID, &self->correlation_id},
                   {S_TRACEPARENT, &self->traceparent},
                   {S_IDEMPOTENCYKEY, &self->idempotency_key}};
    for (size_t index = 0; index < sizeof (strings) / sizeof (strings[0]);
         index++) {
        if (s_attribute (tree, strings[index].name, &value, reason,
                         reason_size)) {
            cw_envelope_destroy (&self);
            return NULL;
        }
        *strings[index].field = s_strdup_or_null (value);
    }
    self->data = json_incref (json_object_get (tree, S_DATA));
    if (s_validate (self, !values_checked, reason, reason_size))
        cw_envelope_destroy (&self);
    return self;
}

//  ---------------------------------------------------------------------
//  msgpack reader: bytes -> JSON tree, every limit checked first

typedef struct {
    const uint8_t *data;    //  Input, borrowed
    size_t size;            //  Input size
    size_t position;        //  Next byte to read
    char *reason;           //  Caller's reason buffer
    size_t reason_size;     //  Its size
    char path[S_PATH_MAX];  //  Field path of the value being read
} s_reader_t;

static json_t *
s_fail (s_reader_t *reader, const char *problem)
{
    if (reader->path[0])
        s_reason (reader->reason, reader->reason_size, "field \"%s\": %s",
                  reader->path, problem);
    else
        s_reason (reader->reason, reader->reason_size, "invalid msgpack: %s",
                  problem);
    return NULL;
}

static bool
s_take (s_reader_t *reader, size_t count, const uint8_t **bytes_p)
{
    if (reader->size - reader->position < count)
        return false;
    *bytes_p = reader->data + reader->position;
    reader->position += count;
    return true;
}

static uint64_t
s_big_endian (const uint8_t *bytes, size_t count)
{
    uint64_t value = 0;
    for (size_t index = 0; index < count; index++)
        value = (value << 8) | bytes[index];
    return value;
}

//  Reads a length of count bytes; false if truncated
static bool
s_length (s_reader_t *reader, size_t count, uint64_t *length_p)
{
    const uint8_t *bytes;
    if (!s_take (reader, count, &bytes))
        return false;
    *length_p = s_big_endian (bytes, count);
    return true;
}

static json_t *s_read_value (s_reader_t *reader, int depth);

//  Reads a string of length bytes as a JSON string
static json_t *
s_read_string (s_reader_t *reader, uint64_t length)
{
    const uint8_t *bytes;
    if (length > reader->size - reader->position
        || !s_take (reader, (size_t) length, &bytes))
        return s_fail (reader, "truncated");
    if (memchr (bytes, 0, (size_t) length))
        return s_fail (reader, "must not contain NUL characters");
    if (!cw_envelope_utf8_valid (bytes, (size_t) length))
        return s_fail (reader, "must be valid UTF-8");
    json_t *string =
        json_stringn_nocheck ((const char *) bytes, (size_t) length);
    assert (string);
    return string;
}

static json_t *
s_read_array (s_reader_t *reader, uint64_t count, int depth)
{
    if (depth > CW_ENVELOPE_MAX_DEPTH)
        return s_fail (reader, S_TOO_DEEP);
    //  Each element takes at least one byte
    if (count > reader->size - reader->position)
        return s_fail (reader, "truncated");
    json_t *array = json_array ();
    assert (array);
    size_t path_length = strlen (reader->path);
    for (uint64_t index = 0; index < count; index++) {
        s_path_index (reader->path, path_length, (size_t) index);
        json_t *element = s_read_value (reader, depth + 1);
        reader->path[path_length] = 0;
        if (!element) {
            json_decref (array);
            return NULL;
        }
        json_array_append_new (array, element);
    }
    return array;
}

static json_t *
s_read_map (s_reader_t *reader, uint64_t count, int depth)
{
    if (depth > CW_ENVELOPE_MAX_DEPTH)
        return s_fail (reader, S_TOO_DEEP);
    //  Each entry takes at least two bytes
    if (count > (reader->size - reader->position) / 2)
        return s_fail (reader, "truncated");
    json_t *object = json_object ();
    assert (object);
    size_t path_length = strlen (reader->path);
    for (uint64_t index = 0; index < count; index++) {
        //  Keys: strings only, at most CW_ENVELOPE_KEY_MAX bytes
        const uint8_t *bytes;
        uint64_t length = 0;
        bool is_string = true;
        if (!s_take (reader, 1, &bytes)) {
            json_decref (object);
            return s_fail (reader, "truncated");
        }
        uint8_t marker = bytes[0];
        bool ok = true;
        if (marker >= 0xa0 && marker <= 0xbf)
            length = marker & 0x1f;
        else if (marker == 0xd9)
            ok = s_length (reader, 1, &length);
        else if (marker == 0xda)
            ok = s_length (reader, 2, &length);
        else if (marker == 0xdb)
            ok = s_length (reader, 4, &length);
        else
            is_string = false;
        if (!ok) {
            json_decref (object);
            return s_fail (reader, "truncated");
        }
        if (!is_string) {
            json_decref (object);
            return s_fail (reader, "map keys must be strings");
        }
        if (length > CW_ENVELOPE_KEY_MAX) {
            json_decref (object);
            return s_fail (reader, "map key longer than " S_TOSTRING (
                                       CW_ENVELOPE_KEY_MAX) " bytes");
        }
        if (!s_take (reader, (size_t) length, &bytes)) {
            json_decref (object);
            return s_fail (reader, "truncated");
        }
        char key[CW_ENVELOPE_KEY_MAX + 1];
        memcpy (key, bytes, (size_t) length);
        key[length] = 0;
        if (memchr (bytes, 0, (size_t) length)) {
            json_decref (object);
            return s_fail (reader, "map keys must not contain NUL characters");
        }
        if (!cw_envelope_utf8_valid (key, (size_t) length)) {
            json_decref (object);
            return s_fail (reader, "map keys must be valid UTF-8");
        }
        //  Top-level attributes are named bare, data members with a dot
        s_path_key (reader->path, path_length, depth != 0, key);
        if (json_object_get (object, key)) {
            json_decref (object);
            return s_fail (reader, "duplicate key");
        }
        json_t *member = s_read_value (reader, depth + 1);
        reader->path[path_length] = 0;
        if (!member) {
            json_decref (object);
            return NULL;
        }
        //  The key was checked above
        json_object_set_new_nocheck (object, key, member);
    }
    return object;
}

static json_t *
s_read_value (s_reader_t *reader, int depth)
{
    const uint8_t *bytes;
    if (!s_take (reader, 1, &bytes))
        return s_fail (reader, "truncated");
    uint8_t marker = bytes[0];
    uint64_t length;
    if (marker <= 0x7f)
        return json_integer (marker);
    if (marker >= 0xe0)
        return json_integer ((int8_t) marker);
    if (marker >= 0x80 && marker <= 0x8f)
        return s_read_map (reader, marker & 0x0f, depth);
    if (marker >= 0x90 && marker <= 0x9f)
        return s_read_array (reader, marker & 0x0f, depth);
    if (marker >= 0xa0 && marker <= 0xbf)
        return s_read_string (reader, marker & 0x1f);
    switch (marker) {
        case 0xc0:
            return json_null ();
        case 0xc2:
            return json_false ();
        case 0xc3:
            return json_true ();
        case 0xc4:
        case 0xc5:
        case 0xc6:
            return s_fail (reader,
                           "binary data is not allowed (JSON cannot express "
                           "it)");
        case 0xc7:
        case 0xc8:
        case 0xc9:
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            return s_fail (reader,
                           "extension types are not allowed (JSON cannot "
                           "express them)");
        case 0xca:
        case 0xcb: {
            size_t count = marker == 0xca ? 4 : 8;
            if (!s_take (reader, count, &bytes))
                return s_fail (reader, "truncated");
            uint64_t bits = s_big_endian (bytes, count);
            double number;
            if (count == 4) {
                uint32_t bits32 = (uint32_t) bits;
                float single;
                memcpy (&single, &bits32, sizeof (single));
                number = single;
            }
            else
                memcpy (&number, &bits, sizeof (number));
            if (!isfinite (number))
                return s_fail (reader, "must be a finite number");
            return json_real (number);
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: {
            size_t count = (size_t) 1 << (marker - 0xcc);
            if (!s_length (reader, count, &length))
                return s_fail (reader, "truncated");
            if (length > INT64_MAX)
                return s_fail (reader, "integer out of range");
            return json_integer ((json_int_t) length);
        }
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            size_t count = (size_t) 1 << (marker - 0xd0);
            if (!s_length (reader, count, &length))
                return s_fail (reader, "truncated");
            //  Sign-extend from count bytes
            int64_t value;
            if (count == 1)
                value = (int8_t) length;
            else if (count == 2)
                value = (int16_t) length;
            else if (count == 4)
                value = (int32_t) length;
            else
                value = (int64_t) length;
            return json_integer (value);
        }
        case 0xd9:
        case 0xda:
        case 0xdb: {
            size_t count = (size_t) 1 << (marker - 0xd9);
            if (!s_length (reader, count, &length))
                return s_fail (reader, "truncated");
            return s_read_string (reader, length);
        }
        case 0xdc:
        case 0xdd:
            if (!s_length (reader, marker == 0xdc ? 2 : 4, &length))
                return s_fail (reader, "truncated");
            return s_read_array (reader, length, depth);
        case 0xde:
        case 0xdf:
            if (!s_length (reader, marker == 0xde ? 2 : 4, &length))
                return s_fail (reader, "truncated");
            return s_read_map (reader, length, depth);
        default:
            return s_fail (reader, "invalid type marker 0xc1");
    }
}

cw_envelope_t *
cw_envelope_decode_msgpack (const void *data,
                            size_t size,
                            char *reason,
                            size_t reason_size)
{
    assert (data || size == 0);
    if (size > CW_ENVELOPE_MAX_SIZE) {
        s_reason (reason, reason_size,
                  "envelope too large: %zu bytes, limit is %d", size,
                  CW_ENVELOPE_MAX_SIZE);
        return NULL;
    }
    if (size == 0) {
        s_reason (reason, reason_size, "invalid msgpack: empty message");
        return NULL;
    }
    s_reader_t reader = {.data = (const uint8_t *) data,
                         .size = size,
                         .reason = reason,
                         .reason_size = reason_size};
    const uint8_t marker = reader.data[0];
    if (!((marker >= 0x80 && marker <= 0x8f) || marker == 0xde
          || marker == 0xdf)) {
        s_reason (reason, reason_size, "envelope must be a map of attributes");
        return NULL;
    }
    json_t *tree = s_read_value (&reader, 0);
    if (!tree)
        return NULL;
    if (reader.position != size) {
        s_reason (reason, reason_size,
                  "invalid msgpack: %zu bytes after the envelope",
                  size - reader.position);
        json_decref (tree);
        return NULL;
    }
    //  The reader checked data's values as s_check_value would
    cw_envelope_t *self = s_from_tree (tree, true, reason, reason_size);
    json_decref (tree);
    return self;
}

cw_envelope_t *
cw_envelope_decode_json (const void *data,
                         size_t size,
                         char *reason,
                         size_t reason_size)
{
    assert (data || size == 0);
    if (size > CW_ENVELOPE_MAX_SIZE) {
        s_reason (reason, reason_size,
                  "envelope too large: %zu bytes, limit is %d", size,
                  CW_ENVELOPE_MAX_SIZE);
        return NULL;
    }
    if (size == 0) {
        s_reason (reason, reason_size, "invalid JSON: empty message");
        return NULL;
    }
    json_error_t error;
    json_t *tree =
        json_loadb ((const char *) data, size,
                    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
    if (!tree) {
        s_reason (reason, reason_size, "invalid JSON: %s at line %d column %d",
                  error.text, error.line, error.column);
        return NULL;
    }
    cw_envelope_t *self = s_from_tree (tree, false, reason, reason_size);
    json_decref (tree);
    return self;
}
