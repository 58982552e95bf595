/*  =========================================================================
    cw_client - the operator client's session with one broker
    =========================================================================
*/
#include "cw_client.h"
#include "cw_curve.h"
#include "cw_wire.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define CW_CLIENT_MONITOR_EVENTS                                              \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED                             \
     | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL   \
     | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
#define CW_CLIENT_EVENT_SIZE 6          //  Monitor frame: u16 event, u32 value
#define CW_CLIENT_POLL_MSEC 100         //  Longest single wait
#define CW_CLIENT_LINGER_MSEC 200       //  For the closing DISCONNECT
#define CW_CLIENT_KEY_BYTES 32          //  A CURVE key, binary
#define CW_CLIENT_NAME_SIZE 64          //  Room for the monitor's inproc name
#define CW_CLIENT_WITHIN_SIZE 32        //  Room for "1500 ms"
#define CW_CLIENT_MSEC_PER_SEC 1000

struct _cw_client_t {
    zsock_t *dealer;            //  To the broker, CURVE client
    zsock_t *monitor;           //  PAIR reading the dealer's socket events
    char *endpoint;             //  Broker endpoint, as given
    int64_t request_id;         //  Last request id sent
    bool connected;             //  A TCP connection was made once
    bool handshake_failed;      //  A CURVE handshake failed once
    bool handshake_succeeded;   //  A CURVE handshake succeeded once
    bool answered;              //  The broker answered once
};

bool
cw_client_key_valid (const char *text)
{
    if (!text || strlen (text) != CW_CURVE_KEY_TXT)
        return false;
    uint8_t key [CW_CLIENT_KEY_BYTES];
    return zmq_z85_decode (key, text) != NULL;
}

cw_client_t *
cw_client_new (const char *endpoint, const zcert_t *cert,
               const char *broker_key, char *error, size_t size)
{
    assert (endpoint);
    assert (cert);
    assert (broker_key);
    assert (error);
    if (!cw_client_key_valid (broker_key)) {
        snprintf (error, size, "broker key \"%s\" is not 40 characters of "
                  "Z85", broker_key);
        return NULL;
    }
    cw_client_t *self = (cw_client_t *) zmalloc (sizeof (cw_client_t));
    self->endpoint = strdup (endpoint);
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_linger (self->dealer, 0);
    cw_curve_client_setup (self->dealer, cert, broker_key);
    //  The monitor's inproc name is unique in this process (one client)
    char monitor [CW_CLIENT_NAME_SIZE];
    snprintf (monitor, sizeof (monitor), "inproc://cw-client-monitor-%p",
              (void *) self);
    if (zmq_socket_monitor (zsock_resolve (self->dealer), monitor,
                            CW_CLIENT_MONITOR_EVENTS) == 0) {
        self->monitor = zsock_new (ZMQ_PAIR);
        assert (self->monitor);
        if (zsock_connect (self->monitor, "%s", monitor) != 0)
            zsock_destroy (&self->monitor);
    }
    if (zsock_connect (self->dealer, "%s", endpoint) != 0) {
        snprintf (error, size, "cannot connect to \"%s\": %s (use e.g. "
                  "tcp://broker.example:5570)", endpoint,
                  zmq_strerror (zmq_errno ()));
        cw_client_destroy (&self);
        return NULL;
    }
    return self;
}

