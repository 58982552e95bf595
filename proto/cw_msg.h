/*  =========================================================================
    cw_msg - the CWP/1 wire codec (proto/PROTOCOL.md)

    The only code that touches CWP frames and body msgpack. Pure: no
    sockets. A message is a protocol id, a command and one body struct;
    cw_msg_encode turns it into three frames, cw_msg_decode turns frames
    back into a message, checking every rule of PROTOCOL.md §3-4 and
    naming the field in every rejection. The encoder runs the decoder's
    checks on what it produced, so nothing is ever sent that a peer would
    refuse; encode -> decode -> encode gives the same bytes.

    The struct is public (documented below). Strings and arrays in a
    message are malloc'd and owned by the message: set strings with
    strdup, or use the _add helpers; cw_msg_destroy frees everything.
    Optional integers hold -1 when absent. See docs/wire.md.
    =========================================================================
*/
#ifndef CW_MSG_H_INCLUDED
#define CW_MSG_H_INCLUDED

#include "cw_envelope.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Limits (bytes unless said otherwise); PROTOCOL.md §3-4
#define CW_MSG_MAX_SIZE (1024 * 1024)  //  A body frame
#define CW_MSG_FRAMES 3                //  Frames in every message
#define CW_MSG_PROTOCOL_SIZE 5         //  Frame 0
#define CW_MSG_VERSION 1               //  Body schema version, key "v"
#define CW_MSG_FLOWS_MAX 64            //  READY flows
#define CW_MSG_TARGETS_MAX 16          //  READY targets
#define CW_MSG_FLOW_MAX 64             //  A flow or target name
#define CW_MSG_NAME_MAX 128            //  READY name
#define CW_MSG_TEXT_MAX 1024           //  error, reason, message
#define CW_MSG_TOKEN_MAX 64            //  island, op, ERROR code
#define CW_MSG_FIELD_MAX 256           //  RESPONSE error field
#define CW_MSG_KEY_MAX 255             //  An idempotency key in ACK
#define CW_MSG_CREDIT_MAX 4096         //  READY / CREDIT credit
#define CW_MSG_RESULTS_MAX 1024        //  RESULT results
#define CW_MSG_EVENTS_MAX 1000         //  PUBLISH events, ACK keys
#define CW_MSG_HTTP_STATUS_MAX 999
#define CW_MSG_MAP_DEPTH_MAX 16  //  Levels in response/args/result
#define CW_MSG_REASON_SIZE 512   //  Enough for any reason text

//  Protocol ids (frame 0)
typedef enum {
    CW_MSG_WORKER,  //  "CWW01"
    CW_MSG_RELAY,   //  "CWR01"
    CW_MSG_CLIENT   //  "CWC01"
} cw_msg_protocol_t;

//  Commands (frame 1)
typedef enum {
    CW_MSG_READY = 0x01,
    CW_MSG_JOB = 0x02,
    CW_MSG_RESULT = 0x03,
    CW_MSG_CREDIT = 0x04,
    CW_MSG_HEARTBEAT = 0x05,
    CW_MSG_DISCONNECT = 0x06,
    CW_MSG_CALL = 0x07,
    CW_MSG_REPLY = 0x08,
    CW_MSG_ERROR = 0x0f,
    CW_MSG_PUBLISH = 0x10,
    CW_MSG_ACK = 0x11,
    CW_MSG_REQUEST = 0x20,
    CW_MSG_RESPONSE = 0x21
} cw_msg_command_t;

//  Who may send a command
typedef enum {
    CW_MSG_TO_BROKER,  //  peer -> broker only
    CW_MSG_TO_PEER,    //  broker -> peer only
    CW_MSG_BOTH_WAYS   //  HEARTBEAT, DISCONNECT
} cw_msg_direction_t;

//  Why a decode failed
typedef enum {
    CW_MSG_VALID = 0,            //  No error
    CW_MSG_MALFORMED,            //  Frame count, body bytes, keys, types
    CW_MSG_UNKNOWN_PROTOCOL,     //  Frame 0 is not a known protocol id
    CW_MSG_UNKNOWN_COMMAND,      //  Frame 1 unknown, or not of this protocol
    CW_MSG_UNSUPPORTED_VERSION,  //  Body "v" is an integer other than 1
    CW_MSG_TOO_LARGE             //  Body over CW_MSG_MAX_SIZE
} cw_msg_error_t;

