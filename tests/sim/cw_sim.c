/*  =========================================================================
    cw_sim - seeded, deterministic simulation of the broker's decision core

    One event loop over a simulated clock. Each step is either a broker's
    tick (its cw_core_next_deadline came) or the earliest simulated event
    (a store transaction, a store reply, a worker's far-side call or end,
    a RESULT, a heartbeat answer, a job insert, chaos). After each step the
    actions of every broker are performed and the invariants checked.
    =========================================================================
*/
#include "cw_sim.h"
#include "cw_core.h"
#include "cw_retry.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

//  Fixed simulation parameters (msec unless named otherwise).
#define S_EPOCH             1000000     //  Clock start
#define S_DEADLINE          1000        //  Job deadline
#define S_HEARTBEAT         200
#define S_LIVENESS          3
#define S_CLAIM_MAX         6
#define S_POLL              400
#define S_FLUSH_MAX         4
#define S_FLUSH             20
#define S_RETRY             100
#define S_BASE              50          //  Backoff base
#define S_CAP               1500        //  Backoff cap
#define S_MAX_ATTEMPTS      4
#define S_CAP_INFLIGHT      3           //  Target "erp" cap
#define S_LATENCY_MAX       30          //  Message and store latency
#define S_HEAL_STEPS        40000       //  Most healing-phase steps
#define S_HEAL_MSEC         300000      //  Longest healing phase
#define S_FLOWS             2
#define S_BROKER_DOWN       3000        //  A broker restarts within
#define S_WORKER_DOWN       2000        //  A worker comes back within
#define S_SLOW_EXTRA        2000        //  A slow job overruns by up to
#define S_RETRY_AFTER_MAX   2500        //  Largest Retry-After (> cap)
#define S_CHAOS_GAP         700         //  Chaos every 50 + up to this
#define S_CREDIT_MAX        3           //  Credit a worker grants, 1 .. 3

//  Probabilities in per mille (fault rates before the intensity factor).
#define S_PER_MILLE         1000
#define S_RATE_MAX          900         //  Ceiling after intensity
#define S_RATE_TX_FAIL      60          //  A transaction rolls back
#define S_RATE_TX_LOST      40          //  It commits, its reply is lost
#define S_RATE_SLOW         60          //  A job overruns its deadline
#define S_RATE_FAR_FAIL     150         //  Far side answers 503 or 429
#define S_RATE_429          400         //  Of those, 429 + Retry-After
#define S_RATE_FAR_LOST     60          //  Effect done, reply lost
#define S_RATE_RESULT       40          //  A RESULT lost; or duplicated
#define S_RATE_WORKER_DIE   300         //  Per chaos pick of a worker
#define S_RATE_GRACEFUL     300         //  A dying worker says DISCONNECT
#define S_RATE_BROKER_DIE   150         //  Per chaos pick of a broker
#define S_RATE_DRAIN        100         //  Per chaos pick of a broker
#define S_RATE_TARGETED     500         //  Job for capped target "erp"
#define S_RATE_KEYED        700         //  Job has an ordering key
#define S_RATE_INVALID      50          //  Far side rejects it (422)
#define S_RATE_VERSION      20          //  Contract version mismatch
#define S_RATE_OWN_MAX      300         //  Job has its own max_attempts
#define S_RATE_BY_BROKER    300         //  Job inserted by a broker itself
#define S_RATE_CALL_TARGET  500         //  Sync call to target "erp"
#define S_CALL_GAP          500         //  A sync call every 50 + up to
#define S_CALLS_MAX         4096        //  Most sync calls in one run

static const char *s_flow_names [S_FLOWS] = {"customer.upsert", "order.create"};

//  Targets a worker may announce (options->targets): none (any target),
//  "erp" (the capped one) or "shop". Jobs and calls name "erp" or none.
enum { S_TARGET_NONE, S_TARGET_ERP, S_TARGET_SHOP };
static const char *s_target_names [] = {NULL, "erp", "shop"};

typedef enum {
    J_READY = 1, J_LEASED, J_DONE, J_DEAD
} s_state_t;

//  A job as the store holds it, plus what the simulator knows of it.
typedef struct {
    int64_t id;                 //  1-based, = index + 1
    int flow;                   //  Index in s_flow_names
    bool targeted;              //  Target "erp" (capped)
    int key;                    //  Ordering key, -1 none
    bool invalid;               //  Far side answers 422 (rejected)
    bool version;               //  Worker answers version mismatch
    uint32_t max_attempts;      //  0 = flow policy
    bool inserted;              //  In the store yet
    s_state_t state;
    uint32_t attempts;          //  Store: failed attempts so far
    int64_t next_run_at;
    int owner;                  //  Lease owner broker, -1 none
    int64_t lease_token;        //  Token of that lease (one per claim)
    int64_t lease_expires_at;
    int effects;                //  Far side: effects for its key
    //  Results accepted by each broker and not yet applied in the store
    bool pending [CW_SIM_MAX_BROKERS];
    uint32_t pending_attempt [CW_SIM_MAX_BROKERS];
    int pending_outcome [CW_SIM_MAX_BROKERS];
    int64_t pending_at [CW_SIM_MAX_BROKERS];
    int64_t pending_retry_after [CW_SIM_MAX_BROKERS];
    uint32_t pending_incarnation [CW_SIM_MAX_BROKERS];
    uint32_t applied_attempt;   //  Attempt of the last applied transition
} s_job_t;

//  A job running at a worker.
typedef struct {
    int job;                    //  Job index
    int worker;                 //  Worker index
    int broker;                 //  Broker that sent it
    uint32_t incarnation;       //  That broker's incarnation
    uint32_t attempt;
    int64_t start, end;         //  Runs [start, end)
    bool active;                //  Not ended, not killed
    bool called;                //  Far side answered
    int outcome;                //  What the worker will report
    int http_status;
    int64_t retry_after;        //  -1 none
    bool at_erp;                //  Calls target "erp" (its own or its
                                //  worker's): counts against the cap
} s_exec_t;

//  A sync call (cw_core_on_call) and what became of it.
typedef enum {
    C_ASKED = 1, C_SENT, C_DONE, C_FAILED, C_ABANDONED
} s_call_state_t;

typedef struct {
    int broker;                 //  Broker asked
    uint32_t incarnation;       //  Its incarnation then
    bool targeted;              //  For target "erp"
    bool at_erp;                //  Sent to "erp" (named, or its worker's)
    int worker;                 //  Worker it went to, -1 none
    uint32_t worker_generation; //  That worker's life then
    s_call_state_t state;
} s_call_t;

typedef struct {
    char name [48];
    int broker;                 //  Index of its broker
    bool alive;
    uint32_t credit;            //  Credit it grants on READY
    unsigned flows;             //  Bit mask of flows it serves
    int target;                 //  Announced: S_TARGET_NONE/ERP/SHOP
    uint32_t generation;        //  Bumped on each restart
} s_worker_t;

typedef struct {
    char id [24];                //  Lease owner name (kept over restarts)
    cw_core_t *core;            //  NULL while dead
    uint32_t generation;        //  Bumped on each crash
    int64_t store_free_at [2];  //  Each connection is busy until
    int64_t reply_at [2];       //  Each connection's last reply at
    uint32_t incarnation;
} s_broker_t;

typedef enum {
    E_STORE_OP = 1,             //  A transaction runs
    E_STORE_REPLY,              //  Its answer reaches the broker
    E_EXEC_CALL,                //  Worker calls the far side
    E_EXEC_END,                 //  Worker finishes (or times out)
    E_RESULT,                   //  RESULT reaches the broker
    E_CREDIT,                   //  CREDIT reaches the broker
    E_SEEN,                     //  Heartbeat answer reaches the broker
    E_INSERT,                   //  A job enters the store (+ NOTIFY)
    E_CHAOS,                    //  Kill or revive something
    E_BROKER_START,
    E_WORKER_START,
    E_CALL,                     //  A sync request reaches a broker
    E_CALL_REPLY,               //  A worker's REPLY reaches the broker
    E_CALL_GIVE_UP              //  The shell stops waiting for a REPLY
} s_event_type_t;

typedef enum {
    OP_CLAIM = 1, OP_COMMIT, OP_RENEW, OP_RELEASE
} s_op_t;

typedef struct {
    int64_t at;
    uint64_t seq;               //  Tie break: FIFO
    s_event_type_t type;
    int broker, worker, index;  //  index: job or exec
    uint32_t generation;
    uint32_t incarnation;       //  CREDIT: broker incarnation when sent
    //  Store ops and replies
    s_op_t op;
    uint64_t batch;
    bool ok;                    //  Reply: committed
    uint32_t limit;
    unsigned flows;             //  CLAIM: flows wanted at any target
    unsigned erp_flows;         //  CLAIM: flows wanted at "erp"
    unsigned named_flows;       //  CLAIM: flows wanted at some target
    int64_t expiry;
    int64_t *ids;               //  RENEW/RELEASE ids, reply: lost ids
    int64_t *tokens;            //  RENEW/RELEASE: each id's lease token
    size_t id_count;
    cw_core_transition_t *transitions;  //  COMMIT, worker strings owned
    size_t transition_count;
    cw_core_job_t *jobs;        //  CLAIM reply, payloads owned
    size_t job_count;
} s_event_t;

typedef struct {
    const cw_sim_options_t *options;
    cw_sim_result_t *result;
    cw_retry_rng_t rng;
    int64_t now;
    uint32_t step;
    bool healing;
    bool failed;
    s_job_t *jobs;
    size_t job_count;
    s_worker_t workers [CW_SIM_MAX_BROKERS * CW_SIM_MAX_WORKERS];
    size_t worker_count;
    s_broker_t brokers [CW_SIM_MAX_BROKERS];
    size_t broker_count;
    s_exec_t *execs;
    size_t exec_count, exec_size;
    s_call_t calls [S_CALLS_MAX];
    size_t call_count;
    s_event_t **heap;           //  Min-heap by (at, seq)
    size_t heap_count, heap_size;
    uint64_t seq;
    uint32_t fault_seq;         //  Fault instances drawn so far
    int64_t last_token;         //  Lease tokens handed out so far
    size_t trace_size;
    cw_retry_policy_t policy;
} s_sim_t;

