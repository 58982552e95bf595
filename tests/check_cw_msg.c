/*  =========================================================================
    check_cw_msg - the CWP/1 wire codec: round trips, strict decoding,
    role table
    =========================================================================
*/
#include "cw_mpjson.h"
#include "cw_msg.h"
#include "cw_retry.h"
#include "cw_test_envelope.h"

#include <check.h>
#include <msgpack.h>
#include <stdint.h>
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
                cw_msg_target_add (msg, "erp");
                cw_msg_target_add (msg, "webshop");
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
    ck_assert_ptr_null (copy->ready.targets);
    ck_assert_uint_eq (copy->ready.targets_count, 0);
    ck_assert_ptr_null (copy->ready.name);
    cw_msg_destroy (&copy);
    cw_msg_frames_destroy (&frames);
    cw_msg_destroy (&msg);

    msg = s_build (CW_MSG_READY, true);
    frames = s_encode (msg);
    copy = cw_msg_decode (frames->frame, 3, NULL, NULL, 0);
    ck_assert_uint_eq (copy->ready.flows_count, 2);
    ck_assert_uint_eq (copy->ready.targets_count, 2);
    ck_assert_str_eq (copy->ready.targets[0], "erp");
    ck_assert_str_eq (copy->ready.targets[1], "webshop");
    ck_assert_int_eq (copy->ready.credit, 4096);
    ck_assert_str_eq (copy->ready.name, "host-1/4242");
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
           || (command == CW_MSG_READY && strcmp (key, "targets") == 0)
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

//  Unknown keys are skipped wherever they stand, in bodies of few keys
//  and of many (over 16, past what the first pass keeps offsets of); a
//  known key given twice is refused either way
START_TEST (test_unknown_keys)
{
    for (int unknown = 0; unknown <= 24; unknown += 3)
        for (int twice = 0; twice < 2; twice++) {
            msgpack_sbuffer body;
            msgpack_sbuffer_init (&body);
            msgpack_packer packer;
            msgpack_packer_init (&packer, &body, msgpack_sbuffer_write);
            msgpack_pack_map (&packer, 3 + unknown + twice);
            for (int index = 0; index < unknown; index++) {
                char key[16];
                snprintf (key, sizeof (key), "x-%d", index);
                msgpack_pack_str_with_body (&packer, key, strlen (key));
                if (index % 2)
                    msgpack_pack_array (&packer, 0);
                else
                    msgpack_pack_int (&packer, index);
                if (index == unknown / 2) {
                    msgpack_pack_str_with_body (&packer, "credit", 6);
                    msgpack_pack_int (&packer, 7);
                }
            }
            if (unknown == 0) {
                msgpack_pack_str_with_body (&packer, "credit", 6);
                msgpack_pack_int (&packer, 7);
            }
            msgpack_pack_str_with_body (&packer, "flows", 5);
            msgpack_pack_array (&packer, 2);
            msgpack_pack_str_with_body (&packer, "a", 1);
            msgpack_pack_str_with_body (&packer, "b", 1);
            msgpack_pack_str_with_body (&packer, "v", 1);
            msgpack_pack_int (&packer, 1);
            if (twice) {
                msgpack_pack_str_with_body (&packer, "credit", 6);
                msgpack_pack_int (&packer, 8);
            }
            cw_msg_frame_t frames[3];
            uint8_t command;
            s_frames_for (CW_MSG_READY, &body, frames, &command);
            if (twice)
                s_rejected (frames, 3, CW_MSG_MALFORMED,
                            "field \"credit\": duplicate key");
            else {
                cw_msg_t *msg = cw_msg_decode (frames, 3, NULL, NULL, 0);
                ck_assert_msg (msg != NULL, "%d unknown keys", unknown);
                ck_assert_uint_eq (msg->ready.flows_count, 2);
                ck_assert_str_eq (msg->ready.flows[1], "b");
                ck_assert_int_eq (msg->ready.credit, 7);
                ck_assert_ptr_null (msg->ready.name);
                cw_msg_destroy (&msg);
            }
            msgpack_sbuffer_destroy (&body);
        }
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

//  READY's optional targets: absent leaves the body as it was without
//  them; present, 1..16 names by the rules of flow names, each refusal
//  naming the field, in the decoder and the encoder alike
//  The name rules a worker checks its configured target against are the
//  decoder's own, in its words.
START_TEST (test_name_check)
{
    char reason[CW_MSG_REASON_SIZE] = "";
    ck_assert_int_eq (cw_msg_name_check ("erp", reason, sizeof (reason)), 0);
    char longest[CW_MSG_FLOW_MAX + 2];
    memset (longest, 'n', CW_MSG_FLOW_MAX);
    longest[CW_MSG_FLOW_MAX] = 0;
    ck_assert_int_eq (cw_msg_name_check (longest, reason, sizeof (reason)), 0);
    longest[CW_MSG_FLOW_MAX] = 'n';
    longest[CW_MSG_FLOW_MAX + 1] = 0;
    ck_assert_int_eq (cw_msg_name_check (longest, reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "string of 65 bytes exceeds 64");
    ck_assert_int_eq (cw_msg_name_check ("", reason, sizeof (reason)), -1);
    ck_assert_str_eq (reason, "empty string");
    ck_assert_int_eq (cw_msg_name_check ("caf\xc3", reason, sizeof (reason)),
                      -1);
    ck_assert_str_eq (reason, "string is not valid UTF-8");
}
END_TEST

START_TEST (test_targets)
{
    char reason[CW_MSG_REASON_SIZE];
    cw_msg_t *msg = s_build (CW_MSG_READY, true);
    cw_msg_frames_t *frames = s_encode (msg);

    //  Without targets: the same bytes as the body without the key
    cw_msg_t *bare = s_build (CW_MSG_READY, true);
    for (size_t index = 0; index < bare->ready.targets_count; index++)
        free (bare->ready.targets[index]);
    free (bare->ready.targets);
    bare->ready.targets = NULL;
    bare->ready.targets_count = 0;
    cw_msg_frames_t *bare_frames = s_encode (bare);
    msgpack_sbuffer body;
    s_rewrite (&frames->frame[2], "targets", NULL, &body);
    ck_assert_uint_eq (bare_frames->frame[2].size, body.size);
    ck_assert_int_eq (memcmp (bare_frames->frame[2].data, body.data, body.size),
                      0);
    cw_msg_frame_t frame[3];
    uint8_t command;
    s_frames_for (CW_MSG_READY, &body, frame, &command);
    cw_msg_t *copy = cw_msg_decode (frame, 3, NULL, NULL, 0);
    ck_assert_ptr_nonnull (copy);
    ck_assert_ptr_null (copy->ready.targets);
    ck_assert_uint_eq (copy->ready.targets_count, 0);
    cw_msg_destroy (&copy);
    msgpack_sbuffer_destroy (&body);
    cw_msg_frames_destroy (&bare_frames);
    cw_msg_destroy (&bare);

    //  Decoder: each bad targets value in an otherwise good body
    char *long_name = malloc (CW_MSG_FLOW_MAX + 2);
    memset (long_name, 't', CW_MSG_FLOW_MAX + 1);
    long_name[CW_MSG_FLOW_MAX + 1] = 0;
    struct {
        int count;         //  Items in the array
        int bad;           //  The bad item, -1 for none
        int kind;          //  0 a 65-byte string, 1 an integer, 2 "", 3 nil
        const char *part;  //  Expected in the reason
    } cases[] = {
        {0, -1, 0, "field \"targets\": 0 items, expected 1 to 16"},
        {17, -1, 0, "field \"targets\": 17 items, expected 1 to 16"},
        {3, 2, 0, "field \"targets[2]\": string of 65 bytes exceeds 64"},
        {2, 1, 1, "field \"targets[1]\": expected a string, got an integer"},
        {1, 0, 2, "field \"targets[0]\": empty string"},
        {2, 0, 3, "field \"targets[0]\": expected a string, got nil"}};
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        msgpack_sbuffer value;
        msgpack_sbuffer_init (&value);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &value, msgpack_sbuffer_write);
        msgpack_pack_array (&packer, (size_t) cases[index].count);
        for (int item = 0; item < cases[index].count; item++)
            if (item != cases[index].bad)
                msgpack_pack_str_with_body (&packer, "erp", 3);
            else if (cases[index].kind == 0)
                msgpack_pack_str_with_body (&packer, long_name,
                                            strlen (long_name));
            else if (cases[index].kind == 1)
                msgpack_pack_int (&packer, 7);
            else if (cases[index].kind == 2)
                msgpack_pack_str_with_body (&packer, "", 0);
            else
                msgpack_pack_nil (&packer);
        s_rewrite (&frames->frame[2], "targets", &value, &body);
        s_frames_for (CW_MSG_READY, &body, frame, &command);
        s_rejected (frame, 3, CW_MSG_MALFORMED, cases[index].part);
        msgpack_sbuffer_destroy (&body);
        msgpack_sbuffer_destroy (&value);
    }

    //  Encoder: the same rules, the same words
    cw_msg_target_add (msg, long_name);
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"targets[2]\": string of 65 bytes exceeds 64");
    free (msg->ready.targets[2]);
    msg->ready.targets[2] = strdup ("");
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"targets[2]\": empty string");
    free (msg->ready.targets[2]);
    msg->ready.targets[2] = NULL;
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"targets[2]\": expected a string, got nil");
    msg->ready.targets[2] = strdup ("caf\xc3");
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason,
                      "field \"targets[2]\": string is not valid UTF-8");
    free (msg->ready.targets[2]);
    msg->ready.targets[2] = strdup ("c");
    while (msg->ready.targets_count < CW_MSG_TARGETS_MAX)
        cw_msg_target_add (msg, long_name + 1);  //  64 bytes: the limit
    cw_msg_frames_t *most = s_encode (msg);
    copy = cw_msg_decode (most->frame, 3, NULL, NULL, 0);
    ck_assert_ptr_nonnull (copy);
    ck_assert_uint_eq (copy->ready.targets_count, CW_MSG_TARGETS_MAX);
    ck_assert_str_eq (copy->ready.targets[15], long_name + 1);
    cw_msg_destroy (&copy);
    cw_msg_frames_destroy (&most);
    cw_msg_target_add (msg, "erp");
    ck_assert_ptr_null (cw_msg_encode (msg, reason, sizeof (reason)));
    ck_assert_str_eq (reason, "field \"targets\": 17 items, expected 1 to 16");

    free (long_name);
    cw_msg_frames_destroy (&frames);
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

