/*  =========================================================================
    cw_flow_http - the generic HTTP flow "http.generic"

    The job's payload (envelope data) says what to call, the worker's
    configuration says where: the host is always the configured target's
    base URL, so a job can never aim the worker at another host.

        {"method": "POST",                       optional, default POST
         "path": "/api/v1/orders/{erpOrderId}/status",    required
         "body": {"status": "confirmed"},        optional, sent as JSON
         "erpOrderId": "ORD-000001"}             fields for the path

    Each {name} in path is replaced by the payload's top-level field name
    (a string or an integer), percent-encoded so it stays one path
    segment. The path must start with "/", may not start with "//", and
    may not hold "." or ".." segments or characters outside RFC 3986.
    =========================================================================
*/
#ifndef CW_FLOW_HTTP_H_INCLUDED
#define CW_FLOW_HTTP_H_INCLUDED

#include "cw_flow.h"

#include <jansson.h>

#define CW_FLOW_HTTP_GENERIC "http.generic"
#define CW_FLOW_HTTP_PATH_MAX 2048  //  Bytes in an expanded path

//  The handler of http.generic (static).
const cw_flow_handler_t *cw_flow_http_generic (void);

//  Expands the {name} placeholders of template with the values of fields
//  (a JSON object), percent-encoded. Returns a fresh string, or NULL with
//  a reason naming the field in reason[size].
//  Caller owns return value and must free it when done.
char *cw_flow_http_expand (const char *template,
                           const json_t *fields,
                           char *reason,
                           size_t size);

//  Percent-encodes every byte of text that is not an RFC 3986 unreserved
//  character (A-Z a-z 0-9 - . _ ~).
//  Caller owns return value and must free it when done.
char *cw_flow_http_encode (const char *text);

#endif