//  --------------------------------------------------------------------------
//  Helpers

static uint64_t
s_rand (s_sim_t *sim, uint64_t range)
{
    uint64_t value = cw_retry_rng_next (&sim->rng);
    return range? value % range: 0;
}

static bool
s_chance (s_sim_t *sim, uint32_t per_mille)
{
    return s_rand (sim, S_PER_MILLE) < per_mille;
}

static void
s_trace (s_sim_t *sim, const char *format, ...)
{
    if (!sim->options->trace)
        return;
    char line [400];
    int size = snprintf (line, sizeof line, "%6u t=%-8" PRId64 " ",
                         sim->step, sim->now - S_EPOCH);
    va_list args;
    va_start (args, format);
    vsnprintf (line + size, sizeof line - (size_t) size, format, args);
    va_end (args);
    cw_sim_result_t *result = sim->result;
    if (result->trace_count == sim->trace_size) {
        sim->trace_size = sim->trace_size? sim->trace_size * 2: 256;
        result->trace = realloc (result->trace,
                                 sim->trace_size * sizeof (char *));
        assert (result->trace);
    }
    result->trace [result->trace_count++] = strdup (line);
}

static void
s_fail (s_sim_t *sim, const char *format, ...)
{
    if (sim->failed)
        return;
    sim->failed = true;
    va_list args;
    va_start (args, format);
    vsnprintf (sim->result->reason, sizeof sim->result->reason, format, args);
    va_end (args);
    s_trace (sim, "VIOLATION %s", sim->result->reason);
}

//  Draws a fault of class with probability per_mille. The draw always
//  happens (so suppressing one fault changes as little as possible).
static bool
s_fault (s_sim_t *sim, unsigned class, uint32_t per_mille, const char *what)
{
    uint32_t rate = per_mille * sim->options->intensity;
    bool hit = s_chance (sim, rate < S_RATE_MAX? rate: S_RATE_MAX);
    if (!hit || sim->healing || !(sim->options->faults & class))
        return false;
    uint32_t instance = sim->fault_seq++;
    for (size_t index = 0; index < sim->options->skip_count; index++)
        if (sim->options->skip [index] == instance)
            return false;
    sim->result->faults++;
    s_trace (sim, "fault #%u %s", instance, what);
    return true;
}

static int64_t
s_latency (s_sim_t *sim)
{
    return 1 + (int64_t) s_rand (sim, S_LATENCY_MAX);
}

//  --------------------------------------------------------------------------
//  Event heap

static bool
s_before (const s_event_t *a, const s_event_t *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static s_event_t *
s_event_new (s_sim_t *sim, int64_t at, s_event_type_t type)
{
    s_event_t *event = calloc (1, sizeof (s_event_t));
    assert (event);
    event->at = at;
    event->seq = sim->seq++;
    event->type = type;
    event->broker = -1;
    event->worker = -1;
    event->index = -1;
    return event;
}

static void
s_event_destroy (s_event_t **event_p)
{
    s_event_t *event = *event_p;
    if (!event)
        return;
    free (event->ids);
    free (event->tokens);
    for (size_t index = 0; index < event->transition_count; index++)
        free ((char *) event->transitions [index].worker);
    free (event->transitions);
    for (size_t index = 0; index < event->job_count; index++)
        free (event->jobs [index].payload);
    free (event->jobs);
    free (event);
    *event_p = NULL;
}

static void
s_push (s_sim_t *sim, s_event_t *event)
{
    if (sim->heap_count == sim->heap_size) {
        sim->heap_size = sim->heap_size? sim->heap_size * 2: 64;
        sim->heap = realloc (sim->heap, sim->heap_size * sizeof (s_event_t *));
        assert (sim->heap);
    }
    size_t index = sim->heap_count++;
    sim->heap [index] = event;
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (!s_before (sim->heap [index], sim->heap [parent]))
            break;
        s_event_t *swap = sim->heap [parent];
        sim->heap [parent] = sim->heap [index];
        sim->heap [index] = swap;
        index = parent;
    }
}

static s_event_t *
s_pop (s_sim_t *sim)
{
    assert (sim->heap_count);
    s_event_t *top = sim->heap [0];
    sim->heap [0] = sim->heap [--sim->heap_count];
    size_t index = 0;
    while (true) {
        size_t least = index, left = 2 * index + 1, right = left + 1;
        if (left < sim->heap_count
        &&  s_before (sim->heap [left], sim->heap [least]))
            least = left;
        if (right < sim->heap_count
        &&  s_before (sim->heap [right], sim->heap [least]))
            least = right;
        if (least == index)
            break;
        s_event_t *swap = sim->heap [least];
        sim->heap [least] = sim->heap [index];
        sim->heap [index] = swap;
        index = least;
    }
    return top;
}

//  --------------------------------------------------------------------------
//  Store (the SQL's semantics)

//  True when every earlier job of job's ordering key is done (the job is
//  the head of its key, or the key is clear up to it).
static bool
s_predecessors_done (s_sim_t *sim, const s_job_t *job)
{
    if (job->key < 0)
        return true;
    for (int64_t index = 0; index < job->id - 1; index++) {
        const s_job_t *other = &sim->jobs [index];
        if (other->inserted && other->key == job->key
        &&  other->state != J_DONE)
            return false;
    }
    return true;
}

static int
s_claim_compare (const void *a, const void *b)
{
    const s_job_t *x = *(s_job_t *const *) a, *y = *(s_job_t *const *) b;
    int64_t at_x = x->state == J_READY? x->next_run_at: x->lease_expires_at;
    int64_t at_y = y->state == J_READY? y->next_run_at: y->lease_expires_at;
    if (at_x != at_y)
        return at_x < at_y? -1: 1;
    return x->id < y->id? -1: x->id > y->id;
}

//  UPDATE ... WHERE id IN (SELECT ... due or lease expired, head of line
//  per ordering key, ORDER BY next_run_at LIMIT n FOR UPDATE SKIP LOCKED).
//  A keyed job is taken only if every earlier job of its key is done (as
//  the SQL: one job per key at a time; a job leased to the claiming broker
//  blocks too, since its core may have lost track of it: a claim whose
//  reply was lost, a release not yet run on the other connection).
static size_t
s_store_claim (s_sim_t *sim, int broker, const s_event_t *event,
               cw_core_job_t **jobs_p)
{
    uint32_t limit = event->limit;
    s_job_t **candidates = calloc (sim->job_count + 1, sizeof (s_job_t *));
    assert (candidates);
    size_t count = 0;
    for (size_t index = 0; index < sim->job_count; index++) {
        s_job_t *job = &sim->jobs [index];
        //  As the SQL: a flow wanted at any target; a job naming no target
        //  with any pair of its flow; an "erp" job with the pair (flow, erp)
        unsigned bit = 1u << job->flow;
        if (!job->inserted
        ||  !((event->flows & bit)
              || (!job->targeted && (event->named_flows & bit))
              || (job->targeted && (event->erp_flows & bit))))
            continue;
        if ((job->state == J_READY && job->next_run_at <= sim->now)
        ||  (job->state == J_LEASED && job->lease_expires_at <= sim->now))
            candidates [count++] = job;
    }
    qsort (candidates, count, sizeof (s_job_t *), s_claim_compare);
    cw_core_job_t *jobs = calloc (limit + 1, sizeof (cw_core_job_t));
    assert (jobs);
    size_t claimed = 0;
    int64_t token = ++sim->last_token;  //  One per claim statement
    for (size_t index = 0; index < count && claimed < limit; index++) {
        s_job_t *job = candidates [index];
        bool blocked = false;
        if (job->key >= 0)
            for (int64_t other = 0; other < job->id - 1; other++) {
                s_job_t *earlier = &sim->jobs [other];
                if (earlier->inserted && earlier->key == job->key
                &&  earlier->state != J_DONE) {
                    blocked = true;
                    break;
                }
            }
        if (blocked)
            continue;
        job->state = J_LEASED;
        job->owner = broker;
        job->lease_token = token;
        job->lease_expires_at = sim->now + sim->options->lease_msec;
        cw_core_job_t *given = &jobs [claimed++];
        given->id = job->id;
        given->flow = s_flow_names [job->flow];
        given->target = job->targeted? "erp": NULL;
        given->ordering_key = NULL;     //  Set at delivery (static names)
        given->attempts = job->attempts;
        given->max_attempts = job->max_attempts;
        given->lease_expires_at = job->lease_expires_at;
        given->lease_token = token;
        given->payload_size = 8;
        given->payload = malloc (given->payload_size);
        assert (given->payload);
        memcpy (given->payload, &job->id, sizeof job->id);
    }
    free (candidates);
    *jobs_p = jobs;
    return claimed;
}

//  The broker's store connection an operation runs on: claims on their
//  own (1) when the shell has a claim connection, everything else on 0.
static int
s_connection (const s_sim_t *sim, s_op_t op)
{
    return sim->options->one_connection || op != OP_CLAIM? 0: 1;
}

//  True when the store fences COMMIT, RENEW and RELEASE by lease token
//  (broker/cw_store.c); false models the store before it.
static bool
s_token_fenced (const s_sim_t *sim)
{
    return !sim->options->owner_fence_only && !sim->options->no_token_fence;
}

static const char *s_key_names [] = {
    "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"
};

