/*  =========================================================================
    cw_version - the registry of contract versions: which versions of each
    event family are understood, which is current, and the compatibility
    handlers (upcasters) that turn version N into N+1

    Pure: no I/O. The compatibility rule is in docs/envelope.md.
    =========================================================================
*/
#ifndef CW_VERSION_H_INCLUDED
#define CW_VERSION_H_INCLUDED

#include "cw_envelope.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Prefix of every reason for a version that is not understood
#define CW_VERSION_UNSUPPORTED "unsupported_contract_version"

//  Turns a payload of version N into version N+1, in place. Returns 0, or
//  -1 with reason if this payload cannot be converted.
typedef int (cw_upcast_fn) (json_t *payload, char *reason, size_t reason_size);

typedef struct _cw_version_t cw_version_t;

//  Create an empty registry. Caller owns return value and must destroy it.
cw_version_t *cw_version_new (void);

//  Create the registry of the shipped contract: every event type of
//  cw_event (the seven v1 events), each current at its version.
//  Caller owns return value and must destroy it when done.
cw_version_t *cw_version_new_contract (void);

//  Destroy a registry; tolerates NULL, nulls the pointer.
void cw_version_destroy (cw_version_t **self_p);

//  Register a version of a family (type without ".vN"), which becomes the
//  family's current version. The first version of a family takes no
//  upcaster (upcast NULL) and is the oldest understood; each later version
//  must be current + 1 and takes the upcaster from current to it.
//  Returns 0, or -1 if the family name or version is invalid or the rule
//  above is broken.
int cw_version_register (cw_version_t *self,
                         const char *family,
                         int version,
                         cw_upcast_fn *upcast);

//  Current version of a family, 0 if the family is unknown.
int cw_version_current (const cw_version_t *self, const char *family);

//  Oldest understood version of a family, 0 if the family is unknown.
int cw_version_oldest (const cw_version_t *self, const char *family);

//  True if the type "family.vN" is understood (upcastable or current).
bool cw_version_understands (const cw_version_t *self, const char *type);

//  Bring an envelope to the current version of its family: upcast its data
//  step by step (N -> N+1 -> ... -> current) and rewrite its type. The
//  envelope is changed only on success. Returns 0, or -1 with reason:
//  "unsupported_contract_version: order.created.v7; supported: v1" when the
//  version or family is not understood, or "could not upcast ..." when a
//  handler refused the payload.
int cw_version_resolve (const cw_version_t *self,
                        cw_envelope_t *envelope,
                        char *reason,
                        size_t reason_size);

#ifdef __cplusplus
}
#endif

#endif
