/*  =========================================================================
    check_cw_retry - full-jitter backoff, caps, Retry-After and HTTP dates
    =========================================================================
*/
#include "cw_retry.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  2026-11-26T20:00:00Z in epoch msec
#define NOW_MSEC 1795723200000LL
#define DRAWS 100000

static const cw_retry_policy_t s_policy = {100, 10000, 5};

START_TEST (test_policy_check)
{
    char reason[128];
    ck_assert_int_eq (
        cw_retry_policy_check (&s_policy, reason, sizeof (reason)), 0);
    cw_retry_policy_t bad = {0, 10, 3};
    ck_assert_int_eq (cw_retry_policy_check (&bad, reason, sizeof (reason)),
                      -1);
    ck_assert_str_eq (reason, "field \"base_msec\": 0 is below 1");
    bad = (cw_retry_policy_t){100, 99, 3};
    ck_assert_int_eq (cw_retry_policy_check (&bad, reason, sizeof (reason)),
                      -1);
    ck_assert_str_eq (reason, "field \"cap_msec\": 99 is below base_msec 100");
    bad = (cw_retry_policy_t){100, 100, 0};
    ck_assert_int_eq (cw_retry_policy_check (&bad, reason, sizeof (reason)),
                      -1);
    ck_assert_str_eq (reason, "field \"max_attempts\": 0 is below 1");
}
END_TEST

START_TEST (test_window)
{
    ck_assert_int_eq (cw_retry_window (&s_policy, 1), 100);
    ck_assert_int_eq (cw_retry_window (&s_policy, 2), 200);
    ck_assert_int_eq (cw_retry_window (&s_policy, 7), 6400);
    ck_assert_int_eq (cw_retry_window (&s_policy, 8), 10000);
    ck_assert_int_eq (cw_retry_window (&s_policy, 63), 10000);
    ck_assert_int_eq (cw_retry_window (&s_policy, 64), 10000);
    ck_assert_int_eq (cw_retry_window (&s_policy, UINT32_MAX), 10000);
    //  Overflow edges: a cap at INT64_MAX, a huge base
    cw_retry_policy_t wide = {1, INT64_MAX, 100};
    ck_assert_int_eq (cw_retry_window (&wide, 63), INT64_C (1) << 62);
    ck_assert_int_eq (cw_retry_window (&wide, 64), INT64_MAX);
    ck_assert_int_eq (cw_retry_window (&wide, 65), INT64_MAX);
    ck_assert_int_eq (cw_retry_window (&wide, UINT32_MAX), INT64_MAX);
    cw_retry_policy_t huge = {INT64_MAX / 2 + 1, INT64_MAX, 100};
    ck_assert_int_eq (cw_retry_window (&huge, 1), INT64_MAX / 2 + 1);
    ck_assert_int_eq (cw_retry_window (&huge, 2), INT64_MAX);
    cw_retry_policy_t flat = {500, 500, 3};
    ck_assert_int_eq (cw_retry_window (&flat, 1), 500);
    ck_assert_int_eq (cw_retry_window (&flat, 40), 500);
    //  Whole range of the random value
    ck_assert_int_eq (cw_retry_backoff (&wide, 64, UINT64_MAX),
                      (int64_t) (UINT64_MAX % ((uint64_t) INT64_MAX + 1)));
    ck_assert_int_eq (cw_retry_backoff (&s_policy, 1, 0), 0);
    ck_assert_int_eq (cw_retry_backoff (&s_policy, 1, 100), 100);
    ck_assert_int_eq (cw_retry_backoff (&s_policy, 1, 101), 0);
}
END_TEST

START_TEST (test_rng)
{
    //  splitmix64 reference outputs for seed 0 (Vigna's splitmix64.c)
    cw_retry_rng_t rng;
    cw_retry_rng_seed (&rng, 0);
    ck_assert (cw_retry_rng_next (&rng) == 0xE220A8397B1DCDAFULL);
    ck_assert (cw_retry_rng_next (&rng) == 0x6E789E6AA1B965F4ULL);
    ck_assert (cw_retry_rng_next (&rng) == 0x06C45D188009454FULL);
    //  Same seed, same sequence
    cw_retry_rng_t one, two;
    cw_retry_rng_seed (&one, 42);
    cw_retry_rng_seed (&two, 42);
    for (int draw = 0; draw < 100; draw++)
        ck_assert (cw_retry_rng_next (&one) == cw_retry_rng_next (&two));
}
END_TEST