//  Checks and applies one committed transition.
static void
s_store_apply (s_sim_t *sim, int broker, const cw_core_transition_t *t)
{
    if (t->job_id < 1 || (size_t) t->job_id > sim->job_count) {
        s_fail (sim, "b%d committed unknown job %" PRId64, broker, t->job_id);
        return;
    }
    s_job_t *job = &sim->jobs [t->job_id - 1];
    if (job->state != J_LEASED || job->owner != broker) {
        s_trace (sim, "b%d commit job %" PRId64 " skipped: lease not ours",
                 broker, job->id);
        return;
    }
    if (!s_token_fenced (sim) && job->lease_token != t->lease_token
    &&  t->attempts == job->attempts + 1) {
        //  The store before the lease token: the transition of an older
        //  lease of this broker lands on the newer one
        s_fail (sim, "b%d committed job %" PRId64 " attempt %u under lease "
                "token %" PRId64 " onto its lease %" PRId64 ": COMMIT is "
                "fenced by lease_owner and attempts only", broker, job->id,
                t->attempt, t->lease_token, job->lease_token);
        return;
    }
    if (s_token_fenced (sim) && job->lease_token != t->lease_token) {
        //  The COMMIT's fence (broker/cw_store.c): a transition applies
        //  only under the lease it was computed under
        s_trace (sim, "b%d commit job %" PRId64 " skipped: lease token %"
                 PRId64 " is not the job's %" PRId64, broker, job->id,
                 t->lease_token, job->lease_token);
        return;
    }
    if (sim->options->owner_fence_only && t->attempts <= job->attempts) {
        //  The store before the attempts fence: the stale transition lands
        s_fail (sim, "b%d committed a stale transition of job %" PRId64
                " (attempt %u; the store is at %u failed attempts): COMMIT "
                "is fenced by lease_owner only", broker, job->id, t->attempt,
                job->attempts);
        return;
    }
    if (t->attempts <= job->attempts) {
        //  The COMMIT's fence (broker/cw_store.c): a transition applies
        //  only where the store's attempts are the ones it was computed
        //  from. A retried COMMIT whose first try landed with its reply
        //  lost, or whose job ran elsewhere since, is stale: skipped, like
        //  a lost lease (docs/simulation.md, "Findings")
        s_trace (sim, "b%d commit job %" PRId64 " skipped: stale "
                 "(attempt %u; the store is at %u failed attempts)",
                 broker, job->id, t->attempt, job->attempts);
        return;
    }
    //  The transition must stem from a result this broker accepted
    if (!job->pending [broker] || job->pending_attempt [broker] != t->attempt
    ||  job->pending_outcome [broker] != (int) t->outcome) {
        s_fail (sim, "b%d committed job %" PRId64 " attempt %u outcome %d "
                "with no such result accepted", broker, job->id, t->attempt,
                (int) t->outcome);
        return;
    }
    if (t->attempt != job->attempts + 1 || t->attempts != job->attempts + 1) {
        s_fail (sim, "job %" PRId64 ": attempt %u / attempts %u committed "
                "on %u failed attempts (an attempt spent or lost)",
                job->id, t->attempt, t->attempts, job->attempts);
        return;
    }
    uint32_t max_attempts = job->max_attempts? job->max_attempts
                                             : sim->policy.max_attempts;
    int outcome = job->pending_outcome [broker];
    s_state_t want = J_DONE;
    if (outcome == CW_CORE_REJECTED || outcome == CW_CORE_VERSION)
        want = J_DEAD;
    else
    if (outcome == CW_CORE_TRANSIENT)
        want = t->attempts >= max_attempts? J_DEAD: J_READY;
    s_state_t got = t->state == CW_CORE_STATE_DONE? J_DONE
                  : t->state == CW_CORE_STATE_DEAD? J_DEAD: J_READY;
    if (got != want) {
        s_fail (sim, "job %" PRId64 ": outcome %d after %u attempts of %u "
                "committed as state %d", job->id, outcome, t->attempts,
                max_attempts, (int) t->state);
        return;
    }
    if (got == J_READY) {
        //  Retry timing: Retry-After up to the cap, else the backoff window
        int64_t delay = t->next_run_at - job->pending_at [broker];
        int64_t retry_after = job->pending_retry_after [broker];
        if (retry_after >= 0) {
            int64_t want_delay = retry_after < sim->policy.cap_msec
                               ? retry_after: sim->policy.cap_msec;
            if (delay != want_delay) {
                s_fail (sim, "job %" PRId64 ": retry in %" PRId64 " msec, "
                        "Retry-After %" PRId64 " cap %" PRId64, job->id,
                        delay, retry_after, sim->policy.cap_msec);
                return;
            }
        }
        else {
            int64_t window = cw_retry_window (&sim->policy, t->attempts);
            if (delay < 0 || delay > window) {
                s_fail (sim, "job %" PRId64 ": retry in %" PRId64 " msec "
                        "outside backoff window [0, %" PRId64 "] of attempt "
                        "%u", job->id, delay, window, t->attempts);
                return;
            }
        }
    }
    if (got == J_DONE && job->effects != 1) {
        s_fail (sim, "job %" PRId64 " committed done with %d effects at the "
                "far side", job->id, job->effects);
        return;
    }
    job->state = got;
    job->attempts = t->attempts;
    job->next_run_at = got == J_READY? t->next_run_at: job->next_run_at;
    job->owner = -1;
    job->pending [broker] = false;
    job->applied_attempt = t->attempt;
    s_trace (sim, "b%d commit job %" PRId64 " -> %s attempts=%u", broker,
             job->id, got == J_DONE? "done": got == J_DEAD? "dead": "ready",
             job->attempts);
}

//  Runs one transaction; queues its reply unless it was lost.
static void
s_store_op (s_sim_t *sim, s_event_t *event)
{
    int broker = event->broker;
    s_event_t *reply = NULL;
    const char *name = event->op == OP_CLAIM? "CLAIM"
                     : event->op == OP_COMMIT? "COMMIT"
                     : event->op == OP_RENEW? "RENEW": "RELEASE";
    unsigned fail_class = event->op == OP_CLAIM? CW_SIM_FAULT_CLAIM_FAIL
                        : event->op == OP_COMMIT? CW_SIM_FAULT_COMMIT_FAIL
                        : event->op == OP_RENEW? CW_SIM_FAULT_RENEW_FAIL
                        : CW_SIM_FAULT_RELEASE_FAIL;
    unsigned lost_class = event->op == OP_CLAIM? CW_SIM_FAULT_CLAIM_LOST
                        : event->op == OP_COMMIT? CW_SIM_FAULT_COMMIT_LOST
                        : CW_SIM_FAULT_RENEW_LOST;
    bool fails = s_fault (sim, fail_class, S_RATE_TX_FAIL, name);
    bool lost = !fails && event->op != OP_RELEASE
             && s_fault (sim, lost_class, S_RATE_TX_LOST, name);
    if (event->op != OP_RELEASE) {
        //  A connection's replies arrive in the order of its statements
        s_broker_t *owner = &sim->brokers [broker];
        int conn = s_connection (sim, event->op);
        int64_t at = sim->now + s_latency (sim);
        if (at <= owner->reply_at [conn] && !sim->options->unordered_replies)
            at = owner->reply_at [conn] + 1;
        owner->reply_at [conn] = at;
        reply = s_event_new (sim, at, E_STORE_REPLY);
        reply->broker = broker;
        reply->generation = event->generation;
        reply->op = event->op;
        reply->batch = event->batch;
        reply->ok = !fails && !lost;
    }
    if (fails)
        s_trace (sim, "b%d %s batch %" PRIu64 " rolled back", broker, name,
                 event->batch);
    else
    if (event->op == OP_CLAIM) {
        reply->job_count = s_store_claim (sim, broker, event, &reply->jobs);
        s_trace (sim, "b%d CLAIM batch %" PRIu64 " took %zu%s", broker,
                 event->batch, reply->job_count, lost? " (reply lost)": "");
        if (lost) {
            for (size_t index = 0; index < reply->job_count; index++)
                free (reply->jobs [index].payload);
            reply->job_count = 0;
        }
    }
    else
    if (event->op == OP_COMMIT) {
        s_trace (sim, "b%d COMMIT batch %" PRIu64 " of %zu%s", broker,
                 event->batch, event->transition_count,
                 lost? " (reply lost)": "");
        for (size_t index = 0; index < event->transition_count; index++)
            s_store_apply (sim, broker, &event->transitions [index]);
    }
    else
    if (event->op == OP_RENEW) {
        reply->ids = calloc (event->id_count + 1, sizeof (int64_t));
        assert (reply->ids);
        for (size_t index = 0; index < event->id_count; index++) {
            s_job_t *job = &sim->jobs [event->ids [index] - 1];
            if (job->state == J_LEASED && job->owner == broker
            &&  (!s_token_fenced (sim)
                 || job->lease_token == event->tokens [index]))
                job->lease_expires_at = event->expiry;
            else
                reply->ids [reply->id_count++] = job->id;
        }
        s_trace (sim, "b%d RENEW batch %" PRIu64 " of %zu, %zu lost%s",
                 broker, event->batch, event->id_count, reply->id_count,
                 lost? " (reply lost)": "");
        if (lost)
            reply->id_count = 0;
    }
    else {
        for (size_t index = 0; index < event->id_count; index++) {
            s_job_t *job = &sim->jobs [event->ids [index] - 1];
            if (job->state == J_LEASED && job->owner == broker
            &&  (!s_token_fenced (sim)
                 || job->lease_token == event->tokens [index])) {
                job->state = J_READY;
                job->owner = -1;
            }
        }
        s_trace (sim, "b%d RELEASE of %zu applied", broker, event->id_count);
    }
    if (reply)
        s_push (sim, reply);
}

//  --------------------------------------------------------------------------
//  Brokers and workers

static void
s_payload_free (void *payload, size_t size)
{
    (void) size;
    free (payload);
}

static void s_drive (s_sim_t *sim, int broker);
static uint32_t s_target_out (s_sim_t *sim, int broker);

