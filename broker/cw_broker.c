/*  =========================================================================
    cw_broker - the broker actor: ROUTER + CURVE + timers around cw_core

    See cw_broker.h. One loop: the pipe, the ROUTER and the store actor,
    with the core's next deadline as timeout. Network input never asserts:
    every message is decoded by cw_msg, checked against the sender's role
    and then turned into core events; the core's actions become messages
    and store requests.
    =========================================================================
*/
#include "cw_broker.h"
#include "cw_curve.h"
#include "cw_event.h"
#include "cw_http.h"
#include "cw_log.h"
#include "cw_msg.h"
#include "cw_store.h"
#include "cw_version.h"
#include "cw_zap.h"

#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CW_BROKER_TICK_MAX 1000         //  Longest poll wait, msec
#define CW_BROKER_NAME_SIZE 80          //  Hex routing id + NUL
#define CW_BROKER_INT_SIZE 32
#define CW_BROKER_LINGER 1000           //  Flush DISCONNECTs on exit, msec
#define CW_BROKER_DEFAULT_TARGET "default"
#define CW_BROKER_EXPIRE_MSEC 1000      //  Expired-lease sweep, poll off
#define CW_BROKER_FRAME_SLACK 1024     //  Over a body, in maxmsgsize
#define CW_BROKER_PEER_IDLE_MIN 1000    //  Least silence before a peer
                                        //  record is forgotten, msec

//  What GET /healthz and /metrics serve (libmicrohttpd's threads), as
//  the broker loop last wrote it: the loop renders both every
//  CW_BROKER_METRICS_MSEC and swaps them in under the lock; the handlers
//  only copy them out. Nothing else of the broker is shared.
typedef struct {
    pthread_mutex_t lock;
    char *metrics;              //  Prometheus text exposition, owned
    char *health;               //  /healthz JSON body, owned
    bool healthy;               //  200 (else 503)
} s_health_t;

//  One connected peer, by routing id.
typedef struct {
    zframe_t *routing;          //  Routing id frame
    char name [CW_BROKER_NAME_SIZE];    //  Hex of the routing id
    char *user_id;              //  CURVE public key (Z85)
    char *role;                 //  ZAP role
    char *address;              //  Peer-Address of its connection
    int malformed;              //  Malformed messages in a row
    int64_t seen_at;            //  Its last message (msec)
    int64_t logged_at;          //  Last malformed log line (msec)
    int64_t held_back;          //  Malformed lines not logged since
} s_peer_t;

//  A sync call out to a worker.
typedef struct {
    int64_t call_id;
    char peer [CW_BROKER_NAME_SIZE];    //  The admin client to answer
    int64_t request_id;         //  Its REQUEST id
    char worker [CW_BROKER_NAME_SIZE];  //  The worker it went to, once sent
    int64_t deadline_msec;      //  Its deadline_ms, once sent
    int64_t due_at;             //  No REPLY by then: given up (0 unsent)
    char *flow;
    cw_envelope_t *envelope;
} s_call_t;

typedef struct {
    zsock_t *pipe;              //  Actor pipe
    zsock_t *router;            //  The ROUTER, CURVE server
    zactor_t *monitor;          //  Handshake monitor
    zactor_t *store;            //  SQL actor for all but claims (its
                                //  answers come back in the order asked)
    zactor_t *claims;           //  SQL actor for CLAIM, on a connection of
                                //  its own, so claims overlap commits
    int64_t last_token;         //  Lease tokens given so far
    cw_core_t *core;            //  Decisions
    cw_version_t *versions;     //  Contract versions (PUBLISH)
    zhashx_t *peers;            //  s_peer_t by name
    zhashx_t *calls;            //  s_call_t by call id text
    int64_t next_call_id;
    int64_t lease_msec;
    int64_t drain_msec;
    int64_t peer_idle_msec;     //  Silent this long: a peer is forgotten
    int64_t call_grace_msec;    //  A REPLY may come this late after the
                                //  call's deadline (a worker's liveness)
    int64_t sweep_at;           //  Next look for silent peers (msec)
    const cw_broker_route_t *routes;
    size_t route_count;
    bool draining;              //  DRAIN received
    bool exited;                //  Core said EXIT
    size_t store_outstanding;   //  Requests not yet back
    //  Counters
    uint64_t malformed;
    uint64_t forbidden;
    uint64_t unknown_session;
    uint64_t published;
    uint64_t duplicates;
    uint64_t rejected;
    uint64_t commit_lost;
    char *replay_policy;        //  JSON {flow: max_attempts} of retry/flows
    int64_t replay_max_attempts;    //  retry/max_attempts
    int64_t replay_rate;        //  replay/rate
    bool db_up;                 //  The last store request succeeded
    json_t *gauges;             //  The store's last GAUGES, or NULL
    cw_http_t *http;            //  /healthz and /metrics, or NULL
    s_health_t health;          //  What they serve
    int64_t health_at;          //  Next rendering (s_now)
} s_broker_t;

//  The broker's clock, for the core and every timer of the shell: a
//  monotonic one, so that a step of the wall clock (NTP, a resumed VM)
//  neither freezes the broker (no heartbeats, no claims until the wall
//  clock catches up) nor expires every lease and worker at once. It
//  never meets the database's clock: the store turns times into
//  intervals (cw_store.h, cw_store_req_t.now).
static int64_t
s_now (void)
{
    return zclock_mono ();
}

static void
s_peer_destroy (s_peer_t **self_p)
{
    s_peer_t *self = *self_p;
    if (self) {
        zframe_destroy (&self->routing);
        free (self->user_id);
        free (self->role);
        free (self->address);
        free (self);
        *self_p = NULL;
    }
}

static void
s_call_destroy (s_call_t **self_p)
{
    s_call_t *self = *self_p;
    if (self) {
        free (self->flow);
        cw_envelope_destroy (&self->envelope);
        free (self);
        *self_p = NULL;
    }
}

static void
s_hex (const byte *data, size_t size, char *name, size_t name_size)
{
    static const char digits [] = "0123456789abcdef";
    size_t at = 0;
    for (size_t index = 0; index < size && at + 2 < name_size; index++) {
        name [at++] = digits [data [index] >> 4];
        name [at++] = digits [data [index] & 15];
    }
    name [at] = 0;
}

static void
s_id_text (char *text, size_t size, int64_t value)
{
    snprintf (text, size, "%" PRId64, value);
}

//  --- Sending ---------------------------------------------------------------

//  Encodes msg and sends it to the peer, if known; msg stays the caller's.
static void
s_send_msg (s_broker_t *self, const char *peer_name, const cw_msg_t *msg)
{
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, peer_name);
    char reason [CW_MSG_REASON_SIZE];
    cw_msg_frames_t *frames = peer ? cw_msg_encode (msg, reason, sizeof (reason))
                                   : NULL;
    if (peer && !frames)
        cw_log (CW_LOG_ERROR, "encode_failed", "cannot encode a message",
                "command", cw_msg_command_name (msg->command),
                "reason", reason, NULL);
    if (frames) {
        zmsg_t *out = zmsg_new ();
        zmsg_append (out, &(zframe_t *) { zframe_dup (peer->routing) });
        for (size_t index = 0; index < frames->count; index++)
            zmsg_addmem (out, frames->frame [index].data,
                         frames->frame [index].size);
        zmsg_send (&out, self->router);
        zmsg_destroy (&out);
        cw_msg_frames_destroy (&frames);
    }
}

//  Sends a message (destroys it, nulls *msg_p).
static void
s_send (s_broker_t *self, const char *peer_name, cw_msg_t **msg_p)
{
    s_send_msg (self, peer_name, *msg_p);
    cw_msg_destroy (msg_p);
}

static void
s_send_error (s_broker_t *self, const char *peer, cw_msg_protocol_t protocol,
              const char *code, const char *message, int command)
{
    cw_msg_t *msg = cw_msg_new (protocol, CW_MSG_ERROR);
    msg->error.code = strdup (code);
    msg->error.message = strdup (message);
    msg->error.command = command;
    s_send (self, peer, &msg);
}

static void
s_send_simple (s_broker_t *self, const char *peer, cw_msg_protocol_t protocol,
               cw_msg_command_t command, const char *reason)
{
    cw_msg_t *msg = cw_msg_new (protocol, command);
    if (command == CW_MSG_DISCONNECT)
        msg->disconnect.reason = strdup (reason ? reason : "shutdown");
    s_send (self, peer, &msg);
}

static void
s_respond_error (s_broker_t *self, const char *peer, int64_t request_id,
                 const char *code, const char *message, const char *field)
{
    cw_msg_t *msg = cw_msg_new (CW_MSG_CLIENT, CW_MSG_RESPONSE);
    msg->response.request_id = request_id;
    msg->response.error_code = strdup (code);
    msg->response.error_message = strdup (message);
    if (field)
        msg->response.error_field = strdup (field);
    s_send (self, peer, &msg);
}