START_TEST (test_jitter_statistics)
{
    cw_retry_rng_t rng;
    cw_retry_rng_seed (&rng, 20261126);
    for (uint32_t attempt = 1; attempt <= 9; attempt++) {
        int64_t window = cw_retry_window (&s_policy, attempt);
        int64_t low = INT64_MAX, high = -1;
        double sum = 0;
        int64_t buckets[10] = {0};
        for (int draw = 0; draw < DRAWS; draw++) {
            int64_t delay =
                cw_retry_backoff (&s_policy, attempt, cw_retry_rng_next (&rng));
            ck_assert_int_ge (delay, 0);
            ck_assert_int_le (delay, window);
            low = delay < low ? delay : low;
            high = delay > high ? delay : high;
            sum += (double) delay;
            buckets[delay * 10 / (window + 1)]++;
        }
        double mean = sum / DRAWS;
        //  Mean of U[0, w] is w / 2; with 1e5 draws the standard error
        //  is w / sqrt (12e5) ~ w / 1095, so 1 % of w is > 10 sigma.
        ck_assert_msg (mean > window * 0.49 && mean < window * 0.51,
                       "attempt %u: mean %.1f, window %lld", attempt, mean,
                       (long long) window);
        //  The draws reach both ends of the window
        ck_assert_int_le (low, window / 100);
        ck_assert_int_ge (high, window - window / 100);
        //  Each tenth of the window holds about a tenth of the draws
        for (int bucket = 0; bucket < 10; bucket++)
            ck_assert_msg (buckets[bucket] > DRAWS / 10 * 0.9
                               && buckets[bucket] < DRAWS / 10 * 1.1,
                           "attempt %u bucket %d: %lld", attempt, bucket,
                           (long long) buckets[bucket]);
    }
}
END_TEST

START_TEST (test_decide)
{
    cw_retry_decision_t decision;
    char reason[160];
    //  Attempts 1..4 of 5 retry, the 5th is the last
    for (uint32_t attempt = 1; attempt < 5; attempt++) {
        cw_retry_decide (&s_policy, attempt, NULL, NOW_MSEC, UINT64_MAX,
                         &decision, reason, sizeof (reason));
        ck_assert_int_eq (decision.verdict, CW_RETRY_AGAIN);
        ck_assert_int_eq (
            decision.delay_msec,
            (int64_t) (UINT64_MAX
                       % ((uint64_t) cw_retry_window (&s_policy, attempt)
                          + 1)));
        ck_assert (!decision.retry_after_used);
        ck_assert (!decision.retry_after_invalid);
        ck_assert_str_eq (reason, "");
    }
    cw_retry_decide (&s_policy, 5, NULL, NOW_MSEC, 7, &decision, reason,
                     sizeof (reason));
    ck_assert_int_eq (decision.verdict, CW_RETRY_EXHAUSTED);
    //  Exhausted wins over Retry-After
    cw_retry_decide (&s_policy, 6, "1", NOW_MSEC, 7, &decision, reason,
                     sizeof (reason));
    ck_assert_int_eq (decision.verdict, CW_RETRY_EXHAUSTED);
    cw_retry_policy_t once = {100, 100, 1};
    cw_retry_decide (&once, 1, NULL, NOW_MSEC, 7, &decision, NULL, 0);
    ck_assert_int_eq (decision.verdict, CW_RETRY_EXHAUSTED);

    //  Retry-After takes precedence over the backoff...
    cw_retry_decide (&s_policy, 1, "3", NOW_MSEC, 7, &decision, reason,
                     sizeof (reason));
    ck_assert_int_eq (decision.verdict, CW_RETRY_AGAIN);
    ck_assert_int_eq (decision.delay_msec, 3000);
    ck_assert (decision.retry_after_used);
    //  ...but the cap still limits it
    cw_retry_decide (&s_policy, 1, "120", NOW_MSEC, 7, &decision, reason,
                     sizeof (reason));
    ck_assert_int_eq (decision.delay_msec, 10000);
    cw_retry_decide (&s_policy, 1, "Thu, 26 Nov 2026 20:00:04 GMT", NOW_MSEC, 7,
                     &decision, reason, sizeof (reason));
    ck_assert_int_eq (decision.delay_msec, 4000);
    ck_assert (decision.retry_after_used);
    //  A past date means now
    cw_retry_decide (&s_policy, 1, "Thu, 26 Nov 2026 19:00:00 GMT", NOW_MSEC, 7,
                     &decision, reason, sizeof (reason));
    ck_assert_int_eq (decision.delay_msec, 0);
    ck_assert (decision.retry_after_used);
    //  Garbage is ignored (backoff applies) and reported
    cw_retry_decide (&s_policy, 2, "soon", NOW_MSEC, 150, &decision, reason,
                     sizeof (reason));
    ck_assert_int_eq (decision.verdict, CW_RETRY_AGAIN);
    ck_assert_int_eq (decision.delay_msec, 150);
    ck_assert (!decision.retry_after_used);
    ck_assert (decision.retry_after_invalid);
    ck_assert_str_eq (reason, "Retry-After: not an HTTP-date: no day name "
                              "(expected e.g. \"Sun, 06 Nov 1994 08:49:37 "
                              "GMT\")");
    cw_retry_decide (&s_policy, 2, "-5", NOW_MSEC, 150, &decision, NULL, 0);
    ck_assert (decision.retry_after_invalid);
    ck_assert_int_eq (decision.delay_msec, 150);
}
END_TEST