static void
s_worker_ready (s_sim_t *sim, int index)
{
    s_worker_t *worker = &sim->workers [index];
    s_broker_t *broker = &sim->brokers [worker->broker];
    if (!worker->alive || !broker->core)
        return;
    const char *flows [S_FLOWS];
    size_t flow_count = 0;
    for (int flow = 0; flow < S_FLOWS; flow++)
        if (worker->flows & (1u << flow))
            flows [flow_count++] = s_flow_names [flow];
    //  Jobs still running at this worker keep their slots
    uint32_t busy = 0;
    for (size_t exec = 0; exec < sim->exec_count; exec++)
        if (sim->execs [exec].active && sim->execs [exec].worker == index)
            busy++;
    uint32_t credit = worker->credit > busy? worker->credit - busy: 0;
    s_trace (sim, "%s READY credit %u", worker->name, credit);
    const char *targets [] = {s_target_names [worker->target]};
    cw_core_on_worker_ready (broker->core, sim->now, worker->name, flows,
                             flow_count, targets,
                             worker->target == S_TARGET_NONE? 0: 1, credit);
}

static void
s_broker_start (s_sim_t *sim, int index)
{
    s_broker_t *broker = &sim->brokers [index];
    assert (!broker->core);
    cw_core_flow_t flows [S_FLOWS];
    for (int flow = 0; flow < S_FLOWS; flow++) {
        flows [flow].flow = s_flow_names [flow];
        flows [flow].policy = sim->policy;
    }
    cw_core_target_t target = {"erp", S_CAP_INFLIGHT, 0, 0};
    cw_core_config_t config = {
        .broker_id = broker->id,
        .lease_msec = sim->options->lease_msec,
        .renew_margin_msec = sim->options->lease_msec * 3 / 10,
        .job_deadline_msec = S_DEADLINE,
        .heartbeat_msec = S_HEARTBEAT,
        .liveness = S_LIVENESS,
        .claim_max = S_CLAIM_MAX,
        .prefetch = sim->options->prefetch,
        .poll_msec = S_POLL,
        .flush_max = S_FLUSH_MAX,
        .flush_msec = S_FLUSH,
        .retry_msec = S_RETRY,
        .default_policy = sim->policy,
        .flows = flows,
        .flow_count = S_FLOWS,
        .targets = &target,
        .target_count = 1,
        .seed = sim->options->seed * 31 + (uint64_t) index * 7
              + broker->incarnation,
        .payload_free = s_payload_free
    };
    broker->core = cw_core_new (&config);
    assert (broker->core);
    broker->incarnation++;
    s_trace (sim, "b%d starts", index);
    for (size_t worker = 0; worker < sim->worker_count; worker++)
        if (sim->workers [worker].broker == index)
            s_worker_ready (sim, (int) worker);
    cw_core_on_wake (broker->core, sim->now);
}

static void
s_broker_stop (s_sim_t *sim, int index, const char *how)
{
    s_broker_t *broker = &sim->brokers [index];
    cw_core_destroy (&broker->core);
    broker->generation++;
    for (size_t call = 0; call < sim->call_count; call++)
        if (sim->calls [call].broker == index
        &&  sim->calls [call].state <= C_SENT)
            sim->calls [call].state = C_ABANDONED;
    s_trace (sim, "b%d %s", index, how);
    s_event_t *event = s_event_new (sim, sim->now + 200
                                    + (int64_t) s_rand (sim, S_BROKER_DOWN),
                                    E_BROKER_START);
    event->broker = index;
    s_push (sim, event);
}

static void
s_worker_kill (s_sim_t *sim, int index, bool graceful)
{
    s_worker_t *worker = &sim->workers [index];
    worker->alive = false;
    worker->generation++;
    for (size_t exec = 0; exec < sim->exec_count; exec++)
        if (sim->execs [exec].worker == index)
            sim->execs [exec].active = false;
    s_trace (sim, "%s dies%s", worker->name, graceful? " (DISCONNECT)": "");
    s_broker_t *broker = &sim->brokers [worker->broker];
    if (graceful && broker->core)
        cw_core_on_worker_gone (broker->core, sim->now, worker->name);
    s_event_t *event = s_event_new (sim, sim->now + 100
                                    + (int64_t) s_rand (sim, S_WORKER_DOWN),
                                    E_WORKER_START);
    event->worker = index;
    s_push (sim, event);
}

//  A JOB reaches a worker: checks and starts an execution.
static void
s_job_sent (s_sim_t *sim, int broker, const cw_core_action_t *action)
{
    if (action->job_id < 1 || (size_t) action->job_id > sim->job_count) {
        s_fail (sim, "b%d sent unknown job %" PRId64, broker, action->job_id);
        return;
    }
    s_job_t *job = &sim->jobs [action->job_id - 1];
    s_trace (sim, "b%d JOB %" PRId64 " attempt %u -> %s", broker, job->id,
             action->attempt, action->worker);
    //  Under a live lease of this broker, long enough for the deadline
    if (job->state != J_LEASED || job->owner != broker
    ||  job->lease_expires_at <= sim->now
    ||  (s_token_fenced (sim) && job->lease_token != action->lease_token)) {
        s_fail (sim, "b%d sent job %" PRId64 " without a live lease "
                "(state %d owner %d token %" PRId64 ", sent under %" PRId64
                ", expires %+" PRId64 ")", broker, job->id,
                (int) job->state, job->owner, job->lease_token,
                action->lease_token, job->lease_expires_at - sim->now);
        return;
    }
    if (job->lease_expires_at < sim->now + action->deadline_msec) {
        s_fail (sim, "b%d sent job %" PRId64 " with a lease ending in %"
                PRId64 " msec, before its %" PRId64 " msec deadline", broker,
                job->id, job->lease_expires_at - sim->now,
                action->deadline_msec);
        return;
    }
    if (action->attempt != job->attempts + 1) {
        s_fail (sim, "b%d sent job %" PRId64 " as attempt %u after %u "
                "failed attempts (an attempt spent or lost)", broker,
                job->id, action->attempt, job->attempts);
        return;
    }
    if (!s_predecessors_done (sim, job)) {
        s_fail (sim, "b%d sent job %" PRId64 " (key %s) before an earlier "
                "job of its key was done", broker, job->id,
                s_key_names [job->key]);
        return;
    }
    for (size_t index = 0; index < sim->exec_count; index++) {
        s_exec_t *exec = &sim->execs [index];
        if (exec->active && exec->job == job->id - 1) {
            s_fail (sim, "job %" PRId64 " sent to %s while still running at "
                    "%s", job->id, action->worker,
                    sim->workers [exec->worker].name);
            return;
        }
    }
    int worker = -1;
    for (size_t index = 0; index < sim->worker_count; index++)
        if (sim->workers [index].broker == broker
        &&  strcmp (sim->workers [index].name, action->worker) == 0)
            worker = (int) index;
    if (worker < 0) {
        s_fail (sim, "b%d sent job to unknown worker %s", broker,
                action->worker);
        return;
    }
    //  Credit, flows and the target's cap, seen from outside
    s_worker_t *target_worker = &sim->workers [worker];
    if (!(target_worker->flows & (1u << job->flow))) {
        s_fail (sim, "b%d sent job %" PRId64 " of flow %s to %s, which does "
                "not serve it", broker, job->id, s_flow_names [job->flow],
                target_worker->name);
        return;
    }
    uint32_t busy = 0;
    for (size_t index = 0; index < sim->exec_count; index++)
        if (sim->execs [index].active && sim->execs [index].worker == worker)
            busy++;
    //  Only jobs of its target or of none; those run at its target
    bool at_erp = job->targeted || target_worker->target == S_TARGET_ERP;
    if (job->targeted && target_worker->target == S_TARGET_SHOP) {
        s_fail (sim, "b%d sent job %" PRId64 " of target erp to %s, which "
                "calls shop", broker, job->id, target_worker->name);
        return;
    }
    const char *expected = job->targeted? "erp"
                                        : s_target_names [target_worker->target];
    if (expected? !action->target || strcmp (action->target, expected) != 0
                : action->target != NULL) {
        s_fail (sim, "b%d sent job %" PRId64 " to %s naming target %s, not "
                "%s", broker, job->id, target_worker->name,
                action->target? action->target: "none",
                expected? expected: "none");
        return;
    }
    uint32_t capped = s_target_out (sim, broker);
    if (target_worker->alive && busy >= target_worker->credit) {
        s_fail (sim, "b%d sent job %" PRId64 " to %s beyond its credit of %u",
                broker, job->id, target_worker->name, target_worker->credit);
        return;
    }
    if (at_erp && capped >= S_CAP_INFLIGHT) {
        s_fail (sim, "b%d sent job %" PRId64 " to target erp with %u of its "
                "%d already out", broker, job->id, capped, S_CAP_INFLIGHT);
        return;
    }
    if (!sim->workers [worker].alive)
        return;                 //  Lost on the way
    if (sim->exec_count == sim->exec_size) {
        sim->exec_size = sim->exec_size? sim->exec_size * 2: 64;
        sim->execs = realloc (sim->execs, sim->exec_size * sizeof (s_exec_t));
        assert (sim->execs);
    }
    s_exec_t *exec = &sim->execs [sim->exec_count];
    memset (exec, 0, sizeof *exec);
    exec->job = (int) (job->id - 1);
    exec->worker = worker;
    exec->broker = broker;
    exec->incarnation = sim->brokers [broker].incarnation;
    exec->attempt = action->attempt;
    exec->start = sim->now;
    exec->active = true;
    exec->retry_after = -1;
    exec->at_erp = at_erp;
    int64_t duration = 1 + (int64_t) s_rand (sim, (uint64_t) action->deadline_msec / 2);
    if (s_fault (sim, CW_SIM_FAULT_WORKER_SLOW, S_RATE_SLOW, "worker slow"))
        duration = action->deadline_msec + 1
                 + (int64_t) s_rand (sim, S_SLOW_EXTRA);
    int64_t call_at = sim->now + (int64_t) s_rand (sim, (uint64_t) duration);
    exec->end = sim->now + (duration < action->deadline_msec
                            ? duration: action->deadline_msec);
    //  Times out unless the far side answers in time
    exec->outcome = CW_CORE_TRANSIENT;
    exec->http_status = 0;
    s_event_t *event;
    if (call_at < exec->end) {
        event = s_event_new (sim, call_at, E_EXEC_CALL);
        event->index = (int) sim->exec_count;
        s_push (sim, event);
    }
    event = s_event_new (sim, exec->end, E_EXEC_END);
    event->index = (int) sim->exec_count;
    s_push (sim, event);
    sim->exec_count++;
}

