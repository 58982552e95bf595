/*  =========================================================================
    check_cw_core - the broker's pure decision core, rule by rule
    =========================================================================
*/
#include "cw_core.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1000000LL            //  Start of time in every test

//  A popped action, copied (the core's pointers die on the next call).
typedef struct {
    cw_core_action_type_t type;
    char worker[64];
    int64_t job_id;
    uint32_t attempt;
    int64_t call_id;
    uint64_t batch_id;
    uint32_t limit;
    size_t count;               //  transitions or job ids
    int64_t ids[64];            //  RENEW, RELEASE job ids
    int64_t tokens[64];         //  RENEW, RELEASE lease tokens
    int64_t lease_token;        //  SEND_JOB
    cw_core_transition_t transitions[64];   //  COMMIT (strings dropped)
    int64_t lease_expires_at;
    int64_t payload;            //  SEND_JOB: *(int64_t *) payload
    char target[32];            //  SEND_JOB: target sent, "" = none
    char pairs[8][48];          //  CLAIM: "flow@target", "flow@*" = any
} s_seen_t;

#define S_SEEN_MAX 4096
static s_seen_t s_seen[S_SEEN_MAX];
static size_t s_seen_count;
static int s_payloads_freed;

static void
s_payload_free (void *payload, size_t size)
{
    (void) size;
    free (payload);
    s_payloads_freed++;
}

static cw_core_config_t
s_config (void)
{
    static const cw_core_flow_t flows[] = {
        {"customer.upsert", {100, 10000, 3}},
    };
    static const cw_core_target_t targets[] = {
        {"erp", 2, 0, 0},       //  At most 2 out
        {"slow", 0, 2, 1},      //  2 per second, burst 1
    };
    cw_core_config_t config = {
        .broker_id = "broker-a",
        .lease_msec = 30000,
        .renew_margin_msec = 10000,
        .job_deadline_msec = 5000,
        .heartbeat_msec = 1000,
        .liveness = 3,
        .claim_max = 500,
        .poll_msec = 1000,
        .flush_max = 4,
        .flush_msec = 10,
        .retry_msec = 500,
        .default_policy = {1000, 60000, 5},
        .flows = flows,
        .flow_count = 1,
        .targets = targets,
        .target_count = 2,
        .seed = 42,
        .payload_free = s_payload_free,
    };
    return config;
}

//  Pops every action into s_seen (appending); returns how many.
static size_t
s_pop (cw_core_t *core)
{
    size_t popped = 0;
    const cw_core_action_t *action;
    while ((action = cw_core_next_action (core))) {
        ck_assert_uint_lt (s_seen_count, S_SEEN_MAX);
        s_seen_t *seen = &s_seen[s_seen_count++];
        memset (seen, 0, sizeof (*seen));
        seen->type = action->type;
        if (action->worker)
            snprintf (seen->worker, sizeof (seen->worker), "%s",
                      action->worker);
        seen->job_id = action->job_id;
        seen->attempt = action->attempt;
        seen->call_id = action->call_id;
        seen->batch_id = action->batch_id;
        seen->limit = action->limit;
        seen->lease_expires_at = action->lease_expires_at;
        seen->lease_token = action->lease_token;
        if (action->type == CW_CORE_SEND_JOB) {
            ck_assert_uint_eq (action->payload_size, sizeof (int64_t));
            memcpy (&seen->payload, action->payload, sizeof (int64_t));
            ck_assert_ptr_nonnull (action->flow);
            snprintf (seen->target, sizeof (seen->target), "%s",
                      action->target ? action->target : "");
        }
        if (action->type == CW_CORE_CLAIM) {
            seen->count = action->flow_count;
            for (size_t index = 0; index < action->flow_count && index < 8;
                 index++)
                snprintf (seen->pairs[index], sizeof (seen->pairs[index]),
                          "%s@%s", action->flows[index],
                          action->flow_targets[index]
                              ? action->flow_targets[index] : "*");
        }
        if (action->type == CW_CORE_COMMIT) {
            seen->count = action->transition_count;
            for (size_t index = 0; index < seen->count && index < 64; index++) {
                seen->transitions[index] = action->transitions[index];
                seen->transitions[index].worker = NULL;
                seen->transitions[index].error = NULL;
            }
        }
        if (action->type == CW_CORE_RENEW || action->type == CW_CORE_RELEASE) {
            seen->count = action->job_count;
            for (size_t index = 0; index < seen->count && index < 64;
                 index++) {
                seen->ids[index] = action->job_ids[index];
                seen->tokens[index] = action->lease_tokens[index];
            }
        }
        popped++;
    }
    char reason[256];
    ck_assert_msg (cw_core_check (core, reason, sizeof (reason)) == 0, "%s",
                   reason);
    return popped;
}

static void
s_reset (void)
{
    s_seen_count = 0;
}

//  Count of seen actions of type (for job_id when >= 0).
static size_t
s_count (cw_core_action_type_t type, int64_t job_id)
{
    size_t count = 0;
    for (size_t index = 0; index < s_seen_count; index++)
        if (s_seen[index].type == type
            && (job_id < 0 || s_seen[index].job_id == job_id))
            count++;
    return count;
}

//  Last seen action of type, or NULL.
static s_seen_t *
s_last (cw_core_action_type_t type)
{
    for (size_t index = s_seen_count; index-- > 0;)
        if (s_seen[index].type == type)
            return &s_seen[index];
    return NULL;
}

//  True if the CLAIM seen asks for pair ("flow@target", "flow@*").
static bool
s_claims_pair (const s_seen_t *claim, const char *pair)
{
    for (size_t index = 0; index < claim->count && index < 8; index++)
        if (strcmp (claim->pairs[index], pair) == 0)
            return true;
    return false;
}

//  The last SEND_JOB of a job (its worker and the target it named).
static const s_seen_t *
s_sent (int64_t job_id)
{
    for (size_t index = s_seen_count; index-- > 0;)
        if (s_seen[index].type == CW_CORE_SEND_JOB
            && s_seen[index].job_id == job_id)
            return &s_seen[index];
    return NULL;
}

static cw_core_job_t
s_job (int64_t id, const char *flow, const char *target, const char *key,
       int64_t lease_expires_at)
{
    cw_core_job_t job = {
        .id = id,
        .flow = flow,
        .target = target,
        .ordering_key = key,
        .lease_expires_at = lease_expires_at,
    };
    job.payload = malloc (sizeof (int64_t));
    memcpy (job.payload, &id, sizeof (int64_t));
    job.payload_size = sizeof (int64_t);
    return job;
}

//  Answers CLAIM batch with jobs 1..count of flow "a", leased until
//  T0 + 30 s.
static void
s_claim_answer (cw_core_t *core, int64_t now, uint64_t batch_id, size_t count)
{
    cw_core_job_t jobs[16];
    ck_assert_uint_le (count, 16);
    for (size_t index = 0; index < count; index++)
        jobs[index] = s_job ((int64_t) index + 1, "a", NULL, NULL, T0 + 30000);
    cw_core_on_jobs_claimed (core, now, batch_id, jobs, count);
}

static void
s_give (cw_core_t *core, int64_t now, int64_t id, const char *flow,
        const char *target, const char *key)
{
    cw_core_job_t job = s_job (id, flow, target, key, now + 30000);
    cw_core_on_jobs_claimed (core, now, 0, &job, 1);
    ck_assert_ptr_null (job.payload);
}

static void
s_ready (cw_core_t *core, int64_t now, const char *worker, const char *flow,
         uint32_t credit)
{
    const char *flows[] = {flow};
    cw_core_on_worker_ready (core, now, worker, flows, 1, NULL, 0, credit);
}

