/*  =========================================================================
    cw_log - structured logging: one JSON object per line on stderr
    =========================================================================
*/
#include "cw_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CW_LOG_MAX_PAIRS 32     //  Context pairs taken from one call
#define CW_LOG_PROGRAM_MAX 64   //  Longest program name kept

static char s_program[CW_LOG_PROGRAM_MAX] = "causeway";
static cw_log_level_t s_level = CW_LOG_INFO;
static FILE *s_stream = NULL;

static const char *s_level_names[] = {"debug", "info", "warn", "error",
                                      "fatal"};

//  Keys whose values never reach a log line.
static const char *s_secret_words[] = {"password", "secret", "token",
                                       "authorization", "api_key",
                                       "cookie", "private_key", NULL};

//  A growable string buffer, local to this module.
typedef struct {
    char *data;
    size_t size;
    size_t limit;
} s_buf_t;

static void
s_buf_reserve (s_buf_t *buf, size_t more)
{
    if (buf->size + more + 1 <= buf->limit)
        return;
    size_t limit = buf->limit ? buf->limit : 256;
    while (buf->size + more + 1 > limit)
        limit *= 2;
    char *data = (char *) realloc (buf->data, limit);
    if (!data)
        abort ();
    buf->data = data;
    buf->limit = limit;
}

static void
s_buf_add (s_buf_t *buf, const char *text, size_t length)
{
    s_buf_reserve (buf, length);
    memcpy (buf->data + buf->size, text, length);
    buf->size += length;
    buf->data[buf->size] = 0;
}

static void
s_buf_puts (s_buf_t *buf, const char *text)
{
    s_buf_add (buf, text, strlen (text));
}

size_t
cw_log_utf8_length (const char *text)
{
    const unsigned char *cursor = (const unsigned char *) text;
    unsigned char byte = cursor[0];
    if (byte < 0x80)
        return byte ? 1 : 0;
    size_t length = byte >= 0xf0 && byte <= 0xf4   ? 4
                    : byte >= 0xe0 && byte <= 0xef ? 3
                    : byte >= 0xc2 && byte <= 0xdf ? 2
                                                   : 0;
    unsigned char low = byte == 0xe0 ? 0xa0 : byte == 0xf0 ? 0x90 : 0x80;
    unsigned char high = byte == 0xed ? 0x9f : byte == 0xf4 ? 0x8f : 0xbf;
    if (length && (cursor[1] < low || cursor[1] > high))
        return 0;
    for (size_t index = 2; index < length; index++)
        if ((cursor[index] & 0xc0) != 0x80)
            return 0;
    return length;
}

char *
cw_log_utf8_repaired (const char *text)
{
    size_t size = strlen (text);
    char *copy = (char *) malloc (size + 1);
    if (!copy)
        abort ();
    for (size_t at = 0; at < size;) {
        size_t length = cw_log_utf8_length (text + at);
        if (length) {
            memcpy (copy + at, text + at, length);
            at += length;
        }
        else
            copy[at++] = '?';
    }
    copy[size] = 0;
    return copy;
}

//  Appends text as a JSON string, quotes included. Invalid UTF-8 bytes are
//  written as \u00XX so the line stays valid JSON.
static void
s_buf_json_string (s_buf_t *buf, const char *text)
{
    s_buf_add (buf, "\"", 1);
    const unsigned char *cursor = (const unsigned char *) text;
    while (*cursor) {
        unsigned char byte = *cursor;
        char escape[8];
        if (byte == '"' || byte == '\\') {
            escape[0] = '\\';
            escape[1] = (char) byte;
            s_buf_add (buf, escape, 2);
            cursor++;
        }
        else
        if (byte == '\n')
            s_buf_add (buf, "\\n", 2), cursor++;
        else
        if (byte == '\r')
            s_buf_add (buf, "\\r", 2), cursor++;
        else
        if (byte == '\t')
            s_buf_add (buf, "\\t", 2), cursor++;
        else
        if (byte < 0x20 || byte == 0x7f) {
            snprintf (escape, sizeof (escape), "\\u%04x", byte);
            s_buf_add (buf, escape, 6);
            cursor++;
        }
        else
        if (byte < 0x80)
            s_buf_add (buf, (const char *) cursor++, 1);
        else {
            //  Multi-byte UTF-8: a complete, well-formed sequence is copied
            size_t length = cw_log_utf8_length ((const char *) cursor);
            if (length) {
                s_buf_add (buf, (const char *) cursor, length);
                cursor += length;
            }
            else {
                snprintf (escape, sizeof (escape), "\\u%04x", byte);
                s_buf_add (buf, escape, 6);
                cursor++;
            }
        }
    }
    s_buf_add (buf, "\"", 1);
}

static bool
s_is_secret_key (const char *key)
{
    for (int index = 0; s_secret_words[index]; index++) {
        const char *word = s_secret_words[index];
        size_t length = strlen (word);
        for (const char *at = key; *at; at++)
            if (strncasecmp (at, word, length) == 0)
                return true;
    }
    return false;
}

