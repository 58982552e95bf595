/*  =========================================================================
    cw_core - the broker's pure decision core

    Events in, actions out, no I/O. See cw_core.h and docs/broker-core.md.

    A held job is in exactly one state:
      QUEUED      in its (flow, target) dispatch queue, may go out now
      WAITING     behind another job of its ordering key (key->waiting)
      LEASE_WAIT  its lease is too short for its deadline: renew first
      SENT        at a worker, no result yet
      PENDING     result in, transition waiting for a COMMIT
      COMMITTING  transition in the outstanding COMMIT
    Every held job is in the id map; every one not renewing and not past
    its lease with a transition is in the lease heap; SENT jobs are also
    in the due heap (result overdue) and their worker's job list.
    =========================================================================
*/
#include "cw_core.h"

#include <czmq.h>

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Milli-tokens per token in the per-target token buckets.
#define S_TOKEN 1000
//  Initial slots of the job id map (a power of two).
#define S_MAP_MIN 64

typedef enum {
    S_QUEUED = 1,
    S_WAITING,
    S_LEASE_WAIT,
    S_SENT,
    S_PENDING,
    S_COMMITTING
} s_state_t;

typedef struct _s_worker_t s_worker_t;
typedef struct _s_target_t s_target_t;
typedef struct _s_queue_t s_queue_t;
typedef struct _s_key_t s_key_t;
typedef struct _s_job_t s_job_t;

struct _s_target_t {
    char *name;                 //  Target name
    uint32_t max_inflight;      //  0 = unlimited
    uint32_t rate_per_sec;      //  0 = unlimited
    int64_t capacity;           //  Bucket size, milli-tokens
    int64_t tokens;             //  Milli-tokens available at refilled_at
    int64_t refilled_at;        //  Last refill, msec
    size_t inflight;            //  Jobs + calls out
    size_t calls;               //  Calls out (part of inflight)
};

struct _s_queue_t {
    char *flow;                 //  Flow name
    s_target_t *target;         //  Target, NULL = none
    cw_retry_policy_t policy;   //  The flow's retry policy
    zlistx_t *jobs;             //  QUEUED jobs, borrowed, FIFO
    int64_t orphan_since;       //  Jobs queued and no worker serves the
                                //  flow since then; INT64_MIN otherwise
    uint64_t dispatched;        //  JOBs sent (cw_core_flow_stats)
    uint64_t outcomes[CW_CORE_VERSION + 1]; //  Results by outcome
    uint64_t exhausted;         //  Transient results that went dead
};

struct _s_key_t {
    char *name;                 //  Ordering key
    s_job_t *head;              //  The one job that may be out, or NULL
    zlistx_t *waiting;          //  WAITING jobs by id, borrowed
};

struct _s_worker_t {
    char *name;                 //  Identity given by the shell
    char **flows;               //  Flows announced
    size_t flow_count;          //  Entries in flows
    char **targets;             //  Targets announced; none = any target
    size_t target_count;        //  Entries in targets
    uint32_t credit;            //  Jobs it may still receive
    size_t calls;               //  Calls out at it
    int64_t expires_at;         //  Lost if nothing heard by then
    zlistx_t *jobs;             //  SENT jobs, borrowed
};

struct _s_job_t {
    int64_t id;                 //  Job id
    s_queue_t *queue;           //  Its flow and target
    s_key_t *key;               //  Ordering key, or NULL
    uint32_t attempts;          //  Failed attempts so far
    uint32_t max_attempts;      //  Effective (policy when 0 was given)
    int64_t lease_expires_at;   //  Lease end, msec
    int64_t lease_token;        //  The store's token of our lease
    int64_t deadline_msec;      //  Sent with JOB
    void *payload;              //  Owned, freed by config payload_free
    size_t payload_size;        //  Bytes in payload
    s_state_t state;            //  See the top of this file
    void *handle;               //  In queue->jobs or key->waiting or
                                //  self->lease_wait or self->pending
    s_worker_t *worker;         //  SENT: the worker
    s_target_t *charged;        //  SENT: the target its call counts
                                //  against (its own, or its worker's)
    void *worker_handle;        //  SENT: in worker->jobs
    uint32_t sent_attempt;      //  SENT: attempt number sent
    uint64_t send_seq;          //  Dispatch count (stale SEND_JOB check)
    bool ever_sent;             //  Dispatched at least once by us
    int64_t due_at;             //  SENT: result overdue at
    size_t lease_slot;          //  Lease heap slot + 1, 0 = not in
    size_t due_slot;            //  Due heap slot + 1, 0 = not in
    bool renewing;              //  In the outstanding RENEW
    bool lost;                  //  Lease lost while COMMITTING
    int64_t pending_at;         //  PENDING since
    cw_core_transition_t transition;    //  PENDING/COMMITTING; owns
                                        //  worker and error strings
};

//  A queued action with the storage its pointers refer to.
typedef struct {
    cw_core_action_t action;    //  What the shell sees
    char *worker;               //  Owned copy
    char *reason;               //  Owned copy
    char **flows;               //  Owned copies
    char **flow_targets;        //  Owned copies, one per flow, NULL = any
    cw_core_transition_t *transitions;  //  Owned, strings owned
    int64_t *job_ids;           //  Owned
    int64_t *lease_tokens;      //  Owned, one per job id
    uint64_t send_seq;          //  SEND_JOB: dispatch it belongs to
} s_action_t;

//  Leases named in one RELEASE or RENEW: job ids and their tokens.
typedef struct {
    int64_t *ids;
    int64_t *tokens;
    size_t count;
    size_t max;
} s_leases_t;

//  Binary min-heap of jobs; slot index + 1 kept in the job.
typedef struct {
    s_job_t **items;            //  Heap array
    size_t size;                //  Items in use
    size_t max;                 //  Allocated slots
    bool due;                   //  Keyed by due_at (else lease_expires_at)
} s_heap_t;

//  Open-addressing map from job id to job (linear probing).
typedef struct {
    s_job_t **slots;            //  NULL = empty
    size_t mask;                //  Slots - 1
    size_t size;                //  Jobs in the map
} s_map_t;

typedef struct {
    int64_t call_id;            //  Shell's call id
    s_worker_t *worker;         //  Where it went
    s_target_t *target;         //  Its target, or NULL
} s_call_t;

struct _cw_core_t {
    char *broker_id;            //  Lease owner
    cw_core_config_t config;    //  Copy; tables below, strings not kept
    cw_retry_policy_t *policies;    //  Per-flow policies (config order)
    char **policy_flows;        //  Their flow names
    cw_core_payload_free_fn *payload_free;  //  May be NULL
    cw_retry_rng_t rng;         //  Jitter source
    s_map_t jobs;               //  Held jobs by id, owns them
    s_heap_t lease_heap;        //  Jobs by lease expiry
    s_heap_t due_heap;          //  SENT jobs by result due time
    zhashx_t *workers;          //  Workers by name, owns them
    zhashx_t *targets;          //  Targets by name, owns them
    zhashx_t *queues;           //  Queues by flow + "\x1f" + target, owns
    zlistx_t *queue_list;       //  Same queues, creation order, borrowed
    zhashx_t *keys;             //  Ordering keys by name, owns them
    zhashx_t *calls;            //  Calls by decimal id, owns them
    zlistx_t *lease_wait;       //  LEASE_WAIT jobs, borrowed
    zlistx_t *pending;          //  PENDING jobs, oldest first, borrowed
    zlistx_t *actions;          //  Queued actions, owns them
    s_action_t *current;        //  Last popped action, owned
    uint64_t next_batch;        //  Next batch id
    uint64_t claim_batch;       //  Outstanding CLAIM, 0 none
    uint32_t claim_limit;       //  Its limit
    int64_t claim_at;           //  Next safety-net CLAIM due
    int64_t claim_retry_at;     //  No CLAIM before (after a failure)
    bool wake;                  //  NOTIFY seen since the last CLAIM
    bool more;                  //  Last CLAIM came back full
    uint64_t commit_batch;      //  Outstanding COMMIT, 0 none
    s_job_t **commit_jobs;      //  Its jobs (COMMITTING), owned array
    size_t commit_count;        //  Entries in commit_jobs
    int64_t commit_retry_at;    //  No COMMIT before (after a failure)
    uint64_t renew_batch;       //  Outstanding RENEW, 0 none
    int64_t *renew_ids;         //  Its job ids, owned array
    size_t renew_count;         //  Entries in renew_ids
    int64_t renew_expires_at;   //  Its new expiry
    int64_t renew_retry_at;     //  No RENEW before (after a failure)
    int64_t heartbeat_at;       //  Next heartbeat round
    bool draining;              //  Drain started
    int64_t drain_deadline;     //  Release in-flight jobs then
    bool exited;                //  EXIT queued
    int64_t now;                //  Time of the latest step
    size_t count[S_COMMITTING + 1]; //  Held jobs per state
    cw_core_stats_t stats;      //  Counters
};

//  --------------------------------------------------------------------------
//  Small helpers

static int64_t
s_min (int64_t a, int64_t b)
{
    return a < b? a: b;
}

static int64_t
s_max (int64_t a, int64_t b)
{
    return a > b? a: b;
}

static char *
s_strdup (const char *text)
{
    if (!text)
        return NULL;
    size_t size = strlen (text) + 1;
    char *copy = (char *) zmalloc (size);
    memcpy (copy, text, size);
    return copy;
}

//  --------------------------------------------------------------------------
//  Job id map

static size_t
s_map_hash (int64_t id)
{
    uint64_t x = (uint64_t) id;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t) x;
}

static void
s_map_init (s_map_t *map, size_t slots)
{
    map->slots = (s_job_t **) zmalloc (slots * sizeof (s_job_t *));
    map->mask = slots - 1;
    map->size = 0;
}

static s_job_t *
s_map_get (s_map_t *map, int64_t id)
{
    size_t index = s_map_hash (id) & map->mask;
    while (map->slots[index]) {
        if (map->slots[index]->id == id)
            return map->slots[index];
        index = (index + 1) & map->mask;
    }
    return NULL;
}

static void s_map_put (s_map_t *map, s_job_t *job);