//  Completes the outstanding COMMIT (the last one seen).
static void
s_commit_ok (cw_core_t *core, int64_t now)
{
    s_seen_t *commit = s_last (CW_CORE_COMMIT);
    ck_assert_ptr_nonnull (commit);
    cw_core_on_commit_done (core, now, commit->batch_id);
}

//  A core of config, the record of seen actions emptied.
static cw_core_t *
s_core_with (cw_core_config_t config)
{
    s_reset ();
    s_payloads_freed = 0;
    cw_core_t *core = cw_core_new (&config);
    ck_assert_ptr_nonnull (core);
    return core;
}

//  A core with the test configuration and no poll (no CLAIM noise unless
//  a test wants it).
static cw_core_t *
s_core (void)
{
    cw_core_config_t config = s_config ();
    config.poll_msec = 0;
    return s_core_with (config);
}

//  --------------------------------------------------------------------------

START_TEST (test_config)
{
    cw_core_config_t config = s_config ();
    char reason[256];
    ck_assert_int_eq (cw_core_config_check (&config, reason, sizeof (reason)),
                      0);
    config.broker_id = "";
    ck_assert_int_eq (cw_core_config_check (&config, reason, sizeof (reason)),
                      -1);
    ck_assert_ptr_nonnull (strstr (reason, "broker_id"));
    ck_assert_ptr_null (cw_core_new (&config));
    config = s_config ();
    config.lease_msec = 100;
    ck_assert_int_eq (cw_core_config_check (&config, reason, sizeof (reason)),
                      -1);
    ck_assert_ptr_nonnull (strstr (reason, "lease_msec"));
    config = s_config ();
    cw_core_target_t bad[] = {{"erp", 1, 5, 0}};
    config.targets = bad;
    config.target_count = 1;
    ck_assert_int_eq (cw_core_config_check (&config, reason, sizeof (reason)),
                      -1);
    ck_assert_ptr_nonnull (strstr (reason, "burst"));
    //  A burst too small for the rate (tokens return once per msec):
    //  5000/s needs a burst of 5
    cw_core_target_t thin[] = {{"erp", 0, 5000, 4}};
    config.targets = thin;
    ck_assert_int_eq (cw_core_config_check (&config, reason, sizeof (reason)),
                      -1);
    ck_assert_msg (strstr (reason, "at least 5"), "%s", reason);
    cw_core_target_t enough[] = {{"erp", 0, 5000, 5}};
    config.targets = enough;
    ck_assert_int_eq (cw_core_config_check (&config, reason, sizeof (reason)),
                      0);
    cw_core_t *core = NULL;
    cw_core_destroy (&core);    //  Harmless on NULL
}
END_TEST

START_TEST (test_credit)
{
    cw_core_t *core = s_core ();
    for (int64_t id = 1; id <= 5; id++)
        s_give (core, T0, id, "a", NULL, NULL);
    s_ready (core, T0, "w1", "a", 2);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 2);
    //  More credit, more jobs
    ck_assert_int_eq (cw_core_on_worker_credit (core, T0, "w1", 1), 0);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 3);
    ck_assert_int_eq (cw_core_on_worker_credit (core, T0, "nobody", 1), -1);
    //  First attempt, payload handed out
    ck_assert_uint_eq (s_seen[0].attempt, 1);
    ck_assert_int_eq (s_seen[0].payload, s_seen[0].job_id);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.inflight, 3);
    ck_assert_uint_eq (stats.queued, 2);
    ck_assert_uint_eq (stats.held, 5);
    ck_assert_uint_eq (stats.workers, 1);
    cw_core_destroy (&core);
    ck_assert_int_eq (s_payloads_freed, 5);
}
END_TEST

START_TEST (test_flows)
{
    cw_core_t *core = s_core ();
    s_give (core, T0, 1, "a", NULL, NULL);
    s_give (core, T0, 2, "b", NULL, NULL);
    s_ready (core, T0, "wa", "a", 10);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 1);
    ck_assert_str_eq (s_seen[0].worker, "wa");
    ck_assert_int_eq (s_seen[0].job_id, 1);
    s_ready (core, T0, "wb", "b", 10);
    s_pop (core);
    ck_assert_str_eq (s_last (CW_CORE_SEND_JOB)->worker, "wb");
    ck_assert_int_eq (s_last (CW_CORE_SEND_JOB)->job_id, 2);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_target_cap)
{
    cw_core_t *core = s_core ();
    for (int64_t id = 1; id <= 4; id++)
        s_give (core, T0, id, "a", "erp", NULL);
    s_ready (core, T0, "w1", "a", 10);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 2);
    //  A result frees one slot (while the COMMIT is pending)
    cw_core_on_result (core, T0, "w1", 1, 1, CW_CORE_OK, 200, -1, NULL, 5);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 3);
    //  A call counts against the cap too
    cw_core_on_call (core, T0, 7, "a", "erp", 0);
    s_pop (core);
    ck_assert_int_eq (s_last (CW_CORE_CALL_FAILED)->call_id, 7);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_rate)
{
    cw_core_t *core = s_core ();
    for (int64_t id = 1; id <= 5; id++)
        s_give (core, T0, id, "a", "slow", NULL);
    s_ready (core, T0, "w1", "a", 10);
    s_pop (core);
    //  Burst 1: one now, then one per 500 msec
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 1);
    ck_assert_int_eq (cw_core_next_deadline (core), T0 + 500);
    cw_core_on_tick (core, T0 + 499);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 1);
    cw_core_on_tick (core, T0 + 500);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 2);
    //  A long pause does not bank more than the burst
    cw_core_on_worker_seen (core, T0 + 10000, "w1");
    cw_core_on_tick (core, T0 + 10000);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 3);
    cw_core_destroy (&core);
}
END_TEST

