/*  =========================================================================
    cw_daemon - start-up shared by the worker and relay daemons (see
    cw_daemon.h)
    =========================================================================
*/
#include "cw_daemon.h"
#include "cw_log.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CW_DAEMON_EXIT_USAGE 2

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
s_usage (const cw_daemon_t *daemon, FILE *stream)
{
    fprintf (stream,
             "usage: %s [--config FILE] [--print-config]\n"
             "       %s --sample-config | --help\n"
             "\n"
             "  --config FILE    ZPL configuration (default: none, only\n"
             "                   %s_* environment variables)\n"
             "  --print-config   print the effective configuration and exit\n"
             "  --sample-config  print a commented sample configuration\n"
             "  --help           this text\n"
             "\n"
             "%s",
             daemon->program, daemon->program, daemon->env_prefix,
             daemon->shutdown_help);
}

//  Our own handler: CZMQ's would only set zsys_interrupted
static int
s_signal_pipe_install (void)
{
    zsys_handler_set (NULL);
    if (pipe (s_signal_pipe)) {
        cw_log (CW_LOG_FATAL, "start_failed", "could not create signal pipe",
                "reason", strerror (errno), NULL);
        return -1;
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
    //  Nothing to reload (the configuration is read once): a hangup or
    //  a reload request must not end the daemon, as its default would
    signal (SIGHUP, SIG_IGN);
    return 0;
}

bool
cw_daemon_start (const cw_daemon_t *daemon, int argc, char *argv[],
                 void *settings, cw_config_t **config_p, int *exit_code_p)
{
    assert (daemon);
    assert (argv);
    assert (settings);
    assert (config_p);
    assert (exit_code_p);
    const char *file = NULL;
    bool print_config = false;
    for (int index = 1; index < argc; index++) {
        if (streq (argv[index], "--help") || streq (argv[index], "-h")) {
            s_usage (daemon, stdout);
            *exit_code_p = 0;
            return false;
        }
        else if (streq (argv[index], "--sample-config")) {
            *exit_code_p = cw_config_write_sample (daemon->schema,
                                                   daemon->program, stdout)
                               ? 1
                               : 0;
            return false;
        }
        else if (streq (argv[index], "--print-config"))
            print_config = true;
        else if (streq (argv[index], "--config") && index + 1 < argc)
            file = argv[++index];
        else {
            fprintf (stderr,
                     "%s: unknown or incomplete argument \"%s\"\n",
                     daemon->program, argv[index]);
            s_usage (daemon, stderr);
            *exit_code_p = CW_DAEMON_EXIT_USAGE;
            return false;
        }
    }
    cw_log_init (daemon->component, CW_LOG_INFO);
    cw_config_t *config = cw_config_new (daemon->schema);
    cw_config_load_or_exit (config, file, settings);
    if (print_config) {
        int rc = cw_config_print (config, stdout);
        cw_config_destroy (&config);
        *exit_code_p = rc ? 1 : 0;
        return false;
    }
    if (s_signal_pipe_install ()) {
        cw_config_destroy (&config);
        *exit_code_p = 1;
        return false;
    }
    *config_p = config;
    *exit_code_p = 0;
    return true;
}

int
cw_daemon_signal_fd (void)
{
    return s_signal_pipe[0];
}

void
cw_daemon_stop (cw_config_t **config_p)
{
    cw_config_destroy (config_p);
    close (s_signal_pipe[0]);
    close (s_signal_pipe[1]);
    s_signal_pipe[0] = s_signal_pipe[1] = -1;
    zsys_shutdown ();
}
