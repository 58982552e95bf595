/*  =========================================================================
    cw_flow - flow handlers by name: what HTTP call a job makes

    A flow handler turns a job (its envelope) and the configured target
    it goes to into one HTTP request. Handlers are registered by name in
    a registry; the worker announces the registered flows in READY and
    looks a JOB's flow up here.

        cw_flow_t *flows = cw_flow_new ();
        cw_flow_register (flows, "http.generic", cw_flow_http_generic ());
        const cw_flow_handler_t *handler = cw_flow_lookup (flows, job_flow);
        cw_flow_request_t request = {0};
        if (handler->build (envelope, &target, &request, reason, size) == 0)
            ... start the call ...
        cw_flow_request_reset (&request);
    =========================================================================
*/
#ifndef CW_FLOW_H_INCLUDED
#define CW_FLOW_H_INCLUDED

#include "cw_envelope.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CW_FLOW_NAME_MAX 64          //  Bytes in a flow name
#define CW_FLOW_TRACEPARENT_SIZE 56  //  55 characters and the NUL

//  How a target takes its credential
typedef enum {
    CW_FLOW_AUTH_BEARER,  //  Authorization: Bearer <credential>
    CW_FLOW_AUTH_API_KEY  //  X-Api-Key: <credential>
} cw_flow_auth_t;

//  Where calls go: from configuration only, never from a job.
typedef struct {
    const char *name;              //  Target name as in JOB "target", "erp"
    const char *base_url;          //  "http://127.0.0.1:8080" (no trailing /)
    const char *credential;        //  The secret, borrowed
    cw_flow_auth_t auth;           //  Which header carries the credential
    int64_t connect_timeout_msec;  //  Connect timeout
    int64_t timeout_msec;          //  Whole-call timeout
} cw_flow_target_t;

//  A request built by a handler; every string is owned (malloc).
typedef struct {
    char *method;  //  "POST"
    char *url;     //  base_url + path
    char *body;    //  JSON text or NULL
} cw_flow_request_t;

//  Builds the request for one job. Returns 0, or -1 when the job cannot
//  be turned into a call (its outcome is then "rejected") with a reason
//  naming the payload field in reason[size].
typedef int (cw_flow_build_fn) (const cw_envelope_t *envelope,
                                const cw_flow_target_t *target,
                                cw_flow_request_t *request,
                                char *reason,
                                size_t size);

//  A handler's methods (static, borrowed by the registry).
typedef struct {
    cw_flow_build_fn *build;  //  Required unless no_call
    bool no_call;             //  Answered ok at once, no HTTP call
} cw_flow_handler_t;

#define CW_FLOW_NOOP "noop"  //  The no-call flow (benchmarks, smoke tests)

typedef struct _cw_flow_t cw_flow_t;

//  Creates an empty registry.
//  Caller owns return value and must destroy it when done.
cw_flow_t *cw_flow_new (void);

//  Destroys the registry. Tolerates NULL, nulls *self_p.
void cw_flow_destroy (cw_flow_t **self_p);

//  Registers handler (borrowed, must outlive the registry) under name
//  (1..64 bytes of [a-z0-9._-]). Returns 0, or -1 with a reason when the
//  name is invalid or already registered.
int cw_flow_register (cw_flow_t *self,
                      const char *name,
                      const cw_flow_handler_t *handler,
                      char *reason,
                      size_t size);

//  The handler registered under name, or NULL.
const cw_flow_handler_t *cw_flow_lookup (cw_flow_t *self, const char *name);

//  Number of registered flows.
size_t cw_flow_size (cw_flow_t *self);

//  Registered names in registration order: index < cw_flow_size.
const char *cw_flow_name (cw_flow_t *self, size_t index);

//  The headers every call of a job sends, "Name: value" lines ending
//  with NULL: Idempotency-Key, X-Correlation-ID, traceparent (a child
//  span of the envelope's, or a new trace when it has none or a bad
//  one), Content-Type and Accept application/json, and the target's
//  credential. Returns NULL with a reason when the envelope lacks its
//  idempotency key or correlation id.
//  Caller owns return value and must destroy it with
//  cw_flow_headers_destroy (which wipes the credential).
char **cw_flow_headers (const cw_envelope_t *envelope,
                        const cw_flow_target_t *target,
                        char *reason,
                        size_t size);

//  Wipes and frees headers from cw_flow_headers; nulls *headers_p.
void cw_flow_headers_destroy (char ***headers_p);

//  Writes a W3C traceparent for a new span into buffer (56 bytes):
//  parent's trace id and flags when parent is a valid traceparent, else a
//  new random trace id with flags 01.
void cw_flow_traceparent_child (const char *parent, char *buffer, size_t size);

//  The handler of the noop flow (static): no_call, every job is
//  answered ok at once without any HTTP call. Never served by default:
//  a worker serves it only when its config lists it.
const cw_flow_handler_t *cw_flow_noop (void);

//  Frees the strings of a request and zeroes it.
void cw_flow_request_reset (cw_flow_request_t *request);

#endif
