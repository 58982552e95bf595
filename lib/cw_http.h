/*  =========================================================================
    cw_http - small HTTP server glue over libmicrohttpd

    A server listens on host:port (port 0 picks a free port; cw_http_port
    tells which), routes requests by method and path pattern ("/a/{id}/b":
    a {name} segment matches one non-empty path segment), accumulates the
    whole body up to a limit (413 beyond it), and hands each request to
    one handler that answers it with JSON, raw bytes or an RFC 9457
    application/problem+json document. No route for the path: 404; a
    route for the path but not the method: 405 with an Allow header
    naming the path's methods. A problem's title or detail that is not
    valid UTF-8 (cut in the middle of a character) keeps its valid part,
    each stray byte a '?'.

    Every request carries a correlation id: the client's X-Correlation-ID
    when it is sane (1..128 printable ASCII characters), else a fresh
    random one (32 hex digits from libsodium). It is echoed in the
    X-Correlation-ID response header.

    Threading: libmicrohttpd runs its own threads. With threads == 0 each
    connection gets its own thread (MHD_USE_THREAD_PER_CONNECTION): a
    handler may block or sleep (injected latency) without delaying any
    other connection. With threads > 0 a pool of that many polling
    threads serves all connections (faster for many short requests; a
    blocking handler then delays the other connections of its thread).
    Either way handlers run concurrently on several threads: state they
    share must be protected by their owner (e.g. one mutex). The route
    table is fixed once cw_http_start has been called.

        cw_http_t *http = cw_http_new ("127.0.0.1", 0, 0);
        cw_http_route (http, "GET", "/api/v1/orders/{id}", s_get_order, app);
        if (cw_http_start (http, error, sizeof (error)) == 0)
            printf ("port %d\n", cw_http_port (http));
        ...
        cw_http_destroy (&http);      //  stops and waits for handlers
    =========================================================================
*/
#ifndef CW_HTTP_H_INCLUDED
#define CW_HTTP_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CW_HTTP_BODY_LIMIT 1048576  //  Default largest request body, bytes
#define CW_HTTP_CORRELATION_MAX 128 //  Longest accepted X-Correlation-ID
#define CW_HTTP_PROBLEM_BASE "https://causeway.invalid/problems/"

typedef struct _cw_http_t cw_http_t;
typedef struct _cw_http_request_t cw_http_request_t;

//  Handles one request; must answer it with one cw_http_reply_* call
//  (a handler that does not gets a 500 problem sent for it).
typedef void (cw_http_handler_fn) (cw_http_request_t *request, void *arg);

//  Decides whether a new connection is served: return false to close it
//  at once (the client sees a reset or an empty reply).
typedef bool (cw_http_accept_fn) (void *arg);

//  Creates a server for host (an IPv4 or IPv6 literal) and port (0: any
//  free port); threads as described above. Nothing listens before
//  cw_http_start.
cw_http_t *
    cw_http_new (const char *host, int port, int threads);

//  Stops the server if started (waits for running handlers) and frees it.
//  Tolerates NULL; nulls the pointer.
void
    cw_http_destroy (cw_http_t **self_p);

//  Adds a route. method is "GET", "POST", ... or "*" for any; pattern a
//  path that may hold {name} segments. Routes are tried in the order
//  added. A path that matches no route gets 404, a path that matches only
//  with another method 405. Only before cw_http_start.
void
    cw_http_route (cw_http_t *self, const char *method, const char *pattern,
                   cw_http_handler_fn *handler, void *arg);

//  Sets the largest request body accepted (bytes); larger gets 413.
void
    cw_http_set_body_limit (cw_http_t *self, size_t limit);

//  Sets a function asked on every new connection. Only before start.
void
    cw_http_set_accept (cw_http_t *self, cw_http_accept_fn *accept,
                        void *arg);

//  Binds and starts serving. Returns 0, or -1 with a message in error.
int
    cw_http_start (cw_http_t *self, char *error, size_t size);

//  Returns the bound port (after start), or 0.
int
    cw_http_port (cw_http_t *self);

//  Writes the bound port and a newline to path (atomically: a temporary
//  file then rename). Returns 0, or -1 with a message in error.
int
    cw_http_write_port_file (cw_http_t *self, const char *path, char *error,
                             size_t size);

//  Stops serving: closes the listener and waits for running handlers.
//  Harmless when not started or already stopped.
void
    cw_http_stop (cw_http_t *self);

//  ---------------------------------------------------------------------
//  Requests (borrowed by handlers; valid until the handler returns)

//  The request method ("GET"...).
const char *
    cw_http_request_method (cw_http_request_t *self);

//  The path, without the query string.
const char *
    cw_http_request_path (cw_http_request_t *self);

//  The route pattern that matched ("/api/v1/orders/{id}").
const char *
    cw_http_request_route (cw_http_request_t *self);

//  The value of path parameter {name}, or NULL.
const char *
    cw_http_request_param (cw_http_request_t *self, const char *name);

//  The value of query argument name (decoded), or NULL.
const char *
    cw_http_request_query (cw_http_request_t *self, const char *name);

//  The value of request header name (case-insensitive), or NULL.
const char *
    cw_http_request_header (cw_http_request_t *self, const char *name);

//  The body (NUL-terminated for convenience) and its size in bytes.
const char *
    cw_http_request_body (cw_http_request_t *self);
size_t
    cw_http_request_body_size (cw_http_request_t *self);

//  The correlation id (the client's or a minted one).
const char *
    cw_http_request_correlation_id (cw_http_request_t *self);

//  Parses the body as JSON. Returns the value (caller owns it and must
//  json_decref it), or NULL after replying 400 problem+json that names
//  the parse error and its position (line, column, byte offset).
json_t *
    cw_http_request_json (cw_http_request_t *self);

//  True once the request has been answered.
bool
    cw_http_request_answered (cw_http_request_t *self);

//  ---------------------------------------------------------------------
//  Replies: exactly one per request; headers added before it

//  Adds a header to the coming reply (e.g. "Retry-After", "3").
void
    cw_http_reply_header (cw_http_request_t *self, const char *name,
                          const char *value);

//  Replies with status and json (borrowed) as application/json.
void
    cw_http_reply_json (cw_http_request_t *self, int status,
                        const json_t *json);

//  Replies with status and size bytes of data (copied) as content_type.
void
    cw_http_reply_bytes (cw_http_request_t *self, int status,
                         const char *content_type, const void *data,
                         size_t size);

//  Replies with an RFC 9457 problem: type is CW_HTTP_PROBLEM_BASE + slug
//  ("about:blank" when slug is NULL), title, status, detail (may be NULL)
//  plus the members of extensions (borrowed; may be NULL), e.g.
//  {"field": "customerId"}.
void
    cw_http_reply_problem (cw_http_request_t *self, int status,
                           const char *slug, const char *title,
                           const char *detail, const json_t *extensions);

//  Replies with a body that is cut short: the headers announce size
//  bytes (Content-Length) but only sent bytes of data are written before
//  the connection is closed. For fault injection.
void
    cw_http_reply_truncated (cw_http_request_t *self, int status,
                             const char *content_type, const void *data,
                             size_t size, size_t sent);

//  Answers by closing the connection without sending any reply (the
//  client sees an empty reply or a reset). For fault injection.
void
    cw_http_reply_drop (cw_http_request_t *self);

#endif
