/*  =========================================================================
    erpsim - the ERP simulator (see docs/erpsim.md)

    Parses flags, loads the API key, starts the server, writes the port
    files and waits for SIGINT/SIGTERM (clean stop, exit 0). Exit 2 on bad
    usage, 1 when the server cannot start.
    =========================================================================
*/
#include "cw_log.h"
#include "cw_secret.h"
#include "erpsim_server.h"
#include "erpsim_validate.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2
#define HOST_MAX 256

static const char *s_usage =
    "usage: erpsim --api-key-file PATH [options]\n"
    "\n"
    "An ERP REST API for tests and benchmarks (docs/erpsim.md).\n"
    "\n"
    "  --listen HOST:PORT          API address (default 127.0.0.1:0)\n"
    "  --port-file PATH            write the bound API port here\n"
    "  --control-listen HOST:PORT  control + introspection address\n"
    "                              (default 127.0.0.1:0; no credentials)\n"
    "  --control-port-file PATH    write the bound control port here\n"
    "  --api-key-file PATH         API key, file mode 0600 (required)\n"
    "  --threads N                 0: thread per connection (default),\n"
    "                              N: pool of N polling threads\n"
    "  --idempotency-max N         Idempotency-Keys remembered (200000)\n"
    "  --allow-unknown-customers   accept orders for unknown customers\n"
    "  --log-level LEVEL           debug, info (default), warn, error\n"
    "Feeds (items per second, default 0):\n"
    "  --prices-per-second R  --invoices-per-second R\n"
    "  --payments-per-second R\n"
    "Faults (for every route; rates are probabilities 0..1):\n"
    "  --faults JSON               whole fault configuration (see docs)\n"
    "  --error-rate R              500 before the effect\n"
    "  --error-after-effect-rate R 500 after the effect\n"
    "  --drop-after-effect-rate R  connection closed after the effect\n"
    "  --conflict-rate R           409 before the effect\n"
    "  --rate-limit-rate R         429 before the effect\n"
    "  --retry-after S             Retry-After of a 429 (default 1)\n"
    "  --latency-ms N              fixed delay\n"
    "  --jitter-ms N               random extra delay\n"
    "  --jitter uniform|exponential\n"
    "  --stall-rate R  --stall-ms N  hold requests N ms\n"
    "  --malformed-rate R          invalid JSON reply after the effect\n"
    "  --truncated-rate R          reply cut short after the effect\n"
    "  --outage-seconds N          refuse connections for N s at start\n"
    "  --help                      this text\n";

enum {
    OPT_LISTEN = 256,
    OPT_PORT_FILE,
    OPT_CONTROL_LISTEN,
    OPT_CONTROL_PORT_FILE,
    OPT_API_KEY_FILE,
    OPT_THREADS,
    OPT_IDEMPOTENCY_MAX,
    OPT_ALLOW_UNKNOWN,
    OPT_LOG_LEVEL,
    OPT_PRICES,
    OPT_INVOICES,
    OPT_PAYMENTS,
    OPT_FAULTS,
    OPT_OUTAGE,
    OPT_HELP,
    OPT_KNOB  //  Fault knobs follow, in s_knobs order
};

typedef struct {
    const char *flag;  //  Command line flag
    const char *knob;  //  JSON fault knob
    bool integer;      //  Integer (else a number)
} knob_t;

static const knob_t s_knobs[] = {
    {"error-rate", "errorRate", false},
    {"error-after-effect-rate", "errorAfterEffectRate", false},
    {"drop-after-effect-rate", "dropAfterEffectRate", false},
    {"conflict-rate", "conflictRate", false},
    {"rate-limit-rate", "rateLimitRate", false},
    {"retry-after", "retryAfterSeconds", true},
    {"latency-ms", "latencyMs", true},
    {"jitter-ms", "jitterMs", true},
    {"stall-rate", "stallRate", false},
    {"stall-ms", "stallMs", true},
    {"malformed-rate", "malformedRate", false},
    {"truncated-rate", "truncatedRate", false},
    {"jitter", "jitter", false},
    {NULL, NULL, false}};

static void
s_fail_usage (const char *message, const char *value)
{
    cw_log (CW_LOG_FATAL, "bad_usage", message, "value", value, NULL);
    fputs (s_usage, stderr);
    exit (EXIT_USAGE);
}

static double
s_parse_number (const char *flag, const char *text)
{
    char *end;
    errno = 0;
    double number = strtod (text, &end);
    //  nan and inf parse, but no JSON number holds them: the knob would
    //  be dropped silently
    if (errno || end == text || *end || !isfinite (number))
        s_fail_usage (flag, text);
    return number;
}

static long long
s_parse_integer (const char *flag,
                 const char *text,
                 long long min,
                 long long max)
{
    char *end;
    errno = 0;
    long long number = strtoll (text, &end, 10);
    if (errno || end == text || *end || number < min || number > max)
        s_fail_usage (flag, text);
    return number;
}