//  Job / call outcomes (PROTOCOL.md §4.3)
typedef enum {
    CW_MSG_OUTCOME_OK,
    CW_MSG_OUTCOME_REJECTED,
    CW_MSG_OUTCOME_DUPLICATE,
    CW_MSG_OUTCOME_TRANSIENT,
    CW_MSG_OUTCOME_VERSION
} cw_msg_outcome_t;

//  One frame: a borrowed view (decode input) or an owned buffer (in
//  cw_msg_frames_t)
typedef struct {
    void *data;   //  Frame bytes
    size_t size;  //  Byte count
} cw_msg_frame_t;

//  Frames produced by cw_msg_encode; owns every data buffer
typedef struct {
    size_t count;                         //  Always CW_MSG_FRAMES
    cw_msg_frame_t frame[CW_MSG_FRAMES];  //  Owned buffers
} cw_msg_frames_t;

//  Bodies. Ints marked "opt" are -1 when absent.
typedef struct {
    char **flows;  //  1..64 flow names, each 1..64 bytes
    size_t flows_count;
    char **targets;  //  0..16 target names, each 1..64 bytes; 0 = absent
    size_t targets_count;
    int64_t credit;  //  1..4096
    char *name;      //  Optional, informational, <= 128 bytes
} cw_msg_ready_t;

typedef struct {
    int64_t job_id;           //  >= 0
    int64_t attempt;          //  >= 1
    char *flow;               //  <= 64 bytes
    char *target;             //  <= 64 bytes
    int64_t deadline_ms;      //  >= 0
    cw_envelope_t *envelope;  //  The event
} cw_msg_job_t;

typedef struct {
    int64_t job_id;   //  >= 0
    int64_t attempt;  //  >= 1
    cw_msg_outcome_t outcome;
    int64_t http_status;     //  0..999, 0 = no response came
    char *error;             //  Optional, <= 1024 bytes
    int64_t duration_ms;     //  >= 0
    int64_t retry_after_ms;  //  opt, >= 0
    json_t *response;        //  Optional JSON object
} cw_msg_result_t;

typedef struct {
    cw_msg_result_t *results;  //  1..1024 results
    size_t results_count;
    int64_t credit;  //  opt, 1..4096
} cw_msg_results_t;

typedef struct {
    int64_t credit;  //  1..4096
} cw_msg_credit_t;

typedef struct {
    char *reason;  //  <= 1024 bytes
} cw_msg_disconnect_t;

typedef struct {
    int64_t call_id;      //  >= 0
    char *flow;           //  <= 64 bytes
    int64_t deadline_ms;  //  >= 0
    cw_envelope_t *envelope;
} cw_msg_call_t;

typedef struct {
    int64_t call_id;  //  >= 0
    cw_msg_outcome_t outcome;
    int64_t http_status;  //  0..999
    char *error;          //  Optional, <= 1024 bytes
    int64_t duration_ms;  //  >= 0
    json_t *response;     //  Optional JSON object
} cw_msg_reply_t;

typedef struct {
    char *code;       //  e.g. "forbidden", <= 64 bytes
    char *message;    //  <= 1024 bytes
    int64_t command;  //  opt, 0..255: the refused command byte
} cw_msg_error_body_t;

typedef struct {
    int64_t batch_id;        //  >= 0
    char *island;            //  <= 64 bytes
    cw_envelope_t **events;  //  1..1000 envelopes
    size_t events_count;
} cw_msg_publish_t;

typedef struct {
    char *key;     //  Idempotency key, <= 255 bytes
    char *reason;  //  <= 1024 bytes
} cw_msg_rejection_t;

typedef struct {
    int64_t batch_id;  //  As in PUBLISH
    char **accepted;   //  0..1000 keys
    size_t accepted_count;
    char **duplicates;  //  0..1000 keys
    size_t duplicates_count;
    cw_msg_rejection_t *rejected;  //  0..1000
    size_t rejected_count;
} cw_msg_ack_t;

typedef struct {
    int64_t request_id;  //  >= 0
    char *op;            //  e.g. "dlq.list", <= 64 bytes
    json_t *args;        //  JSON object; NULL is sent as {}
} cw_msg_request_t;

typedef struct {
    int64_t request_id;  //  As in REQUEST
    json_t *result;      //  Optional JSON object
    //  status is "error" exactly when error_code is set
    char *error_code;     //  <= 64 bytes
    char *error_message;  //  <= 1024 bytes, required with code
    char *error_field;    //  Optional, <= 256 bytes
} cw_msg_response_t;