//  Jobs naming no target run at their worker's target and count against
//  its caps: its in-flight cap, and its rate (the core wakes for the
//  next token).
START_TEST (test_untargeted_capped)
{
    cw_core_t *core = s_core ();
    const char *flows_a[] = {"a"}, *flows_b[] = {"b"};
    const char *erp[] = {"erp"}, *slow[] = {"slow"};
    cw_core_on_worker_ready (core, T0, "w1", flows_a, 1, erp, 1, 10);
    cw_core_on_worker_ready (core, T0, "w2", flows_b, 1, slow, 1, 10);
    for (int64_t id = 1; id <= 4; id++)
        s_give (core, T0, id, "a", NULL, NULL);
    for (int64_t id = 11; id <= 13; id++)
        s_give (core, T0, id, "b", NULL, NULL);
    s_pop (core);
    //  erp: at most 2 out; slow: burst 1, then one per 500 msec
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 1), 1);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 2), 1);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 3), 0);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 11), 1);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 12), 0);
    ck_assert_str_eq (s_sent (1)->target, "erp");
    ck_assert_str_eq (s_sent (11)->target, "slow");
    ck_assert_int_eq (cw_core_next_deadline (core), T0 + 500);
    cw_core_on_tick (core, T0 + 500);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 12), 1);
    //  A result frees a slot at erp: the third goes
    cw_core_on_result (core, T0 + 501, "w1", 1, 1, CW_CORE_OK, 200, -1, NULL,
                       5);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 3), 1);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 4), 0);
    //  A sync call naming no target counts at its worker's target too
    cw_core_on_call (core, T0 + 502, 7, "a", NULL, 0);
    s_pop (core);
    s_seen_t *failed = s_last (CW_CORE_CALL_FAILED);
    ck_assert_ptr_nonnull (failed);
    ck_assert_int_eq (failed->call_id, 7);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_ordering)
{
    cw_core_t *core = s_core ();
    //  Arriving out of order: 3 then 1, 2 of key k; 4 unordered
    s_give (core, T0, 3, "a", NULL, "k");
    s_give (core, T0, 1, "a", NULL, "k");
    s_give (core, T0, 2, "a", NULL, "k");
    s_give (core, T0, 4, "a", NULL, NULL);
    s_ready (core, T0, "w1", "a", 10);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 2);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 1), 1);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 4), 1);
    //  Result of 1: 2 waits for the COMMIT
    cw_core_on_result (core, T0, "w1", 1, 1, CW_CORE_OK, 200, -1, NULL, 5);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 2), 0);
    cw_core_on_tick (core, T0 + 10);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_COMMIT, -1), 1);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 2), 0);
    s_commit_ok (core, T0 + 11);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 2), 1);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 3), 0);
    ck_assert (!cw_core_holds (core, 1));
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_parking)
{
    cw_core_t *core = s_core ();
    s_give (core, T0, 1, "a", NULL, "k");
    s_give (core, T0, 2, "a", NULL, "k");
    s_give (core, T0, 3, "a", NULL, "k");
    s_ready (core, T0, "w1", "a", 10);
    s_pop (core);
    cw_core_on_result (core, T0, "w1", 1, 1, CW_CORE_REJECTED, 422, -1,
                       "bad vat id", 5);
    cw_core_on_tick (core, T0 + 10);
    s_pop (core);
    s_commit_ok (core, T0 + 11);
    s_pop (core);
    //  2 and 3 never went out; they go back to the store
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 1);
    s_seen_t *release = s_last (CW_CORE_RELEASE);
    ck_assert_ptr_nonnull (release);
    ck_assert_uint_eq (release->count, 2);
    ck_assert_int_eq (release->ids[0], 2);
    ck_assert_int_eq (release->ids[1], 3);
    ck_assert (!cw_core_holds (core, 2));
    cw_core_destroy (&core);
    ck_assert_int_eq (s_payloads_freed, 3);
}
END_TEST

//  Sends job 1 to w1 and feeds outcome; returns the committed transition.
static cw_core_transition_t
s_outcome (cw_core_outcome_t outcome, uint32_t attempts, int64_t retry_after,
           uint64_t seed)
{
    cw_core_config_t config = s_config ();
    config.poll_msec = 0;
    config.seed = seed;
    s_reset ();
    cw_core_t *core = cw_core_new (&config);
    cw_core_job_t job = s_job (1, "customer.upsert", NULL, NULL, T0 + 30000);
    job.attempts = attempts;
    cw_core_on_jobs_claimed (core, T0, 0, &job, 1);
    s_ready (core, T0, "w1", "customer.upsert", 1);
    s_pop (core);
    ck_assert_uint_eq (s_last (CW_CORE_SEND_JOB)->attempt, attempts + 1);
    cw_core_on_result (core, T0, "w1", 1, attempts + 1, outcome, 500,
                       retry_after, "boom", 7);
    cw_core_on_tick (core, T0 + 10);
    s_pop (core);
    s_seen_t *commit = s_last (CW_CORE_COMMIT);
    ck_assert_ptr_nonnull (commit);
    ck_assert_uint_eq (commit->count, 1);
    cw_core_transition_t transition = commit->transitions[0];
    ck_assert_int_eq (transition.job_id, 1);
    ck_assert_uint_eq (transition.attempt, attempts + 1);
    ck_assert_uint_eq (transition.attempts, attempts + 1);
    ck_assert_int_eq (transition.outcome, outcome);
    ck_assert_int_eq (transition.duration_msec, 7);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.outcomes[outcome], 1);
    cw_core_destroy (&core);
    return transition;
}

START_TEST (test_outcomes)
{
    cw_core_transition_t transition = s_outcome (CW_CORE_OK, 0, -1, 1);
    ck_assert_int_eq (transition.state, CW_CORE_STATE_DONE);
    transition = s_outcome (CW_CORE_DUPLICATE, 0, -1, 1);
    ck_assert_int_eq (transition.state, CW_CORE_STATE_DONE);
    transition = s_outcome (CW_CORE_REJECTED, 0, -1, 1);
    ck_assert_int_eq (transition.state, CW_CORE_STATE_DEAD);
    ck_assert_int_eq (transition.dead_reason, CW_CORE_DEAD_REJECTED);
    transition = s_outcome (CW_CORE_VERSION, 0, -1, 1);
    ck_assert_int_eq (transition.state, CW_CORE_STATE_DEAD);
    ck_assert_int_eq (transition.dead_reason, CW_CORE_DEAD_VERSION);
    transition = s_outcome (CW_CORE_TRANSIENT, 0, -1, 1);
    ck_assert_int_eq (transition.state, CW_CORE_STATE_READY);
}
END_TEST

//  Per queue (a flow at a target): jobs queued, dispatched, results by
//  outcome and exhausted, for /metrics
START_TEST (test_flow_stats)
{
    cw_core_t *core = s_core ();
    ck_assert_uint_eq (cw_core_flow_stats (core, NULL, 0), 0);
    s_give (core, T0, 1, "a", NULL, NULL);
    s_give (core, T0, 2, "a", NULL, NULL);
    s_give (core, T0, 3, "b", "erp", NULL);
    s_ready (core, T0, "wa", "a", 10);
    s_pop (core);
    cw_core_on_result (core, T0, "wa", 1, 1, CW_CORE_OK, 200, -1, NULL, 1);
    cw_core_on_result (core, T0, "wa", 2, 1, CW_CORE_REJECTED, 422, -1,
                       "name", 1);
    s_pop (core);
    cw_core_flow_stats_t stats[4];
    ck_assert_uint_eq (cw_core_flow_stats (core, stats, 1), 2);
    ck_assert_uint_eq (cw_core_flow_stats (core, stats, 4), 2);
    ck_assert_str_eq (stats[0].flow, "a");
    ck_assert_ptr_null (stats[0].target);
    ck_assert_uint_eq (stats[0].queued, 0);
    ck_assert_uint_eq (stats[0].dispatched, 2);
    ck_assert_uint_eq (stats[0].outcomes[CW_CORE_OK], 1);
    ck_assert_uint_eq (stats[0].outcomes[CW_CORE_REJECTED], 1);
    ck_assert_uint_eq (stats[0].exhausted, 0);
    ck_assert_str_eq (stats[1].flow, "b");
    ck_assert_str_eq (stats[1].target, "erp");
    ck_assert_uint_eq (stats[1].queued, 1);     //  No worker serves b
    ck_assert_uint_eq (stats[1].dispatched, 0);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_retry_timing)
{
    //  customer.upsert: base 100, cap 10000, 3 attempts. After attempt 2
    //  the window is 200 msec.
    bool low = false, high = false;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        cw_core_transition_t transition
            = s_outcome (CW_CORE_TRANSIENT, 1, -1, seed);
        ck_assert_int_eq (transition.state, CW_CORE_STATE_READY);
        int64_t delay = transition.next_run_at - T0;
        ck_assert_int_ge (delay, 0);
        ck_assert_int_le (delay, 200);
        low = low || delay < 100;
        high = high || delay >= 100;
    }
    ck_assert (low && high);    //  Jittered across the window
    //  Retry-After wins over the backoff, up to the cap
    cw_core_transition_t transition
        = s_outcome (CW_CORE_TRANSIENT, 0, 7000, 1);
    ck_assert_int_eq (transition.next_run_at, T0 + 7000);
    transition = s_outcome (CW_CORE_TRANSIENT, 0, 99000, 1);
    ck_assert_int_eq (transition.next_run_at, T0 + 10000);
    transition = s_outcome (CW_CORE_TRANSIENT, 0, 0, 1);
    ck_assert_int_eq (transition.next_run_at, T0);
}
END_TEST