//  Splits "HOST:PORT" ("[v6]:PORT" too) into host[size] and *port.
static void
s_parse_address (
    const char *flag, const char *text, char *host, size_t size, int *port)
{
    const char *colon = strrchr (text, ':');
    if (!colon || colon == text)
        s_fail_usage (flag, text);
    const char *start = text;
    size_t length = (size_t) (colon - text);
    if (*start == '[' && colon[-1] == ']') {
        start++;
        length -= 2;
    }
    if (length == 0 || length >= size)
        s_fail_usage (flag, text);
    memcpy (host, start, length);
    host[length] = '\0';
    *port = (int) s_parse_integer (flag, colon + 1, 0, 65535);
}

int
main (int argc, char *argv[])
{
    cw_log_init ("erpsim", CW_LOG_INFO);
    erpsim_server_config_t config;
    memset (&config, 0, sizeof (config));
    char host[HOST_MAX] = "127.0.0.1", control_host[HOST_MAX] = "127.0.0.1";
    config.require_customer = 1;
    const char *port_file = NULL, *control_port_file = NULL;
    const char *key_file = NULL, *faults_text = NULL;
    json_t *knobs = json_object ();

    struct option options[OPT_KNOB - 256 + 16];
    const struct option fixed[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"control-listen", required_argument, NULL, OPT_CONTROL_LISTEN},
        {"control-port-file", required_argument, NULL, OPT_CONTROL_PORT_FILE},
        {"api-key-file", required_argument, NULL, OPT_API_KEY_FILE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"idempotency-max", required_argument, NULL, OPT_IDEMPOTENCY_MAX},
        {"allow-unknown-customers", no_argument, NULL, OPT_ALLOW_UNKNOWN},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"prices-per-second", required_argument, NULL, OPT_PRICES},
        {"invoices-per-second", required_argument, NULL, OPT_INVOICES},
        {"payments-per-second", required_argument, NULL, OPT_PAYMENTS},
        {"faults", required_argument, NULL, OPT_FAULTS},
        {"outage-seconds", required_argument, NULL, OPT_OUTAGE},
        {"help", no_argument, NULL, OPT_HELP}};
    size_t count = sizeof (fixed) / sizeof (fixed[0]);
    memcpy (options, fixed, sizeof (fixed));
    for (int index = 0; s_knobs[index].flag; index++)
        options[count++] = (struct option){
            s_knobs[index].flag, required_argument, NULL, OPT_KNOB + index};
    options[count] = (struct option){NULL, 0, NULL, 0};

    int option;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        switch (option) {
            case OPT_LISTEN:
                s_parse_address ("invalid --listen", optarg, host,
                                 sizeof (host), &config.port);
                break;
            case OPT_PORT_FILE:
                port_file = optarg;
                break;
            case OPT_CONTROL_LISTEN:
                s_parse_address ("invalid --control-listen", optarg,
                                 control_host, sizeof (control_host),
                                 &config.control_port);
                break;
            case OPT_CONTROL_PORT_FILE:
                control_port_file = optarg;
                break;
            case OPT_API_KEY_FILE:
                key_file = optarg;
                break;
            case OPT_THREADS:
                config.threads =
                    (int) s_parse_integer ("invalid --threads", optarg, 0, 256);
                break;
            case OPT_IDEMPOTENCY_MAX:
                config.idempotency_max = (size_t) s_parse_integer (
                    "invalid --idempotency-max", optarg, 1, 100000000);
                break;
            case OPT_ALLOW_UNKNOWN:
                config.require_customer = 0;
                break;
            case OPT_LOG_LEVEL: {
                cw_log_level_t level;
                if (cw_log_level_parse (optarg, &level))
                    s_fail_usage ("invalid --log-level", optarg);
                cw_log_set_level (level);
                break;
            }
            case OPT_PRICES:
                config.prices_per_second =
                    s_parse_number ("invalid --prices-per-second", optarg);
                break;
            case OPT_INVOICES:
                config.invoices_per_second =
                    s_parse_number ("invalid --invoices-per-second", optarg);
                break;
            case OPT_PAYMENTS:
                config.payments_per_second =
                    s_parse_number ("invalid --payments-per-second", optarg);
                break;
            case OPT_FAULTS:
                faults_text = optarg;
                break;
            case OPT_OUTAGE:
                config.outage_seconds = (int) s_parse_integer (
                    "invalid --outage-seconds", optarg, 0, 86400);
                break;
            case OPT_HELP:
                fputs (s_usage, stdout);
                json_decref (knobs);
                return 0;
            default:
                if (option >= OPT_KNOB
                    && option
                           < OPT_KNOB
                                 + (int) (sizeof (s_knobs) / sizeof (s_knobs[0])
                                          - 1)) {
                    const knob_t *knob = &s_knobs[option - OPT_KNOB];
                    char message[96];
                    snprintf (message, sizeof (message), "invalid --%s",
                              knob->flag);
                    if (strcmp (knob->knob, "jitter") == 0)
                        json_object_set_new (knobs, knob->knob,
                                             json_string (optarg));
                    else if (knob->integer)
                        json_object_set_new (
                            knobs, knob->knob,
                            json_integer (s_parse_integer (
                                message, optarg, 0, ERPSIM_DELAY_MAX_MSEC)));
                    else
                        json_object_set_new (
                            knobs, knob->knob,
                            json_real (s_parse_number (message, optarg)));
                    break;
                }
                fputs (s_usage, stderr);
                return EXIT_USAGE;
        }
    }
    if (optind < argc)
        s_fail_usage ("unexpected argument", argv[optind]);
    if (!key_file)
        s_fail_usage ("--api-key-file is required", NULL);
    double rates[] = {config.prices_per_second, config.invoices_per_second,
                      config.payments_per_second};
    for (int index = 0; index < 3; index++)
        if (!(rates[index] >= 0 && rates[index] <= ERPSIM_RATE_MAX))
            s_fail_usage ("feed rates must be between 0 and 100000", NULL);

    //  Fault configuration: --faults, then the knob flags on "*"
    json_t *faults = json_object ();
    if (faults_text) {
        json_decref (faults);
        faults = json_loads (faults_text, 0, NULL);
        if (!json_is_object (faults))
            s_fail_usage ("--faults must be a JSON object", faults_text);
    }
    if (json_object_size (knobs)) {
        json_t *any = json_object_get (faults, "*");
        if (json_is_object (any))
            json_object_update (any, knobs);
        else
            json_object_set (faults, "*", knobs);
    }
    json_decref (knobs);
    char *text = json_dumps (faults, JSON_COMPACT);
    json_decref (faults);
    erpsim_problem_t problem;
    faults = erpsim_validate_fault_config (text, strlen (text), &problem);
    free (text);
    if (!faults) {
        cw_log (CW_LOG_FATAL, "bad_usage", "invalid fault configuration",
                "field", problem.field, "detail", problem.detail, NULL);
        return EXIT_USAGE;
    }
    const char *unknown = erpsim_server_fault_route_unknown (faults);
    if (unknown) {
        cw_log (CW_LOG_FATAL, "bad_usage", "invalid fault configuration",
                "field", unknown, "detail",
                "no route erpsim serves has this key", NULL);
        json_decref (faults);
        return EXIT_USAGE;
    }
    config.faults = faults;

    char error[512];
    char *api_key = cw_secret_load (key_file, error, sizeof (error));
    if (!api_key) {
        cw_log (CW_LOG_FATAL, "api_key_unreadable",
                "could not load the API key", "detail", error, NULL);
        json_decref (faults);
        return EXIT_USAGE;
    }
    if (!*api_key) {
        cw_log (CW_LOG_FATAL, "api_key_empty", "cannot use an empty API key",
                "file", key_file, NULL);
        cw_secret_destroy (&api_key);
        json_decref (faults);
        return EXIT_USAGE;
    }
    config.host = host;
    config.control_host = control_host;
    config.api_key = api_key;

    //  Signals are taken by sigwait below; every thread inherits the mask
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    signal (SIGPIPE, SIG_IGN);

    int status = 0;
    erpsim_server_t *server = erpsim_server_new (&config);
    cw_secret_destroy (&api_key);
    json_decref (faults);
    if (!server) {
        cw_log (CW_LOG_FATAL, "start_failed", "could not initialise", NULL);
        return 1;
    }
    if (erpsim_server_start (server, error, sizeof (error))
        || erpsim_server_write_port_files (server, port_file, control_port_file,
                                           error, sizeof (error))) {
        cw_log (CW_LOG_FATAL, "start_failed", "could not start erpsim",
                "detail", error, NULL);
        erpsim_server_destroy (&server);
        return 1;
    }
    char port[16], control_port[16];
    snprintf (port, sizeof (port), "%d", erpsim_server_port (server));
    snprintf (control_port, sizeof (control_port), "%d",
              erpsim_server_control_port (server));
    cw_log (CW_LOG_INFO, "started", "erpsim is serving", "host", host, "#port",
            port, "control_host", control_host, "#control_port", control_port,
            NULL);
    int received = 0;
    if (sigwait (&signals, &received) != 0)
        status = 1;
    cw_log (CW_LOG_INFO, "stopping", "stopping on signal", "signal",
            received == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    erpsim_server_destroy (&server);
    cw_log (CW_LOG_INFO, "stopped", "erpsim stopped", NULL);
    return status;
}
