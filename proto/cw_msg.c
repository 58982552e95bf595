/*  =========================================================================
    cw_msg - the CWP/1 wire codec (proto/PROTOCOL.md)

    Decoding is hand-written over the body bytes: first one pass checks
    that the body is exactly one well-formed msgpack value (no allocation,
    bounded depth), then "v" is read, then each command's keys are located
    in their map by s_map_index and read with typed getters that check
    type, range and length and name the field. Nested envelopes are handed,
    as their raw byte range, to cw_envelope_decode_msgpack. Free-form maps
    (response, args, result) become jansson objects.

    Encoding uses msgpack-c's packer: body keys in the order of the spec
    tables, smallest integer encodings, envelopes in their canonical form,
    JSON objects with keys sorted by byte value, reals as float64. The
    encoder then decodes its own body, so both apply the same rules.
    =========================================================================
*/
#include "cw_msg.h"
#include "cw_mpjson.h"

#include <assert.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SKIP_DEPTH_MAX 48  //  Any value in a body, envelopes included
#define S_FIELD_SIZE 96      //  A field path such as results[3].outcome
#define S_KEYS_MAX 8         //  Known keys of one map

//  ---------------------------------------------------------------------
//  Names and tables

static const char *s_protocol_ids[] = {"CWW01", "CWR01", "CWC01"};

static const char *s_outcome_names[] = {"ok", "rejected", "duplicate",
                                        "transient", "version"};

const char *
cw_msg_protocol_id (cw_msg_protocol_t protocol)
{
    if ((int) protocol < 0 || (int) protocol > CW_MSG_CLIENT)
        return "?";
    return s_protocol_ids[protocol];
}

const char *
cw_msg_command_name (cw_msg_command_t command)
{
    switch (command) {
        case CW_MSG_READY:
            return "READY";
        case CW_MSG_JOB:
            return "JOB";
        case CW_MSG_RESULT:
            return "RESULT";
        case CW_MSG_CREDIT:
            return "CREDIT";
        case CW_MSG_HEARTBEAT:
            return "HEARTBEAT";
        case CW_MSG_DISCONNECT:
            return "DISCONNECT";
        case CW_MSG_CALL:
            return "CALL";
        case CW_MSG_REPLY:
            return "REPLY";
        case CW_MSG_ERROR:
            return "ERROR";
        case CW_MSG_PUBLISH:
            return "PUBLISH";
        case CW_MSG_ACK:
            return "ACK";
        case CW_MSG_REQUEST:
            return "REQUEST";
        case CW_MSG_RESPONSE:
            return "RESPONSE";
    }
    return "?";
}

const char *
cw_msg_outcome_name (cw_msg_outcome_t outcome)
{
    if ((int) outcome < 0 || (int) outcome > CW_MSG_OUTCOME_VERSION)
        return "?";
    return s_outcome_names[outcome];
}

int
cw_msg_outcome_parse (const char *name, cw_msg_outcome_t *outcome_p)
{
    assert (outcome_p);
    if (!name)
        return -1;
    for (int index = 0; index <= CW_MSG_OUTCOME_VERSION; index++)
        if (strcmp (name, s_outcome_names[index]) == 0) {
            *outcome_p = (cw_msg_outcome_t) index;
            return 0;
        }
    return -1;
}

const char *
cw_msg_error_name (cw_msg_error_t error)
{
    switch (error) {
        case CW_MSG_VALID:
            return "valid";
        case CW_MSG_MALFORMED:
            return "malformed";
        case CW_MSG_UNKNOWN_PROTOCOL:
            return "unknown_protocol";
        case CW_MSG_UNKNOWN_COMMAND:
            return "unknown_command";
        case CW_MSG_UNSUPPORTED_VERSION:
            return "unsupported_version";
        case CW_MSG_TOO_LARGE:
            return "too_large";
    }
    return "?";
}

const char *
cw_msg_error_code (cw_msg_error_t error)
{
    return error == CW_MSG_UNSUPPORTED_VERSION ? "unsupported_version"
                                               : "malformed";
}

bool
cw_msg_command_valid (cw_msg_protocol_t protocol, int command)
{
    switch (command) {
        case CW_MSG_HEARTBEAT:
        case CW_MSG_DISCONNECT:
        case CW_MSG_ERROR:
            return (int) protocol >= 0 && (int) protocol <= CW_MSG_CLIENT;
        case CW_MSG_READY:
        case CW_MSG_JOB:
        case CW_MSG_RESULT:
        case CW_MSG_CREDIT:
        case CW_MSG_CALL:
        case CW_MSG_REPLY:
            return protocol == CW_MSG_WORKER;
        case CW_MSG_PUBLISH:
        case CW_MSG_ACK:
            return protocol == CW_MSG_RELAY;
        case CW_MSG_REQUEST:
        case CW_MSG_RESPONSE:
            return protocol == CW_MSG_CLIENT;
        default:
            return false;
    }
}

cw_msg_direction_t
cw_msg_direction (cw_msg_command_t command)
{
    switch (command) {
        case CW_MSG_HEARTBEAT:
        case CW_MSG_DISCONNECT:
            return CW_MSG_BOTH_WAYS;
        case CW_MSG_JOB:
        case CW_MSG_CALL:
        case CW_MSG_ERROR:
        case CW_MSG_ACK:
        case CW_MSG_RESPONSE:
            return CW_MSG_TO_PEER;
        default:
            return CW_MSG_TO_BROKER;
    }
}

#define S_RELAY_PREFIX "relay:"

//  An island name: 1..64 bytes of [a-z0-9_-]
static bool
s_island_valid (const char *island)
{
    size_t length = strlen (island);
    if (length == 0 || length > CW_MSG_TOKEN_MAX)
        return false;
    for (size_t index = 0; index < length; index++) {
        char c = island[index];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
              || c == '-'))
            return false;
    }
    return true;
}

const char *
cw_msg_role_island (const char *role)
{
    if (!role || strncmp (role, S_RELAY_PREFIX, strlen (S_RELAY_PREFIX)) != 0)
        return NULL;
    const char *island = role + strlen (S_RELAY_PREFIX);
    return s_island_valid (island) ? island : NULL;
}

bool
cw_msg_allowed (const char *role,
                cw_msg_protocol_t protocol,
                cw_msg_command_t command)
{
    if (!role || !cw_msg_command_valid (protocol, (int) command)
        || cw_msg_direction (command) == CW_MSG_TO_PEER)
        return false;
    if (strcmp (role, "worker") == 0)
        return protocol == CW_MSG_WORKER;
    if (strcmp (role, "admin") == 0)
        return protocol == CW_MSG_CLIENT;
    if (cw_msg_role_island (role))
        return protocol == CW_MSG_RELAY;
    return false;
}

//  ---------------------------------------------------------------------
//  Construction

static char *
s_strdup (const char *text)
{
    char *copy = strdup (text);
    assert (copy);
    return copy;
}

static void *
s_grow (void *array, size_t count, size_t item_size)
{
    //  Room for count + 1 items, the new one zeroed
    void *bigger = realloc (array, (count + 1) * item_size);
    assert (bigger);
    memset ((char *) bigger + count * item_size, 0, item_size);
    return bigger;
}

static void
s_result_init (cw_msg_result_t *result)
{
    memset (result, 0, sizeof (*result));
    result->retry_after_ms = -1;
}

cw_msg_t *
cw_msg_new (cw_msg_protocol_t protocol, cw_msg_command_t command)
{
    assert (cw_msg_command_valid (protocol, (int) command));
    cw_msg_t *self = (cw_msg_t *) calloc (1, sizeof (cw_msg_t));
    assert (self);
    self->protocol = protocol;
    self->command = command;
    if (command == CW_MSG_RESULT)
        self->result.credit = -1;
    else if (command == CW_MSG_ERROR)
        self->error.command = -1;
    return self;
}