static void
s_respond (s_broker_t *self, const char *peer, int64_t request_id,
           json_t **result_p)
{
    cw_msg_t *msg = cw_msg_new (CW_MSG_CLIENT, CW_MSG_RESPONSE);
    msg->response.request_id = request_id;
    msg->response.result = *result_p;
    *result_p = NULL;
    s_send (self, peer, &msg);
}

//  --- Core actions -------------------------------------------------------------

static void
s_store_send (s_broker_t *self, cw_store_req_t **req_p)
{
    zactor_t *actor = (*req_p)->op == CW_STORE_CLAIM ? self->claims
                                                     : self->store;
    (*req_p)->now = s_now ();
    if (cw_store_send (actor, req_p) == 0)
        self->store_outstanding++;
}

static void
s_action (s_broker_t *self, const cw_core_action_t *action)
{
    switch (action->type) {
        case CW_CORE_SEND_JOB: {
            cw_msg_t *msg = cw_msg_new (CW_MSG_WORKER, CW_MSG_JOB);
            msg->job.job_id = action->job_id;
            msg->job.attempt = action->attempt;
            msg->job.flow = strdup (action->flow);
            msg->job.target = strdup (action->target ? action->target
                                                     : CW_BROKER_DEFAULT_TARGET);
            msg->job.deadline_ms = action->deadline_msec;
            //  The core's envelope, borrowed for the encoding: no copy
            msg->job.envelope = (cw_envelope_t *) action->payload;
            s_send_msg (self, action->worker, msg);
            msg->job.envelope = NULL;
            cw_msg_destroy (&msg);
            break;
        }
        case CW_CORE_SEND_CALL: {
            char key [CW_BROKER_INT_SIZE];
            s_id_text (key, sizeof (key), action->call_id);
            s_call_t *call = (s_call_t *) zhashx_lookup (self->calls, key);
            if (!call)
                break;
            cw_msg_t *msg = cw_msg_new (CW_MSG_WORKER, CW_MSG_CALL);
            msg->call.call_id = action->call_id;
            msg->call.flow = strdup (call->flow);
            msg->call.deadline_ms = action->deadline_msec;
            msg->call.envelope = cw_envelope_dup (call->envelope);
            snprintf (call->worker, sizeof (call->worker), "%s",
                      action->worker);
            call->deadline_msec = action->deadline_msec;
            call->due_at = s_now () + action->deadline_msec
                         + self->call_grace_msec;
            s_send (self, action->worker, &msg);
            break;
        }
        case CW_CORE_CALL_FAILED: {
            char key [CW_BROKER_INT_SIZE];
            s_id_text (key, sizeof (key), action->call_id);
            s_call_t *call = (s_call_t *) zhashx_lookup (self->calls, key);
            if (call) {
                s_respond_error (self, call->peer, call->request_id,
                                 "call_failed",
                                 action->reason ? action->reason : "call failed",
                                 NULL);
                zhashx_delete (self->calls, key);
            }
            break;
        }
        case CW_CORE_SEND_HEARTBEAT:
            s_send_simple (self, action->worker, CW_MSG_WORKER,
                           CW_MSG_HEARTBEAT, NULL);
            break;
        case CW_CORE_SEND_DISCONNECT:
            s_send_simple (self, action->worker, CW_MSG_WORKER,
                           CW_MSG_DISCONNECT, action->reason);
            break;
        case CW_CORE_CLAIM: {
            cw_store_req_t *req = cw_store_req_new (CW_STORE_CLAIM);
            req->batch_id = action->batch_id;
            req->lease_token = ++self->last_token;
            req->limit = action->limit;
            req->lease_msec = action->lease_msec;
            req->flows = (char **) calloc (action->flow_count + 1, sizeof (char *));
            req->flow_targets = (char **) calloc (action->flow_count + 1,
                                                  sizeof (char *));
            assert (req->flows && req->flow_targets);
            for (size_t index = 0; index < action->flow_count; index++) {
                req->flows [index] = strdup (action->flows [index]);
                req->flow_targets [index] = action->flow_targets [index]
                                          ? strdup (action->flow_targets [index])
                                          : NULL;
            }
            req->flow_count = action->flow_count;
            s_store_send (self, &req);
            break;
        }
        case CW_CORE_COMMIT: {
            cw_store_req_t *req = cw_store_req_new (CW_STORE_COMMIT);
            req->batch_id = action->batch_id;
            req->transitions = (cw_core_transition_t *) calloc (
                action->transition_count + 1, sizeof (cw_core_transition_t));
            assert (req->transitions);
            for (size_t index = 0; index < action->transition_count; index++) {
                cw_core_transition_t *t = &req->transitions [index];
                *t = action->transitions [index];
                t->worker = t->worker ? strdup (t->worker) : NULL;
                t->error = t->error ? strdup (t->error) : NULL;
            }
            req->transition_count = action->transition_count;
            s_store_send (self, &req);
            break;
        }
        case CW_CORE_RENEW:
        case CW_CORE_RELEASE: {
            cw_store_req_t *req = cw_store_req_new (
                action->type == CW_CORE_RENEW ? CW_STORE_RENEW : CW_STORE_RELEASE);
            req->batch_id = action->batch_id;
            req->job_ids = (int64_t *) calloc (action->job_count + 1,
                                               sizeof (int64_t));
            req->lease_tokens = (int64_t *) calloc (action->job_count + 1,
                                                    sizeof (int64_t));
            assert (req->job_ids && req->lease_tokens);
            memcpy (req->job_ids, action->job_ids,
                    action->job_count * sizeof (int64_t));
            memcpy (req->lease_tokens, action->lease_tokens,
                    action->job_count * sizeof (int64_t));
            req->job_count = action->job_count;
            req->lease_expires_at = action->lease_expires_at;
            s_store_send (self, &req);
            break;
        }
        case CW_CORE_EXIT:
            self->exited = true;
            break;
    }
}

static void
s_actions (s_broker_t *self)
{
    const cw_core_action_t *action;
    while ((action = cw_core_next_action (self->core)))
        s_action (self, action);
}

//  --- Store answers ------------------------------------------------------------

static void
s_store_answer (s_broker_t *self, cw_store_req_t *req)
{
    int64_t now = s_now ();
    //  WAKE and GAUGES come unasked
    if (req->op != CW_STORE_WAKE && req->op != CW_STORE_GAUGES
    &&  self->store_outstanding > 0)
        self->store_outstanding--;
    if (req->op != CW_STORE_WAKE)
        self->db_up = req->status == 0;
    switch (req->op) {
        case CW_STORE_CLAIM:
            if (req->status == 0)
                cw_core_on_jobs_claimed (self->core, now, req->batch_id,
                                         req->jobs, req->jobs_count);
            else
                cw_core_on_claim_failed (self->core, now, req->batch_id);
            break;
        case CW_STORE_COMMIT:
            if (req->status == 0) {
                for (size_t index = 0; index < req->lost_count; index++) {
                    char id [CW_BROKER_INT_SIZE];
                    s_id_text (id, sizeof (id), req->lost [index]);
                    cw_log (CW_LOG_WARN, "commit_lease_lost",
                            "result not recorded: lease was lost",
                            "#job_id", id, NULL);
                }
                self->commit_lost += req->lost_count;
                cw_core_on_commit_done (self->core, now, req->batch_id);
                //  A done head may unblock its ordering key's next job
                if (!self->draining)
                    cw_core_on_wake (self->core, now);
            }
            else
                cw_core_on_commit_failed (self->core, now, req->batch_id);
            break;
        case CW_STORE_RENEW:
            if (req->status == 0)
                cw_core_on_renew_done (self->core, now, req->batch_id,
                                       req->lost, req->lost_count);
            else
                cw_core_on_renew_failed (self->core, now, req->batch_id);
            break;
        case CW_STORE_RELEASE:
            break;
        case CW_STORE_PUBLISH: {
            cw_msg_t *ack = cw_msg_new (CW_MSG_RELAY, CW_MSG_ACK);
            ack->ack.batch_id = req->publish_batch_id;
            char peer [CW_BROKER_NAME_SIZE];
            s_hex (zframe_data (req->peer), zframe_size (req->peer), peer,
                   sizeof (peer));
            if (req->status != 0) {
                //  No ACK: the relay publishes the batch again
                cw_msg_destroy (&ack);
                cw_log (CW_LOG_WARN, "publish_failed",
                        "batch not committed; relay will retry",
                        "island", req->source, "error", req->error, NULL);
                break;
            }
            for (size_t index = 0; index < req->event_count; index++) {
                cw_store_event_t *event = &req->events [index];
                const char *key = cw_envelope_idempotency_key (event->envelope);
                if (event->duplicate) {
                    cw_msg_duplicate_add (ack, key);
                    self->duplicates++;
                }
                else {
                    cw_msg_accepted_add (ack, key);
                    self->published++;
                }
            }
            //  Rejections were decided before the store saw the batch
            cw_msg_t *rejected = (cw_msg_t *) req->rejections;
            for (size_t index = 0; rejected && index < rejected->ack.rejected_count;
                 index++)
                cw_msg_rejected_add (ack, rejected->ack.rejected [index].key,
                                     rejected->ack.rejected [index].reason);
            cw_core_on_jobs_claimed (self->core, now, 0, req->jobs,
                                     req->jobs_count);
            s_send (self, peer, &ack);
            break;
        }
        case CW_STORE_WAKE:
            if (!self->draining)
                cw_core_on_wake (self->core, now);
            break;
        case CW_STORE_GAUGES:
            if (req->status == 0) {
                json_decref (self->gauges);
                self->gauges = req->gauges;
                req->gauges = NULL;
            }
            break;
        case CW_STORE_ADMIN: {
            char peer [CW_BROKER_NAME_SIZE];
            s_hex (zframe_data (req->peer), zframe_size (req->peer), peer,
                   sizeof (peer));
            if (req->status != 0) {
                s_respond_error (self, peer, req->request_id, "unavailable",
                                 "the database did not answer; nothing "
                                 "changed, ask again", NULL);
                break;
            }
            bool discard = streq (req->admin_op, "dlq.discard");
            json_t *changed = json_object_get (req->admin_result,
                                               discard ? "discarded"
                                                       : "replayed");
            if (json_array_size (changed) > 0) {
                char count [CW_BROKER_INT_SIZE];
                s_id_text (count, sizeof (count),
                           (int64_t) json_array_size (changed));
                cw_log (CW_LOG_INFO, discard ? "discarded" : "replayed",
                        discard ? "dead jobs discarded"
                                : "dead jobs replayed",
                        "tenant", json_string_value (json_object_get (
                            req->admin_args, "tenant")),
                        "actor", req->admin_actor, "reason",
                        json_string_value (json_object_get (req->admin_args,
                                                            "reason")),
                        "#count", count, NULL);
                //  Ready now, or their keys' next jobs are: claim (an
                //  UPDATE sends no NOTIFY)
                if (!self->draining)
                    cw_core_on_wake (self->core, now);
            }
            s_respond (self, peer, req->request_id, &req->admin_result);
            break;
        }
    }
    s_actions (self);
}

