/*  =========================================================================
    check_cw_msg - the CWP/1 wire codec: round trips, strict decoding,
    role table
    =========================================================================
*/
#include "cw_msg.h"

#include <check.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACEPARENT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static const cw_msg_command_t s_commands[] = {
    CW_MSG_READY,     CW_MSG_JOB,        CW_MSG_RESULT, CW_MSG_CREDIT,
    CW_MSG_HEARTBEAT, CW_MSG_DISCONNECT, CW_MSG_CALL,   CW_MSG_REPLY,
    CW_MSG_ERROR,     CW_MSG_PUBLISH,    CW_MSG_ACK,    CW_MSG_REQUEST,
    CW_MSG_RESPONSE};
#define S_COMMANDS (sizeof (s_commands) / sizeof (s_commands[0]))

static cw_msg_protocol_t
s_protocol_of (cw_msg_command_t command)
{
    if (cw_msg_command_valid (CW_MSG_WORKER, (int) command))
        return CW_MSG_WORKER;
    if (cw_msg_command_valid (CW_MSG_RELAY, (int) command))
        return CW_MSG_RELAY;
    return CW_MSG_CLIENT;
}

static cw_envelope_t *
s_envelope (const char *key, size_t padding)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, "evt-1");
    cw_envelope_set_source (envelope, "/webshop/orders");
    cw_envelope_set_type (envelope, "order.created.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123Z");
    cw_envelope_set_tenant_id (envelope, "acme");
    cw_envelope_set_correlation_id (envelope, "corr-9");
    cw_envelope_set_traceparent (envelope, TRACEPARENT);
    cw_envelope_set_idempotency_key (envelope, key);
    json_t *data = json_pack ("{s:s, s:i, s:f}", "orderId", "o-1", "total",
                              2975, "ratio", 0.25);
    if (padding) {
        char *pad = malloc (padding + 1);
        memset (pad, 'x', padding);
        pad[padding] = 0;
        json_object_set_new (data, "pad", json_string (pad));
        free (pad);
    }
    cw_envelope_set_data (envelope, &data);
    return envelope;
}

//  A message of every command, with every optional field (full) or none
static cw_msg_t *
s_build (cw_msg_command_t command, bool full)
{
    cw_msg_t *msg = cw_msg_new (s_protocol_of (command), command);
    switch (command) {
        case CW_MSG_READY:
            cw_msg_flow_add (msg, "customer.upsert");
            if (full) {
                cw_msg_flow_add (msg, "http.generic");
                msg->ready.name = strdup ("host-1/4242");
            }
            msg->ready.credit = full ? 4096 : 1;
            break;
        case CW_MSG_JOB:
            msg->job.job_id = full ? INT64_MAX : 0;
            msg->job.attempt = full ? 7 : 1;
            msg->job.flow = strdup ("order.created");
            msg->job.target = strdup ("erp");
            msg->job.deadline_ms = full ? 10000 : 0;
            msg->job.envelope = s_envelope ("order:acme:o-1:1", 0);
            break;
        case CW_MSG_RESULT: {
            cw_msg_result_t *result = cw_msg_result_add (msg);
            result->job_id = 42;
            result->attempt = 1;
            result->outcome = CW_MSG_OUTCOME_OK;
            result->http_status = 201;
            result->duration_ms = 12;
            if (full) {
                result->response = json_pack ("{s:s, s:[i, f, n, b]}", "erpId",
                                              "E-9", "list", -5, 1.5, 0);
                result = cw_msg_result_add (msg);
                result->job_id = 43;
                result->attempt = 3;
                result->outcome = CW_MSG_OUTCOME_TRANSIENT;
                result->http_status = 0;
                result->error = strdup ("timeout after 10000 ms");
                result->duration_ms = 10000;
                result->retry_after_ms = 2000;
                msg->result.credit = 2;
            }
            break;
        }
        case CW_MSG_CREDIT:
            msg->credit.credit = full ? 4096 : 1;
            break;
        case CW_MSG_HEARTBEAT:
            break;
        case CW_MSG_DISCONNECT:
            msg->disconnect.reason = strdup (full ? "shutting down" : "x");
            break;
        case CW_MSG_CALL:
            msg->call.call_id = 9;
            msg->call.flow = strdup ("document.download");
            msg->call.deadline_ms = 5000;
            msg->call.envelope = s_envelope ("doc:acme:d-1:1", 0);
            break;
        case CW_MSG_REPLY:
            msg->reply.call_id = 9;
            msg->reply.outcome =
                full ? CW_MSG_OUTCOME_VERSION : CW_MSG_OUTCOME_DUPLICATE;
            msg->reply.http_status = full ? 409 : 0;
            msg->reply.duration_ms = 3;
            if (full) {
                msg->reply.error = strdup ("contract version 2 unknown");
                msg->reply.response =
                    json_pack ("{s:{s:s}}", "b", "a", "caf\xc3\xa9");
            }
            break;
        case CW_MSG_ERROR:
            msg->error.code = strdup ("forbidden");
            msg->error.message = strdup ("command PUBLISH outside role");
            if (full)
                msg->error.command = CW_MSG_PUBLISH;
            break;
        case CW_MSG_PUBLISH: {
            msg->publish.batch_id = 77;
            msg->publish.island = strdup ("shop");
            cw_envelope_t *envelope = s_envelope ("order:acme:o-1:1", 0);
            cw_msg_event_add (msg, &envelope);
            if (full) {
                envelope = s_envelope ("order:acme:o-2:1", 0);
                cw_msg_event_add (msg, &envelope);
            }
            break;
        }
        case CW_MSG_ACK:
            msg->ack.batch_id = 77;
            if (full) {
                cw_msg_accepted_add (msg, "order:acme:o-1:1");
                cw_msg_duplicate_add (msg, "order:acme:o-2:1");
                cw_msg_rejected_add (msg, "order:acme:o-3:1",
                                     "field \"data.total\": missing");
            }
            break;
        case CW_MSG_REQUEST:
            msg->request.request_id = 5;
            msg->request.op = strdup ("dlq.list");
            if (full)
                msg->request.args = json_pack ("{s:i, s:s}", "limit", 50,
                                               "flow", "order.created");
            break;
        case CW_MSG_RESPONSE:
            msg->response.request_id = 5;
            if (full) {
                msg->response.error_code = strdup ("invalid_argument");
                msg->response.error_message = strdup ("limit too large");
                msg->response.error_field = strdup ("args.limit");
            }
            else
                msg->response.result = json_pack ("{s:[]}", "jobs");
            break;
    }
    return msg;
}