typedef struct {
    cw_msg_protocol_t protocol;
    cw_msg_command_t command;
    union {  //  The member named after command
        cw_msg_ready_t ready;
        cw_msg_job_t job;
        cw_msg_results_t result;
        cw_msg_credit_t credit;
        cw_msg_disconnect_t disconnect;
        cw_msg_call_t call;
        cw_msg_reply_t reply;
        cw_msg_error_body_t error;
        cw_msg_publish_t publish;
        cw_msg_ack_t ack;
        cw_msg_request_t request;
        cw_msg_response_t response;
    };  //  HEARTBEAT has no fields
} cw_msg_t;

//  Create a message with an empty body (optional ints -1). The command
//  must belong to the protocol (cw_msg_command_valid).
//  Caller owns return value and must destroy it when done.
cw_msg_t *cw_msg_new (cw_msg_protocol_t protocol, cw_msg_command_t command);

//  Destroy a message and everything it owns; tolerates NULL, nulls *self_p.
void cw_msg_destroy (cw_msg_t **self_p);

//  Append helpers: copy the string / take the envelope (nulls *envelope_p).
//  cw_msg_result_add returns a zeroed result (optional ints -1) owned by
//  the message, valid until the next cw_msg_result_add.
void cw_msg_flow_add (cw_msg_t *self, const char *flow);
void cw_msg_target_add (cw_msg_t *self, const char *target);
cw_msg_result_t *cw_msg_result_add (cw_msg_t *self);
void cw_msg_event_add (cw_msg_t *self, cw_envelope_t **envelope_p);
void cw_msg_accepted_add (cw_msg_t *self, const char *key);
void cw_msg_duplicate_add (cw_msg_t *self, const char *key);
void cw_msg_rejected_add (cw_msg_t *self, const char *key, const char *reason);

//  Checks name as the flow and target names READY and JOB carry obey:
//  1 to CW_MSG_FLOW_MAX bytes of UTF-8. 0, or -1 with the rule broken in
//  reason (as the decoder words it).
int cw_msg_name_check (const char *name, char *reason, size_t size);

//  Encode to three frames. Returns NULL with reason naming the field if
//  the message breaks a rule (the same rules the decoder applies).
//  Caller owns return value and must destroy it when done.
cw_msg_frames_t *
cw_msg_encode (const cw_msg_t *self, char *reason, size_t reason_size);

//  Destroy frames; tolerates NULL, nulls *self_p.
void cw_msg_frames_destroy (cw_msg_frames_t **self_p);

//  Decode count frames (borrowed). Returns NULL and sets *error_p (may be
//  NULL) and reason, e.g. field "results[3].outcome": unknown outcome
//  "okay". Commands of both directions are accepted: the broker checks
//  the sender with cw_msg_allowed.
//  Caller owns return value and must destroy it when done.
cw_msg_t *cw_msg_decode (const cw_msg_frame_t *frames,
                         size_t count,
                         cw_msg_error_t *error_p,
                         char *reason,
                         size_t reason_size);

//  True if role ("worker", "relay:<island>", "admin") may send command
//  on protocol (PROTOCOL.md §4, §8). Commands the broker sends are
//  allowed for no role. Unknown roles are allowed nothing.
bool cw_msg_allowed (const char *role,
                     cw_msg_protocol_t protocol,
                     cw_msg_command_t command);

//  The island of a "relay:<island>" role, or NULL for any other role.
//  PUBLISH's island must equal it (§4.8). Returns a pointer into role.
const char *cw_msg_role_island (const char *role);

//  True if command (a frame 1 byte) belongs to protocol.
bool cw_msg_command_valid (cw_msg_protocol_t protocol, int command);

cw_msg_direction_t cw_msg_direction (cw_msg_command_t command);

//  Names: "READY", "CWW01", "ok", "malformed"... Unknown values give "?".
const char *cw_msg_command_name (cw_msg_command_t command);
const char *cw_msg_protocol_id (cw_msg_protocol_t protocol);
const char *cw_msg_outcome_name (cw_msg_outcome_t outcome);
const char *cw_msg_error_name (cw_msg_error_t error);

//  The ERROR code the broker answers a decode error with:
//  "unsupported_version" or "malformed".
const char *cw_msg_error_code (cw_msg_error_t error);

//  Parse an outcome name. Returns 0, or -1 if unknown.
int cw_msg_outcome_parse (const char *name, cw_msg_outcome_t *outcome_p);

#ifdef __cplusplus
}
#endif

#endif