//  Parses an HTTP-date that must be valid and returns its epoch seconds.
static int64_t
s_date (const char *text, int64_t now_msec)
{
    int64_t epoch_sec = -1;
    char reason[160] = "";
    ck_assert_msg (cw_retry_http_date_parse (text, now_msec, &epoch_sec, reason,
                                             sizeof (reason))
                       == 0,
                   "refused \"%s\": %s", text, reason);
    return epoch_sec;
}

static void
s_bad_date (const char *text, const char *expected)
{
    int64_t epoch_sec;
    char reason[160] = "";
    ck_assert_msg (cw_retry_http_date_parse (text, NOW_MSEC, &epoch_sec, reason,
                                             sizeof (reason))
                       == -1,
                   "accepted \"%s\"", text);
    ck_assert_str_eq (reason, expected);
}

START_TEST (test_http_dates)
{
    //  The three forms of RFC 9110 5.6.7, same instant
    ck_assert_int_eq (s_date ("Sun, 06 Nov 1994 08:49:37 GMT", NOW_MSEC),
                      784111777);
    ck_assert_int_eq (s_date ("Sunday, 06-Nov-94 08:49:37 GMT", NOW_MSEC),
                      784111777);
    ck_assert_int_eq (s_date ("Sun Nov  6 08:49:37 1994", NOW_MSEC), 784111777);
    ck_assert_int_eq (s_date ("Sun Nov 06 08:49:37 1994", NOW_MSEC), 784111777);
    //  Epoch, leap day, last second of 9999, every month name
    ck_assert_int_eq (s_date ("Thu, 01 Jan 1970 00:00:00 GMT", NOW_MSEC), 0);
    ck_assert_int_eq (s_date ("Tue, 29 Feb 2000 00:00:00 GMT", NOW_MSEC),
                      951782400);
    ck_assert_int_eq (s_date ("Fri, 31 Dec 9999 23:59:59 GMT", NOW_MSEC),
                      253402300799LL);
    ck_assert_int_eq (s_date ("Thu, 26 Nov 2026 20:00:00 GMT", NOW_MSEC),
                      NOW_MSEC / 1000);
    const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t previous = 0;
    for (int month = 0; month < 12; month++) {
        char text[40];
        snprintf (text, sizeof (text), "Mon, 01 %s 2024 00:00:00 GMT",
                  months[month]);
        int64_t epoch_sec = s_date (text, NOW_MSEC);
        ck_assert_int_gt (epoch_sec, previous);
        previous = epoch_sec;
    }
    //  RFC 850 two-digit years: no more than 50 years ahead of now
    ck_assert_int_eq (s_date ("Monday, 01-Jan-80 00:00:00 GMT", NOW_MSEC),
                      315532800);
    ck_assert_int_eq (s_date ("Monday, 01-Jan-80 00:00:00 GMT",
                              2208988800000LL),  //  2040-01-01
                      3471292800LL);
    ck_assert_int_eq (s_date ("Saturday, 01-Jan-00 00:00:00 GMT", NOW_MSEC),
                      946684800);

    s_bad_date ("", "not an HTTP-date: no day name (expected e.g. \"Sun, 06 "
                    "Nov 1994 08:49:37 GMT\")");
    s_bad_date ("Sun, 06 Nov 1994 08:49:37 UTC",
                "malformed IMF-fixdate (expected e.g. \"Sun, 06 Nov 1994 "
                "08:49:37 GMT\")");
    s_bad_date ("Sun, 06 Nov 1994 08:49:37 GMT ",
                "malformed IMF-fixdate (expected e.g. \"Sun, 06 Nov 1994 "
                "08:49:37 GMT\")");
    s_bad_date ("Sun, 6 Nov 1994 08:49:37 GMT",
                "malformed IMF-fixdate (expected e.g. \"Sun, 06 Nov 1994 "
                "08:49:37 GMT\")");
    s_bad_date ("sun, 06 Nov 1994 08:49:37 GMT",
                "not an HTTP-date: no day name (expected e.g. \"Sun, 06 "
                "Nov 1994 08:49:37 GMT\")");
    s_bad_date ("Sun, 06 nov 1994 08:49:37 GMT",
                "malformed IMF-fixdate (expected e.g. \"Sun, 06 Nov 1994 "
                "08:49:37 GMT\")");
    s_bad_date ("Sun, 06 Nov 94 08:49:37 GMT",
                "malformed IMF-fixdate (expected e.g. \"Sun, 06 Nov 1994 "
                "08:49:37 GMT\")");
    s_bad_date ("Sunday, 06-Nov-1994 08:49:37 GMT",
                "malformed RFC 850 date (expected e.g. \"Sun, 06 Nov 1994 "
                "08:49:37 GMT\")");
    s_bad_date ("Sun Nov 6 08:49:37 1994",
                "malformed asctime date (expected e.g. \"Sun, 06 Nov 1994 "
                "08:49:37 GMT\")");
    s_bad_date ("Sun Nov  6 08:49 1994",
                "malformed asctime date (expected e.g. \"Sun, 06 Nov 1994 "
                "08:49:37 GMT\")");
    s_bad_date ("Mon, 30 Feb 2024 00:00:00 GMT",
                "IMF-fixdate out of range (day, hour, minute or second)");
    s_bad_date ("Mon, 29 Feb 2100 00:00:00 GMT",
                "IMF-fixdate out of range (day, hour, minute or second)");
    s_bad_date ("Mon, 00 Jan 2024 00:00:00 GMT",
                "IMF-fixdate out of range (day, hour, minute or second)");
    s_bad_date ("Mon, 01 Jan 2024 24:00:00 GMT",
                "IMF-fixdate out of range (day, hour, minute or second)");
    s_bad_date ("Mon, 01 Jan 2024 00:60:00 GMT",
                "IMF-fixdate out of range (day, hour, minute or second)");
    s_bad_date ("Mon, 01 Jan 2024 00:00:61 GMT",
                "IMF-fixdate out of range (day, hour, minute or second)");
    s_bad_date ("Sunday, 31-Apr-94 00:00:00 GMT",
                "RFC 850 date out of range (day, hour, minute or second)");
}
END_TEST