static void
s_strings_free (char **strings, size_t count)
{
    for (size_t index = 0; index < count; index++)
        free (strings[index]);
    free (strings);
}

void
cw_msg_destroy (cw_msg_t **self_p)
{
    assert (self_p);
    cw_msg_t *self = *self_p;
    if (!self)
        return;
    switch (self->command) {
        case CW_MSG_READY:
            s_strings_free (self->ready.flows, self->ready.flows_count);
            free (self->ready.name);
            break;
        case CW_MSG_JOB:
            free (self->job.flow);
            free (self->job.target);
            cw_envelope_destroy (&self->job.envelope);
            break;
        case CW_MSG_RESULT:
            for (size_t index = 0; index < self->result.results_count;
                 index++) {
                free (self->result.results[index].error);
                json_decref (self->result.results[index].response);
            }
            free (self->result.results);
            break;
        case CW_MSG_DISCONNECT:
            free (self->disconnect.reason);
            break;
        case CW_MSG_CALL:
            free (self->call.flow);
            cw_envelope_destroy (&self->call.envelope);
            break;
        case CW_MSG_REPLY:
            free (self->reply.error);
            json_decref (self->reply.response);
            break;
        case CW_MSG_ERROR:
            free (self->error.code);
            free (self->error.message);
            break;
        case CW_MSG_PUBLISH:
            free (self->publish.island);
            for (size_t index = 0; index < self->publish.events_count; index++)
                cw_envelope_destroy (&self->publish.events[index]);
            free (self->publish.events);
            break;
        case CW_MSG_ACK:
            s_strings_free (self->ack.accepted, self->ack.accepted_count);
            s_strings_free (self->ack.duplicates, self->ack.duplicates_count);
            for (size_t index = 0; index < self->ack.rejected_count; index++) {
                free (self->ack.rejected[index].key);
                free (self->ack.rejected[index].reason);
            }
            free (self->ack.rejected);
            break;
        case CW_MSG_REQUEST:
            free (self->request.op);
            json_decref (self->request.args);
            break;
        case CW_MSG_RESPONSE:
            json_decref (self->response.result);
            free (self->response.error_code);
            free (self->response.error_message);
            free (self->response.error_field);
            break;
        case CW_MSG_CREDIT:
        case CW_MSG_HEARTBEAT:
            break;
    }
    free (self);
    *self_p = NULL;
}

static void
s_string_add (char ***strings_p, size_t *count_p, const char *text)
{
    *strings_p = (char **) s_grow (*strings_p, *count_p, sizeof (char *));
    (*strings_p)[(*count_p)++] = s_strdup (text);
}

void
cw_msg_flow_add (cw_msg_t *self, const char *flow)
{
    assert (self);
    assert (self->command == CW_MSG_READY);
    assert (flow);
    s_string_add (&self->ready.flows, &self->ready.flows_count, flow);
}

cw_msg_result_t *
cw_msg_result_add (cw_msg_t *self)
{
    assert (self);
    assert (self->command == CW_MSG_RESULT);
    cw_msg_results_t *body = &self->result;
    body->results = (cw_msg_result_t *) s_grow (
        body->results, body->results_count, sizeof (cw_msg_result_t));
    cw_msg_result_t *result = &body->results[body->results_count++];
    s_result_init (result);
    return result;
}

void
cw_msg_event_add (cw_msg_t *self, cw_envelope_t **envelope_p)
{
    assert (self);
    assert (self->command == CW_MSG_PUBLISH);
    assert (envelope_p && *envelope_p);
    cw_msg_publish_t *body = &self->publish;
    body->events = (cw_envelope_t **) s_grow (body->events, body->events_count,
                                              sizeof (cw_envelope_t *));
    body->events[body->events_count++] = *envelope_p;
    *envelope_p = NULL;
}

void
cw_msg_accepted_add (cw_msg_t *self, const char *key)
{
    assert (self);
    assert (self->command == CW_MSG_ACK);
    assert (key);
    s_string_add (&self->ack.accepted, &self->ack.accepted_count, key);
}

void
cw_msg_duplicate_add (cw_msg_t *self, const char *key)
{
    assert (self);
    assert (self->command == CW_MSG_ACK);
    assert (key);
    s_string_add (&self->ack.duplicates, &self->ack.duplicates_count, key);
}

void
cw_msg_rejected_add (cw_msg_t *self, const char *key, const char *reason)
{
    assert (self);
    assert (self->command == CW_MSG_ACK);
    assert (key);
    assert (reason);
    cw_msg_ack_t *body = &self->ack;
    body->rejected = (cw_msg_rejection_t *) s_grow (
        body->rejected, body->rejected_count, sizeof (cw_msg_rejection_t));
    cw_msg_rejection_t *rejection = &body->rejected[body->rejected_count++];
    rejection->key = s_strdup (key);
    rejection->reason = s_strdup (reason);
}

void
cw_msg_frames_destroy (cw_msg_frames_t **self_p)
{
    assert (self_p);
    cw_msg_frames_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->count; index++)
        free (self->frame[index].data);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Reading msgpack

typedef enum {
    S_NIL,
    S_BOOL,
    S_INT,  //  Fits int64_t
    S_BIG,  //  uint64 above INT64_MAX
    S_FLOAT,
    S_STR,
    S_BIN,
    S_EXT,
    S_ARRAY,
    S_MAP
} s_kind_t;

//  Kind names with their article, for "expected X, got Y"
static const char *s_kind_names[] = {
    "nil",      "a boolean", "an integer",   "an integer", "a float",
    "a string", "binary",    "an extension", "an array",   "a map"};

typedef struct {
    s_kind_t kind;
    int64_t integer;       //  S_INT
    double real;           //  S_FLOAT
    bool boolean;          //  S_BOOL
    const uint8_t *bytes;  //  S_STR/S_BIN/S_EXT payload
    uint32_t count;        //  Payload bytes, array items or map pairs
} s_item_t;

typedef struct {
    const uint8_t *data;   //  Body bytes, borrowed
    size_t size;           //  Body size
    size_t pos;            //  Read position
    bool too_deep;         //  s_skip hit S_SKIP_DEPTH_MAX
    cw_msg_error_t error;  //  Error class of the first failure
    char *reason;          //  Caller's reason buffer
    size_t reason_size;
} s_reader_t;

