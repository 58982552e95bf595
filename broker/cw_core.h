/*  =========================================================================
    cw_core - the broker's pure decision core

    No I/O: no sockets, no SQL, no clock, no entropy, no logging. The shell
    (ZeroMQ ROUTER, PostgreSQL store, timers) and the simulator feed it
    events, each with the current time `now` (msec of the shell's clock,
    never going backwards: the broker's is monotonic, not epoch time; every
    time in this API is in that clock), and pop the actions it queues, in
    order, with
    cw_core_next_action. After any event the shell must call cw_core_tick
    no later than cw_core_next_deadline.

    Identifiers: a worker is named by the string the shell gives it (its
    CURVE User-Id, or routing id); jobs by their int64 id; CLAIM, COMMIT
    and RENEW actions carry a batch id (one counter, from 1) that the shell
    echoes in the matching *_done / *_failed event. Each lease the store
    grants has a token (one per claim or insert, never reused by this
    broker); the core hands it back with every COMMIT, RENEW and RELEASE
    of the job, so the store can tell two leases of one job apart.

    Ownership: every string and array passed in is copied (borrowed for
    the call only), except job payloads, which the core takes (see
    cw_core_on_jobs_claimed) and frees with config->payload_free.

    See docs/broker-core.md for the rules and how shell and simulator
    use it.
    =========================================================================
*/
#ifndef CW_CORE_H_INCLUDED
#define CW_CORE_H_INCLUDED

#include "cw_retry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _cw_core_t cw_core_t;

//  What the worker saw (PROTOCOL.md 4.3).
typedef enum {
    CW_CORE_OK = 1,             //  2xx: done
    CW_CORE_REJECTED,           //  4xx validation: dead (rejected)
    CW_CORE_DUPLICATE,          //  already processed: done
    CW_CORE_TRANSIENT,          //  5xx, 429, timeout: ready later or dead
    CW_CORE_VERSION             //  contract version: dead (version_rejected)
} cw_core_outcome_t;

//  The state a COMMIT moves a job to.
typedef enum {
    CW_CORE_STATE_DONE = 1,     //  Finished
    CW_CORE_STATE_READY,        //  Run again at next_run_at
    CW_CORE_STATE_DEAD          //  Dead letter, see dead_reason
} cw_core_state_t;

typedef enum {
    CW_CORE_DEAD_NONE = 0,      //  Not dead
    CW_CORE_DEAD_REJECTED,      //  "rejected"
    CW_CORE_DEAD_EXHAUSTED,     //  "exhausted"
    CW_CORE_DEAD_VERSION        //  "version_rejected"
} cw_core_dead_reason_t;

//  Frees a job payload the core owns.
typedef void (cw_core_payload_free_fn) (void *payload, size_t size);

//  A flow's retry policy.
typedef struct {
    const char *flow;           //  Flow name, e.g. "customer.upsert"
    cw_retry_policy_t policy;   //  Backoff base, cap and max attempts
} cw_core_flow_t;

//  A target's protection. A target not listed is unlimited.
typedef struct {
    const char *target;         //  Target name, e.g. "erp"
    uint32_t max_inflight;      //  Jobs + calls out at once, 0 = unlimited
    uint32_t rate_per_sec;      //  Dispatches per second, 0 = unlimited
    uint32_t burst;             //  Token bucket size (>= 1 when rate set)
} cw_core_target_t;

//  Configuration; copied by cw_core_new (strings and tables included).
typedef struct {
    const char *broker_id;      //  Lease owner name, non-empty
    int64_t lease_msec;         //  Lease length for CLAIM and RENEW, at least
                                //  job_deadline_msec + renew_margin_msec
    int64_t renew_margin_msec;  //  Renew leases ending within this margin
    int64_t job_deadline_msec;  //  Default deadline_ms sent with a JOB
    int64_t heartbeat_msec;     //  Heartbeat interval
    uint32_t liveness;          //  Missed intervals before a worker is lost
    uint32_t claim_max;         //  Most jobs asked for by one CLAIM
    uint32_t prefetch;          //  Jobs claimed beyond the workers' credit,
                                //  sent the moment credit comes back
    int64_t poll_msec;          //  Safety-net CLAIM interval, 0 = never
    uint32_t flush_max;         //  Transitions per COMMIT (flush at this size)
    int64_t flush_msec;         //  Longest a transition waits for COMMIT
    int64_t retry_msec;         //  Wait after CLAIM/COMMIT/RENEW failed
    cw_retry_policy_t default_policy;   //  For flows not in the table
    const cw_core_flow_t *flows;        //  Per-flow policies, may be NULL
    size_t flow_count;                  //  Entries in flows
    const cw_core_target_t *targets;    //  Per-target caps, may be NULL
    size_t target_count;                //  Entries in targets
    uint64_t seed;              //  Seeds the jitter generator
    cw_core_payload_free_fn *payload_free;  //  NULL: payloads not freed
} cw_core_config_t;

