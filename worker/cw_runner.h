/*  =========================================================================
    cw_runner - many HTTP calls at once through one libcurl multi handle

    One multi handle, a pool of easy handles reused from call to call, so
    connections to the same host are kept alive and reused. The runner
    does not own a poll loop: the caller asks it for its sockets as
    zmq_pollitem_t entries (cw_runner_pollitems) and the time until curl
    wants to be called (cw_runner_timeout), polls them together with its
    ZeroMQ sockets (zmq_poll), then calls cw_runner_action. Finished calls
    come out of cw_runner_next, each already classified by the one
    function that maps a transfer to an outcome (cw_runner_classify).

        cw_runner_t *runner = cw_runner_new (64);
        cw_runner_call_t call = {.method = "POST", .url = url, .body = body,
                                 .headers = headers, .timeout_msec = 10000,
                                 .connect_timeout_msec = 2000, .tag = job};
        cw_runner_start (runner, &call, error, sizeof (error));
        while (cw_runner_inflight (runner)) {
            cw_runner_wait (runner, 1000);
            cw_runner_result_t *result;
            while ((result = cw_runner_next (runner)))
                ... cw_runner_result_destroy (&result);
        }
    =========================================================================
*/
#ifndef CW_RUNNER_H_INCLUDED
#define CW_RUNNER_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define CW_RUNNER_BODY_MAX (256 * 1024)  //  Response bytes kept
#define CW_RUNNER_ERROR_MAX 256          //  Error text, bytes
#define CW_RUNNER_CONTRACT_VERSION_TYPE "unsupported_contract_version"

//  What a finished call means for its job (PROTOCOL.md §4.3)
typedef enum {
    CW_OUTCOME_OK,         //  2xx
    CW_OUTCOME_REJECTED,   //  4xx other than 408, 409, 429
    CW_OUTCOME_DUPLICATE,  //  409: key already processed
    CW_OUTCOME_TRANSIENT,  //  5xx, 408, 429, timeout, network, malformed
    CW_OUTCOME_VERSION     //  400 unsupported_contract_version
} cw_outcome_t;

//  One call to make. Strings are copied by cw_runner_start.
typedef struct {
    const char *method;            //  "GET", "POST", "PUT", "PATCH", "DELETE"
    const char *url;               //  Absolute http(s) URL
    const char *body;              //  Request body or NULL
    const char *const *headers;    //  "Name: value" lines, NULL-terminated
    int64_t connect_timeout_msec;  //  > 0
    int64_t timeout_msec;          //  > 0, whole call
    void *tag;                     //  Caller's handle, returned in the result
} cw_runner_call_t;

//  A finished call.
typedef struct {
    void *tag;                        //  As given in the call
    cw_outcome_t outcome;             //  The one classification
    long http_status;                 //  0 when no response came
    int64_t duration_msec;            //  Start to finish
    int64_t retry_after_msec;         //  From Retry-After, -1 when absent
    char error[CW_RUNNER_ERROR_MAX];  //  "" on success
    json_t *response;                 //  Parsed JSON body (object) or NULL
    long new_connections;  //  Connections this call opened (0: reused)
} cw_runner_result_t;

typedef struct _cw_runner_t cw_runner_t;

//  Creates a runner for at most max_inflight calls at once.
//  Caller owns return value and must destroy it when done.
cw_runner_t *cw_runner_new (size_t max_inflight);

//  Destroys the runner, aborting calls in flight (their results are
//  dropped). Tolerates NULL, nulls *self_p.
void cw_runner_destroy (cw_runner_t **self_p);

//  Starts a call. Returns 0, or -1 with a reason (runner full, bad
//  method) in error[size].
int cw_runner_start (cw_runner_t *self,
                     const cw_runner_call_t *call,
                     char *error,
                     size_t size);

//  Aborts the call started with tag (no result will come). Returns 0,
//  or -1 if no call in flight has that tag.
int cw_runner_cancel (cw_runner_t *self, void *tag);

//  Calls in flight (started, result not yet taken by cw_runner_next).
size_t cw_runner_inflight (cw_runner_t *self);

//  Sockets curl currently watches; cw_runner_pollitems writes at most
//  this many items.
size_t cw_runner_socket_count (cw_runner_t *self);

//  Writes up to max poll items (fd, events) for curl's sockets. Returns
//  how many were written.
size_t
cw_runner_pollitems (cw_runner_t *self, zmq_pollitem_t *items, size_t max);

//  Milliseconds until curl needs cw_runner_action even without socket
//  activity; -1 when it has no timer.
long cw_runner_timeout (cw_runner_t *self);

//  Drives transfers after a poll: items are the ones from
//  cw_runner_pollitems with revents filled by zmq_poll (count may be 0).
//  Finished calls are queued for cw_runner_next.
void
cw_runner_action (cw_runner_t *self, const zmq_pollitem_t *items, size_t count);

//  Polls curl's sockets alone for up to timeout_msec, then acts.
void cw_runner_wait (cw_runner_t *self, long timeout_msec);

//  Next finished call, or NULL.
//  Caller owns return value and must destroy it when done.
cw_runner_result_t *cw_runner_next (cw_runner_t *self);

//  Destroys a result (and its response). Tolerates NULL.
void cw_runner_result_destroy (cw_runner_result_t **self_p);

//  Total calls finished and connections opened since creation.
uint64_t cw_runner_calls (cw_runner_t *self);
uint64_t cw_runner_connections (cw_runner_t *self);

//  The one mapping of a finished transfer to an outcome. Pure: curl_code
//  (CURLcode), curl_error (the error buffer, may be ""), http_status (0
//  if none), the Retry-After header value or NULL, the body (may be
//  NULL when body_size is 0; body_over is true when bytes beyond
//  CW_RUNNER_BODY_MAX were dropped), the call's timeout and now_msec
//  (epoch msec, for Retry-After dates). Fills outcome, http_status,
//  retry_after_msec, error and response of result (other fields
//  untouched).
void cw_runner_classify (int curl_code,
                         const char *curl_error,
                         long http_status,
                         const char *retry_after,
                         const char *body,
                         size_t body_size,
                         bool body_over,
                         int64_t timeout_msec,
                         int64_t now_msec,
                         cw_runner_result_t *result);

//  "ok", "rejected", "duplicate", "transient", "version".
const char *cw_outcome_name (cw_outcome_t outcome);

#endif
