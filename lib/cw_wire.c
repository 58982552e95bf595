/*  =========================================================================
    cw_wire - CWP/1 messages (proto/cw_msg) over CZMQ sockets
    =========================================================================
*/
#include "cw_wire.h"
#include "cw_log.h"

#include <assert.h>

int
cw_wire_send (zsock_t *sock, const cw_msg_t *msg, const char *endpoint)
{
    assert (sock);
    assert (msg);
    char reason [CW_MSG_REASON_SIZE];
    cw_msg_frames_t *frames = cw_msg_encode (msg, reason, sizeof (reason));
    if (!frames) {
        cw_log (CW_LOG_ERROR, "encode_failed", "could not encode message",
                "command", cw_msg_command_name (msg->command), "reason",
                reason, NULL);
        return -1;
    }
    void *handle = zsock_resolve (sock);
    int rc = 0;
    for (size_t index = 0; index < frames->count && rc == 0; index++) {
        int flags = ZMQ_DONTWAIT
                  | (index + 1 < frames->count ? ZMQ_SNDMORE : 0);
        if (zmq_send (handle, frames->frame [index].data,
                      frames->frame [index].size, flags) < 0)
            rc = -1;
    }
    cw_msg_frames_destroy (&frames);
    if (rc)
        cw_log (CW_LOG_WARN, "send_failed", "could not send to broker",
                "endpoint", endpoint, "command",
                cw_msg_command_name (msg->command), "reason",
                zmq_strerror (zmq_errno ()), NULL);
    return rc;
}

cw_msg_t *
cw_wire_decode (zmsg_t *zmsg, size_t skip, cw_msg_error_t *error_p,
                char *reason, size_t size)
{
    assert (zmsg);
    //  One frame more than a message may have, so a message with too many
    //  frames is refused by the decoder, not truncated here.
    cw_msg_frame_t frames [CW_MSG_FRAMES + 1];
    size_t count = 0;
    size_t index = 0;
    for (zframe_t *frame = zmsg_first (zmsg);
         frame && count < CW_MSG_FRAMES + 1; frame = zmsg_next (zmsg)) {
        if (index++ < skip)
            continue;
        frames [count].data = zframe_data (frame);
        frames [count].size = zframe_size (frame);
        count++;
    }
    return cw_msg_decode (frames, count, error_p, reason, size);
}
