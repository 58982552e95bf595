/*  =========================================================================
    webshop-ref - the reference webshop side of the boundary contract

      webshop-ref --token-public-key FILE [--token-public-key FILE]
                  [--listen HOST:PORT] [--port-file PATH]
                  [--token-audience NAME] [--token-issuer NAME]
                  [--pool N] [--fetch-timeout MSEC] [--log-level LEVEL]

    The database URI (role cw_webshop) is the secret CW_WEBSHOP_DB_URI:
    the 0600 file named by CW_WEBSHOP_DB_URI_FILE, or the systemd
    credential cw_webshop_db_uri. SIGTERM or SIGINT stops it cleanly.
    Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage.
    =========================================================================
*/
#include "cw_log.h"
#include "cw_secret.h"
#include "cw_token.h"
#include "cw_webshop.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEBSHOP_EXIT_OK 0
#define WEBSHOP_EXIT_FAILED 1
#define WEBSHOP_EXIT_USAGE 2
#define WEBSHOP_ERROR_SIZE 1024
#define WEBSHOP_HOST_MAX 256
#define WEBSHOP_POOL_MAX 64

static const char *s_usage =
    "usage: webshop-ref --token-public-key FILE [options]\n"
    "  --listen HOST:PORT         address to serve (default 127.0.0.1:8080;\n"
    "                             port 0 picks a free port)\n"
    "  --port-file PATH           write the bound port to PATH\n"
    "  --token-public-key FILE    Ed25519 public key of callers (repeat for\n"
    "                             key rotation: up to 4)\n"
    "  --token-audience NAME      required token audience (default webshop)\n"
    "  --token-issuer NAME        required token issuer (default: any)\n"
    "  --pool N                   database connections (default 4)\n"
    "  --fetch-timeout MSEC       invoice document fetch timeout (default "
    "10000)\n"
    "  --log-level LEVEL          debug, info, warn, error (default info)\n"
    "  --help                     this text\n"
    "The database URI is read from the 0600 file named by\n"
    "CW_WEBSHOP_DB_URI_FILE (or the systemd credential cw_webshop_db_uri).\n";

static int
s_bad_usage (const char *message, const char *value)
{
    cw_log (CW_LOG_FATAL, "bad_usage", message, "value", value, NULL);
    fputs (s_usage, stderr);
    return WEBSHOP_EXIT_USAGE;
}

//  Parses text as an integer in min..max. Returns 0 or -1.
static int
s_parse_long (const char *text, long min, long max, long *value)
{
    char *end = NULL;
    errno = 0;
    long parsed = strtol (text, &end, 10);
    if (errno || end == text || *end || parsed < min || parsed > max)
        return -1;
    *value = parsed;
    return 0;
}

//  Splits HOST:PORT ([v6]:PORT too). Returns 0 or -1.
static int
s_parse_listen (const char *text, char *host, size_t size, int *port)
{
    const char *colon = strrchr (text, ':');
    if (!colon || colon == text)
        return -1;
    const char *start = text;
    size_t length = (size_t) (colon - text);
    if (*text == '[' && colon[-1] == ']') {
        start++;
        length -= 2;
    }
    if (length == 0 || length >= size)
        return -1;
    memcpy (host, start, length);
    host[length] = 0;
    long value;
    if (s_parse_long (colon + 1, 0, 65535, &value))
        return -1;
    *port = (int) value;
    return 0;
}