static void
s_map_grow (s_map_t *map)
{
    s_job_t **old = map->slots;
    size_t old_slots = map->mask + 1;
    s_map_init (map, old_slots * 2);
    for (size_t index = 0; index < old_slots; index++)
        if (old[index])
            s_map_put (map, old[index]);
    free (old);
}

static void
s_map_put (s_map_t *map, s_job_t *job)
{
    if ((map->size + 1) * 2 > map->mask + 1)
        s_map_grow (map);
    size_t index = s_map_hash (job->id) & map->mask;
    while (map->slots[index])
        index = (index + 1) & map->mask;
    map->slots[index] = job;
    map->size++;
}

//  Removes by backward shift (no tombstones).
static void
s_map_remove (s_map_t *map, int64_t id)
{
    size_t index = s_map_hash (id) & map->mask;
    while (map->slots[index] && map->slots[index]->id != id)
        index = (index + 1) & map->mask;
    assert (map->slots[index]);
    map->slots[index] = NULL;
    map->size--;
    size_t next = (index + 1) & map->mask;
    while (map->slots[next]) {
        size_t home = s_map_hash (map->slots[next]->id) & map->mask;
        //  Move it into the hole if its home is not in (index, next]
        bool between = index <= next? (home > index && home <= next)
                                    : (home > index || home <= next);
        if (!between) {
            map->slots[index] = map->slots[next];
            map->slots[next] = NULL;
            index = next;
        }
        next = (next + 1) & map->mask;
    }
}

//  --------------------------------------------------------------------------
//  Heaps

static int64_t
s_heap_key (s_heap_t *heap, s_job_t *job)
{
    return heap->due? job->due_at: job->lease_expires_at;
}

static size_t *
s_heap_slot (s_heap_t *heap, s_job_t *job)
{
    return heap->due? &job->due_slot: &job->lease_slot;
}

static bool
s_heap_less (s_heap_t *heap, s_job_t *a, s_job_t *b)
{
    int64_t ka = s_heap_key (heap, a), kb = s_heap_key (heap, b);
    return ka < kb || (ka == kb && a->id < b->id);
}

static void
s_heap_set (s_heap_t *heap, size_t index, s_job_t *job)
{
    heap->items[index] = job;
    *s_heap_slot (heap, job) = index + 1;
}

static void
s_heap_up (s_heap_t *heap, size_t index)
{
    s_job_t *job = heap->items[index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (!s_heap_less (heap, job, heap->items[parent]))
            break;
        s_heap_set (heap, index, heap->items[parent]);
        index = parent;
    }
    s_heap_set (heap, index, job);
}

static void
s_heap_down (s_heap_t *heap, size_t index)
{
    s_job_t *job = heap->items[index];
    while (true) {
        size_t child = index * 2 + 1;
        if (child >= heap->size)
            break;
        if (child + 1 < heap->size
            && s_heap_less (heap, heap->items[child + 1], heap->items[child]))
            child++;
        if (!s_heap_less (heap, heap->items[child], job))
            break;
        s_heap_set (heap, index, heap->items[child]);
        index = child;
    }
    s_heap_set (heap, index, job);
}

static void
s_heap_push (s_heap_t *heap, s_job_t *job)
{
    assert (*s_heap_slot (heap, job) == 0);
    if (heap->size == heap->max) {
        heap->max = heap->max? heap->max * 2: S_MAP_MIN;
        heap->items = (s_job_t **) realloc (heap->items,
                                             heap->max * sizeof (s_job_t *));
        assert (heap->items);
    }
    heap->items[heap->size++] = job;
    s_heap_up (heap, heap->size - 1);
}

static void
s_heap_remove (s_heap_t *heap, s_job_t *job)
{
    size_t *slot = s_heap_slot (heap, job);
    if (*slot == 0)
        return;
    size_t index = *slot - 1;
    *slot = 0;
    heap->size--;
    if (index == heap->size)
        return;
    heap->items[index] = heap->items[heap->size];
    *s_heap_slot (heap, heap->items[index]) = index + 1;
    s_heap_up (heap, index);
    s_heap_down (heap, *s_heap_slot (heap, heap->items[index]) - 1);
}

static s_job_t *
s_heap_top (s_heap_t *heap)
{
    return heap->size? heap->items[0]: NULL;
}

//  --------------------------------------------------------------------------
//  Destructors for owned items

