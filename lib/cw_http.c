/*  =========================================================================
    cw_http - small HTTP server glue over libmicrohttpd

    See cw_http.h for the threading model. Each connection's current
    request is a cw_http_request_t kept in MHD's per-request pointer; it is
    freed in the request-completed callback.
    =========================================================================
*/
#include "cw_http.h"
#include "cw_log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define CW_HTTP_SEGMENTS_MAX 16         //  Most path segments in a pattern
#define CW_HTTP_PARAMS_MAX 8            //  Most {name} segments in a pattern
#define CW_HTTP_CONNECTION_TIMEOUT 120  //  Idle connection timeout, sec
#define CW_HTTP_BODY_CHUNK 4096         //  Smallest body buffer growth, bytes

typedef struct _route_t route_t;
struct _route_t {
    char *method;                          //  "GET", ... or "*"
    char *pattern;                         //  As given
    char *segments[CW_HTTP_SEGMENTS_MAX];  //  Pattern split at '/'
    size_t segment_count;                  //  Number of segments
    cw_http_handler_fn *handler;           //  Called for a match
    void *arg;                             //  Handler's argument
    route_t *next;                         //  Next route, in order added
};

typedef struct _header_t header_t;
struct _header_t {
    char *name;      //  Header name
    char *value;     //  Header value
    header_t *next;  //  Next pending header
};

struct _cw_http_t {
    char *host;                 //  Listen address literal
    int port;                   //  Requested port, then bound port
    int threads;                //  0: thread per connection, else pool
    size_t body_limit;          //  Largest request body, bytes
    route_t *routes;            //  Routes, in order added
    route_t *routes_tail;       //  Last route, for appending
    cw_http_accept_fn *accept;  //  Connection filter, or NULL
    void *accept_arg;           //  Its argument
    struct MHD_Daemon *daemon;  //  Running daemon, or NULL
};

struct _cw_http_request_t {
    cw_http_t *server;                       //  Our server
    struct MHD_Connection *connection;       //  MHD connection, borrowed
    char *method;                            //  Request method
    char *path;                              //  Path, decoded by MHD
    const route_t *route;                    //  Matched route, or NULL
    char *param_names[CW_HTTP_PARAMS_MAX];   //  Borrowed from the route
    char *param_values[CW_HTTP_PARAMS_MAX];  //  Owned copies
    size_t param_count;                      //  Number of parameters
    char *body;                              //  Body so far, NUL-terminated
    size_t body_size;                        //  Bytes in body
    size_t body_alloc;                       //  Bytes allocated for body
    bool too_large;                          //  Body went over the limit
    char correlation_id[CW_HTTP_CORRELATION_MAX + 1];  //  Client's or ours
    header_t *headers;                                 //  Headers for the reply
    struct MHD_Response *response;                     //  The reply, once made
    int status;                                        //  Its status
    bool drop;                                         //  Close without a reply
};

//  Body of a truncated reply
typedef struct {
    char *data;   //  Bytes we really send
    size_t sent;  //  Their number
} truncated_t;

static void
s_route_destroy (route_t **self_p)
{
    route_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->segment_count; index++)
        free (self->segments[index]);
    free (self->method);
    free (self->pattern);
    free (self);
    *self_p = NULL;
}

static char *
s_strdup (const char *text)
{
    char *copy = strdup (text);
    assert (copy);
    return copy;
}

static char *
s_strndup (const char *text, size_t size)
{
    char *copy = strndup (text, size);
    assert (copy);
    return copy;
}

cw_http_t *
cw_http_new (const char *host, int port, int threads)
{
    assert (host);
    assert (port >= 0 && port <= 65535);
    assert (threads >= 0);
    if (sodium_init () < 0)
        return NULL;
    cw_http_t *self = (cw_http_t *) calloc (1, sizeof (cw_http_t));
    assert (self);
    self->host = s_strdup (host);
    self->port = port;
    self->threads = threads;
    self->body_limit = CW_HTTP_BODY_LIMIT;
    return self;
}

