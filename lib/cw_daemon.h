/*  =========================================================================
    cw_daemon - start-up shared by the worker and relay daemons: the
    arguments --config/--print-config/--sample-config/--help, the logger,
    the configuration, and a self-pipe written on SIGTERM/SIGINT;
    SIGHUP and SIGPIPE are ignored

    Usage in a main ():

        cw_daemon_t daemon = {"causeway-relay", "relay", "CW_RELAY",
                              s_shutdown_help, cw_relay_schema ()};
        cw_relay_config_t settings;
        cw_config_t *config = NULL;
        int exit_code = 0;
        if (!cw_daemon_start (&daemon, argc, argv, &settings, &config,
                              &exit_code))
            return exit_code;
        ... cw_relay_run (relay, cw_daemon_signal_fd ()) ...
        cw_daemon_stop (&config);
    =========================================================================
*/
#ifndef CW_DAEMON_H_INCLUDED
#define CW_DAEMON_H_INCLUDED

#include "cw_config.h"

#include <stdbool.h>

typedef struct {
    const char *program;                //  "causeway-relay"
    const char *component;              //  Log component, "relay"
    const char *env_prefix;             //  Environment prefix, "CW_RELAY"
    const char *shutdown_help;          //  --help paragraph on signals
    const cw_config_entry_t *schema;    //  The daemon's configuration
} cw_daemon_t;

//  Parses argv, answers --help, --sample-config and --print-config, starts
//  the logger, loads the configuration into settings (a bad one logs a
//  fatal line and exits 2) and installs the signal pipe. Returns true when
//  the daemon should run; *config_p then holds the loader (it owns the
//  strings in settings). Returns false when main should return
//  *exit_code_p at once (0 after --help, 2 on bad usage, ...).
bool
    cw_daemon_start (const cw_daemon_t *daemon, int argc, char *argv[],
                     void *settings, cw_config_t **config_p,
                     int *exit_code_p);

//  The read end of the signal pipe: one byte per SIGTERM/SIGINT.
int
    cw_daemon_signal_fd (void);

//  After a clean run: destroys *config_p, closes the signal pipe and shuts
//  CZMQ down.
void
    cw_daemon_stop (cw_config_t **config_p);

#endif
