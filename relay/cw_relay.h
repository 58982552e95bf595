/*  =========================================================================
    cw_relay - publishes an island's outbox to the broker (CWR01 PUBLISH /
    ACK, PROTOCOL.md §4.8)

    Reads unpublished rows of <island>.outbox in id order with the
    island's own database role, turns each row's payload (the whole
    CloudEvents envelope as JSON) into an envelope, publishes them as one
    PUBLISH over a CURVE DEALER, waits for the ACK and only then marks the
    rows published (accepted and duplicate keys) or rejected (with the
    broker's reason) in one UPDATE. At-least-once publishing plus the
    broker's inbox de-duplication gives each event exactly one job.
    Woken by LISTEN cw_<island>_outbox, with a poll interval as safety net
    (or poll only, for PgBouncer). cw_relay_run is the one poll loop
    (zmq_poll over the broker socket, the LISTEN socket and a signal
    pipe). See docs/relay.md.
    =========================================================================
*/
#ifndef CW_RELAY_H_INCLUDED
#define CW_RELAY_H_INCLUDED

#include "cw_config.h"
#include "cw_log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CW_RELAY_RETRY_MAX 30000  //  Longest reconnect / retry delay, msec

//  Effective configuration (docs/relay.md lists every key). Strings are
//  owned by the cw_config_t.
typedef struct {
    const char *broker;             //  Broker endpoint
    const char *broker_public_key;  //  Z85 public key of the broker
    const char *certificate;        //  Path of the relay's secret cert
    const char *db_uri_file;        //  Path of the file holding the URI
    bool poll_only;                 //  No LISTEN (PgBouncer)
    int64_t poll_msec;              //  Safety-net read interval
    const char *island;             //  Island published for ("shop")
    int64_t batch_size;             //  Rows per PUBLISH at most
    int64_t ack_timeout_msec;       //  Publish again after this
    int64_t heartbeat_msec;         //  Heartbeat interval
    int64_t liveness;               //  Silent intervals = broker lost
    int64_t reconnect_msec;         //  First reconnect / retry delay
    int64_t shutdown_timeout_msec;  //  Wait for the ACK on SIGTERM
    cw_log_level_t log_level;       //  Lowest level logged
} cw_relay_config_t;

//  The configuration schema (ZPL paths, CW_RELAY_* variables).
const cw_config_entry_t *cw_relay_schema (void);

typedef struct _cw_relay_t cw_relay_t;

//  Creates a relay: checks the broker key and endpoint and the island,
//  loads its certificate and the database URI. Connects nothing yet.
//  Returns NULL with a message naming the config key in error[size].
//  Caller owns return value and must destroy it when done.
cw_relay_t *
cw_relay_new (const cw_relay_config_t *config, char *error, size_t size);

//  Destroys the relay (a batch in flight stays unpublished and is read
//  again by the next run). Tolerates NULL.
void cw_relay_destroy (cw_relay_t **self_p);

//  Runs until signal_fd (read end of a signal pipe; -1 for none)
//  delivers a byte: then reads no more rows, waits up to
//  shutdown_timeout for the ACK of the batch in flight, marks it, sends
//  DISCONNECT and returns 0. A second byte returns 1 at once. Returns 1
//  also when the database cannot be reached at start, and when polling
//  fails (a runtime failure: a supervisor restarts it).
int cw_relay_run (cw_relay_t *self, int signal_fd);

#endif