void
cw_http_destroy (cw_http_t **self_p)
{
    assert (self_p);
    cw_http_t *self = *self_p;
    if (!self)
        return;
    cw_http_stop (self);
    route_t *route = self->routes;
    while (route) {
        route_t *next = route->next;
        s_route_destroy (&route);
        route = next;
    }
    free (self->host);
    free (self);
    *self_p = NULL;
}

void
cw_http_route (cw_http_t *self,
               const char *method,
               const char *pattern,
               cw_http_handler_fn *handler,
               void *arg)
{
    assert (self);
    assert (method);
    assert (pattern && pattern[0] == '/');
    assert (handler);
    assert (self->daemon == NULL);
    route_t *route = (route_t *) calloc (1, sizeof (route_t));
    assert (route);
    route->method = s_strdup (method);
    route->pattern = s_strdup (pattern);
    route->handler = handler;
    route->arg = arg;
    size_t params = 0;
    const char *cursor = pattern + 1;
    while (*cursor) {
        const char *slash = strchr (cursor, '/');
        size_t length = slash ? (size_t) (slash - cursor) : strlen (cursor);
        assert (route->segment_count < CW_HTTP_SEGMENTS_MAX);
        char *segment = s_strndup (cursor, length);
        if (segment[0] == '{')
            params++;
        route->segments[route->segment_count++] = segment;
        cursor += length;
        if (*cursor == '/')
            cursor++;
    }
    assert (params <= CW_HTTP_PARAMS_MAX);
    if (self->routes_tail)
        self->routes_tail->next = route;
    else
        self->routes = route;
    self->routes_tail = route;
}

void
cw_http_set_body_limit (cw_http_t *self, size_t limit)
{
    assert (self);
    self->body_limit = limit;
}

void
cw_http_set_accept (cw_http_t *self, cw_http_accept_fn *accept, void *arg)
{
    assert (self);
    assert (self->daemon == NULL);
    self->accept = accept;
    self->accept_arg = arg;
}

//  Matches path against route; on a match fills the request's parameters.
static bool
s_route_match (const route_t *route,
               const char *path,
               cw_http_request_t *request)
{
    const char *cursor = path;
    if (*cursor != '/')
        return false;
    cursor++;
    size_t params = 0;
    char *values[CW_HTTP_PARAMS_MAX];
    char *names[CW_HTTP_PARAMS_MAX];
    size_t index;
    for (index = 0; index < route->segment_count; index++) {
        if (*cursor == '\0')
            break;
        const char *slash = strchr (cursor, '/');
        size_t length = slash ? (size_t) (slash - cursor) : strlen (cursor);
        const char *segment = route->segments[index];
        size_t segment_length = strlen (segment);
        if (segment[0] == '{' && segment_length > 2
            && segment[segment_length - 1] == '}') {
            if (length == 0)
                break;
            names[params] = route->segments[index];
            values[params] = s_strndup (cursor, length);
            params++;
        }
        else if (length != segment_length || memcmp (cursor, segment, length))
            break;
        cursor += length;
        if (*cursor == '/')
            cursor++;
    }
    bool matched = index == route->segment_count && *cursor == '\0';
    for (size_t param = 0; param < params; param++) {
        if (matched && request) {
            request->param_names[param] = names[param];
            request->param_values[param] = values[param];
        }
        else
            free (values[param]);
    }
    if (matched && request)
        request->param_count = params;
    return matched;
}

//  Request lifecycle ----------------------------------------------------