START_TEST (test_exhausted)
{
    cw_core_transition_t transition = s_outcome (CW_CORE_TRANSIENT, 2, -1, 1);
    ck_assert_int_eq (transition.state, CW_CORE_STATE_DEAD);
    ck_assert_int_eq (transition.dead_reason, CW_CORE_DEAD_EXHAUSTED);
    ck_assert_uint_eq (transition.attempts, 3);
    //  A job's own max_attempts beats the flow policy
    cw_core_t *core = s_core ();
    cw_core_job_t job = s_job (1, "customer.upsert", NULL, NULL, T0 + 30000);
    job.max_attempts = 1;
    cw_core_on_jobs_claimed (core, T0, 0, &job, 1);
    s_ready (core, T0, "w1", "customer.upsert", 1);
    cw_core_on_result (core, T0, "w1", 1, 1, CW_CORE_TRANSIENT, 503, -1, NULL,
                       1);
    cw_core_on_tick (core, T0 + 10);
    s_pop (core);
    ck_assert_int_eq (s_last (CW_CORE_COMMIT)->transitions[0].dead_reason,
                      CW_CORE_DEAD_EXHAUSTED);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.exhausted, 1);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_worker_loss)
{
    cw_core_t *core = s_core ();
    s_give (core, T0, 1, "a", NULL, NULL);
    s_ready (core, T0, "w1", "a", 1);
    s_pop (core);
    ck_assert_str_eq (s_last (CW_CORE_SEND_JOB)->worker, "w1");
    s_ready (core, T0, "w2", "a", 1);
    //  w1 falls silent; w2 keeps talking
    for (int64_t now = T0 + 1000; now <= T0 + 3000; now += 1000) {
        cw_core_on_worker_seen (core, now, "w2");
        cw_core_on_tick (core, now);
    }
    s_pop (core);
    ck_assert_uint_ge (s_count (CW_CORE_SEND_HEARTBEAT, -1), 2);
    //  Re-sent to w2 as the same attempt: no attempt spent
    s_seen_t *send = s_last (CW_CORE_SEND_JOB);
    ck_assert_str_eq (send->worker, "w2");
    ck_assert_uint_eq (send->attempt, 1);
    //  w1's late result is ignored
    ck_assert_int_eq (cw_core_on_result (core, T0 + 3001, "w1", 1, 1,
                                         CW_CORE_OK, 200, -1, NULL, 1),
                      -1);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.workers_lost, 1);
    ck_assert_uint_eq (stats.redispatched, 1);
    ck_assert_uint_eq (stats.results_ignored, 1);
    //  DISCONNECT works the same
    cw_core_on_worker_gone (core, T0 + 3002, "w2");
    s_ready (core, T0 + 3003, "w3", "a", 1);
    s_pop (core);
    ck_assert_str_eq (s_last (CW_CORE_SEND_JOB)->worker, "w3");
    ck_assert_uint_eq (s_last (CW_CORE_SEND_JOB)->attempt, 1);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_lease_loss)
{
    cw_core_t *core = s_core ();
    s_give (core, T0, 1, "a", NULL, NULL);
    s_give (core, T0, 2, "a", NULL, "k");
    s_give (core, T0, 3, "a", NULL, "k");
    s_ready (core, T0, "w1", "a", 2);
    s_pop (core);
    //  Leases end at T0 + 30000; RENEW at T0 + 20000
    ck_assert_int_le (cw_core_next_deadline (core), T0 + 20000);
    cw_core_on_tick (core, T0 + 20000);
    s_pop (core);
    s_seen_t *renew = s_last (CW_CORE_RENEW);
    ck_assert_ptr_nonnull (renew);
    ck_assert_uint_eq (renew->count, 3);
    ck_assert_int_eq (renew->lease_expires_at, T0 + 50000);
    int64_t lost[] = {1, 2};
    cw_core_on_renew_done (core, T0 + 20001, renew->batch_id, lost, 2);
    s_pop (core);
    ck_assert (!cw_core_holds (core, 1));
    ck_assert (!cw_core_holds (core, 2));
    //  3 sat behind 2 of another broker now: handed back
    ck_assert (!cw_core_holds (core, 3));
    ck_assert_int_eq (s_last (CW_CORE_RELEASE)->ids[0], 3);
    //  The late result of 1 is ignored: nothing to commit
    cw_core_on_result (core, T0 + 20002, "w1", 1, 1, CW_CORE_OK, 200, -1,
                       NULL, 1);
    cw_core_on_tick (core, T0 + 21000);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_COMMIT, -1), 0);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.leases_lost, 2);
    ck_assert_uint_eq (stats.results_ignored, 1);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_renew_timing)
{
    cw_core_t *core = s_core ();
    //  A lease too short for the 5000 msec deadline is renewed first
    cw_core_job_t job = s_job (1, "a", NULL, NULL, T0 + 3000);
    cw_core_on_jobs_claimed (core, T0, 0, &job, 1);
    s_ready (core, T0, "w1", "a", 1);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 0);
    s_seen_t *renew = s_last (CW_CORE_RENEW);
    ck_assert_ptr_nonnull (renew);
    cw_core_on_renew_failed (core, T0 + 1, renew->batch_id);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_RENEW, -1), 1);
    //  Retried after retry_msec
    ck_assert_int_eq (cw_core_next_deadline (core), T0 + 501);
    cw_core_on_tick (core, T0 + 501);
    s_pop (core);
    renew = s_last (CW_CORE_RENEW);
    ck_assert_uint_eq (s_count (CW_CORE_RENEW, -1), 2);
    cw_core_on_renew_done (core, T0 + 502, renew->batch_id, NULL, 0);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 1), 1);
    //  A lease never renewed runs out: the job is dropped (the worker
    //  stays alive: a flow nobody serves would hand the job back first)
    cw_core_on_worker_seen (core, T0 + 501 + 30000 - 10000, "w1");
    cw_core_on_tick (core, T0 + 501 + 30000 - 10000);
    s_pop (core);
    renew = s_last (CW_CORE_RENEW);
    ck_assert_uint_eq (s_count (CW_CORE_RENEW, -1), 3);
    cw_core_on_renew_failed (core, T0 + 30000, renew->batch_id);
    cw_core_on_worker_seen (core, T0 + 30501, "w1");
    cw_core_on_tick (core, T0 + 30501);
    s_pop (core);
    renew = s_last (CW_CORE_RENEW);
    cw_core_on_renew_failed (core, T0 + 30502, renew->batch_id);
    cw_core_on_worker_seen (core, T0 + 30501 + 30000, "w1");
    cw_core_on_tick (core, T0 + 30501 + 30000);
    s_pop (core);
    ck_assert (!cw_core_holds (core, 1));
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.leases_expired, 1);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_no_release_before_commit)
{
    cw_core_t *core = s_core ();
    s_give (core, T0, 1, "a", NULL, NULL);
    s_ready (core, T0, "w1", "a", 1);
    cw_core_on_result (core, T0, "w1", 1, 1, CW_CORE_OK, 200, -1, NULL, 1);
    cw_core_on_tick (core, T0 + 10);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_COMMIT, -1), 1);
    //  Drain with the COMMIT out: no RELEASE of 1, no EXIT yet
    cw_core_on_drain (core, T0 + 11, T0 + 100);
    cw_core_on_tick (core, T0 + 200);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_RELEASE, 1), 0);
    ck_assert_uint_eq (s_count (CW_CORE_EXIT, -1), 0);
    ck_assert (cw_core_holds (core, 1));
    //  Its lease runs out while committing: still held, still renewed
    cw_core_on_tick (core, T0 + 40000);
    s_pop (core);
    ck_assert (cw_core_holds (core, 1));
    s_commit_ok (core, T0 + 40001);
    s_pop (core);
    ck_assert (!cw_core_holds (core, 1));
    ck_assert_uint_eq (s_count (CW_CORE_EXIT, -1), 1);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_commit_retry)
{
    cw_core_t *core = s_core ();
    for (int64_t id = 1; id <= 6; id++)
        s_give (core, T0, id, "a", NULL, NULL);
    s_ready (core, T0, "w1", "a", 6);
    for (int64_t id = 1; id <= 6; id++)
        cw_core_on_result (core, T0 + 1, "w1", id, 1, CW_CORE_OK, 200, -1,
                           NULL, 1);
    s_pop (core);
    //  flush_max 4: one batch of 4 at once, one COMMIT at a time
    ck_assert_uint_eq (s_count (CW_CORE_COMMIT, -1), 1);
    s_seen_t first = *s_last (CW_CORE_COMMIT);
    ck_assert_uint_eq (first.count, 4);
    cw_core_on_commit_failed (core, T0 + 2, first.batch_id);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_COMMIT, -1), 1);
    //  Commit of an unknown batch changes nothing
    cw_core_on_commit_done (core, T0 + 3, 999);
    cw_core_on_tick (core, T0 + 502);
    s_pop (core);
    s_seen_t second = *s_last (CW_CORE_COMMIT);
    ck_assert_uint_ne (second.batch_id, first.batch_id);
    ck_assert_uint_eq (second.count, 4);
    for (size_t index = 0; index < 4; index++)
        ck_assert_int_eq (second.transitions[index].job_id,
                          first.transitions[index].job_id);
    cw_core_on_commit_done (core, T0 + 503, second.batch_id);
    //  A repeated done for the same batch is not applied twice
    cw_core_on_commit_done (core, T0 + 503, second.batch_id);
    cw_core_on_tick (core, T0 + 520);
    s_pop (core);
    s_seen_t *third = s_last (CW_CORE_COMMIT);
    ck_assert_uint_eq (third->count, 2);
    ck_assert_int_eq (third->transitions[0].job_id, 5);
    ck_assert_int_eq (third->transitions[1].job_id, 6);
    cw_core_on_commit_done (core, T0 + 521, third->batch_id);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.held, 0);
    ck_assert_uint_eq (stats.commit_failures, 1);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_lease_token)
{
    //  Every lease's token goes back with the job's SEND_JOB, COMMIT,
    //  RENEW and RELEASE; a lease handed for a job held under another
    //  lease is released by its own token, never the held one's
    cw_core_t *core = s_core ();
    cw_core_job_t jobs[2] = {
        s_job (1, "a", NULL, NULL, T0 + 30000),
        s_job (2, "a", NULL, NULL, T0 + 30000),
    };
    jobs[0].lease_token = 7;
    jobs[1].lease_token = 8;
    cw_core_on_jobs_claimed (core, T0, 0, jobs, 2);
    s_ready (core, T0, "w1", "a", 2);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 2);
    for (size_t index = 0; index < s_seen_count; index++)
        if (s_seen[index].type == CW_CORE_SEND_JOB)
            ck_assert_int_eq (s_seen[index].lease_token,
                              s_seen[index].job_id == 1? 7: 8);
    //  Job 1's result waits for a COMMIT that fails
    cw_core_on_result (core, T0 + 1, "w1", 1, 1, CW_CORE_TRANSIENT, 503, -1,
                       "busy", 1);
    cw_core_on_tick (core, T0 + 20);
    s_pop (core);
    s_seen_t commit = *s_last (CW_CORE_COMMIT);
    ck_assert_uint_eq (commit.count, 1);
    ck_assert_int_eq (commit.transitions[0].job_id, 1);
    ck_assert_int_eq (commit.transitions[0].lease_token, 7);
    cw_core_on_commit_failed (core, T0 + 21, commit.batch_id);
    //  Meanwhile a claim hands job 1 again under a new lease (its old
    //  lease ran out in the store and this broker took it back)
    cw_core_job_t again = s_job (1, "a", NULL, NULL, T0 + 40000);
    again.lease_token = 9;
    cw_core_on_jobs_claimed (core, T0 + 22, 0, &again, 1);
    ck_assert_ptr_null (again.payload);
    s_pop (core);
    s_seen_t *release = s_last (CW_CORE_RELEASE);
    ck_assert_ptr_nonnull (release);
    ck_assert_uint_eq (release->count, 1);
    ck_assert_int_eq (release->ids[0], 1);
    ck_assert_int_eq (release->tokens[0], 9);
    ck_assert (cw_core_holds (core, 1));
    //  The retried COMMIT still carries the lease it was computed under
    cw_core_on_tick (core, T0 + 600);
    s_pop (core);
    s_seen_t *retry = s_last (CW_CORE_COMMIT);
    ck_assert_uint_ne (retry->batch_id, commit.batch_id);
    ck_assert_int_eq (retry->transitions[0].lease_token, 7);
    cw_core_on_commit_done (core, T0 + 601, retry->batch_id);
    //  Job 2's lease is renewed under its token
    cw_core_on_tick (core, T0 + 20000);
    s_pop (core);
    s_seen_t *renew = s_last (CW_CORE_RENEW);
    ck_assert_ptr_nonnull (renew);
    ck_assert_uint_eq (renew->count, 1);
    ck_assert_int_eq (renew->ids[0], 2);
    ck_assert_int_eq (renew->tokens[0], 8);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_drain)
{
    cw_core_t *core = s_core ();
    for (int64_t id = 1; id <= 3; id++)
        s_give (core, T0, id, "a", NULL, NULL);
    s_ready (core, T0, "w1", "a", 2);
    s_pop (core);
    s_reset ();
    cw_core_on_drain (core, T0 + 1, T0 + 1000);
    s_pop (core);
    //  3 never went out: released at once
    ck_assert_int_eq (s_last (CW_CORE_RELEASE)->ids[0], 3);
    //  1 finishes; 2 does not
    cw_core_on_result (core, T0 + 2, "w1", 1, 1, CW_CORE_OK, 200, -1, NULL, 1);
    s_pop (core);
    s_seen_t *commit = s_last (CW_CORE_COMMIT);
    ck_assert_ptr_nonnull (commit);     //  Flushed at once while draining
    cw_core_on_commit_done (core, T0 + 3, commit->batch_id);
    cw_core_on_worker_credit (core, T0 + 4, "w1", 5);
    cw_core_on_wake (core, T0 + 4);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 0);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 0);
    ck_assert_int_eq (cw_core_next_deadline (core), T0 + 1000);
    cw_core_on_tick (core, T0 + 1000);
    s_pop (core);
    ck_assert_int_eq (s_last (CW_CORE_RELEASE)->ids[0], 2);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_DISCONNECT, -1), 1);
    ck_assert_int_eq (s_seen[s_seen_count - 1].type, CW_CORE_EXIT);
    ck_assert_int_eq (cw_core_next_deadline (core), INT64_MAX);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_calls)
{
    cw_core_t *core = s_core ();
    cw_core_on_call (core, T0, 1, "a", NULL, 0);
    s_pop (core);
    ck_assert_int_eq (s_last (CW_CORE_CALL_FAILED)->call_id, 1);
    s_ready (core, T0, "w1", "a", 1);
    s_ready (core, T0, "w2", "a", 1);
    cw_core_on_call (core, T0, 2, "a", NULL, 0);
    cw_core_on_call (core, T0, 3, "a", NULL, 0);
    s_pop (core);
    //  Least loaded first: one call each
    ck_assert_uint_eq (s_count (CW_CORE_SEND_CALL, -1), 2);
    ck_assert_str_ne (s_seen[s_seen_count - 1].worker,
                      s_seen[s_seen_count - 2].worker);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.calls, 2);
    cw_core_on_call_done (core, T0 + 1, 2);
    //  Credit is not spent by calls; worker loss fails its calls
    cw_core_on_worker_gone (core, T0 + 2, "w1");
    cw_core_on_worker_gone (core, T0 + 2, "w2");
    s_pop (core);
    ck_assert_int_eq (s_last (CW_CORE_CALL_FAILED)->call_id, 3);
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.calls, 0);
    cw_core_destroy (&core);
}
END_TEST