static cw_msg_frames_t *
s_encode (const cw_msg_t *msg)
{
    char reason[CW_MSG_REASON_SIZE] = "";
    cw_msg_frames_t *frames = cw_msg_encode (msg, reason, sizeof (reason));
    ck_assert_msg (frames != NULL, "%s: %s", cw_msg_command_name (msg->command),
                   reason);
    return frames;
}

//  Decodes frames that must be rejected with error; returns the reason
static void
s_rejected (const cw_msg_frame_t *frames,
            size_t count,
            cw_msg_error_t expected,
            const char *reason_part)
{
    char reason[CW_MSG_REASON_SIZE] = "";
    cw_msg_error_t error = CW_MSG_VALID;
    cw_msg_t *msg =
        cw_msg_decode (frames, count, &error, reason, sizeof (reason));
    ck_assert_msg (msg == NULL, "accepted, expected %s",
                   reason_part ? reason_part : "");
    ck_assert_msg (error == expected, "error %s, expected %s (%s)",
                   cw_msg_error_name (error), cw_msg_error_name (expected),
                   reason);
    ck_assert_msg (strlen (reason) > 0, "empty reason");
    if (reason_part)
        ck_assert_msg (strstr (reason, reason_part) != NULL,
                       "reason \"%s\" lacks \"%s\"", reason, reason_part);
}

//  Three frames around a body the test packed itself
static void
s_frames_for (cw_msg_command_t command,
              const msgpack_sbuffer *body,
              cw_msg_frame_t *frames,
              uint8_t *command_byte)
{
    *command_byte = (uint8_t) command;
    frames[0].data = (void *) cw_msg_protocol_id (s_protocol_of (command));
    frames[0].size = CW_MSG_PROTOCOL_SIZE;
    frames[1].data = command_byte;
    frames[1].size = 1;
    frames[2].data = body->data;
    frames[2].size = body->size;
}

START_TEST (test_round_trip)
{
    for (size_t index = 0; index < S_COMMANDS; index++)
        for (int full = 0; full < 2; full++) {
            cw_msg_t *msg = s_build (s_commands[index], full);
            cw_msg_frames_t *frames = s_encode (msg);
            ck_assert_uint_eq (frames->count, 3);
            char reason[CW_MSG_REASON_SIZE] = "";
            cw_msg_error_t error;
            cw_msg_t *copy = cw_msg_decode (frames->frame, frames->count,
                                            &error, reason, sizeof (reason));
            ck_assert_msg (copy != NULL, "%s: %s",
                           cw_msg_command_name (msg->command), reason);
            ck_assert_int_eq (error, CW_MSG_VALID);
            ck_assert_int_eq (copy->command, msg->command);
            ck_assert_int_eq (copy->protocol, msg->protocol);
            cw_msg_frames_t *again = s_encode (copy);
            for (size_t frame = 0; frame < 3; frame++) {
                ck_assert_uint_eq (again->frame[frame].size,
                                   frames->frame[frame].size);
                ck_assert_int_eq (memcmp (again->frame[frame].data,
                                          frames->frame[frame].data,
                                          frames->frame[frame].size),
                                  0);
            }
            cw_msg_frames_destroy (&again);
            cw_msg_frames_destroy (&frames);
            ck_assert_ptr_null (frames);
            cw_msg_destroy (&copy);
            cw_msg_destroy (&msg);
            ck_assert_ptr_null (msg);
            cw_msg_destroy (&msg);
        }
}
END_TEST

