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
    tables, smallest integer encodings, envelopes in their canonical form
    (written in place by cw_envelope_append_msgpack), JSON objects with
    keys sorted by byte value, reals as float64. The encoder then reads
    its own body with the decoder's code (s_read) in a mode that checks
    every rule but builds nothing, so both apply the same rules with the
    same reasons, and nothing is sent that a peer would refuse.
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
#define S_TOP_MAX 16         //  Body keys whose offsets s_check_body keeps

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

//  The outcome named by length bytes at name; 0, or -1 if unknown
static int
s_outcome_find (const char *name, size_t length, cw_msg_outcome_t *outcome_p)
{
    for (int index = 0; index <= CW_MSG_OUTCOME_VERSION; index++)
        if (strlen (s_outcome_names[index]) == length
            && memcmp (name, s_outcome_names[index], length) == 0) {
            *outcome_p = (cw_msg_outcome_t) index;
            return 0;
        }
    return -1;
}

int
cw_msg_outcome_parse (const char *name, cw_msg_outcome_t *outcome_p)
{
    assert (outcome_p);
    if (!name)
        return -1;
    return s_outcome_find (name, strlen (name), outcome_p);
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
s_island_valid (const char *island, size_t length)
{
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
    return s_island_valid (island, strlen (island)) ? island : NULL;
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
            s_strings_free (self->ready.targets, self->ready.targets_count);
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

void
cw_msg_target_add (cw_msg_t *self, const char *target)
{
    assert (self);
    assert (self->command == CW_MSG_READY);
    assert (target);
    s_string_add (&self->ready.targets, &self->ready.targets_count, target);
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

//  A field path, written out only when a reason is: prefix[index].key,
//  each part optional ("results[3].outcome", "flows[2]", "error.code",
//  "credit")
typedef struct {
    const char *prefix;  //  The parent's name, or NULL
    int64_t index;       //  Item index in the parent array, or -1
    const char *key;     //  The key, or NULL
} s_field_t;

//  A top-level key
static s_field_t
s_key (const char *key)
{
    s_field_t field = {NULL, -1, key};
    return field;
}

//  Item index of the array named prefix; with index -1, the map named
//  prefix (whose keys are then "prefix.key")
static s_field_t
s_item (const char *prefix, int64_t index)
{
    s_field_t field = {prefix, index, NULL};
    return field;
}

//  A key of the map that parent names
static s_field_t
s_child (const s_field_t *parent, const char *key)
{
    assert (!parent->key);
    s_field_t field = *parent;
    field.key = key;
    return field;
}

static void
s_field_text (const s_field_t *field, char *text, size_t size)
{
    char index[32] = "";
    if (field->index >= 0)
        snprintf (index, sizeof (index), "[%lld]", (long long) field->index);
    snprintf (text, size, "%s%s%s%s", field->prefix ? field->prefix : "",
              index, field->prefix && field->key ? "." : "",
              field->key ? field->key : "");
}

typedef struct {
    const uint8_t *data;   //  Body bytes, borrowed
    size_t size;           //  Body size
    size_t pos;            //  Read position
    bool build;            //  Build the message, or only check the body
    bool too_deep;         //  s_skip hit S_SKIP_DEPTH_MAX
    bool indexed;          //  top_keys holds every key of the body map
    uint32_t top_count;    //  Pairs in the body map, when indexed
    size_t top_keys[S_TOP_MAX];  //  Offset of each body key, when indexed
    size_t top_end;              //  Offset after the body map
    cw_msg_error_t error;  //  Error class of the first failure
    char *reason;          //  Caller's reason buffer
    size_t reason_size;
} s_reader_t;

static int s_fail (s_reader_t *reader,
                   const s_field_t *field,
                   const char *format,
                   ...) __attribute__ ((format (printf, 3, 4)));

//  Records a malformed-body failure naming field (or the body when
//  field is NULL). Always returns -1.
static int
s_fail (s_reader_t *reader, const s_field_t *field, const char *format, ...)
{
    reader->error = CW_MSG_MALFORMED;
    if (!reader->reason || reader->reason_size == 0)
        return -1;
    char problem[CW_MSG_REASON_SIZE];
    va_list args;
    va_start (args, format);
    vsnprintf (problem, sizeof (problem), format, args);
    va_end (args);
    if (field) {
        char path[S_FIELD_SIZE];
        s_field_text (field, path, sizeof (path));
        snprintf (reader->reason, reader->reason_size, "field \"%s\": %s",
                  path, problem);
    }
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
    //  Most items are one byte or a short string: skip those without
    //  reading them into an item (s_next would accept them the same way)
    if (reader->pos < reader->size) {
        uint8_t byte = reader->data[reader->pos];
        if (byte <= 0x7f || byte >= 0xe0 || byte == 0xc0 || byte == 0xc2
            || byte == 0xc3) {
            reader->pos++;
            return 0;
        }
        if (byte >= 0xa0 && byte <= 0xbf) {
            size_t length = byte & 0x1f;
            if (reader->size - reader->pos - 1 < length)
                return -1;
            reader->pos += 1 + length;
            return 0;
        }
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

//  Checks that the body is one complete value nested at most
//  S_SKIP_DEPTH_MAX deep, exactly as s_skip (reader, 0) does; when it is
//  a map of at most S_TOP_MAX pairs, also keeps the offset of each key,
//  so that s_map_index need not skip the values a second time.
static int
s_check_body (s_reader_t *reader)
{
    reader->pos = 0;
    uint8_t head = reader->size ? reader->data[0] : 0;
    if (!((head >= 0x80 && head <= 0x8f) || head == 0xde || head == 0xdf))
        return s_skip (reader, 0);
    s_item_t item;
    if (s_next (reader, &item))
        return -1;
    //  Each child takes at least one byte (as in s_skip)
    if (2 * (uint64_t) item.count > reader->size - reader->pos)
        return -1;
    bool indexed = item.count <= S_TOP_MAX;
    for (uint32_t pair = 0; pair < item.count; pair++) {
        if (indexed)
            reader->top_keys[pair] = reader->pos;
        if (s_skip (reader, 1) || s_skip (reader, 1))
            return -1;
    }
    reader->indexed = indexed;
    reader->top_count = item.count;
    reader->top_end = reader->pos;
    return 0;
}

//  Notes where the key just read (at pair) puts its value, if names
//  holds it: positions[i] gets the offset of names[i]'s value, and
//  *index_p is i (count when names does not hold the key). A repeated
//  known key is malformed.
static int
s_map_key (s_reader_t *reader,
           const s_field_t *field,
           uint32_t pair,
           const s_item_t *key,
           const char *const *names,
           size_t count,
           size_t *positions,
           size_t *index_p)
{
    *index_p = count;
    if (key->kind != S_STR)
        return s_fail (reader, field, "map key %u is %s, not a string", pair,
                       s_kind_names[key->kind]);
    for (size_t index = 0; index < count; index++) {
        const char *name = names[index];
        if (key->count == 0 || key->bytes[0] != (uint8_t) name[0]
            || key->count != strlen (name)
            || memcmp (key->bytes, name, key->count) != 0)
            continue;
        if (positions[index]) {
            s_field_t path = field ? s_child (field, name) : s_key (name);
            return s_fail (reader, &path, "duplicate key");
        }
        positions[index] = reader->pos;
        *index_p = index;
        break;
    }
    return 0;
}

//  Locates the known keys of the map at pos: positions[i] gets the
//  offset of names[i]'s value, or 0 when absent, and ends[i] (if ends is
//  not NULL) the offset after that value. Unknown keys are skipped; a
//  repeated known key is malformed. Leaves the read position after the
//  map. field names the map (NULL: the body).
static int
s_map_index (s_reader_t *reader,
             size_t pos,
             const s_field_t *field,
             const char *const *names,
             size_t count,
             size_t *positions,
             size_t *ends)
{
    assert (count <= S_KEYS_MAX);
    memset (positions, 0, count * sizeof (size_t));
    if (ends)
        memset (ends, 0, count * sizeof (size_t));
    s_item_t key;
    size_t index;
    if (pos == 0 && reader->indexed) {
        //  The body map: its keys were found by s_check_body
        for (uint32_t pair = 0; pair < reader->top_count; pair++) {
            reader->pos = reader->top_keys[pair];
            int rc = s_next (reader, &key);
            assert (rc == 0);
            (void) rc;
            if (s_map_key (reader, field, pair, &key, names, count, positions,
                           &index))
                return -1;
            if (ends && index < count)
                ends[index] = pair + 1 < reader->top_count
                                  ? reader->top_keys[pair + 1]
                                  : reader->top_end;
        }
        reader->pos = reader->top_end;
        return 0;
    }
    reader->pos = pos;
    s_item_t item;
    if (s_next (reader, &item))
        return s_fail (reader, field, "truncated");
    if (item.kind != S_MAP)
        return s_fail (reader, field, "expected a map, got %s",
                       s_kind_names[item.kind]);
    for (uint32_t pair = 0; pair < item.count; pair++) {
        if (s_next (reader, &key))
            return s_fail (reader, field, "truncated");
        if (s_map_key (reader, field, pair, &key, names, count, positions,
                       &index))
            return -1;
        if (s_skip (reader, 0))
            return s_fail (reader, field, "truncated");
        if (ends && index < count)
            ends[index] = reader->pos;
    }
    return 0;
}

static int
s_integer (s_reader_t *reader,
           size_t pos,
           s_field_t field,
           int64_t min,
           int64_t max,
           bool optional,
           int64_t *value_p)
{
    if (!pos)
        return optional ? 0 : s_fail (reader, &field, "missing");
    reader->pos = pos;
    s_item_t item;
    if (s_next (reader, &item))
        return s_fail (reader, &field, "truncated");
    if (item.kind == S_BIG)
        return s_fail (reader, &field, "integer out of range %lld to %lld",
                       (long long) min, (long long) max);
    if (item.kind != S_INT)
        return s_fail (reader, &field, "expected an integer, got %s",
                       s_kind_names[item.kind]);
    if (item.integer < min || item.integer > max)
        return s_fail (reader, &field, "%lld is out of range %lld to %lld",
                       (long long) item.integer, (long long) min,
                       (long long) max);
    *value_p = item.integer;
    return 0;
}

//  Checks a string item: 1..max bytes, UTF-8, no NUL.
//  The rules of every protocol string: 1 to max bytes of UTF-8, no NUL.
//  0, or -1 with the rule broken in reason.
static int
s_text_valid (const void *bytes, size_t count, size_t max, char *reason,
              size_t size)
{
    if (count == 0)
        snprintf (reason, size, "empty string");
    else
    if (count > max)
        snprintf (reason, size, "string of %zu bytes exceeds %zu", count, max);
    else
    if (memchr (bytes, 0, count))
        snprintf (reason, size, "string contains a NUL byte");
    else
    if (!cw_envelope_utf8_valid (bytes, count))
        snprintf (reason, size, "string is not valid UTF-8");
    else
        return 0;
    return -1;
}

int
cw_msg_name_check (const char *name, char *reason, size_t size)
{
    assert (name);
    return s_text_valid (name, strlen (name), CW_MSG_FLOW_MAX, reason, size);
}

static int
s_check_text (s_reader_t *reader,
              const s_item_t *item,
              const s_field_t *field,
              size_t max)
{
    if (item->kind != S_STR)
        return s_fail (reader, field, "expected a string, got %s",
                       s_kind_names[item->kind]);
    char why[64];
    if (s_text_valid (item->bytes, item->count, max, why, sizeof (why)))
        return s_fail (reader, field, "%s", why);
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

static bool
s_text_is (const s_item_t *item, const char *text)
{
    return item->count == strlen (text)
           && memcmp (item->bytes, text, item->count) == 0;
}

//  Reads and checks the string at pos without copying it; *item_p is
//  nil when an optional string is absent.
static int
s_text (s_reader_t *reader,
        size_t pos,
        s_field_t field,
        size_t max,
        bool optional,
        s_item_t *item_p)
{
    memset (item_p, 0, sizeof (*item_p));
    if (!pos)
        return optional ? 0 : s_fail (reader, &field, "missing");
    reader->pos = pos;
    if (s_next (reader, item_p))
        return s_fail (reader, &field, "truncated");
    return s_check_text (reader, item_p, &field, max);
}

//  s_text, then a copy into *text_p when the reader builds.
static int
s_string (s_reader_t *reader,
          size_t pos,
          s_field_t field,
          size_t max,
          bool optional,
          char **text_p)
{
    s_item_t item;
    if (s_text (reader, pos, field, max, optional, &item))
        return -1;
    if (pos && reader->build)
        *text_p = s_copy_text (&item);
    return 0;
}

static int
s_outcome (s_reader_t *reader,
           size_t pos,
           s_field_t field,
           cw_msg_outcome_t *outcome_p)
{
    s_item_t item;
    if (s_text (reader, pos, field, CW_MSG_TOKEN_MAX, false, &item))
        return -1;
    if (s_outcome_find ((const char *) item.bytes, item.count, outcome_p))
        return s_fail (reader, &field, "unknown outcome \"%.*s\"",
                       (int) item.count, (const char *) item.bytes);
    return 0;
}

//  Reads an array head at pos with min..max items; leaves the read
//  position on the first item.
static int
s_array (s_reader_t *reader,
         size_t pos,
         s_field_t field,
         size_t min,
         size_t max,
         size_t *count_p)
{
    if (!pos)
        return s_fail (reader, &field, "missing");
    reader->pos = pos;
    s_item_t item;
    if (s_next (reader, &item))
        return s_fail (reader, &field, "truncated");
    if (item.kind != S_ARRAY)
        return s_fail (reader, &field, "expected an array, got %s",
                       s_kind_names[item.kind]);
    if (item.count < min || item.count > max)
        return s_fail (reader, &field, "%u items, expected %zu to %zu",
                       item.count, min, max);
    *count_p = item.count;
    return 0;
}

//  The array of strings named name; *strings_p and *count_p are set only
//  when the reader builds.
static int
s_strings (s_reader_t *reader,
           size_t pos,
           const char *name,
           size_t min,
           size_t max,
           size_t item_max,
           char ***strings_p,
           size_t *count_p)
{
    size_t count;
    if (s_array (reader, pos, s_key (name), min, max, &count))
        return -1;
    char **strings = NULL;
    if (reader->build) {
        strings = (char **) calloc (count ? count : 1, sizeof (char *));
        assert (strings);
        //  Owned by the message from here on, so partial arrays are freed
        *strings_p = strings;
    }
    for (size_t index = 0; index < count; index++) {
        s_field_t field = s_item (name, (int64_t) index);
        s_item_t item;
        if (s_next (reader, &item))
            return s_fail (reader, &field, "truncated");
        if (s_check_text (reader, &item, &field, item_max))
            return -1;
        if (reader->build) {
            strings[index] = s_copy_text (&item);
            (*count_p)++;
        }
    }
    return 0;
}

//  -1, 0 or 1 as left is below, equal to or above right in byte order
static int
s_compare_bytes (const s_item_t *left, const s_item_t *right)
{
    uint32_t common = left->count < right->count ? left->count : right->count;
    int rc = common ? memcmp (left->bytes, right->bytes, common) : 0;
    if (rc)
        return rc < 0 ? -1 : 1;
    return (left->count > right->count) - (left->count < right->count);
}

//  Without a tree to look keys up in: true if key repeats one of the
//  first pairs keys of the map whose first key starts at first. Keys
//  in rising byte order (the canonical form, PROTOCOL.md §3) cannot
//  repeat, so the earlier keys are read again only when key does not
//  rise above previous. Keeps the read position.
static bool
s_key_repeated (s_reader_t *reader,
                size_t first,
                uint32_t pairs,
                const s_item_t *key,
                const s_item_t *previous)
{
    if (pairs == 0 || s_compare_bytes (key, previous) > 0)
        return false;
    size_t pos = reader->pos;
    reader->pos = first;
    bool repeated = false;
    for (uint32_t pair = 0; pair < pairs && !repeated; pair++) {
        s_item_t earlier;
        //  The body passed s_skip, so these reads cannot fail
        int rc = s_next (reader, &earlier);
        assert (rc == 0);
        repeated = s_compare_bytes (key, &earlier) == 0;
        rc = s_skip (reader, 0);
        assert (rc == 0);
        (void) rc;
    }
    reader->pos = pos;
    return repeated;
}

//  Reads any value as JSON (see PROTOCOL.md §3: no bin/ext, finite
//  floats, string keys, no duplicate keys, bounded depth) into *value_p
//  when the reader builds; the same checks when it does not.
static int
s_json_value (s_reader_t *reader,
              const s_field_t *field,
              int depth,
              json_t **value_p)
{
    bool build = reader->build;
    s_item_t item;
    if (s_next (reader, &item))
        return s_fail (reader, field, "truncated");
    json_t *value = NULL;
    switch (item.kind) {
        case S_NIL:
            if (build)
                value = json_null ();
            break;
        case S_BOOL:
            if (build)
                value = json_boolean (item.boolean);
            break;
        case S_INT:
            if (build)
                value = json_integer (item.integer);
            break;
        case S_BIG:
            return s_fail (reader, field, "integer above %lld",
                           (long long) INT64_MAX);
        case S_FLOAT:
            if (!isfinite (item.real))
                return s_fail (reader, field, "float is not finite");
            if (build)
                value = json_real (item.real);
            break;
        case S_STR:
            if (item.count > 0
                && s_check_text (reader, &item, field, CW_MSG_MAX_SIZE))
                return -1;
            //  Checked above: UTF-8 without NUL
            if (build)
                value = json_stringn_nocheck ((const char *) item.bytes,
                                              item.count);
            break;
        case S_BIN:
        case S_EXT:
            return s_fail (reader, field, "%s values are not allowed",
                           s_kind_names[item.kind]);
        case S_ARRAY:
        case S_MAP:
            if (depth >= CW_MSG_MAP_DEPTH_MAX)
                return s_fail (reader, field, "nesting deeper than %d levels",
                               CW_MSG_MAP_DEPTH_MAX);
            break;
    }
    if (item.kind == S_ARRAY) {
        if (build) {
            value = json_array ();
            assert (value);
        }
        for (uint32_t index = 0; index < item.count; index++) {
            json_t *element = NULL;
            if (s_json_value (reader, field, depth + 1, &element)) {
                json_decref (value);
                return -1;
            }
            if (build)
                json_array_append_new (value, element);
        }
    }
    else if (item.kind == S_MAP) {
        if (build) {
            value = json_object ();
            assert (value);
        }
        size_t first = reader->pos;
        s_item_t previous = {.kind = S_NIL};
        for (uint32_t pair = 0; pair < item.count; pair++) {
            s_item_t key;
            const char *problem = NULL;
            if (s_next (reader, &key))
                problem = "truncated";
            else if (key.kind != S_STR)
                problem = "map key is not a string";
            else if (key.count > CW_ENVELOPE_KEY_MAX || key.count == 0
                     || memchr (key.bytes, 0, key.count)
                     || !cw_envelope_utf8_valid (key.bytes, key.count))
                problem = "map key must be 1 to 255 bytes of UTF-8 without NUL";
            if (problem) {
                json_decref (value);
                return s_fail (reader, field, "%s", problem);
            }
            char name[CW_ENVELOPE_KEY_MAX + 1];
            memcpy (name, key.bytes, key.count);
            name[key.count] = 0;
            bool repeated =
                build ? json_object_get (value, name) != NULL
                      : s_key_repeated (reader, first, pair, &key, &previous);
            if (repeated) {
                json_decref (value);
                return s_fail (reader, field, "duplicate key \"%s\"", name);
            }
            previous = key;
            json_t *member = NULL;
            if (s_json_value (reader, field, depth + 1, &member)) {
                json_decref (value);
                return -1;
            }
            //  The key was checked above
            if (build)
                json_object_set_new_nocheck (value, name, member);
        }
    }
    if (build)
        *value_p = value;
    return 0;
}

static int
s_json_object (s_reader_t *reader,
               size_t pos,
               s_field_t field,
               bool optional,
               json_t **object_p)
{
    if (!pos)
        return optional ? 0 : s_fail (reader, &field, "missing");
    reader->pos = pos;
    if (reader->data[pos] < 0x80 || reader->data[pos] > 0x8f)
        if (reader->data[pos] != 0xde && reader->data[pos] != 0xdf) {
            s_item_t item;
            s_next (reader, &item);
            return s_fail (reader, &field, "expected a map, got %s",
                           s_kind_names[item.kind]);
        }
    return s_json_value (reader, &field, 0, object_p);
}

//  Decodes the envelope at pos (ending at end, or 0 if not known yet)
//  when the reader builds. When it only checks, the envelope is skipped:
//  checks run on cw_msg_encode's own output, whose envelopes
//  cw_envelope_append_msgpack wrote only after holding them to
//  cw_envelope_decode_msgpack's rules. Leaves the read position at end.
static int
s_envelope (s_reader_t *reader,
            size_t pos,
            size_t end,
            s_field_t field,
            cw_envelope_t **envelope_p)
{
    if (!pos)
        return s_fail (reader, &field, "missing");
    reader->pos = pos;
    if (end)
        reader->pos = end;
    else if (s_skip (reader, 0))
        return s_fail (reader, &field, "truncated");
    if (!reader->build)
        return 0;
    char problem[CW_ENVELOPE_REASON_SIZE];
    *envelope_p = cw_envelope_decode_msgpack (
        reader->data + pos, reader->pos - pos, problem, sizeof (problem));
    if (!*envelope_p)
        return s_fail (reader, &field, "%s", problem);
    return 0;
}

//  ---------------------------------------------------------------------
//  Decoding bodies, one function per command; the read position is
//  free (each getter seeks to the value it reads). When the reader only
//  checks, body is scratch: getters fill in integers but allocate
//  nothing, and arrays of structs use one scratch item.

#define S_ID_MAX INT64_MAX

//  targets is optional, but when present holds at least one name (the
//  encoder leaves it out when there are none)
static int
s_decode_ready (s_reader_t *reader, cw_msg_ready_t *body)
{
    const char *names[] = {"flows", "targets", "credit", "name"};
    size_t at[4];
    if (s_map_index (reader, 0, NULL, names, 4, at, NULL)
        || s_strings (reader, at[0], "flows", 1, CW_MSG_FLOWS_MAX,
                      CW_MSG_FLOW_MAX, &body->flows, &body->flows_count)
        || (at[1]
            && s_strings (reader, at[1], "targets", 1, CW_MSG_TARGETS_MAX,
                          CW_MSG_FLOW_MAX, &body->targets,
                          &body->targets_count))
        || s_integer (reader, at[2], s_key ("credit"), 1, CW_MSG_CREDIT_MAX,
                      false, &body->credit)
        || s_string (reader, at[3], s_key ("name"), CW_MSG_NAME_MAX, true,
                     &body->name))
        return -1;
    return 0;
}

static int
s_decode_job (s_reader_t *reader, cw_msg_job_t *body)
{
    const char *names[] = {"job_id", "attempt",     "flow",
                           "target", "deadline_ms", "envelope"};
    size_t at[6];
    size_t ends[6];
    if (s_map_index (reader, 0, NULL, names, 6, at, ends)
        || s_integer (reader, at[0], s_key ("job_id"), 0, S_ID_MAX, false,
                      &body->job_id)
        || s_integer (reader, at[1], s_key ("attempt"), 1, INT32_MAX, false,
                      &body->attempt)
        || s_string (reader, at[2], s_key ("flow"), CW_MSG_FLOW_MAX, false,
                     &body->flow)
        || s_string (reader, at[3], s_key ("target"), CW_MSG_FLOW_MAX, false,
                     &body->target)
        || s_integer (reader, at[4], s_key ("deadline_ms"), 0, INT64_MAX,
                      false, &body->deadline_ms)
        || s_envelope (reader, at[5], ends[5], s_key ("envelope"),
                       &body->envelope))
        return -1;
    return 0;
}

//  The fields RESULT entries and REPLY share; parent names the map.
static int
s_decode_outcome_fields (s_reader_t *reader,
                         const s_field_t *parent,
                         const size_t *at,
                         cw_msg_outcome_t *outcome,
                         int64_t *http_status,
                         char **error,
                         int64_t *duration_ms,
                         json_t **response)
{
    if (s_outcome (reader, at[0], s_child (parent, "outcome"), outcome)
        || s_integer (reader, at[1], s_child (parent, "http_status"), 0,
                      CW_MSG_HTTP_STATUS_MAX, false, http_status)
        || s_string (reader, at[2], s_child (parent, "error"),
                     CW_MSG_TEXT_MAX, true, error)
        || s_integer (reader, at[3], s_child (parent, "duration_ms"), 0,
                      INT64_MAX, false, duration_ms)
        || s_json_object (reader, at[4], s_child (parent, "response"), true,
                          response))
        return -1;
    return 0;
}

static int
s_decode_result (s_reader_t *reader, cw_msg_results_t *body)
{
    const char *names[] = {"results", "credit"};
    size_t at[2];
    size_t count;
    if (s_map_index (reader, 0, NULL, names, 2, at, NULL)
        || s_integer (reader, at[1], s_key ("credit"), 1, CW_MSG_CREDIT_MAX,
                      true, &body->credit)
        || s_array (reader, at[0], s_key ("results"), 1, CW_MSG_RESULTS_MAX,
                    &count))
        return -1;
    if (reader->build) {
        body->results =
            (cw_msg_result_t *) calloc (count, sizeof (cw_msg_result_t));
        assert (body->results);
    }
    cw_msg_result_t scratch;
    const char *keys[] = {"outcome",     "http_status",   "error",
                          "duration_ms", "response",      "job_id",
                          "attempt",     "retry_after_ms"};
    for (size_t index = 0; index < count; index++) {
        s_field_t parent = s_item ("results", (int64_t) index);
        size_t key_at[8];
        if (s_map_index (reader, reader->pos, &parent, keys, 8, key_at, NULL))
            return -1;
        size_t next = reader->pos;
        cw_msg_result_t *result = &scratch;
        if (reader->build) {
            result = &body->results[index];
            body->results_count++;
        }
        s_result_init (result);
        if (s_decode_outcome_fields (reader, &parent, key_at, &result->outcome,
                                     &result->http_status, &result->error,
                                     &result->duration_ms, &result->response)
            || s_integer (reader, key_at[5], s_child (&parent, "job_id"), 0,
                          S_ID_MAX, false, &result->job_id)
            || s_integer (reader, key_at[6], s_child (&parent, "attempt"), 1,
                          INT32_MAX, false, &result->attempt)
            || s_integer (reader, key_at[7],
                          s_child (&parent, "retry_after_ms"), 0, INT64_MAX,
                          true, &result->retry_after_ms))
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
    if (s_map_index (reader, 0, NULL, names, 1, at, NULL)
        || s_integer (reader, at[0], s_key ("credit"), 1, CW_MSG_CREDIT_MAX,
                      false, &body->credit))
        return -1;
    return 0;
}

static int
s_decode_disconnect (s_reader_t *reader, cw_msg_disconnect_t *body)
{
    const char *names[] = {"reason"};
    size_t at[1];
    if (s_map_index (reader, 0, NULL, names, 1, at, NULL)
        || s_string (reader, at[0], s_key ("reason"), CW_MSG_TEXT_MAX, false,
                     &body->reason))
        return -1;
    return 0;
}

static int
s_decode_call (s_reader_t *reader, cw_msg_call_t *body)
{
    const char *names[] = {"call_id", "flow", "deadline_ms", "envelope"};
    size_t at[4];
    size_t ends[4];
    if (s_map_index (reader, 0, NULL, names, 4, at, ends)
        || s_integer (reader, at[0], s_key ("call_id"), 0, S_ID_MAX, false,
                      &body->call_id)
        || s_string (reader, at[1], s_key ("flow"), CW_MSG_FLOW_MAX, false,
                     &body->flow)
        || s_integer (reader, at[2], s_key ("deadline_ms"), 0, INT64_MAX,
                      false, &body->deadline_ms)
        || s_envelope (reader, at[3], ends[3], s_key ("envelope"),
                       &body->envelope))
        return -1;
    return 0;
}

static int
s_decode_reply (s_reader_t *reader, cw_msg_reply_t *body)
{
    const char *names[] = {"outcome",     "http_status", "error",
                           "duration_ms", "response",    "call_id"};
    size_t at[6];
    s_field_t body_field = s_item (NULL, -1);
    if (s_map_index (reader, 0, NULL, names, 6, at, NULL)
        || s_integer (reader, at[5], s_key ("call_id"), 0, S_ID_MAX, false,
                      &body->call_id)
        || s_decode_outcome_fields (reader, &body_field, at, &body->outcome,
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
    if (s_map_index (reader, 0, NULL, names, 3, at, NULL)
        || s_string (reader, at[0], s_key ("code"), CW_MSG_TOKEN_MAX, false,
                     &body->code)
        || s_string (reader, at[1], s_key ("message"), CW_MSG_TEXT_MAX, false,
                     &body->message)
        || s_integer (reader, at[2], s_key ("command"), 0, 255, true,
                      &body->command))
        return -1;
    return 0;
}

static int
s_decode_publish (s_reader_t *reader, cw_msg_publish_t *body)
{
    const char *names[] = {"batch_id", "island", "events"};
    size_t at[3];
    size_t count;
    s_item_t island;
    if (s_map_index (reader, 0, NULL, names, 3, at, NULL)
        || s_integer (reader, at[0], s_key ("batch_id"), 0, S_ID_MAX, false,
                      &body->batch_id)
        || s_text (reader, at[1], s_key ("island"), CW_MSG_TOKEN_MAX, false,
                   &island))
        return -1;
    if (!s_island_valid ((const char *) island.bytes, island.count)) {
        s_field_t field = s_key ("island");
        return s_fail (reader, &field, "must be 1 to %d of a-z 0-9 _ -",
                       CW_MSG_TOKEN_MAX);
    }
    if (reader->build)
        body->island = s_copy_text (&island);
    if (s_array (reader, at[2], s_key ("events"), 1, CW_MSG_EVENTS_MAX,
                 &count))
        return -1;
    if (reader->build) {
        body->events =
            (cw_envelope_t **) calloc (count, sizeof (cw_envelope_t *));
        assert (body->events);
    }
    for (size_t index = 0; index < count; index++) {
        //  s_envelope leaves the read position after the envelope
        cw_envelope_t *envelope = NULL;
        if (s_envelope (reader, reader->pos, 0,
                        s_item ("events", (int64_t) index), &envelope))
            return -1;
        if (reader->build)
            body->events[body->events_count++] = envelope;
    }
    return 0;
}

static int
s_decode_ack (s_reader_t *reader, cw_msg_ack_t *body)
{
    const char *names[] = {"batch_id", "accepted", "duplicates", "rejected"};
    size_t at[4];
    size_t count;
    if (s_map_index (reader, 0, NULL, names, 4, at, NULL)
        || s_integer (reader, at[0], s_key ("batch_id"), 0, S_ID_MAX, false,
                      &body->batch_id)
        || s_strings (reader, at[1], "accepted", 0, CW_MSG_EVENTS_MAX,
                      CW_MSG_KEY_MAX, &body->accepted, &body->accepted_count)
        || s_strings (reader, at[2], "duplicates", 0, CW_MSG_EVENTS_MAX,
                      CW_MSG_KEY_MAX, &body->duplicates,
                      &body->duplicates_count)
        || s_array (reader, at[3], s_key ("rejected"), 0, CW_MSG_EVENTS_MAX,
                    &count))
        return -1;
    if (reader->build) {
        body->rejected = (cw_msg_rejection_t *) calloc (
            count ? count : 1, sizeof (cw_msg_rejection_t));
        assert (body->rejected);
    }
    cw_msg_rejection_t scratch = {NULL, NULL};
    const char *keys[] = {"key", "reason"};
    for (size_t index = 0; index < count; index++) {
        s_field_t parent = s_item ("rejected", (int64_t) index);
        size_t key_at[2];
        if (s_map_index (reader, reader->pos, &parent, keys, 2, key_at, NULL))
            return -1;
        size_t next = reader->pos;
        cw_msg_rejection_t *rejection = &scratch;
        if (reader->build) {
            rejection = &body->rejected[index];
            body->rejected_count++;
        }
        if (s_string (reader, key_at[0], s_child (&parent, "key"),
                      CW_MSG_KEY_MAX, false, &rejection->key)
            || s_string (reader, key_at[1], s_child (&parent, "reason"),
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
    if (s_map_index (reader, 0, NULL, names, 3, at, NULL)
        || s_integer (reader, at[0], s_key ("request_id"), 0, S_ID_MAX, false,
                      &body->request_id)
        || s_string (reader, at[1], s_key ("op"), CW_MSG_TOKEN_MAX, false,
                     &body->op)
        || s_json_object (reader, at[2], s_key ("args"), false, &body->args))
        return -1;
    return 0;
}

static int
s_decode_response (s_reader_t *reader, cw_msg_response_t *body)
{
    const char *names[] = {"request_id", "status", "result", "error"};
    size_t at[4];
    s_item_t status;
    if (s_map_index (reader, 0, NULL, names, 4, at, NULL)
        || s_integer (reader, at[0], s_key ("request_id"), 0, S_ID_MAX, false,
                      &body->request_id)
        || s_text (reader, at[1], s_key ("status"), CW_MSG_TOKEN_MAX, false,
                   &status)
        || s_json_object (reader, at[2], s_key ("result"), true,
                          &body->result))
        return -1;
    bool failed = s_text_is (&status, "error");
    if (!failed && !s_text_is (&status, "ok")) {
        s_field_t field = s_key ("status");
        return s_fail (reader, &field, "unknown status \"%.*s\"",
                       (int) status.count, (const char *) status.bytes);
    }
    s_field_t error = s_item ("error", -1);
    if (failed && !at[3])
        return s_fail (reader, &error, "missing (status is \"error\")");
    if (!failed && at[3])
        return s_fail (reader, &error, "not allowed when status is \"ok\"");
    if (failed) {
        const char *keys[] = {"code", "message", "field"};
        size_t key_at[3];
        if (s_map_index (reader, at[3], &error, keys, 3, key_at, NULL)
            || s_string (reader, key_at[0], s_child (&error, "code"),
                         CW_MSG_TOKEN_MAX, false, &body->error_code)
            || s_string (reader, key_at[1], s_child (&error, "message"),
                         CW_MSG_TEXT_MAX, false, &body->error_message)
            || s_string (reader, key_at[2], s_child (&error, "field"),
                         CW_MSG_FIELD_MAX, true, &body->error_field))
            return -1;
    }
    return 0;
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

//  Reads count frames by every rule of PROTOCOL.md §3-4: the one
//  implementation of them, for the decoder and the encoder's check. With
//  build set, makes the message (*msg_p). Without, only checks, and
//  allocates nothing: nested envelopes are skipped, not decoded (see
//  s_envelope). Returns 0, or -1 with *error_p (may be NULL) and reason.
static int
s_read (const cw_msg_frame_t *frames,
        size_t count,
        bool build,
        cw_msg_t **msg_p,
        cw_msg_error_t *error_p,
        char *reason,
        size_t reason_size)
{
    if (error_p)
        *error_p = CW_MSG_VALID;
    if (reason && reason_size)
        reason[0] = 0;
    if (count != CW_MSG_FRAMES) {
        s_frame_fail (CW_MSG_MALFORMED, error_p, reason, reason_size,
                      "expected %d frames, got %zu", CW_MSG_FRAMES, count);
        return -1;
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
        return -1;
    }
    if (frames[1].size != 1) {
        s_frame_fail (CW_MSG_MALFORMED, error_p, reason, reason_size,
                      "command frame has %zu bytes, expected 1",
                      frames[1].size);
        return -1;
    }
    int command = *(const uint8_t *) frames[1].data;
    if (!cw_msg_command_valid ((cw_msg_protocol_t) protocol, command)) {
        s_frame_fail (CW_MSG_UNKNOWN_COMMAND, error_p, reason, reason_size,
                      "unknown command 0x%02x for protocol %s", command,
                      s_protocol_ids[protocol]);
        return -1;
    }
    if (frames[2].size > CW_MSG_MAX_SIZE) {
        s_frame_fail (CW_MSG_TOO_LARGE, error_p, reason, reason_size,
                      "body of %zu bytes exceeds %d", frames[2].size,
                      CW_MSG_MAX_SIZE);
        return -1;
    }
    s_reader_t reader = {.data = (const uint8_t *) frames[2].data,
                         .size = frames[2].size,
                         .build = build,
                         .reason = reason,
                         .reason_size = reason_size};
    const char *names[] = {"v"};
    size_t at[1];
    int64_t version;
    int rc = -1;
    if (s_check_body (&reader)) {
        if (reader.too_deep)
            s_fail (&reader, NULL, "nesting deeper than %d levels",
                    S_SKIP_DEPTH_MAX);
        else
            s_fail (&reader, NULL, "not one complete msgpack value");
    }
    else if (reader.pos != reader.size)
        s_fail (&reader, NULL, "%zu bytes after the map",
                reader.size - reader.pos);
    else if (s_map_index (&reader, 0, NULL, names, 1, at, NULL)
             || s_integer (&reader, at[0], s_key ("v"), 1, INT64_MAX, false,
                           &version))
        ;  //  Reason written
    else if (version != CW_MSG_VERSION) {
        s_field_t field = s_key ("v");
        s_fail (&reader, &field, "unsupported body version %lld (supported: %d)",
                (long long) version, CW_MSG_VERSION);
        reader.error = CW_MSG_UNSUPPORTED_VERSION;
    }
    else if (build) {
        cw_msg_t *msg = cw_msg_new ((cw_msg_protocol_t) protocol,
                                    (cw_msg_command_t) command);
        rc = s_decode_body (&reader, msg);
        if (rc == 0)
            *msg_p = msg;
        else
            cw_msg_destroy (&msg);
    }
    else {
        //  Nothing the getters write here needs freeing (see above)
        cw_msg_t scratch;
        memset (&scratch, 0, sizeof (scratch));
        scratch.protocol = (cw_msg_protocol_t) protocol;
        scratch.command = (cw_msg_command_t) command;
        rc = s_decode_body (&reader, &scratch);
    }
    if (rc && error_p)
        *error_p = reader.error;
    return rc;
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
    cw_msg_t *msg = NULL;
    s_read (frames, count, true, &msg, error_p, reason, reason_size);
    return msg;
}

//  ---------------------------------------------------------------------
//  Encoding

#define S_BODY_ALLOC 1024  //  First allocation of a body; grows by doubling

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

//  Writes the envelope in place, in its canonical form; field names it
//  in a reason.
static void
s_put_envelope (s_writer_t *writer,
                s_field_t field,
                const cw_envelope_t *envelope)
{
    if (writer->failed)
        return;
    char path[S_FIELD_SIZE];
    if (!envelope) {
        writer->failed = true;
        s_field_text (&field, path, sizeof (path));
        snprintf (writer->reason, writer->reason_size, "field \"%s\": missing",
                  path);
        return;
    }
    char problem[CW_ENVELOPE_REASON_SIZE];
    if (cw_envelope_append_msgpack (envelope, &writer->buffer, problem,
                                    sizeof (problem))) {
        writer->failed = true;
        s_field_text (&field, path, sizeof (path));
        snprintf (writer->reason, writer->reason_size, "field \"%s\": %s",
                  path, problem);
        return;
    }
    if (writer->buffer.size > CW_MSG_MAX_SIZE) {
        writer->failed = true;
        s_field_text (&field, path, sizeof (path));
        snprintf (writer->reason, writer->reason_size,
                  "body exceeds %d bytes at field \"%s\"", CW_MSG_MAX_SIZE,
                  path);
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
    size_t pairs = 1;
    switch (self->command) {
        case CW_MSG_READY:
            pairs += 2 + (self->ready.targets_count > 0)
                     + (self->ready.name != NULL);
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
            if (self->ready.targets_count > 0)
                s_put_strings (writer, "targets", self->ready.targets,
                               self->ready.targets_count);
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
            s_put_envelope (writer, s_key ("envelope"), self->job.envelope);
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
            s_put_envelope (writer, s_key ("envelope"), self->call.envelope);
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
                 index++)
                s_put_envelope (writer, s_item ("events", (int64_t) index),
                                self->publish.events[index]);
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
    //  Most bodies fit the first allocation (msgpack-c would take 8 KiB)
    msgpack_sbuffer_init (&writer.buffer);
    writer.buffer.data = (char *) malloc (S_BODY_ALLOC);
    assert (writer.buffer.data);
    writer.buffer.alloc = S_BODY_ALLOC;
    msgpack_packer_init (&writer.packer, &writer.buffer, msgpack_sbuffer_write);
    s_encode_body (&writer, self);
    if (!writer.failed && writer.buffer.size > CW_MSG_MAX_SIZE) {
        writer.failed = true;
        snprintf (reason, reason_size, "body of %zu bytes exceeds %d",
                  writer.buffer.size, CW_MSG_MAX_SIZE);
    }
    //  The receiver's rules, over the bytes just written: never send what
    //  a peer refuses. The check builds nothing (s_read).
    uint8_t command = (uint8_t) self->command;
    cw_msg_frame_t written[CW_MSG_FRAMES] = {
        {(void *) s_protocol_ids[self->protocol], CW_MSG_PROTOCOL_SIZE},
        {&command, 1},
        {writer.buffer.data, writer.buffer.size}};
    if (writer.failed
        || s_read (written, CW_MSG_FRAMES, false, NULL, NULL, reason,
                   reason_size)) {
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
    frames->frame[1].data = s_copy_bytes (&command, 1);
    frames->frame[1].size = 1;
    frames->frame[2].size = writer.buffer.size;
    frames->frame[2].data = msgpack_sbuffer_release (&writer.buffer);
    return frames;
}
