/*  =========================================================================
    cw_retry - exponential backoff with full jitter, and Retry-After

    See cw_retry.h and docs/retry.md.
    =========================================================================
*/
#include "cw_retry.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define CW_RETRY_MSEC_PER_SEC 1000
#define CW_RETRY_SEC_PER_DAY 86400
#define CW_RETRY_GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL
#define CW_RETRY_YEAR_AHEAD 50  //  RFC 850 years: at most this far ahead

static const char *const s_months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
static const char *const s_days[] = {"Mon", "Tue", "Wed", "Thu",
                                     "Fri", "Sat", "Sun"};
static const char *const s_long_days[] = {"Monday",   "Tuesday", "Wednesday",
                                          "Thursday", "Friday",  "Saturday",
                                          "Sunday"};
#define CW_RETRY_DAY_NAMES 7
#define CW_RETRY_DATE_MAX 40  //  Longest HTTP-date accepted, bytes
#define CW_RETRY_MONTHS 12

static void
s_reason (char *reason, size_t size, const char *text)
{
    if (reason && size)
        snprintf (reason, size, "%s", text);
}

int
cw_retry_policy_check (const cw_retry_policy_t *policy,
                       char *reason,
                       size_t size)
{
    assert (policy);
    char text[128];
    if (policy->base_msec < 1) {
        snprintf (text, sizeof (text), "field \"base_msec\": %lld is below 1",
                  (long long) policy->base_msec);
        s_reason (reason, size, text);
        return -1;
    }
    if (policy->cap_msec < policy->base_msec) {
        snprintf (text, sizeof (text),
                  "field \"cap_msec\": %lld is below base_msec %lld",
                  (long long) policy->cap_msec, (long long) policy->base_msec);
        s_reason (reason, size, text);
        return -1;
    }
    if (policy->max_attempts < 1) {
        s_reason (reason, size, "field \"max_attempts\": 0 is below 1");
        return -1;
    }
    return 0;
}

void
cw_retry_rng_seed (cw_retry_rng_t *rng, uint64_t seed)
{
    assert (rng);
    rng->state = seed;
}

uint64_t
cw_retry_rng_next (cw_retry_rng_t *rng)
{
    assert (rng);
    //  splitmix64 (Steele, Lea, Flood 2014; Vigna's reference code)
    uint64_t z = (rng->state += CW_RETRY_GOLDEN_GAMMA);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int64_t
cw_retry_window (const cw_retry_policy_t *policy, uint32_t attempt)
{
    assert (policy);
    assert (cw_retry_policy_check (policy, NULL, 0) == 0);
    assert (attempt >= 1);
    uint32_t shift = attempt - 1;
    //  base * 2^shift > cap exactly when base > floor (cap / 2^shift)
    if (shift >= 63 || policy->base_msec > (policy->cap_msec >> shift))
        return policy->cap_msec;
    return policy->base_msec << shift;
}

int64_t
cw_retry_backoff (const cw_retry_policy_t *policy,
                  uint32_t attempt,
                  uint64_t random)
{
    uint64_t window = (uint64_t) cw_retry_window (policy, attempt);
    return (int64_t) (random % (window + 1));
}

//  Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
static int64_t
s_days_from_civil (int64_t year, int month, int day)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year =
        (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t day_of_era =
        year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

//  Gregorian year of a day count since 1970-01-01 (H. Hinnant).
static int64_t
s_year_from_days (int64_t days)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t day_of_era = days - era * 146097;
    int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524
                           - day_of_era / 146096)
                          / 365;
    int64_t day_of_year =
        day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t month_index = (5 * day_of_year + 2) / 153;
    return year_of_era + era * 400 + (month_index >= 10);
}

