//  fuzz-sources: proto/cw_envelope.c proto/cw_event.c proto/cw_version.c proto/cw_mpjson.c
/*  =========================================================================
    fuzz_envelope_msgpack - libFuzzer target for cw_envelope_decode_msgpack

    Any input must be rejected with a reason or decoded into an envelope
    whose canonical forms round-trip exactly: msgpack -> envelope -> JSON
    -> envelope -> msgpack gives the same bytes. Decoded envelopes also go
    through the event validators and the version registry.
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_event.h"
#include "cw_version.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  Encoding may only fail because the canonical form outgrew the limit
static void
s_check_encode_failure (const char *reason)
{
    if (strncmp (reason, "envelope too large", 18) != 0)
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope =
        cw_envelope_decode_msgpack (data, size, reason, sizeof (reason));
    if (!envelope) {
        if (reason[0] == 0)
            abort ();
        return 0;
    }
    size_t first_size;
    void *first = cw_envelope_encode_msgpack (envelope, &first_size, reason,
                                              sizeof (reason));
    char *json = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    if (first && json) {
        cw_envelope_t *from_json = cw_envelope_decode_json (
            json, strlen (json), reason, sizeof (reason));
        if (!from_json)
            abort ();
        size_t second_size;
        void *second = cw_envelope_encode_msgpack (from_json, &second_size,
                                                   reason, sizeof (reason));
        if (!second || second_size != first_size
            || memcmp (first, second, first_size) != 0)
            abort ();
        free (second);
        cw_envelope_destroy (&from_json);
    }
    else
        s_check_encode_failure (reason);
    free (first);
    free (json);

    cw_event_validate (cw_envelope_type (envelope), cw_envelope_data (envelope),
                       reason, sizeof (reason));
    cw_version_t *registry = cw_version_new_contract ();
    cw_version_resolve (registry, envelope, reason, sizeof (reason));
    cw_version_destroy (&registry);
    cw_envelope_destroy (&envelope);
    return 0;
}
