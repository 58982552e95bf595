/*  =========================================================================
    cw_test_envelope - the reference msgpack form of an envelope, for the
    codec tests

    Packs an envelope's attributes that are set and its data as one map,
    through cw_mpjson_pack (canonical key order), with no checks: the
    bytes the encoders write when they accept it. The tests compare the
    encoders' output and refusals against it.
    =========================================================================
*/
#ifndef CW_TEST_ENVELOPE_H_INCLUDED
#define CW_TEST_ENVELOPE_H_INCLUDED

#include "cw_envelope.h"

#include <msgpack.h>

//  Packs envelope's reference form, or nil when envelope is NULL.
void
    cw_test_envelope_pack (msgpack_packer *packer,
                           const cw_envelope_t *envelope);

#endif