//  A job handed to the core (claimed, or inserted by the shell).
typedef struct {
    int64_t id;                 //  erp_mw.jobs.id, > 0
    const char *flow;           //  Flow name, non-empty
    const char *target;         //  Target name, NULL = no target caps
    const char *ordering_key;   //  NULL = unordered
    uint32_t attempts;          //  Failed attempts so far (store)
    uint32_t max_attempts;      //  0 = from the flow policy
    int64_t lease_expires_at;   //  Our lease ends here (core time)
    int64_t lease_token;        //  The store's token of this lease
    int64_t deadline_msec;      //  0 = config job_deadline_msec
    void *payload;              //  Encoded envelope; core takes it
    size_t payload_size;        //  Bytes in payload
} cw_core_job_t;

//  One job's new state plus the attempt record (erp_mw.job_attempts).
typedef struct {
    int64_t job_id;             //  The job
    int64_t lease_token;        //  Applies only under this lease
    cw_core_state_t state;      //  done, ready or dead
    int64_t next_run_at;        //  When ready: run again at (core time)
    uint32_t attempts;          //  New failed-attempt count
    cw_core_dead_reason_t dead_reason;  //  When dead
    const char *worker;         //  Attempt: who ran it
    uint32_t attempt;           //  Attempt: 1-based number
    cw_core_outcome_t outcome;  //  Attempt: what the worker saw
    int http_status;            //  Attempt: far side's status, 0 none
    const char *error;          //  Attempt: short reason, NULL none
    int64_t duration_msec;      //  Attempt: time spent on the call
} cw_core_transition_t;

typedef enum {
    CW_CORE_SEND_JOB = 1,       //  JOB to worker
    CW_CORE_SEND_CALL,          //  CALL to worker
    CW_CORE_CALL_FAILED,        //  Answer call_id with an error (reason)
    CW_CORE_SEND_HEARTBEAT,     //  HEARTBEAT to worker
    CW_CORE_SEND_DISCONNECT,    //  DISCONNECT to worker (reason)
    CW_CORE_CLAIM,              //  Claim up to limit jobs of flows
    CW_CORE_COMMIT,             //  Apply transitions in one transaction
    CW_CORE_RENEW,              //  Extend leases of job_ids
    CW_CORE_RELEASE,            //  Hand job_ids back to ready
    CW_CORE_EXIT                //  Drain finished: exit
} cw_core_action_type_t;

//  An action. Only the fields named for its type are meaningful; all
//  pointers are borrowed and valid until the next call into the core.
typedef struct {
    cw_core_action_type_t type;
    const char *worker;         //  SEND_*: the worker
    //  SEND_JOB (job_id, attempt, flow, target, payload, deadline_msec)
    //  and SEND_CALL (call_id, flow, target, deadline_msec)
    int64_t job_id;             //  SEND_JOB
    int64_t lease_token;        //  SEND_JOB: the lease it runs under
    uint32_t attempt;           //  SEND_JOB: attempts + 1
    const char *flow;           //  SEND_JOB, SEND_CALL
    const char *target;         //  SEND_JOB, SEND_CALL; may be NULL
    const void *payload;        //  SEND_JOB
    size_t payload_size;        //  SEND_JOB
    int64_t deadline_msec;      //  SEND_JOB, SEND_CALL: relative msec
    int64_t call_id;            //  SEND_CALL, CALL_FAILED
    const char *reason;         //  SEND_DISCONNECT, CALL_FAILED
    uint64_t batch_id;          //  CLAIM, COMMIT, RENEW
    uint32_t limit;             //  CLAIM: most jobs to claim
    const char *const *flows;   //  CLAIM: flows wanted, each with
    const char *const *flow_targets;    //  CLAIM: its target, NULL = any
    size_t flow_count;          //  CLAIM: (flow, target) pairs
    int64_t lease_msec;         //  CLAIM: lease length
    const cw_core_transition_t *transitions;    //  COMMIT
    size_t transition_count;    //  COMMIT
    const int64_t *job_ids;     //  RENEW, RELEASE
    const int64_t *lease_tokens;    //  RENEW, RELEASE: each job's token
    size_t job_count;           //  RENEW, RELEASE
    int64_t lease_expires_at;   //  RENEW: new expiry (core time)
} cw_core_action_t;