static void
s_worker_destroy (s_worker_t **self_p)
{
    if (*self_p) {
        s_worker_t *self = *self_p;
        for (size_t index = 0; index < self->flow_count; index++)
            free (self->flows[index]);
        free (self->flows);
        for (size_t index = 0; index < self->target_count; index++)
            free (self->targets[index]);
        free (self->targets);
        zlistx_destroy (&self->jobs);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

static void
s_target_destroy (s_target_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->name);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_queue_destroy (s_queue_t **self_p)
{
    if (*self_p) {
        zlistx_destroy (&(*self_p)->jobs);
        free ((*self_p)->flow);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_key_destroy (s_key_t **self_p)
{
    if (*self_p) {
        zlistx_destroy (&(*self_p)->waiting);
        free ((*self_p)->name);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_call_destroy (s_call_t **self_p)
{
    free (*self_p);
    *self_p = NULL;
}

static void
s_transition_clear (cw_core_transition_t *transition)
{
    free ((char *) transition->worker);
    free ((char *) transition->error);
    memset (transition, 0, sizeof (*transition));
}

static void
s_action_destroy (s_action_t **self_p)
{
    if (*self_p) {
        s_action_t *self = *self_p;
        free (self->worker);
        free (self->reason);
        if (self->flows)
            for (size_t index = 0; index < self->action.flow_count; index++) {
                free (self->flows[index]);
                free (self->flow_targets[index]);
            }
        free (self->flows);
        free (self->flow_targets);
        if (self->transitions)
            for (size_t index = 0; index < self->action.transition_count;
                 index++)
                s_transition_clear (&self->transitions[index]);
        free (self->transitions);
        free (self->job_ids);
        free (self->lease_tokens);
        free (self);
        *self_p = NULL;
    }
}

static int
s_job_compare (const void *a, const void *b)
{
    int64_t ia = ((const s_job_t *) a)->id, ib = ((const s_job_t *) b)->id;
    return ia < ib? -1: ia > ib? 1: 0;
}

//  --------------------------------------------------------------------------
//  Configuration

int
cw_core_config_check (const cw_core_config_t *config, char *reason,
                      size_t size)
{
    assert (config);
    assert (reason || size == 0);
    char detail[256] = "";
    if (!config->broker_id || !*config->broker_id) {
        snprintf (reason, size, "broker_id: must be a non-empty string");
        return -1;
    }
    if (config->job_deadline_msec < 1) {
        snprintf (reason, size, "job_deadline_msec: must be >= 1");
        return -1;
    }
    if (config->renew_margin_msec < 1) {
        snprintf (reason, size, "renew_margin_msec: must be >= 1");
        return -1;
    }
    //  A renewed lease must still cover the deadline when its RENEW
    //  comes back (within the margin), or the job is never sent
    if (config->lease_msec <= config->renew_margin_msec
        || config->lease_msec - config->renew_margin_msec
               < config->job_deadline_msec) {
        snprintf (reason, size, "lease_msec: must be at least "
                                "job_deadline_msec + renew_margin_msec");
        return -1;
    }
    if (config->heartbeat_msec < 1) {
        snprintf (reason, size, "heartbeat_msec: must be >= 1");
        return -1;
    }
    if (config->liveness < 1) {
        snprintf (reason, size, "liveness: must be >= 1");
        return -1;
    }
    if (config->claim_max < 1) {
        snprintf (reason, size, "claim_max: must be >= 1");
        return -1;
    }
    if (config->poll_msec < 0) {
        snprintf (reason, size, "poll_msec: must be >= 0 (0 = never)");
        return -1;
    }
    if (config->flush_max < 1) {
        snprintf (reason, size, "flush_max: must be >= 1");
        return -1;
    }
    if (config->flush_msec < 0) {
        snprintf (reason, size, "flush_msec: must be >= 0");
        return -1;
    }
    if (config->retry_msec < 1) {
        snprintf (reason, size, "retry_msec: must be >= 1");
        return -1;
    }
    if (cw_retry_policy_check (&config->default_policy, detail,
                               sizeof (detail))) {
        snprintf (reason, size, "default_policy: %s", detail);
        return -1;
    }
    if (config->flow_count && !config->flows) {
        snprintf (reason, size, "flows: NULL with flow_count %zu",
                  config->flow_count);
        return -1;
    }
    for (size_t index = 0; index < config->flow_count; index++) {
        const cw_core_flow_t *flow = &config->flows[index];
        if (!flow->flow || !*flow->flow) {
            snprintf (reason, size, "flows[%zu].flow: must be non-empty",
                      index);
            return -1;
        }
        if (cw_retry_policy_check (&flow->policy, detail, sizeof (detail))) {
            snprintf (reason, size, "flows[%zu] (\"%s\"): %s", index,
                      flow->flow, detail);
            return -1;
        }
    }
    if (config->target_count && !config->targets) {
        snprintf (reason, size, "targets: NULL with target_count %zu",
                  config->target_count);
        return -1;
    }
    for (size_t index = 0; index < config->target_count; index++) {
        const cw_core_target_t *target = &config->targets[index];
        if (!target->target || !*target->target) {
            snprintf (reason, size, "targets[%zu].target: must be non-empty",
                      index);
            return -1;
        }
        if (target->rate_per_sec && target->burst < 1) {
            snprintf (reason, size, "targets[%zu] (\"%s\").burst: must be "
                      ">= 1 when rate_per_sec is set", index, target->target);
            return -1;
        }
        //  Tokens come back at most once per msec of the clock: a burst
        //  under one msec of the rate would cap it at 1000 x burst/s
        if (target->rate_per_sec
        &&  (uint64_t) target->rate_per_sec > (uint64_t) target->burst * 1000) {
            snprintf (reason, size, "targets[%zu] (\"%s\").burst: %u cannot "
                      "carry rate_per_sec %u (at most 1000 x burst per "
                      "second); use a burst of at least %u", index,
                      target->target, target->burst, target->rate_per_sec,
                      (target->rate_per_sec + 999) / 1000);
            return -1;
        }
    }
    if (size)
        reason[0] = 0;
    return 0;
}

static s_target_t *
s_target_require (cw_core_t *self, const char *name)
{
    if (!name)
        return NULL;
    s_target_t *target = (s_target_t *) zhashx_lookup (self->targets, name);
    if (!target) {
        target = (s_target_t *) zmalloc (sizeof (s_target_t));
        target->name = s_strdup (name);
        zhashx_insert (self->targets, name, target);
    }
    return target;
}

cw_core_t *
cw_core_new (const cw_core_config_t *config)
{
    assert (config);
    char reason[256];
    if (cw_core_config_check (config, reason, sizeof (reason)))
        return NULL;

    cw_core_t *self = (cw_core_t *) zmalloc (sizeof (cw_core_t));
    self->config = *config;
    self->broker_id = s_strdup (config->broker_id);
    self->config.broker_id = self->broker_id;
    self->config.flows = NULL;
    self->config.targets = NULL;
    self->payload_free = config->payload_free;
    self->policies = (cw_retry_policy_t *) zmalloc (
        (config->flow_count + 1) * sizeof (cw_retry_policy_t));
    self->policy_flows = (char **) zmalloc (
        (config->flow_count + 1) * sizeof (char *));
    for (size_t index = 0; index < config->flow_count; index++) {
        self->policies[index] = config->flows[index].policy;
        self->policy_flows[index] = s_strdup (config->flows[index].flow);
    }
    cw_retry_rng_seed (&self->rng, config->seed);
    s_map_init (&self->jobs, S_MAP_MIN);
    self->due_heap.due = true;

    self->workers = zhashx_new ();
    zhashx_set_destructor (self->workers,
                           (zhashx_destructor_fn *) s_worker_destroy);
    self->targets = zhashx_new ();
    zhashx_set_destructor (self->targets,
                           (zhashx_destructor_fn *) s_target_destroy);
    self->queues = zhashx_new ();
    zhashx_set_destructor (self->queues,
                           (zhashx_destructor_fn *) s_queue_destroy);
    self->queue_list = zlistx_new ();
    self->keys = zhashx_new ();
    zhashx_set_destructor (self->keys,
                           (zhashx_destructor_fn *) s_key_destroy);
    self->calls = zhashx_new ();
    zhashx_set_destructor (self->calls,
                           (zhashx_destructor_fn *) s_call_destroy);
    self->lease_wait = zlistx_new ();
    self->pending = zlistx_new ();
    self->actions = zlistx_new ();
    zlistx_set_destructor (self->actions,
                           (zlistx_destructor_fn *) s_action_destroy);

    for (size_t index = 0; index < config->target_count; index++) {
        const cw_core_target_t *entry = &config->targets[index];
        s_target_t *target = s_target_require (self, entry->target);
        target->max_inflight = entry->max_inflight;
        target->rate_per_sec = entry->rate_per_sec;
        target->capacity = (int64_t) entry->burst * S_TOKEN;
        target->tokens = target->capacity;
        target->refilled_at = INT64_MIN;
    }
    self->next_batch = 1;
    self->heartbeat_at = INT64_MIN;
    self->claim_at = INT64_MIN;
    self->claim_retry_at = INT64_MIN;
    self->commit_retry_at = INT64_MIN;
    self->renew_retry_at = INT64_MIN;
    self->now = INT64_MIN;
    return self;
}

static void s_job_free (cw_core_t *self, s_job_t **job_p);

void
cw_core_destroy (cw_core_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        cw_core_t *self = *self_p;
        for (size_t index = 0; index <= self->jobs.mask; index++)
            if (self->jobs.slots[index])
                s_job_free (self, &self->jobs.slots[index]);
        free (self->jobs.slots);
        free (self->lease_heap.items);
        free (self->due_heap.items);
        zlistx_destroy (&self->actions);
        s_action_destroy (&self->current);
        zlistx_destroy (&self->pending);
        zlistx_destroy (&self->lease_wait);
        zhashx_destroy (&self->calls);
        zhashx_destroy (&self->keys);
        zlistx_destroy (&self->queue_list);
        zhashx_destroy (&self->queues);
        zhashx_destroy (&self->targets);
        zhashx_destroy (&self->workers);
        for (size_t index = 0; index < self->config.flow_count; index++)
            free (self->policy_flows[index]);
        free (self->policy_flows);
        free (self->policies);
        free (self->commit_jobs);
        free (self->renew_ids);
        free (self->broker_id);
        free (self);
        *self_p = NULL;
    }
}

//  --------------------------------------------------------------------------
//  Actions

static s_action_t *
s_action_new (cw_core_t *self, cw_core_action_type_t type)
{
    s_action_t *action = (s_action_t *) zmalloc (sizeof (s_action_t));
    action->action.type = type;
    zlistx_add_end (self->actions, action);
    return action;
}

static void
s_action_worker (s_action_t *action, const char *worker)
{
    action->worker = s_strdup (worker);
    action->action.worker = action->worker;
}

static void
s_action_reason (s_action_t *action, const char *format, ...)
{
    char text[256];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof (text), format, args);
    va_end (args);
    action->reason = s_strdup (text);
    action->action.reason = action->reason;
}

//  Gives the action ids and their lease tokens (takes both arrays).
static void
s_action_ids (s_action_t *action, int64_t *ids, int64_t *tokens,
              size_t count)
{
    action->job_ids = ids;
    action->lease_tokens = tokens;
    action->action.job_ids = ids;
    action->action.lease_tokens = tokens;
    action->action.job_count = count;
}

//  Adds a job's lease to the list.
static void
s_leases_add (s_leases_t *list, int64_t id, int64_t token)
{
    if (list->count == list->max) {
        list->max = list->max? list->max * 2: 16;
        list->ids = (int64_t *) realloc (list->ids,
                                         list->max * sizeof (int64_t));
        list->tokens = (int64_t *) realloc (list->tokens,
                                            list->max * sizeof (int64_t));
        assert (list->ids && list->tokens);
    }
    list->ids[list->count] = id;
    list->tokens[list->count] = token;
    list->count++;
}

//  Emits one RELEASE of the list (taking its arrays), nothing when it is
//  empty; the list is empty again after.
static void
s_release (cw_core_t *self, s_leases_t *list)
{
    if (list->count == 0) {
        free (list->ids);
        free (list->tokens);
    }
    else {
        s_action_t *action = s_action_new (self, CW_CORE_RELEASE);
        s_action_ids (action, list->ids, list->tokens, list->count);
        self->stats.released += list->count;
    }
    memset (list, 0, sizeof (*list));
}

//  --------------------------------------------------------------------------
//  Jobs: containers by state

static const cw_retry_policy_t *
s_policy (cw_core_t *self, const char *flow)
{
    for (size_t index = 0; index < self->config.flow_count; index++)
        if (streq (self->policy_flows[index], flow))
            return &self->policies[index];
    return &self->config.default_policy;
}

static s_queue_t *
s_queue_require (cw_core_t *self, const char *flow, const char *target)
{
    char *name = zsys_sprintf ("%s\x1f%s%s", flow, target? "t": "-",
                               target? target: "");
    s_queue_t *queue = (s_queue_t *) zhashx_lookup (self->queues, name);
    if (!queue) {
        queue = (s_queue_t *) zmalloc (sizeof (s_queue_t));
        queue->flow = s_strdup (flow);
        queue->target = s_target_require (self, target);
        queue->policy = *s_policy (self, flow);
        queue->jobs = zlistx_new ();
        queue->orphan_since = INT64_MIN;
        zhashx_insert (self->queues, name, queue);
        zlistx_add_end (self->queue_list, queue);
    }
    zstr_free (&name);
    return queue;
}

static void
s_set_state (cw_core_t *self, s_job_t *job, s_state_t state)
{
    if (job->state)
        self->count[job->state]--;
    job->state = state;
    if (state)
        self->count[state]++;
}

//  Takes the job out of the container of its current state.
static void
s_job_detach (cw_core_t *self, s_job_t *job)
{
    switch (job->state) {
        case S_QUEUED:
            zlistx_delete (job->queue->jobs, job->handle);
            break;
        case S_WAITING:
            zlistx_delete (job->key->waiting, job->handle);
            break;
        case S_LEASE_WAIT:
            zlistx_delete (self->lease_wait, job->handle);
            break;
        case S_SENT:
            zlistx_delete (job->worker->jobs, job->worker_handle);
            job->worker = NULL;
            job->worker_handle = NULL;
            s_heap_remove (&self->due_heap, job);
            if (job->charged)
                job->charged->inflight--;
            job->charged = NULL;
            break;
        case S_PENDING:
            zlistx_delete (self->pending, job->handle);
            break;
        case S_COMMITTING:
            break;
    }
    job->handle = NULL;
    s_set_state (self, job, 0);
}

static void
s_enqueue (cw_core_t *self, s_job_t *job, bool front)
{
    s_set_state (self, job, S_QUEUED);
    job->handle = front? zlistx_add_start (job->queue->jobs, job)
                       : zlistx_add_end (job->queue->jobs, job);
}

static void
s_job_free (cw_core_t *self, s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (self->payload_free && job->payload)
        self->payload_free (job->payload, job->payload_size);
    s_transition_clear (&job->transition);
    free (job);
    *job_p = NULL;
}

//  Forgets a job: out of every container, payload freed. The caller has
//  dealt with its key.
static void
s_job_forget (cw_core_t *self, s_job_t *job)
{
    s_job_detach (self, job);
    s_heap_remove (&self->lease_heap, job);
    s_map_remove (&self->jobs, job->id);
    s_job_free (self, &job);
}

static void
s_key_drop_if_empty (cw_core_t *self, s_key_t *key)
{
    if (!key->head && zlistx_size (key->waiting) == 0)
        zhashx_delete (self->keys, key->name);
}

//  Releases and forgets every WAITING job of key.
static void
s_key_release_waiting (cw_core_t *self, s_key_t *key)
{
    s_leases_t back = {0};
    s_job_t *job;
    while ((job = (s_job_t *) zlistx_first (key->waiting))) {
        s_leases_add (&back, job->id, job->lease_token);
        s_job_forget (self, job);
    }
    s_release (self, &back);
}

//  The head of key leaves the core. advance: the head finished (done), so
//  the next job of the key may go; else (retry later, dead, lease lost,
//  released) the rest of the key is handed back to the store.
static void
s_key_head_gone (cw_core_t *self, s_key_t *key, bool advance)
{
    key->head = NULL;
    if (advance && !self->draining) {
        s_job_t *next = (s_job_t *) zlistx_first (key->waiting);
        if (next) {
            s_job_detach (self, next);
            key->head = next;
            s_enqueue (self, next, false);
        }
    }
    else
        s_key_release_waiting (self, key);
    s_key_drop_if_empty (self, key);
}

//  Forgets a job, keeping its key's order rules.
static void
s_job_drop (cw_core_t *self, s_job_t *job, bool advance)
{
    s_key_t *key = job->key;
    bool head = key && key->head == job;
    s_job_forget (self, job);
    if (head)
        s_key_head_gone (self, key, advance);
    else
    if (key)
        s_key_drop_if_empty (self, key);
}

//  Puts a SENT job back for dispatch (worker lost, result overdue), no
//  attempt spent; an expired lease is handed back instead.
static void
s_job_redispatch (cw_core_t *self, int64_t now, s_job_t *job)
{
    assert (job->state == S_SENT);
    s_job_detach (self, job);
    if (job->lease_expires_at > now && !self->draining) {
        s_enqueue (self, job, true);
        self->stats.redispatched++;
    }
    else {
        s_leases_t back = {0};
        s_leases_add (&back, job->id, job->lease_token);
        s_release (self, &back);
        s_job_drop (self, job, false);
    }
}

//  --------------------------------------------------------------------------
//  Workers

//  True if worker runs jobs of flow at target: it announced the flow and
//  either no targets (any target), or target among them, or the job
//  names no target (it runs at the worker's own).
static bool
s_worker_serves (s_worker_t *worker, const char *flow, const char *target)
{
    bool flow_served = false;
    for (size_t index = 0; index < worker->flow_count && !flow_served; index++)
        flow_served = streq (worker->flows[index], flow);
    if (!flow_served || !target || worker->target_count == 0)
        return flow_served;
    for (size_t index = 0; index < worker->target_count; index++)
        if (streq (worker->targets[index], target))
            return true;
    return false;
}

static const char *
s_queue_target_name (const s_queue_t *queue)
{
    return queue->target ? queue->target->name : NULL;
}

//  True if some live worker (with credit or not) serves flow at target.
static bool
s_flow_served (cw_core_t *self, const char *flow, const char *target)
{
    for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
         worker; worker = (s_worker_t *) zhashx_next (self->workers))
        if (s_worker_serves (worker, flow, target))
            return true;
    return false;
}

//  The caps of the target worker calls for work naming none: its first
//  announced target's, NULL when it has none or they are not capped.
static s_target_t *
s_worker_target (cw_core_t *self, s_worker_t *worker)
{
    return worker->target_count
               ? (s_target_t *) zhashx_lookup (self->targets,
                                               worker->targets[0])
               : NULL;
}

static bool s_target_allows (s_target_t *target, int64_t now);

//  Least loaded live worker with credit for flow at target, or NULL. For
//  work naming no target (it runs at its worker's), only a worker whose
//  target has room.
static s_worker_t *
s_worker_pick (cw_core_t *self, int64_t now, const char *flow,
               const char *target)
{
    s_worker_t *best = NULL;
    size_t best_load = SIZE_MAX;
    for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
         worker; worker = (s_worker_t *) zhashx_next (self->workers)) {
        size_t load = zlistx_size (worker->jobs) + worker->calls;
        if (worker->credit > 0 && load < best_load
            && s_worker_serves (worker, flow, target)
            && (target || s_target_allows (s_worker_target (self, worker),
                                           now))) {
            best = worker;
            best_load = load;
        }
    }
    return best;
}

static void
s_worker_seen (cw_core_t *self, int64_t now, s_worker_t *worker)
{
    worker->expires_at
        = now + self->config.heartbeat_msec * (int64_t) self->config.liveness;
}

//  Forgets a worker: its jobs go back for dispatch, its calls fail.
static void
s_worker_lose (cw_core_t *self, int64_t now, s_worker_t *worker)
{
    s_job_t *job;
    while ((job = (s_job_t *) zlistx_first (worker->jobs)))
        s_job_redispatch (self, now, job);
    //  Calls out at this worker fail now
    zlistx_t *lost = zlistx_new ();
    for (s_call_t *call = (s_call_t *) zhashx_first (self->calls); call;
         call = (s_call_t *) zhashx_next (self->calls))
        if (call->worker == worker)
            zlistx_add_end (lost, (void *) zhashx_cursor (self->calls));
    for (const char *name = (const char *) zlistx_first (lost); name;
         name = (const char *) zlistx_next (lost)) {
        s_call_t *call = (s_call_t *) zhashx_lookup (self->calls, name);
        s_action_t *action = s_action_new (self, CW_CORE_CALL_FAILED);
        action->action.call_id = call->call_id;
        s_action_reason (action, "worker \"%s\" lost", worker->name);
        self->stats.calls_failed++;
        if (call->target) {
            call->target->inflight--;
            call->target->calls--;
        }
        zhashx_delete (self->calls, name);
    }
    zlistx_destroy (&lost);
    self->stats.workers_lost++;
    zhashx_delete (self->workers, worker->name);
}

//  --------------------------------------------------------------------------
//  Targets: in-flight cap and token bucket

static void
s_target_refill (s_target_t *target, int64_t now)
{
    if (!target->rate_per_sec)
        return;
    if (target->refilled_at == INT64_MIN || now - target->refilled_at
        >= target->capacity / (int64_t) target->rate_per_sec + 1)
        target->tokens = target->capacity;
    else
    if (now > target->refilled_at)
        target->tokens = s_min (
            target->capacity,
            target->tokens
                + (now - target->refilled_at) * (int64_t) target->rate_per_sec);
    target->refilled_at = now;
}

static bool
s_target_allows (s_target_t *target, int64_t now)
{
    if (!target)
        return true;
    if (target->max_inflight && target->inflight >= target->max_inflight)
        return false;
    s_target_refill (target, now);
    return !target->rate_per_sec || target->tokens >= S_TOKEN;
}

static void
s_target_take (s_target_t *target)
{
    if (!target)
        return;
    target->inflight++;
    if (target->rate_per_sec)
        target->tokens -= S_TOKEN;
}

//  --------------------------------------------------------------------------
//  Dispatch

static void
s_send (cw_core_t *self, int64_t now, s_job_t *job, s_worker_t *worker)
{
    s_job_detach (self, job);
    s_set_state (self, job, S_SENT);
    job->worker = worker;
    job->worker_handle = zlistx_add_end (worker->jobs, job);
    job->sent_attempt = job->attempts + 1;
    job->send_seq++;
    job->ever_sent = true;
    job->due_at = now + job->deadline_msec
                + self->config.heartbeat_msec * (int64_t) self->config.liveness;
    s_heap_push (&self->due_heap, job);
    worker->credit--;
    job->charged = job->queue->target ? job->queue->target
                                      : s_worker_target (self, worker);
    s_target_take (job->charged);

    s_action_t *action = s_action_new (self, CW_CORE_SEND_JOB);
    s_action_worker (action, worker->name);
    action->action.job_id = job->id;
    action->action.lease_token = job->lease_token;
    action->action.attempt = job->sent_attempt;
    action->action.deadline_msec = job->deadline_msec;
    action->send_seq = job->send_seq;
    self->stats.dispatched++;
    job->queue->dispatched++;
}

//  How long jobs may wait here for a flow no worker serves: a worker's
//  liveness, time enough for a restarted worker to come back.
static int64_t
s_orphan_grace (cw_core_t *self)
{
    return self->config.heartbeat_msec * (int64_t) self->config.liveness;
}

//  Hands every queued job of queue back to the store (no attempt spent),
//  so another broker with a worker for the flow can run it.
static void
s_queue_release (cw_core_t *self, s_queue_t *queue)
{
    s_leases_t back = {0};
    s_job_t *job;
    while ((job = (s_job_t *) zlistx_first (queue->jobs))) {
        s_leases_add (&back, job->id, job->lease_token);
        s_job_drop (self, job, false);
    }
    self->stats.orphans_released += back.count;
    s_release (self, &back);
}

//  Sends what may go, one job per queue per round. Jobs of a flow that no
//  worker has served for the grace go back to the store.
static void
s_dispatch (cw_core_t *self, int64_t now)
{
    if (self->draining)
        return;
    for (s_queue_t *queue = (s_queue_t *) zlistx_first (self->queue_list);
         queue; queue = (s_queue_t *) zlistx_next (self->queue_list)) {
        if (zlistx_size (queue->jobs) == 0
            || s_flow_served (self, queue->flow, s_queue_target_name (queue)))
            queue->orphan_since = INT64_MIN;
        else
        if (queue->orphan_since == INT64_MIN)
            queue->orphan_since = now;
        else
        if (now >= queue->orphan_since + s_orphan_grace (self)) {
            queue->orphan_since = INT64_MIN;
            s_queue_release (self, queue);
        }
    }
    bool progress = true;
    while (progress) {
        progress = false;
        for (s_queue_t *queue = (s_queue_t *) zlistx_first (self->queue_list);
             queue; queue = (s_queue_t *) zlistx_next (self->queue_list)) {
            s_job_t *job;
            while ((job = (s_job_t *) zlistx_first (queue->jobs))
                   && job->lease_expires_at < now + job->deadline_msec) {
                //  Lease too short for its deadline: renew first
                s_job_detach (self, job);
                s_set_state (self, job, S_LEASE_WAIT);
                job->handle = zlistx_add_end (self->lease_wait, job);
            }
            if (!job || !s_target_allows (queue->target, now))
                continue;
            s_worker_t *worker = s_worker_pick (
                self, now, queue->flow, s_queue_target_name (queue));
            if (!worker)
                continue;
            s_send (self, now, job, worker);
            progress = true;
        }
    }
}

//  --------------------------------------------------------------------------
//  Claim, commit, renew

static uint64_t
s_credit_total (cw_core_t *self)
{
    uint64_t total = 0;
    for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
         worker; worker = (s_worker_t *) zhashx_next (self->workers))
        total += worker->credit;
    return total;
}

static size_t
s_undispatched (cw_core_t *self)
{
    return self->count[S_QUEUED] + self->count[S_WAITING]
         + self->count[S_LEASE_WAIT];
}

//  Adds (flow, target) to the CLAIM action unless it is there already.
static void
s_claim_pair (s_action_t *action, size_t *capacity, const char *flow,
              const char *target)
{
    for (size_t index = 0; index < action->action.flow_count; index++)
        if (streq (action->flows[index], flow)
            && (action->flow_targets[index]
                    ? target && streq (action->flow_targets[index], target)
                    : !target))
            return;
    if (action->action.flow_count == *capacity) {
        *capacity = *capacity ? *capacity * 2 : 8;
        action->flows = (char **) realloc (action->flows,
                                           (*capacity + 1) * sizeof (char *));
        action->flow_targets = (char **) realloc (
            action->flow_targets, (*capacity + 1) * sizeof (char *));
        assert (action->flows && action->flow_targets);
    }
    action->flows[action->action.flow_count] = s_strdup (flow);
    action->flow_targets[action->action.flow_count] = s_strdup (target);
    action->action.flow_count++;
}

static void
s_claim_pairs (cw_core_t *self, s_action_t *action)
{
    size_t capacity = 0;
    for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
         worker; worker = (s_worker_t *) zhashx_next (self->workers)) {
        if (!worker->credit && !self->config.prefetch)
            continue;
        for (size_t flow = 0; flow < worker->flow_count; flow++)
            if (worker->target_count == 0)
                s_claim_pair (action, &capacity, worker->flows[flow], NULL);
            else
                for (size_t target = 0; target < worker->target_count;
                     target++)
                    s_claim_pair (action, &capacity, worker->flows[flow],
                                  worker->targets[target]);
    }
    if (!action->flows) {
        action->flows = (char **) zmalloc (sizeof (char *));
        action->flow_targets = (char **) zmalloc (sizeof (char *));
    }
    action->action.flows = (const char *const *) action->flows;
    action->action.flow_targets = (const char *const *) action->flow_targets;
}