START_TEST (test_decoded_fields)
{
    cw_msg_t *msg = s_build (CW_MSG_RESULT, true);
    cw_msg_frames_t *frames = s_encode (msg);
    cw_msg_t *copy = cw_msg_decode (frames->frame, 3, NULL, NULL, 0);
    ck_assert_ptr_nonnull (copy);
    ck_assert_uint_eq (copy->result.results_count, 2);
    ck_assert_int_eq (copy->result.credit, 2);
    cw_msg_result_t *first = &copy->result.results[0];
    ck_assert_int_eq (first->job_id, 42);
    ck_assert_int_eq (first->outcome, CW_MSG_OUTCOME_OK);
    ck_assert_int_eq (first->retry_after_ms, -1);
    ck_assert_ptr_null (first->error);
    ck_assert_str_eq (
        json_string_value (json_object_get (first->response, "erpId")), "E-9");
    cw_msg_result_t *second = &copy->result.results[1];
    ck_assert_int_eq (second->outcome, CW_MSG_OUTCOME_TRANSIENT);
    ck_assert_str_eq (second->error, "timeout after 10000 ms");
    ck_assert_int_eq (second->retry_after_ms, 2000);
    ck_assert_ptr_null (second->response);
    cw_msg_destroy (&copy);
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (&msg);

    msg = s_build (CW_MSG_JOB, true);
    frames = s_encode (msg);
    copy = cw_msg_decode (frames->frame, 3, NULL, NULL, 0);
    ck_assert_int_eq (copy->job.job_id, INT64_MAX);
    ck_assert_str_eq (copy->job.target, "erp");
    ck_assert_str_eq (cw_envelope_idempotency_key (copy->job.envelope),
                      "order:acme:o-1:1");
    ck_assert_str_eq (cw_envelope_traceparent (copy->job.envelope),
                      TRACEPARENT);
    cw_msg_destroy (&copy);
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (&msg);

    msg = s_build (CW_MSG_READY, false);
    frames = s_encode (msg);
    copy = cw_msg_decode (frames->frame, 3, NULL, NULL, 0);
    ck_assert_uint_eq (copy->ready.flows_count, 1);
    ck_assert_str_eq (copy->ready.flows[0], "customer.upsert");
    ck_assert_ptr_null (copy->ready.name);
    cw_msg_destroy (&copy);
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (&msg);

    //  REQUEST without args sends {}
    msg = s_build (CW_MSG_REQUEST, false);
    frames = s_encode (msg);
    copy = cw_msg_decode (frames->frame, 3, NULL, NULL, 0);
    ck_assert (json_is_object (copy->request.args));
    ck_assert_uint_eq (json_object_size (copy->request.args), 0);
    cw_msg_destroy (&copy);
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (&msg);
}
END_TEST

START_TEST (test_names)
{
    ck_assert_str_eq (cw_msg_command_name (CW_MSG_RESPONSE), "RESPONSE");
    ck_assert_str_eq (cw_msg_command_name ((cw_msg_command_t) 0x55), "?");
    ck_assert_str_eq (cw_msg_protocol_id (CW_MSG_RELAY), "CWR01");
    ck_assert_str_eq (cw_msg_outcome_name (CW_MSG_OUTCOME_DUPLICATE),
                      "duplicate");
    cw_msg_outcome_t outcome;
    ck_assert_int_eq (cw_msg_outcome_parse ("version", &outcome), 0);
    ck_assert_int_eq (outcome, CW_MSG_OUTCOME_VERSION);
    ck_assert_int_eq (cw_msg_outcome_parse ("okay", &outcome), -1);
    ck_assert_str_eq (cw_msg_error_name (CW_MSG_TOO_LARGE), "too_large");
    ck_assert_str_eq (cw_msg_error_code (CW_MSG_UNSUPPORTED_VERSION),
                      "unsupported_version");
    ck_assert_str_eq (cw_msg_error_code (CW_MSG_UNKNOWN_COMMAND), "malformed");
    ck_assert_int_eq (cw_msg_direction (CW_MSG_JOB), CW_MSG_TO_PEER);
    ck_assert_int_eq (cw_msg_direction (CW_MSG_RESULT), CW_MSG_TO_BROKER);
    ck_assert_int_eq (cw_msg_direction (CW_MSG_HEARTBEAT), CW_MSG_BOTH_WAYS);
}
END_TEST

START_TEST (test_truncated)
{
    for (size_t index = 0; index < S_COMMANDS; index++) {
        cw_msg_t *msg = s_build (s_commands[index], true);
        cw_msg_frames_t *frames = s_encode (msg);
        for (size_t frame = 0; frame < 3; frame++) {
            size_t size = frames->frame[frame].size;
            for (size_t prefix = 0; prefix < size; prefix++) {
                //  A private copy of exactly prefix bytes, for ASan
                cw_msg_frame_t cut[3];
                memcpy (cut, frames->frame, sizeof (cut));
                void *bytes = malloc (prefix ? prefix : 1);
                memcpy (bytes, frames->frame[frame].data, prefix);
                cut[frame].data = bytes;
                cut[frame].size = prefix;
                cw_msg_error_t expected =
                    frame == 0 ? CW_MSG_UNKNOWN_PROTOCOL : CW_MSG_MALFORMED;
                s_rejected (cut, 3, expected, NULL);
                free (bytes);
            }
        }
        cw_msg_frames_destroy (&frames);
        cw_msg_destroy (&msg);
    }
}
END_TEST

START_TEST (test_frame_count)
{
    cw_msg_t *msg = s_build (CW_MSG_HEARTBEAT, false);
    cw_msg_frames_t *frames = s_encode (msg);
    s_rejected (NULL, 0, CW_MSG_MALFORMED, "expected 3 frames, got 0");
    s_rejected (frames->frame, 2, CW_MSG_MALFORMED, "expected 3 frames, got 2");
    cw_msg_frame_t four[4];
    memcpy (four, frames->frame, sizeof (frames->frame));
    four[3] = frames->frame[2];
    s_rejected (four, 4, CW_MSG_MALFORMED, "expected 3 frames, got 4");
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (&msg);
}
END_TEST