void
cw_client_destroy (cw_client_t **self_p)
{
    assert (self_p);
    cw_client_t *self = *self_p;
    if (!self)
        return;
    if (self->answered) {
        //  Tell the broker we are gone, so it forgets us at once
        cw_msg_t *bye = cw_msg_new (CW_MSG_CLIENT, CW_MSG_DISCONNECT);
        bye->disconnect.reason = strdup ("done");
        zsock_set_linger (self->dealer, CW_CLIENT_LINGER_MSEC);
        cw_wire_send (self->dealer, bye, self->endpoint);
        cw_msg_destroy (&bye);
    }
    if (self->monitor)
        zmq_socket_monitor (zsock_resolve (self->dealer), NULL, 0);
    zsock_destroy (&self->monitor);
    zsock_destroy (&self->dealer);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

const char *
cw_client_endpoint (cw_client_t *self)
{
    assert (self);
    return self->endpoint;
}

//  Reads one monitor event; returns the ZAP status of a refused
//  certificate (HANDSHAKE_FAILED_AUTH), else 0.
static int
s_monitor_event (cw_client_t *self)
{
    zmsg_t *event = zmsg_recv (self->monitor);
    if (!event)
        return 0;
    zframe_t *head = zmsg_first (event);
    int status = 0;
    if (head && zframe_size (head) == CW_CLIENT_EVENT_SIZE) {
        uint16_t kind;
        uint32_t value;
        memcpy (&kind, zframe_data (head), sizeof (kind));
        memcpy (&value, zframe_data (head) + sizeof (kind), sizeof (value));
        if (kind == ZMQ_EVENT_CONNECTED)
            self->connected = true;
        else
        if (kind == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            self->handshake_succeeded = true;
        else
        if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            status = value ? (int) value : -1;
        else
        if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
            || kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
            self->handshake_failed = true;
    }
    zmsg_destroy (&event);
    return status;
}

//  Writes "10 s" or "500 ms".
static void
s_duration_text (int64_t msec, char *text, size_t size)
{
    if (msec % CW_CLIENT_MSEC_PER_SEC == 0)
        snprintf (text, size, "%lld s",
                  (long long) (msec / CW_CLIENT_MSEC_PER_SEC));
    else
        snprintf (text, size, "%lld ms", (long long) msec);
}

static void
s_timeout_error (cw_client_t *self, int64_t timeout_msec, char *error,
                 size_t size)
{
    char within [CW_CLIENT_WITHIN_SIZE];
    s_duration_text (timeout_msec, within, sizeof (within));
    const char *hint;
    if (self->handshake_succeeded)
        hint = "the connection was up, the broker did not answer";
    else
    if (self->connected && self->handshake_failed)
        hint = "the CURVE handshake failed: is --broker-key (or "
               "CAUSEWAY_BROKER_KEY) the broker's public key?";
    else
    if (self->connected)
        hint = "a connection was made but the CURVE handshake did not "
               "complete: is --broker-key (or CAUSEWAY_BROKER_KEY) the "
               "broker's public key?";
    else
        hint = "no connection could be made: is the broker running there?";
    snprintf (error, size, "no answer from the broker at %s within %s (%s)",
              self->endpoint, within, hint);
}

//  The next message from the broker, or NULL; HEARTBEATs are answered by
//  nothing (the broker does not expect it from a client) and skipped.
static cw_msg_t *
s_recv (cw_client_t *self)
{
    zmsg_t *in = zmsg_recv (self->dealer);
    if (!in)
        return NULL;
    char reason [CW_MSG_REASON_SIZE];
    cw_msg_t *msg = cw_wire_decode (in, 0, NULL, reason, sizeof (reason));
    zmsg_destroy (&in);
    if (msg && msg->protocol != CW_MSG_CLIENT)
        cw_msg_destroy (&msg);
    if (msg && msg->command == CW_MSG_HEARTBEAT)
        cw_msg_destroy (&msg);
    return msg;
}

cw_msg_t *
cw_client_request (cw_client_t *self, const char *op, json_t **args_p,
                   int64_t timeout_msec, char *error, size_t size)
{
    assert (self);
    assert (op);
    assert (args_p);
    assert (timeout_msec > 0);
    assert (error);
    cw_msg_t *request = cw_msg_new (CW_MSG_CLIENT, CW_MSG_REQUEST);
    request->request.request_id = ++self->request_id;
    request->request.op = strdup (op);
    request->request.args = *args_p ? *args_p : json_object ();
    *args_p = NULL;
    int rc = cw_wire_send (self->dealer, request, self->endpoint);
    cw_msg_destroy (&request);
    if (rc) {
        snprintf (error, size, "could not send the request to the broker "
                  "at %s", self->endpoint);
        return NULL;
    }
    int64_t deadline = zclock_mono () + timeout_msec;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        zmq_pollitem_t items [] = {
            {zsock_resolve (self->dealer), 0, ZMQ_POLLIN, 0},
            {self->monitor ? zsock_resolve (self->monitor) : NULL, 0,
             ZMQ_POLLIN, 0}};
        int count = self->monitor ? 2 : 1;
        long wait = left < CW_CLIENT_POLL_MSEC ? (long) left
                                               : CW_CLIENT_POLL_MSEC;
        if (zmq_poll (items, count, wait) < 0) {
            snprintf (error, size, "interrupted while waiting for the broker "
                      "at %s", self->endpoint);
            return NULL;
        }
        if (count == 2 && (items [1].revents & ZMQ_POLLIN)) {
            int status = s_monitor_event (self);
            if (status) {
                snprintf (error, size, "the broker at %s refused this "
                          "client's certificate (ZAP status %d): its .pub "
                          "must be in the broker's peers directory with "
                          "role admin", self->endpoint, status);
                return NULL;
            }
        }
        if (!(items [0].revents & ZMQ_POLLIN))
            continue;
        cw_msg_t *msg = s_recv (self);
        if (!msg)
            continue;
        self->answered = true;
        if (msg->command == CW_MSG_RESPONSE
            && msg->response.request_id == self->request_id)
            return msg;
        if (msg->command == CW_MSG_ERROR) {
            snprintf (error, size, "the broker at %s refused the request: "
                      "%s: %s", self->endpoint, msg->error.code,
                      msg->error.message);
            cw_msg_destroy (&msg);
            return NULL;
        }
        if (msg->command == CW_MSG_DISCONNECT) {
            snprintf (error, size, "the broker at %s ended the session%s%s",
                      self->endpoint, msg->disconnect.reason ? ": " : "",
                      msg->disconnect.reason ? msg->disconnect.reason : "");
            self->answered = false;
            cw_msg_destroy (&msg);
            return NULL;
        }
        //  A RESPONSE to an earlier request, or nothing for us: skip it
        cw_msg_destroy (&msg);
    }
    s_timeout_error (self, timeout_msec, error, size);
    return NULL;
}