static void
s_claim (cw_core_t *self, int64_t now)
{
    if (self->draining || self->claim_batch || now < self->claim_retry_at)
        return;
    bool poll_due = self->config.poll_msec && now >= self->claim_at;
    if (!self->wake && !self->more && !poll_due)
        return;
    //  Room: the workers' credit plus the prefetch, less what is held
    //  and not sent yet
    uint64_t credit = s_credit_total (self);
    uint64_t held = s_undispatched (self);
    uint64_t room = zhashx_size (self->workers)
                  ? credit + self->config.prefetch : 0;
    uint64_t free_capacity = room > held ? room - held : 0;
    //  While every credit can be served from jobs held here, wait until
    //  half the prefetch is used up: fewer, larger claims
    bool stocked = held >= credit
                && free_capacity < (self->config.prefetch + 1) / 2;
    if (free_capacity == 0 || stocked) {
        //  No room: skip this poll; a wake stays noted for later
        if (poll_due)
            self->claim_at = now + self->config.poll_msec;
        return;
    }
    //  (flow, target) pairs of workers with credit, each once; with a
    //  prefetch, of every worker (its credit comes back soon). A worker
    //  that announced no targets takes its flows at any target (NULL).
    s_action_t *action = s_action_new (self, CW_CORE_CLAIM);
    s_claim_pairs (self, action);
    action->action.limit = (uint32_t) (free_capacity < self->config.claim_max
                                           ? free_capacity
                                           : self->config.claim_max);
    action->action.lease_msec = self->config.lease_msec;
    action->action.batch_id = self->next_batch++;
    self->claim_batch = action->action.batch_id;
    self->claim_limit = action->action.limit;
    self->wake = false;
    self->more = false;
    self->claim_at = now + self->config.poll_msec;
    self->stats.claims++;
}