START_TEST (test_unknown_protocol_and_command)
{
    cw_msg_t *msg = s_build (CW_MSG_HEARTBEAT, false);
    cw_msg_frames_t *frames = s_encode (msg);
    cw_msg_frame_t frame[3];
    memcpy (frame, frames->frame, sizeof (frame));
    frame[0].data = "CWX01";
    s_rejected (frame, 3, CW_MSG_UNKNOWN_PROTOCOL, "unknown protocol id");
    frame[0].data = "CWW02";
    s_rejected (frame, 3, CW_MSG_UNKNOWN_PROTOCOL, "unknown protocol id");
    frame[0].data = "CWW01x";
    frame[0].size = 6;
    s_rejected (frame, 3, CW_MSG_UNKNOWN_PROTOCOL, "unknown protocol id");
    frame[0] = frames->frame[0];
    //  Every byte that is not a command of CWW01
    for (int byte = 0; byte < 256; byte++) {
        uint8_t command = (uint8_t) byte;
        frame[1].data = &command;
        bool known = byte == 0x01 || byte == 0x02 || byte == 0x03
                     || byte == 0x04 || byte == 0x05 || byte == 0x06
                     || byte == 0x07 || byte == 0x08 || byte == 0x0f;
        ck_assert_int_eq (cw_msg_command_valid (CW_MSG_WORKER, byte), known);
        if (!known)
            s_rejected (frame, 3, CW_MSG_UNKNOWN_COMMAND, "unknown command");
    }
    //  Commands of another protocol
    uint8_t publish = CW_MSG_PUBLISH;
    frame[1].data = &publish;
    s_rejected (frame, 3, CW_MSG_UNKNOWN_COMMAND,
                "unknown command 0x10 for protocol CWW01");
    ck_assert (!cw_msg_command_valid (CW_MSG_CLIENT, CW_MSG_READY));
    ck_assert (cw_msg_command_valid (CW_MSG_RELAY, CW_MSG_ERROR));
    uint8_t two[2] = {CW_MSG_HEARTBEAT, 0};
    frame[1].data = two;
    frame[1].size = 2;
    s_rejected (frame, 3, CW_MSG_MALFORMED, "command frame has 2 bytes");
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (&msg);
}
END_TEST

//  Packs {v: version} for HEARTBEAT, version packed by kind
START_TEST (test_versions)
{
    cw_msg_frame_t frames[3];
    uint8_t command;
    struct {
        int kind;  //  0 int, 1 float, 2 string, 3 missing
        int64_t value;
        cw_msg_error_t error;
        const char *reason;
    } cases[] = {{0, 2, CW_MSG_UNSUPPORTED_VERSION,
                  "field \"v\": unsupported body version 2"},
                 {0, 1000000, CW_MSG_UNSUPPORTED_VERSION, "version 1000000"},
                 {0, 0, CW_MSG_MALFORMED, "field \"v\": 0 is out of range"},
                 {0, -1, CW_MSG_MALFORMED, "field \"v\": -1 is out of range"},
                 {1, 1, CW_MSG_MALFORMED,
                  "field \"v\": expected an integer, got a float"},
                 {2, 1, CW_MSG_MALFORMED,
                  "field \"v\": expected an integer, got a string"},
                 {3, 0, CW_MSG_MALFORMED, "field \"v\": missing"}};
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &body, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, cases[index].kind == 3 ? 0 : 1);
        if (cases[index].kind != 3) {
            msgpack_pack_str_with_body (&packer, "v", 1);
            if (cases[index].kind == 0)
                msgpack_pack_int64 (&packer, cases[index].value);
            else if (cases[index].kind == 1)
                msgpack_pack_double (&packer, 1.0);
            else
                msgpack_pack_str_with_body (&packer, "1", 1);
        }
        s_frames_for (CW_MSG_HEARTBEAT, &body, frames, &command);
        s_rejected (frames, 3, cases[index].error, cases[index].reason);
        msgpack_sbuffer_destroy (&body);
    }
    //  v = 2 wins over a body that v = 1 would find malformed
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &body, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, "v", 1);
    msgpack_pack_int (&packer, 2);
    s_frames_for (CW_MSG_RESULT, &body, frames, &command);
    s_rejected (frames, 3, CW_MSG_UNSUPPORTED_VERSION, "version 2");
    msgpack_sbuffer_destroy (&body);
    //  Not a map, trailing bytes, the never-used byte, too deep
    const char *bodies[] = {"\x91\x01", "\x81\xa1v\x01\x00", "\xc1",
                            "\x81\xa1v\xc1", ""};
    const char *reasons[] = {"body: expected a map, got an array",
                             "body: 1 bytes after the map",
                             "body: not one complete msgpack value",
                             "body: not one complete msgpack value",
                             "body: not one complete msgpack value"};
    size_t sizes[] = {2, 5, 1, 4, 0};
    for (size_t index = 0; index < 5; index++) {
        msgpack_sbuffer fixed = {.data = (char *) bodies[index],
                                 .size = sizes[index]};
        s_frames_for (CW_MSG_HEARTBEAT, &fixed, frames, &command);
        s_rejected (frames, 3, CW_MSG_MALFORMED, reasons[index]);
    }
    char deep[200];
    memset (deep, 0x91, sizeof (deep));
    deep[sizeof (deep) - 1] = 0x01;
    msgpack_sbuffer fixed = {.data = deep, .size = sizeof (deep)};
    s_frames_for (CW_MSG_HEARTBEAT, &fixed, frames, &command);
    s_rejected (frames, 3, CW_MSG_MALFORMED, "body: nesting deeper than");
}
END_TEST