static cw_http_request_t *
s_request_new (cw_http_t *server,
               struct MHD_Connection *connection,
               const char *url,
               const char *method)
{
    cw_http_request_t *self =
        (cw_http_request_t *) calloc (1, sizeof (cw_http_request_t));
    assert (self);
    self->server = server;
    self->connection = connection;
    self->method = s_strdup (method);
    self->path = s_strdup (url);
    self->body_alloc = CW_HTTP_BODY_CHUNK;
    self->body = (char *) malloc (self->body_alloc);
    assert (self->body);
    self->body[0] = '\0';
    //  Take a sane client correlation id, else mint one
    const char *given = MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, "X-Correlation-ID");
    bool sane = given && *given && strlen (given) <= CW_HTTP_CORRELATION_MAX;
    for (const char *c = given; sane && *c; c++)
        if (*c < 0x21 || *c > 0x7e)
            sane = false;
    if (sane)
        snprintf (self->correlation_id, sizeof (self->correlation_id), "%s",
                  given);
    else {
        unsigned char random[16];
        randombytes_buf (random, sizeof (random));
        sodium_bin2hex (self->correlation_id, sizeof (self->correlation_id),
                        random, sizeof (random));
    }
    return self;
}

static void
s_request_destroy (cw_http_request_t **self_p)
{
    cw_http_request_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->param_count; index++)
        free (self->param_values[index]);
    header_t *header = self->headers;
    while (header) {
        header_t *next = header->next;
        free (header->name);
        free (header->value);
        free (header);
        header = next;
    }
    if (self->response)
        MHD_destroy_response (self->response);
    free (self->method);
    free (self->path);
    free (self->body);
    free (self);
    *self_p = NULL;
}

static void
s_request_append (cw_http_request_t *self, const char *data, size_t size)
{
    if (self->too_large)
        return;
    if (size > self->server->body_limit - self->body_size) {
        self->too_large = true;
        return;
    }
    if (self->body_size + size + 1 > self->body_alloc) {
        size_t wanted = self->body_size + size + 1;
        size_t alloc = self->body_alloc * 2;
        if (alloc < wanted)
            alloc = wanted;
        self->body = (char *) realloc (self->body, alloc);
        assert (self->body);
        self->body_alloc = alloc;
    }
    memcpy (self->body + self->body_size, data, size);
    self->body_size += size;
    self->body[self->body_size] = '\0';
}

//  Routes the request and calls its handler; makes sure it is answered.
static void
s_request_dispatch (cw_http_request_t *self)
{
    if (self->too_large) {
        char detail[128];
        snprintf (detail, sizeof (detail),
                  "request body is larger than %zu bytes",
                  self->server->body_limit);
        cw_http_reply_problem (self, 413, "body-too-large", "Content Too Large",
                               detail, NULL);
        return;
    }
    bool path_matched = false;
    char allow[128] = "";       //  The path's methods, for a 405
    for (const route_t *route = self->server->routes; route;
         route = route->next) {
        if (!s_route_match (route, self->path, NULL))
            continue;
        path_matched = true;
        if (strcmp (route->method, "*") && strcmp (route->method, self->method)) {
            if (!strstr (allow, route->method)
                && strlen (allow) + strlen (route->method) + 3 < sizeof (allow)) {
                if (*allow)
                    strcat (allow, ", ");
                strcat (allow, route->method);
            }
            continue;
        }
        s_route_match (route, self->path, self);
        self->route = route;
        route->handler (self, route->arg);
        if (!self->response && !self->drop)
            cw_http_reply_problem (self, 500, "internal", "Internal Error",
                                   "handler sent no reply", NULL);
        return;
    }
    if (path_matched) {
        //  RFC 9110 15.5.6: a 405 names the methods the resource takes
        cw_http_reply_header (self, "Allow", allow);
        cw_http_reply_problem (self, 405, "method-not-allowed",
                               "Method Not Allowed",
                               "this path does not accept this method", NULL);
    }
    else
        cw_http_reply_problem (self, 404, "not-found", "Not Found",
                               "no such resource", NULL);
}

//  MHD callbacks --------------------------------------------------------

