/*  =========================================================================
    cw_flow - flow handlers by name: what HTTP call a job makes
    =========================================================================
*/
#include "cw_flow.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <string.h>

#define FLOWS_MAX 64  //  As many as READY may announce

static const cw_flow_handler_t s_noop = {.build = NULL, .no_call = true};

struct _cw_flow_t {
    char *names[FLOWS_MAX];                        //  Registered names, owned
    const cw_flow_handler_t *handlers[FLOWS_MAX];  //  Borrowed
    size_t size;                                   //  Entries used
};

cw_flow_t *
cw_flow_new (void)
{
    return (cw_flow_t *) zmalloc (sizeof (cw_flow_t));
}

void
cw_flow_destroy (cw_flow_t **self_p)
{
    assert (self_p);
    cw_flow_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->size; index++)
        free (self->names[index]);
    free (self);
    *self_p = NULL;
}

int
cw_flow_register (cw_flow_t *self,
                  const char *name,
                  const cw_flow_handler_t *handler,
                  char *reason,
                  size_t size)
{
    assert (self);
    assert (name);
    assert (handler && (handler->build || handler->no_call));
    assert (reason);
    size_t length = strlen (name);
    if (length == 0 || length > CW_FLOW_NAME_MAX) {
        snprintf (reason, size, "flow name \"%s\" must have 1 to %d bytes",
                  name, CW_FLOW_NAME_MAX);
        return -1;
    }
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.'
              || *c == '_' || *c == '-')) {
            snprintf (reason, size,
                      "flow name \"%s\" may only hold a-z, 0-9, '.', '_', "
                      "'-'",
                      name);
            return -1;
        }
    if (cw_flow_lookup (self, name)) {
        snprintf (reason, size, "flow \"%s\" is already registered", name);
        return -1;
    }
    if (self->size == FLOWS_MAX) {
        snprintf (reason, size, "cannot register flow \"%s\": %d flows at most",
                  name, FLOWS_MAX);
        return -1;
    }
    self->names[self->size] = strdup (name);
    assert (self->names[self->size]);
    self->handlers[self->size] = handler;
    self->size++;
    return 0;
}

const cw_flow_handler_t *
cw_flow_lookup (cw_flow_t *self, const char *name)
{
    assert (self);
    assert (name);
    for (size_t index = 0; index < self->size; index++)
        if (streq (self->names[index], name))
            return self->handlers[index];
    return NULL;
}

size_t
cw_flow_size (cw_flow_t *self)
{
    assert (self);
    return self->size;
}

const char *
cw_flow_name (cw_flow_t *self, size_t index)
{
    assert (self);
    assert (index < self->size);
    return self->names[index];
}

void
cw_flow_request_reset (cw_flow_request_t *request)
{
    assert (request);
    free (request->method);
    free (request->url);
    free (request->body);
    memset (request, 0, sizeof (*request));
}

//  True if text is a W3C traceparent of version 00.
static bool
s_traceparent_valid (const char *text)
{
    if (!text || strlen (text) != CW_FLOW_TRACEPARENT_SIZE - 1)
        return false;
    for (size_t index = 0; index < CW_FLOW_TRACEPARENT_SIZE - 1; index++) {
        char c = text[index];
        bool dash = index == 2 || index == 35 || index == 52;
        if (dash ? c != '-'
                 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    //  Version 00, trace id and parent id not all zero
    return strncmp (text, "00", 2) == 0
           && strncmp (text + 3, "00000000000000000000000000000000", 32) != 0
           && strncmp (text + 36, "0000000000000000", 16) != 0;
}

static void
s_hex (const unsigned char *bytes, size_t count, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t index = 0; index < count; index++) {
        out[2 * index] = hex[bytes[index] >> 4];
        out[2 * index + 1] = hex[bytes[index] & 15];
    }
}

void
cw_flow_traceparent_child (const char *parent, char *buffer, size_t size)
{
    assert (buffer);
    assert (size >= CW_FLOW_TRACEPARENT_SIZE);
    unsigned char random[24];
    do
        randombytes_buf (random, sizeof (random));
    while (sodium_is_zero (random, 8) || sodium_is_zero (random + 8, 16));
    char span[17];
    s_hex (random, 8, span);
    span[16] = 0;
    if (s_traceparent_valid (parent))
        snprintf (buffer, size, "00-%.32s-%s-%.2s", parent + 3, span,
                  parent + 53);
    else {
        char trace[33];
        s_hex (random + 8, 16, trace);
        trace[32] = 0;
        snprintf (buffer, size, "00-%s-%s-01", trace, span);
    }
}

char **
cw_flow_headers (const cw_envelope_t *envelope,
                 const cw_flow_target_t *target,
                 char *reason,
                 size_t size)
{
    assert (envelope);
    assert (target && target->credential);
    assert (reason);
    const char *key = cw_envelope_idempotency_key (envelope);
    const char *correlation = cw_envelope_correlation_id (envelope);
    if (!key || !*key) {
        snprintf (reason, size, "envelope has no idempotency key");
        return NULL;
    }
    if (!correlation || !*correlation) {
        snprintf (reason, size, "envelope has no correlation id");
        return NULL;
    }
    char traceparent[CW_FLOW_TRACEPARENT_SIZE];
    cw_flow_traceparent_child (cw_envelope_traceparent (envelope), traceparent,
                               sizeof (traceparent));
    char **headers = (char **) zmalloc (7 * sizeof (char *));
    headers[0] = zsys_sprintf ("Idempotency-Key: %s", key);
    headers[1] = zsys_sprintf ("X-Correlation-ID: %s", correlation);
    headers[2] = zsys_sprintf ("traceparent: %s", traceparent);
    headers[3] = strdup ("Content-Type: application/json");
    headers[4] = strdup ("Accept: application/json");
    headers[5] =
        target->auth == CW_FLOW_AUTH_BEARER
            ? zsys_sprintf ("Authorization: Bearer %s", target->credential)
            : zsys_sprintf ("X-Api-Key: %s", target->credential);
    for (size_t index = 0; index < 6; index++)
        assert (headers[index]);
    return headers;
}

void
cw_flow_headers_destroy (char ***headers_p)
{
    assert (headers_p);
    char **headers = *headers_p;
    if (!headers)
        return;
    for (size_t index = 0; headers[index]; index++) {
        sodium_memzero (headers[index], strlen (headers[index]));
        free (headers[index]);
    }
    free (headers);
    *headers_p = NULL;
}

const cw_flow_handler_t *
cw_flow_noop (void)
{
    return &s_noop;
}
