//  fuzz-sources: proto/cw_msg.c proto/cw_envelope.c proto/cw_mpjson.c
/*  =========================================================================
    fuzz_cw_msg - libFuzzer target for the CWP/1 wire codec

    Input framing: up to 4 frames, each a 2-byte big-endian length then
    that many bytes (a short last frame takes what is left). Every decode
    that succeeds must re-encode, and the re-encoding must decode and
    encode to the same bytes; any difference aborts.
    =========================================================================
*/
#include "cw_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_FRAMES_MAX 4

static void
s_same (const cw_msg_frames_t *left, const cw_msg_frames_t *right)
{
    if (left->count != right->count)
        abort ();
    for (size_t index = 0; index < left->count; index++)
        if (left->frame[index].size != right->frame[index].size
            || memcmp (left->frame[index].data, right->frame[index].data,
                       left->frame[index].size)
                   != 0)
            abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    cw_msg_frame_t frames[S_FRAMES_MAX];
    size_t count = 0;
    size_t pos = 0;
    while (count < S_FRAMES_MAX && size - pos >= 2) {
        size_t length = ((size_t) data[pos] << 8) | data[pos + 1];
        pos += 2;
        if (length > size - pos)
            length = size - pos;
        //  A private copy, so ASan sees reads past the frame
        frames[count].data = malloc (length ? length : 1);
        memcpy (frames[count].data, data + pos, length);
        frames[count].size = length;
        pos += length;
        count++;
    }
    char reason[CW_MSG_REASON_SIZE];
    cw_msg_error_t error;
    cw_msg_t *msg =
        cw_msg_decode (frames, count, &error, reason, sizeof (reason));
    if (msg) {
        if (error != CW_MSG_VALID)
            abort ();
        cw_msg_frames_t *first = cw_msg_encode (msg, reason, sizeof (reason));
        if (!first)
            abort ();  //  Whatever decodes must encode
        cw_msg_t *again = cw_msg_decode (first->frame, first->count, &error,
                                         reason, sizeof (reason));
        if (!again)
            abort ();
        cw_msg_frames_t *second =
            cw_msg_encode (again, reason, sizeof (reason));
        if (!second)
            abort ();
        s_same (first, second);
        cw_msg_frames_destroy (&second);
        cw_msg_destroy (&again);
        cw_msg_frames_destroy (&first);
        cw_msg_destroy (&msg);
    }
    else if (error == CW_MSG_VALID || reason[0] == 0)
        abort ();  //  Every rejection has a class and reason
    for (size_t index = 0; index < count; index++)
        free (frames[index].data);
    return 0;
}