static enum MHD_Result
s_access (void *cls,
          struct MHD_Connection *connection,
          const char *url,
          const char *method,
          const char *version,
          const char *upload_data,
          size_t *upload_data_size,
          void **request_p)
{
    (void) version;
    cw_http_t *self = (cw_http_t *) cls;
    cw_http_request_t *request = (cw_http_request_t *) *request_p;
    if (!request) {
        *request_p = s_request_new (self, connection, url, method);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        s_request_append (request, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!request->response && !request->drop)
        s_request_dispatch (request);
    if (request->drop)
        return MHD_NO;
    assert (request->response);
    return MHD_queue_response (connection, (unsigned int) request->status,
                               request->response);
}

static void
s_completed (void *cls,
             struct MHD_Connection *connection,
             void **request_p,
             enum MHD_RequestTerminationCode code)
{
    (void) cls;
    (void) connection;
    (void) code;
    cw_http_request_t *request = (cw_http_request_t *) *request_p;
    s_request_destroy (&request);
    *request_p = NULL;
}

static enum MHD_Result
s_accept (void *cls, const struct sockaddr *address, socklen_t length)
{
    (void) address;
    (void) length;
    cw_http_t *self = (cw_http_t *) cls;
    if (self->accept && !self->accept (self->accept_arg))
        return MHD_NO;
    return MHD_YES;
}

int
cw_http_start (cw_http_t *self, char *error, size_t size)
{
    assert (self);
    assert (error);
    assert (self->daemon == NULL);
    struct sockaddr_in address4;
    struct sockaddr_in6 address6;
    struct sockaddr *address;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD;
    memset (&address4, 0, sizeof (address4));
    memset (&address6, 0, sizeof (address6));
    if (inet_pton (AF_INET, self->host, &address4.sin_addr) == 1) {
        address4.sin_family = AF_INET;
        address4.sin_port = htons ((uint16_t) self->port);
        address = (struct sockaddr *) &address4;
    }
    else if (inet_pton (AF_INET6, self->host, &address6.sin6_addr) == 1) {
        address6.sin6_family = AF_INET6;
        address6.sin6_port = htons ((uint16_t) self->port);
        address = (struct sockaddr *) &address6;
        flags |= MHD_USE_IPv6;
    }
    else {
        snprintf (error, size,
                  "invalid listen address \"%s\": not an IP "
                  "address literal",
                  self->host);
        return -1;
    }
    if (self->threads == 0)
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    else
        flags |= MHD_USE_AUTO;
    errno = 0;
    if (self->threads > 1)
        self->daemon = MHD_start_daemon (
            flags, (uint16_t) self->port, s_accept, self, s_access, self,
            MHD_OPTION_SOCK_ADDR, address, MHD_OPTION_NOTIFY_COMPLETED,
            s_completed, self, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned int) CW_HTTP_CONNECTION_TIMEOUT,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) self->threads,
            MHD_OPTION_END);
    else
        self->daemon = MHD_start_daemon (
            flags, (uint16_t) self->port, s_accept, self, s_access, self,
            MHD_OPTION_SOCK_ADDR, address, MHD_OPTION_NOTIFY_COMPLETED,
            s_completed, self, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned int) CW_HTTP_CONNECTION_TIMEOUT, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf (error, size, "could not listen on %s:%d: %s", self->host,
                  self->port,
                  errno ? strerror (errno) : "libmicrohttpd failed");
        return -1;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port)
        self->port = info->port;
    return 0;
}

int
cw_http_port (cw_http_t *self)
{
    assert (self);
    return self->daemon ? self->port : 0;
}

int
cw_http_write_port_file (cw_http_t *self,
                         const char *path,
                         char *error,
                         size_t size)
{
    assert (self);
    assert (path);
    assert (error);
    char temporary[4096];
    if (snprintf (temporary, sizeof (temporary), "%s.tmp", path)
        >= (int) sizeof (temporary)) {
        snprintf (error, size, "port file name \"%s\" is too long", path);
        return -1;
    }
    FILE *file = fopen (temporary, "w");
    if (!file) {
        snprintf (error, size, "could not create port file \"%s\": %s",
                  temporary, strerror (errno));
        return -1;
    }
    int rc = fprintf (file, "%d\n", cw_http_port (self));
    if (fclose (file) != 0 || rc < 0) {
        snprintf (error, size, "could not write port file \"%s\": %s",
                  temporary, strerror (errno));
        unlink (temporary);
        return -1;
    }
    if (rename (temporary, path) != 0) {
        snprintf (error, size, "could not rename \"%s\" to \"%s\": %s",
                  temporary, path, strerror (errno));
        unlink (temporary);
        return -1;
    }
    return 0;
}