//  Rebuilds a body map: key's value replaced by replacement (packed
//  bytes; NULL removes the key), or an extra key appended when key is
//  not in the map.
static void
s_rewrite (const cw_msg_frame_t *body,
           const char *key,
           const msgpack_sbuffer *replacement,
           msgpack_sbuffer *out)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    ck_assert_int_eq (
        msgpack_unpack_next (&unpacked, body->data, body->size, NULL),
        MSGPACK_UNPACK_SUCCESS);
    msgpack_object_map map = unpacked.data.via.map;
    msgpack_sbuffer_init (out);
    msgpack_packer packer;
    msgpack_packer_init (&packer, out, msgpack_sbuffer_write);
    bool found = false;
    for (uint32_t index = 0; index < map.size; index++)
        if (map.ptr[index].key.via.str.size == strlen (key)
            && memcmp (map.ptr[index].key.via.str.ptr, key, strlen (key)) == 0)
            found = true;
    msgpack_pack_map (&packer, map.size + (found ? (replacement ? 0 : -1) : 1));
    for (uint32_t index = 0; index < map.size; index++) {
        msgpack_object_kv *pair = &map.ptr[index];
        bool match = pair->key.via.str.size == strlen (key)
                     && memcmp (pair->key.via.str.ptr, key, strlen (key)) == 0;
        if (match && !replacement)
            continue;
        msgpack_pack_object (&packer, pair->key);
        if (match)
            msgpack_sbuffer_write (out, replacement->data, replacement->size);
        else
            msgpack_pack_object (&packer, pair->val);
    }
    if (!found) {
        msgpack_pack_str_with_body (&packer, key, strlen (key));
        msgpack_sbuffer_write (out, replacement->data, replacement->size);
    }
    msgpack_unpacked_destroy (&unpacked);
}

//  Top-level keys that may be left out (per command)
static bool
s_optional (cw_msg_command_t command, const char *key)
{
    return strcmp (key, "name") == 0 || strcmp (key, "response") == 0
           || strcmp (key, "error") == 0 || strcmp (key, "result") == 0
           || (command == CW_MSG_RESULT && strcmp (key, "credit") == 0)
           || (command == CW_MSG_ERROR && strcmp (key, "command") == 0);
}

