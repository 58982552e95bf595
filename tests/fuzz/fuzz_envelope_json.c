//  fuzz-sources: proto/cw_envelope.c proto/cw_event.c proto/cw_version.c proto/cw_mpjson.c
/*  =========================================================================
    fuzz_envelope_json - libFuzzer target for cw_envelope_decode_json

    Any input must be rejected with a reason or decoded into an envelope
    whose canonical forms round-trip exactly: JSON -> envelope -> JSON is
    stable, and JSON -> msgpack -> envelope -> JSON gives the same text.
    Decoded envelopes also go through the event validators and the version
    registry.
    =========================================================================
*/
#include "cw_envelope.h"
#include "cw_event.h"
#include "cw_version.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char reason[CW_ENVELOPE_REASON_SIZE] = "";
    cw_envelope_t *envelope =
        cw_envelope_decode_json (data, size, reason, sizeof (reason));
    if (!envelope) {
        if (reason[0] == 0)
            abort ();
        return 0;
    }
    char *json = cw_envelope_encode_json (envelope, reason, sizeof (reason));
    size_t packed_size;
    void *packed = cw_envelope_encode_msgpack (envelope, &packed_size, reason,
                                               sizeof (reason));
    if (json && packed) {
        //  JSON -> envelope -> JSON is stable
        cw_envelope_t *again = cw_envelope_decode_json (
            json, strlen (json), reason, sizeof (reason));
        if (!again)
            abort ();
        char *json_again =
            cw_envelope_encode_json (again, reason, sizeof (reason));
        if (!json_again || strcmp (json, json_again) != 0)
            abort ();
        free (json_again);
        cw_envelope_destroy (&again);
        //  msgpack -> envelope -> JSON gives the same text
        cw_envelope_t *from_msgpack = cw_envelope_decode_msgpack (
            packed, packed_size, reason, sizeof (reason));
        if (!from_msgpack)
            abort ();
        char *json_from_msgpack =
            cw_envelope_encode_json (from_msgpack, reason, sizeof (reason));
        if (!json_from_msgpack || strcmp (json, json_from_msgpack) != 0)
            abort ();
        free (json_from_msgpack);
        cw_envelope_destroy (&from_msgpack);
    }
    else if (strncmp (reason, "envelope too large", 18) != 0)
        abort ();
    free (json);
    free (packed);

    cw_event_validate (cw_envelope_type (envelope), cw_envelope_data (envelope),
                       reason, sizeof (reason));
    cw_version_t *registry = cw_version_new_contract ();
    cw_version_resolve (registry, envelope, reason, sizeof (reason));
    cw_version_destroy (&registry);
    cw_envelope_destroy (&envelope);
    return 0;
}
