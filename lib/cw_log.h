/*  =========================================================================
    cw_log - structured logging: one JSON object per line on stderr

    Every line carries ts, level, program, event and msg, then context
    pairs in the order given. Keys and values are JSON-escaped. Values of
    keys that name secrets (password, secret, token, authorization,
    api_key, cookie) are replaced by "[redacted]". A key that starts with
    '#' marks a numeric value: it is written as a JSON number (without the
    '#') when it parses as one, as a string otherwise.

        cw_log (CW_LOG_INFO, "job_dispatched", "dispatched job",
                "job_id", "42", "#attempt", "2", NULL);
    =========================================================================
*/
#ifndef CW_LOG_H_INCLUDED
#define CW_LOG_H_INCLUDED

#include <stdint.h>
#include <stdio.h>

typedef enum {
    CW_LOG_DEBUG,
    CW_LOG_INFO,
    CW_LOG_WARN,
    CW_LOG_ERROR,
    CW_LOG_FATAL
} cw_log_level_t;

//  Sets the program name written on every line and the lowest level that
//  is written. May be called again (e.g. on SIGHUP).
void
    cw_log_init (const char *program, cw_log_level_t level);

//  Sets the lowest level written.
void
    cw_log_set_level (cw_log_level_t level);

//  Sends lines to another stream (tests); NULL restores stderr.
void
    cw_log_set_stream (FILE *stream);

//  Parses "debug", "info", "warn", "error" or "fatal". Returns 0 and sets
//  *level, or -1 for any other text.
int
    cw_log_level_parse (const char *text, cw_log_level_t *level);

//  Returns the level's name.
const char *
    cw_log_level_name (cw_log_level_t level);

//  Writes one line: event is a stable snake_case id, msg a short lower-case
//  sentence; then key, value pairs ending with NULL. A pair whose value is
//  NULL is omitted. errno is preserved.
void
    cw_log (cw_log_level_t level, const char *event, const char *msg, ...);

//  Writes the time usec (microseconds since the epoch) as RFC 3339 UTC to
//  the microsecond, "2026-11-27T04:30:00.123456Z", into text (at least
//  CW_LOG_TIME_SIZE bytes): for fields that need finer than ts.
#define CW_LOG_TIME_SIZE 32
void
    cw_log_time_usec (int64_t usec, char *text, size_t size);

//  The length of the well-formed UTF-8 character at text (RFC 3629: no
//  overlong forms, surrogates or code points past U+10FFFF): 1 to 4, or
//  0 when text does not start one (a stray byte, a character cut short).
//  The one UTF-8 rule of lib/ and the programs: log lines escape what it
//  refuses, JSON texts replace it (cw_log_utf8_repaired).
size_t
    cw_log_utf8_length (const char *text);

//  A copy of text in which every byte that starts no well-formed UTF-8
//  character is '?' (jansson refuses such text, so a message cut in the
//  middle of a character would otherwise vanish). Caller frees.
char *
    cw_log_utf8_repaired (const char *text);

//  Formats one log line into a fresh string without the final newline
//  (the same rules as cw_log; ts is the given time in msec since the
//  epoch). Caller owns return value and must free it.
char *
    cw_log_format (int64_t ts_msec, cw_log_level_t level, const char *event,
                   const char *msg, const char *const *pairs);

#endif
