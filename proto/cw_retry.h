/*  =========================================================================
    cw_retry - exponential backoff with full jitter, and Retry-After

    After attempt N (1-based) of a policy {base, cap, max_attempts}:
      * N >= max_attempts: exhausted (dead-letter).
      * else, when the peer sent a valid Retry-After: min (cap, that delay);
      * else a uniform draw from [0, min (cap, base * 2^(N-1))] msec.
    No overflow for any N. Pure: time ("now", epoch msec) and randomness
    (a uint64, e.g. from cw_retry_rng_next) are parameters.
    See docs/retry.md.
    =========================================================================
*/
#ifndef CW_RETRY_H_INCLUDED
#define CW_RETRY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  A per-flow retry policy.
typedef struct {
    int64_t base_msec;          //  Window after the first attempt, >= 1
    int64_t cap_msec;           //  Largest delay ever returned, >= base
    uint32_t max_attempts;      //  Attempts in all, >= 1 (1 = never retry)
} cw_retry_policy_t;

//  A splitmix64 generator: seed it once, draw with cw_retry_rng_next.
typedef struct {
    uint64_t state;             //  Advances by the golden gamma per draw
} cw_retry_rng_t;

typedef enum {
    CW_RETRY_AGAIN,             //  Retry after delay_msec
    CW_RETRY_EXHAUSTED          //  No attempts left
} cw_retry_verdict_t;

//  What to do after a failed attempt.
typedef struct {
    cw_retry_verdict_t verdict; //  Again or exhausted
    int64_t delay_msec;         //  Delay before the next attempt (AGAIN)
    bool retry_after_used;      //  Delay came from Retry-After
    bool retry_after_invalid;   //  A Retry-After was given but ignored
} cw_retry_decision_t;

//  Checks a policy (from config). Returns 0, or -1 with a reason naming
//  the field in reason[size].
int
    cw_retry_policy_check (const cw_retry_policy_t *policy, char *reason,
                           size_t size);

//  Seeds the generator.
void
    cw_retry_rng_seed (cw_retry_rng_t *rng, uint64_t seed);

//  Returns the next 64 random bits.
uint64_t
    cw_retry_rng_next (cw_retry_rng_t *rng);

//  Returns the jitter window after attempt (>= 1): min (cap, base *
//  2^(attempt-1)), saturating (never overflows). Policy must be valid.
int64_t
    cw_retry_window (const cw_retry_policy_t *policy, uint32_t attempt);

//  Returns a full-jitter delay after attempt: random mapped uniformly
//  onto [0, cw_retry_window (policy, attempt)] (modulo bias at most
//  window / 2^64).
int64_t
    cw_retry_backoff (const cw_retry_policy_t *policy, uint32_t attempt,
                      uint64_t random);

//  Parses a Retry-After header value (RFC 9110 10.2.3): delta-seconds,
//  or an HTTP-date in IMF-fixdate, obsolete RFC 850 or asctime form,
//  relative to now_msec (epoch msec). Surrounding spaces and tabs are
//  ignored. Past dates give 0; huge values saturate at INT64_MAX msec.
//  Returns 0 and sets *delay_msec, or -1 with a reason in reason[size].
int
    cw_retry_after_parse (const char *value, int64_t now_msec,
                          int64_t *delay_msec, char *reason, size_t size);

//  Parses an HTTP-date alone into epoch seconds; RFC 850 two-digit years
//  are placed using now_msec (no more than 50 years ahead). Returns 0 and
//  sets *epoch_sec, or -1 with a reason in reason[size].
int
    cw_retry_http_date_parse (const char *text, int64_t now_msec,
                              int64_t *epoch_sec, char *reason, size_t size);

//  Decides what follows failed attempt (>= 1) under policy. retry_after is
//  the peer's Retry-After value or NULL; an invalid one is ignored (the
//  backoff applies), flagged in the decision and explained in
//  reason[size] (reason is "" otherwise). random feeds the jitter.
void
    cw_retry_decide (const cw_retry_policy_t *policy, uint32_t attempt,
                     const char *retry_after, int64_t now_msec,
                     uint64_t random, cw_retry_decision_t *decision,
                     char *reason, size_t size);

#endif
