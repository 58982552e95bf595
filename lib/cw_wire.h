/*  =========================================================================
    cw_wire - CWP/1 messages (proto/cw_msg) over CZMQ sockets: the glue
    the broker's peers (workers, relays) share to send and read them

    proto/cw_msg stays pure (frames as bytes); this module moves those
    frames on and off ZeroMQ sockets.
    =========================================================================
*/
#ifndef CW_WIRE_H_INCLUDED
#define CW_WIRE_H_INCLUDED

#include "cw_msg.h"

#include <czmq.h>

//  Encodes msg and sends its frames on sock without blocking. Returns 0,
//  or -1 after logging encode_failed or send_failed (naming endpoint and
//  the command).
int
    cw_wire_send (zsock_t *sock, const cw_msg_t *msg, const char *endpoint);

//  Decodes the frames of zmsg, after its first skip frames (1 for the
//  routing id a ROUTER adds), into a message. Returns NULL with the reason
//  (and *error_p when given) if they do not decode. Caller owns return
//  value and must destroy it when done.
cw_msg_t *
    cw_wire_decode (zmsg_t *zmsg, size_t skip, cw_msg_error_t *error_p,
                    char *reason, size_t size);

#endif