//  --- Network input -------------------------------------------------------------

static cw_core_outcome_t
s_outcome (cw_msg_outcome_t outcome)
{
    switch (outcome) {
        case CW_MSG_OUTCOME_OK:        return CW_CORE_OK;
        case CW_MSG_OUTCOME_REJECTED:  return CW_CORE_REJECTED;
        case CW_MSG_OUTCOME_DUPLICATE: return CW_CORE_DUPLICATE;
        case CW_MSG_OUTCOME_TRANSIENT: return CW_CORE_TRANSIENT;
        case CW_MSG_OUTCOME_VERSION:   return CW_CORE_VERSION;
    }
    return CW_CORE_TRANSIENT;
}

static s_peer_t *
s_peer_require (s_broker_t *self, zframe_t *routing, zframe_t *frame)
{
    char name [CW_BROKER_NAME_SIZE];
    s_hex (zframe_data (routing), zframe_size (routing), name, sizeof (name));
    const char *user_id = zframe_meta (frame, "User-Id");
    const char *role = zframe_meta (frame, "role");
    const char *address = zframe_meta (frame, "Peer-Address");
    user_id = user_id ? user_id : "unknown";
    role = role ? role : "";
    address = address ? address : "unknown";
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, name);
    if (peer && (!streq (peer->user_id, user_id) || !streq (peer->role, role))) {
        //  Another connection took the routing id (a peer may choose its
        //  own): the one before is gone, and so is its session
        cw_log (CW_LOG_INFO, "peer_replaced",
                "routing id taken by another key: previous session ended",
                "peer", name, "user_id", user_id, "role", role,
                "previous_user_id", peer->user_id, "peer_address", address,
                NULL);
        cw_core_on_worker_gone (self->core, s_now (), name);
        zhashx_delete (self->peers, name);
        peer = NULL;
    }
    if (!peer) {
        peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
        peer->routing = zframe_dup (routing);
        memcpy (peer->name, name, sizeof (name));
        peer->user_id = strdup (user_id);
        peer->role = strdup (role);
        peer->address = strdup (address);
        zhashx_insert (self->peers, name, peer);
    }
    peer->seen_at = s_now ();
    return peer;
}

//  Gives up on calls whose worker is alive but sent no REPLY by the
//  call's deadline plus a worker's liveness: the caller gets
//  call_failed, the core frees the worker's and the target's room. A
//  REPLY after that is ignored as late.
static void
s_calls_overdue (s_broker_t *self, int64_t now)
{
    zlistx_t *late = zlistx_new ();
    for (s_call_t *call = (s_call_t *) zhashx_first (self->calls); call;
         call = (s_call_t *) zhashx_next (self->calls))
        if (call->due_at && now >= call->due_at)
            zlistx_add_end (late, call);
    for (s_call_t *call = (s_call_t *) zlistx_first (late); call;
         call = (s_call_t *) zlistx_next (late)) {
        char id [CW_BROKER_INT_SIZE], deadline [CW_BROKER_INT_SIZE];
        s_id_text (id, sizeof (id), call->call_id);
        s_id_text (deadline, sizeof (deadline), call->deadline_msec);
        cw_log (CW_LOG_WARN, "call_overdue",
                "no REPLY by the call's deadline; caller answered call_failed",
                "#call_id", id, "worker", call->worker, "flow", call->flow,
                "#deadline_ms", deadline, NULL);
        char reason [128];
        snprintf (reason, sizeof (reason),
                  "no reply within the call's deadline (%s ms)", deadline);
        s_respond_error (self, call->peer, call->request_id, "call_failed",
                         reason, NULL);
        cw_core_on_call_done (self->core, now, call->call_id);
        zhashx_delete (self->calls, id);
    }
    zlistx_destroy (&late);
    s_actions (self);
}

//  True when a sync call still has to answer this peer.
static bool
s_peer_awaits_call (s_broker_t *self, const char *name)
{
    for (s_call_t *call = (s_call_t *) zhashx_first (self->calls); call;
         call = (s_call_t *) zhashx_next (self->calls))
        if (streq (call->peer, name))
            return true;
    return false;
}

//  Forgets peers silent for peer_idle_msec (twice a worker's liveness):
//  workers that died or were forgotten by the core, relays and admin
//  clients that went away without DISCONNECT. Without this every
//  connection ever made kept its record for the life of the broker. A
//  peer that speaks again gets a new record; one a call still has to
//  answer is kept.
static void
s_peers_sweep (s_broker_t *self, int64_t now)
{
    zlistx_t *silent = zlistx_new ();
    for (s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers); peer;
         peer = (s_peer_t *) zhashx_next (self->peers))
        if (now - peer->seen_at > self->peer_idle_msec
        &&  !s_peer_awaits_call (self, peer->name))
            zlistx_add_end (silent, peer->name);
    for (char *name = (char *) zlistx_first (silent); name;
         name = (char *) zlistx_next (silent)) {
        cw_log (CW_LOG_DEBUG, "peer_forgotten", "silent peer forgotten",
                "peer", name, NULL);
        cw_core_on_worker_gone (self->core, now, name);
        zhashx_delete (self->peers, name);
    }
    zlistx_destroy (&silent);
    s_actions (self);
}

//  The protocol id a peer understands, by its role.
static cw_msg_protocol_t
s_peer_protocol (const s_peer_t *peer)
{
    if (cw_msg_role_island (peer->role))
        return CW_MSG_RELAY;
    if (streq (peer->role, "admin"))
        return CW_MSG_CLIENT;
    return CW_MSG_WORKER;
}

static void
s_malformed (s_broker_t *self, s_peer_t *peer, const char *error,
             const char *reason)
{
    self->malformed++;
    peer->malformed++;
    int64_t now = s_now ();
    if (now - peer->logged_at >= CW_BROKER_LOG_INTERVAL) {
        char held [CW_BROKER_INT_SIZE];
        s_id_text (held, sizeof (held), peer->held_back);
        cw_log (CW_LOG_WARN, "malformed_message", "dropped a malformed message",
                "peer", peer->name, "user_id", peer->user_id,
                "peer_address", peer->address,
                "error", error, "reason", reason, "#held_back", held, NULL);
        peer->logged_at = now;
        peer->held_back = 0;
    }
    else
        peer->held_back++;
    if (peer->malformed >= CW_BROKER_MALFORMED_MAX) {
        cw_log (CW_LOG_WARN, "peer_disconnected",
                "too many malformed messages in a row",
                "peer", peer->name, "user_id", peer->user_id,
                "peer_address", peer->address, NULL);
        s_send_simple (self, peer->name, s_peer_protocol (peer),
                       CW_MSG_DISCONNECT, "malformed input");
        cw_core_on_worker_gone (self->core, now, peer->name);
        peer->malformed = 0;
    }
}