static void
s_flush (cw_core_t *self, int64_t now)
{
    if (self->commit_batch || now < self->commit_retry_at)
        return;
    s_job_t *oldest = (s_job_t *) zlistx_first (self->pending);
    if (!oldest)
        return;
    size_t count = zlistx_size (self->pending);
    if (count < self->config.flush_max && !self->draining
        && now < oldest->pending_at + self->config.flush_msec)
        return;
    if (count > self->config.flush_max)
        count = self->config.flush_max;
    s_action_t *action = s_action_new (self, CW_CORE_COMMIT);
    action->transitions = (cw_core_transition_t *) zmalloc (
        count * sizeof (cw_core_transition_t));
    self->commit_jobs = (s_job_t **) zmalloc (count * sizeof (s_job_t *));
    for (size_t index = 0; index < count; index++) {
        s_job_t *job = (s_job_t *) zlistx_first (self->pending);
        s_job_detach (self, job);
        s_set_state (self, job, S_COMMITTING);
        self->commit_jobs[index] = job;
        cw_core_transition_t *copy = &action->transitions[index];
        *copy = job->transition;
        copy->worker = s_strdup (job->transition.worker);
        copy->error = s_strdup (job->transition.error);
    }
    action->action.transitions = action->transitions;
    action->action.transition_count = count;
    action->action.batch_id = self->next_batch++;
    self->commit_batch = action->action.batch_id;
    self->commit_count = count;
    self->stats.commits++;
}

static void
s_renew (cw_core_t *self, int64_t now)
{
    if (self->renew_batch || now < self->renew_retry_at)
        return;
    s_leases_t renew = {0};
    s_job_t *job;
    //  Jobs whose lease ends within the margin, then jobs waiting for a
    //  longer lease to go out
    while ((job = s_heap_top (&self->lease_heap))
           && job->lease_expires_at <= now + self->config.renew_margin_msec
           && renew.count < self->config.claim_max) {
        s_heap_remove (&self->lease_heap, job);
        job->renewing = true;
        s_leases_add (&renew, job->id, job->lease_token);
    }
    for (job = (s_job_t *) zlistx_first (self->lease_wait);
         job && renew.count < self->config.claim_max;
         job = (s_job_t *) zlistx_next (self->lease_wait)) {
        if (job->renewing)
            continue;
        s_heap_remove (&self->lease_heap, job);
        job->renewing = true;
        s_leases_add (&renew, job->id, job->lease_token);
    }
    if (renew.count == 0)
        return;
    size_t used = renew.count;
    s_action_t *action = s_action_new (self, CW_CORE_RENEW);
    self->renew_ids = (int64_t *) zmalloc (used * sizeof (int64_t));
    memcpy (self->renew_ids, renew.ids, used * sizeof (int64_t));
    self->renew_count = used;
    s_action_ids (action, renew.ids, renew.tokens, used);
    action->action.batch_id = self->next_batch++;
    action->action.lease_expires_at = now + self->config.lease_msec;
    self->renew_batch = action->action.batch_id;
    self->renew_expires_at = action->action.lease_expires_at;
}

//  Ends the outstanding RENEW; ids not lost get new_expiry (or keep their
//  lease when new_expiry is 0).
static void
s_renew_end (cw_core_t *self, int64_t new_expiry)
{
    for (size_t index = 0; index < self->renew_count; index++) {
        s_job_t *job = s_map_get (&self->jobs, self->renew_ids[index]);
        if (!job || !job->renewing)
            continue;
        job->renewing = false;
        if (new_expiry)
            job->lease_expires_at = new_expiry;
        s_heap_push (&self->lease_heap, job);
        if (job->state == S_LEASE_WAIT && new_expiry) {
            s_job_detach (self, job);
            s_enqueue (self, job, true);
        }
    }
    free (self->renew_ids);
    self->renew_ids = NULL;
    self->renew_count = 0;
    self->renew_batch = 0;
}

//  --------------------------------------------------------------------------
//  Timers and drain

static void
s_expire_leases (cw_core_t *self, int64_t now)
{
    s_job_t *job;
    while ((job = s_heap_top (&self->lease_heap))
           && job->lease_expires_at <= now) {
        s_heap_remove (&self->lease_heap, job);
        if (job->state == S_PENDING || job->state == S_COMMITTING)
            continue;           //  Its transition still commits (owner check)
        self->stats.leases_expired++;
        s_job_drop (self, job, false);
    }
}

static void
s_drain_step (cw_core_t *self, int64_t now)
{
    if (!self->draining || self->exited)
        return;
    if (now >= self->drain_deadline) {
        //  Results not in by the deadline: hand the jobs back
        s_leases_t back = {0};
        for (size_t index = 0; index <= self->jobs.mask; index++) {
            s_job_t *job = self->jobs.slots[index];
            if (job && job->state == S_SENT)
                s_leases_add (&back, job->id, job->lease_token);
        }
        for (size_t index = 0; index < back.count; index++)
            s_job_drop (self, s_map_get (&self->jobs, back.ids[index]),
                        false);
        s_release (self, &back);
        //  Calls still out fail
        for (s_call_t *call = (s_call_t *) zhashx_first (self->calls); call;
             call = (s_call_t *) zhashx_next (self->calls)) {
            s_action_t *action = s_action_new (self, CW_CORE_CALL_FAILED);
            action->action.call_id = call->call_id;
            s_action_reason (action, "broker draining");
            self->stats.calls_failed++;
            if (call->target) {
                call->target->inflight--;
                call->target->calls--;
            }
            call->worker->calls--;
        }
        zhashx_purge (self->calls);
    }
    if (self->jobs.size || zhashx_size (self->calls))
        return;
    for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
         worker; worker = (s_worker_t *) zhashx_next (self->workers)) {
        s_action_t *action = s_action_new (self, CW_CORE_SEND_DISCONNECT);
        s_action_worker (action, worker->name);
        s_action_reason (action, "broker shutting down");
    }
    zhashx_purge (self->workers);
    s_action_new (self, CW_CORE_EXIT);
    self->exited = true;
}

//  Runs after every event: everything that may follow from it.
static void
s_step (cw_core_t *self, int64_t now)
{
    if (self->exited)
        return;
    if (now > self->now)
        self->now = now;
    s_expire_leases (self, now);
    s_dispatch (self, now);
    s_flush (self, now);
    s_renew (self, now);
    s_claim (self, now);
    s_drain_step (self, now);
}

//  Ends the action handed out last (its pointers die now). The core's
//  clock moves only in s_step: an event that does not step (a HEARTBEAT)
//  must not turn a deadline that fell due before it into one "behind".
static void
s_enter (cw_core_t *self, int64_t now)
{
    (void) now;
    s_action_destroy (&self->current);
}

