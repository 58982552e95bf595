/*  cw_core - the broker's pure decision core (work in progress) */
#include "cw_core.h"
#include <assert.h>
#include <stdlib.h>
#include <stdint.h>

int
cw_core_config_check (const cw_core_config_t *config, char *reason,
                          size_t size)
{
    (void) config;
    (void) reason;
    (void) size;
    return 0;
}

cw_core_t *
cw_core_new (const cw_core_config_t *config)
{
    (void) config;
    return NULL;
}

void
cw_core_destroy (cw_core_t **self_p)
{
    (void) self_p;
}

void
cw_core_on_worker_ready (cw_core_t *self, int64_t now, const char *worker,
                             const char *const *flows, size_t flow_count,
                             uint32_t credit)
{
    (void) self;
    (void) now;
    (void) worker;
    (void) flows;
    (void) flow_count;
    (void) credit;
}

int
cw_core_on_worker_credit (cw_core_t *self, int64_t now,
                              const char *worker, uint32_t credit)
{
    (void) self;
    (void) now;
    (void) worker;
    (void) credit;
    return 0;
}

int
cw_core_on_worker_seen (cw_core_t *self, int64_t now, const char *worker)
{
    (void) self;
    (void) now;
    (void) worker;
    return 0;
}

void
cw_core_on_worker_gone (cw_core_t *self, int64_t now, const char *worker)
{
    (void) self;
    (void) now;
    (void) worker;
}

int
cw_core_on_result (cw_core_t *self, int64_t now, const char *worker,
                       int64_t job_id, uint32_t attempt,
                       cw_core_outcome_t outcome, int http_status,
                       int64_t retry_after_msec, const char *error,
                       int64_t duration_msec)
{
    (void) self;
    (void) now;
    (void) worker;
    (void) job_id;
    (void) attempt;
    (void) outcome;
    (void) http_status;
    (void) retry_after_msec;
    (void) error;
    (void) duration_msec;
    return 0;
}

void
cw_core_on_jobs_claimed (cw_core_t *self, int64_t now, uint64_t batch_id,
                             cw_core_job_t *jobs, size_t count)
{
    (void) self;
    (void) now;
    (void) batch_id;
    (void) jobs;
    (void) count;
}

void
cw_core_on_claim_failed (cw_core_t *self, int64_t now, uint64_t batch_id)
{
    (void) self;
    (void) now;
    (void) batch_id;
}

void
cw_core_on_commit_done (cw_core_t *self, int64_t now, uint64_t batch_id)
{
    (void) self;
    (void) now;
    (void) batch_id;
}

void
cw_core_on_commit_failed (cw_core_t *self, int64_t now,
                              uint64_t batch_id)
{
    (void) self;
    (void) now;
    (void) batch_id;
}

void
cw_core_on_renew_done (cw_core_t *self, int64_t now, uint64_t batch_id,
                           const int64_t *lost, size_t lost_count)
{
    (void) self;
    (void) now;
    (void) batch_id;
    (void) lost;
    (void) lost_count;
}

void
cw_core_on_renew_failed (cw_core_t *self, int64_t now, uint64_t batch_id)
{
    (void) self;
    (void) now;
    (void) batch_id;
}

void
cw_core_on_wake (cw_core_t *self, int64_t now)
{
    (void) self;
    (void) now;
}

void
cw_core_on_tick (cw_core_t *self, int64_t now)
{
    (void) self;
    (void) now;
}

void
cw_core_on_drain (cw_core_t *self, int64_t now, int64_t deadline)
{
    (void) self;
    (void) now;
    (void) deadline;
}

void
cw_core_on_call (cw_core_t *self, int64_t now, int64_t call_id,
                     const char *flow, const char *target,
                     int64_t deadline_msec)
{
    (void) self;
    (void) now;
    (void) call_id;
    (void) flow;
    (void) target;
    (void) deadline_msec;
}

void
cw_core_on_call_done (cw_core_t *self, int64_t now, int64_t call_id)
{
    (void) self;
    (void) now;
    (void) call_id;
}

const cw_core_action_t *
cw_core_next_action (cw_core_t *self)
{
    (void) self;
    return NULL;
}

int64_t
cw_core_next_deadline (cw_core_t *self)
{
    (void) self;
    return INT64_MAX;
}

bool
cw_core_holds (cw_core_t *self, int64_t job_id)
{
    (void) self;
    (void) job_id;
    return false;
}

void
cw_core_stats (cw_core_t *self, cw_core_stats_t *stats)
{
    (void) self;
    (void) stats;
}

int
cw_core_check (cw_core_t *self, char *reason, size_t size)
{
    (void) self;
    (void) reason;
    (void) size;
    return 0;
}