//  The ordering key of a published event, "tenant:orderId" (else
//  "tenant:customerId"), in *key_p (NULL when it names neither). The id
//  must be one the contract allows (1..CW_EVENT_ID_MAX of
//  [A-Za-z0-9._-]), whatever the event type's own rules: the key goes
//  into an index, and one too long for it failed the whole PUBLISH at
//  every try. Returns 0, or -1 with reason.
static int
s_ordering_key (const cw_envelope_t *envelope, char **key_p, char *reason,
                size_t size)
{
    *key_p = NULL;
    json_t *data = cw_envelope_data (envelope);
    const char *fields [] = { "orderId", "customerId", NULL };
    for (int index = 0; fields [index]; index++) {
        json_t *value = json_object_get (data, fields [index]);
        if (!json_is_string (value))
            continue;
        const char *id = json_string_value (value);
        size_t length = json_string_length (value);
        if (strlen (id) != length || !cw_event_id_valid (id)) {
            snprintf (reason, size,
                      "field \"data.%s\": must be 1 to %d letters, digits,"
                      " '.', '_' or '-' (it orders the event)",
                      fields [index], CW_EVENT_ID_MAX);
            return -1;
        }
        const char *tenant = cw_envelope_tenant_id (envelope);
        size_t key_size = strlen (tenant) + length + 2;
        char *key = (char *) malloc (key_size);
        assert (key);
        snprintf (key, key_size, "%s:%s", tenant, id);
        *key_p = key;
        return 0;
    }
    return 0;
}

static const cw_broker_route_t *
s_route (s_broker_t *self, const char *type)
{
    for (size_t index = 0; index < self->route_count; index++)
        if (streq (self->routes [index].event_type, type))
            return &self->routes [index];
    return NULL;
}

static void
s_on_publish (s_broker_t *self, s_peer_t *peer, cw_msg_t *msg)
{
    if (self->draining) {
        s_send_error (self, peer->name, CW_MSG_RELAY, "unavailable",
                      "broker is shutting down", CW_MSG_PUBLISH);
        return;
    }
    const char *island = cw_msg_role_island (peer->role);
    if (!island || strcmp (island, msg->publish.island)) {
        self->forbidden++;
        cw_log (CW_LOG_WARN, "forbidden", "PUBLISH for another island refused",
                "peer", peer->name, "user_id", peer->user_id,
                "role", peer->role, "peer_address", peer->address,
                "island", msg->publish.island, NULL);
        s_send_error (self, peer->name, CW_MSG_RELAY, "forbidden",
                      "island does not match the certificate's role",
                      CW_MSG_PUBLISH);
        return;
    }
    cw_store_req_t *req = cw_store_req_new (CW_STORE_PUBLISH);
    req->source = strdup (island);
    req->peer = zframe_dup (peer->routing);
    req->publish_batch_id = msg->publish.batch_id;
    req->lease_msec = self->lease_msec;
    req->lease_token = ++self->last_token;
    req->events = (cw_store_event_t *) calloc (msg->publish.events_count + 1,
                                               sizeof (cw_store_event_t));
    assert (req->events);
    //  The rejections ride along with the request (see s_store_answer)
    cw_msg_t *rejected = cw_msg_new (CW_MSG_RELAY, CW_MSG_ACK);
    for (size_t index = 0; index < msg->publish.events_count; index++) {
        cw_envelope_t *envelope = msg->publish.events [index];
        const char *key = cw_envelope_idempotency_key (envelope);
        char reason [CW_MSG_REASON_SIZE] = "";
        const cw_broker_route_t *route = NULL;
        if (cw_version_resolve (self->versions, envelope, reason,
                                sizeof (reason)) == 0
        &&  cw_event_validate (cw_envelope_type (envelope),
                               cw_envelope_data (envelope), reason,
                               sizeof (reason)) == 0) {
            route = s_route (self, cw_envelope_type (envelope));
            if (!route)
                snprintf (reason, sizeof (reason),
                          "type: no flow configured for %s",
                          cw_envelope_type (envelope));
        }
        //  The ordering key and the job's payload text, made here so that
        //  an event that has none (an id no index holds; canonical JSON
        //  over the limit: 0.1 is 20 bytes of JSON, 9 of msgpack) is
        //  rejected alone instead of failing the batch at every PUBLISH
        char *ordering_key = NULL;
        if (route
        &&  s_ordering_key (envelope, &ordering_key, reason, sizeof (reason)))
            route = NULL;
        char *payload = NULL;
        if (route) {
            char why [CW_MSG_REASON_SIZE - 16];
            payload = cw_store_payload_json (envelope, why, sizeof (why));
            if (!payload) {
                snprintf (reason, sizeof (reason), "payload: %s", why);
                route = NULL;
                free (ordering_key);
                ordering_key = NULL;
            }
        }
        if (!route) {
            cw_msg_rejected_add (rejected, key, reason);
            self->rejected++;
            cw_log (CW_LOG_WARN, "event_rejected", "published event rejected",
                    "island", island, "idempotency_key", key,
                    "reason", reason, NULL);
            continue;
        }
        cw_store_event_t *event = &req->events [req->event_count++];
        event->envelope = envelope;
        msg->publish.events [index] = NULL;
        event->flow = strdup (route->flow);
        event->target = route->target ? strdup (route->target) : NULL;
        event->ordering_key = ordering_key;
        event->payload = payload;
    }
    req->rejections = rejected;
    if (req->event_count == 0) {
        //  Nothing to store: answer at once
        req->status = 0;
        self->store_outstanding++;
        s_store_answer (self, req);
        cw_store_req_destroy (&req);
        return;
    }
    s_store_send (self, &req);
}

//  The worker outcomes by the core's number, as the wire names them
//  (status results, the /metrics outcome label).
static const char *const s_outcome_names [CW_CORE_VERSION + 1] = {
    [CW_CORE_OK] = "ok", [CW_CORE_REJECTED] = "rejected",
    [CW_CORE_DUPLICATE] = "duplicate", [CW_CORE_TRANSIENT] = "transient",
    [CW_CORE_VERSION] = "version" };

//  The broker's counters (op status, /metrics). Caller owns the result.
static json_t *
s_status (s_broker_t *self)
{
    cw_core_stats_t stats;
    cw_core_stats (self->core, &stats);
    //  Results by outcome; the rest, how jobs and workers came and went
    json_t *results = json_object ();
    for (int outcome = CW_CORE_OK; outcome <= CW_CORE_VERSION; outcome++)
        json_object_set_new (results, s_outcome_names [outcome],
                             json_integer ((json_int_t)
                                           stats.outcomes [outcome]));
    return json_pack (
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
        " s:I, s:I, s:I, s:I, s:b, s:b, s:o, s:I, s:I, s:I, s:I, s:I,"
        " s:I, s:I, s:I, s:I}",
        "held", (json_int_t) stats.held,
        "queued", (json_int_t) stats.queued,
        "inflight", (json_int_t) stats.inflight,
        "workers", (json_int_t) stats.workers,
        "dispatched", (json_int_t) stats.dispatched,
        "commits", (json_int_t) stats.commits,
        "malformed", (json_int_t) self->malformed,
        "forbidden", (json_int_t) self->forbidden,
        "published", (json_int_t) self->published,
        "duplicates", (json_int_t) self->duplicates,
        "rejected", (json_int_t) self->rejected,
        "released", (json_int_t) stats.released,
        "orphans_released", (json_int_t) stats.orphans_released,
        "unknown_session", (json_int_t) self->unknown_session,
        "commit_lost", (json_int_t) self->commit_lost,
        "peers", (json_int_t) zhashx_size (self->peers),
        "draining", self->draining,
        "database_up", self->db_up,
        "results", results,
        "exhausted", (json_int_t) stats.exhausted,
        "results_ignored", (json_int_t) stats.results_ignored,
        "leases_lost", (json_int_t) stats.leases_lost,
        "leases_expired", (json_int_t) stats.leases_expired,
        "workers_lost", (json_int_t) stats.workers_lost,
        "redispatched", (json_int_t) stats.redispatched,
        "claims", (json_int_t) stats.claims,
        "commit_failures", (json_int_t) stats.commit_failures,
        "calls_failed", (json_int_t) stats.calls_failed);
}

//  --- GET /healthz and /metrics ------------------------------------------------

//  Counters of s_status: Prometheus counters (the rest are gauges).
static const char *const s_counters [] = {
    "dispatched", "commits", "malformed", "forbidden", "published",
    "duplicates", "rejected", "released", "orphans_released",
    "unknown_session", "commit_lost", "exhausted", "results_ignored",
    "leases_lost", "leases_expired", "workers_lost", "redispatched",
    "claims", "commit_failures", "calls_failed", NULL };

static bool
s_is_counter (const char *name)
{
    for (size_t index = 0; s_counters [index]; index++)
        if (streq (s_counters [index], name))
            return true;
    return false;
}

//  Appends printf-style text to a /metrics rendering.
static void
s_append (zchunk_t *text, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *lines = zsys_vprintf (format, args);
    va_end (args);
    assert (lines);
    zchunk_extend (text, lines, strlen (lines));
    zstr_free (&lines);
}

