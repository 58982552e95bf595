/*  =========================================================================
    cw_simulate - runs the broker simulation over many seeds, or one seed
    traced. Driven by scripts/simulate; see docs/simulation.md.

    cw_simulate [--seeds N] [--start S] [--steps K]
    cw_simulate --seed S [--steps K] [--brokers B --workers W --jobs J
                --keys K --faults MASK --skip I,J,...] [--trace]

    Exit status: 0 all passed, 1 a seed failed, 2 bad usage.
    =========================================================================
*/
#include "cw_sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_STEPS     300
#define S_MINIMIZE_BUDGET   3000
#define S_MAX_SKIP          4096

static void
s_usage (void)
{
    fprintf (stderr,
        "usage: cw_simulate [--seeds N] [--start S] [--steps K]\n"
        "       cw_simulate --seed S [--steps K] [--brokers B] [--workers W]\n"
        "                   [--jobs J] [--keys K] [--faults MASK]\n"
        "                   [--intensity 1-4] [--lease MSEC] [--prefetch N]\n"
        "                   [--skip I,J,...] [--trace]\n"
        "       --unordered-replies: store replies may overtake each other\n"
        "       --ordered-replies: store replies come back in order\n"
        "       (without either, each seed picks; likewise --prefetch)\n"
        "       --owner-fence-only: COMMIT fenced by lease_owner alone (the\n"
        "                           store before the attempts fence)\n"
        "       --no-token-fence: COMMIT, RENEW and RELEASE fenced without\n"
        "                         the lease token (the store before it)\n"
        "       --targets: workers announce targets (the first of each\n"
        "                  broker none, then erp, shop, none, ...)\n"
        "       --one-connection: claims share the broker's one store\n"
        "                         connection (the shell before its claim\n"
        "                         connection)\n"
        "       --keep-going: report every failing seed, unshrunk\n");
}

//  Parses an unsigned number; returns 0, or -1 with a message naming flag.
static int
s_number (const char *flag, const char *text, uint64_t max, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull (text, &end, 0);
    if (errno || end == text || *end || text [0] == '-' || parsed > max) {
        fprintf (stderr, "cw_simulate: invalid value \"%s\" for %s "
                 "(expected a number up to %" PRIu64 ")\n", text, flag, max);
        return -1;
    }
    *value = parsed;
    return 0;
}

static void
s_print_trace (const cw_sim_result_t *result)
{
    for (size_t index = 0; index < result->trace_count; index++)
        printf ("  %s\n", result->trace [index]);
}

//  Minimises a failing run and prints the shortest trace found.
static void
s_report_failure (const cw_sim_options_t *options,
                  const cw_sim_result_t *result)
{
    printf ("FAIL seed %" PRIu64 " after %u steps: %s\n", options->seed,
            result->steps, result->reason);
    printf ("replay: ");
    cw_sim_options_print (options, stdout);
    cw_sim_options_t best;
    cw_sim_result_t best_result;
    if (cw_sim_minimize (options, S_MINIMIZE_BUDGET, &best, &best_result)) {
        printf ("(the failure did not reproduce: not deterministic?)\n");
        return;
    }
    printf ("shortest trace found (%zu events, %u steps): %s\n",
            best_result.trace_count, best_result.steps, best_result.reason);
    printf ("replay it: ");
    cw_sim_options_print (&best, stdout);
    s_print_trace (&best_result);
    cw_sim_result_clear (&best_result);
    free ((uint32_t *) best.skip);
}