//  ---------------------------------------------------------------------
//  Property: cw_msg_encode refuses a message exactly when cw_msg_decode
//  refuses the bytes it would send, with the decoder's reason; what it
//  sends decodes back to the same message.

#define S_SEED 0x5eed0cafe1234567ULL  //  Fixed: failures name the message
#define S_MESSAGES 13000              //  1000 per command
#define S_BAD 8  //  Percent of fields given a value a rule refuses

//  Seeded splitmix64, the same sequence on every machine (proto's)
typedef cw_retry_rng_t s_rng_t;

//  0 .. bound - 1
static uint64_t
s_below (s_rng_t *rng, uint64_t bound)
{
    return cw_retry_rng_next (rng) % bound;
}

static bool
s_percent (s_rng_t *rng, int percent)
{
    return (int) s_below (rng, 100) < percent;
}

static char *
s_repeat (char c, size_t count)
{
    char *text = malloc (count + 1);
    memset (text, c, count);
    text[count] = 0;
    return text;
}

//  Not UTF-8: cut, overlong, surrogate, above U+10FFFF, never-used byte
static const char *s_bad_utf8[] = {"caf\xc3", "\xc0\xaf", "\xed\xa0\x80",
                                   "\xf4\x90\x80\x80", "x\xff"};
#define S_BAD_UTF8 5

