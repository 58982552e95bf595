/*  =========================================================================
    cw_test_http - HTTP requests from tests to servers on 127.0.0.1, with
    the reply body and the headers tests look at captured

    Kept apart from cw_test.h so that only the suites that speak HTTP need
    libcurl's headers; both live in tests/libcwtest.a.
    =========================================================================
*/
#ifndef CW_TEST_HTTP_H_INCLUDED
#define CW_TEST_HTTP_H_INCLUDED

#include <curl/curl.h>

#define CW_TEST_HTTP_TIMEOUT_MSEC 10000L  //  Default transfer timeout

//  One reply. Header values are empty when the header was absent.
typedef struct {
    long status;               //  HTTP status, 0 when none
    CURLcode code;             //  curl result
    char *body;                //  Body, NUL-terminated, NULL when empty
    size_t size;               //  Its size
    char content_type[128];    //  Content-Type
    char correlation_id[160];  //  X-Correlation-ID
    char retry_after[32];      //  Retry-After
    char replayed[16];         //  Idempotent-Replayed
    char allow[128];           //  Allow (on 405)
    long long msec;            //  Time the transfer took (cw_test_http)
} cw_test_reply_t;

//  Prepares, without performing, method on http://127.0.0.1:port path.
//  body (NULL: none) and headers (NULL: none) are borrowed until the
//  handle is cleaned up; timeout_msec 0 means CW_TEST_HTTP_TIMEOUT_MSEC.
//  Clears reply, which receives the body and headers. For curl multi
//  tests; caller cleans up the handle and frees reply->body.
CURL *
    cw_test_http_easy (int port,
                       const char *method,
                       const char *path,
                       const char *body,
                       struct curl_slist *headers,
                       long timeout_msec,
                       cw_test_reply_t *reply);

//  Performs one request as cw_test_http_easy prepares it and fills
//  reply: code, status, msec, body and headers. Caller frees reply->body.
void
    cw_test_http (int port,
                  const char *method,
                  const char *path,
                  const char *body,
                  struct curl_slist *headers,
                  long timeout_msec,
                  cw_test_reply_t *reply);

//  Frees the reply's body and sets it to NULL; harmless twice.
void
    cw_test_reply_free (cw_test_reply_t *reply);

#endif
