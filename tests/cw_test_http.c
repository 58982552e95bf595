/*  =========================================================================
    cw_test_http - HTTP requests from tests to servers on 127.0.0.1
    =========================================================================
*/
#include "cw_test_http.h"
#include "cw_test.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_URL_SIZE 1024

static size_t
s_write (char *data, size_t size, size_t count, void *arg)
{
    cw_test_reply_t *reply = (cw_test_reply_t *) arg;
    size_t bytes = size * count;
    char *body = (char *) realloc (reply->body, reply->size + bytes + 1);
    assert (body);
    reply->body = body;
    memcpy (reply->body + reply->size, data, bytes);
    reply->size += bytes;
    reply->body[reply->size] = '\0';
    return bytes;
}

//  Copies the value of header name from line into target, when line is
//  that header; leading blanks and the line end are dropped.
static void
s_copy_header (char *target,
               size_t size,
               const char *line,
               size_t length,
               const char *name)
{
    size_t name_length = strlen (name);
    if (length > name_length + 1 && strncasecmp (line, name, name_length) == 0
        && line[name_length] == ':') {
        const char *value = line + name_length + 1;
        while (*value == ' ')
            value++;
        size_t value_length = length - (size_t) (value - line);
        while (value_length
               && (value[value_length - 1] == '\r'
                   || value[value_length - 1] == '\n'))
            value_length--;
        snprintf (target, size, "%.*s", (int) value_length, value);
    }
}

static size_t
s_header (char *data, size_t size, size_t count, void *arg)
{
    cw_test_reply_t *reply = (cw_test_reply_t *) arg;
    size_t bytes = size * count;
    s_copy_header (reply->content_type, sizeof (reply->content_type), data,
                   bytes, "Content-Type");
    s_copy_header (reply->correlation_id, sizeof (reply->correlation_id), data,
                   bytes, "X-Correlation-ID");
    s_copy_header (reply->retry_after, sizeof (reply->retry_after), data, bytes,
                   "Retry-After");
    s_copy_header (reply->replayed, sizeof (reply->replayed), data, bytes,
                   "Idempotent-Replayed");
    s_copy_header (reply->allow, sizeof (reply->allow), data, bytes, "Allow");
    return bytes;
}

CURL *
cw_test_http_easy (int port,
                   const char *method,
                   const char *path,
                   const char *body,
                   struct curl_slist *headers,
                   long timeout_msec,
                   cw_test_reply_t *reply)
{
    assert (method);
    assert (path);
    assert (reply);
    memset (reply, 0, sizeof (*reply));
    char url[S_URL_SIZE];
    snprintf (url, sizeof (url), "http://127.0.0.1:%d%s", port, path);
    CURL *curl = curl_easy_init ();
    assert (curl);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS,
                      timeout_msec ? timeout_msec : CW_TEST_HTTP_TIMEOUT_MSEC);
    if (body)
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
    if (headers)
        curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, reply);
    return curl;
}

void
cw_test_http (int port,
              const char *method,
              const char *path,
              const char *body,
              struct curl_slist *headers,
              long timeout_msec,
              cw_test_reply_t *reply)
{
    CURL *curl = cw_test_http_easy (port, method, path, body, headers,
                                    timeout_msec, reply);
    long long start = cw_test_now_msec ();
    reply->code = curl_easy_perform (curl);
    reply->msec = cw_test_now_msec () - start;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &reply->status);
    curl_easy_cleanup (curl);
}

void
cw_test_reply_free (cw_test_reply_t *reply)
{
    assert (reply);
    free (reply->body);
    reply->body = NULL;
}