START_TEST (test_claim)
{
    cw_core_config_t config = s_config ();
    s_reset ();
    cw_core_t *core = cw_core_new (&config);
    //  No worker, no credit: no CLAIM even when poll is due
    cw_core_on_tick (core, T0);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 0);
    s_ready (core, T0, "w1", "a", 10);
    s_pop (core);
    s_seen_t *claim = s_last (CW_CORE_CLAIM);
    ck_assert_ptr_nonnull (claim);
    ck_assert_uint_eq (claim->limit, 10);
    //  One outstanding CLAIM at a time
    cw_core_on_wake (core, T0 + 1);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 1);
    //  A full batch: claim again at once for the remaining capacity
    s_claim_answer (core, T0 + 2, claim->batch_id, 10);
    cw_core_on_worker_credit (core, T0 + 3, "w1", 3);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 2);
    claim = s_last (CW_CORE_CLAIM);
    ck_assert_uint_eq (claim->limit, 3);
    //  A short batch: wait for wake or poll
    cw_core_on_jobs_claimed (core, T0 + 4, claim->batch_id, NULL, 0);
    cw_core_on_worker_credit (core, T0 + 5, "w1", 3);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 2);
    cw_core_on_wake (core, T0 + 6);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 3);
    claim = s_last (CW_CORE_CLAIM);
    cw_core_on_claim_failed (core, T0 + 7, claim->batch_id);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 3);
    ck_assert_int_le (cw_core_next_deadline (core), T0 + 507);
    cw_core_on_tick (core, T0 + 507);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 4);
    cw_core_destroy (&core);
}
END_TEST