START_TEST (test_wrong_types)
{
    //  Replacement values: nil, a float, a string, an integer, a map
    const char *packed[] = {"\xc0", "\xcb\x3f\xf0\0\0\0\0\0\0", "\xa1x", "\x05",
                            "\x80"};
    size_t sizes[] = {1, 9, 2, 1, 1};
    int checked = 0;
    for (size_t index = 0; index < S_COMMANDS; index++) {
        cw_msg_command_t command = s_commands[index];
        cw_msg_t *msg = s_build (command, true);
        cw_msg_frames_t *frames = s_encode (msg);
        msgpack_unpacked unpacked;
        msgpack_unpacked_init (&unpacked);
        msgpack_unpack_next (&unpacked, frames->frame[2].data,
                             frames->frame[2].size, NULL);
        msgpack_object_map map = unpacked.data.via.map;
        for (uint32_t pair = 0; pair < map.size; pair++) {
            char key[64];
            snprintf (key, sizeof (key), "%.*s",
                      (int) map.ptr[pair].key.via.str.size,
                      map.ptr[pair].key.via.str.ptr);
            if (strcmp (key, "v") == 0)
                continue;
            msgpack_object_type type = map.ptr[pair].val.type;
            char field[80];
            snprintf (field, sizeof (field), "field \"%s\"", key);
            for (size_t kind = 0; kind < 5; kind++) {
                //  Skip a replacement of the field's own type
                if ((kind == 2 && type == MSGPACK_OBJECT_STR)
                    || (kind == 3
                        && (type == MSGPACK_OBJECT_POSITIVE_INTEGER
                            || type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
                    || (kind == 4 && type == MSGPACK_OBJECT_MAP))
                    continue;
                msgpack_sbuffer value = {.data = (char *) packed[kind],
                                         .size = sizes[kind]};
                msgpack_sbuffer body;
                s_rewrite (&frames->frame[2], key, &value, &body);
                cw_msg_frame_t frame[3];
                uint8_t byte;
                s_frames_for (command, &body, frame, &byte);
                s_rejected (frame, 3, CW_MSG_MALFORMED, field);
                msgpack_sbuffer_destroy (&body);
                checked++;
            }
            //  Left out
            msgpack_sbuffer body;
            s_rewrite (&frames->frame[2], key, NULL, &body);
            cw_msg_frame_t frame[3];
            uint8_t byte;
            s_frames_for (command, &body, frame, &byte);
            if (s_optional (command, key)
                && !(command == CW_MSG_RESPONSE
                     && strcmp (key, "error") == 0)) {
                cw_msg_t *copy = cw_msg_decode (frame, 3, NULL, NULL, 0);
                ck_assert_msg (copy != NULL, "%s without %s rejected",
                               cw_msg_command_name (command), key);
                cw_msg_destroy (&copy);
            }
            else
                s_rejected (frame, 3, CW_MSG_MALFORMED, field);
            msgpack_sbuffer_destroy (&body);
        }
        //  An unknown key is ignored; re-encoding drops it
        msgpack_sbuffer value = {.data = (char *) packed[1], .size = 9};
        msgpack_sbuffer body;
        s_rewrite (&frames->frame[2], "x-future", &value, &body);
        cw_msg_frame_t frame[3];
        uint8_t byte;
        s_frames_for (command, &body, frame, &byte);
        cw_msg_t *copy = cw_msg_decode (frame, 3, NULL, NULL, 0);
        ck_assert_ptr_nonnull (copy);
        cw_msg_frames_t *again = s_encode (copy);
        ck_assert_uint_eq (again->frame[2].size, frames->frame[2].size);
        ck_assert_int_eq (memcmp (again->frame[2].data, frames->frame[2].data,
                                  frames->frame[2].size),
                          0);
        cw_msg_frames_destroy (&again);
        cw_msg_destroy (&copy);
        msgpack_sbuffer_destroy (&body);
        msgpack_unpacked_destroy (&unpacked);
        cw_msg_frames_destroy (&frames);
        cw_msg_destroy (&msg);
    }
    ck_assert_int_gt (checked, 100);
}
END_TEST

//  Packs a RESULT body whose single result has outcome and http_status
static void
s_result_body (msgpack_sbuffer *body, const char *outcome, bool float_status)
{
    msgpack_sbuffer_init (body);
    msgpack_packer packer;
    msgpack_packer_init (&packer, body, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    msgpack_pack_str_with_body (&packer, "v", 1);
    msgpack_pack_int (&packer, 1);
    msgpack_pack_str_with_body (&packer, "results", 7);
    msgpack_pack_array (&packer, 4);
    for (int index = 0; index < 4; index++) {
        bool last = index == 3;
        msgpack_pack_map (&packer, 5);
        msgpack_pack_str_with_body (&packer, "job_id", 6);
        msgpack_pack_int (&packer, index);
        msgpack_pack_str_with_body (&packer, "attempt", 7);
        msgpack_pack_int (&packer, 1);
        msgpack_pack_str_with_body (&packer, "outcome", 7);
        const char *name = last ? outcome : "ok";
        msgpack_pack_str_with_body (&packer, name, strlen (name));
        msgpack_pack_str_with_body (&packer, "http_status", 11);
        if (last && float_status)
            msgpack_pack_float (&packer, 200.0f);
        else
            msgpack_pack_int (&packer, 200);
        msgpack_pack_str_with_body (&packer, "duration_ms", 11);
        msgpack_pack_int (&packer, 5);
    }
}

START_TEST (test_nested_fields)
{
    msgpack_sbuffer body;
    cw_msg_frame_t frames[3];
    uint8_t command;
    s_result_body (&body, "okay", false);
    s_frames_for (CW_MSG_RESULT, &body, frames, &command);
    s_rejected (frames, 3, CW_MSG_MALFORMED,
                "field \"results[3].outcome\": unknown outcome \"okay\"");
    msgpack_sbuffer_destroy (&body);
    s_result_body (&body, "ok", true);
    s_frames_for (CW_MSG_RESULT, &body, frames, &command);
    s_rejected (frames, 3, CW_MSG_MALFORMED,
                "field \"results[3].http_status\": expected an integer, "
                "got a float");
    msgpack_sbuffer_destroy (&body);
    s_result_body (&body, "rejected", false);
    s_frames_for (CW_MSG_RESULT, &body, frames, &command);
    cw_msg_t *msg = cw_msg_decode (frames, 3, NULL, NULL, 0);
    ck_assert_ptr_nonnull (msg);
    ck_assert_int_eq (msg->result.results[3].outcome, CW_MSG_OUTCOME_REJECTED);
    cw_msg_destroy (&msg);
    msgpack_sbuffer_destroy (&body);

    //  Encoder applies the same rules and names the field
    char reason[CW_MSG_REASON_SIZE];
    msg = s_build (CW_MSG_RESULT, true);
    msg->result.results[1].attempt = 0;
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"results[1].attempt\": 0 is out of "
                              "range 1 to 2147483647");
    msg->result.results[1].attempt = 1;
    msg->result.results[0].outcome = (cw_msg_outcome_t) 9;
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"results[0].outcome\": unknown outcome \"?\"");
    cw_msg_destroy (&msg);

    msg = s_build (CW_MSG_READY, true);
    free (msg->ready.name);
    msg->ready.name = malloc (CW_MSG_NAME_MAX + 2);
    memset (msg->ready.name, 'n', CW_MSG_NAME_MAX + 1);
    msg->ready.name[CW_MSG_NAME_MAX + 1] = 0;
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"name\": string of 129 bytes exceeds 128");
    msg->ready.name[CW_MSG_NAME_MAX] = 0;
    cw_msg_frames_t *frames_ok = s_encode (msg);
    cw_msg_frames_destroy (&frames_ok);
    msg->ready.credit = 4097;
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"credit\": 4097 is out of range 1 to 4096");
    msg->ready.credit = 1;
    cw_msg_flow_add (msg, "caf\xc3");
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"flows[2]\": string is not valid UTF-8");
    cw_msg_destroy (&msg);

    msg = s_build (CW_MSG_PUBLISH, true);
    free (msg->publish.island);
    msg->publish.island = strdup ("Shop!");
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"island\": must be 1 to 64 of a-z 0-9 _ -");
    free (msg->publish.island);
    msg->publish.island = strdup ("shop");
    cw_envelope_set_tenant_id (msg->publish.events[1], "");
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_msg (strncmp (reason, "field \"events[1]\": ", 19) == 0, "%s",
                   reason);
    cw_msg_destroy (&msg);

    msg = s_build (CW_MSG_JOB, false);
    cw_envelope_destroy (&msg->job.envelope);
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"envelope\": missing");
    cw_msg_destroy (&msg);

    msg = s_build (CW_MSG_RESPONSE, true);
    free (msg->response.error_message);
    msg->response.error_message = NULL;
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"error.message\": expected a string, got nil");
    cw_msg_destroy (&msg);

    //  Free maps: no NaN, no binary, bounded depth
    msg = s_build (CW_MSG_REPLY, true);
    json_object_set_new (msg->reply.response, "deep",
                         json_pack ("[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"));
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"response\": nesting deeper than 16 levels");
    cw_msg_destroy (&msg);
}
END_TEST

