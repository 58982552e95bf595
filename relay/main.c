/*  =========================================================================
    causeway-relay - publishes an island's outbox to the broker
    (docs/relay.md)

    Parses arguments, loads the configuration, installs the signal pipe
    (cw_daemon) and runs cw_relay. Exit codes: 0 clean stop, 1 runtime
    failure or a second signal, 2 bad usage or configuration.
    =========================================================================
*/
#include "cw_config.h"
#include "cw_daemon.h"
#include "cw_log.h"
#include "cw_relay.h"

#include <unistd.h>

int
main (int argc, char *argv[])
{
    cw_daemon_t daemon = {
        "causeway-relay", "relay", "CW_RELAY",
        "SIGTERM/SIGINT: wait for the ACK of the batch in flight (at\n"
        "most relay/shutdown_timeout), mark it, DISCONNECT and exit 0;\n"
        "a second signal exits at once. See docs/relay.md.\n",
        cw_relay_schema ()};
    cw_relay_config_t settings;
    cw_config_t *config = NULL;
    int exit_code = 0;
    if (!cw_daemon_start (&daemon, argc, argv, &settings, &config,
                          &exit_code))
        return exit_code;
    cw_log_set_level (settings.log_level);

    char error[1024];
    cw_relay_t *relay = cw_relay_new (&settings, error, sizeof (error));
    if (!relay) {
        cw_log (CW_LOG_FATAL, "config_invalid", "invalid configuration",
                "detail", error, NULL);
        cw_config_destroy (&config);
        return CW_CONFIG_EXIT_CODE;
    }
    cw_log (CW_LOG_INFO, "started", "relay started", "broker",
            settings.broker, "island", settings.island, "poll_only",
            settings.poll_only ? "true" : "false", NULL);
    int rc = cw_relay_run (relay, cw_daemon_signal_fd ());
    if (rc != 0)
        _exit (rc);  //  Second signal or no database: at once
    cw_relay_destroy (&relay);
    cw_daemon_stop (&config);
    return 0;
}
