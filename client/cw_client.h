/*  =========================================================================
    cw_client - the operator client's session with one broker: a DEALER
    socket, CURVE client with an admin certificate, speaking CWP/1
    REQUEST / RESPONSE (proto/PROTOCOL.md §4.9)

    One request at a time: cw_client_request sends REQUEST and waits for
    the RESPONSE carrying its request_id (HEARTBEATs and stale answers are
    skipped). A socket monitor watches the connection, so that a broker
    that is down (nothing accepts the TCP connection), a wrong broker key
    (the CURVE handshake fails) and a certificate the broker refuses (ZAP)
    are told apart in the error text.
    =========================================================================
*/
#ifndef CW_CLIENT_H_INCLUDED
#define CW_CLIENT_H_INCLUDED

#include "cw_msg.h"

#include <czmq.h>
#include <jansson.h>

#define CW_CLIENT_ERROR_SIZE 1024  //  Room for any error text

typedef struct _cw_client_t cw_client_t;

//  Connects to endpoint as a CURVE client with cert's keys (borrowed;
//  only used here), trusting the broker key broker_key (40 chars of Z85).
//  Returns NULL with a message in error[size] if the endpoint is not
//  usable. Caller owns return value and must destroy it when done.
cw_client_t *
    cw_client_new (const char *endpoint, const zcert_t *cert,
                   const char *broker_key, char *error, size_t size);

//  Says DISCONNECT to the broker if it ever answered, closes the socket
//  and frees the client. Tolerates NULL, nulls *self_p.
void
    cw_client_destroy (cw_client_t **self_p);

//  The endpoint the client connects to.
const char *
    cw_client_endpoint (cw_client_t *self);

//  Sends REQUEST {op, args} (args taken; NULL is sent as {}) and waits up
//  to timeout_msec for its RESPONSE. Returns the RESPONSE (its status may
//  be "error": check response.error_code), or NULL with the reason in
//  error[size]: no answer in time (naming the endpoint and what the
//  connection did), certificate refused by the broker, ERROR or
//  DISCONNECT from the broker. Caller owns return value and must destroy
//  it when done.
cw_msg_t *
    cw_client_request (cw_client_t *self, const char *op, json_t **args_p,
                       int64_t timeout_msec, char *error, size_t size);

//  Checks text as a broker public key: 40 characters of Z85. Returns
//  true if it is one.
bool
    cw_client_key_valid (const char *text);

#endif