//  The far side: de-duplicates by idempotency key like erpsim.
static void
s_far_call (s_sim_t *sim, s_exec_t *exec)
{
    s_job_t *job = &sim->jobs [exec->job];
    exec->called = true;
    if (job->version) {
        exec->outcome = CW_CORE_VERSION;
        return;
    }
    if (job->invalid) {
        exec->outcome = CW_CORE_REJECTED;
        exec->http_status = 422;
        return;
    }
    if (s_fault (sim, CW_SIM_FAULT_FAR_FAIL, S_RATE_FAR_FAIL,
                 "far side 503/429")) {
        exec->outcome = CW_CORE_TRANSIENT;
        exec->http_status = 503;
        if (s_chance (sim, S_RATE_429)) {
            exec->http_status = 429;
            exec->retry_after = (int64_t) s_rand (sim, S_RETRY_AFTER_MAX);
        }
        return;
    }
    if (job->effects == 0) {
        if (!s_predecessors_done (sim, job)) {
            s_fail (sim, "job %" PRId64 " took effect before an earlier job "
                    "of key %s was done", job->id, s_key_names [job->key]);
            return;
        }
        job->effects++;
        exec->outcome = CW_CORE_OK;
        exec->http_status = 201;
        s_trace (sim, "far side: effect for job %" PRId64, job->id);
    }
    else {
        exec->outcome = CW_CORE_DUPLICATE;
        exec->http_status = 200;
    }
    if (job->effects > 1)
        s_fail (sim, "job %" PRId64 " has %d effects", job->id, job->effects);
    if (s_fault (sim, CW_SIM_FAULT_FAR_LOST, S_RATE_FAR_LOST,
                 "far side reply lost")) {
        exec->outcome = CW_CORE_TRANSIENT;
        exec->http_status = 0;
    }
}

static void
s_result_deliver (s_sim_t *sim, s_event_t *event)
{
    s_worker_t *worker = &sim->workers [event->worker];
    s_broker_t *broker = &sim->brokers [worker->broker];
    if (!broker->core)
        return;
    s_exec_t *exec = &sim->execs [event->index];
    s_job_t *job = &sim->jobs [exec->job];
    cw_core_stats_t before, after;
    cw_core_stats (broker->core, &before);
    int rc = cw_core_on_result (broker->core, sim->now, worker->name,
                                job->id, exec->attempt,
                                (cw_core_outcome_t) exec->outcome,
                                exec->http_status, exec->retry_after,
                                NULL, exec->end - exec->start);
    cw_core_stats (broker->core, &after);
    bool accepted = rc == 0 && after.results_ignored == before.results_ignored;
    s_trace (sim, "%s RESULT job %" PRId64 " attempt %u outcome %d%s",
             worker->name, job->id, exec->attempt, exec->outcome,
             accepted? "": " (ignored)");
    if (accepted) {
        int b = worker->broker;
        job->pending [b] = true;
        job->pending_attempt [b] = exec->attempt;
        job->pending_outcome [b] = exec->outcome;
        job->pending_at [b] = sim->now;
        job->pending_retry_after [b] = exec->retry_after;
        job->pending_incarnation [b] = broker->incarnation;
    }
}

static void
s_exec_end (s_sim_t *sim, s_exec_t *exec, int index)
{
    s_worker_t *worker = &sim->workers [exec->worker];
    exec->active = false;
    int copies = 1;
    if (s_fault (sim, CW_SIM_FAULT_RESULT_LOST, S_RATE_RESULT, "result lost"))
        copies = 0;
    else
    if (s_fault (sim, CW_SIM_FAULT_RESULT_DUP, S_RATE_RESULT,
                 "result duplicated"))
        copies = 2;
    for (int copy = 0; copy < copies; copy++) {
        s_event_t *event = s_event_new (sim, sim->now + s_latency (sim),
                                        E_RESULT);
        event->worker = exec->worker;
        event->index = index;
        event->generation = worker->generation;
        s_push (sim, event);
    }
    //  The freed slot goes to the session open now (a CREDIT sent to a
    //  broker that restarts meanwhile is lost with its connection)
    s_event_t *event = s_event_new (sim, sim->now + s_latency (sim), E_CREDIT);
    event->worker = exec->worker;
    event->generation = worker->generation;
    event->incarnation = sim->brokers [worker->broker].incarnation;
    s_push (sim, event);
}

//  Running jobs and open calls of target "erp" sent by this incarnation.
static uint32_t
s_target_out (s_sim_t *sim, int broker)
{
    uint32_t out = 0;
    uint32_t incarnation = sim->brokers [broker].incarnation;
    for (size_t index = 0; index < sim->exec_count; index++) {
        s_exec_t *exec = &sim->execs [index];
        if (exec->active && exec->broker == broker
        &&  exec->incarnation == incarnation && exec->at_erp)
            out++;
    }
    for (size_t index = 0; index < sim->call_count; index++) {
        s_call_t *call = &sim->calls [index];
        if (call->state == C_SENT && call->broker == broker
        &&  call->incarnation == incarnation && call->at_erp)
            out++;
    }
    return out;
}

//  A CALL reaches a worker, which answers within the deadline.
static void
s_call_sent (s_sim_t *sim, int broker, const cw_core_action_t *action)
{
    if (action->call_id < 1 || (size_t) action->call_id > sim->call_count
    ||  sim->calls [action->call_id - 1].state != C_ASKED) {
        s_fail (sim, "b%d sent call %" PRId64 " twice, after its answer, or "
                "unknown", broker, action->call_id);
        return;
    }
    s_call_t *call = &sim->calls [action->call_id - 1];
    int worker = -1;
    for (size_t index = 0; index < sim->worker_count; index++)
        if (sim->workers [index].broker == broker
        &&  strcmp (sim->workers [index].name, action->worker) == 0)
            worker = (int) index;
    if (worker < 0) {
        s_fail (sim, "b%d sent call to unknown worker %s", broker,
                action->worker);
        return;
    }
    //  A call naming no target goes to its worker's
    int target = sim->workers [worker].target;
    if (call->targeted && target == S_TARGET_SHOP) {
        s_fail (sim, "b%d sent call %" PRId64 " of target erp to %s, which "
                "calls shop", broker, action->call_id, action->worker);
        return;
    }
    bool at_erp = call->targeted || target == S_TARGET_ERP;
    if (at_erp && s_target_out (sim, broker) >= S_CAP_INFLIGHT) {
        s_fail (sim, "b%d sent call %" PRId64 " to target erp with %d "
                "already out", broker, action->call_id, S_CAP_INFLIGHT);
        return;
    }
    call->at_erp = at_erp;
    call->state = C_SENT;
    call->worker = worker;
    call->worker_generation = sim->workers [worker].generation;
    s_trace (sim, "b%d CALL %" PRId64 " -> %s", broker, action->call_id,
             action->worker);
    if (!sim->workers [worker].alive)
        return;                 //  Lost on the way
    s_event_t *event = s_event_new (sim, sim->now + 1
                                    + (int64_t) s_rand (sim, (uint64_t)
                                                  action->deadline_msec / 2),
                                    E_CALL_REPLY);
    event->worker = worker;
    event->index = (int) (action->call_id - 1);
    event->generation = sim->workers [worker].generation;
    s_push (sim, event);
}