//  Counters for metrics.
typedef struct {
    size_t held;                //  Jobs held (any state)
    size_t queued;              //  Held, not out, waiting to dispatch
    size_t inflight;            //  Sent to a worker, no result yet
    size_t pending;             //  Results awaiting a COMMIT done
    size_t workers;             //  Live workers
    size_t calls;               //  Calls out
    uint64_t dispatched;        //  JOBs sent
    uint64_t outcomes[CW_CORE_VERSION + 1]; //  Results by outcome
    uint64_t exhausted;         //  Transient results that went dead
    uint64_t results_ignored;   //  Late, duplicate or unknown results
    uint64_t leases_lost;       //  Jobs dropped by renew_done lost ids
    uint64_t leases_expired;    //  Jobs dropped when their lease ran out
    uint64_t workers_lost;      //  Workers forgotten (heartbeat, gone)
    uint64_t redispatched;      //  Jobs back in queue without an attempt
    uint64_t released;          //  Job ids sent in RELEASE
    uint64_t orphans_released;  //  Of those: queued for a flow no worker
                                //  served for heartbeat x liveness
    uint64_t claims;            //  CLAIM actions
    uint64_t commits;           //  COMMIT actions
    uint64_t commit_failures;   //  commit_failed events
    uint64_t calls_failed;      //  CALL_FAILED actions
} cw_core_stats_t;

//  One queue's counters: the jobs of a flow at a target.
typedef struct {
    const char *flow;           //  Flow name (the core's: valid until the
                                //  next call into it)
    const char *target;         //  Target name, NULL = none (same)
    size_t queued;              //  Held, not out, waiting to dispatch
    uint64_t dispatched;        //  JOBs sent
    uint64_t outcomes[CW_CORE_VERSION + 1]; //  Results by outcome
    uint64_t exhausted;         //  Transient results that went dead
} cw_core_flow_stats_t;

//  Checks a configuration. Returns 0, or -1 with a reason naming the field
//  in reason[size].
int
    cw_core_config_check (const cw_core_config_t *config, char *reason,
                          size_t size);

//  Creates a core. Returns NULL if the configuration is invalid (see
//  cw_core_config_check). Caller owns return value and must destroy it.
cw_core_t *
    cw_core_new (const cw_core_config_t *config);

//  Destroys a core, freeing every payload it still holds.
void
    cw_core_destroy (cw_core_t **self_p);

//  --- Inputs --------------------------------------------------------------

//  A worker opened (or re-opened) its session: replaces its flows,
//  targets and credit; jobs in flight stay in flight. A worker with
//  targets gets only jobs naming one of them or naming no target (those
//  run at its first target); with none, jobs of any target.
void
    cw_core_on_worker_ready (cw_core_t *self, int64_t now, const char *worker,
                             const char *const *flows, size_t flow_count,
                             const char *const *targets, size_t target_count,
                             uint32_t credit);

//  A worker granted more credit. Returns -1 if no session (the shell
//  answers ERROR unknown_session), else 0.
int
    cw_core_on_worker_credit (cw_core_t *self, int64_t now,
                              const char *worker, uint32_t credit);

//  Any message from a worker (liveness). Returns -1 if no session.
int
    cw_core_on_worker_seen (cw_core_t *self, int64_t now, const char *worker);

//  A worker sent DISCONNECT: forgotten, its jobs re-queued, no attempt
//  spent.
void
    cw_core_on_worker_gone (cw_core_t *self, int64_t now, const char *worker);