static bool
s_is_number (const char *text)
{
    //  RFC 8259 number: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?
    const char *at = text;
    if (*at == '-')
        at++;
    if (*at == '0')
        at++;
    else
    if (*at >= '1' && *at <= '9')
        while (*at >= '0' && *at <= '9')
            at++;
    else
        return false;
    if (*at == '.') {
        at++;
        if (*at < '0' || *at > '9')
            return false;
        while (*at >= '0' && *at <= '9')
            at++;
    }
    if (*at == 'e' || *at == 'E') {
        at++;
        if (*at == '+' || *at == '-')
            at++;
        if (*at < '0' || *at > '9')
            return false;
        while (*at >= '0' && *at <= '9')
            at++;
    }
    if (*at)
        return false;
    //  Out of double range: kept as a string
    errno = 0;
    strtod (text, NULL);
    return errno == 0;
}

void
cw_log_init (const char *program, cw_log_level_t level)
{
    if (program)
        snprintf (s_program, sizeof (s_program), "%s", program);
    s_level = level;
}

void
cw_log_set_level (cw_log_level_t level)
{
    s_level = level;
}

void
cw_log_set_stream (FILE *stream)
{
    s_stream = stream;
}

int
cw_log_level_parse (const char *text, cw_log_level_t *level)
{
    if (!text)
        return -1;
    for (int index = CW_LOG_DEBUG; index <= CW_LOG_FATAL; index++)
        if (strcmp (text, s_level_names[index]) == 0) {
            *level = (cw_log_level_t) index;
            return 0;
        }
    return -1;
}

const char *
cw_log_level_name (cw_log_level_t level)
{
    if (level < CW_LOG_DEBUG || level > CW_LOG_FATAL)
        return "unknown";
    return s_level_names[level];
}

char *
cw_log_format (int64_t ts_msec, cw_log_level_t level, const char *event,
               const char *msg, const char *const *pairs)
{
    s_buf_t buf = {NULL, 0, 0};
    time_t seconds = (time_t) (ts_msec / 1000);
    struct tm utc;
    gmtime_r (&seconds, &utc);
    char stamp[96];
    snprintf (stamp, sizeof (stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
              utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
              utc.tm_min, utc.tm_sec, (int) (ts_msec % 1000));
    s_buf_puts (&buf, "{\"ts\":\"");
    s_buf_puts (&buf, stamp);
    s_buf_puts (&buf, "\",\"level\":\"");
    s_buf_puts (&buf, cw_log_level_name (level));
    s_buf_puts (&buf, "\",\"program\":");
    s_buf_json_string (&buf, s_program);
    s_buf_puts (&buf, ",\"event\":");
    s_buf_json_string (&buf, event ? event : "unknown");
    if (msg) {
        s_buf_puts (&buf, ",\"msg\":");
        s_buf_json_string (&buf, msg);
    }
    for (int index = 0; pairs && pairs[index]; index += 2) {
        const char *key = pairs[index];
        const char *value = pairs[index + 1];
        if (!value)
            continue;
        bool numeric = key[0] == '#';
        if (numeric)
            key++;
        s_buf_add (&buf, ",", 1);
        s_buf_json_string (&buf, key);
        s_buf_add (&buf, ":", 1);
        if (s_is_secret_key (key))
            s_buf_puts (&buf, "\"[redacted]\"");
        else
        if (numeric && s_is_number (value))
            s_buf_puts (&buf, value);
        else
            s_buf_json_string (&buf, value);
    }
    s_buf_add (&buf, "}", 1);
    return buf.data;
}

void
cw_log (cw_log_level_t level, const char *event, const char *msg, ...)
{
    if (level < s_level)
        return;
    int saved_errno = errno;
    const char *pairs[CW_LOG_MAX_PAIRS * 2 + 1];
    int count = 0;
    va_list args;
    va_start (args, msg);
    while (count < CW_LOG_MAX_PAIRS * 2) {
        const char *key = va_arg (args, const char *);
        if (!key)
            break;
        pairs[count++] = key;
        pairs[count++] = va_arg (args, const char *);
    }
    va_end (args);
    pairs[count] = NULL;

    struct timeval now;
    gettimeofday (&now, NULL);
    int64_t ts_msec = (int64_t) now.tv_sec * 1000 + now.tv_usec / 1000;
    char *line = cw_log_format (ts_msec, level, event, msg, pairs);
    FILE *stream = s_stream ? s_stream : stderr;
    //  One write per line, so lines from threads never interleave.
    size_t length = strlen (line);
    line[length] = '\n';
    fwrite (line, 1, length + 1, stream);
    fflush (stream);
    free (line);
    errno = saved_errno;
}

void
cw_log_time_usec (int64_t usec, char *text, size_t size)
{
    time_t seconds = (time_t) (usec / 1000000);
    struct tm utc;
    gmtime_r (&seconds, &utc);
    size_t length = strftime (text, size, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf (text + length, size - length, ".%06dZ", (int) (usec % 1000000));
}
