/*  =========================================================================
    cw_store - all of the broker's SQL, in its own actor thread

    The broker actor never waits on PostgreSQL: it sends a request (a
    heap-allocated cw_store_req_t, as one "p" pointer frame) down the store
    actor's pipe and carries on; the store runs it on its own connection
    and sends the same pointer back with the outcome filled in; the broker
    reads it with cw_store_recv and destroys it. Requests run in the order
    sent. The store also sends a cw_store_req_t of op CW_STORE_WAKE when a
    NOTIFY on the jobs channel arrives (LISTEN on a second connection,
    unless poll_only).

        zactor_t *store = zactor_new (cw_store_actor, &config);
        cw_store_req_t *req = cw_store_req_new (CW_STORE_RENEW);
        ...
        cw_store_send (store, &req);
        ...   (store readable)
        cw_store_req_t *done = cw_store_recv (store);
        cw_store_req_destroy (&done);

    Jobs' payload column holds the canonical JSON envelope; a payload that
    is not an envelope is wrapped in one built from the row (type
    "<flow>.v1"). Claimed jobs carry a cw_envelope_t * as their core payload
    (free with cw_store_payload_free).
    =========================================================================
*/
#ifndef CW_STORE_H_INCLUDED
#define CW_STORE_H_INCLUDED

#include "cw_core.h"
#include "cw_envelope.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define CW_STORE_CHANNEL "cw_jobs"      //  NOTIFY channel of erp_mw.jobs
#define CW_STORE_ERROR_SIZE 512

typedef enum {
    CW_STORE_CLAIM = 1,         //  Claim up to limit jobs of flows
    CW_STORE_COMMIT,            //  Apply transitions in one transaction
    CW_STORE_RENEW,             //  Extend leases; report the lost ones
    CW_STORE_RELEASE,           //  Hand jobs back (ready, no attempt)
    CW_STORE_PUBLISH,           //  Inbox + jobs for a relay batch
    CW_STORE_WAKE,              //  Store -> broker: NOTIFY arrived
    CW_STORE_ADMIN,             //  An operator's dead-letter request
    CW_STORE_GAUGES             //  Store -> broker, unasked, every
                                //  gauges_msec: what the table holds (a
                                //  text frame, made a request by
                                //  cw_store_recv, like WAKE)
} cw_store_op_t;

//  One event of a PUBLISH, already validated by the broker.
typedef struct {
    cw_envelope_t *envelope;    //  Owned
    char *flow;                 //  Job flow, owned
    char *target;               //  Job target, owned, may be NULL
    char *ordering_key;         //  Owned, may be NULL
    char *payload;              //  jobs.payload text, owned (made by the
                                //  broker with cw_store_payload_json)
    bool duplicate;             //  Reply: key already in the inbox
} cw_store_event_t;