void
cw_http_stop (cw_http_t *self)
{
    assert (self);
    if (self->daemon) {
        MHD_stop_daemon (self->daemon);
        self->daemon = NULL;
    }
}

//  Requests -------------------------------------------------------------

const char *
cw_http_request_method (cw_http_request_t *self)
{
    assert (self);
    return self->method;
}

const char *
cw_http_request_path (cw_http_request_t *self)
{
    assert (self);
    return self->path;
}

const char *
cw_http_request_route (cw_http_request_t *self)
{
    assert (self);
    return self->route ? self->route->pattern : NULL;
}

const char *
cw_http_request_param (cw_http_request_t *self, const char *name)
{
    assert (self);
    assert (name);
    size_t length = strlen (name);
    for (size_t index = 0; index < self->param_count; index++) {
        const char *segment = self->param_names[index];
        if (strlen (segment) == length + 2
            && memcmp (segment + 1, name, length) == 0)
            return self->param_values[index];
    }
    return NULL;
}

const char *
cw_http_request_query (cw_http_request_t *self, const char *name)
{
    assert (self);
    assert (name);
    return MHD_lookup_connection_value (self->connection, MHD_GET_ARGUMENT_KIND,
                                        name);
}

const char *
cw_http_request_header (cw_http_request_t *self, const char *name)
{
    assert (self);
    assert (name);
    return MHD_lookup_connection_value (self->connection, MHD_HEADER_KIND,
                                        name);
}

const char *
cw_http_request_body (cw_http_request_t *self)
{
    assert (self);
    return self->body;
}

size_t
cw_http_request_body_size (cw_http_request_t *self)
{
    assert (self);
    return self->body_size;
}

const char *
cw_http_request_correlation_id (cw_http_request_t *self)
{
    assert (self);
    return self->correlation_id;
}

json_t *
cw_http_request_json (cw_http_request_t *self)
{
    assert (self);
    json_error_t error;
    json_t *json = json_loadb (self->body, self->body_size,
                               JSON_REJECT_DUPLICATES, &error);
    if (!json) {
        char detail[JSON_ERROR_TEXT_LENGTH + 128];
        snprintf (detail, sizeof (detail),
                  "invalid JSON at line %d, column %d (byte %d): %s",
                  error.line, error.column, error.position, error.text);
        json_t *extensions =
            json_pack ("{s:i, s:i, s:i}", "line", error.line, "column",
                       error.column, "position", error.position);
        cw_http_reply_problem (self, 400, "invalid-json", "Invalid JSON",
                               detail, extensions);
        json_decref (extensions);
    }
    return json;
}

bool
cw_http_request_answered (cw_http_request_t *self)
{
    assert (self);
    return self->response != NULL || self->drop;
}

//  Replies --------------------------------------------------------------

void
cw_http_reply_header (cw_http_request_t *self,
                      const char *name,
                      const char *value)
{
    assert (self);
    assert (name);
    assert (value);
    header_t *header = (header_t *) calloc (1, sizeof (header_t));
    assert (header);
    header->name = s_strdup (name);
    header->value = s_strdup (value);
    header->next = self->headers;
    self->headers = header;
}

//  Sets the reply: adds pending headers and the correlation id.
static void
s_reply (cw_http_request_t *self,
         int status,
         struct MHD_Response *response,
         const char *content_type)
{
    assert (response);
    assert (self->response == NULL);
    assert (!self->drop);
    if (content_type)
        MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                 content_type);
    MHD_add_response_header (response, "X-Correlation-ID",
                             self->correlation_id);
    for (header_t *header = self->headers; header; header = header->next)
        MHD_add_response_header (response, header->name, header->value);
    self->response = response;
    self->status = status;
}