//  One result. retry_after_msec is -1 when none; error may be NULL.
//  Returns -1 if the worker has no session, else 0; a result for a job
//  this core does not hold at that worker with that attempt is ignored
//  and counted.
int
    cw_core_on_result (cw_core_t *self, int64_t now, const char *worker,
                       int64_t job_id, uint32_t attempt,
                       cw_core_outcome_t outcome, int http_status,
                       int64_t retry_after_msec, const char *error,
                       int64_t duration_msec);

//  Jobs leased to this broker: the answer to CLAIM batch_id, or batch_id
//  0 for jobs the shell inserted itself. The core takes each payload and
//  sets jobs[i].payload to NULL (the array itself stays the caller's). A
//  job it will not run (already held under another lease, its lease
//  over, or draining) is released under the token given (its payload
//  freed).
void
    cw_core_on_jobs_claimed (cw_core_t *self, int64_t now, uint64_t batch_id,
                             cw_core_job_t *jobs, size_t count);

//  CLAIM batch_id failed; another is tried after retry_msec.
void
    cw_core_on_claim_failed (cw_core_t *self, int64_t now, uint64_t batch_id);

//  COMMIT batch_id committed: its jobs are forgotten.
void
    cw_core_on_commit_done (cw_core_t *self, int64_t now, uint64_t batch_id);

//  COMMIT batch_id rolled back: its transitions go into a later batch.
void
    cw_core_on_commit_failed (cw_core_t *self, int64_t now,
                              uint64_t batch_id);

//  RENEW batch_id committed; lost[] are jobs whose lease (of the token the
//  RENEW carried) was no longer ours: they are dropped (never dispatched again, results ignored, no
//  transition committed). The others now expire at the RENEW's expiry.
void
    cw_core_on_renew_done (cw_core_t *self, int64_t now, uint64_t batch_id,
                           const int64_t *lost, size_t lost_count);

//  RENEW batch_id failed: leases unchanged, retried after retry_msec.
void
    cw_core_on_renew_failed (cw_core_t *self, int64_t now, uint64_t batch_id);

//  A NOTIFY arrived: claim as soon as there is capacity.
void
    cw_core_on_wake (cw_core_t *self, int64_t now);

//  Timers: heartbeats, liveness, leases, flush, poll, drain deadline.
void
    cw_core_on_tick (cw_core_t *self, int64_t now);

//  SIGTERM: no more CLAIM or dispatch; undispatched jobs are released at
//  once; in-flight results are awaited until deadline (core time), then
//  the rest released; once all is committed, DISCONNECT to each worker
//  and EXIT.
void
    cw_core_on_drain (cw_core_t *self, int64_t now, int64_t deadline);

//  A sync call: SEND_CALL to the least loaded worker with credit for flow
//  (credit not consumed; counts against the target's cap and rate), or
//  CALL_FAILED when there is none. deadline_msec 0 = job_deadline_msec.
void
    cw_core_on_call (cw_core_t *self, int64_t now, int64_t call_id,
                     const char *flow, const char *target,
                     int64_t deadline_msec);

//  The REPLY to call_id arrived (or the shell gave up on it).
void
    cw_core_on_call_done (cw_core_t *self, int64_t now, int64_t call_id);

//  --- Outputs -------------------------------------------------------------

//  Pops the next action, or NULL when none. The action is valid until
//  the next call into the core.
const cw_core_action_t *
    cw_core_next_action (cw_core_t *self);

//  When cw_core_on_tick must run next (core time); INT64_MAX if never.
int64_t
    cw_core_next_deadline (cw_core_t *self);

//  True while the core holds job_id (queued, out, or awaiting COMMIT).
bool
    cw_core_holds (cw_core_t *self, int64_t job_id);

//  Fills stats.
void
    cw_core_stats (cw_core_t *self, cw_core_stats_t *stats);

//  Fills stats (up to max entries) with one entry per queue the core has
//  made, in the order it made them; returns how many queues there are
//  (more than max: call again with room for them). Queues live as long
//  as the core.
size_t
    cw_core_flow_stats (cw_core_t *self, cw_core_flow_stats_t *stats,
                        size_t max);

//  Verifies internal invariants. Returns 0, or -1 with what is broken in
//  reason[size].
int
    cw_core_check (cw_core_t *self, char *reason, size_t size);

#endif