//  Prefetch: jobs claimed beyond the credit wait here and go out the
//  moment credit comes back; claims wait until half the prefetch is used
START_TEST (test_prefetch)
{
    cw_core_config_t config = s_config ();
    config.poll_msec = 0;
    config.prefetch = 4;
    cw_core_t *core = s_core_with (config);
    s_ready (core, T0, "w1", "a", 2);
    s_pop (core);
    s_seen_t *claim = s_last (CW_CORE_CLAIM);
    ck_assert_ptr_nonnull (claim);
    ck_assert_uint_eq (claim->limit, 2 + 4);
    s_claim_answer (core, T0 + 1, claim->batch_id, 6);
    s_pop (core);
    //  Two out for the credit, four held; no room, no claim
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 2);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 1);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.queued, 4);
    //  Credit back: a held job goes at once, no claim round trip; the
    //  room (1) is under half the prefetch, so no claim yet
    ck_assert_int_eq (cw_core_on_worker_credit (core, T0 + 2, "w1", 1), 0);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 3);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 1);
    //  One more: room 2 = half the prefetch, claim for it (the first
    //  claim came back full, so the core looks for more)
    ck_assert_int_eq (cw_core_on_worker_credit (core, T0 + 3, "w1", 1), 0);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 4);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 2);
    ck_assert_uint_eq (s_last (CW_CORE_CLAIM)->limit, 2);
    //  Workers gone: nothing is claimed for the prefetch alone
    cw_core_on_jobs_claimed (core, T0 + 4, s_last (CW_CORE_CLAIM)->batch_id,
                             NULL, 0);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 2);
    cw_core_on_worker_gone (core, T0 + 5, "w1");
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 2);
    cw_core_on_wake (core, T0 + 6);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_CLAIM, -1), 2);
    cw_core_destroy (&core);
}
END_TEST

//  Jobs held for a flow no worker serves any more go back to the store
//  after a worker's liveness (heartbeat x liveness), no attempt spent, so
//  a broker that lost its workers does not sit on them
START_TEST (test_orphans_released)
{
    cw_core_config_t config = s_config ();
    config.poll_msec = 0;
    config.prefetch = 4;
    cw_core_t *core = s_core_with (config);
    s_ready (core, T0, "w1", "a", 1);
    s_pop (core);
    s_seen_t *claim = s_last (CW_CORE_CLAIM);
    ck_assert_uint_eq (claim->limit, 5);
    s_claim_answer (core, T0 + 1, claim->batch_id, 5);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 1);
    //  The worker goes: its job comes back to the queue, all five wait
    cw_core_on_worker_gone (core, T0 + 2, "w1");
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_RELEASE, -1), 0);
    //  A worker of another flow changes nothing for flow a
    s_ready (core, T0 + 3, "w2", "b", 10);
    s_pop (core);
    int64_t grace = config.heartbeat_msec * (int64_t) config.liveness;
    ck_assert_int_le (cw_core_next_deadline (core), T0 + 3 + grace);
    cw_core_on_tick (core, T0 + 2 + grace - 1);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_RELEASE, -1), 0);
    cw_core_on_worker_seen (core, T0 + 3 + grace, "w2");
    cw_core_on_tick (core, T0 + 3 + grace);
    s_pop (core);
    s_seen_t *release = s_last (CW_CORE_RELEASE);
    ck_assert_ptr_nonnull (release);
    ck_assert_uint_eq (release->count, 5);
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.held, 0);
    ck_assert_uint_eq (stats.orphans_released, 5);
    //  A worker for the flow back within the grace keeps the jobs
    s_reset ();
    s_ready (core, T0 + 10000, "w3", "a", 0);
    cw_core_job_t late = s_job (9, "a", NULL, NULL, T0 + 40000);
    cw_core_on_jobs_claimed (core, T0 + 10001, 0, &late, 1);
    cw_core_on_worker_gone (core, T0 + 10002, "w3");
    s_ready (core, T0 + 10003, "w4", "a", 0);
    cw_core_on_tick (core, T0 + 10002 + grace + 1);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_RELEASE, -1), 0);
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.held, 1);
    cw_core_destroy (&core);
}
END_TEST

