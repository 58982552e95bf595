/*  =========================================================================
    cw_worker - the stateless worker: sessions with brokers (CWP/1), jobs
    run through the curl multi runner, results batched back

    One DEALER per broker (CURVE client with the worker's certificate),
    READY with the flows and credit, JOBs run up to `inflight` at once,
    RESULTs batched per poll turn with the credit they return, heartbeats
    both ways (PROTOCOL.md §4.5), reconnect with backoff when a broker is
    lost. cw_worker_run is the one poll loop (zmq_poll over the broker
    sockets, curl's sockets and a signal pipe).
    =========================================================================
*/
#ifndef CW_WORKER_H_INCLUDED
#define CW_WORKER_H_INCLUDED

#include "cw_config.h"
#include "cw_log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CW_WORKER_BROKERS_MAX 16       //  Brokers one worker serves
#define CW_WORKER_RESPONSE_MAX 16384   //  Response JSON bytes in a RESULT
#define CW_WORKER_RECONNECT_MAX 30000  //  Longest reconnect backoff, msec

//  Effective configuration (see worker/main.c for the schema and
//  docs/worker.md for every key). Strings are owned by the cw_config_t.
typedef struct {
    const char *brokers;             //  Comma-separated endpoints
    const char *broker_public_key;   //  Z85 public key of the brokers
    const char *certificate;         //  Path of the worker's secret cert
    const char *flows;               //  Comma-separated flows to serve
    const char *name;                //  Informational name, "" = host/pid
    int64_t inflight;                //  Calls in flight at most
    int64_t heartbeat_msec;          //  Heartbeat interval
    int64_t liveness;                //  Intervals of silence = broker lost
    int64_t reconnect_msec;          //  First reconnect delay
    int64_t shutdown_timeout_msec;   //  Time to finish calls on SIGTERM
    const char *target_name;         //  Target served, as in JOB "target"
    const char *target_base_url;     //  Where its calls go
    const char *target_credentials;  //  Path of the credential file
    int target_auth;                 //  cw_flow_auth_t
    int64_t connect_timeout_msec;    //  Connect timeout per call
    int64_t timeout_msec;            //  Whole-call timeout
    cw_log_level_t log_level;        //  Lowest level logged
} cw_worker_config_t;

//  The configuration schema (ZPL paths, CW_WORKER_* variables).
const cw_config_entry_t *cw_worker_schema (void);

typedef struct _cw_worker_t cw_worker_t;

//  Creates a worker: loads its certificate and the target's credential,
//  registers the flows, checks the broker list. Returns NULL with a
//  message naming the config key in error[size].
//  Caller owns return value and must destroy it when done.
cw_worker_t *
cw_worker_new (const cw_worker_config_t *config, char *error, size_t size);

//  Destroys the worker (abandons anything in flight). Tolerates NULL.
void cw_worker_destroy (cw_worker_t **self_p);

//  Runs until signal_fd (the read end of a signal pipe; -1 for none)
//  delivers a byte: then stops taking jobs, finishes calls in flight for
//  up to shutdown_timeout, reports them, abandons the rest, sends
//  DISCONNECT and returns 0. A second byte during that drain returns 1
//  at once; so does a failed poll (after the same goodbye), a runtime
//  failure a supervisor should restart.
int cw_worker_run (cw_worker_t *self, int signal_fd);

#endif