//  Performs every action a broker queued.
static void
s_drive (s_sim_t *sim, int index)
{
    s_broker_t *broker = &sim->brokers [index];
    const cw_core_action_t *action;
    while (!sim->failed && broker->core
        && (action = cw_core_next_action (broker->core))) {
        s_event_t *event = NULL;
        switch (action->type) {
            case CW_CORE_SEND_JOB:
                s_job_sent (sim, index, action);
                break;
            case CW_CORE_SEND_HEARTBEAT: {
                for (size_t worker = 0; worker < sim->worker_count; worker++) {
                    s_worker_t *w = &sim->workers [worker];
                    if (w->broker == index && w->alive
                    &&  strcmp (w->name, action->worker) == 0) {
                        event = s_event_new (sim, sim->now + s_latency (sim),
                                             E_SEEN);
                        event->worker = (int) worker;
                        event->generation = w->generation;
                        s_push (sim, event);
                        event = NULL;
                    }
                }
                break;
            }
            case CW_CORE_SEND_DISCONNECT:
                break;
            case CW_CORE_SEND_CALL:
                s_call_sent (sim, index, action);
                break;
            case CW_CORE_CALL_FAILED:
                if (action->call_id < 1
                ||  (size_t) action->call_id > sim->call_count
                ||  sim->calls [action->call_id - 1].state > C_SENT) {
                    s_fail (sim, "b%d failed call %" PRId64 " that was "
                            "already answered or unknown", index,
                            action->call_id);
                    break;
                }
                s_trace (sim, "b%d CALL_FAILED %" PRId64 " (%s)", index,
                         action->call_id, action->reason? action->reason: "");
                sim->calls [action->call_id - 1].state = C_FAILED;
                break;
            case CW_CORE_EXIT:
                s_broker_stop (sim, index, "exits after drain");
                return;
            case CW_CORE_CLAIM:
                event = s_event_new (sim, 0, E_STORE_OP);
                event->op = OP_CLAIM;
                event->limit = action->limit;
                for (size_t flow = 0; flow < action->flow_count; flow++)
                    for (int known = 0; known < S_FLOWS; known++) {
                        if (strcmp (action->flows [flow],
                                    s_flow_names [known]) != 0)
                            continue;
                        const char *target = action->flow_targets [flow];
                        if (!target)
                            event->flows |= 1u << known;
                        else {
                            event->named_flows |= 1u << known;
                            if (strcmp (target, "erp") == 0)
                                event->erp_flows |= 1u << known;
                        }
                    }
                s_trace (sim, "b%d CLAIM batch %" PRIu64 " limit %u", index,
                         action->batch_id, action->limit);
                break;
            case CW_CORE_COMMIT:
                event = s_event_new (sim, 0, E_STORE_OP);
                event->op = OP_COMMIT;
                event->transition_count = action->transition_count;
                event->transitions = calloc (action->transition_count + 1,
                                             sizeof (cw_core_transition_t));
                assert (event->transitions);
                for (size_t t = 0; t < action->transition_count; t++) {
                    event->transitions [t] = action->transitions [t];
                    event->transitions [t].worker =
                        strdup (action->transitions [t].worker
                                ? action->transitions [t].worker: "");
                    event->transitions [t].error = NULL;
                }
                break;
            case CW_CORE_RENEW:
            case CW_CORE_RELEASE:
                event = s_event_new (sim, 0, E_STORE_OP);
                event->op = action->type == CW_CORE_RENEW? OP_RENEW
                                                         : OP_RELEASE;
                event->expiry = action->lease_expires_at;
                event->id_count = action->job_count;
                event->ids = calloc (action->job_count + 1, sizeof (int64_t));
                event->tokens = calloc (action->job_count + 1,
                                        sizeof (int64_t));
                assert (event->ids && event->tokens);
                for (size_t id = 0; id < action->job_count; id++) {
                    int64_t job_id = action->job_ids [id];
                    if (job_id < 1 || (size_t) job_id > sim->job_count) {
                        s_fail (sim, "b%d renews or releases unknown job "
                                "%" PRId64, index, job_id);
                        break;
                    }
                    event->ids [id] = job_id;
                    event->tokens [id] = action->lease_tokens [id];
                    s_job_t *job = &sim->jobs [job_id - 1];
                    if (action->type == CW_CORE_RELEASE
                    &&  job->pending [index]
                    &&  job->pending_incarnation [index]
                        == broker->incarnation) {
                        s_fail (sim, "b%d released job %" PRId64 " before "
                                "its result (attempt %u) was committed",
                                index, job_id, job->pending_attempt [index]);
                        break;
                    }
                }
                break;
        }
        if (event) {
            event->broker = index;
            event->generation = broker->generation;
            event->batch = action->batch_id;
            //  A connection runs its transactions in order
            int conn = s_connection (sim, event->op);
            int64_t at = sim->now + s_latency (sim);
            if (at <= broker->store_free_at [conn])
                at = broker->store_free_at [conn] + 1;
            broker->store_free_at [conn] = at;
            event->at = at;
            s_push (sim, event);
        }
    }
}

//  --------------------------------------------------------------------------
//  Chaos and the loop

static void
s_chaos (s_sim_t *sim)
{
    if (!sim->healing) {
        s_event_t *next = s_event_new (sim, sim->now + 50
                                       + (int64_t) s_rand (sim, S_CHAOS_GAP),
                                       E_CHAOS);
        s_push (sim, next);
    }
    uint64_t pick = s_rand (sim, 3);
    if (pick == 0) {
        int index = (int) s_rand (sim, sim->worker_count);
        s_worker_t *worker = &sim->workers [index];
        if (worker->alive
        &&  s_fault (sim, CW_SIM_FAULT_WORKER_DIE, S_RATE_WORKER_DIE,
                     "worker dies"))
            s_worker_kill (sim, index, s_chance (sim, S_RATE_GRACEFUL));
    }
    else
    if (pick == 1) {
        int index = (int) s_rand (sim, sim->broker_count);
        if (sim->brokers [index].core
        &&  s_fault (sim, CW_SIM_FAULT_BROKER_DIE, S_RATE_BROKER_DIE,
                     "broker crashes"))
            s_broker_stop (sim, index, "crashes");
    }
    else {
        int index = (int) s_rand (sim, sim->broker_count);
        if (sim->brokers [index].core
        &&  s_fault (sim, CW_SIM_FAULT_BROKER_DRAIN, S_RATE_DRAIN,
                     "broker drains")) {
            s_trace (sim, "b%d drains", index);
            cw_core_on_drain (sim->brokers [index].core, sim->now,
                              sim->now + 1500);
        }
    }
}

static void
s_handle (s_sim_t *sim, s_event_t *event)
{
    s_broker_t *broker = event->broker >= 0
                       ? &sim->brokers [event->broker]: NULL;
    switch (event->type) {
        case E_STORE_OP:
            s_store_op (sim, event);
            break;
        case E_STORE_REPLY:
            if (!broker->core || event->generation != broker->generation)
                break;
            if (event->op == OP_CLAIM && event->ok) {
                for (size_t index = 0; index < event->job_count; index++) {
                    s_job_t *job = &sim->jobs [event->jobs [index].id - 1];
                    if (job->key >= 0)
                        event->jobs [index].ordering_key =
                            s_key_names [job->key];
                }
                cw_core_on_jobs_claimed (broker->core, sim->now, event->batch,
                                         event->jobs, event->job_count);
            }
            else
            if (event->op == OP_CLAIM)
                cw_core_on_claim_failed (broker->core, sim->now, event->batch);
            else
            if (event->op == OP_COMMIT && event->ok)
                cw_core_on_commit_done (broker->core, sim->now, event->batch);
            else
            if (event->op == OP_COMMIT)
                cw_core_on_commit_failed (broker->core, sim->now,
                                          event->batch);
            else
            if (event->ok)
                cw_core_on_renew_done (broker->core, sim->now, event->batch,
                                       event->ids, event->id_count);
            else
                cw_core_on_renew_failed (broker->core, sim->now, event->batch);
            s_drive (sim, event->broker);
            break;
        case E_EXEC_CALL: {
            s_exec_t *exec = &sim->execs [event->index];
            if (exec->active)
                s_far_call (sim, exec);
            break;
        }
        case E_EXEC_END: {
            s_exec_t *exec = &sim->execs [event->index];
            if (exec->active)
                s_exec_end (sim, exec, event->index);
            break;
        }
        case E_RESULT:
        case E_CREDIT:
        case E_SEEN: {
            s_worker_t *worker = &sim->workers [event->worker];
            s_broker_t *owner = &sim->brokers [worker->broker];
            if (!owner->core || !worker->alive
            ||  event->generation != worker->generation)
                break;
            if (event->type == E_RESULT)
                s_result_deliver (sim, event);
            else
            if (event->type == E_CREDIT
            &&  event->incarnation != owner->incarnation)
                break;
            if (event->type == E_CREDIT)
                cw_core_on_worker_credit (owner->core, sim->now,
                                          worker->name, 1);
            else
                cw_core_on_worker_seen (owner->core, sim->now, worker->name);
            s_drive (sim, worker->broker);
            break;
        }
        case E_INSERT: {
            s_job_t *job = &sim->jobs [event->index];
            job->inserted = true;
            job->next_run_at = sim->now;
            //  Most jobs are inserted by a broker, leased to itself in the
            //  same statement when the job heads its key, and handed to
            //  its core at once; the others come from elsewhere (NOTIFY)
            bool by_broker = s_chance (sim, S_RATE_BY_BROKER);
            int owner = (int) s_rand (sim, sim->broker_count);
            s_trace (sim, "insert job %" PRId64 " flow %s key %s%s%s",
                     job->id, s_flow_names [job->flow],
                     job->key >= 0? s_key_names [job->key]: "-",
                     job->invalid? " invalid": "",
                     job->version? " version": "");
            if (by_broker && sim->brokers [owner].core
            &&  s_predecessors_done (sim, job)) {
                job->state = J_LEASED;
                job->owner = owner;
                job->lease_token = ++sim->last_token;
                job->lease_expires_at = sim->now + sim->options->lease_msec;
                cw_core_job_t given = {
                    .id = job->id,
                    .flow = s_flow_names [job->flow],
                    .target = job->targeted? "erp": NULL,
                    .ordering_key = job->key >= 0? s_key_names [job->key]
                                                 : NULL,
                    .max_attempts = job->max_attempts,
                    .lease_expires_at = job->lease_expires_at,
                    .lease_token = job->lease_token,
                    .payload_size = sizeof job->id
                };
                given.payload = malloc (given.payload_size);
                assert (given.payload);
                memcpy (given.payload, &job->id, sizeof job->id);
                s_trace (sim, "b%d inserted job %" PRId64 " leased to "
                         "itself", owner, job->id);
                cw_core_on_jobs_claimed (sim->brokers [owner].core, sim->now,
                                         0, &given, 1);
                free (given.payload);   //  NULL when the core took it
                s_drive (sim, owner);
                break;
            }
            for (size_t index = 0; index < sim->broker_count; index++)
                if (sim->brokers [index].core) {
                    cw_core_on_wake (sim->brokers [index].core, sim->now);
                    s_drive (sim, (int) index);
                }
            break;
        }
        case E_CALL: {
            if (!sim->healing) {
                s_event_t *next = s_event_new (sim, sim->now + 50
                                               + (int64_t) s_rand (sim,
                                                             S_CALL_GAP),
                                               E_CALL);
                s_push (sim, next);
            }
            int index = (int) s_rand (sim, sim->broker_count);
            bool targeted = s_chance (sim, S_RATE_CALL_TARGET);
            int flow = (int) s_rand (sim, S_FLOWS);
            if (sim->healing || !sim->brokers [index].core
            ||  sim->call_count == S_CALLS_MAX)
                break;
            s_call_t *call = &sim->calls [sim->call_count++];
            call->broker = index;
            call->incarnation = sim->brokers [index].incarnation;
            call->targeted = targeted;
            call->worker = -1;
            call->state = C_ASKED;
            s_trace (sim, "b%d sync call %zu flow %s%s", index,
                     sim->call_count, s_flow_names [flow],
                     targeted? " target erp": "");
            s_event_t *give_up = s_event_new (sim, sim->now + 2 * S_DEADLINE,
                                              E_CALL_GIVE_UP);
            give_up->index = (int) sim->call_count - 1;
            s_push (sim, give_up);
            cw_core_on_call (sim->brokers [index].core, sim->now,
                             (int64_t) sim->call_count, s_flow_names [flow],
                             targeted? "erp": NULL, 0);
            s_drive (sim, index);
            break;
        }
        case E_CALL_REPLY: {
            s_call_t *call = &sim->calls [event->index];
            s_worker_t *worker = &sim->workers [event->worker];
            s_broker_t *owner = &sim->brokers [call->broker];
            if (!owner->core || owner->incarnation != call->incarnation
            ||  !worker->alive || event->generation != worker->generation)
                break;
            if (call->state != C_SENT)
                break;          //  Failed meanwhile: the shell answered
            call->state = C_DONE;
            s_trace (sim, "%s REPLY to call %d", worker->name,
                     event->index + 1);
            cw_core_on_call_done (owner->core, sim->now,
                                  (int64_t) event->index + 1);
            s_drive (sim, call->broker);
            break;
        }
        case E_CALL_GIVE_UP: {
            s_call_t *call = &sim->calls [event->index];
            s_broker_t *owner = &sim->brokers [call->broker];
            if (!owner->core || owner->incarnation != call->incarnation
            ||  call->state != C_SENT)
                break;
            call->state = C_DONE;
            s_trace (sim, "b%d gives up on call %d", call->broker,
                     event->index + 1);
            cw_core_on_call_done (owner->core, sim->now,
                                  (int64_t) event->index + 1);
            s_drive (sim, call->broker);
            break;
        }
        case E_CHAOS:
            s_chaos (sim);
            for (size_t index = 0; index < sim->broker_count; index++)
                s_drive (sim, (int) index);
            break;
        case E_BROKER_START:
            if (!broker->core) {
                s_broker_start (sim, event->broker);
                s_drive (sim, event->broker);
            }
            break;
        case E_WORKER_START: {
            s_worker_t *worker = &sim->workers [event->worker];
            if (!worker->alive) {
                worker->alive = true;
                s_trace (sim, "%s comes back", worker->name);
                s_worker_ready (sim, event->worker);
                s_drive (sim, worker->broker);
            }
            break;
        }
    }
}