START_TEST (test_oversize)
{
    char reason[CW_MSG_REASON_SIZE];
    //  Five envelopes of 300 KB: each fits, the body does not
    cw_msg_t *msg = s_build (CW_MSG_PUBLISH, false);
    for (int index = 0; index < 4; index++) {
        cw_envelope_t *envelope = s_envelope ("order:acme:o-9:1", 300000);
        cw_msg_event_add (msg, &envelope);
    }
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "body exceeds 1048576 bytes at field \"events[4]\"");
    cw_msg_destroy (&msg);

    msg = s_build (CW_MSG_RESULT, false);
    msg->result.results[0].error = malloc (CW_MSG_TEXT_MAX + 2);
    memset (msg->result.results[0].error, 'e', CW_MSG_TEXT_MAX + 1);
    msg->result.results[0].error[CW_MSG_TEXT_MAX + 1] = 0;
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"results[0].error\": string of 1025 "
                              "bytes exceeds 1024");
    cw_msg_destroy (&msg);

    //  Decoder: a body over 1 MiB is refused before it is read
    cw_msg_frame_t frames[3];
    uint8_t command;
    msgpack_sbuffer big = {.data = calloc (1, CW_MSG_MAX_SIZE + 1),
                           .size = CW_MSG_MAX_SIZE + 1};
    s_frames_for (CW_MSG_HEARTBEAT, &big, frames, &command);
    s_rejected (frames, 3, CW_MSG_TOO_LARGE, "body of 1048577 bytes exceeds");
    free (big.data);

    //  Array counts beyond their limits
    msg = s_build (CW_MSG_READY, false);
    for (int index = 0; index < CW_MSG_FLOWS_MAX; index++)
        cw_msg_flow_add (msg, "f");
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"flows\": 65 items, expected 1 to 64");
    cw_msg_destroy (&msg);
    msg = s_build (CW_MSG_RESULT, false);
    for (int index = 0; index < CW_MSG_RESULTS_MAX; index++) {
        cw_msg_result_t *result = cw_msg_result_add (msg);
        result->attempt = 1;
    }
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"results\": 1025 items, expected 1 to 1024");
    cw_msg_destroy (&msg);
    //  A huge declared count in a tiny body
    const char lying[] = "\x82\xa1v\x01\xa5"
                         "flows\xdd\xff\xff\xff\xff";
    msgpack_sbuffer fixed = {.data = (char *) lying,
                             .size = sizeof (lying) - 1};
    s_frames_for (CW_MSG_READY, &fixed, frames, &command);
    s_rejected (frames, 3, CW_MSG_MALFORMED, "body: not one complete");
}
END_TEST