//  A Prometheus label value: backslash, double quote and line feed
//  escaped. Caller frees.
static char *
s_label (const char *text)
{
    char *label = (char *) malloc (2 * strlen (text) + 1);
    assert (label);
    char *at = label;
    for (; *text; text++) {
        if (*text == '\\' || *text == '"' || *text == '\n')
            *at++ = '\\';
        *at++ = *text == '\n' ? 'n' : *text;
    }
    *at = 0;
    return label;
}

#define S_METRICS_FLOWS_MAX 1000    //  Queues listed in /metrics at most

//  The per-queue series (a flow at a target) of /metrics.
static void
s_flow_metrics (s_broker_t *self, zchunk_t *text)
{
    size_t count = cw_core_flow_stats (self->core, NULL, 0);
    if (count > S_METRICS_FLOWS_MAX)
        count = S_METRICS_FLOWS_MAX;
    cw_core_flow_stats_t *stats = (cw_core_flow_stats_t *) calloc (
        count + 1, sizeof (cw_core_flow_stats_t));
    assert (stats);
    cw_core_flow_stats (self->core, stats, count);
    s_append (text,
        "# HELP causeway_broker_flow_queued jobs held for a flow at a target\n"
        "# TYPE causeway_broker_flow_queued gauge\n"
        "# HELP causeway_broker_flow_dispatched_total JOBs sent\n"
        "# TYPE causeway_broker_flow_dispatched_total counter\n"
        "# HELP causeway_broker_flow_results_total worker results by outcome\n"
        "# TYPE causeway_broker_flow_results_total counter\n"
        "# HELP causeway_broker_flow_exhausted_total transient results that "
        "went dead\n"
        "# TYPE causeway_broker_flow_exhausted_total counter\n");
    for (size_t index = 0; index < count; index++) {
        char *flow = s_label (stats [index].flow);
        char *target = s_label (stats [index].target ? stats [index].target
                                                     : "");
        s_append (text,
            "causeway_broker_flow_queued{flow=\"%s\",target=\"%s\"} %zu\n"
            "causeway_broker_flow_dispatched_total{flow=\"%s\",target=\"%s\"}"
            " %llu\n"
            "causeway_broker_flow_exhausted_total{flow=\"%s\",target=\"%s\"}"
            " %llu\n",
            flow, target, stats [index].queued, flow, target,
            (unsigned long long) stats [index].dispatched, flow, target,
            (unsigned long long) stats [index].exhausted);
        for (int outcome = CW_CORE_OK; outcome <= CW_CORE_VERSION; outcome++)
            s_append (text,
                "causeway_broker_flow_results_total{flow=\"%s\",target=\"%s\","
                "outcome=\"%s\"} %llu\n", flow, target,
                s_outcome_names [outcome],
                (unsigned long long) stats [index].outcomes [outcome]);
        free (flow);
        free (target);
    }
    free (stats);
    if (!self->gauges)
        return;
    //  From the table (the store's GAUGES): every broker's view
    s_append (text,
        "# HELP causeway_broker_oldest_due_seconds age of the oldest job due"
        " and not claimed (the lag), from the table\n"
        "# TYPE causeway_broker_oldest_due_seconds gauge\n"
        "causeway_broker_oldest_due_seconds %.3f\n"
        "# HELP causeway_broker_flow_dead_jobs dead letters by flow, from the"
        " table\n"
        "# TYPE causeway_broker_flow_dead_jobs gauge\n",
        (double) json_integer_value (json_object_get (self->gauges,
                                                      "oldest_due_msec"))
            / 1000.0);
    const char *name;
    json_t *value;
    json_object_foreach (json_object_get (self->gauges, "dead"), name, value) {
        char *flow = s_label (name);
        s_append (text, "causeway_broker_flow_dead_jobs{flow=\"%s\"} %lld\n",
                  flow, (long long) json_integer_value (value));
        free (flow);
    }
}

//  Renders /metrics and /healthz from the counters and swaps them in.
static void
s_health_render (s_broker_t *self)
{
    json_t *status = s_status (self);
    zchunk_t *text = zchunk_new (NULL, 0);
    s_append (text, "# HELP causeway_broker_up 1 while the broker runs\n"
                    "# TYPE causeway_broker_up gauge\n"
                    "causeway_broker_up 1\n");
    const char *name;
    json_t *value;
    json_object_foreach (status, name, value) {
        if (json_is_object (value)) {
            //  results: one series, labelled by outcome
            s_append (text,
                "# HELP causeway_broker_%s_total worker results by outcome\n"
                "# TYPE causeway_broker_%s_total counter\n", name, name);
            const char *label;
            json_t *count;
            json_object_foreach (value, label, count)
                s_append (text,
                          "causeway_broker_%s_total{outcome=\"%s\"} %lld\n",
                          name, label, (long long) json_integer_value (count));
            continue;
        }
        const char *total = s_is_counter (name) ? "_total" : "";
        s_append (text,
            "# HELP causeway_broker_%s%s as in causeway status (docs/broker.md)\n"
            "# TYPE causeway_broker_%s%s %s\n"
            "causeway_broker_%s%s %lld\n",
            name, total, name, total, *total ? "counter" : "gauge",
            name, total,
            json_is_boolean (value) ? (long long) json_is_true (value)
                                    : (long long) json_integer_value (value));
    }
    s_flow_metrics (self, text);
    zchunk_extend (text, "", 1);
    bool healthy = self->db_up && !self->draining;
    char *health = zsys_sprintf (
        "{\"status\":\"%s\",\"database\":\"%s\",\"draining\":%s,"
        "\"workers\":%lld}",
        healthy ? "ok" : "unavailable", self->db_up ? "up" : "down",
        self->draining ? "true" : "false",
        (long long) json_integer_value (json_object_get (status, "workers")));
    char *metrics = strdup ((char *) zchunk_data (text));
    zchunk_destroy (&text);
    json_decref (status);
    pthread_mutex_lock (&self->health.lock);
    free (self->health.metrics);
    zstr_free (&self->health.health);
    self->health.metrics = metrics;
    self->health.health = health;
    self->health.healthy = healthy;
    pthread_mutex_unlock (&self->health.lock);
}

//  GET /metrics: the last rendering (libmicrohttpd's thread).
static void
s_http_metrics (cw_http_request_t *request, void *arg)
{
    s_health_t *health = (s_health_t *) arg;
    pthread_mutex_lock (&health->lock);
    char *text = strdup (health->metrics ? health->metrics : "");
    pthread_mutex_unlock (&health->lock);
    cw_http_reply_bytes (request, 200, "text/plain; version=0.0.4", text,
                         strlen (text));
    free (text);
}

//  GET /healthz: 200 while the database answers and the broker is not
//  draining, else 503; the body says which.
static void
s_http_healthz (cw_http_request_t *request, void *arg)
{
    s_health_t *health = (s_health_t *) arg;
    pthread_mutex_lock (&health->lock);
    char *body = strdup (health->health ? health->health : "{}");
    bool healthy = health->healthy;
    pthread_mutex_unlock (&health->lock);
    cw_http_reply_bytes (request, healthy ? 200 : 503, "application/json",
                         body, strlen (body));
    free (body);
}

//  Starts /healthz and /metrics on host:port. Returns false (logged) if
//  it cannot listen there.
static bool
s_http_start (s_broker_t *self, const char *host, int port)
{
    s_health_render (self);
    self->http = cw_http_new (host, port, 1);
    char error [256] = "cannot create the HTTP server";
    if (self->http) {
        cw_http_route (self->http, "GET", "/metrics", s_http_metrics,
                       &self->health);
        cw_http_route (self->http, "GET", "/healthz", s_http_healthz,
                       &self->health);
        if (cw_http_start (self->http, error, sizeof (error)) == 0) {
            char port_text [CW_BROKER_INT_SIZE];
            s_id_text (port_text, sizeof (port_text),
                       cw_http_port (self->http));
            cw_log (CW_LOG_INFO, "http_started", "serving /healthz and "
                    "/metrics", "host", host, "#port", port_text, NULL);
            return true;
        }
    }
    cw_log (CW_LOG_ERROR, "http_failed", "cannot serve /healthz and /metrics",
            "host", host, "error", error, NULL);
    cw_http_destroy (&self->http);
    return false;
}

//  --- Dead letters (PROTOCOL.md 4.9) --------------------------------------------

#define S_DLQ_TEXT_MAX 255          //  tenant, order, customer, bytes
#define S_DLQ_FLOW_MAX 64           //  flow, bytes (as READY carries it)
#define S_DLQ_REASON_MAX 500        //  replay.confirm reason, bytes
#define S_DLQ_LIST_MAX 1000         //  dlq.list limit
#define S_DLQ_PREVIEW_MAX 10000     //  replay.preview limit, confirm ids

static int
s_int64_compare (const void *left, const void *right)
{
    int64_t a = *(const int64_t *) left;
    int64_t b = *(const int64_t *) right;
    return (a > b) - (a < b);
}