//  The end: every job done, dead, or parked behind a dead letter.
static void
s_check_end (s_sim_t *sim)
{
    for (size_t index = 0; index < sim->call_count && !sim->failed; index++)
        if (sim->calls [index].state == C_ASKED
        ||  sim->calls [index].state == C_SENT)
            s_fail (sim, "sync call %zu never answered (state %d)",
                    index + 1, (int) sim->calls [index].state);
    for (size_t index = 0; index < sim->job_count && !sim->failed; index++) {
        s_job_t *job = &sim->jobs [index];
        if (job->state == J_DONE) {
            sim->result->done++;
            if (job->effects != 1)
                s_fail (sim, "job %" PRId64 " done with %d effects", job->id,
                        job->effects);
            continue;
        }
        if (job->state == J_DEAD) {
            sim->result->dead++;
            continue;
        }
        bool parked = false;
        if (job->key >= 0)
            for (size_t other = 0; other < index; other++)
                if (sim->jobs [other].key == job->key
                &&  sim->jobs [other].state == J_DEAD)
                    parked = true;
        if (parked) {
            sim->result->parked++;
            continue;
        }
        s_fail (sim, "job %" PRId64 " lost: state %d attempts %u owner %d "
                "after healing", job->id, (int) job->state, job->attempts,
                job->owner);
    }
}

static bool
s_settled (s_sim_t *sim)
{
    for (size_t index = 0; index < sim->call_count; index++)
        if (sim->calls [index].state == C_ASKED
        ||  sim->calls [index].state == C_SENT)
            return false;
    for (size_t index = 0; index < sim->job_count; index++) {
        s_job_t *job = &sim->jobs [index];
        if (job->state == J_DONE || job->state == J_DEAD)
            continue;
        if (!job->inserted)
            return false;
        if (job->key < 0)
            return false;
        bool parked = false;
        for (size_t other = 0; other < index; other++)
            if (sim->jobs [other].key == job->key
            &&  sim->jobs [other].state == J_DEAD)
                parked = true;
        if (!parked)
            return false;
    }
    return true;
}

static void
s_setup (s_sim_t *sim)
{
    const cw_sim_options_t *options = sim->options;
    cw_retry_rng_seed (&sim->rng, options->seed);
    sim->now = S_EPOCH;
    sim->policy.base_msec = S_BASE;
    sim->policy.cap_msec = S_CAP;
    sim->policy.max_attempts = S_MAX_ATTEMPTS;
    sim->broker_count = options->brokers;
    for (size_t index = 0; index < sim->broker_count; index++)
        snprintf (sim->brokers [index].id, sizeof sim->brokers [index].id,
                  "b%zu", index);
    for (size_t b = 0; b < sim->broker_count; b++)
        for (uint32_t w = 0; w < options->workers; w++) {
            s_worker_t *worker = &sim->workers [sim->worker_count++];
            snprintf (worker->name, sizeof worker->name, "b%zuw%u", b, w);
            worker->broker = (int) b;
            worker->alive = true;
            worker->credit = 1 + (uint32_t) s_rand (sim, S_CREDIT_MAX);
            //  The first worker of each broker serves every flow, at
            //  any target (so every job can run)
            worker->flows = w == 0? 3: 1 + (unsigned) s_rand (sim, 3);
            worker->target = options->targets? (int) (w % 3): S_TARGET_NONE;
        }
    sim->job_count = options->jobs;
    sim->jobs = calloc (sim->job_count + 1, sizeof (s_job_t));
    assert (sim->jobs);
    for (size_t index = 0; index < sim->job_count; index++) {
        s_job_t *job = &sim->jobs [index];
        job->id = (int64_t) index + 1;
        job->flow = (int) s_rand (sim, S_FLOWS);
        job->targeted = s_chance (sim, S_RATE_TARGETED);
        job->key = options->keys && s_chance (sim, S_RATE_KEYED)
                 ? (int) s_rand (sim, options->keys): -1;
        job->invalid = s_chance (sim, S_RATE_INVALID);
        job->version = s_chance (sim, S_RATE_VERSION);
        job->max_attempts = s_chance (sim, S_RATE_OWN_MAX)
                          ? 1 + (uint32_t) s_rand (sim, S_MAX_ATTEMPTS - 1)
                          : 0;
        job->state = J_READY;
        job->owner = -1;
        //  Inserted over the first part of the run, in id order
        int64_t spacing = 20 + (int64_t) options->steps * 4
                                / (int64_t) options->jobs;
        s_event_t *event = s_event_new (sim, S_EPOCH + (int64_t) index
                                        * spacing
                                        + (int64_t) s_rand (sim, 30),
                                        E_INSERT);
        event->index = (int) index;
        s_push (sim, event);
    }
    s_push (sim, s_event_new (sim, S_EPOCH + 100, E_CHAOS));
    s_push (sim, s_event_new (sim, S_EPOCH + 150, E_CALL));
    for (size_t index = 0; index < sim->broker_count; index++)
        s_broker_start (sim, (int) index);
}

static void
s_check_cores (s_sim_t *sim)
{
    for (size_t index = 0; index < sim->broker_count && !sim->failed; index++) {
        if (!sim->brokers [index].core)
            continue;
        char reason [256];
        s_broker_t *broker = &sim->brokers [index];
        if (cw_core_check (broker->core, reason, sizeof reason))
            s_fail (sim, "b%zu cw_core_check: %s", index, reason);
        //  An accepted result is committed, or its lease was lost: never
        //  forgotten while the lease is still ours
        for (size_t job_index = 0; job_index < sim->job_count; job_index++) {
            s_job_t *job = &sim->jobs [job_index];
            if (job->pending [index]
            &&  job->pending_incarnation [index] == broker->incarnation
            &&  job->state == J_LEASED && job->owner == (int) index
            &&  job->lease_expires_at > sim->now
            &&  !cw_core_holds (broker->core, job->id))
                s_fail (sim, "b%zu forgot the result of job %" PRId64
                        " attempt %u under its live lease", index, job->id,
                        job->pending_attempt [index]);
        }
    }
}