//  --------------------------------------------------------------------------
//  Inputs

//  Replaces an owned list of names with copies of names.
static void
s_names_replace (char ***list, size_t *count, const char *const *names,
                 size_t name_count)
{
    for (size_t index = 0; index < *count; index++)
        free ((*list)[index]);
    free (*list);
    *list = (char **) zmalloc ((name_count + 1) * sizeof (char *));
    for (size_t index = 0; index < name_count; index++)
        (*list)[index] = s_strdup (names[index]);
    *count = name_count;
}

void
cw_core_on_worker_ready (cw_core_t *self, int64_t now, const char *worker,
                         const char *const *flows, size_t flow_count,
                         const char *const *targets, size_t target_count,
                         uint32_t credit)
{
    assert (self);
    assert (worker);
    assert (flows || flow_count == 0);
    assert (targets || target_count == 0);
    s_enter (self, now);
    if (self->draining) {
        s_action_t *action = s_action_new (self, CW_CORE_SEND_DISCONNECT);
        s_action_worker (action, worker);
        s_action_reason (action, "broker shutting down");
        return;
    }
    s_worker_t *session = (s_worker_t *) zhashx_lookup (self->workers, worker);
    if (!session) {
        session = (s_worker_t *) zmalloc (sizeof (s_worker_t));
        session->name = s_strdup (worker);
        session->jobs = zlistx_new ();
        zhashx_insert (self->workers, worker, session);
    }
    s_names_replace (&session->flows, &session->flow_count, flows, flow_count);
    s_names_replace (&session->targets, &session->target_count, targets,
                     target_count);
    session->credit = credit;
    s_worker_seen (self, now, session);
    if (self->heartbeat_at == INT64_MIN)
        self->heartbeat_at = now + self->config.heartbeat_msec;
    self->wake = true;          //  New capacity: look for work
    s_step (self, now);
}

int
cw_core_on_worker_credit (cw_core_t *self, int64_t now, const char *worker,
                          uint32_t credit)
{
    assert (self);
    assert (worker);
    s_enter (self, now);
    s_worker_t *session = (s_worker_t *) zhashx_lookup (self->workers, worker);
    if (!session)
        return -1;
    session->credit = credit > UINT32_MAX - session->credit
                          ? UINT32_MAX
                          : session->credit + credit;
    s_worker_seen (self, now, session);
    s_step (self, now);
    return 0;
}

int
cw_core_on_worker_seen (cw_core_t *self, int64_t now, const char *worker)
{
    assert (self);
    assert (worker);
    s_enter (self, now);
    s_worker_t *session = (s_worker_t *) zhashx_lookup (self->workers, worker);
    if (!session)
        return -1;
    s_worker_seen (self, now, session);
    return 0;
}

void
cw_core_on_worker_gone (cw_core_t *self, int64_t now, const char *worker)
{
    assert (self);
    assert (worker);
    s_enter (self, now);
    s_worker_t *session = (s_worker_t *) zhashx_lookup (self->workers, worker);
    if (session)
        s_worker_lose (self, now, session);
    s_step (self, now);
}

int
cw_core_on_result (cw_core_t *self, int64_t now, const char *worker,
                   int64_t job_id, uint32_t attempt,
                   cw_core_outcome_t outcome, int http_status,
                   int64_t retry_after_msec, const char *error,
                   int64_t duration_msec)
{
    assert (self);
    assert (worker);
    s_enter (self, now);
    s_worker_t *session = (s_worker_t *) zhashx_lookup (self->workers, worker);
    if (!session) {
        self->stats.results_ignored++;
        return -1;
    }
    s_worker_seen (self, now, session);
    s_job_t *job = s_map_get (&self->jobs, job_id);
    if (!job || job->state != S_SENT || job->worker != session
        || job->sent_attempt != attempt || outcome < CW_CORE_OK
        || outcome > CW_CORE_VERSION) {
        self->stats.results_ignored++;
        s_step (self, now);
        return 0;
    }
    s_queue_t *queue = job->queue;
    s_job_detach (self, job);
    self->stats.outcomes[outcome]++;
    queue->outcomes[outcome]++;

    cw_core_transition_t *transition = &job->transition;
    s_transition_clear (transition);
    transition->job_id = job->id;
    transition->lease_token = job->lease_token;
    transition->attempts = job->attempts + 1;
    transition->worker = s_strdup (worker);
    transition->attempt = attempt;
    transition->outcome = outcome;
    transition->http_status = http_status;
    transition->error = s_strdup (error);
    transition->duration_msec = duration_msec < 0? 0: duration_msec;
    switch (outcome) {
        case CW_CORE_OK:
        case CW_CORE_DUPLICATE:
            transition->state = CW_CORE_STATE_DONE;
            break;
        case CW_CORE_REJECTED:
            transition->state = CW_CORE_STATE_DEAD;
            transition->dead_reason = CW_CORE_DEAD_REJECTED;
            break;
        case CW_CORE_VERSION:
            transition->state = CW_CORE_STATE_DEAD;
            transition->dead_reason = CW_CORE_DEAD_VERSION;
            break;
        case CW_CORE_TRANSIENT: {
            cw_retry_policy_t policy = job->queue->policy;
            policy.max_attempts = job->max_attempts;
            if (transition->attempts >= policy.max_attempts) {
                transition->state = CW_CORE_STATE_DEAD;
                transition->dead_reason = CW_CORE_DEAD_EXHAUSTED;
                self->stats.exhausted++;
                queue->exhausted++;
            }
            else {
                //  Retry-After wins, up to the cap; else full jitter
                int64_t delay = retry_after_msec >= 0
                    ? s_min (policy.cap_msec, retry_after_msec)
                    : cw_retry_backoff (&policy, transition->attempts,
                                        cw_retry_rng_next (&self->rng));
                transition->state = CW_CORE_STATE_READY;
                transition->next_run_at = now + delay;
            }
            break;
        }
    }
    s_set_state (self, job, S_PENDING);
    job->pending_at = now;
    job->handle = zlistx_add_end (self->pending, job);
    s_step (self, now);
    return 0;
}

void
cw_core_on_jobs_claimed (cw_core_t *self, int64_t now, uint64_t batch_id,
                         cw_core_job_t *jobs, size_t count)
{
    assert (self);
    assert (jobs || count == 0);
    s_enter (self, now);
    if (batch_id && batch_id == self->claim_batch) {
        self->claim_batch = 0;
        self->more = count >= self->claim_limit;
    }
    s_leases_t back = {0};
    for (size_t index = 0; index < count; index++) {
        cw_core_job_t *given = &jobs[index];
        assert (given->flow);
        if (s_map_get (&self->jobs, given->id)
            || given->lease_expires_at <= now || self->draining) {
            //  Held already (under an older lease: its COMMIT or RENEW
            //  will find that lease gone), lease over, or shutting down:
            //  this lease goes back, by its token, so it cannot touch
            //  the one held
            s_leases_add (&back, given->id, given->lease_token);
            if (self->payload_free && given->payload)
                self->payload_free (given->payload, given->payload_size);
            given->payload = NULL;
            continue;
        }
        s_job_t *job = (s_job_t *) zmalloc (sizeof (s_job_t));
        job->id = given->id;
        job->queue = s_queue_require (self, given->flow, given->target);
        job->attempts = given->attempts;
        job->max_attempts = given->max_attempts? given->max_attempts
                                               : job->queue->policy.max_attempts;
        job->lease_expires_at = given->lease_expires_at;
        job->lease_token = given->lease_token;
        job->deadline_msec = given->deadline_msec > 0
                                 ? given->deadline_msec
                                 : self->config.job_deadline_msec;
        if (job->deadline_msec > self->config.lease_msec
                                 - self->config.renew_margin_msec)
            job->deadline_msec = self->config.lease_msec
                               - self->config.renew_margin_msec;
        job->payload = given->payload;
        job->payload_size = given->payload_size;
        given->payload = NULL;
        s_map_put (&self->jobs, job);
        s_heap_push (&self->lease_heap, job);
        if (!given->ordering_key) {
            s_enqueue (self, job, false);
            continue;
        }
        s_key_t *key = (s_key_t *) zhashx_lookup (self->keys,
                                                  given->ordering_key);
        if (!key) {
            key = (s_key_t *) zmalloc (sizeof (s_key_t));
            key->name = s_strdup (given->ordering_key);
            key->waiting = zlistx_new ();
            zlistx_set_comparator (key->waiting, s_job_compare);
            zhashx_insert (self->keys, given->ordering_key, key);
        }
        job->key = key;
        if (key->head && key->head->state == S_QUEUED
            && !key->head->ever_sent && job->id < key->head->id) {
            //  An earlier job of the key: it goes first
            s_job_t *later = key->head;
            s_job_detach (self, later);
            s_set_state (self, later, S_WAITING);
            later->handle = zlistx_insert (key->waiting, later, true);
            key->head = NULL;
        }
        if (!key->head) {
            key->head = job;
            s_enqueue (self, job, false);
        }
        else {
            s_set_state (self, job, S_WAITING);
            job->handle = zlistx_insert (key->waiting, job, false);
        }
    }
    s_release (self, &back);
    s_step (self, now);
}

void
cw_core_on_claim_failed (cw_core_t *self, int64_t now, uint64_t batch_id)
{
    assert (self);
    s_enter (self, now);
    if (batch_id && batch_id == self->claim_batch) {
        self->claim_batch = 0;
        self->claim_retry_at = now + self->config.retry_msec;
        self->wake = true;      //  Try again once the wait is over
    }
    s_step (self, now);
}

void
cw_core_on_commit_done (cw_core_t *self, int64_t now, uint64_t batch_id)
{
    assert (self);
    s_enter (self, now);
    if (batch_id && batch_id == self->commit_batch) {
        for (size_t index = 0; index < self->commit_count; index++) {
            s_job_t *job = self->commit_jobs[index];
            bool advance = !job->lost
                        && job->transition.state == CW_CORE_STATE_DONE;
            s_job_drop (self, job, advance);
        }
        free (self->commit_jobs);
        self->commit_jobs = NULL;
        self->commit_count = 0;
        self->commit_batch = 0;
    }
    s_step (self, now);
}

