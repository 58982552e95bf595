/*  =========================================================================
    cw_broker - the broker actor: ROUTER + CURVE + timers around cw_core

    Binds a ROUTER as CURVE server (start the ZAP handler first), reads
    each message's User-Id and role (ZAP metadata), refuses commands
    outside the role (ERROR forbidden), drops malformed input (counted,
    logged once per peer per minute, DISCONNECT after 10 in a row), feeds
    cw_core and performs its actions; all SQL goes through the cw_store
    actor it starts.

    Pipe commands (strings):
      ENDPOINT     replies the bound endpoint (port 0 resolved)
      DRAIN        starts the core's drain; the actor sends "EXIT" on the
                   pipe once drained, then waits for $TERM
      STATS        replies name, value pairs of the counters
      $TERM        ends at once
    The actor signals 0 once bound, -1 if it could not start.
    =========================================================================
*/
#ifndef CW_BROKER_H_INCLUDED
#define CW_BROKER_H_INCLUDED

#include "cw_core.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define CW_BROKER_MALFORMED_MAX 10      //  Malformed in a row: DISCONNECT
#define CW_BROKER_LOG_INTERVAL 60000    //  Malformed log lines, per peer
#define CW_BROKER_HTTP_HOST_SIZE 64     //  server/http host, bytes
#define CW_BROKER_METRICS_MSEC 250      //  /metrics and /healthz refresh
#define CW_BROKER_GAUGES_MSEC 5000      //  Lag and dead letters from the
                                        //  table, with server/http

//  Event type -> job flow and target (PUBLISH).
typedef struct {
    const char *event_type;     //  e.g. "order.created.v1"
    const char *flow;           //  e.g. "order.create"
    const char *target;         //  e.g. "erp", may be NULL
} cw_broker_route_t;

//  Configuration, borrowed until the actor signals.
typedef struct {
    const char *endpoint;       //  Bind endpoint, e.g. tcp://127.0.0.1:0
    zcert_t *server_cert;       //  Broker's secret certificate (borrowed)
    const char *db_uri;         //  libpq URI (role cw_broker)
    bool poll_only;             //  No LISTEN
    int64_t inbox_ttl_msec;     //  Inbox rows' lifetime
    int64_t retention_msec;     //  Done jobs kept this long (0: for ever)
    int64_t purge_msec;         //  Retention runs this often
    int64_t drain_msec;         //  How long DRAIN awaits results
    int64_t replay_rate;        //  Replayed jobs due per second (0: all
                                //  at once)
    cw_core_config_t core;      //  The core (broker_id, leases, tables)
    const cw_broker_route_t *routes;    //  PUBLISH mapping
    size_t route_count;
    const char *http_host;      //  GET /healthz, /metrics on this address
                                //  (an IP literal); NULL: no HTTP
    int http_port;              //  Its port, 0: any free one
} cw_broker_config_t;

//  The broker actor; args is a cw_broker_config_t *.
void
    cw_broker_actor (zsock_t *pipe, void *args);

#endif
