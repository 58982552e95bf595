/*  =========================================================================
    cw_envelope - the CloudEvents envelope around every event, with strict
    msgpack and JSON codecs

    Pure: no I/O, no clocks. The wire forms and limits are described in
    docs/envelope.md.
    =========================================================================
*/
#ifndef CW_ENVELOPE_H_INCLUDED
#define CW_ENVELOPE_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Fixed attribute values
#define CW_ENVELOPE_SPECVERSION "1.0"
#define CW_ENVELOPE_DATACONTENTTYPE "application/json"

//  Limits, in bytes unless said otherwise
#define CW_ENVELOPE_MAX_SIZE (1024 * 1024)  //  Whole encoded envelope
#define CW_ENVELOPE_MAX_DEPTH 16            //  Container levels in data
#define CW_ENVELOPE_ID_MAX 128
#define CW_ENVELOPE_SOURCE_MAX 256
#define CW_ENVELOPE_TYPE_MAX 128
#define CW_ENVELOPE_TENANTID_MAX 64
#define CW_ENVELOPE_CORRELATIONID_MAX 128
#define CW_ENVELOPE_IDEMPOTENCYKEY_MAX 255
#define CW_ENVELOPE_KEY_MAX 255       //  Any object key in data
#define CW_ENVELOPE_VERSION_MAX 9999  //  Largest .vN of a type
#define CW_ENVELOPE_REASON_SIZE 512   //  Enough for any reason text

typedef struct _cw_envelope_t cw_envelope_t;

//  msgpack-c's growing buffer (<msgpack.h>), for cw_envelope_append_msgpack
struct msgpack_sbuffer;

//  Create an empty envelope; set every required attribute and the data
//  before encoding. Caller owns return value and must destroy it when done.
cw_envelope_t *cw_envelope_new (void);

//  Destroy an envelope and its data; tolerates NULL, nulls the pointer.
void cw_envelope_destroy (cw_envelope_t **self_p);

//  Deep copy. Caller owns return value and must destroy it when done.
cw_envelope_t *cw_envelope_dup (const cw_envelope_t *self);

//  Attributes: getters return NULL when unset; setters copy the string
//  (values are checked by cw_envelope_validate and the encoders).
const char *cw_envelope_specversion (const cw_envelope_t *self);
const char *cw_envelope_datacontenttype (const cw_envelope_t *self);
const char *cw_envelope_id (const cw_envelope_t *self);
void cw_envelope_set_id (cw_envelope_t *self, const char *id);
const char *cw_envelope_source (const cw_envelope_t *self);
void cw_envelope_set_source (cw_envelope_t *self, const char *source);
//  Type with its version suffix, e.g. "order.created.v1"
const char *cw_envelope_type (const cw_envelope_t *self);
void cw_envelope_set_type (cw_envelope_t *self, const char *type);
//  RFC 3339 timestamp with offset, e.g. "2025-01-31T10:02:03.123Z"
const char *cw_envelope_time (const cw_envelope_t *self);
void cw_envelope_set_time (cw_envelope_t *self, const char *time);
const char *cw_envelope_tenant_id (const cw_envelope_t *self);
void cw_envelope_set_tenant_id (cw_envelope_t *self, const char *tenant_id);
const char *cw_envelope_correlation_id (const cw_envelope_t *self);
void cw_envelope_set_correlation_id (cw_envelope_t *self,
                                     const char *correlation_id);
//  W3C traceparent; optional, NULL removes it
const char *cw_envelope_traceparent (const cw_envelope_t *self);
void cw_envelope_set_traceparent (cw_envelope_t *self, const char *traceparent);
const char *cw_envelope_idempotency_key (const cw_envelope_t *self);
void cw_envelope_set_idempotency_key (cw_envelope_t *self,
                                      const char *idempotency_key);

//  The payload, a JSON object owned by the envelope. The getter returns a
//  borrowed reference that may be changed in place (upcasters do).
json_t *cw_envelope_data (const cw_envelope_t *self);
//  Takes ownership of *data_p (a reference) and nulls the caller's pointer.
void cw_envelope_set_data (cw_envelope_t *self, json_t **data_p);

//  Check every attribute and the data against the rules and limits.
//  Returns 0 if valid, else -1 with reason naming the field.
int cw_envelope_validate (const cw_envelope_t *self,
                          char *reason,
                          size_t reason_size);

//  Encode to the canonical msgpack form. Returns a malloc'd buffer and sets
//  *size_p, or NULL with reason if the envelope is invalid or too large.
//  Caller owns return value and must free it when done.
void *cw_envelope_encode_msgpack (const cw_envelope_t *self,
                                  size_t *size_p,
                                  char *reason,
                                  size_t reason_size);

//  Append the canonical msgpack form to buffer (a msgpack_sbuffer), for
//  codecs that nest envelopes in their own messages. Returns 0, or -1 with
//  reason if the envelope is invalid or too large; buffer keeps its size
//  then. What this accepts, cw_envelope_decode_msgpack accepts.
int cw_envelope_append_msgpack (const cw_envelope_t *self,
                                struct msgpack_sbuffer *buffer,
                                char *reason,
                                size_t reason_size);

//  Encode to the canonical JSON form (CloudEvents structured mode),
//  NUL-terminated. Returns NULL with reason if invalid or too large.
//  Caller owns return value and must free it when done.
char *cw_envelope_encode_json (const cw_envelope_t *self,
                               char *reason,
                               size_t reason_size);

//  Decode and validate the msgpack form. Returns NULL with reason naming
//  the field on any problem. Caller owns return value and must destroy it.
cw_envelope_t *cw_envelope_decode_msgpack (const void *data,
                                           size_t size,
                                           char *reason,
                                           size_t reason_size);

//  Decode and validate the JSON form. Returns NULL with reason naming the
//  field on any problem. Caller owns return value and must destroy it.
cw_envelope_t *cw_envelope_decode_json (const void *data,
                                        size_t size,
                                        char *reason,
                                        size_t reason_size);

//  True if text is a strict RFC 3339 date-time with an offset ("Z" or
//  "+hh:mm"), upper-case "T" and "Z", a real calendar date, seconds 00-59
//  and at most 9 fraction digits.
bool cw_envelope_time_valid (const char *text);

//  True if text is a W3C traceparent of version 00 with non-zero ids, all
//  hex digits lower-case.
bool cw_envelope_traceparent_valid (const char *text);

//  True if size bytes at text are strict UTF-8: no overlong forms, no
//  surrogates, nothing above U+10FFFF. The rule every string and key of
//  an envelope (and of a CWP/1 body) is held to.
bool cw_envelope_utf8_valid (const void *text, size_t size);

//  Split a type "family.vN" into its family and version. Returns 0, or -1
//  if the type does not have that form (lower-case dotted family, version
//  1 to CW_ENVELOPE_VERSION_MAX without leading zero) or family_size is
//  too small.
int cw_envelope_parse_type (const char *type,
                            char *family,
                            size_t family_size,
                            int *version_p);

#ifdef __cplusplus
}
#endif

#endif