//  Checks args of a dead-letter op or slo against its members; copies
//  what it accepts into clean. Returns NULL, or the message for the
//  member (field set to its "args.<name>").
static const char *
s_dlq_check (const char *op, json_t *args, json_t *clean, char *field,
             size_t field_size, char *message, size_t message_size)
{
    bool list = streq (op, "dlq.list");
    bool confirm = streq (op, "replay.confirm") || streq (op, "dlq.discard");
    bool slo = streq (op, "slo");
    static const char *const selection [] = {
        "tenant", "flow", "order", "customer", "reason", "since", "until",
        "limit", "after_id", NULL };
    static const char *const confirmation [] = {
        "tenant", "job_ids", "reason", NULL };
    static const char *const window [] = { "since", "until", "flow", NULL };
    static const char *const reasons [] = {
        "rejected", "exhausted", "version_rejected", "operator", NULL };
    const char *const *members = confirm ? confirmation
                               : slo ? window : selection;
    const char *name;
    json_t *value;
    json_object_foreach (args, name, value) {
        bool known = false;
        for (size_t index = 0; members [index] && !known; index++)
            known = streq (members [index], name)
                 && (list || !streq (name, "after_id"));
        snprintf (field, field_size, "args.%s", name);
        if (!known) {
            snprintf (message, message_size, "%s: not a member of %s", field,
                      op);
            return message;
        }
        bool text = !streq (name, "limit") && !streq (name, "after_id")
                 && !streq (name, "job_ids");
        if (text && !json_is_string (value)) {
            snprintf (message, message_size, "%s: must be a string", field);
            return message;
        }
        size_t length = text ? json_string_length (value) : 0;
        const char *string = text ? json_string_value (value) : "";
        size_t most = streq (name, "flow") ? S_DLQ_FLOW_MAX
                    : confirm && streq (name, "reason") ? S_DLQ_REASON_MAX
                    : S_DLQ_TEXT_MAX;
        if (text && (length == 0 || length > most
                     || strlen (string) != length)) {
            snprintf (message, message_size,
                      "%s: must be 1 to %zu bytes, without NUL", field, most);
            return message;
        }
        if (!confirm && streq (name, "reason")) {
            bool valid = false;
            for (size_t index = 0; reasons [index] && !valid; index++)
                valid = streq (reasons [index], string);
            if (!valid) {
                snprintf (message, message_size, "%s: must be rejected, "
                          "exhausted, version_rejected or operator", field);
                return message;
            }
        }
        if ((streq (name, "since") || streq (name, "until"))
        &&  !cw_envelope_time_valid (string)) {
            snprintf (message, message_size, "%s: must be an RFC 3339 time "
                      "with an offset, e.g. 2025-01-31T10:02:03Z", field);
            return message;
        }
        if (streq (name, "limit") || streq (name, "after_id")) {
            json_int_t low = streq (name, "limit") ? 1 : 0;
            json_int_t high = streq (name, "after_id") ? INT64_MAX
                            : list ? S_DLQ_LIST_MAX : S_DLQ_PREVIEW_MAX;
            if (!json_is_integer (value) || json_integer_value (value) < low
            ||  json_integer_value (value) > high) {
                snprintf (message, message_size, "%s: must be an integer "
                          "%lld to %lld", field, (long long) low,
                          (long long) high);
                return message;
            }
        }
        if (streq (name, "job_ids")) {
            size_t count = json_array_size (value);
            if (!json_is_array (value) || count == 0
            ||  count > S_DLQ_PREVIEW_MAX) {
                snprintf (message, message_size, "%s: must be an array of 1 "
                          "to %d job ids", field, S_DLQ_PREVIEW_MAX);
                return message;
            }
            int64_t *ids = (int64_t *) calloc (count, sizeof (int64_t));
            assert (ids);
            for (size_t index = 0; index < count; index++) {
                json_t *id = json_array_get (value, index);
                if (!json_is_integer (id) || json_integer_value (id) < 1) {
                    free (ids);
                    snprintf (message, message_size, "%s[%zu]: must be a "
                              "job id (an integer above 0)", field, index);
                    return message;
                }
                ids [index] = json_integer_value (id);
            }
            qsort (ids, count, sizeof (int64_t), s_int64_compare);
            json_t *sorted = json_array ();
            for (size_t index = 0; index < count; index++)
                if (index == 0 || ids [index] != ids [index - 1])
                    json_array_append_new (sorted, json_integer (ids [index]));
            free (ids);
            json_object_set_new (clean, name, sorted);
            continue;
        }
        json_object_set (clean, name, value);
    }
    const char *required [] = { slo ? "since" : "tenant",
                                confirm ? "job_ids" : NULL,
                                confirm ? "reason" : NULL };
    for (size_t index = 0; index < 3; index++)
        if (required [index] && !json_object_get (clean, required [index])) {
            snprintf (field, field_size, "args.%s", required [index]);
            snprintf (message, message_size, "%s: required", field);
            return message;
        }
    if (slo)
        return NULL;
    if (!confirm && !json_object_get (clean, "limit"))
        json_object_set_new (clean, "limit", json_integer (list ? 100 : 1000));
    if (list && !json_object_get (clean, "after_id"))
        json_object_set_new (clean, "after_id", json_integer (0));
    return NULL;
}

//  A dead-letter op or slo (docs/broker.md): checks args, then hands
//  the request to the store.
static void
s_on_store_request (s_broker_t *self, s_peer_t *peer, int64_t request_id,
                    const char *op, json_t *args)
{
    json_t *clean = json_object ();
    char field [64], message [CW_MSG_REASON_SIZE];
    if (!json_is_object (args)) {
        json_decref (clean);
        s_respond_error (self, peer->name, request_id, "malformed",
                         "args: must be a map", "args");
        return;
    }
    if (s_dlq_check (op, args, clean, field, sizeof (field), message,
                     sizeof (message))) {
        json_decref (clean);
        s_respond_error (self, peer->name, request_id, "malformed", message,
                         field);
        return;
    }
    cw_store_req_t *req = cw_store_req_new (CW_STORE_ADMIN);
    req->admin_op = strdup (op);
    req->admin_args = clean;
    req->request_id = request_id;
    req->peer = zframe_dup (peer->routing);
    if (streq (op, "replay.confirm") || streq (op, "dlq.discard")) {
        req->admin_actor = zsys_sprintf ("admin:%s",
                                         peer->user_id ? peer->user_id : "");
        req->admin_policy = strdup (self->replay_policy);
        req->admin_max_attempts = self->replay_max_attempts;
        req->admin_rate = self->replay_rate;
    }
    s_store_send (self, &req);
}

static void
s_on_request (s_broker_t *self, s_peer_t *peer, cw_msg_t *msg)
{
    int64_t request_id = msg->request.request_id;
    const char *op = msg->request.op;
    json_t *args = msg->request.args;
    if (streq (op, "status")) {
        json_t *result = s_status (self);
        s_respond (self, peer->name, request_id, &result);
        return;
    }
    if (streq (op, "call")) {
        json_t *flow = json_object_get (args, "flow");
        json_t *target = json_object_get (args, "target");
        json_t *envelope_json = json_object_get (args, "envelope");
        //  Names as READY and CALL carry them, so the CALL encodes
        char why [CW_MSG_REASON_SIZE] = "must be a string";
        if (!json_is_string (flow)
        ||  cw_msg_name_check (json_string_value (flow), why, sizeof (why))) {
            char message [CW_MSG_REASON_SIZE + 64];
            snprintf (message, sizeof (message),
                      "args.flow: required string (1..64 bytes): %s", why);
            s_respond_error (self, peer->name, request_id, "malformed",
                             message, "args.flow");
            return;
        }
        if (target && (!json_is_string (target)
        ||  cw_msg_name_check (json_string_value (target), why, sizeof (why)))) {
            char message [CW_MSG_REASON_SIZE + 64];
            snprintf (message, sizeof (message),
                      "args.target: a string of 1..64 bytes: %s", why);
            s_respond_error (self, peer->name, request_id, "malformed",
                             message, "args.target");
            return;
        }
        char reason [CW_MSG_REASON_SIZE] = "must be an envelope object";
        char *text = json_is_object (envelope_json)
                   ? json_dumps (envelope_json, JSON_COMPACT) : NULL;
        cw_envelope_t *envelope = text
            ? cw_envelope_decode_json (text, strlen (text), reason, sizeof (reason))
            : NULL;
        free (text);
        if (!envelope) {
            char message [CW_MSG_REASON_SIZE + 32];
            snprintf (message, sizeof (message), "args.envelope: %s", reason);
            s_respond_error (self, peer->name, request_id, "malformed",
                             message, "args.envelope");
            return;
        }
        s_call_t *call = (s_call_t *) zmalloc (sizeof (s_call_t));
        call->call_id = ++self->next_call_id;
        memcpy (call->peer, peer->name, sizeof (call->peer));
        call->request_id = request_id;
        call->flow = strdup (json_string_value (flow));
        call->envelope = envelope;
        char key [CW_BROKER_INT_SIZE];
        s_id_text (key, sizeof (key), call->call_id);
        zhashx_insert (self->calls, key, call);
        cw_core_on_call (self->core, s_now (), call->call_id, call->flow,
                         target ? json_string_value (target) : NULL, 0);
        return;
    }
    if (streq (op, "dlq.list") || streq (op, "replay.preview")
    ||  streq (op, "replay.confirm") || streq (op, "dlq.discard")
    ||  streq (op, "slo")) {
        s_on_store_request (self, peer, request_id, op, args);
        return;
    }
    s_respond_error (self, peer->name, request_id, "unknown_op",
                     "op: unknown operation", "op");
}

