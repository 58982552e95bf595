/*  =========================================================================
    cw_sim - seeded, deterministic simulation of the broker's decision core

    Two or three cw_core instances race on one simulated job store (leases,
    SKIP LOCKED claims with head-of-line per ordering key, transactions that
    fail or commit with the reply lost), with simulated workers (slow, dying,
    coming back, losing or duplicating results) and a simulated far side
    that records effects per idempotency key. One PRNG, one simulated clock
    in msec: the same options replay the same run exactly. Invariants are
    checked at every step; the first violation stops the run.

    See docs/simulation.md.
    =========================================================================
*/
#ifndef CW_SIM_H_INCLUDED
#define CW_SIM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

//  Fault classes; a run injects only the classes in options.faults.
#define CW_SIM_FAULT_CLAIM_FAIL     (1u << 0)   //  CLAIM rolled back
#define CW_SIM_FAULT_CLAIM_LOST     (1u << 1)   //  CLAIM committed, reply lost
#define CW_SIM_FAULT_COMMIT_FAIL    (1u << 2)   //  COMMIT rolled back
#define CW_SIM_FAULT_COMMIT_LOST    (1u << 3)   //  COMMIT committed, reply lost
#define CW_SIM_FAULT_RENEW_FAIL     (1u << 4)   //  RENEW rolled back
#define CW_SIM_FAULT_RENEW_LOST     (1u << 5)   //  RENEW committed, reply lost
#define CW_SIM_FAULT_RELEASE_FAIL   (1u << 6)   //  RELEASE rolled back
#define CW_SIM_FAULT_RESULT_LOST    (1u << 7)   //  RESULT never arrives
#define CW_SIM_FAULT_RESULT_DUP     (1u << 8)   //  RESULT arrives twice
#define CW_SIM_FAULT_WORKER_SLOW    (1u << 9)   //  Job runs past its deadline
#define CW_SIM_FAULT_WORKER_DIE     (1u << 10)  //  Worker dies (comes back)
#define CW_SIM_FAULT_BROKER_DIE     (1u << 11)  //  Broker crashes (restarts)
#define CW_SIM_FAULT_BROKER_DRAIN   (1u << 12)  //  Broker drains (restarts)
#define CW_SIM_FAULT_FAR_FAIL       (1u << 13)  //  Far side 503 / 429
#define CW_SIM_FAULT_FAR_LOST       (1u << 14)  //  Effect done, reply lost
#define CW_SIM_FAULT_COUNT          15
#define CW_SIM_FAULT_ALL            ((1u << CW_SIM_FAULT_COUNT) - 1)

#define CW_SIM_MAX_BROKERS          3
#define CW_SIM_MAX_WORKERS          4           //  Per broker

//  What one run does. cw_sim_options_default derives all from a seed.
typedef struct {
    uint64_t seed;              //  Everything random comes from it
    uint32_t steps;             //  Steps with faults (then a healing phase)
    uint32_t brokers;           //  1 .. CW_SIM_MAX_BROKERS
    uint32_t workers;           //  Per broker, 1 .. CW_SIM_MAX_WORKERS
    uint32_t jobs;              //  Jobs inserted over the run, >= 1
    uint32_t keys;              //  Distinct ordering keys, 0 = unordered
    uint32_t faults;            //  CW_SIM_FAULT_* classes injected
    uint32_t intensity;         //  Fault rates times this, 1 .. 4
    uint32_t lease_msec;        //  Lease length, 1429 .. 60000
    uint32_t prefetch;          //  Brokers' prefetch (cw_core_config_t)
    const uint32_t *skip;       //  Fault instances suppressed, ascending
    size_t skip_count;          //  Entries in skip
    bool trace;                 //  Record one line per event
    bool unordered_replies;     //  Store replies may overtake each other
    bool one_connection;        //  Claims share the one store connection
                                //  (the shell before its claim connection)
    bool owner_fence_only;      //  COMMIT fenced by lease_owner alone (the
                                //  store before the attempts fence)
    bool targets;               //  Workers announce targets: the first of
                                //  each broker none, then "erp", "shop",
                                //  none, ... in turn
    bool no_token_fence;        //  COMMIT, RENEW, RELEASE fenced by
                                //  lease_owner (+ attempts) without the
                                //  lease token (the store before it)
                                //  (a shell with one connection per kind)
} cw_sim_options_t;

//  How a run ended.
typedef struct {
    bool failed;                //  An invariant broke
    char reason[320];           //  Which one and why
    uint32_t steps;             //  Steps run (fault phase + healing)
    uint32_t faults;            //  Fault instances injected
    uint32_t done;              //  Jobs done at the end
    uint32_t dead;              //  Jobs dead at the end
    uint32_t parked;            //  Jobs parked behind a dead letter
    uint64_t dispatched;        //  JOBs sent, all brokers
    char **trace;               //  Trace lines (options.trace), owned
    size_t trace_count;         //  Lines in trace
} cw_sim_result_t;

//  Fills options for seed with steps fault-phase steps: brokers, workers,
//  jobs, keys, fault intensity and lease length drawn from the seed, every fault class
//  on, tracing off.
void
    cw_sim_options_default (cw_sim_options_t *options, uint64_t seed,
                            uint32_t steps);

//  Runs one simulation. Returns 0 when every invariant held, -1 with
//  result->failed and result->reason set otherwise. The caller must call
//  cw_sim_result_clear afterwards.
int
    cw_sim_run (const cw_sim_options_t *options, cw_sim_result_t *result);

//  Frees the trace of a result.
void
    cw_sim_result_clear (cw_sim_result_t *result);

//  Shrinks a failing run: fewer jobs, brokers, workers and keys, fault
//  classes off, single fault instances suppressed (delta debugging), at
//  most budget runs. Fills *best (its skip array is malloc'd: free
//  best->skip) and *best_result (traced). Returns 0, or -1 if options do
//  not fail.
int
    cw_sim_minimize (const cw_sim_options_t *options, uint32_t budget,
                     cw_sim_options_t *best, cw_sim_result_t *best_result);

//  Prints the options as a scripts/simulate command line that replays them.
void
    cw_sim_options_print (const cw_sim_options_t *options, FILE *file);

#endif