int
main (int argc, char *argv[])
{
    cw_log_init ("webshop-ref", CW_LOG_INFO);
    char host[WEBSHOP_HOST_MAX] = "127.0.0.1";
    int port = 8080;
    const char *port_file = NULL;
    const char *audience = "webshop";
    const char *issuer = NULL;
    long pool = 4;
    long fetch_timeout = 10000;
    char error[WEBSHOP_ERROR_SIZE];
    cw_token_verifier_t *verifier = cw_token_verifier_new ();
    int rc = WEBSHOP_EXIT_USAGE;

    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"token-public-key", required_argument, NULL, 'k'},
        {"token-audience", required_argument, NULL, 'a'},
        {"token-issuer", required_argument, NULL, 'i'},
        {"pool", required_argument, NULL, 'n'},
        {"fetch-timeout", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int option;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        cw_log_level_t level;
        switch (option) {
            case 'l':
                if (s_parse_listen (optarg, host, sizeof (host), &port)) {
                    rc = s_bad_usage ("--listen must be HOST:PORT", optarg);
                    goto done;
                }
                break;
            case 'p':
                port_file = optarg;
                break;
            case 'k':
                if (cw_token_verifier_load_key (verifier, optarg, error,
                                                sizeof (error))) {
                    rc = s_bad_usage (error, optarg);
                    goto done;
                }
                break;
            case 'a':
                audience = optarg;
                break;
            case 'i':
                issuer = optarg;
                break;
            case 'n':
                if (s_parse_long (optarg, 1, WEBSHOP_POOL_MAX, &pool)) {
                    rc = s_bad_usage ("--pool must be 1..64", optarg);
                    goto done;
                }
                break;
            case 't':
                if (s_parse_long (optarg, 1, 600000, &fetch_timeout)) {
                    rc = s_bad_usage ("--fetch-timeout must be 1..600000 "
                                      "msec",
                                      optarg);
                    goto done;
                }
                break;
            case 'v':
                if (cw_log_level_parse (optarg, &level)) {
                    rc = s_bad_usage ("--log-level must be debug, info, "
                                      "warn or error",
                                      optarg);
                    goto done;
                }
                cw_log_set_level (level);
                break;
            case 'h':
                fputs (s_usage, stdout);
                rc = WEBSHOP_EXIT_OK;
                goto done;
            default:
                rc = s_bad_usage ("unknown option", NULL);
                goto done;
        }
    }
    if (optind != argc) {
        rc = s_bad_usage ("unexpected argument", argv[optind]);
        goto done;
    }
    if (cw_token_verifier_keys (verifier) == 0) {
        rc = s_bad_usage ("at least one --token-public-key is required", NULL);
        goto done;
    }
    cw_token_verifier_set_audience (verifier, audience);
    cw_token_verifier_set_issuer (verifier, issuer);

    char *db_uri = NULL;
    if (cw_secret_lookup ("CW_WEBSHOP_DB_URI", &db_uri, error, sizeof (error))
        != 0) {
        cw_log (CW_LOG_FATAL, "config_invalid", error, NULL);
        rc = WEBSHOP_EXIT_USAGE;
        goto done;
    }
    //  Signals are taken by sigwait in this thread only: block them before
    //  any other thread (libmicrohttpd, libpq) starts, so they inherit it.
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGINT);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    signal (SIGPIPE, SIG_IGN);
    curl_global_init (CURL_GLOBAL_DEFAULT);

    cw_webshop_config_t config = {.host = host,
                                  .port = port,
                                  .db_uri = db_uri,
                                  .verifier = verifier,
                                  .pool_size = (int) pool,
                                  .fetch_timeout_msec = fetch_timeout};
    cw_webshop_t *webshop = cw_webshop_new (&config, error, sizeof (error));
    cw_secret_destroy (&db_uri);
    rc = WEBSHOP_EXIT_FAILED;
    if (!webshop) {
        cw_log (CW_LOG_FATAL, "start_failed", error, NULL);
        goto stop;
    }
    if (cw_webshop_start (webshop, error, sizeof (error))
        || (port_file
            && cw_webshop_write_port_file (webshop, port_file, error,
                                           sizeof (error)))) {
        cw_log (CW_LOG_FATAL, "start_failed", error, NULL);
        goto stop;
    }
    char port_text[16];
    snprintf (port_text, sizeof (port_text), "%d", cw_webshop_port (webshop));
    cw_log (CW_LOG_INFO, "started", "serving the webshop endpoints", "host",
            host, "#port", port_text, "audience", audience, NULL);
    int received = 0;
    sigwait (&signals, &received);
    cw_log (CW_LOG_INFO, "stopping", "stopping on signal", "signal",
            received == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    rc = WEBSHOP_EXIT_OK;
stop:
    cw_webshop_destroy (&webshop);
    curl_global_cleanup ();
done:
    cw_token_verifier_destroy (&verifier);
    return rc;
}