static int
s_days_in_month (int64_t year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

//  Reading position in an HTTP-date.
typedef struct {
    const char *at;  //  Next byte
} s_cursor_t;

static bool
s_literal (s_cursor_t *cursor, const char *text)
{
    size_t length = strlen (text);
    if (strncmp (cursor->at, text, length))
        return false;
    cursor->at += length;
    return true;
}

//  Reads exactly count digits (a leading space counts as a zero when
//  space_ok, for asctime's day).
static bool
s_digits (s_cursor_t *cursor, int count, bool space_ok, int *value)
{
    int result = 0;
    for (int index = 0; index < count; index++) {
        char byte = cursor->at[index];
        if (index == 0 && space_ok && byte == ' ')
            continue;
        if (byte < '0' || byte > '9')
            return false;
        result = result * 10 + (byte - '0');
    }
    cursor->at += count;
    *value = result;
    return true;
}

//  Matches one name of a table; returns its index or -1.
static int
s_name (s_cursor_t *cursor, const char *const *names, int count)
{
    for (int index = 0; index < count; index++)
        if (s_literal (cursor, names[index]))
            return index;
    return -1;
}

static bool
s_time_of_day (s_cursor_t *cursor, int *hour, int *minute, int *second)
{
    return s_digits (cursor, 2, false, hour) && s_literal (cursor, ":")
           && s_digits (cursor, 2, false, minute) && s_literal (cursor, ":")
           && s_digits (cursor, 2, false, second);
}

int
cw_retry_http_date_parse (const char *text,
                          int64_t now_msec,
                          int64_t *epoch_sec,
                          char *reason,
                          size_t size)
{
    assert (text);
    assert (epoch_sec);
    s_cursor_t cursor = {text};
    int day = 0, month = 0, year = 0, hour = 0, minute = 0, second = 0;
    bool parsed = false;
    const char *form = "IMF-fixdate";

    if (s_name (&cursor, s_long_days, CW_RETRY_DAY_NAMES) >= 0) {
        //  RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        form = "RFC 850 date";
        int short_year = 0;
        parsed =
            s_literal (&cursor, ", ") && s_digits (&cursor, 2, false, &day)
            && s_literal (&cursor, "-")
            && (month = s_name (&cursor, s_months, CW_RETRY_MONTHS) + 1) > 0
            && s_literal (&cursor, "-")
            && s_digits (&cursor, 2, false, &short_year)
            && s_literal (&cursor, " ")
            && s_time_of_day (&cursor, &hour, &minute, &second)
            && s_literal (&cursor, " GMT") && *cursor.at == 0;
        if (parsed) {
            int64_t now_days =
                now_msec / CW_RETRY_MSEC_PER_SEC / CW_RETRY_SEC_PER_DAY;
            if (now_msec < 0)
                now_days--;
            int64_t now_year = s_year_from_days (now_days);
            int64_t candidate = now_year - now_year % 100 + short_year;
            if (candidate > now_year + CW_RETRY_YEAR_AHEAD)
                candidate -= 100;
            else if (candidate + 100 <= now_year + CW_RETRY_YEAR_AHEAD)
                candidate += 100;
            year = (int) candidate;
        }
    }
    else if (s_name (&cursor, s_days, CW_RETRY_DAY_NAMES) >= 0) {
        if (*cursor.at == ',') {
            //  IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            parsed =
                s_literal (&cursor, ", ") && s_digits (&cursor, 2, false, &day)
                && s_literal (&cursor, " ")
                && (month = s_name (&cursor, s_months, CW_RETRY_MONTHS) + 1) > 0
                && s_literal (&cursor, " ")
                && s_digits (&cursor, 4, false, &year)
                && s_literal (&cursor, " ")
                && s_time_of_day (&cursor, &hour, &minute, &second)
                && s_literal (&cursor, " GMT") && *cursor.at == 0;
        }
        else {
            //  asctime: Sun Nov  6 08:49:37 1994
            form = "asctime date";
            parsed =
                s_literal (&cursor, " ")
                && (month = s_name (&cursor, s_months, CW_RETRY_MONTHS) + 1) > 0
                && s_literal (&cursor, " ") && s_digits (&cursor, 2, true, &day)
                && s_literal (&cursor, " ")
                && s_time_of_day (&cursor, &hour, &minute, &second)
                && s_literal (&cursor, " ")
                && s_digits (&cursor, 4, false, &year) && *cursor.at == 0;
        }
    }
    else {
        s_reason (reason, size,
                  "not an HTTP-date: no day name (expected e.g. \"Sun, 06 "
                  "Nov 1994 08:49:37 GMT\")");
        return -1;
    }
    char text_reason[96];
    if (!parsed) {
        snprintf (text_reason, sizeof (text_reason),
                  "malformed %s (expected e.g. \"Sun, 06 Nov 1994 08:49:37 "
                  "GMT\")",
                  form);
        s_reason (reason, size, text_reason);
        return -1;
    }
    if (day < 1 || day > s_days_in_month (year, month) || hour > 23
        || minute > 59 || second > 60) {
        snprintf (text_reason, sizeof (text_reason),
                  "%s out of range (day, hour, minute or second)", form);
        s_reason (reason, size, text_reason);
        return -1;
    }
    *epoch_sec = s_days_from_civil (year, month, day) * CW_RETRY_SEC_PER_DAY
                 + hour * 3600 + minute * 60 + second;
    return 0;
}

int
cw_retry_after_parse (const char *value,
                      int64_t now_msec,
                      int64_t *delay_msec,
                      char *reason,
                      size_t size)
{
    assert (value);
    assert (delay_msec);
    //  Trim optional whitespace around the field value
    while (*value == ' ' || *value == '\t')
        value++;
    size_t length = strlen (value);
    while (length && (value[length - 1] == ' ' || value[length - 1] == '\t'))
        length--;
    if (length == 0) {
        s_reason (reason, size, "Retry-After: empty");
        return -1;
    }
    if (value[0] >= '0' && value[0] <= '9') {
        //  delta-seconds = 1*DIGIT; large values saturate
        int64_t seconds = 0;
        for (size_t at = 0; at < length; at++) {
            if (value[at] < '0' || value[at] > '9') {
                s_reason (reason, size,
                          "Retry-After: not delta-seconds (digits only)");
                return -1;
            }
            if (seconds <= INT64_MAX / CW_RETRY_MSEC_PER_SEC)
                seconds = seconds * 10 + (value[at] - '0');
        }
        *delay_msec = seconds > INT64_MAX / CW_RETRY_MSEC_PER_SEC
                          ? INT64_MAX
                          : seconds * CW_RETRY_MSEC_PER_SEC;
        return 0;
    }
    char text[CW_RETRY_DATE_MAX + 1];
    if (length > CW_RETRY_DATE_MAX) {
        s_reason (reason, size, "Retry-After: too long for an HTTP-date");
        return -1;
    }
    memcpy (text, value, length);
    text[length] = 0;
    int64_t epoch_sec;
    char date_reason[128];
    if (cw_retry_http_date_parse (text, now_msec, &epoch_sec, date_reason,
                                  sizeof (date_reason))) {
        if (reason && size)
            snprintf (reason, size, "Retry-After: %s", date_reason);
        return -1;
    }
    int64_t date_msec = epoch_sec * CW_RETRY_MSEC_PER_SEC;
    if (now_msec >= date_msec)
        *delay_msec = 0;
    else if (now_msec < 0 && date_msec > INT64_MAX + now_msec)
        *delay_msec = INT64_MAX;
    else
        *delay_msec = date_msec - now_msec;
    return 0;
}

void
cw_retry_decide (const cw_retry_policy_t *policy,
                 uint32_t attempt,
                 const char *retry_after,
                 int64_t now_msec,
                 uint64_t random,
                 cw_retry_decision_t *decision,
                 char *reason,
                 size_t size)
{
    assert (policy);
    assert (cw_retry_policy_check (policy, NULL, 0) == 0);
    assert (attempt >= 1);
    assert (decision);
    memset (decision, 0, sizeof (*decision));
    if (reason && size)
        reason[0] = 0;
    if (attempt >= policy->max_attempts) {
        decision->verdict = CW_RETRY_EXHAUSTED;
        return;
    }
    decision->verdict = CW_RETRY_AGAIN;
    if (retry_after) {
        int64_t delay;
        if (cw_retry_after_parse (retry_after, now_msec, &delay, reason, size)
            == 0) {
            decision->retry_after_used = true;
            decision->delay_msec =
                delay < policy->cap_msec ? delay : policy->cap_msec;
            return;
        }
        decision->retry_after_invalid = true;
    }
    decision->delay_msec = cw_retry_backoff (policy, attempt, random);
}