//  Workers that announce targets get only jobs of those targets (or of
//  none: those run at the worker's own); the claim asks for exactly the
//  (flow, target) pairs some worker serves; a job of a target no worker
//  serves waits and goes back to the store after the grace.
START_TEST (test_worker_targets)
{
    cw_core_config_t config = s_config ();
    config.poll_msec = 0;
    cw_core_t *core = s_core_with (config);
    const char *flows[] = {"http.generic"};
    const char *ledger[] = {"ledger"};
    const char *shop[] = {"shop", "shop-eu"};
    cw_core_on_worker_ready (core, T0, "w-ledger", flows, 1, ledger, 1, 10);
    s_pop (core);
    s_seen_t *claim = s_last (CW_CORE_CLAIM);
    ck_assert_ptr_nonnull (claim);
    ck_assert_uint_eq (claim->count, 1);
    ck_assert (s_claims_pair (claim, "http.generic@ledger"));
    //  The second worker's READY is noted; the next claim asks for both
    cw_core_on_worker_ready (core, T0, "w-shop", flows, 1, shop, 2, 10);
    cw_core_on_jobs_claimed (core, T0, claim->batch_id, NULL, 0);
    s_pop (core);
    claim = s_last (CW_CORE_CLAIM);
    ck_assert_ptr_nonnull (claim);
    ck_assert_uint_eq (claim->count, 3);
    ck_assert (s_claims_pair (claim, "http.generic@ledger"));
    ck_assert (s_claims_pair (claim, "http.generic@shop"));
    ck_assert (s_claims_pair (claim, "http.generic@shop-eu"));
    ck_assert (!s_claims_pair (claim, "http.generic@*"));
    //  Jobs 1-3 for the ledger, 4-6 for the shop, 7-8 name no target,
    //  9 a target nobody serves
    const char *job_targets[] = {NULL, "ledger", "ledger", "ledger", "shop",
                                 "shop-eu", "shop", NULL, NULL, "other"};
    cw_core_job_t jobs[9];
    for (int64_t id = 1; id <= 9; id++)
        jobs[id - 1] = s_job (id, "http.generic", job_targets[id], NULL,
                              T0 + 30000);
    cw_core_on_jobs_claimed (core, T0 + 1, claim->batch_id, jobs, 9);
    s_pop (core);
    for (int64_t id = 1; id <= 6; id++) {
        const s_seen_t *sent = s_sent (id);
        ck_assert_msg (sent != NULL, "job %d not sent", (int) id);
        ck_assert_str_eq (sent->worker, id <= 3 ? "w-ledger" : "w-shop");
        ck_assert_str_eq (sent->target, job_targets[id]);
    }
    //  A job naming no target runs at the first target of its worker
    for (int64_t id = 7; id <= 8; id++) {
        const s_seen_t *sent = s_sent (id);
        ck_assert_msg (sent != NULL, "job %d not sent", (int) id);
        ck_assert_str_eq (sent->target,
                          strcmp (sent->worker, "w-ledger") == 0 ? "ledger" : "shop");
    }
    ck_assert_ptr_null (s_sent (9));
    //  Nobody serves "other": after the grace it goes back, unspent
    int64_t grace = config.heartbeat_msec * (int64_t) config.liveness;
    cw_core_on_worker_seen (core, T0 + 2 + grace, "w-ledger");
    cw_core_on_worker_seen (core, T0 + 2 + grace, "w-shop");
    cw_core_on_tick (core, T0 + 2 + grace);
    s_pop (core);
    s_seen_t *release = s_last (CW_CORE_RELEASE);
    ck_assert_ptr_nonnull (release);
    ck_assert_uint_eq (release->count, 1);
    ck_assert_int_eq (release->ids[0], 9);
    //  A worker that names no targets takes every target of its flows
    s_reset ();
    cw_core_on_worker_ready (core, T0 + 3 + grace, "w-any", flows, 1, NULL,
                             0, 10);
    s_pop (core);
    claim = s_last (CW_CORE_CLAIM);
    ck_assert_ptr_nonnull (claim);
    ck_assert (s_claims_pair (claim, "http.generic@*"));
    cw_core_job_t other = s_job (10, "http.generic", "other", NULL,
                                 T0 + 3 + grace + 30000);
    cw_core_on_jobs_claimed (core, T0 + 4 + grace, claim->batch_id, &other, 1);
    s_pop (core);
    const s_seen_t *sent = s_sent (10);
    ck_assert_ptr_nonnull (sent);
    ck_assert_str_eq (sent->worker, "w-any");
    ck_assert_str_eq (sent->target, "other");
    cw_core_destroy (&core);
}
END_TEST

//  --------------------------------------------------------------------------
//  Random events, fixed seed, cw_core_check after each

static uint64_t s_rand_state;

static uint64_t
s_rand (void)
{
    s_rand_state ^= s_rand_state << 13;
    s_rand_state ^= s_rand_state >> 7;
    s_rand_state ^= s_rand_state << 17;
    return s_rand_state;
}

START_TEST (test_random)
{
    cw_core_config_t config = s_config ();
    s_reset ();
    s_payloads_freed = 0;
    s_rand_state = 0x9e3779b97f4a7c15ULL;
    cw_core_t *core = cw_core_new (&config);
    const char *workers[] = {"w1", "w2", "w3"};
    const char *flows[] = {"a", "b", "customer.upsert"};
    const char *targets[] = {NULL, "ledger", "slow"};
    const char *keys[] = {NULL, NULL, "k1", "k2"};
    int64_t now = T0, next_id = 1;
    int given = 0;
    uint64_t claim = 0, commit = 0, renew = 0;
    for (int step = 0; step < 10000; step++) {
        now += (int64_t) (s_rand () % 50);
        const char *worker = workers[s_rand () % 3];
        switch (s_rand () % 14) {
            case 0:
                cw_core_on_worker_ready (core, now, worker, flows,
                                         1 + s_rand () % 3, targets + 1,
                                         s_rand () % 3,
                                         (uint32_t) (s_rand () % 5));
                break;
            case 1:
                cw_core_on_worker_credit (core, now, worker,
                                          (uint32_t) (s_rand () % 3));
                break;
            case 2: {
                cw_core_job_t job = s_job (
                    s_rand () % 4? next_id++: 1 + (int64_t) (s_rand () % 5),
                    flows[s_rand () % 3], targets[s_rand () % 3],
                    keys[s_rand () % 4],
                    now + (int64_t) (s_rand () % 40000));
                cw_core_on_jobs_claimed (core, now, claim, &job, 1);
                claim = 0;
                given++;
                break;
            }
            case 3:
            case 4:
            case 5: {
                //  A result for something recently sent, or garbage
                int64_t job_id = 1 + (int64_t) (s_rand () % (uint64_t) next_id);
                cw_core_on_result (core, now, worker, job_id,
                                   (uint32_t) (1 + s_rand () % 3),
                                   (cw_core_outcome_t) (1 + s_rand () % 5),
                                   500, s_rand () % 2? -1: 100, "e", 3);
                break;
            }
            case 6:
                if (commit) {
                    if (s_rand () % 4)
                        cw_core_on_commit_done (core, now, commit);
                    else
                        cw_core_on_commit_failed (core, now, commit);
                    commit = 0;
                }
                break;
            case 7:
                if (renew) {
                    int64_t lost = 1 + (int64_t) (s_rand () % (uint64_t) next_id);
                    if (s_rand () % 3)
                        cw_core_on_renew_done (core, now, renew, &lost,
                                               s_rand () % 2);
                    else
                        cw_core_on_renew_failed (core, now, renew);
                    renew = 0;
                }
                break;
            case 8:
                if (claim) {
                    cw_core_on_claim_failed (core, now, claim);
                    claim = 0;
                }
                break;
            case 9:
                cw_core_on_worker_gone (core, now, worker);
                break;
            case 10:
                cw_core_on_wake (core, now);
                break;
            case 11:
                cw_core_on_call (core, now, (int64_t) (s_rand () % 10),
                                 flows[s_rand () % 3], targets[s_rand () % 3],
                                 0);
                break;
            case 12:
                cw_core_on_call_done (core, now, (int64_t) (s_rand () % 10));
                break;
            default:
                cw_core_on_worker_seen (core, now, worker);
                now = cw_core_next_deadline (core) > now + 5000
                          ? now + 5000
                          : cw_core_next_deadline (core);
                cw_core_on_tick (core, now);
                break;
        }
        if (step == 9000)
            cw_core_on_drain (core, now, now + 3000);
        size_t before = s_seen_count;
        s_pop (core);
        for (size_t index = before; index < s_seen_count; index++) {
            s_seen_t *seen = &s_seen[index];
            if (seen->type == CW_CORE_CLAIM)
                claim = seen->batch_id;
            else
            if (seen->type == CW_CORE_COMMIT)
                commit = seen->batch_id;
            else
            if (seen->type == CW_CORE_RENEW)
                renew = seen->batch_id;
        }
        s_reset ();
    }
    //  Finish the drain: commit what is out, then time runs out
    for (int round = 0; round < 100; round++) {
        if (commit)
            cw_core_on_commit_done (core, now, commit);
        commit = 0;
        if (renew)
            cw_core_on_renew_done (core, now, renew, NULL, 0);
        renew = 0;
        now += 1000;
        cw_core_on_tick (core, now);
        s_pop (core);
        for (size_t index = 0; index < s_seen_count; index++) {
            if (s_seen[index].type == CW_CORE_COMMIT)
                commit = s_seen[index].batch_id;
            if (s_seen[index].type == CW_CORE_RENEW)
                renew = s_seen[index].batch_id;
        }
        s_reset ();
    }
    cw_core_stats_t stats;
    cw_core_stats (core, &stats);
    ck_assert_uint_eq (stats.held, 0);
    ck_assert_uint_gt (stats.dispatched, 100);
    cw_core_destroy (&core);
    ck_assert_int_eq (s_payloads_freed, given);
}
END_TEST