int
cw_sim_run (const cw_sim_options_t *options, cw_sim_result_t *result)
{
    assert (options && result);
    assert (options->brokers >= 1 && options->brokers <= CW_SIM_MAX_BROKERS);
    assert (options->workers >= 1 && options->workers <= CW_SIM_MAX_WORKERS);
    assert (options->jobs >= 1);
    assert (options->intensity >= 1 && options->intensity <= 4);
    assert (options->lease_msec - options->lease_msec * 3 / 10 >= S_DEADLINE
            && options->lease_msec <= 60000);
    assert (options->keys <= sizeof s_key_names / sizeof s_key_names [0]);
    memset (result, 0, sizeof *result);
    s_sim_t sim_data, *sim = &sim_data;
    memset (sim, 0, sizeof *sim);
    sim->options = options;
    sim->result = result;
    s_setup (sim);
    for (size_t index = 0; index < sim->broker_count; index++)
        s_drive (sim, (int) index);

    uint32_t heal_steps = 0;
    int64_t heal_until = 0;
    while (!sim->failed) {
        if (!sim->healing && sim->step >= options->steps) {
            sim->healing = true;
            heal_until = sim->now + S_HEAL_MSEC;
            s_trace (sim, "healing: no more faults");
            for (size_t index = 0; index < sim->broker_count; index++)
                if (!sim->brokers [index].core) {
                    s_broker_start (sim, (int) index);
                    s_drive (sim, (int) index);
                }
            for (size_t index = 0; index < sim->worker_count; index++)
                if (!sim->workers [index].alive) {
                    sim->workers [index].alive = true;
                    s_worker_ready (sim, (int) index);
                    s_drive (sim, sim->workers [index].broker);
                }
        }
        if (sim->healing
        &&  (s_settled (sim) || heal_steps >= S_HEAL_STEPS
             || sim->now > heal_until))
            break;
        //  Next: the earliest broker deadline or event
        int64_t next = INT64_MAX;
        int tick = -1;
        for (size_t index = 0; index < sim->broker_count; index++) {
            if (!sim->brokers [index].core)
                continue;
            int64_t deadline = cw_core_next_deadline (sim->brokers [index].core);
            if (deadline < next) {
                next = deadline;
                tick = (int) index;
            }
        }
        if (sim->heap_count && sim->heap [0]->at <= next) {
            next = sim->heap [0]->at;
            tick = -1;
        }
        if (next == INT64_MAX)
            break;
        if (next > sim->now)
            sim->now = next;
        sim->step++;
        if (sim->healing)
            heal_steps++;
        if (tick >= 0) {
            cw_core_on_tick (sim->brokers [tick].core, sim->now);
            s_drive (sim, tick);
        }
        else {
            s_event_t *event = s_pop (sim);
            s_handle (sim, event);
            s_event_destroy (&event);
        }
        s_check_cores (sim);
    }
    if (!sim->failed)
        s_check_end (sim);
    result->steps = sim->step;
    result->failed = sim->failed;
    for (size_t index = 0; index < sim->broker_count; index++) {
        if (sim->brokers [index].core) {
            cw_core_stats_t stats;
            cw_core_stats (sim->brokers [index].core, &stats);
            result->dispatched += stats.dispatched;
            cw_core_destroy (&sim->brokers [index].core);
        }
    }
    while (sim->heap_count) {
        s_event_t *event = s_pop (sim);
        s_event_destroy (&event);
    }
    free (sim->heap);
    free (sim->execs);
    free (sim->jobs);
    return sim->failed? -1: 0;
}

void
cw_sim_result_clear (cw_sim_result_t *result)
{
    for (size_t index = 0; index < result->trace_count; index++)
        free (result->trace [index]);
    free (result->trace);
    result->trace = NULL;
    result->trace_count = 0;
}

void
cw_sim_options_default (cw_sim_options_t *options, uint64_t seed,
                        uint32_t steps)
{
    memset (options, 0, sizeof *options);
    cw_retry_rng_t rng;
    cw_retry_rng_seed (&rng, seed ^ 0x5eed5eed5eedULL);
    options->seed = seed;
    options->steps = steps;
    options->brokers = 1 + (uint32_t) (cw_retry_rng_next (&rng) % 3);
    options->workers = 1 + (uint32_t) (cw_retry_rng_next (&rng) % 3);
    options->jobs = 4 + (uint32_t) (cw_retry_rng_next (&rng) % 20);
    options->keys = (uint32_t) (cw_retry_rng_next (&rng) % 5);
    options->faults = CW_SIM_FAULT_ALL;
    options->intensity = 1 + (uint32_t) (cw_retry_rng_next (&rng) % 4);
    static const uint32_t leases [] = {1500, 2500, 5000};
    options->lease_msec = leases [cw_retry_rng_next (&rng) % 3];
    options->prefetch = 2 * (uint32_t) (cw_retry_rng_next (&rng) % 3);
    //  Like the broker's store (broker/cw_store.c): claims on their own
    //  connection, each connection answering in order
    //  (--unordered-replies lets any reply overtake any other)
    options->unordered_replies = false;
    options->one_connection = false;
}

//  --------------------------------------------------------------------------
//  Minimisation

typedef struct {
    cw_sim_options_t options;
    uint32_t *skip;             //  Owned copy of options.skip
    size_t length;              //  Trace lines of its failure
} s_candidate_t;

//  Runs candidate traced; true if it fails, with its trace length.
static bool
s_try (s_candidate_t *candidate, uint32_t *budget)
{
    if (*budget == 0)
        return false;
    (*budget)--;
    cw_sim_result_t result;
    candidate->options.trace = true;
    candidate->options.skip = candidate->skip;
    int rc = cw_sim_run (&candidate->options, &result);
    candidate->length = result.trace_count;
    cw_sim_result_clear (&result);
    return rc != 0;
}

static void
s_adopt (s_candidate_t *best, s_candidate_t *trial)
{
    free (best->skip);
    *best = *trial;
    trial->skip = NULL;
}

static s_candidate_t
s_copy (const s_candidate_t *from)
{
    s_candidate_t copy = *from;
    copy.skip = malloc ((from->options.skip_count + 1) * sizeof (uint32_t));
    assert (copy.skip);
    if (from->options.skip_count)
        memcpy (copy.skip, from->skip,
                from->options.skip_count * sizeof (uint32_t));
    return copy;
}

int
cw_sim_minimize (const cw_sim_options_t *options, uint32_t budget,
                 cw_sim_options_t *best_options, cw_sim_result_t *best_result)
{
    s_candidate_t best = {*options, NULL, 0};
    best.skip = malloc ((options->skip_count + 1) * sizeof (uint32_t));
    assert (best.skip);
    if (options->skip_count)
        memcpy (best.skip, options->skip,
                options->skip_count * sizeof (uint32_t));
    budget++;
    if (!s_try (&best, &budget)) {
        free (best.skip);
        return -1;
    }
    //  Shape: fewer brokers, workers, jobs, keys; a shorter fault phase.
    //  Runs are cheap: try every smaller value, smallest first.
    bool shrunk = true;
    while (shrunk && budget) {
        shrunk = false;
        for (int field = 0; field < 5 && budget; field++) {
            uint32_t *value = field == 0? &best.options.brokers
                            : field == 1? &best.options.workers
                            : field == 2? &best.options.jobs
                            : field == 3? &best.options.keys
                            : &best.options.steps;
            uint32_t least = field == 3? 0: 1;
            uint32_t current = *value;
            for (uint32_t smaller = least; smaller < current && budget;
                 smaller = field == 4 && smaller < current / 16
                         ? smaller + current / 16 + 1: smaller + 1) {
                s_candidate_t trial = s_copy (&best);
                uint32_t *trial_value = field == 0? &trial.options.brokers
                    : field == 1? &trial.options.workers
                    : field == 2? &trial.options.jobs
                    : field == 3? &trial.options.keys
                    : &trial.options.steps;
                *trial_value = smaller;
                bool better = s_try (&trial, &budget)
                           && trial.length <= best.length;
                if (better) {
                    s_adopt (&best, &trial);
                    shrunk = true;
                }
                free (trial.skip);
                if (better)
                    break;
            }
        }
    }
    //  Fault classes off, one at a time
    for (unsigned class = 0; class < CW_SIM_FAULT_COUNT && budget; class++) {
        if (!(best.options.faults & (1u << class)))
            continue;
        s_candidate_t trial = s_copy (&best);
        trial.options.faults &= ~(1u << class);
        if (s_try (&trial, &budget) && trial.length <= best.length)
            s_adopt (&best, &trial);
        free (trial.skip);
    }
    //  Fault instances suppressed, one at a time (greedy delta debugging)
    for (uint32_t instance = 0; instance < 4096 && budget; instance++) {
        cw_sim_result_t result;
        best.options.trace = false;
        best.options.skip = best.skip;
        cw_sim_run (&best.options, &result);
        uint32_t drawn = result.faults + (uint32_t) best.options.skip_count;
        cw_sim_result_clear (&result);
        if (instance >= drawn)
            break;
        bool skipped = false;
        for (size_t index = 0; index < best.options.skip_count; index++)
            if (best.skip [index] == instance)
                skipped = true;
        if (skipped)
            continue;
        s_candidate_t trial = s_copy (&best);
        trial.skip = realloc (trial.skip, (trial.options.skip_count + 2)
                                          * sizeof (uint32_t));
        assert (trial.skip);
        trial.skip [trial.options.skip_count++] = instance;
        if (s_try (&trial, &budget) && trial.length <= best.length)
            s_adopt (&best, &trial);
        free (trial.skip);
    }
    *best_options = best.options;
    best_options->skip = best.skip;
    best_options->trace = true;
    cw_sim_run (best_options, best_result);
    return 0;
}

void
cw_sim_options_print (const cw_sim_options_t *options, FILE *file)
{
    fprintf (file, "scripts/simulate --seed %" PRIu64 " --steps %u "
             "--brokers %u --workers %u --jobs %u --keys %u --faults 0x%x "
             "--intensity %u --lease %u --prefetch %u", options->seed,
             options->steps, options->brokers, options->workers,
             options->jobs, options->keys, options->faults,
             options->intensity, options->lease_msec, options->prefetch);
    for (size_t index = 0; index < options->skip_count; index++)
        fprintf (file, "%s%u", index? ",": " --skip ", options->skip [index]);
    fprintf (file, "%s%s%s%s%s --trace\n",
             options->unordered_replies? " --unordered-replies"
                                       : " --ordered-replies",
             options->one_connection? " --one-connection": "",
             options->targets? " --targets": "",
             options->owner_fence_only? " --owner-fence-only": "",
             options->no_token_fence? " --no-token-fence": "");
}
