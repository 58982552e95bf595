/*  =========================================================================
    cw_mpjson - canonical msgpack form of a JSON value

    One packer for every place that writes a jansson tree as msgpack
    (envelopes, CWP/1 free-form maps): map keys sorted by byte value
    (strcmp) at every level, integers in their smallest encoding, reals as
    float64. Pure: no I/O, no allocation visible to the caller.

    The packer writes what it is given and cannot fail. Holding a value to
    the protocol's rules (depth, sizes, UTF-8, no NUL) is the callers' job:
    cw_envelope_validate checks the tree before it is packed; cw_msg_encode
    reads back the bytes packed, by the decoder's rules. So strings and
    object keys are written whole, every byte: a key holding a NUL byte
    (jansson 2.14, json_object_setn) is neither cut at the NUL nor looked
    up again, and is ordered by all its bytes, a key before the keys that
    extend it (the order of jansson's JSON_SORT_KEYS, and strcmp's on keys
    without NUL). The readers then refuse it, naming the field.
    =========================================================================
*/
#ifndef CW_MPJSON_H_INCLUDED
#define CW_MPJSON_H_INCLUDED

#include <jansson.h>
#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Writes value to packer in canonical form (see above).
void
    cw_mpjson_pack (msgpack_packer *packer, const json_t *value);

#ifdef __cplusplus
}
#endif

#endif