START_TEST (test_retry_after)
{
    int64_t delay = -1;
    char reason[160];
    ck_assert_int_eq (
        cw_retry_after_parse ("120", NOW_MSEC, &delay, reason, sizeof (reason)),
        0);
    ck_assert_int_eq (delay, 120000);
    ck_assert_int_eq (cw_retry_after_parse (" \t0 ", NOW_MSEC, &delay, reason,
                                            sizeof (reason)),
                      0);
    ck_assert_int_eq (delay, 0);
    //  Huge delta-seconds saturate instead of overflowing
    ck_assert_int_eq (cw_retry_after_parse ("9223372036854775807", NOW_MSEC,
                                            &delay, reason, sizeof (reason)),
                      0);
    ck_assert_int_eq (delay, INT64_MAX);
    ck_assert_int_eq (
        cw_retry_after_parse ("99999999999999999999999999999999999999999999",
                              NOW_MSEC, &delay, reason, sizeof (reason)),
        0);
    ck_assert_int_eq (delay, INT64_MAX);
    ck_assert_int_eq (cw_retry_after_parse ("9223372036854775", NOW_MSEC,
                                            &delay, reason, sizeof (reason)),
                      0);
    ck_assert_int_eq (delay, 9223372036854775000LL);
    //  Dates relative to now, past dates are 0
    ck_assert_int_eq (cw_retry_after_parse ("Thu, 26 Nov 2026 20:01:00 GMT",
                                            NOW_MSEC + 500, &delay, reason,
                                            sizeof (reason)),
                      0);
    ck_assert_int_eq (delay, 59500);
    ck_assert_int_eq (cw_retry_after_parse ("Sun, 06 Nov 1994 08:49:37 GMT",
                                            NOW_MSEC, &delay, reason,
                                            sizeof (reason)),
                      0);
    ck_assert_int_eq (delay, 0);
    //  Now far in the past: no overflow
    ck_assert_int_eq (cw_retry_after_parse ("Fri, 31 Dec 9999 23:59:59 GMT",
                                            INT64_MIN, &delay, reason,
                                            sizeof (reason)),
                      0);
    ck_assert_int_eq (delay, INT64_MAX);
    //  Garbage
    const char *garbage[] = {"",    "   ", "-1",   "+1",       "1.5",
                             "10s", "1 2", "0x10", "tomorrow", NULL};
    for (int index = 0; garbage[index]; index++)
        ck_assert_msg (cw_retry_after_parse (garbage[index], NOW_MSEC, &delay,
                                             reason, sizeof (reason))
                           == -1,
                       "accepted \"%s\"", garbage[index]);
    ck_assert_int_eq (
        cw_retry_after_parse ("", NOW_MSEC, &delay, reason, sizeof (reason)),
        -1);
    ck_assert_str_eq (reason, "Retry-After: empty");
    ck_assert_int_eq (
        cw_retry_after_parse ("1.5", NOW_MSEC, &delay, reason, sizeof (reason)),
        -1);
    ck_assert_str_eq (reason, "Retry-After: not delta-seconds (digits only)");
    char long_text[100];
    memset (long_text, 'S', sizeof (long_text) - 1);
    long_text[sizeof (long_text) - 1] = 0;
    ck_assert_int_eq (cw_retry_after_parse (long_text, NOW_MSEC, &delay, reason,
                                            sizeof (reason)),
                      -1);
    ck_assert_str_eq (reason, "Retry-After: too long for an HTTP-date");
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_retry");
    TCase *backoff = tcase_create ("backoff");
    tcase_set_timeout (backoff, 20);
    tcase_add_test (backoff, test_policy_check);
    tcase_add_test (backoff, test_window);
    tcase_add_test (backoff, test_rng);
    tcase_add_test (backoff, test_jitter_statistics);
    tcase_add_test (backoff, test_decide);
    suite_add_tcase (suite, backoff);
    TCase *retry_after = tcase_create ("retry_after");
    tcase_set_timeout (retry_after, 10);
    tcase_add_test (retry_after, test_http_dates);
    tcase_add_test (retry_after, test_retry_after);
    suite_add_tcase (suite, retry_after);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
