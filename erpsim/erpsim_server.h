/*  =========================================================================
    erpsim_server - the ERP simulator: API, idempotency, fault injection,
    feeds and introspection (see docs/erpsim.md)

    Two cw_http listeners: the API (credentials required) and the control
    listener (/_control/..., /_introspect; no credentials: bind it to
    loopback). All state lives in one erpsim_server_t guarded by one
    mutex; handlers hold it only while they touch state (never while they
    sleep for injected latency). A feed thread produces price changes,
    invoices and payments at the configured rates.
    =========================================================================
*/
#ifndef ERPSIM_SERVER_H_INCLUDED
#define ERPSIM_SERVER_H_INCLUDED

#include <jansson.h>
#include <stddef.h>

#define ERPSIM_IDEMPOTENCY_MAX 200000  //  Default keys remembered

typedef struct {
    const char *host;           //  API listen address
    int port;                   //  API port, 0 for any
    const char *control_host;   //  Control listen address
    int control_port;           //  Control port, 0 for any
    const char *api_key;        //  Required API key (borrowed)
    int threads;                //  cw_http threads (0: per connection)
    const json_t *faults;       //  Initial fault configuration, or NULL
    double prices_per_second;   //  Feed rates
    double invoices_per_second;
    double payments_per_second;
    int outage_seconds;         //  Outage at start, seconds
    size_t idempotency_max;     //  Keys remembered (oldest forgotten)
    int require_customer;       //  Orders need a known customer (1/0)
} erpsim_server_config_t;

typedef struct _erpsim_server_t erpsim_server_t;

//  Creates the simulator (nothing listens yet). The fault configuration
//  must have passed erpsim_validate_fault_config. Returns NULL on error.
erpsim_server_t *
    erpsim_server_new (const erpsim_server_config_t *config);

//  The first key of a fault configuration that names no route erpsim
//  serves (keys are "*", "METHOD /pattern" or "* /pattern"), or NULL when
//  every key does. A typo would otherwise inject nothing, silently.
const char *
    erpsim_server_fault_route_unknown (const json_t *config);

//  Stops listeners and the feed thread, frees everything, nulls *self_p.
void
    erpsim_server_destroy (erpsim_server_t **self_p);

//  Starts both listeners and the feed thread. 0, or -1 with error.
int
    erpsim_server_start (erpsim_server_t *self, char *error, size_t size);

//  Bound ports after start.
int
    erpsim_server_port (erpsim_server_t *self);
int
    erpsim_server_control_port (erpsim_server_t *self);

//  Writes the bound API / control port to path. 0, or -1 with error.
int
    erpsim_server_write_port_files (erpsim_server_t *self,
                                    const char *port_file,
                                    const char *control_port_file,
                                    char *error, size_t size);

#endif