//  A request and, once back from the store, its outcome. Every pointer is
//  owned by the request.
typedef struct {
    cw_store_op_t op;
    //  The broker's clock (its core's: monotonic msec) when it sent the
    //  request. The store turns every time it exchanges with PostgreSQL
    //  into an interval from this moment: a lease the database grants is
    //  reported as ending at now + lease (it began no earlier), RENEW's
    //  lease_expires_at and COMMIT's retry times go to the database as
    //  intervals from its own now (). The broker's clock and the
    //  database's (another host's, maybe skewed or stepped) never meet.
    int64_t now;
    uint64_t batch_id;          //  The core's batch id (CLAIM, COMMIT, RENEW)
    //  CLAIM, PUBLISH: the token of the leases this request grants, set
    //  by the broker, never reused by one lease owner
    int64_t lease_token;
    //  CLAIM
    uint32_t limit;
    int64_t lease_msec;
    char **flows;               //  (flow, target) pairs wanted:
    char **flow_targets;        //  one per flow, NULL = any target
    size_t flow_count;
    //  COMMIT: transitions with their strings copied
    cw_core_transition_t *transitions;
    size_t transition_count;
    //  RENEW, RELEASE: jobs and the token of the lease meant
    int64_t *job_ids;
    int64_t *lease_tokens;
    size_t job_count;
    int64_t lease_expires_at;   //  RENEW: in the broker's clock (see now)
    //  PUBLISH
    cw_store_event_t *events;
    size_t event_count;
    char *source;               //  The relay's island
    zframe_t *peer;             //  Routing id to ACK, owned
    int64_t publish_batch_id;   //  The relay's batch_id
    void *rejections;           //  The broker's cw_msg_t * (ACK) with the
                                //  events it rejected; the store ignores it
    //  ADMIN: dlq.list, replay.preview (args: the selection, checked by
    //  the broker: strings or absent, limit and after_id integers),
    //  replay.confirm or dlq.discard (args: tenant, job_ids ascending and
    //  distinct, reason). peer (the client) and request_id ride along.
    char *admin_op;             //  Owned
    json_t *admin_args;         //  Owned
    char *admin_actor;          //  replay.confirm: audit actor, owned
    char *admin_policy;         //  replay.confirm: JSON {flow: max
                                //  attempts}, owned
    int64_t admin_max_attempts; //  replay.confirm: for other flows
    int64_t admin_rate;         //  replay.confirm: jobs due per second
                                //  (0: all now)
    int64_t request_id;         //  The REQUEST's id
    json_t *admin_result;       //  Outcome: the RESPONSE's result, owned
    //  GAUGES (made by the store, never sent to it): {oldest_due_msec:
    //  age of the oldest job due and not yet claimed (0: none), dead:
    //  {flow: dead jobs}}, owned; status -1 if the query failed
    json_t *gauges;
    //  Outcome
    int status;                 //  0 done, -1 failed (see error)
    char error[CW_STORE_ERROR_SIZE];
    cw_core_job_t *jobs;        //  CLAIM, PUBLISH: jobs leased to us
    size_t jobs_count;
    int64_t *lost;              //  RENEW: leases lost; COMMIT: skipped
    size_t lost_count;
    int64_t dead_payloads;      //  CLAIM: jobs made dead (bad payload)
} cw_store_req_t;

//  Store configuration; borrowed by cw_store_actor until it signals.
typedef struct {
    const char *db_uri;         //  libpq URI (role cw_broker)
    const char *broker_id;      //  Lease owner name
    bool poll_only;             //  No LISTEN (e.g. behind PgBouncer)
    int64_t inbox_ttl_msec;     //  Inbox rows' lifetime
    int64_t expire_msec;        //  Sweep for other brokers' expired leases
                                //  this often, between requests, waking
                                //  the broker when it frees any (0: never)
    int64_t retention_msec;     //  Done jobs finished longer ago are
                                //  deleted (0: never)
    int64_t purge_msec;         //  Delete finished jobs and expired inbox
                                //  rows this often, between requests, in
                                //  short batches (0: never)
    int64_t gauges_msec;        //  Send the broker a GAUGES this often,
                                //  between requests (0: never)
} cw_store_config_t;

//  The store actor; args is a cw_store_config_t *. Signals 0 once
//  connected and prepared, -1 if it could not connect (then ends).
void
    cw_store_actor (zsock_t *pipe, void *args);

//  Makes an empty request. Caller owns return value.
cw_store_req_t *
    cw_store_req_new (cw_store_op_t op);

//  Destroys a request and everything it owns (payloads of jobs still
//  held included). Tolerates NULL.
void
    cw_store_req_destroy (cw_store_req_t **self_p);

//  Sends a request to the store (takes it, nulls *req_p).
int
    cw_store_send (zactor_t *store, cw_store_req_t **req_p);

//  Receives a finished request or a WAKE. Caller owns return value.
cw_store_req_t *
    cw_store_recv (zactor_t *store);

//  Frees a core payload made by the store (a cw_envelope_t *).
void
    cw_store_payload_free (void *payload, size_t size);

//  The jobs.payload text for an envelope: its canonical JSON form.
//  Returns NULL with reason. Caller owns return value.
char *
    cw_store_payload_json (const cw_envelope_t *envelope, char *reason,
                           size_t size);

#endif