static void
s_on_reply (s_broker_t *self, const char *worker, cw_msg_t *msg)
{
    char key [CW_BROKER_INT_SIZE];
    s_id_text (key, sizeof (key), msg->reply.call_id);
    s_call_t *call = (s_call_t *) zhashx_lookup (self->calls, key);
    if (!call || !streq (call->worker, worker))
        return;                 //  Late, unknown or not its call: ignored
    json_t *result = json_pack ("{s:s, s:I, s:I}",
        "outcome", cw_msg_outcome_name (msg->reply.outcome),
        "http_status", (json_int_t) msg->reply.http_status,
        "duration_ms", (json_int_t) msg->reply.duration_ms);
    if (msg->reply.error)
        json_object_set_new (result, "error", json_string (msg->reply.error));
    if (msg->reply.response)
        json_object_set (result, "response", msg->reply.response);
    s_respond (self, call->peer, call->request_id, &result);
    cw_core_on_call_done (self->core, s_now (), call->call_id);
    zhashx_delete (self->calls, key);
}

//  names joined by commas (caller frees); NULL when there are none.
static char *
s_names_join (char *const *names, size_t count)
{
    if (count == 0)
        return NULL;
    size_t size = 1;
    for (size_t index = 0; index < count; index++)
        size += strlen (names [index]) + 1;
    char *joined = (char *) malloc (size);
    assert (joined);
    joined [0] = 0;
    for (size_t index = 0; index < count; index++) {
        if (index)
            strcat (joined, ",");
        strcat (joined, names [index]);
    }
    return joined;
}

static void
s_on_worker (s_broker_t *self, s_peer_t *peer, cw_msg_t *msg)
{
    int64_t now = s_now ();
    const char *worker = peer->name;
    int rc = 0;
    switch (msg->command) {
        case CW_MSG_READY:
            cw_core_on_worker_ready (self->core, now, worker,
                                     (const char *const *) msg->ready.flows,
                                     msg->ready.flows_count,
                                     (const char *const *) msg->ready.targets,
                                     msg->ready.targets_count,
                                     (uint32_t) msg->ready.credit);
            {
                //  What the worker will be sent: why a job is (not) its
                char *flows = s_names_join (msg->ready.flows,
                                            msg->ready.flows_count);
                char *targets = s_names_join (msg->ready.targets,
                                              msg->ready.targets_count);
                cw_log (CW_LOG_INFO, "worker_ready", "worker session opened",
                        "worker", worker, "user_id", peer->user_id,
                        "name", msg->ready.name, "flows", flows,
                        "targets", targets, NULL);
                free (flows);
                free (targets);
            }
            break;
        case CW_MSG_RESULT:
            rc = cw_core_on_worker_seen (self->core, now, worker);
            for (size_t index = 0; rc == 0 && index < msg->result.results_count;
                 index++) {
                cw_msg_result_t *result = &msg->result.results [index];
                rc = cw_core_on_result (self->core, now, worker, result->job_id,
                                        (uint32_t) result->attempt,
                                        s_outcome (result->outcome),
                                        (int) result->http_status,
                                        result->retry_after_ms, result->error,
                                        result->duration_ms);
            }
            if (rc == 0 && msg->result.credit > 0)
                rc = cw_core_on_worker_credit (self->core, now, worker,
                                               (uint32_t) msg->result.credit);
            break;
        case CW_MSG_CREDIT:
            rc = cw_core_on_worker_credit (self->core, now, worker,
                                           (uint32_t) msg->credit.credit);
            break;
        case CW_MSG_HEARTBEAT:
            cw_core_on_worker_seen (self->core, now, worker);
            break;
        case CW_MSG_DISCONNECT:
            cw_core_on_worker_gone (self->core, now, worker);
            break;
        case CW_MSG_REPLY:
            rc = cw_core_on_worker_seen (self->core, now, worker);
            if (rc == 0)
                s_on_reply (self, worker, msg);
            break;
        default:
            break;
    }
    if (rc != 0) {
        self->unknown_session++;
        s_send_error (self, worker, CW_MSG_WORKER, "unknown_session",
                      "send READY first", msg->command);
    }
}

static void
s_on_router (s_broker_t *self)
{
    zmsg_t *in = zmsg_recv (self->router);
    if (!in)
        return;
    zframe_t *routing = zmsg_pop (in);
    zframe_t *first = zmsg_first (in);
    if (!routing || !first) {
        zframe_destroy (&routing);
        zmsg_destroy (&in);
        return;
    }
    s_peer_t *peer = s_peer_require (self, routing, first);
    zframe_destroy (&routing);
    cw_msg_frame_t frames [CW_MSG_FRAMES];
    size_t count = 0;
    for (zframe_t *frame = zmsg_first (in); frame; frame = zmsg_next (in)) {
        if (count < CW_MSG_FRAMES) {
            frames [count].data = zframe_data (frame);
            frames [count].size = zframe_size (frame);
        }
        count++;
    }
    char reason [CW_MSG_REASON_SIZE] = "";
    cw_msg_error_t error = CW_MSG_VALID;
    cw_msg_t *msg = count == CW_MSG_FRAMES
                  ? cw_msg_decode (frames, count, &error, reason, sizeof (reason))
                  : NULL;
    if (!msg) {
        if (count != CW_MSG_FRAMES) {
            error = CW_MSG_MALFORMED;
            snprintf (reason, sizeof (reason), "%zu frames, expected %d",
                      count, CW_MSG_FRAMES);
        }
        if (error == CW_MSG_UNSUPPORTED_VERSION) {
            cw_msg_protocol_t protocol = CW_MSG_WORKER;
            if (frames [0].size == CW_MSG_PROTOCOL_SIZE
            &&  memcmp (frames [0].data, "CWR01", CW_MSG_PROTOCOL_SIZE) == 0)
                protocol = CW_MSG_RELAY;
            else
            if (frames [0].size == CW_MSG_PROTOCOL_SIZE
            &&  memcmp (frames [0].data, "CWC01", CW_MSG_PROTOCOL_SIZE) == 0)
                protocol = CW_MSG_CLIENT;
            s_send_error (self, peer->name, protocol,
                          cw_msg_error_code (error), reason, -1);
        }
        s_malformed (self, peer, cw_msg_error_name (error), reason);
        zmsg_destroy (&in);
        s_actions (self);
        return;
    }
    peer->malformed = 0;
    if (!cw_msg_allowed (peer->role, msg->protocol, msg->command)) {
        self->forbidden++;
        cw_log (CW_LOG_WARN, "forbidden", "command outside the sender's role",
                "peer", peer->name, "user_id", peer->user_id,
                "role", peer->role, "peer_address", peer->address,
                "command", cw_msg_command_name (msg->command), NULL);
        s_send_error (self, peer->name, msg->protocol, "forbidden",
                      "command not allowed for this role", msg->command);
    }
    else
    if (msg->protocol == CW_MSG_WORKER)
        s_on_worker (self, peer, msg);
    else
    if (msg->command == CW_MSG_PUBLISH)
        s_on_publish (self, peer, msg);
    else
    if (msg->command == CW_MSG_REQUEST)
        s_on_request (self, peer, msg);
    else
    if (msg->command == CW_MSG_HEARTBEAT)
        s_send_simple (self, peer->name, msg->protocol, CW_MSG_HEARTBEAT, NULL);
    else
    if (msg->command == CW_MSG_DISCONNECT)
        zhashx_delete (self->peers, peer->name);
    cw_msg_destroy (&msg);
    zmsg_destroy (&in);
    s_actions (self);
}

//  --- Pipe ---------------------------------------------------------------------

static void
s_stats (s_broker_t *self)
{
    cw_core_stats_t stats;
    cw_core_stats (self->core, &stats);
    zmsg_t *reply = zmsg_new ();
    struct { const char *name; uint64_t value; } items [] = {
        {"held", stats.held}, {"inflight", stats.inflight},
        {"workers", stats.workers}, {"dispatched", stats.dispatched},
        {"commits", stats.commits}, {"malformed", self->malformed},
        {"forbidden", self->forbidden},
        {"unknown_session", self->unknown_session},
        {"published", self->published}, {"duplicates", self->duplicates},
        {"rejected", self->rejected}, {"commit_lost", self->commit_lost},
        {"released", stats.released},
        {"orphans_released", stats.orphans_released},
        {"store_outstanding", self->store_outstanding}
    };
    for (size_t index = 0; index < sizeof (items) / sizeof (items [0]); index++) {
        zmsg_addstr (reply, items [index].name);
        zmsg_addstrf (reply, "%" PRIu64, items [index].value);
    }
    zmsg_send (&reply, self->pipe);
}