void
cw_core_on_commit_failed (cw_core_t *self, int64_t now, uint64_t batch_id)
{
    assert (self);
    s_enter (self, now);
    if (batch_id && batch_id == self->commit_batch) {
        //  Back to the front of the pending list, in their order
        for (size_t index = self->commit_count; index-- > 0;) {
            s_job_t *job = self->commit_jobs[index];
            s_job_detach (self, job);
            if (job->lost) {
                s_job_drop (self, job, false);
                continue;
            }
            s_set_state (self, job, S_PENDING);
            job->handle = zlistx_add_start (self->pending, job);
        }
        free (self->commit_jobs);
        self->commit_jobs = NULL;
        self->commit_count = 0;
        self->commit_batch = 0;
        self->commit_retry_at = now + self->config.retry_msec;
        self->stats.commit_failures++;
    }
    s_step (self, now);
}

void
cw_core_on_renew_done (cw_core_t *self, int64_t now, uint64_t batch_id,
                       const int64_t *lost, size_t lost_count)
{
    assert (self);
    assert (lost || lost_count == 0);
    s_enter (self, now);
    if (batch_id && batch_id == self->renew_batch) {
        for (size_t index = 0; index < lost_count; index++) {
            s_job_t *job = s_map_get (&self->jobs, lost[index]);
            if (!job || !job->renewing)
                continue;       //  Not in this RENEW
            job->renewing = false;
            self->stats.leases_lost++;
            if (job->state == S_COMMITTING)
                job->lost = true;   //  Forgotten when its COMMIT ends
            else
                s_job_drop (self, job, false);
        }
        s_renew_end (self, self->renew_expires_at);
    }
    s_step (self, now);
}

void
cw_core_on_renew_failed (cw_core_t *self, int64_t now, uint64_t batch_id)
{
    assert (self);
    s_enter (self, now);
    if (batch_id && batch_id == self->renew_batch) {
        s_renew_end (self, 0);
        self->renew_retry_at = now + self->config.retry_msec;
    }
    s_step (self, now);
}

void
cw_core_on_wake (cw_core_t *self, int64_t now)
{
    assert (self);
    s_enter (self, now);
    self->wake = true;
    s_step (self, now);
}

void
cw_core_on_tick (cw_core_t *self, int64_t now)
{
    assert (self);
    s_enter (self, now);
    if (self->exited)
        return;
    //  Workers not heard from for liveness intervals are lost
    zlistx_t *lost = zlistx_new ();
    for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
         worker; worker = (s_worker_t *) zhashx_next (self->workers))
        if (worker->expires_at <= now)
            zlistx_add_end (lost, worker);
    for (s_worker_t *worker = (s_worker_t *) zlistx_first (lost); worker;
         worker = (s_worker_t *) zlistx_next (lost))
        s_worker_lose (self, now, worker);
    zlistx_destroy (&lost);
    //  Heartbeats
    if (now >= self->heartbeat_at) {
        for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
             worker; worker = (s_worker_t *) zhashx_next (self->workers)) {
            s_action_t *action = s_action_new (self, CW_CORE_SEND_HEARTBEAT);
            s_action_worker (action, worker->name);
        }
        self->heartbeat_at = now + self->config.heartbeat_msec;
    }
    //  Results overdue: the delivery is lost, no attempt spent
    s_job_t *job;
    while ((job = s_heap_top (&self->due_heap)) && job->due_at <= now)
        s_job_redispatch (self, now, job);
    s_step (self, now);
}

void
cw_core_on_drain (cw_core_t *self, int64_t now, int64_t deadline)
{
    assert (self);
    s_enter (self, now);
    if (self->draining || self->exited)
        return;
    self->draining = true;
    self->drain_deadline = deadline;
    //  Jobs not out yet go back to the store at once
    s_leases_t back = {0};
    for (size_t index = 0; index <= self->jobs.mask; index++) {
        s_job_t *job = self->jobs.slots[index];
        if (job && (job->state == S_QUEUED || job->state == S_WAITING
                    || job->state == S_LEASE_WAIT))
            s_leases_add (&back, job->id, job->lease_token);
    }
    for (size_t index = 0; index < back.count; index++) {
        s_job_t *job = s_map_get (&self->jobs, back.ids[index]);
        if (job->key) {
            //  A head stays the key's head until forgotten; no promotion
            if (job->key->head == job)
                job->key->head = NULL;
            s_key_t *key = job->key;
            s_job_forget (self, job);
            s_key_drop_if_empty (self, key);
        }
        else
            s_job_forget (self, job);
    }
    s_release (self, &back);
    s_step (self, now);
}

void
cw_core_on_call (cw_core_t *self, int64_t now, int64_t call_id,
                 const char *flow, const char *target, int64_t deadline_msec)
{
    assert (self);
    assert (flow);
    s_enter (self, now);
    char name[32];
    snprintf (name, sizeof (name), "%" PRId64, call_id);
    s_worker_t *worker = self->draining? NULL: s_worker_pick (self, now, flow, target);
    //  A call naming no target counts against its worker's
    s_target_t *limits = target || !worker ? s_target_require (self, target)
                                           : s_worker_target (self, worker);
    s_action_t *action;
    if (zhashx_lookup (self->calls, name)) {
        action = s_action_new (self, CW_CORE_CALL_FAILED);
        s_action_reason (action, "call %" PRId64 " is already out", call_id);
    }
    else
    if (!worker) {
        action = s_action_new (self, CW_CORE_CALL_FAILED);
        s_action_reason (action, self->draining
                                     ? "broker draining"
                                     : "no worker with credit (and room at its"
                                       " target) for flow \"%s\"",
                         flow);
    }
    else
    if (!s_target_allows (limits, now)) {
        action = s_action_new (self, CW_CORE_CALL_FAILED);
        s_action_reason (action, "target \"%s\" at its limit", target);
    }
    else {
        action = s_action_new (self, CW_CORE_SEND_CALL);
        s_action_worker (action, worker->name);
        action->action.deadline_msec = deadline_msec > 0
                                           ? deadline_msec
                                           : self->config.job_deadline_msec;
        s_target_take (limits);
        if (limits)
            limits->calls++;
        worker->calls++;
        s_call_t *call = (s_call_t *) zmalloc (sizeof (s_call_t));
        call->call_id = call_id;
        call->worker = worker;
        call->target = limits;
        zhashx_insert (self->calls, name, call);
    }
    if (action->action.type == CW_CORE_CALL_FAILED)
        self->stats.calls_failed++;
    action->action.call_id = call_id;
    s_step (self, now);
}

void
cw_core_on_call_done (cw_core_t *self, int64_t now, int64_t call_id)
{
    assert (self);
    s_enter (self, now);
    char name[32];
    snprintf (name, sizeof (name), "%" PRId64, call_id);
    s_call_t *call = (s_call_t *) zhashx_lookup (self->calls, name);
    if (call) {
        if (call->target) {
            call->target->inflight--;
            call->target->calls--;
        }
        call->worker->calls--;
        zhashx_delete (self->calls, name);
    }
    s_step (self, now);
}

//  --------------------------------------------------------------------------
//  Outputs

const cw_core_action_t *
cw_core_next_action (cw_core_t *self)
{
    assert (self);
    s_action_destroy (&self->current);
    s_action_t *action;
    while ((action = (s_action_t *) zlistx_first (self->actions))) {
        zlistx_detach_cur (self->actions);
        if (action->action.type == CW_CORE_SEND_JOB) {
            //  Fill in the job now; a job since gone or re-sent is skipped
            s_job_t *job = s_map_get (&self->jobs, action->action.job_id);
            if (!job || job->state != S_SENT
                || job->send_seq != action->send_seq) {
                s_action_destroy (&action);
                continue;
            }
            action->action.flow = job->queue->flow;
            //  A job naming no target runs at its worker's own
            action->action.target = job->queue->target
                                        ? job->queue->target->name
                                    : job->worker->target_count
                                        ? job->worker->targets[0]
                                        : NULL;
            action->action.payload = job->payload;
            action->action.payload_size = job->payload_size;
        }
        else
        if (action->action.type == CW_CORE_SEND_CALL) {
            char name[32];
            snprintf (name, sizeof (name), "%" PRId64, action->action.call_id);
            if (!zhashx_lookup (self->calls, name)) {
                s_action_destroy (&action);
                continue;
            }
        }
        self->current = action;
        return &action->action;
    }
    return NULL;
}

//  A deadline that only matters while still ahead (a wait that tick
//  does not end by itself).
static int64_t
s_ahead (cw_core_t *self, int64_t when)
{
    return when > self->now? when: INT64_MAX;
}

//  When target's bucket next holds a token, if work waits for one.
static int64_t
s_refill_at (cw_core_t *self, s_target_t *target)
{
    if (!target || !target->rate_per_sec || target->tokens >= S_TOKEN)
        return INT64_MAX;
    int64_t wait = (S_TOKEN - target->tokens + target->rate_per_sec - 1)
                 / (int64_t) target->rate_per_sec;
    return s_ahead (self, target->refilled_at + wait);
}

