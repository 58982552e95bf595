/*  =========================================================================
    cw_flow_http - the generic HTTP flow "http.generic"
    =========================================================================
*/
#include "cw_flow_http.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <string.h>

#define PLACEHOLDER_MAX 64  //  Bytes in a {name}

//  Characters allowed literally in a path template (RFC 3986 pchar, '/',
//  '?' and the query's '&' '='), besides the placeholders' braces.
static bool
s_path_char (char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || strchr ("-._~/?&=%:@!$'()*+,;", c);
}

static bool
s_unreserved (unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
           || c == '~';
}

char *
cw_flow_http_encode (const char *text)
{
    assert (text);
    static const char hex[] = "0123456789ABCDEF";
    size_t length = strlen (text);
    char *encoded = (char *) zmalloc (length * 3 + 1);
    char *out = encoded;
    for (const unsigned char *c = (const unsigned char *) text; *c; c++)
        if (s_unreserved (*c))
            *out++ = (char) *c;
        else {
            *out++ = '%';
            *out++ = hex[*c >> 4];
            *out++ = hex[*c & 15];
        }
    *out = 0;
    return encoded;
}

//  True if path has a "." or ".." segment, a dot written as "." or as
//  "%2e" / "%2E" (the same character to the server, RFC 3986 6.2.2.2).
static bool
s_has_dot_segment (const char *path)
{
    const char *end = path + strcspn (path, "?");
    for (const char *segment = path; segment < end;) {
        const char *next = memchr (segment, '/', (size_t) (end - segment));
        const char *stop = next ? next : end;
        size_t dots = 0;
        const char *c = segment;
        while (c < stop && dots < 3)
            if (*c == '.') {
                dots++;
                c++;
            }
            else if (stop - c >= 3 && c[0] == '%' && c[1] == '2'
                     && (c[2] == 'e' || c[2] == 'E')) {
                dots++;
                c += 3;
            }
            else
                break;
        if (c == stop && (dots == 1 || dots == 2))
            return true;
        if (!next)
            break;
        segment = next + 1;
    }
    return false;
}

char *
cw_flow_http_expand (const char *template,
                     const json_t *fields,
                     char *reason,
                     size_t size)
{
    assert (template);
    assert (reason);
    if (template[0] != '/' || template[1] == '/') {
        snprintf (reason, size,
                  "field \"path\" must start with \"/\" (and not \"//\")");
        return NULL;
    }
    if (s_has_dot_segment (template)) {
        snprintf (reason, size,
                  "field \"path\" may not hold \".\" or \"..\" segments");
        return NULL;
    }
    char *path = (char *) zmalloc (CW_FLOW_HTTP_PATH_MAX + 1);
    size_t used = 0;
    const char *c = template;
    while (*c) {
        const char *piece = NULL;
        char *encoded = NULL;
        char number[32];
        if (*c == '{') {
            const char *close = strchr (c + 1, '}');
            size_t length = close ? (size_t) (close - c - 1) : 0;
            if (!close || length == 0 || length > PLACEHOLDER_MAX) {
                snprintf (reason, size,
                          "field \"path\": unclosed or empty placeholder at "
                          "byte %zu",
                          (size_t) (c - template));
                goto failed;
            }
            char name[PLACEHOLDER_MAX + 1];
            memcpy (name, c + 1, length);
            name[length] = 0;
            for (size_t index = 0; index < length; index++)
                if (!(s_unreserved ((unsigned char) name[index])
                      && name[index] != '~')) {
                    snprintf (reason, size,
                              "field \"path\": bad placeholder name \"%s\"",
                              name);
                    goto failed;
                }
            const json_t *value =
                fields ? json_object_get (fields, name) : NULL;
            if (json_is_string (value) && json_string_length (value) > 0) {
                const char *text = json_string_value (value);
                if (streq (text, ".") || streq (text, "..")) {
                    snprintf (reason, size,
                              "field \"%s\" may not be \".\" or \"..\"", name);
                    goto failed;
                }
                piece = encoded = cw_flow_http_encode (text);
            }
            else if (json_is_integer (value)) {
                snprintf (number, sizeof (number), "%" PRId64,
                          (int64_t) json_integer_value (value));
                piece = number;
            }
            else {
                snprintf (reason, size,
                          "field \"%s\" named in \"path\" must be a non-empty "
                          "string or an integer",
                          name);
                goto failed;
            }
            c = close + 1;
        }
        else {
            if (!s_path_char (*c)) {
                snprintf (reason, size,
                          "field \"path\": character 0x%02x at byte %zu is "
                          "not allowed",
                          (unsigned char) *c, (size_t) (c - template));
                goto failed;
            }
            number[0] = *c++;
            number[1] = 0;
            piece = number;
        }
        size_t length = strlen (piece);
        if (used + length > CW_FLOW_HTTP_PATH_MAX) {
            free (encoded);
            snprintf (reason, size, "field \"path\" expands to over %d bytes",
                      CW_FLOW_HTTP_PATH_MAX);
            goto failed;
        }
        memcpy (path + used, piece, length);
        used += length;
        path[used] = 0;
        free (encoded);
    }
    //  Values may complete a "%2e" the template began ("%{x}")
    if (s_has_dot_segment (path)) {
        snprintf (reason, size,
                  "field \"path\" may not hold \".\" or \"..\" segments");
        goto failed;
    }
    return path;
failed:
    free (path);
    return NULL;
}

static int
s_build (const cw_envelope_t *envelope,
         const cw_flow_target_t *target,
         cw_flow_request_t *request,
         char *reason,
         size_t size)
{
    assert (envelope);
    assert (target && target->base_url);
    assert (request);
    const json_t *data = cw_envelope_data (envelope);
    if (!json_is_object (data)) {
        snprintf (reason, size, "payload must be a JSON object");
        return -1;
    }
    const char *method = "POST";
    const json_t *value = json_object_get (data, "method");
    if (value) {
        method = json_string_value (value);
        if (!method
            || !(streq (method, "GET") || streq (method, "POST")
                 || streq (method, "PUT") || streq (method, "PATCH")
                 || streq (method, "DELETE"))) {
            snprintf (reason, size,
                      "field \"method\" must be GET, POST, PUT, PATCH or "
                      "DELETE");
            return -1;
        }
    }
    const char *template = json_string_value (json_object_get (data, "path"));
    if (!template) {
        snprintf (reason, size, "field \"path\" is missing or not a string");
        return -1;
    }
    const json_t *body = json_object_get (data, "body");
    if (body && !json_is_object (body) && !json_is_array (body)) {
        snprintf (reason, size, "field \"body\" must be an object or array");
        return -1;
    }
    if (body && streq (method, "GET")) {
        snprintf (reason, size, "field \"body\" is not allowed with GET");
        return -1;
    }
    char *path = cw_flow_http_expand (template, data, reason, size);
    if (!path)
        return -1;
    request->method = strdup (method);
    request->url = zsys_sprintf ("%s%s", target->base_url, path);
    request->body = body ? json_dumps (body, JSON_COMPACT) : NULL;
    assert (request->method && request->url && (request->body || !body));
    free (path);
    return 0;
}

static const cw_flow_handler_t s_generic = {.build = s_build};

const cw_flow_handler_t *
cw_flow_http_generic (void)
{
    return &s_generic;
}