void
cw_http_reply_bytes (cw_http_request_t *self,
                     int status,
                     const char *content_type,
                     const void *data,
                     size_t size)
{
    assert (self);
    assert (data || size == 0);
    assert (self->response == NULL);
    struct MHD_Response *response = MHD_create_response_from_buffer (
        size, (void *) data, MHD_RESPMEM_MUST_COPY);
    s_reply (self, status, response, content_type);
}

void
cw_http_reply_json (cw_http_request_t *self, int status, const json_t *json)
{
    assert (self);
    assert (json);
    char *text = json_dumps (json, JSON_COMPACT | JSON_ENCODE_ANY);
    assert (text);
    struct MHD_Response *response = MHD_create_response_from_buffer (
        strlen (text), text, MHD_RESPMEM_MUST_FREE);
    s_reply (self, status, response, "application/json");
}

//  A JSON string of text; bytes that are not whole UTF-8 characters
//  become '?'. jansson refuses such text, and a detail cut in the middle
//  of a character (snprintf into a fixed buffer) would vanish.
static json_t *
s_json_text (const char *text)
{
    json_t *string = json_string (text);
    if (!string) {
        char *repaired = cw_log_utf8_repaired (text);
        string = json_string (repaired);
        free (repaired);
    }
    return string;
}

void
cw_http_reply_problem (cw_http_request_t *self,
                       int status,
                       const char *slug,
                       const char *title,
                       const char *detail,
                       const json_t *extensions)
{
    assert (self);
    assert (title);
    json_t *problem = json_object ();
    if (slug) {
        char type[256];
        snprintf (type, sizeof (type), "%s%s", CW_HTTP_PROBLEM_BASE, slug);
        json_object_set_new (problem, "type", json_string (type));
    }
    else
        json_object_set_new (problem, "type", json_string ("about:blank"));
    json_object_set_new (problem, "title", s_json_text (title));
    json_object_set_new (problem, "status", json_integer (status));
    if (detail)
        json_object_set_new (problem, "detail", s_json_text (detail));
    if (extensions)
        json_object_update (problem, (json_t *) extensions);
    json_object_set_new (problem, "correlationId",
                         json_string (self->correlation_id));
    char *text = json_dumps (problem, JSON_COMPACT);
    assert (text);
    json_decref (problem);
    struct MHD_Response *response = MHD_create_response_from_buffer (
        strlen (text), text, MHD_RESPMEM_MUST_FREE);
    s_reply (self, status, response, "application/problem+json");
}

static ssize_t
s_truncated_read (void *cls, uint64_t position, char *buffer, size_t max)
{
    truncated_t *truncated = (truncated_t *) cls;
    if (position >= truncated->sent)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t left = truncated->sent - (size_t) position;
    size_t count = left < max ? left : max;
    memcpy (buffer, truncated->data + position, count);
    return (ssize_t) count;
}

static void
s_truncated_free (void *cls)
{
    truncated_t *truncated = (truncated_t *) cls;
    free (truncated->data);
    free (truncated);
}

void
cw_http_reply_truncated (cw_http_request_t *self,
                         int status,
                         const char *content_type,
                         const void *data,
                         size_t size,
                         size_t sent)
{
    assert (self);
    assert (data || size == 0);
    assert (sent < size);
    truncated_t *truncated = (truncated_t *) calloc (1, sizeof (truncated_t));
    assert (truncated);
    truncated->data = (char *) malloc (sent + 1);
    assert (truncated->data);
    if (sent)
        memcpy (truncated->data, data, sent);
    truncated->sent = sent;
    struct MHD_Response *response = MHD_create_response_from_callback (
        size, sent ? sent : 1, s_truncated_read, truncated, s_truncated_free);
    s_reply (self, status, response, content_type);
}

void
cw_http_reply_drop (cw_http_request_t *self)
{
    assert (self);
    assert (self->response == NULL);
    self->drop = true;
}