int64_t
cw_core_next_deadline (cw_core_t *self)
{
    assert (self);
    if (self->exited)
        return INT64_MAX;
    int64_t deadline = INT64_MAX;
    //  Heartbeats, liveness, overdue results, lease ends: tick acts
    if (zhashx_size (self->workers))
        deadline = s_min (deadline, self->heartbeat_at);
    //  Jobs waiting for a flow no worker serves go back after the grace
    //  (not while draining: the drain hands everything back itself)
    for (s_queue_t *queue = (s_queue_t *) zlistx_first (self->queue_list);
         queue && !self->draining;
         queue = (s_queue_t *) zlistx_next (self->queue_list))
        if (queue->orphan_since != INT64_MIN)
            deadline = s_min (deadline,
                              queue->orphan_since + s_orphan_grace (self));
    for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
         worker; worker = (s_worker_t *) zhashx_next (self->workers))
        deadline = s_min (deadline, worker->expires_at);
    s_job_t *job = s_heap_top (&self->due_heap);
    if (job)
        deadline = s_min (deadline, job->due_at);
    job = s_heap_top (&self->lease_heap);
    if (job)
        deadline = s_min (deadline, job->lease_expires_at);
    //  RENEW of leases entering the margin (or waiting for a longer one)
    if (!self->renew_batch) {
        if (job)
            deadline = s_min (deadline, s_ahead (self, s_max (
                job->lease_expires_at - self->config.renew_margin_msec,
                self->renew_retry_at)));
        if (zlistx_size (self->lease_wait))
            deadline = s_min (deadline, s_ahead (self, self->renew_retry_at));
    }
    //  Group commit by delay
    job = (s_job_t *) zlistx_first (self->pending);
    if (job && !self->commit_batch)
        deadline = s_min (deadline, s_ahead (self, s_max (
            job->pending_at + self->config.flush_msec,
            self->commit_retry_at)));
    //  Safety-net poll, and a CLAIM waiting out a failure
    if (!self->draining && !self->claim_batch) {
        if (self->config.poll_msec)
            deadline = s_min (deadline, s_ahead (self, s_max (
                self->claim_at, self->claim_retry_at)));
        if (self->wake || self->more)
            deadline = s_min (deadline, s_ahead (self, self->claim_retry_at));
    }
    if (self->draining)
        deadline = s_min (deadline, s_ahead (self, self->drain_deadline));
    //  Targets refilling their bucket while jobs wait for a token: a
    //  queue's own, or for jobs naming no target their workers'
    for (s_queue_t *queue = (s_queue_t *) zlistx_first (self->queue_list);
         queue; queue = (s_queue_t *) zlistx_next (self->queue_list)) {
        if (!zlistx_size (queue->jobs))
            continue;
        if (queue->target)
            deadline = s_min (deadline, s_refill_at (self, queue->target));
        else
            for (s_worker_t *worker
                 = (s_worker_t *) zhashx_first (self->workers);
                 worker; worker = (s_worker_t *) zhashx_next (self->workers))
                if (s_worker_serves (worker, queue->flow, NULL))
                    deadline = s_min (deadline, s_refill_at (
                        self, s_worker_target (self, worker)));
    }
    return deadline;
}

bool
cw_core_holds (cw_core_t *self, int64_t job_id)
{
    assert (self);
    return s_map_get (&self->jobs, job_id) != NULL;
}

void
cw_core_stats (cw_core_t *self, cw_core_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->stats;
    stats->held = self->jobs.size;
    stats->queued = s_undispatched (self);
    stats->inflight = self->count[S_SENT];
    stats->pending = self->count[S_PENDING] + self->count[S_COMMITTING];
    stats->workers = zhashx_size (self->workers);
    stats->calls = zhashx_size (self->calls);
}

size_t
cw_core_flow_stats (cw_core_t *self, cw_core_flow_stats_t *stats, size_t max)
{
    assert (self);
    assert (stats || max == 0);
    size_t count = 0;
    for (s_queue_t *queue = (s_queue_t *) zlistx_first (self->queue_list);
         queue; queue = (s_queue_t *) zlistx_next (self->queue_list)) {
        if (count < max) {
            cw_core_flow_stats_t *entry = &stats[count];
            memset (entry, 0, sizeof (*entry));
            entry->flow = queue->flow;
            entry->target = queue->target ? queue->target->name : NULL;
            entry->queued = zlistx_size (queue->jobs);
            entry->dispatched = queue->dispatched;
            memcpy (entry->outcomes, queue->outcomes,
                    sizeof (entry->outcomes));
            entry->exhausted = queue->exhausted;
        }
        count++;
    }
    return count;
}

//  --------------------------------------------------------------------------
//  Self-check

#define S_FAIL(...)                                                          \
    do {                                                                     \
        snprintf (reason, size, __VA_ARGS__);                                \
        return -1;                                                           \
    } while (0)

int
cw_core_check (cw_core_t *self, char *reason, size_t size)
{
    assert (self);
    assert (reason || size == 0);
    size_t count[S_COMMITTING + 1] = {0};
    size_t held = 0, in_lease_heap = 0;
    for (size_t index = 0; index <= self->jobs.mask; index++) {
        s_job_t *job = self->jobs.slots[index];
        if (!job)
            continue;
        held++;
        if (job->state < S_QUEUED || job->state > S_COMMITTING)
            S_FAIL ("job %" PRId64 ": bad state %d", job->id, job->state);
        count[job->state]++;
        if (s_map_get (&self->jobs, job->id) != job)
            S_FAIL ("job %" PRId64 ": not found by id", job->id);
        if (job->lease_slot) {
            in_lease_heap++;
            if (job->renewing)
                S_FAIL ("job %" PRId64 ": renewing yet in lease heap",
                        job->id);
        }
        else
        if (!job->renewing && job->state != S_PENDING
            && job->state != S_COMMITTING)
            S_FAIL ("job %" PRId64 ": lease not tracked", job->id);
        if ((job->state == S_SENT) != (job->due_slot != 0))
            S_FAIL ("job %" PRId64 ": due heap membership wrong", job->id);
        if (job->state == S_SENT) {
            //  (A READY may since have changed the worker's flows)
            if (!job->worker)
                S_FAIL ("job %" PRId64 ": sent to no worker", job->id);
            if (job->sent_attempt != job->attempts + 1)
                S_FAIL ("job %" PRId64 ": attempt %u after %u failures",
                        job->id, job->sent_attempt, job->attempts);
        }
        if (job->key) {
            if (job->state == S_WAITING) {
                if (job->key->head == job)
                    S_FAIL ("job %" PRId64 ": waiting yet key head", job->id);
            }
            else
            if (job->key->head != job && !self->draining)
                S_FAIL ("job %" PRId64 ": out of turn for key \"%s\"",
                        job->id, job->key->name);
        }
        else
        if (job->state == S_WAITING)
            S_FAIL ("job %" PRId64 ": waiting without a key", job->id);
        if (job->lost && job->state != S_COMMITTING)
            S_FAIL ("job %" PRId64 ": lost but kept", job->id);
    }
    if (held != self->jobs.size)
        S_FAIL ("job map size %zu, counted %zu", self->jobs.size, held);
    for (int state = S_QUEUED; state <= S_COMMITTING; state++)
        if (count[state] != self->count[state])
            S_FAIL ("state %d: %zu jobs, counter says %zu", state,
                    count[state], self->count[state]);
    if (in_lease_heap != self->lease_heap.size)
        S_FAIL ("lease heap size %zu, counted %zu", self->lease_heap.size,
                in_lease_heap);
    if (self->due_heap.size != count[S_SENT])
        S_FAIL ("due heap size %zu, %zu jobs sent", self->due_heap.size,
                count[S_SENT]);
    s_heap_t *heaps[] = {&self->lease_heap, &self->due_heap};
    for (size_t which = 0; which < 2; which++) {
        s_heap_t *heap = heaps[which];
        for (size_t index = 0; index < heap->size; index++) {
            if (*s_heap_slot (heap, heap->items[index]) != index + 1)
                S_FAIL ("heap %zu: slot %zu misfiled", which, index);
            if (index && s_heap_less (heap, heap->items[index],
                                      heap->items[(index - 1) / 2]))
                S_FAIL ("heap %zu: order broken at %zu", which, index);
        }
    }
    size_t queued = 0;
    for (s_queue_t *queue = (s_queue_t *) zlistx_first (self->queue_list);
         queue; queue = (s_queue_t *) zlistx_next (self->queue_list))
        queued += zlistx_size (queue->jobs);
    if (queued != count[S_QUEUED])
        S_FAIL ("queues hold %zu, %zu jobs queued", queued, count[S_QUEUED]);
    if (zlistx_size (self->pending) != count[S_PENDING])
        S_FAIL ("pending list %zu, %zu jobs pending",
                zlistx_size (self->pending), count[S_PENDING]);
    if (zlistx_size (self->lease_wait) != count[S_LEASE_WAIT])
        S_FAIL ("lease wait list %zu, %zu jobs", zlistx_size (self->lease_wait),
                count[S_LEASE_WAIT]);
    if (self->commit_count != count[S_COMMITTING])
        S_FAIL ("commit batch %zu, %zu jobs committing", self->commit_count,
                count[S_COMMITTING]);
    size_t sent = 0, calls = 0;
    for (s_worker_t *worker = (s_worker_t *) zhashx_first (self->workers);
         worker; worker = (s_worker_t *) zhashx_next (self->workers)) {
        sent += zlistx_size (worker->jobs);
        calls += worker->calls;
    }
    if (sent != count[S_SENT])
        S_FAIL ("workers hold %zu, %zu jobs sent", sent, count[S_SENT]);
    if (calls != zhashx_size (self->calls))
        S_FAIL ("workers count %zu calls, %zu out", calls,
                zhashx_size (self->calls));
    for (s_target_t *target = (s_target_t *) zhashx_first (self->targets);
         target; target = (s_target_t *) zhashx_next (self->targets)) {
        //  Out at a target: the jobs charged to it and its calls
        size_t out = target->calls;
        for (size_t index = 0; index <= self->jobs.mask; index++) {
            s_job_t *job = self->jobs.slots[index];
            out += job && job->state == S_SENT && job->charged == target;
        }
        if (target->inflight != out)
            S_FAIL ("target \"%s\": %zu out, counted %zu", target->name,
                    out, target->inflight);
        if (target->max_inflight && target->inflight > target->max_inflight)
            S_FAIL ("target \"%s\": %zu out, cap %u", target->name,
                    target->inflight, target->max_inflight);
        if (target->rate_per_sec
            && (target->tokens < 0 || target->tokens > target->capacity))
            S_FAIL ("target \"%s\": %" PRId64 " milli-tokens", target->name,
                    target->tokens);
    }
    for (s_key_t *key = (s_key_t *) zhashx_first (self->keys); key;
         key = (s_key_t *) zhashx_next (self->keys)) {
        if (!key->head && zlistx_size (key->waiting) && !self->draining)
            S_FAIL ("key \"%s\": jobs wait without a head", key->name);
        int64_t last = INT64_MIN;
        for (s_job_t *job = (s_job_t *) zlistx_first (key->waiting); job;
             job = (s_job_t *) zlistx_next (key->waiting)) {
            if (job->id <= last)
                S_FAIL ("key \"%s\": waiting jobs out of order", key->name);
            last = job->id;
        }
    }
    if (size)
        reason[0] = 0;
    return 0;
}