//  An event that changes nothing (a HEARTBEAT, a message from a peer
//  with no session) must not hide a deadline that fell due before it:
//  the shell ticks only at cw_core_next_deadline.
START_TEST (test_deadline_after_quiet_event)
{
    cw_core_t *core = s_core ();
    s_ready (core, T0, "w1", "a", 1);
    s_give (core, T0, 1, "a", NULL, NULL);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 1), 1);
    //  A result: its COMMIT is due by flush_msec (10)
    cw_core_on_result (core, T0 + 100, "w1", 1, 1, CW_CORE_OK, 200, -1, NULL,
                       5);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_COMMIT, -1), 0);
    ck_assert_int_eq (cw_core_next_deadline (core), T0 + 110);
    //  A HEARTBEAT arrives after that, before the shell ticked
    ck_assert_int_eq (cw_core_on_worker_seen (core, T0 + 120, "w1"), 0);
    ck_assert_int_le (cw_core_next_deadline (core), T0 + 120);
    cw_core_on_tick (core, T0 + 120);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_COMMIT, -1), 1);
    s_commit_ok (core, T0 + 120);
    s_pop (core);
    //  The same with no worker left and a stray message from a peer with
    //  no session: the COMMIT must not wait for the lease to run out
    cw_core_on_worker_gone (core, T0 + 121, "w1");
    s_pop (core);
    s_give (core, T0 + 122, 2, "b", NULL, NULL);
    s_ready (core, T0 + 123, "w2", "b", 1);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 2), 1);
    cw_core_on_result (core, T0 + 124, "w2", 2, 1, CW_CORE_OK, 200, -1, NULL,
                       5);
    s_pop (core);
    cw_core_on_worker_gone (core, T0 + 125, "w2");
    s_pop (core);
    ck_assert_int_eq (cw_core_on_worker_seen (core, T0 + 200, "nobody"), -1);
    ck_assert_int_le (cw_core_next_deadline (core), T0 + 200);
    cw_core_on_tick (core, T0 + 200);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_COMMIT, -1), 2);
    ck_assert_int_eq (s_last (CW_CORE_COMMIT)->transitions[0].job_id, 2);
    cw_core_destroy (&core);
}
END_TEST

//  A job whose lease is too short for its deadline waits for a RENEW;
//  the renewed lease, lease_msec from when the RENEW went out, must cover
//  the deadline when the answer comes back (within the renew margin), or
//  the job is renewed again and again and never sent.
START_TEST (test_deadline_near_lease)
{
    cw_core_config_t config = s_config ();
    config.job_deadline_msec = config.lease_msec - 1;
    char reason[256];
    ck_assert_int_eq (cw_core_config_check (&config, reason, sizeof (reason)),
                      -1);
    ck_assert_ptr_nonnull (strstr (reason, "lease_msec"));
    config.job_deadline_msec = config.lease_msec - config.renew_margin_msec;
    ck_assert_int_eq (cw_core_config_check (&config, reason, sizeof (reason)),
                      0);
    //  A job's own deadline beyond the lease: it waited here, its lease
    //  has 15 s left
    cw_core_t *core = s_core ();
    s_ready (core, T0, "w1", "a", 1);
    cw_core_job_t job = s_job (1, "a", NULL, NULL, T0 + 15000);
    job.deadline_msec = 40000;
    cw_core_on_jobs_claimed (core, T0, 0, &job, 1);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, -1), 0);
    s_seen_t *renew = s_last (CW_CORE_RENEW);
    ck_assert_ptr_nonnull (renew);
    ck_assert_int_eq (renew->lease_expires_at, T0 + 30000);
    //  The RENEW comes back 5 msec later: the job goes
    cw_core_on_renew_done (core, T0 + 5, renew->batch_id, NULL, 0);
    s_pop (core);
    ck_assert_uint_eq (s_count (CW_CORE_SEND_JOB, 1), 1);
    ck_assert_uint_eq (s_count (CW_CORE_RENEW, -1), 1);
    cw_core_destroy (&core);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_core");
    TCase *tcase = tcase_create ("rules");
    tcase_set_timeout (tcase, 30);
    tcase_add_test (tcase, test_config);
    tcase_add_test (tcase, test_credit);
    tcase_add_test (tcase, test_flows);
    tcase_add_test (tcase, test_target_cap);
    tcase_add_test (tcase, test_rate);
    tcase_add_test (tcase, test_ordering);
    tcase_add_test (tcase, test_parking);
    tcase_add_test (tcase, test_outcomes);
    tcase_add_test (tcase, test_retry_timing);
    tcase_add_test (tcase, test_exhausted);
    tcase_add_test (tcase, test_flow_stats);
    tcase_add_test (tcase, test_worker_loss);
    tcase_add_test (tcase, test_lease_loss);
    tcase_add_test (tcase, test_renew_timing);
    tcase_add_test (tcase, test_no_release_before_commit);
    tcase_add_test (tcase, test_commit_retry);
    tcase_add_test (tcase, test_lease_token);
    tcase_add_test (tcase, test_drain);
    tcase_add_test (tcase, test_calls);
    tcase_add_test (tcase, test_claim);
    tcase_add_test (tcase, test_prefetch);
    tcase_add_test (tcase, test_orphans_released);
    tcase_add_test (tcase, test_worker_targets);
    tcase_add_test (tcase, test_untargeted_capped);
    tcase_add_test (tcase, test_deadline_after_quiet_event);
    tcase_add_test (tcase, test_deadline_near_lease);
    suite_add_tcase (suite, tcase);
    TCase *random = tcase_create ("random");
    tcase_set_timeout (random, 60);
    tcase_add_test (random, test_random);
    suite_add_tcase (suite, random);

    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0? EXIT_SUCCESS: EXIT_FAILURE;
}
