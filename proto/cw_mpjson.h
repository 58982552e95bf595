/*  =========================================================================
    cw_mpjson - canonical msgpack form of a JSON value

    One packer for every place that writes a jansson tree as msgpack
    (envelopes, CWP/1 free-form maps): map keys sorted by byte value
    (strcmp) at every level, integers in their smallest encoding, reals as
    float64. Pure: no I/O, no allocation visible to the caller.
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
