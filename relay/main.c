/*  =========================================================================
    causeway-relay - publishes an island's outbox to the broker
    (docs/relay.md)

    Parses arguments, loads the configuration, installs the signal pipe
    and runs cw_relay. Exit codes: 0 clean stop, 1 runtime failure or
    a second signal, 2 bad usage or configuration.
    =========================================================================
*/
#include "cw_config.h"
#include "cw_log.h"
#include "cw_relay.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 2

static int s_signal_pipe[2] = {-1, -1};  //  Written by the handler

static void
s_signal_handler (int signal_number)
{
    (void) signal_number;
    int saved = errno;
    char byte = 1;
    ssize_t rc = write (s_signal_pipe[1], &byte, 1);
    (void) rc;
    errno = saved;
}

static void
s_usage (FILE *stream)
{
    fprintf (stream,
             "usage: causeway-relay [--config FILE] [--print-config]\n"
             "       causeway-relay --sample-config | --help\n"
             "\n"
             "  --config FILE    ZPL configuration (default: none, only\n"
             "                   CW_RELAY_* environment variables)\n"
             "  --print-config   print the effective configuration and exit\n"
             "  --sample-config  print a commented sample configuration\n"
             "  --help           this text\n"
             "\n"
             "SIGTERM/SIGINT: wait for the ACK of the batch in flight (at\n"
             "most relay/shutdown_timeout), mark it, DISCONNECT and exit 0;\n"
             "a second signal exits at once. See docs/relay.md.\n");
}

int
main (int argc, char *argv[])
{
    const char *file = NULL;
    bool print_config = false;
    for (int index = 1; index < argc; index++) {
        if (streq (argv[index], "--help") || streq (argv[index], "-h")) {
            s_usage (stdout);
            return 0;
        }
        else if (streq (argv[index], "--sample-config"))
            return cw_config_write_sample (cw_relay_schema (),
                                           "causeway-relay", stdout)
                       ? 1
                       : 0;
        else if (streq (argv[index], "--print-config"))
            print_config = true;
        else if (streq (argv[index], "--config") && index + 1 < argc)
            file = argv[++index];
        else {
            fprintf (stderr,
                     "causeway-relay: unknown or incomplete "
                     "argument \"%s\"\n",
                     argv[index]);
            s_usage (stderr);
            return EXIT_USAGE;
        }
    }
    cw_log_init ("relay", CW_LOG_INFO);
    cw_relay_config_t settings;
    cw_config_t *config = cw_config_new (cw_relay_schema ());
    cw_config_load_or_exit (config, file, &settings);
    if (print_config) {
        int rc = cw_config_print (config, stdout);
        cw_config_destroy (&config);
        return rc ? 1 : 0;
    }
    cw_log_set_level (settings.log_level);

    //  Our own handler: CZMQ's would only set zsys_interrupted
    zsys_handler_set (NULL);
    if (pipe (s_signal_pipe)) {
        cw_log (CW_LOG_FATAL, "start_failed", "could not create signal pipe",
                "reason", strerror (errno), NULL);
        return 1;
    }
    for (int index = 0; index < 2; index++) {
        fcntl (s_signal_pipe[index], F_SETFL,
               fcntl (s_signal_pipe[index], F_GETFL) | O_NONBLOCK);
        fcntl (s_signal_pipe[index], F_SETFD, FD_CLOEXEC);
    }
    struct sigaction action;
    memset (&action, 0, sizeof (action));
    action.sa_handler = s_signal_handler;
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    signal (SIGPIPE, SIG_IGN);

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
    int rc = cw_relay_run (relay, s_signal_pipe[0]);
    if (rc != 0)
        _exit (rc);  //  Second signal or no database: at once
    cw_relay_destroy (&relay);
    cw_config_destroy (&config);
    close (s_signal_pipe[0]);
    close (s_signal_pipe[1]);
    zsys_shutdown ();
    return 0;
}