START_TEST (test_roles)
{
    ck_assert (cw_msg_allowed ("worker", CW_MSG_WORKER, CW_MSG_READY));
    ck_assert (cw_msg_allowed ("worker", CW_MSG_WORKER, CW_MSG_RESULT));
    ck_assert (cw_msg_allowed ("worker", CW_MSG_WORKER, CW_MSG_CREDIT));
    ck_assert (cw_msg_allowed ("worker", CW_MSG_WORKER, CW_MSG_REPLY));
    ck_assert (cw_msg_allowed ("worker", CW_MSG_WORKER, CW_MSG_HEARTBEAT));
    ck_assert (cw_msg_allowed ("worker", CW_MSG_WORKER, CW_MSG_DISCONNECT));
    ck_assert (!cw_msg_allowed ("worker", CW_MSG_WORKER, CW_MSG_JOB));
    ck_assert (!cw_msg_allowed ("worker", CW_MSG_WORKER, CW_MSG_ERROR));
    ck_assert (!cw_msg_allowed ("worker", CW_MSG_RELAY, CW_MSG_PUBLISH));
    ck_assert (!cw_msg_allowed ("worker", CW_MSG_CLIENT, CW_MSG_HEARTBEAT));
    ck_assert (cw_msg_allowed ("relay:shop", CW_MSG_RELAY, CW_MSG_PUBLISH));
    ck_assert (cw_msg_allowed ("relay:erp_mw", CW_MSG_RELAY, CW_MSG_HEARTBEAT));
    ck_assert (!cw_msg_allowed ("relay:shop", CW_MSG_RELAY, CW_MSG_ACK));
    ck_assert (!cw_msg_allowed ("relay:shop", CW_MSG_WORKER, CW_MSG_READY));
    ck_assert (!cw_msg_allowed ("relay:", CW_MSG_RELAY, CW_MSG_PUBLISH));
    ck_assert (!cw_msg_allowed ("relay", CW_MSG_RELAY, CW_MSG_PUBLISH));
    ck_assert (!cw_msg_allowed ("relay:Shop", CW_MSG_RELAY, CW_MSG_PUBLISH));
    ck_assert (cw_msg_allowed ("admin", CW_MSG_CLIENT, CW_MSG_REQUEST));
    ck_assert (cw_msg_allowed ("admin", CW_MSG_CLIENT, CW_MSG_DISCONNECT));
    ck_assert (!cw_msg_allowed ("admin", CW_MSG_CLIENT, CW_MSG_RESPONSE));
    ck_assert (!cw_msg_allowed ("admin", CW_MSG_WORKER, CW_MSG_READY));
    ck_assert (!cw_msg_allowed ("root", CW_MSG_WORKER, CW_MSG_HEARTBEAT));
    ck_assert (!cw_msg_allowed ("", CW_MSG_WORKER, CW_MSG_HEARTBEAT));
    ck_assert (!cw_msg_allowed (NULL, CW_MSG_WORKER, CW_MSG_HEARTBEAT));
    ck_assert (
        !cw_msg_allowed ("worker", CW_MSG_WORKER, (cw_msg_command_t) 0x09));
    //  No role may send what only the broker sends
    for (size_t index = 0; index < S_COMMANDS; index++) {
        cw_msg_command_t command = s_commands[index];
        if (cw_msg_direction (command) != CW_MSG_TO_PEER)
            continue;
        const char *roles[] = {"worker", "relay:shop", "admin"};
        for (int role = 0; role < 3; role++)
            for (int protocol = 0; protocol < 3; protocol++)
                ck_assert (!cw_msg_allowed (
                    roles[role], (cw_msg_protocol_t) protocol, command));
    }
    ck_assert_str_eq (cw_msg_role_island ("relay:shop"), "shop");
    ck_assert_ptr_null (cw_msg_role_island ("worker"));
    ck_assert_ptr_null (cw_msg_role_island ("relay:a b"));
}
END_TEST

//  Writes the seed corpus of the fuzz target when CW_MSG_CORPUS names a
//  directory (tests/fuzz/corpus/cw_msg); the framing is the fuzz
//  target's: per frame a 2-byte big-endian length, then the bytes.
START_TEST (test_write_corpus)
{
    const char *directory = getenv ("CW_MSG_CORPUS");
    for (size_t index = 0; index < S_COMMANDS; index++)
        for (int full = 0; full < 2; full++) {
            cw_msg_t *msg = s_build (s_commands[index], full);
            cw_msg_frames_t *frames = s_encode (msg);
            if (directory) {
                char path[512];
                snprintf (path, sizeof (path), "%s/%s_%s", directory,
                          cw_msg_command_name (msg->command),
                          full ? "full" : "minimal");
                FILE *file = fopen (path, "wb");
                ck_assert_ptr_nonnull (file);
                for (size_t frame = 0; frame < 3; frame++) {
                    size_t size = frames->frame[frame].size;
                    ck_assert_uint_lt (size, 65536);
                    fputc ((int) (size >> 8), file);
                    fputc ((int) (size & 0xff), file);
                    fwrite (frames->frame[frame].data, 1, size, file);
                }
                ck_assert_int_eq (fclose (file), 0);
            }
            cw_msg_frames_destroy (&frames);
            cw_msg_destroy (&msg);
        }
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_msg");
    TCase *codec = tcase_create ("codec");
    tcase_set_timeout (codec, 30);
    tcase_add_test (codec, test_round_trip);
    tcase_add_test (codec, test_decoded_fields);
    tcase_add_test (codec, test_names);
    tcase_add_test (codec, test_write_corpus);
    suite_add_tcase (suite, codec);
    TCase *malformed = tcase_create ("malformed");
    tcase_set_timeout (malformed, 60);
    tcase_add_test (malformed, test_truncated);
    tcase_add_test (malformed, test_frame_count);
    tcase_add_test (malformed, test_unknown_protocol_and_command);
    tcase_add_test (malformed, test_versions);
    tcase_add_test (malformed, test_wrong_types);
    tcase_add_test (malformed, test_nested_fields);
    tcase_add_test (malformed, test_oversize);
    suite_add_tcase (suite, malformed);
    TCase *auth = tcase_create ("auth");
    tcase_set_timeout (auth, 10);
    tcase_add_test (auth, test_roles);
    suite_add_tcase (suite, auth);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
