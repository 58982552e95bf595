/*  =========================================================================
    causeway-worker - the stateless worker daemon (docs/worker.md)

    Parses arguments, loads the configuration, installs the signal pipe
    (cw_daemon) and runs cw_worker. Exit codes: 0 clean stop, 1 runtime
    failure or a second signal, 2 bad usage or configuration.
    =========================================================================
*/
#include "cw_config.h"
#include "cw_daemon.h"
#include "cw_log.h"
#include "cw_worker.h"

#include <unistd.h>

int
main (int argc, char *argv[])
{
    cw_daemon_t daemon = {
        "causeway-worker", "worker", "CW_WORKER",
        "SIGTERM/SIGINT: finish calls in flight within\n"
        "worker/shutdown_timeout, then DISCONNECT and exit 0; a second\n"
        "signal exits at once. See docs/worker.md.\n",
        cw_worker_schema ()};
    cw_worker_config_t settings;
    cw_config_t *config = NULL;
    int exit_code = 0;
    if (!cw_daemon_start (&daemon, argc, argv, &settings, &config,
                          &exit_code))
        return exit_code;
    cw_log_set_level (settings.log_level);

    char error[1024];
    cw_worker_t *worker = cw_worker_new (&settings, error, sizeof (error));
    if (!worker) {
        cw_log (CW_LOG_FATAL, "config_invalid", "invalid configuration",
                "detail", error, NULL);
        cw_config_destroy (&config);
        return CW_CONFIG_EXIT_CODE;
    }
    cw_log (CW_LOG_INFO, "started", "worker started", "brokers",
            settings.brokers, "flows", settings.flows, "target",
            settings.target_name, NULL);
    int rc = cw_worker_run (worker, cw_daemon_signal_fd ());
    if (rc != 0)
        _exit (rc);  //  Second signal: at once, nothing more
    cw_worker_destroy (&worker);
    cw_daemon_stop (&config);
    return 0;
}