//  A string for a field of max bytes: mostly valid (ASCII and 2-4 byte
//  UTF-8, sometimes exactly max bytes); bad percent of the time NULL,
//  empty, max + 1 bytes or not UTF-8.
static char *
s_gen_text (s_rng_t *rng, size_t max, int bad)
{
    if (s_percent (rng, bad))
        switch (s_below (rng, 4)) {
            case 0:
                return NULL;
            case 1:
                return strdup ("");
            case 2:
                return s_repeat ('y', max + 1);
            default:
                return strdup (s_bad_utf8[s_below (rng, S_BAD_UTF8)]);
        }
    static const char *pieces[] = {
        "a", "Z", "-", ".", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    size_t length =
        s_percent (rng, 10) ? max : 1 + s_below (rng, max < 24 ? max : 24);
    char *text = malloc (length + 1);
    size_t at = 0;
    while (at < length) {
        const char *piece = pieces[s_below (rng, 7)];
        size_t size = strlen (piece);
        if (size > length - at) {
            piece = "x";
            size = 1;
        }
        memcpy (text + at, piece, size);
        at += size;
    }
    text[length] = 0;
    return text;
}

//  An integer for a field of min..max (boundaries likely); bad percent
//  of the time one the range refuses
static int64_t
s_gen_int (s_rng_t *rng, int64_t min, int64_t max, int bad)
{
    if (s_percent (rng, bad)) {
        int64_t wrong[] = {INT64_MIN, min - 1, max == INT64_MAX ? -2 : max + 1};
        return wrong[s_below (rng, 3)];
    }
    switch (s_below (rng, 4)) {
        case 0:
            return min;
        case 1:
            return max;
        default:
            return min + (int64_t) s_below (rng, (uint64_t) (max - min) + 1);
    }
}

//  An optional integer: -1 (absent) a third of the time
static int64_t
s_gen_optional (s_rng_t *rng, int64_t min, int64_t max, int bad)
{
    return s_percent (rng, 33) ? -1 : s_gen_int (rng, min, max, bad);
}

//  levels arrays, each holding the next
static json_t *
s_chain (int levels)
{
    json_t *inner = json_array ();
    for (int level = 1; level < levels; level++) {
        json_t *outer = json_array ();
        json_array_append_new (outer, inner);
        inner = outer;
    }
    return inner;
}

//  A value PROTOCOL.md §3 refuses inside a free-form map (or an
//  envelope's data): not UTF-8, NUL, too deep (16, or 48 for the whole
//  body), bad keys (a key with a NUL next to the key it extends:
//  cw_mpjson_pack writes both whole, the NUL is what is refused), 1 MiB
//  of text
static json_t *
s_bad_json (s_rng_t *rng)
{
    json_t *object = NULL;
    switch (s_below (rng, 10)) {
        case 0: {
            const char *text = s_bad_utf8[s_below (rng, S_BAD_UTF8)];
            return json_stringn_nocheck (text, strlen (text));
        }
        case 1:
            return json_stringn ("a\0b", 3);
        case 2:
            //  Around the limit: 14 to 17 levels below the map
            return s_chain (CW_MSG_MAP_DEPTH_MAX - 2 + (int) s_below (rng, 4));
        case 3:
            return s_chain (50);
        case 4:
            object = json_object ();
            json_object_set_new (object, "", json_true ());
            return object;
        case 5: {
            object = json_object ();
            char *key = s_repeat ('k', CW_ENVELOPE_KEY_MAX + 1);
            json_object_set_new (object, key, json_null ());
            free (key);
            return object;
        }
        case 6:
            object = json_object ();
            json_object_set_new (object, "a", json_integer (1));
            json_object_setn_new (object, "a\0x", 3, json_integer (2));
            return object;
        case 7:
            object = json_object ();
            json_object_set_new_nocheck (object, "k\xff", json_false ());
            return object;
        case 8:
            object = json_object ();
            if (s_percent (rng, 5)) {
                char *big = s_repeat ('b', CW_MSG_MAX_SIZE + 1);
                json_object_set_new (object, "big", json_string (big));
                free (big);
            }
            return object;
        default:
            return json_real (-0.0);  //  A fine value after all
    }
}

//  A JSON value up to depth container levels; bad percent of the time
//  (at each level) one of s_bad_json's
static json_t *
s_gen_json (s_rng_t *rng, int depth, int bad)
{
    if (s_percent (rng, bad))
        return s_bad_json (rng);
    if (depth > 0 && s_percent (rng, 40)) {
        size_t count = s_below (rng, 4);
        if (s_percent (rng, 50)) {
            json_t *array = json_array ();
            for (size_t index = 0; index < count; index++)
                json_array_append_new (array, s_gen_json (rng, depth - 1, bad));
            return array;
        }
        json_t *object = json_object ();
        for (size_t index = 0; index < count; index++) {
            char *key = s_gen_text (rng, 12, 0);
            json_object_set_new (object, key, s_gen_json (rng, depth - 1, bad));
            free (key);
        }
        return object;
    }
    switch (s_below (rng, 8)) {
        case 0:
            return json_integer ((json_int_t) cw_retry_rng_next (rng));
        case 1:
            return json_integer ((json_int_t) s_below (rng, 300) - 150);
        case 2:
            return json_real ((double) (int64_t) cw_retry_rng_next (rng) / 7.0);
        case 3:
            return json_boolean (s_percent (rng, 50));
        case 4:
            return json_null ();
        case 5:
            return json_string ("");
        default: {
            char *text = s_gen_text (rng, 40, 0);
            json_t *string = json_string (text);
            free (text);
            return string;
        }
    }
}

//  An object of up to 4 members; bad percent of the time (also) one of
//  s_bad_json's, or not an object at all
static json_t *
s_gen_object (s_rng_t *rng, int bad)
{
    if (s_percent (rng, bad) && s_percent (rng, 20))
        return s_percent (rng, 50) ? json_array () : json_string ("x");
    json_t *object = json_object ();
    size_t count = s_below (rng, 5);
    for (size_t index = 0; index < count; index++) {
        char key[16];
        snprintf (key, sizeof (key), "k%zu", index);
        json_object_set_new (object, key, s_gen_json (rng, 3, 0));
    }
    if (s_percent (rng, bad))
        json_object_set_new (object, "bad", s_bad_json (rng));
    return object;
}

//  An envelope; bad percent of the time one attribute or the data is
//  wrong (or missing), as cw_envelope_validate would say
static cw_envelope_t *
s_gen_envelope (s_rng_t *rng, int bad)
{
    int wrong = s_percent (rng, bad) ? (int) s_below (rng, 12) : -1;
    bool unset = s_percent (rng, 30);  //  The wrong attribute left out
    cw_envelope_t *envelope = cw_envelope_new ();
    char *text = NULL;
    if (wrong != 0) {
        text = s_gen_text (rng, 40, 0);
        for (char *c = text; *c; c++)
            if ((unsigned char) *c < 0x21 || (unsigned char) *c > 0x7e)
                *c = 'e';
        cw_envelope_set_id (envelope, text);
    }
    else if (!unset) {
        text = s_percent (rng, 50)
                   ? s_repeat ('i', CW_ENVELOPE_ID_MAX + 1)
                   : strdup (s_percent (rng, 50) ? "a b" : "\xff");
        cw_envelope_set_id (envelope, text);
    }
    free (text);
    if (wrong != 1)
        cw_envelope_set_source (envelope, "/webshop/orders");
    else if (!unset) {
        text = s_repeat ('s', CW_ENVELOPE_SOURCE_MAX + 1);
        cw_envelope_set_source (envelope, text);
        free (text);
    }
    if (wrong != 2)
        cw_envelope_set_type (envelope, s_percent (rng, 50)
                                            ? "order.created.v1"
                                            : "customer.upsert.requested.v12");
    else if (!unset)
        cw_envelope_set_type (envelope, s_percent (rng, 50) ? "order.created"
                                                            : "Order.v1");
    if (wrong != 3)
        cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123+01:00");
    else if (!unset)
        cw_envelope_set_time (envelope, "2025-02-30T10:02:03Z");
    if (wrong != 4)
        cw_envelope_set_tenant_id (envelope, "acme");
    else if (!unset)
        cw_envelope_set_tenant_id (envelope, "acme:eu");
    if (wrong != 5)
        cw_envelope_set_correlation_id (envelope, "corr-9");
    else if (!unset)
        cw_envelope_set_correlation_id (envelope, "corr 9");
    if (wrong == 6)
        cw_envelope_set_traceparent (
            envelope,
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01");
    else if (s_percent (rng, 50))
        cw_envelope_set_traceparent (envelope, TRACEPARENT);
    if (wrong != 7) {
        char key[64];
        snprintf (key, sizeof (key), "order:acme:o-%llu:1",
                  (unsigned long long) s_below (rng, 1000000));
        cw_envelope_set_idempotency_key (envelope, key);
    }
    else if (!unset) {
        text = s_repeat ('k', CW_ENVELOPE_IDEMPOTENCYKEY_MAX + 1);
        cw_envelope_set_idempotency_key (envelope, text);
        free (text);
    }
    json_t *data = NULL;
    if (wrong == 8)
        data = unset                 ? NULL
               : s_percent (rng, 50) ? json_array ()
                                     : json_string ("{}");
    else if (wrong == 9)
        data = s_gen_object (rng, 100);
    else if (wrong == 10) {
        data = json_object ();
        json_object_set_new (data, "deep", s_chain (16));
    }
    else if (wrong == 11) {
        //  A key with a NUL byte (written cut, as a second "n")
        data = s_gen_object (rng, 0);
        json_object_set_new (data, "n", json_false ());
        json_object_setn_new (data, "n\0ul", 4, json_true ());
    }
    else
        data = s_gen_object (rng, 0);
    if (data)
        cw_envelope_set_data (envelope, &data);
    return envelope;
}

//  A message of command with random fields (see above)
static cw_msg_t *
s_gen_msg (s_rng_t *rng, cw_msg_command_t command)
{
    cw_msg_t *msg = cw_msg_new (s_protocol_of (command), command);
    int bad = S_BAD;
    switch (command) {
        case CW_MSG_READY: {
            size_t count =
                s_percent (rng, bad)
                    ? (s_percent (rng, 50) ? 0 : CW_MSG_FLOWS_MAX + 1)
                    : 1 + s_below (rng, 3);
            for (size_t index = 0; index < count; index++) {
                char *flow = s_gen_text (rng, CW_MSG_FLOW_MAX, bad / 2);
                cw_msg_flow_add (msg, flow ? flow : "f");
                free (flow);
            }
            if (count && s_percent (rng, 10)) {
                free (msg->ready.flows[0]);
                msg->ready.flows[0] = NULL;
            }
            //  Targets: absent half the time, sometimes one too many (a
            //  message cannot send an empty array: no targets is absent)
            count = s_percent (rng, 50)    ? 0
                    : s_percent (rng, bad) ? CW_MSG_TARGETS_MAX + 1
                                           : 1 + s_below (rng, 3);
            for (size_t index = 0; index < count; index++) {
                char *target = s_gen_text (rng, CW_MSG_FLOW_MAX, bad / 2);
                cw_msg_target_add (msg, target ? target : "t");
                free (target);
            }
            if (count && s_percent (rng, 5)) {
                size_t last = count - 1;
                free (msg->ready.targets[last]);
                msg->ready.targets[last] = NULL;
            }
            msg->ready.credit = s_gen_int (rng, 1, CW_MSG_CREDIT_MAX, bad);
            if (s_percent (rng, 50))
                msg->ready.name = s_gen_text (rng, CW_MSG_NAME_MAX, bad);
            break;
        }
        case CW_MSG_JOB:
            msg->job.job_id = s_gen_int (rng, 0, INT64_MAX, bad);
            msg->job.attempt = s_gen_int (rng, 1, INT32_MAX, bad);
            msg->job.flow = s_gen_text (rng, CW_MSG_FLOW_MAX, bad);
            msg->job.target = s_gen_text (rng, CW_MSG_FLOW_MAX, bad);
            msg->job.deadline_ms = s_gen_int (rng, 0, INT64_MAX, bad);
            if (!s_percent (rng, bad / 2))
                msg->job.envelope = s_gen_envelope (rng, bad * 2);
            break;
        case CW_MSG_RESULT: {
            size_t count =
                s_percent (rng, bad / 2)
                    ? (s_percent (rng, 80) ? 0 : CW_MSG_RESULTS_MAX + 1)
                    : 1 + s_below (rng, 3);
            for (size_t index = 0; index < count; index++) {
                cw_msg_result_t *result = cw_msg_result_add (msg);
                result->job_id = s_gen_int (rng, 0, INT64_MAX, bad / 2);
                result->attempt = s_gen_int (rng, 1, INT32_MAX, bad / 2);
                result->outcome = (cw_msg_outcome_t) (s_percent (rng, bad / 2)
                                                          ? 5 + s_below (rng, 3)
                                                          : s_below (rng, 5));
                result->http_status =
                    s_gen_int (rng, 0, CW_MSG_HTTP_STATUS_MAX, bad / 2);
                if (s_percent (rng, 40))
                    result->error = s_gen_text (rng, CW_MSG_TEXT_MAX, bad / 2);
                result->duration_ms = s_gen_int (rng, 0, INT64_MAX, bad / 2);
                result->retry_after_ms =
                    s_gen_optional (rng, 0, INT64_MAX, bad / 2);
                if (s_percent (rng, 50))
                    result->response = s_gen_object (rng, bad / 2);
            }
            msg->result.credit =
                s_gen_optional (rng, 1, CW_MSG_CREDIT_MAX, bad);
            break;
        }
        case CW_MSG_CREDIT:
            msg->credit.credit = s_gen_int (rng, 1, CW_MSG_CREDIT_MAX, bad);
            break;
        case CW_MSG_HEARTBEAT:
            break;
        case CW_MSG_DISCONNECT:
            msg->disconnect.reason = s_gen_text (rng, CW_MSG_TEXT_MAX, bad);
            break;
        case CW_MSG_CALL:
            msg->call.call_id = s_gen_int (rng, 0, INT64_MAX, bad);
            msg->call.flow = s_gen_text (rng, CW_MSG_FLOW_MAX, bad);
            msg->call.deadline_ms = s_gen_int (rng, 0, INT64_MAX, bad);
            if (!s_percent (rng, bad / 2))
                msg->call.envelope = s_gen_envelope (rng, bad * 2);
            break;
        case CW_MSG_REPLY:
            msg->reply.call_id = s_gen_int (rng, 0, INT64_MAX, bad);
            msg->reply.outcome =
                (cw_msg_outcome_t) (s_percent (rng, bad) ? 5 + s_below (rng, 3)
                                                         : s_below (rng, 5));
            msg->reply.http_status =
                s_gen_int (rng, 0, CW_MSG_HTTP_STATUS_MAX, bad);
            if (s_percent (rng, 50))
                msg->reply.error = s_gen_text (rng, CW_MSG_TEXT_MAX, bad);
            msg->reply.duration_ms = s_gen_int (rng, 0, INT64_MAX, bad);
            if (s_percent (rng, 60))
                msg->reply.response = s_gen_object (rng, bad * 2);
            break;
        case CW_MSG_ERROR:
            msg->error.code = s_gen_text (rng, CW_MSG_TOKEN_MAX, bad);
            msg->error.message = s_gen_text (rng, CW_MSG_TEXT_MAX, bad);
            msg->error.command = s_gen_optional (rng, 0, 255, bad);
            break;
        case CW_MSG_PUBLISH: {
            msg->publish.batch_id = s_gen_int (rng, 0, INT64_MAX, bad);
            static const char *islands[] = {"shop", "erp_mw-2", "Shop!", "a b"};
            if (s_percent (rng, bad))
                msg->publish.island =
                    s_percent (rng, 50)
                        ? strdup (islands[2 + s_below (rng, 2)])
                        : s_gen_text (rng, CW_MSG_TOKEN_MAX, 100);
            else
                msg->publish.island = strdup (islands[s_below (rng, 2)]);
            size_t count =
                s_percent (rng, bad / 2)
                    ? (s_percent (rng, 85) ? 0 : CW_MSG_EVENTS_MAX + 1)
                    : 1 + s_below (rng, 3);
            for (size_t index = 0; index < count; index++) {
                cw_envelope_t *envelope =
                    s_gen_envelope (rng, count > 3 ? 0 : bad);
                cw_msg_event_add (msg, &envelope);
            }
            break;
        }
        case CW_MSG_ACK: {
            msg->ack.batch_id = s_gen_int (rng, 0, INT64_MAX, bad);
            size_t counts[3];
            for (int list = 0; list < 3; list++)
                counts[list] = s_percent (rng, bad / 4) ? CW_MSG_EVENTS_MAX + 1
                                                        : s_below (rng, 3);
            for (size_t index = 0; index < counts[0]; index++)
                cw_msg_accepted_add (msg, "order:acme:o-1:1");
            for (size_t index = 0; index < counts[1]; index++) {
                char *key = s_gen_text (rng, CW_MSG_KEY_MAX, bad);
                cw_msg_duplicate_add (msg, key ? key : "k");
                free (key);
            }
            for (size_t index = 0; index < counts[2]; index++) {
                cw_msg_rejected_add (msg, "k", "r");
                cw_msg_rejection_t *rejection = &msg->ack.rejected[index];
                free (rejection->key);
                free (rejection->reason);
                rejection->key = s_gen_text (rng, CW_MSG_KEY_MAX, bad);
                rejection->reason = s_gen_text (rng, CW_MSG_TEXT_MAX, bad);
            }
            break;
        }
        case CW_MSG_REQUEST:
            msg->request.request_id = s_gen_int (rng, 0, INT64_MAX, bad);
            msg->request.op = s_gen_text (rng, CW_MSG_TOKEN_MAX, bad);
            if (s_percent (rng, 70))
                msg->request.args = s_gen_object (rng, bad * 2);
            break;
        case CW_MSG_RESPONSE:
            msg->response.request_id = s_gen_int (rng, 0, INT64_MAX, bad);
            if (s_percent (rng, 50))
                msg->response.result = s_gen_object (rng, bad * 2);
            if (s_percent (rng, 40)) {
                msg->response.error_code =
                    s_gen_text (rng, CW_MSG_TOKEN_MAX, bad);
                if (!msg->response.error_code)
                    msg->response.error_code = strdup ("internal");
                msg->response.error_message =
                    s_gen_text (rng, CW_MSG_TEXT_MAX, bad);
                if (s_percent (rng, 50))
                    msg->response.error_field =
                        s_gen_text (rng, CW_MSG_FIELD_MAX, bad);
            }
            break;
    }
    return msg;
}

//  The reference encoder: the bytes cw_msg_encode sends for a message
//  (PROTOCOL.md §3: keys in table order, optional keys left out, smallest
//  integers, canonical envelopes and free-form maps), written with no
//  checks at all. NULL strings and envelopes are written as nil.
static void
s_put_text (msgpack_packer *packer, const char *text)
{
    if (text)
        msgpack_pack_str_with_body (packer, text, strlen (text));
    else
        msgpack_pack_nil (packer);
}

static void
s_put_pair (msgpack_packer *packer, const char *key, const char *text)
{
    s_put_text (packer, key);
    s_put_text (packer, text);
}

static void
s_put_number (msgpack_packer *packer, const char *key, int64_t value)
{
    s_put_text (packer, key);
    msgpack_pack_int64 (packer, value);
}

static void
s_put_texts (msgpack_packer *packer,
             const char *key,
             char **texts,
             size_t count)
{
    s_put_text (packer, key);
    msgpack_pack_array (packer, count);
    for (size_t index = 0; index < count; index++)
        s_put_text (packer, texts[index]);
}

static void
s_put_map (msgpack_packer *packer, const char *key, const json_t *value)
{
    s_put_text (packer, key);
    if (value)
        cw_mpjson_pack (packer, value);
    else
        msgpack_pack_map (packer, 0);
}

static void
s_reference (const cw_msg_t *msg, msgpack_sbuffer *body)
{
    msgpack_sbuffer_init (body);
    msgpack_packer packer;
    msgpack_packer_init (&packer, body, msgpack_sbuffer_write);
    msgpack_packer *p = &packer;
    switch (msg->command) {
        case CW_MSG_READY:
            msgpack_pack_map (p, 3 + (msg->ready.targets_count > 0)
                                     + (msg->ready.name != NULL));
            s_put_number (p, "v", 1);
            s_put_texts (p, "flows", msg->ready.flows, msg->ready.flows_count);
            if (msg->ready.targets_count > 0)
                s_put_texts (p, "targets", msg->ready.targets,
                             msg->ready.targets_count);
            s_put_number (p, "credit", msg->ready.credit);
            if (msg->ready.name)
                s_put_pair (p, "name", msg->ready.name);
            break;
        case CW_MSG_JOB:
            msgpack_pack_map (p, 7);
            s_put_number (p, "v", 1);
            s_put_number (p, "job_id", msg->job.job_id);
            s_put_number (p, "attempt", msg->job.attempt);
            s_put_pair (p, "flow", msg->job.flow);
            s_put_pair (p, "target", msg->job.target);
            s_put_number (p, "deadline_ms", msg->job.deadline_ms);
            s_put_text (p, "envelope");
            cw_test_envelope_pack (p, msg->job.envelope);
            break;
        case CW_MSG_RESULT:
            msgpack_pack_map (p, 2 + (msg->result.credit != -1));
            s_put_number (p, "v", 1);
            s_put_text (p, "results");
            msgpack_pack_array (p, msg->result.results_count);
            for (size_t index = 0; index < msg->result.results_count; index++) {
                const cw_msg_result_t *result = &msg->result.results[index];
                msgpack_pack_map (p, 5 + (result->error != NULL)
                                         + (result->retry_after_ms != -1)
                                         + (result->response != NULL));
                s_put_number (p, "job_id", result->job_id);
                s_put_number (p, "attempt", result->attempt);
                s_put_pair (p, "outcome",
                            cw_msg_outcome_name (result->outcome));
                s_put_number (p, "http_status", result->http_status);
                if (result->error)
                    s_put_pair (p, "error", result->error);
                s_put_number (p, "duration_ms", result->duration_ms);
                if (result->retry_after_ms != -1)
                    s_put_number (p, "retry_after_ms", result->retry_after_ms);
                if (result->response)
                    s_put_map (p, "response", result->response);
            }
            if (msg->result.credit != -1)
                s_put_number (p, "credit", msg->result.credit);
            break;
        case CW_MSG_CREDIT:
            msgpack_pack_map (p, 2);
            s_put_number (p, "v", 1);
            s_put_number (p, "credit", msg->credit.credit);
            break;
        case CW_MSG_HEARTBEAT:
            msgpack_pack_map (p, 1);
            s_put_number (p, "v", 1);
            break;
        case CW_MSG_DISCONNECT:
            msgpack_pack_map (p, 2);
            s_put_number (p, "v", 1);
            s_put_pair (p, "reason", msg->disconnect.reason);
            break;
        case CW_MSG_CALL:
            msgpack_pack_map (p, 5);
            s_put_number (p, "v", 1);
            s_put_number (p, "call_id", msg->call.call_id);
            s_put_pair (p, "flow", msg->call.flow);
            s_put_number (p, "deadline_ms", msg->call.deadline_ms);
            s_put_text (p, "envelope");
            cw_test_envelope_pack (p, msg->call.envelope);
            break;
        case CW_MSG_REPLY:
            msgpack_pack_map (p, 5 + (msg->reply.error != NULL)
                                     + (msg->reply.response != NULL));
            s_put_number (p, "v", 1);
            s_put_number (p, "call_id", msg->reply.call_id);
            s_put_pair (p, "outcome", cw_msg_outcome_name (msg->reply.outcome));
            s_put_number (p, "http_status", msg->reply.http_status);
            if (msg->reply.error)
                s_put_pair (p, "error", msg->reply.error);
            s_put_number (p, "duration_ms", msg->reply.duration_ms);
            if (msg->reply.response)
                s_put_map (p, "response", msg->reply.response);
            break;
        case CW_MSG_ERROR:
            msgpack_pack_map (p, 3 + (msg->error.command != -1));
            s_put_number (p, "v", 1);
            s_put_pair (p, "code", msg->error.code);
            s_put_pair (p, "message", msg->error.message);
            if (msg->error.command != -1)
                s_put_number (p, "command", msg->error.command);
            break;
        case CW_MSG_PUBLISH:
            msgpack_pack_map (p, 4);
            s_put_number (p, "v", 1);
            s_put_number (p, "batch_id", msg->publish.batch_id);
            s_put_pair (p, "island", msg->publish.island);
            s_put_text (p, "events");
            msgpack_pack_array (p, msg->publish.events_count);
            for (size_t index = 0; index < msg->publish.events_count; index++)
                cw_test_envelope_pack (p, msg->publish.events[index]);
            break;
        case CW_MSG_ACK:
            msgpack_pack_map (p, 5);
            s_put_number (p, "v", 1);
            s_put_number (p, "batch_id", msg->ack.batch_id);
            s_put_texts (p, "accepted", msg->ack.accepted,
                         msg->ack.accepted_count);
            s_put_texts (p, "duplicates", msg->ack.duplicates,
                         msg->ack.duplicates_count);
            s_put_text (p, "rejected");
            msgpack_pack_array (p, msg->ack.rejected_count);
            for (size_t index = 0; index < msg->ack.rejected_count; index++) {
                msgpack_pack_map (p, 2);
                s_put_pair (p, "key", msg->ack.rejected[index].key);
                s_put_pair (p, "reason", msg->ack.rejected[index].reason);
            }
            break;
        case CW_MSG_REQUEST:
            msgpack_pack_map (p, 4);
            s_put_number (p, "v", 1);
            s_put_number (p, "request_id", msg->request.request_id);
            s_put_pair (p, "op", msg->request.op);
            s_put_map (p, "args", msg->request.args);
            break;
        case CW_MSG_RESPONSE: {
            const cw_msg_response_t *response = &msg->response;
            msgpack_pack_map (p, 3 + (response->result != NULL)
                                     + (response->error_code != NULL));
            s_put_number (p, "v", 1);
            s_put_number (p, "request_id", response->request_id);
            s_put_pair (p, "status", response->error_code ? "error" : "ok");
            if (response->result)
                s_put_map (p, "result", response->result);
            if (response->error_code) {
                s_put_text (p, "error");
                msgpack_pack_map (p, 2 + (response->error_field != NULL));
                s_put_pair (p, "code", response->error_code);
                s_put_pair (p, "message", response->error_message);
                if (response->error_field)
                    s_put_pair (p, "field", response->error_field);
            }
            break;
        }
    }
}

//  The envelopes a message carries
static size_t
s_envelopes (const cw_msg_t *msg, cw_envelope_t *const **envelopes_p)
{
    if (msg->command == CW_MSG_JOB) {
        *envelopes_p = &msg->job.envelope;
        return 1;
    }
    if (msg->command == CW_MSG_CALL) {
        *envelopes_p = &msg->call.envelope;
        return 1;
    }
    if (msg->command == CW_MSG_PUBLISH) {
        *envelopes_p = msg->publish.events;
        return msg->publish.events_count;
    }
    return 0;
}

static void
s_same_text (const char *expected,
             const char *actual,
             const char *field,
             int message)
{
    ck_assert_msg (
        (!expected && !actual)
            || (expected && actual && strcmp (expected, actual) == 0),
        "message %d: %s \"%s\" came back as \"%s\"", message, field,
        expected ? expected : "(null)", actual ? actual : "(null)");
}

static void
s_same_json (const json_t *expected,
             const json_t *actual,
             const char *field,
             int message)
{
    ck_assert_msg ((!expected && !actual) || json_equal (expected, actual),
                   "message %d: %s came back different", message, field);
}

static void
s_same_envelope (const cw_envelope_t *expected,
                 const cw_envelope_t *actual,
                 int message)
{
    ck_assert_ptr_nonnull (actual);
    s_same_text (cw_envelope_id (expected), cw_envelope_id (actual), "id",
                 message);
    s_same_text (cw_envelope_source (expected), cw_envelope_source (actual),
                 "source", message);
    s_same_text (cw_envelope_type (expected), cw_envelope_type (actual), "type",
                 message);
    s_same_text (cw_envelope_time (expected), cw_envelope_time (actual), "time",
                 message);
    s_same_text (cw_envelope_tenant_id (expected),
                 cw_envelope_tenant_id (actual), "tenantid", message);
    s_same_text (cw_envelope_correlation_id (expected),
                 cw_envelope_correlation_id (actual), "correlationid", message);
    s_same_text (cw_envelope_traceparent (expected),
                 cw_envelope_traceparent (actual), "traceparent", message);
    s_same_text (cw_envelope_idempotency_key (expected),
                 cw_envelope_idempotency_key (actual), "idempotencykey",
                 message);
    s_same_json (cw_envelope_data (expected), cw_envelope_data (actual), "data",
                 message);
}

//  Asserts that actual (decoded) holds every field of expected
static void
s_same_msg (const cw_msg_t *expected, const cw_msg_t *actual, int message)
{
    ck_assert_int_eq (actual->protocol, expected->protocol);
    ck_assert_int_eq (actual->command, expected->command);
    switch (expected->command) {
        case CW_MSG_READY:
            ck_assert_uint_eq (actual->ready.flows_count,
                               expected->ready.flows_count);
            for (size_t index = 0; index < expected->ready.flows_count; index++)
                s_same_text (expected->ready.flows[index],
                             actual->ready.flows[index], "flow", message);
            ck_assert_uint_eq (actual->ready.targets_count,
                               expected->ready.targets_count);
            for (size_t index = 0; index < expected->ready.targets_count;
                 index++)
                s_same_text (expected->ready.targets[index],
                             actual->ready.targets[index], "target", message);
            ck_assert_int_eq (actual->ready.credit, expected->ready.credit);
            s_same_text (expected->ready.name, actual->ready.name, "name",
                         message);
            break;
        case CW_MSG_JOB:
            ck_assert_int_eq (actual->job.job_id, expected->job.job_id);
            ck_assert_int_eq (actual->job.attempt, expected->job.attempt);
            s_same_text (expected->job.flow, actual->job.flow, "flow", message);
            s_same_text (expected->job.target, actual->job.target, "target",
                         message);
            ck_assert_int_eq (actual->job.deadline_ms,
                              expected->job.deadline_ms);
            s_same_envelope (expected->job.envelope, actual->job.envelope,
                             message);
            break;
        case CW_MSG_RESULT:
            ck_assert_uint_eq (actual->result.results_count,
                               expected->result.results_count);
            for (size_t index = 0; index < expected->result.results_count;
                 index++) {
                const cw_msg_result_t *want = &expected->result.results[index];
                const cw_msg_result_t *got = &actual->result.results[index];
                ck_assert_int_eq (got->job_id, want->job_id);
                ck_assert_int_eq (got->attempt, want->attempt);
                ck_assert_int_eq (got->outcome, want->outcome);
                ck_assert_int_eq (got->http_status, want->http_status);
                s_same_text (want->error, got->error, "error", message);
                ck_assert_int_eq (got->duration_ms, want->duration_ms);
                ck_assert_int_eq (got->retry_after_ms, want->retry_after_ms);
                s_same_json (want->response, got->response, "response",
                             message);
            }
            ck_assert_int_eq (actual->result.credit, expected->result.credit);
            break;
        case CW_MSG_CREDIT:
            ck_assert_int_eq (actual->credit.credit, expected->credit.credit);
            break;
        case CW_MSG_HEARTBEAT:
            break;
        case CW_MSG_DISCONNECT:
            s_same_text (expected->disconnect.reason, actual->disconnect.reason,
                         "reason", message);
            break;
        case CW_MSG_CALL:
            ck_assert_int_eq (actual->call.call_id, expected->call.call_id);
            s_same_text (expected->call.flow, actual->call.flow, "flow",
                         message);
            ck_assert_int_eq (actual->call.deadline_ms,
                              expected->call.deadline_ms);
            s_same_envelope (expected->call.envelope, actual->call.envelope,
                             message);
            break;
        case CW_MSG_REPLY:
            ck_assert_int_eq (actual->reply.call_id, expected->reply.call_id);
            ck_assert_int_eq (actual->reply.outcome, expected->reply.outcome);
            ck_assert_int_eq (actual->reply.http_status,
                              expected->reply.http_status);
            s_same_text (expected->reply.error, actual->reply.error, "error",
                         message);
            ck_assert_int_eq (actual->reply.duration_ms,
                              expected->reply.duration_ms);
            s_same_json (expected->reply.response, actual->reply.response,
                         "response", message);
            break;
        case CW_MSG_ERROR:
            s_same_text (expected->error.code, actual->error.code, "code",
                         message);
            s_same_text (expected->error.message, actual->error.message,
                         "message", message);
            ck_assert_int_eq (actual->error.command, expected->error.command);
            break;
        case CW_MSG_PUBLISH:
            ck_assert_int_eq (actual->publish.batch_id,
                              expected->publish.batch_id);
            s_same_text (expected->publish.island, actual->publish.island,
                         "island", message);
            ck_assert_uint_eq (actual->publish.events_count,
                               expected->publish.events_count);
            for (size_t index = 0; index < expected->publish.events_count;
                 index++)
                s_same_envelope (expected->publish.events[index],
                                 actual->publish.events[index], message);
            break;
        case CW_MSG_ACK:
            ck_assert_int_eq (actual->ack.batch_id, expected->ack.batch_id);
            ck_assert_uint_eq (actual->ack.accepted_count,
                               expected->ack.accepted_count);
            for (size_t index = 0; index < expected->ack.accepted_count;
                 index++)
                s_same_text (expected->ack.accepted[index],
                             actual->ack.accepted[index], "accepted", message);
            ck_assert_uint_eq (actual->ack.duplicates_count,
                               expected->ack.duplicates_count);
            for (size_t index = 0; index < expected->ack.duplicates_count;
                 index++)
                s_same_text (expected->ack.duplicates[index],
                             actual->ack.duplicates[index], "duplicate",
                             message);
            ck_assert_uint_eq (actual->ack.rejected_count,
                               expected->ack.rejected_count);
            for (size_t index = 0; index < expected->ack.rejected_count;
                 index++) {
                s_same_text (expected->ack.rejected[index].key,
                             actual->ack.rejected[index].key, "key", message);
                s_same_text (expected->ack.rejected[index].reason,
                             actual->ack.rejected[index].reason, "reason",
                             message);
            }
            break;
        case CW_MSG_REQUEST: {
            ck_assert_int_eq (actual->request.request_id,
                              expected->request.request_id);
            s_same_text (expected->request.op, actual->request.op, "op",
                         message);
            //  No args are sent as {}
            json_t *none = json_object ();
            s_same_json (expected->request.args ? expected->request.args : none,
                         actual->request.args, "args", message);
            json_decref (none);
            break;
        }
        case CW_MSG_RESPONSE:
            ck_assert_int_eq (actual->response.request_id,
                              expected->response.request_id);
            s_same_json (expected->response.result, actual->response.result,
                         "result", message);
            s_same_text (expected->response.error_code,
                         actual->response.error_code, "error.code", message);
            s_same_text (expected->response.error_message,
                         actual->response.error_message, "error.message",
                         message);
            s_same_text (expected->response.error_field,
                         actual->response.error_field, "error.field", message);
            break;
    }
}

START_TEST (test_encode_as_decode)
{
    s_rng_t rng = {S_SEED};
    int sent[S_COMMANDS] = {0};
    int refused[S_COMMANDS] = {0};
    int same_reason = 0;
    for (int message = 0; message < S_MESSAGES; message++) {
        size_t which = (size_t) message % S_COMMANDS;
        cw_msg_t *msg = s_gen_msg (&rng, s_commands[which]);
        const char *name = cw_msg_command_name (msg->command);

        //  What a peer says about the bytes the encoder would send
        msgpack_sbuffer body;
        s_reference (msg, &body);
        cw_msg_frame_t frames[3];
        uint8_t command;
        s_frames_for (msg->command, &body, frames, &command);
        char expected[CW_MSG_REASON_SIZE] = "";
        cw_msg_t *decoded =
            cw_msg_decode (frames, 3, NULL, expected, sizeof (expected));

        //  The encoder names a bad envelope in cw_envelope_validate's
        //  words, not the reader's: compare reasons only without one
        cw_envelope_t *const *envelopes;
        size_t envelope_count = s_envelopes (msg, &envelopes);
        bool envelopes_valid = true;
        for (size_t index = 0; index < envelope_count; index++)
            envelopes_valid &=
                envelopes[index]
                && cw_envelope_validate (envelopes[index], NULL, 0) == 0;

        char reason[CW_MSG_REASON_SIZE] = "";
        cw_msg_frames_t *encoded = cw_msg_encode (msg, reason, sizeof (reason));
        if (decoded) {
            ck_assert_msg (encoded != NULL,
                           "message %d (%s): the decoder accepts it, the "
                           "encoder refused: %s",
                           message, name, reason);
            //  The same bytes, and they decode to the same message
            ck_assert_int_eq (memcmp (encoded->frame[0].data, frames[0].data,
                                      CW_MSG_PROTOCOL_SIZE),
                              0);
            ck_assert_int_eq (*(uint8_t *) encoded->frame[1].data, command);
            ck_assert_uint_eq (encoded->frame[2].size, body.size);
            ck_assert_msg (memcmp (encoded->frame[2].data, body.data, body.size)
                               == 0,
                           "message %d (%s): other bytes than the reference",
                           message, name);
            cw_msg_t *copy =
                cw_msg_decode (encoded->frame, encoded->count, NULL, NULL, 0);
            ck_assert_ptr_nonnull (copy);
            s_same_msg (msg, copy, message);
            cw_msg_destroy (&copy);
            sent[which]++;
        }
        else {
            ck_assert_msg (encoded == NULL,
                           "message %d (%s): the encoder sent what the "
                           "decoder refuses: %s",
                           message, name, expected);
            ck_assert_msg (strncmp (reason, "field \"", 7) == 0
                               || strncmp (reason, "body", 4) == 0,
                           "message %d (%s): reason \"%s\" names no field",
                           message, name, reason);
            if (envelopes_valid && body.size <= CW_MSG_MAX_SIZE) {
                //  Same rules, same order, same words as the decoder
                ck_assert_msg (strcmp (reason, expected) == 0,
                               "message %d (%s): encoder says \"%s\", "
                               "decoder \"%s\"",
                               message, name, reason, expected);
                same_reason++;
            }
            refused[which]++;
        }
        cw_msg_frames_destroy (&encoded);
        cw_msg_destroy (&decoded);
        msgpack_sbuffer_destroy (&body);
        cw_msg_destroy (&msg);
    }
    //  Every command was both sent and refused (HEARTBEAT has no fields)
    for (size_t which = 0; which < S_COMMANDS; which++) {
        ck_assert_msg (sent[which] > 20, "%s: only %d sent",
                       cw_msg_command_name (s_commands[which]), sent[which]);
        if (s_commands[which] != CW_MSG_HEARTBEAT)
            ck_assert_msg (refused[which] > 20, "%s: only %d refused",
                           cw_msg_command_name (s_commands[which]),
                           refused[which]);
    }
    ck_assert_int_gt (same_reason, 500);
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
    tcase_add_test (malformed, test_unknown_keys);
    tcase_add_test (malformed, test_nested_fields);
    tcase_add_test (malformed, test_targets);
    tcase_add_test (malformed, test_name_check);
    tcase_add_test (malformed, test_oversize);
    suite_add_tcase (suite, malformed);
    TCase *property = tcase_create ("property");
    tcase_set_timeout (property, 120);
    tcase_add_test (property, test_encode_as_decode);
    suite_add_tcase (suite, property);
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