int
main (int argc, char *argv [])
{
    uint64_t seeds = 1000, start = 1, steps = S_DEFAULT_STEPS, seed = 0;
    bool single = false, trace = false, keep_going = false;
    int replies = 0;            //  0 the seed's pick, 1 unordered, 2 ordered
    uint64_t prefetch = UINT64_MAX;
    bool owner_fence_only = false, no_token_fence = false;
    bool one_connection = false, targets = false;
    uint64_t brokers = 0, workers = 0, jobs = 0, keys = UINT64_MAX;
    uint64_t faults = UINT64_MAX, intensity = 0, lease = 0;
    uint32_t skip [S_MAX_SKIP];
    size_t skip_count = 0;
    for (int arg = 1; arg < argc; arg++) {
        const char *flag = argv [arg];
        if (strcmp (flag, "--trace") == 0) {
            trace = true;
            continue;
        }
        if (strcmp (flag, "--keep-going") == 0) {
            keep_going = true;
            continue;
        }
        if (strcmp (flag, "--unordered-replies") == 0) {
            replies = 1;
            continue;
        }
        if (strcmp (flag, "--ordered-replies") == 0) {
            replies = 2;
            continue;
        }
        if (strcmp (flag, "--owner-fence-only") == 0) {
            owner_fence_only = true;
            continue;
        }
        if (strcmp (flag, "--no-token-fence") == 0) {
            no_token_fence = true;
            continue;
        }
        if (strcmp (flag, "--one-connection") == 0) {
            one_connection = true;
            continue;
        }
        if (strcmp (flag, "--targets") == 0) {
            targets = true;
            continue;
        }
        if (strcmp (flag, "--help") == 0) {
            s_usage ();
            return 0;
        }
        if (arg + 1 >= argc) {
            fprintf (stderr, "cw_simulate: %s needs a value\n", flag);
            s_usage ();
            return 2;
        }
        const char *text = argv [++arg];
        int rc = 0;
        if (strcmp (flag, "--seeds") == 0)
            rc = s_number (flag, text, UINT32_MAX, &seeds);
        else
        if (strcmp (flag, "--start") == 0)
            rc = s_number (flag, text, UINT64_MAX, &start);
        else
        if (strcmp (flag, "--steps") == 0)
            rc = s_number (flag, text, 10000000, &steps);
        else
        if (strcmp (flag, "--seed") == 0) {
            rc = s_number (flag, text, UINT64_MAX, &seed);
            single = true;
        }
        else
        if (strcmp (flag, "--brokers") == 0)
            rc = s_number (flag, text, CW_SIM_MAX_BROKERS, &brokers);
        else
        if (strcmp (flag, "--workers") == 0)
            rc = s_number (flag, text, CW_SIM_MAX_WORKERS, &workers);
        else
        if (strcmp (flag, "--jobs") == 0)
            rc = s_number (flag, text, 10000, &jobs);
        else
        if (strcmp (flag, "--keys") == 0)
            rc = s_number (flag, text, 8, &keys);
        else
        if (strcmp (flag, "--faults") == 0)
            rc = s_number (flag, text, CW_SIM_FAULT_ALL, &faults);
        else
        if (strcmp (flag, "--prefetch") == 0)
            rc = s_number (flag, text, 1000, &prefetch);
        else
        if (strcmp (flag, "--lease") == 0) {
            rc = s_number (flag, text, 60000, &lease);
            if (rc == 0 && lease - lease * 3 / 10 < 1000) {
                fprintf (stderr, "cw_simulate: --lease must cover the 1000 "
                         "msec job deadline plus its 30%% renew margin\n");
                rc = -1;
            }
        }
        else
        if (strcmp (flag, "--intensity") == 0) {
            rc = s_number (flag, text, 4, &intensity);
            if (rc == 0 && intensity == 0) {
                fprintf (stderr, "cw_simulate: --intensity must be 1 to 4\n");
                rc = -1;
            }
        }
        else
        if (strcmp (flag, "--skip") == 0) {
            char *copy = strdup (text), *cursor = copy, *comma;
            do {
                comma = strchr (cursor, ',');
                if (comma)
                    *comma = 0;
                uint64_t value;
                rc = s_number (flag, cursor, UINT32_MAX, &value);
                if (rc == 0 && skip_count < S_MAX_SKIP)
                    skip [skip_count++] = (uint32_t) value;
                cursor = comma? comma + 1: NULL;
            } while (rc == 0 && cursor);
            free (copy);
        }
        else {
            fprintf (stderr, "cw_simulate: unknown option %s\n", flag);
            s_usage ();
            return 2;
        }
        if (rc)
            return 2;
    }
    if (single) {
        cw_sim_options_t options;
        cw_sim_options_default (&options, seed, (uint32_t) steps);
        if (brokers)
            options.brokers = (uint32_t) brokers;
        if (workers)
            options.workers = (uint32_t) workers;
        if (jobs)
            options.jobs = (uint32_t) jobs;
        if (keys != UINT64_MAX)
            options.keys = (uint32_t) keys;
        if (faults != UINT64_MAX)
            options.faults = (uint32_t) faults;
        if (intensity)
            options.intensity = (uint32_t) intensity;
        if (lease)
            options.lease_msec = (uint32_t) lease;
        options.skip = skip;
        options.skip_count = skip_count;
        options.trace = trace;
        if (replies)
            options.unordered_replies = replies == 1;
        if (prefetch != UINT64_MAX)
            options.prefetch = (uint32_t) prefetch;
        options.owner_fence_only = owner_fence_only;
        options.no_token_fence = no_token_fence;
        options.one_connection = one_connection;
        options.targets = targets;
        cw_sim_result_t result;
        int rc = cw_sim_run (&options, &result);
        s_print_trace (&result);
        printf ("seed %" PRIu64 ": %s after %u steps, %u faults, %" PRIu64
                " dispatched, %u done, %u dead, %u parked%s%s\n", seed,
                rc? "FAIL": "ok", result.steps, result.faults,
                result.dispatched, result.done, result.dead, result.parked,
                rc? ": ": "", rc? result.reason: "");
        cw_sim_result_clear (&result);
        return rc? 1: 0;
    }
    uint64_t failures = 0, total_steps = 0;
    for (uint64_t index = 0; index < seeds; index++) {
        cw_sim_options_t options;
        cw_sim_options_default (&options, start + index, (uint32_t) steps);
        if (replies)
            options.unordered_replies = replies == 1;
        if (prefetch != UINT64_MAX)
            options.prefetch = (uint32_t) prefetch;
        options.owner_fence_only = owner_fence_only;
        options.no_token_fence = no_token_fence;
        options.one_connection = one_connection;
        options.targets = targets;
        cw_sim_result_t result;
        int rc = cw_sim_run (&options, &result);
        total_steps += result.steps;
        if (rc && keep_going) {
            failures++;
            printf ("FAIL seed %" PRIu64 " after %u steps: %s\n",
                    start + index, result.steps, result.reason);
        }
        else
        if (rc) {
            failures++;
            printf ("seed %" PRIu64 " is the %" PRIu64 ". seed run; %" PRIu64
                    " steps in all\n", start + index, index + 1, total_steps);
            s_report_failure (&options, &result);
            cw_sim_result_clear (&result);
            break;
        }
        cw_sim_result_clear (&result);
        if ((index + 1) % 1000 == 0 || index + 1 == seeds) {
            printf ("%" PRIu64 "/%" PRIu64 " seeds run (%" PRIu64 " .. %"
                    PRIu64 "), %" PRIu64 " steps\n", index + 1, seeds, start,
                    start + index, total_steps);
            if (failures)
                printf ("%" PRIu64 " seeds failed\n", failures);
            fflush (stdout);
        }
    }
    return failures? 1: 0;
}