static int
s_fail (s_reader_t *reader, const char *field, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Records a malformed-body failure naming field (or the body when
//  field is NULL). Always returns -1.
static int
s_fail (s_reader_t *reader, const char *field, const char *format, ...)
{
    reader->error = CW_MSG_MALFORMED;
    if (!reader->reason || reader->reason_size == 0)
        return -1;
    char problem[CW_MSG_REASON_SIZE];
    va_list args;
    va_start (args, format);
    vsnprintf (problem, sizeof (problem), format, args);
    va_end (args);
    if (field)
        snprintf (reader->reason, reader->reason_size, "field \"%s\": %s",
                  field, problem);
    else
        snprintf (reader->reason, reader->reason_size, "body: %s", problem);
    return -1;
}

static uint64_t
s_big_endian (const uint8_t *bytes, size_t count)
{
    uint64_t value = 0;
    for (size_t index = 0; index < count; index++)
        value = (value << 8) | bytes[index];
    return value;
}

//  Takes count bytes; returns NULL if the body is too short.
static const uint8_t *
s_take (s_reader_t *reader, size_t count)
{
    if (reader->size - reader->pos < count)
        return NULL;
    const uint8_t *bytes = reader->data + reader->pos;
    reader->pos += count;
    return bytes;
}

//  Reads one item head (and the payload of str/bin/ext). Returns 0, or
//  -1 on truncation or the never-used byte 0xc1.
static int
s_next (s_reader_t *reader, s_item_t *item)
{
    memset (item, 0, sizeof (*item));
    const uint8_t *head = s_take (reader, 1);
    if (!head)
        return -1;
    uint8_t byte = *head;
    size_t width = 0;  //  Bytes of length / value after head
    size_t extra = 0;  //  Ext type byte
    if (byte <= 0x7f) {
        item->kind = S_INT;
        item->integer = byte;
        return 0;
    }
    if (byte >= 0xe0) {
        item->kind = S_INT;
        item->integer = (int8_t) byte;
        return 0;
    }
    if (byte >= 0x80 && byte <= 0x8f) {
        item->kind = S_MAP;
        item->count = byte & 0x0f;
        return 0;
    }
    if (byte >= 0x90 && byte <= 0x9f) {
        item->kind = S_ARRAY;
        item->count = byte & 0x0f;
        return 0;
    }
    if (byte >= 0xa0 && byte <= 0xbf) {
        item->kind = S_STR;
        item->count = byte & 0x1f;
        item->bytes = s_take (reader, item->count);
        return item->bytes ? 0 : -1;
    }
    const uint8_t *bytes;
    switch (byte) {
        case 0xc0:
            item->kind = S_NIL;
            return 0;
        case 0xc2:
            item->kind = S_BOOL;
            item->boolean = false;
            return 0;
        case 0xc3:
            item->kind = S_BOOL;
            item->boolean = true;
            return 0;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            item->kind = S_BIN;
            width = (size_t) 1 << (byte - 0xc4);
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            item->kind = S_EXT;
            width = (size_t) 1 << (byte - 0xc7);
            extra = 1;
            break;
        case 0xca:
        case 0xcb: {
            bytes = s_take (reader, byte == 0xca ? 4 : 8);
            if (!bytes)
                return -1;
            item->kind = S_FLOAT;
            if (byte == 0xca) {
                uint32_t bits = (uint32_t) s_big_endian (bytes, 4);
                float value;
                memcpy (&value, &bits, sizeof (value));
                item->real = value;
            }
            else {
                uint64_t bits = s_big_endian (bytes, 8);
                memcpy (&item->real, &bits, sizeof (item->real));
            }
            return 0;
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: {
            size_t size = (size_t) 1 << (byte - 0xcc);
            bytes = s_take (reader, size);
            if (!bytes)
                return -1;
            uint64_t value = s_big_endian (bytes, size);
            if (value > INT64_MAX)
                item->kind = S_BIG;
            else {
                item->kind = S_INT;
                item->integer = (int64_t) value;
            }
            return 0;
        }
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            size_t size = (size_t) 1 << (byte - 0xd0);
            bytes = s_take (reader, size);
            if (!bytes)
                return -1;
            uint64_t value = s_big_endian (bytes, size);
            item->kind = S_INT;
            if (size == 1)
                item->integer = (int8_t) value;
            else if (size == 2)
                item->integer = (int16_t) value;
            else if (size == 4)
                item->integer = (int32_t) value;
            else
                memcpy (&item->integer, &value, sizeof (value));
            return 0;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            item->kind = S_EXT;
            item->count = 1u << (byte - 0xd4);
            if (!s_take (reader, 1))
                return -1;
            item->bytes = s_take (reader, item->count);
            return item->bytes ? 0 : -1;
        case 0xd9:
        case 0xda:
        case 0xdb:
            item->kind = S_STR;
            width = (size_t) 1 << (byte - 0xd9);
            break;
        case 0xdc:
        case 0xdd:
            bytes = s_take (reader, byte == 0xdc ? 2 : 4);
            if (!bytes)
                return -1;
            item->kind = S_ARRAY;
            item->count = (uint32_t) s_big_endian (bytes, byte == 0xdc ? 2 : 4);
            return 0;
        case 0xde:
        case 0xdf:
            bytes = s_take (reader, byte == 0xde ? 2 : 4);
            if (!bytes)
                return -1;
            item->kind = S_MAP;
            item->count = (uint32_t) s_big_endian (bytes, byte == 0xde ? 2 : 4);
            return 0;
        default:
            return -1;  //  0xc1, never used
    }
    //  str / bin / ext with a length field
    bytes = s_take (reader, width);
    if (!bytes)
        return -1;
    item->count = (uint32_t) s_big_endian (bytes, width);
    if (extra && !s_take (reader, extra))
        return -1;
    item->bytes = s_take (reader, item->count);
    return item->bytes ? 0 : -1;
}

//  Skips one well-formed value. Returns 0, or -1 if truncated, invalid or
//  nested deeper than S_SKIP_DEPTH_MAX (sets too_deep).
static int
s_skip (s_reader_t *reader, int depth)
{
    if (depth > S_SKIP_DEPTH_MAX) {
        reader->too_deep = true;
        return -1;
    }
    s_item_t item;
    if (s_next (reader, &item))
        return -1;
    uint64_t children = item.kind == S_ARRAY ? item.count
                        : item.kind == S_MAP ? 2 * (uint64_t) item.count
                                             : 0;
    //  Each child takes at least one byte: stop early on a huge count
    if (children > reader->size - reader->pos)
        return -1;
    for (uint64_t index = 0; index < children; index++)
        if (s_skip (reader, depth + 1))
            return -1;
    return 0;
}

//  Locates the known keys of the map at pos: positions[i] gets the
//  offset of names[i]'s value, or 0 when absent. Unknown keys are
//  skipped; a repeated known key is malformed. Leaves the read position
//  after the map.
static int
s_map_index (s_reader_t *reader,
             size_t pos,
             const char *field,
             const char *const *names,
             size_t count,
             size_t *positions)
{
    assert (count <= S_KEYS_MAX);
    memset (positions, 0, count * sizeof (size_t));
    reader->pos = pos;
    s_item_t item;
    if (s_next (reader, &item))
        return s_fail (reader, field, "truncated");
    if (item.kind != S_MAP)
        return s_fail (reader, field, "expected a map, got %s",
                       s_kind_names[item.kind]);
    for (uint32_t pair = 0; pair < item.count; pair++) {
        s_item_t key;
        if (s_next (reader, &key))
            return s_fail (reader, field, "truncated");
        if (key.kind != S_STR)
            return s_fail (reader, field, "map key %u is %s, not a string",
                           pair, s_kind_names[key.kind]);
        for (size_t index = 0; index < count; index++)
            if (key.count == strlen (names[index])
                && memcmp (key.bytes, names[index], key.count) == 0) {
                if (positions[index]) {
                    char path[S_FIELD_SIZE];
                    snprintf (path, sizeof (path), "%s%s%s", field ? field : "",
                              field ? "." : "", names[index]);
                    return s_fail (reader, path, "duplicate key");
                }
                positions[index] = reader->pos;
            }
        if (s_skip (reader, 0))
            return s_fail (reader, field, "truncated");
    }
    return 0;
}

//  Joins parent and key into a field path ("results[3].outcome").
static const char *
s_path (char *path, size_t size, const char *parent, const char *key)
{
    int length = snprintf (path, size, "%s%s%s", parent ? parent : "",
                           parent ? "." : "", key);
    assert (length >= 0 && (size_t) length < size);
    (void) length;
    return path;
}

static int
s_integer (s_reader_t *reader,
           size_t pos,
           const char *field,
           int64_t min,
           int64_t max,
           bool optional,
           int64_t *value_p)
{
    if (!pos)
        return optional ? 0 : s_fail (reader, field, "missing");
    reader->pos = pos;
    s_item_t item;
    if (s_next (reader, &item))
        return s_fail (reader, field, "truncated");
    if (item.kind == S_BIG)
        return s_fail (reader, field, "integer out of range %lld to %lld",
                       (long long) min, (long long) max);
    if (item.kind != S_INT)
        return s_fail (reader, field, "expected an integer, got %s",
                       s_kind_names[item.kind]);
    if (item.integer < min || item.integer > max)
        return s_fail (reader, field, "%lld is out of range %lld to %lld",
                       (long long) item.integer, (long long) min,
                       (long long) max);
    *value_p = item.integer;
    return 0;
}

//  Strict UTF-8: no overlong forms, no surrogates, at most U+10FFFF.
static bool
s_utf8_valid (const uint8_t *text, size_t size)
{
    size_t index = 0;
    while (index < size) {
        uint8_t byte = text[index];
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
            if ((text[index + next] & 0xc0) != 0x80)
                return false;
            code = (code << 6) | (text[index + next] & 0x3f);
        }
        if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return false;
        index += more + 1;
    }
    return true;
}

//  Checks a string item: 1..max bytes, UTF-8, no NUL.
static int
s_check_text (s_reader_t *reader,
              const s_item_t *item,
              const char *field,
              size_t max)
{
    if (item->kind != S_STR)
        return s_fail (reader, field, "expected a string, got %s",
                       s_kind_names[item->kind]);
    if (item->count == 0)
        return s_fail (reader, field, "empty string");
    if (item->count > max)
        return s_fail (reader, field, "string of %u bytes exceeds %zu",
                       item->count, max);
    if (memchr (item->bytes, 0, item->count))
        return s_fail (reader, field, "string contains a NUL byte");
    if (!s_utf8_valid (item->bytes, item->count))
        return s_fail (reader, field, "string is not valid UTF-8");
    return 0;
}

static char *
s_copy_text (const s_item_t *item)
{
    char *text = (char *) malloc ((size_t) item->count + 1);
    assert (text);
    memcpy (text, item->bytes, item->count);
    text[item->count] = 0;
    return text;
}

static int
s_string (s_reader_t *reader,
          size_t pos,
          const char *field,
          size_t max,
          bool optional,
          char **text_p)
{
    if (!pos)
        return optional ? 0 : s_fail (reader, field, "missing");
    reader->pos = pos;
    s_item_t item;
    if (s_next (reader, &item))
        return s_fail (reader, field, "truncated");
    if (s_check_text (reader, &item, field, max))
        return -1;
    *text_p = s_copy_text (&item);
    return 0;
}

static int
s_outcome (s_reader_t *reader,
           size_t pos,
           const char *field,
           cw_msg_outcome_t *outcome_p)
{
    char *name = NULL;
    if (s_string (reader, pos, field, CW_MSG_TOKEN_MAX, false, &name))
        return -1;
    int rc = cw_msg_outcome_parse (name, outcome_p);
    if (rc)
        s_fail (reader, field, "unknown outcome \"%s\"", name);
    free (name);
    return rc;
}

//  Reads an array head at pos with min..max items; leaves the read
//  position on the first item.
static int
s_array (s_reader_t *reader,
         size_t pos,
         const char *field,
         size_t min,
         size_t max,
         size_t *count_p)
{
    if (!pos)
        return s_fail (reader, field, "missing");
    reader->pos = pos;
    s_item_t item;
    if (s_next (reader, &item))
        return s_fail (reader, field, "truncated");
    if (item.kind != S_ARRAY)
        return s_fail (reader, field, "expected an array, got %s",
                       s_kind_names[item.kind]);
    if (item.count < min || item.count > max)
        return s_fail (reader, field, "%u items, expected %zu to %zu",
                       item.count, min, max);
    *count_p = item.count;
    return 0;
}

static int
s_strings (s_reader_t *reader,
           size_t pos,
           const char *field,
           size_t min,
           size_t max,
           size_t item_max,
           char ***strings_p,
           size_t *count_p)
{
    size_t count;
    if (s_array (reader, pos, field, min, max, &count))
        return -1;
    char **strings = (char **) calloc (count ? count : 1, sizeof (char *));
    assert (strings);
    //  Owned by the message from here on, so partial arrays are freed
    *strings_p = strings;
    for (size_t index = 0; index < count; index++) {
        char path[S_FIELD_SIZE];
        snprintf (path, sizeof (path), "%s[%zu]", field, index);
        s_item_t item;
        if (s_next (reader, &item))
            return s_fail (reader, path, "truncated");
        if (s_check_text (reader, &item, path, item_max))
            return -1;
        strings[index] = s_copy_text (&item);
        (*count_p)++;
    }
    return 0;
}

//  Reads any value into JSON (see PROTOCOL.md §3: no bin/ext, finite
//  floats, string keys, no duplicate keys, bounded depth).
static json_t *
s_json_value (s_reader_t *reader, const char *field, int depth)
{
    s_item_t item;
    if (s_next (reader, &item)) {
        s_fail (reader, field, "truncated");
        return NULL;
    }
    switch (item.kind) {
        case S_NIL:
            return json_null ();
        case S_BOOL:
            return json_boolean (item.boolean);
        case S_INT:
            return json_integer (item.integer);
        case S_BIG:
            s_fail (reader, field, "integer above %lld", (long long) INT64_MAX);
            return NULL;
        case S_FLOAT:
            if (!isfinite (item.real)) {
                s_fail (reader, field, "float is not finite");
                return NULL;
            }
            return json_real (item.real);
        case S_STR:
            if (item.count > 0
                && s_check_text (reader, &item, field, CW_MSG_MAX_SIZE))
                return NULL;
            return json_stringn ((const char *) item.bytes, item.count);
        case S_BIN:
        case S_EXT:
            s_fail (reader, field, "%s values are not allowed",
                    s_kind_names[item.kind]);
            return NULL;
        case S_ARRAY:
        case S_MAP:
            break;
    }
    if (depth >= CW_MSG_MAP_DEPTH_MAX) {
        s_fail (reader, field, "nesting deeper than %d levels",
                CW_MSG_MAP_DEPTH_MAX);
        return NULL;
    }
    if (item.kind == S_ARRAY) {
        json_t *array = json_array ();
        assert (array);
        for (uint32_t index = 0; index < item.count; index++) {
            json_t *value = s_json_value (reader, field, depth + 1);
            if (!value) {
                json_decref (array);
                return NULL;
            }
            json_array_append_new (array, value);
        }
        return array;
    }
    json_t *object = json_object ();
    assert (object);
    for (uint32_t pair = 0; pair < item.count; pair++) {
        s_item_t key;
        const char *problem = NULL;
        if (s_next (reader, &key))
            problem = "truncated";
        else if (key.kind != S_STR)
            problem = "map key is not a string";
        else if (key.count > CW_ENVELOPE_KEY_MAX || key.count == 0
                 || memchr (key.bytes, 0, key.count)
                 || !s_utf8_valid (key.bytes, key.count))
            problem = "map key must be 1 to 255 bytes of UTF-8 without NUL";
        if (problem) {
            s_fail (reader, field, "%s", problem);
            json_decref (object);
            return NULL;
        }
        char *name = s_copy_text (&key);
        json_t *value = NULL;
        if (json_object_get (object, name))
            s_fail (reader, field, "duplicate key \"%s\"", name);
        else
            value = s_json_value (reader, field, depth + 1);
        if (!value) {
            free (name);
            json_decref (object);
            return NULL;
        }
        json_object_set_new (object, name, value);
        free (name);
    }
    return object;
}

static int
s_json_object (s_reader_t *reader,
               size_t pos,
               const char *field,
               bool optional,
               json_t **object_p)
{
    if (!pos)
        return optional ? 0 : s_fail (reader, field, "missing");
    reader->pos = pos;
    if (reader->data[pos] < 0x80 || reader->data[pos] > 0x8f)
        if (reader->data[pos] != 0xde && reader->data[pos] != 0xdf) {
            s_item_t item;
            s_next (reader, &item);
            return s_fail (reader, field, "expected a map, got %s",
                           s_kind_names[item.kind]);
        }
    *object_p = s_json_value (reader, field, 0);
    return *object_p ? 0 : -1;
}

static int
s_envelope (s_reader_t *reader,
            size_t pos,
            const char *field,
            cw_envelope_t **envelope_p)
{
    if (!pos)
        return s_fail (reader, field, "missing");
    reader->pos = pos;
    if (s_skip (reader, 0))
        return s_fail (reader, field, "truncated");
    char problem[CW_ENVELOPE_REASON_SIZE];
    *envelope_p = cw_envelope_decode_msgpack (
        reader->data + pos, reader->pos - pos, problem, sizeof (problem));
    if (!*envelope_p)
        return s_fail (reader, field, "%s", problem);
    return 0;
}

//  ---------------------------------------------------------------------
//  Decoding bodies, one function per command; the read position is
//  free (each getter seeks to the value it reads).

#define S_ID_MAX INT64_MAX

static int
s_decode_ready (s_reader_t *reader, cw_msg_ready_t *body)
{
    const char *names[] = {"flows", "credit", "name"};
    size_t at[3];
    if (s_map_index (reader, 0, NULL, names, 3, at)
        || s_strings (reader, at[0], "flows", 1, CW_MSG_FLOWS_MAX,
                      CW_MSG_FLOW_MAX, &body->flows, &body->flows_count)
        || s_integer (reader, at[1], "credit", 1, CW_MSG_CREDIT_MAX, false,
                      &body->credit)
        || s_string (reader, at[2], "name", CW_MSG_NAME_MAX, true, &body->name))
        return -1;
    return 0;
}

static int
s_decode_job (s_reader_t *reader, cw_msg_job_t *body)
{
    const char *names[] = {"job_id", "attempt",     "flow",
                           "target", "deadline_ms", "envelope"};
    size_t at[6];
    if (s_map_index (reader, 0, NULL, names, 6, at)
        || s_integer (reader, at[0], "job_id", 0, S_ID_MAX, false,
                      &body->job_id)
        || s_integer (reader, at[1], "attempt", 1, INT32_MAX, false,
                      &body->attempt)
        || s_string (reader, at[2], "flow", CW_MSG_FLOW_MAX, false, &body->flow)
        || s_string (reader, at[3], "target", CW_MSG_FLOW_MAX, false,
                     &body->target)
        || s_integer (reader, at[4], "deadline_ms", 0, INT64_MAX, false,
                      &body->deadline_ms)
        || s_envelope (reader, at[5], "envelope", &body->envelope))
        return -1;
    return 0;
}

//  The fields RESULT entries and REPLY share.
static int
s_decode_outcome_fields (s_reader_t *reader,
                         const char *parent,
                         const size_t *at,
                         cw_msg_outcome_t *outcome,
                         int64_t *http_status,
                         char **error,
                         int64_t *duration_ms,
                         json_t **response)
{
    char path[S_FIELD_SIZE];
    if (s_outcome (reader, at[0],
                   s_path (path, sizeof (path), parent, "outcome"), outcome)
        || s_integer (reader, at[1],
                      s_path (path, sizeof (path), parent, "http_status"), 0,
                      CW_MSG_HTTP_STATUS_MAX, false, http_status)
        || s_string (reader, at[2],
                     s_path (path, sizeof (path), parent, "error"),
                     CW_MSG_TEXT_MAX, true, error)
        || s_integer (reader, at[3],
                      s_path (path, sizeof (path), parent, "duration_ms"), 0,
                      INT64_MAX, false, duration_ms)
        || s_json_object (reader, at[4],
                          s_path (path, sizeof (path), parent, "response"),
                          true, response))
        return -1;
    return 0;
}

static int
s_decode_result (s_reader_t *reader, cw_msg_results_t *body)
{
    const char *names[] = {"results", "credit"};
    size_t at[2];
    size_t count;
    if (s_map_index (reader, 0, NULL, names, 2, at)
        || s_integer (reader, at[1], "credit", 1, CW_MSG_CREDIT_MAX, true,
                      &body->credit)
        || s_array (reader, at[0], "results", 1, CW_MSG_RESULTS_MAX, &count))
        return -1;
    body->results =
        (cw_msg_result_t *) calloc (count, sizeof (cw_msg_result_t));
    assert (body->results);
    const char *keys[] = {"outcome",     "http_status",   "error",
                          "duration_ms", "response",      "job_id",
                          "attempt",     "retry_after_ms"};
    for (size_t index = 0; index < count; index++) {
        size_t item_pos = reader->pos;
        char parent[S_FIELD_SIZE];
        char path[S_FIELD_SIZE];
        snprintf (parent, sizeof (parent), "results[%zu]", index);
        size_t key_at[8];
        if (s_map_index (reader, item_pos, parent, keys, 8, key_at))
            return -1;
        size_t next = reader->pos;
        cw_msg_result_t *result = &body->results[index];
        s_result_init (result);
        body->results_count++;
        if (s_decode_outcome_fields (reader, parent, key_at, &result->outcome,
                                     &result->http_status, &result->error,
                                     &result->duration_ms, &result->response)
            || s_integer (reader, key_at[5],
                          s_path (path, sizeof (path), parent, "job_id"), 0,
                          S_ID_MAX, false, &result->job_id)
            || s_integer (reader, key_at[6],
                          s_path (path, sizeof (path), parent, "attempt"), 1,
                          INT32_MAX, false, &result->attempt)
            || s_integer (
                reader, key_at[7],
                s_path (path, sizeof (path), parent, "retry_after_ms"), 0,
                INT64_MAX, true, &result->retry_after_ms))
            return -1;
        reader->pos = next;
    }
    return 0;
}

static int
s_decode_credit (s_reader_t *reader, cw_msg_credit_t *body)
{
    const char *names[] = {"credit"};
    size_t at[1];
    if (s_map_index (reader, 0, NULL, names, 1, at)
        || s_integer (reader, at[0], "credit", 1, CW_MSG_CREDIT_MAX, false,
                      &body->credit))
        return -1;
    return 0;
}

static int
s_decode_disconnect (s_reader_t *reader, cw_msg_disconnect_t *body)
{
    const char *names[] = {"reason"};
    size_t at[1];
    if (s_map_index (reader, 0, NULL, names, 1, at)
        || s_string (reader, at[0], "reason", CW_MSG_TEXT_MAX, false,
                     &body->reason))
        return -1;
    return 0;
}

static int
s_decode_call (s_reader_t *reader, cw_msg_call_t *body)
{
    const char *names[] = {"call_id", "flow", "deadline_ms", "envelope"};
    size_t at[4];
    if (s_map_index (reader, 0, NULL, names, 4, at)
        || s_integer (reader, at[0], "call_id", 0, S_ID_MAX, false,
                      &body->call_id)
        || s_string (reader, at[1], "flow", CW_MSG_FLOW_MAX, false, &body->flow)
        || s_integer (reader, at[2], "deadline_ms", 0, INT64_MAX, false,
                      &body->deadline_ms)
        || s_envelope (reader, at[3], "envelope", &body->envelope))
        return -1;
    return 0;
}

static int
s_decode_reply (s_reader_t *reader, cw_msg_reply_t *body)
{
    const char *names[] = {"outcome",     "http_status", "error",
                           "duration_ms", "response",    "call_id"};
    size_t at[6];
    if (s_map_index (reader, 0, NULL, names, 6, at)
        || s_integer (reader, at[5], "call_id", 0, S_ID_MAX, false,
                      &body->call_id)
        || s_decode_outcome_fields (reader, NULL, at, &body->outcome,
                                    &body->http_status, &body->error,
                                    &body->duration_ms, &body->response))
        return -1;
    return 0;
}

static int
s_decode_error (s_reader_t *reader, cw_msg_error_body_t *body)
{
    const char *names[] = {"code", "message", "command"};
    size_t at[3];
    if (s_map_index (reader, 0, NULL, names, 3, at)
        || s_string (reader, at[0], "code", CW_MSG_TOKEN_MAX, false,
                     &body->code)
        || s_string (reader, at[1], "message", CW_MSG_TEXT_MAX, false,
                     &body->message)
        || s_integer (reader, at[2], "command", 0, 255, true, &body->command))
        return -1;
    return 0;
}

static int
s_decode_publish (s_reader_t *reader, cw_msg_publish_t *body)
{
    const char *names[] = {"batch_id", "island", "events"};
    size_t at[3];
    size_t count;
    if (s_map_index (reader, 0, NULL, names, 3, at)
        || s_integer (reader, at[0], "batch_id", 0, S_ID_MAX, false,
                      &body->batch_id)
        || s_string (reader, at[1], "island", CW_MSG_TOKEN_MAX, false,
                     &body->island))
        return -1;
    if (!s_island_valid (body->island))
        return s_fail (reader, "island", "must be 1 to %d of a-z 0-9 _ -",
                       CW_MSG_TOKEN_MAX);
    if (s_array (reader, at[2], "events", 1, CW_MSG_EVENTS_MAX, &count))
        return -1;
    body->events = (cw_envelope_t **) calloc (count, sizeof (cw_envelope_t *));
    assert (body->events);
    for (size_t index = 0; index < count; index++) {
        char path[S_FIELD_SIZE];
        snprintf (path, sizeof (path), "events[%zu]", index);
        size_t item_pos = reader->pos;
        if (s_envelope (reader, item_pos, path, &body->events[index]))
            return -1;
        body->events_count++;
        //  s_envelope leaves the read position after the envelope
    }
    return 0;
}

static int
s_decode_ack (s_reader_t *reader, cw_msg_ack_t *body)
{
    const char *names[] = {"batch_id", "accepted", "duplicates", "rejected"};
    size_t at[4];
    size_t count;
    if (s_map_index (reader, 0, NULL, names, 4, at)
        || s_integer (reader, at[0], "batch_id", 0, S_ID_MAX, false,
                      &body->batch_id)
        || s_strings (reader, at[1], "accepted", 0, CW_MSG_EVENTS_MAX,
                      CW_MSG_KEY_MAX, &body->accepted, &body->accepted_count)
        || s_strings (reader, at[2], "duplicates", 0, CW_MSG_EVENTS_MAX,
                      CW_MSG_KEY_MAX, &body->duplicates,
                      &body->duplicates_count)
        || s_array (reader, at[3], "rejected", 0, CW_MSG_EVENTS_MAX, &count))
        return -1;
    body->rejected = (cw_msg_rejection_t *) calloc (
        count ? count : 1, sizeof (cw_msg_rejection_t));
    assert (body->rejected);
    const char *keys[] = {"key", "reason"};
    for (size_t index = 0; index < count; index++) {
        char parent[S_FIELD_SIZE];
        char path[S_FIELD_SIZE];
        snprintf (parent, sizeof (parent), "rejected[%zu]", index);
        size_t key_at[2];
        if (s_map_index (reader, reader->pos, parent, keys, 2, key_at))
            return -1;
        size_t next = reader->pos;
        cw_msg_rejection_t *rejection = &body->rejected[index];
        body->rejected_count++;
        if (s_string (reader, key_at[0],
                      s_path (path, sizeof (path), parent, "key"),
                      CW_MSG_KEY_MAX, false, &rejection->key)
            || s_string (reader, key_at[1],
                         s_path (path, sizeof (path), parent, "reason"),
                         CW_MSG_TEXT_MAX, false, &rejection->reason))
            return -1;
        reader->pos = next;
    }
    return 0;
}

static int
s_decode_request (s_reader_t *reader, cw_msg_request_t *body)
{
    const char *names[] = {"request_id", "op", "args"};
    size_t at[3];
    if (s_map_index (reader, 0, NULL, names, 3, at)
        || s_integer (reader, at[0], "request_id", 0, S_ID_MAX, false,
                      &body->request_id)
        || s_string (reader, at[1], "op", CW_MSG_TOKEN_MAX, false, &body->op)
        || s_json_object (reader, at[2], "args", false, &body->args))
        return -1;
    return 0;
}

static int
s_decode_response (s_reader_t *reader, cw_msg_response_t *body)
{
    const char *names[] = {"request_id", "status", "result", "error"};
    size_t at[4];
    char *status = NULL;
    if (s_map_index (reader, 0, NULL, names, 4, at)
        || s_integer (reader, at[0], "request_id", 0, S_ID_MAX, false,
                      &body->request_id)
        || s_string (reader, at[1], "status", CW_MSG_TOKEN_MAX, false, &status)
        || s_json_object (reader, at[2], "result", true, &body->result))
        goto fail;
    bool failed = strcmp (status, "error") == 0;
    if (!failed && strcmp (status, "ok") != 0) {
        s_fail (reader, "status", "unknown status \"%s\"", status);
        goto fail;
    }
    if (failed && !at[3]) {
        s_fail (reader, "error", "missing (status is \"error\")");
        goto fail;
    }
    if (!failed && at[3]) {
        s_fail (reader, "error", "not allowed when status is \"ok\"");
        goto fail;
    }
    if (failed) {
        const char *keys[] = {"code", "message", "field"};
        size_t key_at[3];
        if (s_map_index (reader, at[3], "error", keys, 3, key_at)
            || s_string (reader, key_at[0], "error.code", CW_MSG_TOKEN_MAX,
                         false, &body->error_code)
            || s_string (reader, key_at[1], "error.message", CW_MSG_TEXT_MAX,
                         false, &body->error_message)
            || s_string (reader, key_at[2], "error.field", CW_MSG_FIELD_MAX,
                         true, &body->error_field))
            goto fail;
    }
    free (status);
    return 0;
fail:
    free (status);
    return -1;
}

static int
s_decode_body (s_reader_t *reader, cw_msg_t *msg)
{
    switch (msg->command) {
        case CW_MSG_READY:
            return s_decode_ready (reader, &msg->ready);
        case CW_MSG_JOB:
            return s_decode_job (reader, &msg->job);
        case CW_MSG_RESULT:
            return s_decode_result (reader, &msg->result);
        case CW_MSG_CREDIT:
            return s_decode_credit (reader, &msg->credit);
        case CW_MSG_HEARTBEAT:
            return 0;
        case CW_MSG_DISCONNECT:
            return s_decode_disconnect (reader, &msg->disconnect);
        case CW_MSG_CALL:
            return s_decode_call (reader, &msg->call);
        case CW_MSG_REPLY:
            return s_decode_reply (reader, &msg->reply);
        case CW_MSG_ERROR:
            return s_decode_error (reader, &msg->error);
        case CW_MSG_PUBLISH:
            return s_decode_publish (reader, &msg->publish);
        case CW_MSG_ACK:
            return s_decode_ack (reader, &msg->ack);
        case CW_MSG_REQUEST:
            return s_decode_request (reader, &msg->request);
        case CW_MSG_RESPONSE:
            return s_decode_response (reader, &msg->response);
    }
    return -1;
}

static void s_frame_fail (cw_msg_error_t error,
                          cw_msg_error_t *error_p,
                          char *reason,
                          size_t reason_size,
                          const char *format,
                          ...) __attribute__ ((format (printf, 5, 6)));

static void
s_frame_fail (cw_msg_error_t error,
              cw_msg_error_t *error_p,
              char *reason,
              size_t reason_size,
              const char *format,
              ...)
{
    if (error_p)
        *error_p = error;
    if (!reason || reason_size == 0)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (reason, reason_size, format, args);
    va_end (args);
}

cw_msg_t *
cw_msg_decode (const cw_msg_frame_t *frames,
               size_t count,
               cw_msg_error_t *error_p,
               char *reason,
               size_t reason_size)
{
    assert (frames || count == 0);
    for (size_t index = 0; index < count; index++)
        assert (frames[index].data || frames[index].size == 0);
    if (error_p)
        *error_p = CW_MSG_VALID;
    if (reason && reason_size)
        reason[0] = 0;
    if (count != CW_MSG_FRAMES) {
        s_frame_fail (CW_MSG_MALFORMED, error_p, reason, reason_size,
                      "expected %d frames, got %zu", CW_MSG_FRAMES, count);
        return NULL;
    }
    int protocol = -1;
    for (int index = 0; index <= CW_MSG_CLIENT; index++)
        if (frames[0].size == CW_MSG_PROTOCOL_SIZE
            && memcmp (frames[0].data, s_protocol_ids[index],
                       CW_MSG_PROTOCOL_SIZE)
                   == 0)
            protocol = index;
    if (protocol < 0) {
        s_frame_fail (CW_MSG_UNKNOWN_PROTOCOL, error_p, reason, reason_size,
                      "unknown protocol id (frame 0, %zu bytes)",
                      frames[0].size);
        return NULL;
    }
    if (frames[1].size != 1) {
        s_frame_fail (CW_MSG_MALFORMED, error_p, reason, reason_size,
                      "command frame has %zu bytes, expected 1",
                      frames[1].size);
        return NULL;
    }
    int command = *(const uint8_t *) frames[1].data;
    if (!cw_msg_command_valid ((cw_msg_protocol_t) protocol, command)) {
        s_frame_fail (CW_MSG_UNKNOWN_COMMAND, error_p, reason, reason_size,
                      "unknown command 0x%02x for protocol %s", command,
                      s_protocol_ids[protocol]);
        return NULL;
    }
    if (frames[2].size > CW_MSG_MAX_SIZE) {
        s_frame_fail (CW_MSG_TOO_LARGE, error_p, reason, reason_size,
                      "body of %zu bytes exceeds %d", frames[2].size,
                      CW_MSG_MAX_SIZE);
        return NULL;
    }
    s_reader_t reader = {.data = (const uint8_t *) frames[2].data,
                         .size = frames[2].size,
                         .reason = reason,
                         .reason_size = reason_size};
    if (s_skip (&reader, 0)) {
        if (reader.too_deep)
            s_fail (&reader, NULL, "nesting deeper than %d levels",
                    S_SKIP_DEPTH_MAX);
        else
            s_fail (&reader, NULL, "not one complete msgpack value");
        goto fail;
    }
    if (reader.pos != reader.size) {
        s_fail (&reader, NULL, "%zu bytes after the map",
                reader.size - reader.pos);
        goto fail;
    }
    const char *names[] = {"v"};
    size_t at[1];
    int64_t version;
    if (s_map_index (&reader, 0, NULL, names, 1, at)
        || s_integer (&reader, at[0], "v", 1, INT64_MAX, false, &version))
        goto fail;
    if (version != CW_MSG_VERSION) {
        s_fail (&reader, "v", "unsupported body version %lld (supported: %d)",
                (long long) version, CW_MSG_VERSION);
        reader.error = CW_MSG_UNSUPPORTED_VERSION;
        goto fail;
    }
    cw_msg_t *msg =
        cw_msg_new ((cw_msg_protocol_t) protocol, (cw_msg_command_t) command);
    if (s_decode_body (&reader, msg) == 0)
        return msg;
    cw_msg_destroy (&msg);
fail:
    if (error_p)
        *error_p = reader.error;
    return NULL;
}

//  ---------------------------------------------------------------------
//  Encoding

typedef struct {
    msgpack_sbuffer buffer;  //  The body being written
    msgpack_packer packer;   //  Writes into buffer
    bool failed;             //  An envelope did not encode, or too large
    char *reason;            //  Caller's reason buffer
    size_t reason_size;
} s_writer_t;

static void
s_put_key (s_writer_t *writer, const char *key)
{
    size_t length = strlen (key);
    msgpack_pack_str (&writer->packer, length);
    msgpack_pack_str_body (&writer->packer, key, length);
}

//  A NULL string is written as nil, which the check then names.
static void
s_put_string (s_writer_t *writer, const char *key, const char *value)
{
    s_put_key (writer, key);
    if (value)
        s_put_key (writer, value);
    else
        msgpack_pack_nil (&writer->packer);
}

static void
s_put_int (s_writer_t *writer, const char *key, int64_t value)
{
    s_put_key (writer, key);
    msgpack_pack_int64 (&writer->packer, value);
}

static void
s_put_strings (s_writer_t *writer,
               const char *key,
               char *const *strings,
               size_t count)
{
    s_put_key (writer, key);
    msgpack_pack_array (&writer->packer, count);
    for (size_t index = 0; index < count; index++)
        if (strings[index])
            s_put_key (writer, strings[index]);
        else
            msgpack_pack_nil (&writer->packer);
}

static void
s_put_json (s_writer_t *writer, const char *key, const json_t *value)
{
    s_put_key (writer, key);
    if (value)
        cw_mpjson_pack (&writer->packer, value);
    else
        msgpack_pack_map (&writer->packer, 0);
}

static void
s_put_envelope (s_writer_t *writer,
                const char *field,
                const cw_envelope_t *envelope)
{
    if (writer->failed)
        return;
    if (!envelope) {
        writer->failed = true;
        snprintf (writer->reason, writer->reason_size, "field \"%s\": missing",
                  field);
        return;
    }
    char problem[CW_ENVELOPE_REASON_SIZE];
    size_t size;
    void *bytes =
        cw_envelope_encode_msgpack (envelope, &size, problem, sizeof (problem));
    if (!bytes) {
        writer->failed = true;
        snprintf (writer->reason, writer->reason_size, "field \"%s\": %s",
                  field, problem);
        return;
    }
    msgpack_sbuffer_write (&writer->buffer, (const char *) bytes, size);
    free (bytes);
    if (writer->buffer.size > CW_MSG_MAX_SIZE) {
        writer->failed = true;
        snprintf (writer->reason, writer->reason_size,
                  "body exceeds %d bytes at field \"%s\"", CW_MSG_MAX_SIZE,
                  field);
    }
}

static void
s_put_outcome_fields (s_writer_t *writer,
                      cw_msg_outcome_t outcome,
                      int64_t http_status,
                      const char *error,
                      int64_t duration_ms,
                      const json_t *response)
{
    s_put_string (writer, "outcome", cw_msg_outcome_name (outcome));
    s_put_int (writer, "http_status", http_status);
    if (error)
        s_put_string (writer, "error", error);
    s_put_int (writer, "duration_ms", duration_ms);
    if (response)
        s_put_json (writer, "response", response);
}

static void
s_encode_body (s_writer_t *writer, const cw_msg_t *self)
{
    msgpack_packer *packer = &writer->packer;
    char field[S_FIELD_SIZE];
    size_t pairs = 1;
    switch (self->command) {
        case CW_MSG_READY:
            pairs += 2 + (self->ready.name != NULL);
            break;
        case CW_MSG_JOB:
            pairs += 6;
            break;
        case CW_MSG_RESULT:
            pairs += 1 + (self->result.credit != -1);
            break;
        case CW_MSG_CREDIT:
            pairs += 1;
            break;
        case CW_MSG_HEARTBEAT:
            break;
        case CW_MSG_DISCONNECT:
            pairs += 1;
            break;
        case CW_MSG_CALL:
            pairs += 4;
            break;
        case CW_MSG_REPLY:
            pairs += 4 + (self->reply.error != NULL)
                     + (self->reply.response != NULL);
            break;
        case CW_MSG_ERROR:
            pairs += 2 + (self->error.command != -1);
            break;
        case CW_MSG_PUBLISH:
            pairs += 3;
            break;
        case CW_MSG_ACK:
            pairs += 4;
            break;
        case CW_MSG_REQUEST:
            pairs += 3;
            break;
        case CW_MSG_RESPONSE:
            pairs += 2 + (self->response.result != NULL)
                     + (self->response.error_code != NULL);
            break;
    }
    msgpack_pack_map (packer, pairs);
    s_put_int (writer, "v", CW_MSG_VERSION);
    switch (self->command) {
        case CW_MSG_READY:
            s_put_strings (writer, "flows", self->ready.flows,
                           self->ready.flows_count);
            s_put_int (writer, "credit", self->ready.credit);
            if (self->ready.name)
                s_put_string (writer, "name", self->ready.name);
            break;
        case CW_MSG_JOB:
            s_put_int (writer, "job_id", self->job.job_id);
            s_put_int (writer, "attempt", self->job.attempt);
            s_put_string (writer, "flow", self->job.flow);
            s_put_string (writer, "target", self->job.target);
            s_put_int (writer, "deadline_ms", self->job.deadline_ms);
            s_put_key (writer, "envelope");
            s_put_envelope (writer, "envelope", self->job.envelope);
            break;
        case CW_MSG_RESULT:
            s_put_key (writer, "results");
            msgpack_pack_array (packer, self->result.results_count);
            for (size_t index = 0; index < self->result.results_count;
                 index++) {
                const cw_msg_result_t *result = &self->result.results[index];
                msgpack_pack_map (packer, 5 + (result->error != NULL)
                                              + (result->retry_after_ms != -1)
                                              + (result->response != NULL));
                s_put_int (writer, "job_id", result->job_id);
                s_put_int (writer, "attempt", result->attempt);
                s_put_outcome_fields (writer, result->outcome,
                                      result->http_status, result->error,
                                      result->duration_ms, NULL);
                if (result->retry_after_ms != -1)
                    s_put_int (writer, "retry_after_ms",
                               result->retry_after_ms);
                if (result->response)
                    s_put_json (writer, "response", result->response);
            }
            if (self->result.credit != -1)
                s_put_int (writer, "credit", self->result.credit);
            break;
        case CW_MSG_CREDIT:
            s_put_int (writer, "credit", self->credit.credit);
            break;
        case CW_MSG_HEARTBEAT:
            break;
        case CW_MSG_DISCONNECT:
            s_put_string (writer, "reason", self->disconnect.reason);
            break;
        case CW_MSG_CALL:
            s_put_int (writer, "call_id", self->call.call_id);
            s_put_string (writer, "flow", self->call.flow);
            s_put_int (writer, "deadline_ms", self->call.deadline_ms);
            s_put_key (writer, "envelope");
            s_put_envelope (writer, "envelope", self->call.envelope);
            break;
        case CW_MSG_REPLY:
            s_put_int (writer, "call_id", self->reply.call_id);
            s_put_outcome_fields (writer, self->reply.outcome,
                                  self->reply.http_status, self->reply.error,
                                  self->reply.duration_ms,
                                  self->reply.response);
            break;
        case CW_MSG_ERROR:
            s_put_string (writer, "code", self->error.code);
            s_put_string (writer, "message", self->error.message);
            if (self->error.command != -1)
                s_put_int (writer, "command", self->error.command);
            break;
        case CW_MSG_PUBLISH:
            s_put_int (writer, "batch_id", self->publish.batch_id);
            s_put_string (writer, "island", self->publish.island);
            s_put_key (writer, "events");
            msgpack_pack_array (packer, self->publish.events_count);
            for (size_t index = 0; index < self->publish.events_count;
                 index++) {
                snprintf (field, sizeof (field), "events[%zu]", index);
                s_put_envelope (writer, field, self->publish.events[index]);
            }
            break;
        case CW_MSG_ACK:
            s_put_int (writer, "batch_id", self->ack.batch_id);
            s_put_strings (writer, "accepted", self->ack.accepted,
                           self->ack.accepted_count);
            s_put_strings (writer, "duplicates", self->ack.duplicates,
                           self->ack.duplicates_count);
            s_put_key (writer, "rejected");
            msgpack_pack_array (packer, self->ack.rejected_count);
            for (size_t index = 0; index < self->ack.rejected_count; index++) {
                msgpack_pack_map (packer, 2);
                s_put_string (writer, "key", self->ack.rejected[index].key);
                s_put_string (writer, "reason",
                              self->ack.rejected[index].reason);
            }
            break;
        case CW_MSG_REQUEST:
            s_put_int (writer, "request_id", self->request.request_id);
            s_put_string (writer, "op", self->request.op);
            s_put_json (writer, "args", self->request.args);
            break;
        case CW_MSG_RESPONSE:
            s_put_int (writer, "request_id", self->response.request_id);
            s_put_string (writer, "status",
                          self->response.error_code ? "error" : "ok");
            if (self->response.result)
                s_put_json (writer, "result", self->response.result);
            if (self->response.error_code) {
                s_put_key (writer, "error");
                msgpack_pack_map (packer,
                                  2 + (self->response.error_field != NULL));
                s_put_string (writer, "code", self->response.error_code);
                s_put_string (writer, "message", self->response.error_message);
                if (self->response.error_field)
                    s_put_string (writer, "field", self->response.error_field);
            }
            break;
    }
}

static void *
s_copy_bytes (const void *data, size_t size)
{
    void *copy = malloc (size);
    assert (copy);
    memcpy (copy, data, size);
    return copy;
}

cw_msg_frames_t *
cw_msg_encode (const cw_msg_t *self, char *reason, size_t reason_size)
{
    assert (self);
    assert (cw_msg_command_valid (self->protocol, (int) self->command));
    char scratch[CW_MSG_REASON_SIZE];
    if (!reason || reason_size == 0) {
        reason = scratch;
        reason_size = sizeof (scratch);
    }
    reason[0] = 0;
    s_writer_t writer = {.reason = reason, .reason_size = reason_size};
    msgpack_sbuffer_init (&writer.buffer);
    msgpack_packer_init (&writer.packer, &writer.buffer, msgpack_sbuffer_write);
    s_encode_body (&writer, self);
    if (!writer.failed && writer.buffer.size > CW_MSG_MAX_SIZE) {
        writer.failed = true;
        snprintf (reason, reason_size, "body of %zu bytes exceeds %d",
                  writer.buffer.size, CW_MSG_MAX_SIZE);
    }
    if (writer.failed) {
        msgpack_sbuffer_destroy (&writer.buffer);
        return NULL;
    }
    cw_msg_frames_t *frames =
        (cw_msg_frames_t *) calloc (1, sizeof (cw_msg_frames_t));
    assert (frames);
    frames->count = CW_MSG_FRAMES;
    frames->frame[0].data =
        s_copy_bytes (s_protocol_ids[self->protocol], CW_MSG_PROTOCOL_SIZE);
    frames->frame[0].size = CW_MSG_PROTOCOL_SIZE;
    uint8_t command = (uint8_t) self->command;
    frames->frame[1].data = s_copy_bytes (&command, 1);
    frames->frame[1].size = 1;
    frames->frame[2].size = writer.buffer.size;
    frames->frame[2].data = msgpack_sbuffer_release (&writer.buffer);
    if (!frames->frame[2].data)  //  Empty buffer: cannot happen
        frames->frame[2].data = malloc (1);
    //  The same rules as a receiver: never send what a peer refuses
    cw_msg_t *check =
        cw_msg_decode (frames->frame, frames->count, NULL, reason, reason_size);
    if (!check) {
        cw_msg_frames_destroy (&frames);
        return NULL;
    }
    cw_msg_destroy (&check);
    return frames;
}