//  Returns false on $TERM.
static bool
s_on_pipe (s_broker_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command)
        return false;
    bool keep = true;
    if (streq (command, "$TERM"))
        keep = false;
    else
    if (streq (command, "ENDPOINT"))
        zstr_send (self->pipe, zsock_endpoint (self->router));
    else
    if (streq (command, "STATS"))
        s_stats (self);
    else
    if (streq (command, "DRAIN") && !self->draining) {
        self->draining = true;
        int64_t now = s_now ();
        cw_log (CW_LOG_INFO, "drain_started", "draining: no more claims",
                NULL);
        cw_core_on_drain (self->core, now, now + self->drain_msec);
        s_actions (self);
    }
    zstr_free (&command);
    return keep;
}

void
cw_broker_actor (zsock_t *pipe, void *args)
{
    const cw_broker_config_t *config = (const cw_broker_config_t *) args;
    s_broker_t self;
    memset (&self, 0, sizeof (self));
    pthread_mutex_init (&self.health.lock, NULL);
    self.db_up = true;          //  The store connects before we go on
    self.pipe = pipe;
    self.lease_msec = config->core.lease_msec;
    self.drain_msec = config->drain_msec;
    self.call_grace_msec = config->core.heartbeat_msec
                         * (int64_t) config->core.liveness;
    self.peer_idle_msec = 2 * config->core.heartbeat_msec
                        * (int64_t) config->core.liveness;
    if (self.peer_idle_msec < CW_BROKER_PEER_IDLE_MIN)
        self.peer_idle_msec = CW_BROKER_PEER_IDLE_MIN;
    self.routes = config->routes;
    self.route_count = config->route_count;
    cw_core_config_t core_config = config->core;
    core_config.payload_free = cw_store_payload_free;
    self.core = cw_core_new (&core_config);
    //  A replayed job gets its flow's attempts again (replay.confirm)
    json_t *policy = json_object ();
    for (size_t index = 0; index < config->core.flow_count; index++)
        json_object_set_new (policy, config->core.flows [index].flow,
                             json_integer (config->core.flows [index]
                                               .policy.max_attempts));
    self.replay_policy = json_dumps (policy, JSON_COMPACT);
    json_decref (policy);
    assert (self.replay_policy);
    self.replay_max_attempts = config->core.default_policy.max_attempts;
    self.replay_rate = config->replay_rate;
    self.versions = cw_version_new_contract ();
    self.peers = zhashx_new ();
    zhashx_set_destructor (self.peers, (zhashx_destructor_fn *) s_peer_destroy);
    self.calls = zhashx_new ();
    zhashx_set_destructor (self.calls, (zhashx_destructor_fn *) s_call_destroy);

    //  The write connection sweeps expired leases; the claim connection's
    //  actor LISTENs: a NOTIFY is read between claims, never behind a
    //  group commit in flight on the other connection
    cw_store_config_t store_config = {
        .db_uri = config->db_uri,
        .broker_id = config->core.broker_id,
        .poll_only = true,
        .inbox_ttl_msec = config->inbox_ttl_msec,
        .retention_msec = config->retention_msec,
        .purge_msec = config->purge_msec,
        .expire_msec = config->core.poll_msec ? config->core.poll_msec
                                              : CW_BROKER_EXPIRE_MSEC,
        .gauges_msec = config->http_host ? CW_BROKER_GAUGES_MSEC : 0
    };
    self.store = self.core ? zactor_new (cw_store_actor, &store_config) : NULL;
    cw_store_config_t claims_config = store_config;
    claims_config.poll_only = config->poll_only;
    claims_config.expire_msec = 0;
    claims_config.purge_msec = 0;
    claims_config.gauges_msec = 0;
    self.claims = self.store ? zactor_new (cw_store_actor, &claims_config)
                             : NULL;
    bool ok = self.store != NULL && self.claims != NULL;
    if (!self.core)
        cw_log (CW_LOG_ERROR, "broker_failed", "invalid core configuration",
                NULL);
    if (ok) {
        self.router = zsock_new (ZMQ_ROUTER);
        cw_curve_server_setup (self.router, config->server_cert, NULL);
        zsock_set_linger (self.router, CW_BROKER_LINGER);
        //  A frame over the body limit drops its connection in libzmq,
        //  before the broker ever buffers it (a peer could otherwise
        //  make it hold frames of any size)
        zsock_set_maxmsgsize (self.router,
                              CW_MSG_MAX_SIZE + CW_BROKER_FRAME_SLACK);
        self.monitor = cw_zap_monitor_new (self.router);
        if (zsock_bind (self.router, "%s", config->endpoint) < 0) {
            cw_log (CW_LOG_ERROR, "bind_failed", "cannot bind the endpoint",
                    "endpoint", config->endpoint,
                    "error", zmq_strerror (zmq_errno ()), NULL);
            ok = false;
        }
    }
    if (ok && config->http_host)
        ok = s_http_start (&self, config->http_host, config->http_port);
    zsock_signal (pipe, ok ? 0 : 1);
    if (ok) {
        cw_log (CW_LOG_INFO, "broker_started", "broker bound",
                "endpoint", zsock_endpoint (self.router),
                "broker_id", config->core.broker_id, NULL);
        cw_core_on_wake (self.core, s_now ());
        s_actions (&self);
    }
    bool exit_sent = false;
    while (ok) {
        int64_t now = s_now ();
        int64_t deadline = cw_core_next_deadline (self.core);
        long timeout = CW_BROKER_TICK_MAX;
        if (deadline != INT64_MAX && deadline - now < timeout)
            timeout = deadline > now ? (long) (deadline - now) : 0;
        if (self.http && self.health_at - now < timeout)
            timeout = self.health_at > now ? (long) (self.health_at - now) : 0;
        zmq_pollitem_t items [4] = {
            { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (self.router), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (self.store), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (self.claims), 0, ZMQ_POLLIN, 0 }
        };
        if (zmq_poll (items, 4, timeout) == -1 && zmq_errno () != EINTR)
            break;
        if ((items [0].revents & ZMQ_POLLIN) && !s_on_pipe (&self))
            break;
        for (int item = 2; item < 4; item++)
            if (items [item].revents & ZMQ_POLLIN) {
                cw_store_req_t *req = cw_store_recv (
                    item == 2 ? self.store : self.claims);
                if (req)
                    s_store_answer (&self, req);
                cw_store_req_destroy (&req);
            }
        if (items [1].revents & ZMQ_POLLIN)
            s_on_router (&self);
        now = s_now ();
        if (zhashx_size (self.calls))
            s_calls_overdue (&self, now);
        if (now >= self.sweep_at) {
            s_peers_sweep (&self, now);
            self.sweep_at = now + self.peer_idle_msec / 2;
        }
        if (now >= cw_core_next_deadline (self.core)) {
            cw_core_on_tick (self.core, now);
            s_actions (&self);
        }
        if (self.http && now >= self.health_at) {
            s_health_render (&self);
            self.health_at = now + CW_BROKER_METRICS_MSEC;
        }
        //  EXIT once the core is done and the store has done all we asked
        if (self.exited && self.store_outstanding == 0 && !exit_sent) {
            cw_log (CW_LOG_INFO, "drain_finished", "drained", NULL);
            zstr_send (pipe, "EXIT");
            exit_sent = true;
        }
    }
    cw_http_destroy (&self.http);
    zactor_destroy (&self.monitor);
    zsock_destroy (&self.router);
    //  Requests still in the store come back and are freed here
    if (self.store && self.claims) {
        zmq_pollitem_t items [2] = {
            { zsock_resolve (self.store), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (self.claims), 0, ZMQ_POLLIN, 0 }
        };
        while (self.store_outstanding > 0
        &&     zmq_poll (items, 2, CW_BROKER_LINGER) > 0) {
            for (int item = 0; item < 2; item++) {
                if (!(items [item].revents & ZMQ_POLLIN))
                    continue;
                cw_store_req_t *req = cw_store_recv (
                    item == 0 ? self.store : self.claims);
                if (req && req->op != CW_STORE_WAKE
                &&  req->op != CW_STORE_GAUGES)
                    self.store_outstanding--;
                cw_store_req_destroy (&req);
            }
        }
    }
    zactor_destroy (&self.claims);
    zactor_destroy (&self.store);
    zhashx_destroy (&self.calls);
    zhashx_destroy (&self.peers);
    free (self.replay_policy);
    free (self.health.metrics);
    zstr_free (&self.health.health);
    json_decref (self.gauges);
    pthread_mutex_destroy (&self.health.lock);
    cw_version_destroy (&self.versions);
    cw_core_destroy (&self.core);
}
