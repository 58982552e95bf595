/*  =========================================================================
    cw_zap - the broker's ZAP handler (RFC 27) over a directory of allowed
    public certificates, and a socket monitor that counts handshake failures

    cw_zap_actor answers ZAP requests on inproc://zeromq.zap.01. A CURVE
    client whose key is in the directory (any *.pub file; several keys may
    carry the same role, for rotation) is accepted with User-Id = its Z85
    public key and ZAP metadata `role` and `name`, so every message the
    broker receives carries them:

        const char *key = zframe_meta (frame, "User-Id");
        const char *role = zframe_meta (frame, "role");

    Any other request is refused (400), logged (event curve_refused, with
    the peer address, key and mechanism; at most one line per peer address
    per CW_ZAP_LOG_INTERVAL, with a count of the lines held back) and
    counted. Start it before any socket binds.

    Pipe commands (strings):
      RELOAD             re-reads the directory; replies "0" + key count,
                         or "-1" + error message (old keys stay in force)
      STATS              replies name, value frames: keys, accepted,
                         refused_unknown_key, refused_mechanism,
                         refused_domain, malformed
      WAIT name n msec   replies "1" once counter name >= n, "0" after msec
      $TERM              ends the actor

    cw_zap_monitor_actor watches one socket's handshakes (libzmq monitor
    events) and counts them: accepted, disconnected, handshake_succeeded,
    handshake_failed, handshake_failed_no_detail, handshake_failed_protocol,
    handshake_failed_auth. A failure is logged (event handshake_failed,
    with the peer address, the local endpoint and the reason), rate-limited
    per peer address like curve_refused. A plaintext client on a CURVE
    socket never reaches ZAP: this monitor is where it shows. The peer
    address is best effort: libzmq 4.3's stable monitor events carry none,
    so it is read from the accepted descriptor, which a handshake that
    fails within microseconds (a plaintext client on loopback) may already
    have closed; then peer_address is "unknown". Commands:
    STATS, WAIT, $TERM as above.
    =========================================================================
*/
#ifndef CW_ZAP_H_INCLUDED
#define CW_ZAP_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#define CW_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define CW_ZAP_LOG_INTERVAL 10000   //  Min msec between lines per peer

//  The ZAP handler actor; args is the certificate directory (copied).
void
    cw_zap_actor (zsock_t *pipe, void *args);

//  Starts cw_zap_actor over certs_dir and loads it. Returns NULL with a
//  message in error[size] when the directory cannot be read or another
//  ZAP handler is bound in this process. Caller owns return value and must
//  destroy it with zactor_destroy.
zactor_t *
    cw_zap_new (const char *certs_dir, char *error, size_t size);

//  Re-reads the directory. Returns the number of keys, or -1 with a
//  message in error[size].
int
    cw_zap_reload (zactor_t *zap, char *error, size_t size);

//  The monitor actor; args is the inproc endpoint of a libzmq socket
//  monitor (const char *, copied). Use cw_zap_monitor_new.
void
    cw_zap_monitor_actor (zsock_t *pipe, void *args);

//  Starts a monitor of sock's handshakes; call from the thread that owns
//  sock, before it binds. Caller owns return value and must destroy it
//  with zactor_destroy (before or after destroying sock).
zactor_t *
    cw_zap_monitor_new (zsock_t *sock);

//  Returns counter name of a cw_zap or monitor actor, -1 if unknown.
int64_t
    cw_zap_stat (zactor_t *actor, const char *name);

//  Waits until counter name of the actor reaches value; returns true if
//  it did within timeout_msec.
bool
    cw_zap_wait (zactor_t *actor, const char *name, int64_t value,
                 int timeout_msec);

#endif
