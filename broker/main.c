/*  =========================================================================
    causeway-broker - owns the job table, dispatches jobs to workers,
    takes relays' events (docs/broker.md)

        causeway-broker [--config FILE] [--endpoint-file PATH]
                        [--print-config] [--sample-config] [--help]

    Order: config, ZAP handler, broker actor (store actor inside it, then
    the ROUTER bound). SIGTERM/SIGINT: drain (stop claiming, await results
    in flight up to broker/drain, release the rest, DISCONNECT workers),
    exit 0; a second signal exits at once (1), and so does a drain still
    unfinished broker/drain + 5 s after the signal. SIGHUP: the ZAP handler
    reloads the allowed keys (server/peers).
    Exit: 0 clean, 1 runtime failure, 2 bad usage or configuration.
    =========================================================================
*/
#include "cw_broker.h"
#include "cw_config.h"
#include "cw_curve.h"
#include "cw_log.h"
#include "cw_secret.h"
#include "cw_zap.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <unistd.h>

#define CW_BROKER_EXIT_FAILED 1
#define CW_BROKER_ERROR_SIZE 1024
#define CW_BROKER_TABLE_MAX 64          //  Entries in a table setting
#define CW_BROKER_WAIT_MSEC 100         //  Main loop's signal check
#define CW_BROKER_DRAIN_GRACE_MSEC 5000 //  After broker/drain, to record
                                        //  results and releases
#define CW_BROKER_ID_SIZE 128
#define CW_BROKER_ATTEMPTS_MAX 1000     //  retry/max_attempts, retry/flows
#define CW_BROKER_BASE_MAX 3600000      //  retry/base, msec
#define CW_BROKER_CAP_MAX 86400000      //  retry/cap, msec

typedef struct {
    const char *bind;
    const char *cert_file;
    const char *peers_dir;
    int64_t heartbeat_msec;
    int64_t liveness;
    const char *db_uri_file;
    bool poll_only;
    int64_t poll_msec;
    const char *broker_id;
    int64_t lease_msec;
    int64_t renew_margin_msec;
    int64_t job_deadline_msec;
    int64_t claim_max;
    int64_t prefetch;
    int64_t flush_max;
    int64_t flush_msec;
    int64_t retry_msec;
    int64_t drain_msec;
    int64_t inbox_ttl_msec;
    int64_t retention_msec;
    int64_t purge_msec;
    int64_t retry_base_msec;
    int64_t retry_cap_msec;
    int64_t retry_max_attempts;
    int64_t replay_rate;
    const char *retry_flows;
    const char *http;
    const char *targets;
    const char *routes;
    cw_log_level_t log_level;
} s_settings_t;

#define S_AT(field) offsetof (s_settings_t, field)
static const cw_config_entry_t s_schema [] = {
    {.path = "server/bind", .env = "CW_BROKER_SERVER_BIND",
     .type = CW_CONFIG_ENDPOINT, .default_value = "tcp://127.0.0.1:5570",
     .offset = S_AT (bind), .help = "ROUTER endpoint peers connect to (port *: any free port)"},
    {.path = "server/cert", .env = "CW_BROKER_SERVER_CERT_FILE",
     .type = CW_CONFIG_SECRET_FILE, .default_value = NULL,
     .offset = S_AT (cert_file), .help = "the broker's secret certificate (0600)"},
    {.path = "server/peers", .env = "CW_BROKER_SERVER_PEERS",
     .type = CW_CONFIG_STRING, .default_value = NULL,
     .offset = S_AT (peers_dir), .help = "directory of allowed peers' .pub certificates"},
    {.path = "server/http", .env = "CW_BROKER_SERVER_HTTP",
     .type = CW_CONFIG_STRING, .default_value = "",
     .offset = S_AT (http),
     .help = "host:port of GET /healthz and /metrics, no authentication: keep it on loopback or a monitoring network (empty: off; port 0: any free port)"},
    {.path = "server/heartbeat", .env = "CW_BROKER_SERVER_HEARTBEAT",
     .type = CW_CONFIG_DURATION, .default_value = "1s", .min = 10, .max = 60000,
     .offset = S_AT (heartbeat_msec), .help = "heartbeat interval (peers use the same)"},
    {.path = "server/liveness", .env = "CW_BROKER_SERVER_LIVENESS",
     .type = CW_CONFIG_INT, .default_value = "3", .min = 1, .max = 100,
     .offset = S_AT (liveness), .help = "missed heartbeats before a worker is lost"},
    {.path = "db/uri", .env = "CW_BROKER_DB_URI_FILE",
     .type = CW_CONFIG_SECRET_FILE, .default_value = NULL,
     .offset = S_AT (db_uri_file), .help = "file (0600) holding the libpq URI, role cw_broker"},
    {.path = "db/poll_only", .env = "CW_BROKER_DB_POLL_ONLY",
     .type = CW_CONFIG_BOOL, .default_value = "false",
     .offset = S_AT (poll_only), .help = "no LISTEN/NOTIFY, poll only (PgBouncer)"},
    {.path = "db/poll", .env = "CW_BROKER_DB_POLL",
     .type = CW_CONFIG_DURATION, .default_value = "1s", .min = 10, .max = 3600000,
     .offset = S_AT (poll_msec), .help = "safety-net claim interval"},
    {.path = "broker/id", .env = "CW_BROKER_ID",
     .type = CW_CONFIG_STRING, .default_value = "",
     .offset = S_AT (broker_id),
     .help = "broker name; leases are owned by name/<run> (empty: host-pid)"},
    {.path = "broker/lease", .env = "CW_BROKER_LEASE",
     .type = CW_CONFIG_DURATION, .default_value = "30s", .min = 100, .max = 3600000,
     .offset = S_AT (lease_msec), .help = "lease length of claimed jobs"},
    {.path = "broker/renew_margin", .env = "CW_BROKER_RENEW_MARGIN",
     .type = CW_CONFIG_DURATION, .default_value = "10s", .min = 10, .max = 3600000,
     .offset = S_AT (renew_margin_msec), .help = "renew leases ending within this"},
    {.path = "broker/job_deadline", .env = "CW_BROKER_JOB_DEADLINE",
     .type = CW_CONFIG_DURATION, .default_value = "10s", .min = 10, .max = 3600000,
     .offset = S_AT (job_deadline_msec), .help = "deadline_ms sent with each JOB"},
    {.path = "broker/claim_max", .env = "CW_BROKER_CLAIM_MAX",
     .type = CW_CONFIG_INT, .default_value = "500", .min = 1, .max = 10000,
     .offset = S_AT (claim_max), .help = "most jobs per claim"},
    {.path = "broker/prefetch", .env = "CW_BROKER_PREFETCH",
     .type = CW_CONFIG_INT, .default_value = "100", .min = 0, .max = 10000,
     .offset = S_AT (prefetch),
     .help = "jobs claimed beyond the workers' credit, sent as credit returns"},
    {.path = "broker/flush_max", .env = "CW_BROKER_FLUSH_MAX",
     .type = CW_CONFIG_INT, .default_value = "500", .min = 1, .max = 10000,
     .offset = S_AT (flush_max), .help = "results per group commit"},
    {.path = "broker/flush", .env = "CW_BROKER_FLUSH",
     .type = CW_CONFIG_DURATION, .default_value = "5ms", .min = 0, .max = 10000,
     .offset = S_AT (flush_msec), .help = "longest a result waits for its commit"},
    {.path = "broker/retry", .env = "CW_BROKER_RETRY",
     .type = CW_CONFIG_DURATION, .default_value = "1s", .min = 1, .max = 600000,
     .offset = S_AT (retry_msec), .help = "wait after a failed claim/commit/renew"},
    {.path = "broker/drain", .env = "CW_BROKER_DRAIN",
     .type = CW_CONFIG_DURATION, .default_value = "10s", .min = 0, .max = 3600000,
     .offset = S_AT (drain_msec), .help = "how long SIGTERM awaits results in flight"},
    {.path = "broker/inbox_ttl", .env = "CW_BROKER_INBOX_TTL",
     .type = CW_CONFIG_DURATION, .default_value = "720h", .min = 1000,
     .max = INT64_C (31536000000),
     .offset = S_AT (inbox_ttl_msec), .help = "how long published keys de-duplicate"},
    {.path = "retention/finished", .env = "CW_BROKER_RETENTION_FINISHED",
     .type = CW_CONFIG_DURATION, .default_value = "168h", .min = 0,
     .max = INT64_C (31536000000),
     .offset = S_AT (retention_msec),
     .help = "done jobs (and their attempts) are deleted this long after they finished; 0 = the broker never deletes them"},
    {.path = "retention/interval", .env = "CW_BROKER_RETENTION_INTERVAL",
     .type = CW_CONFIG_DURATION, .default_value = "1m", .min = 1000,
     .max = 86400000,
     .offset = S_AT (purge_msec),
     .help = "how often the broker deletes finished jobs and expired inbox rows"},
    {.path = "retry/base", .env = "CW_BROKER_RETRY_BASE",
     .type = CW_CONFIG_DURATION, .default_value = "1s", .min = 1,
     .max = CW_BROKER_BASE_MAX,
     .offset = S_AT (retry_base_msec), .help = "default backoff window after attempt 1"},
    {.path = "retry/cap", .env = "CW_BROKER_RETRY_CAP",
     .type = CW_CONFIG_DURATION, .default_value = "5m", .min = 1,
     .max = CW_BROKER_CAP_MAX,
     .offset = S_AT (retry_cap_msec), .help = "default longest backoff"},
    {.path = "retry/max_attempts", .env = "CW_BROKER_RETRY_MAX_ATTEMPTS",
     .type = CW_CONFIG_INT, .default_value = "10", .min = 1,
     .max = CW_BROKER_ATTEMPTS_MAX,
     .offset = S_AT (retry_max_attempts), .help = "default attempts in all"},
    {.path = "retry/flows", .env = "CW_BROKER_RETRY_FLOWS",
     .type = CW_CONFIG_STRING, .default_value = "",
     .offset = S_AT (retry_flows),
     .help = "per-flow policies: flow=attempts:base:cap,... (e.g. order.create=5:1s:1m)"},
    {.path = "replay/rate", .env = "CW_BROKER_REPLAY_RATE",
     .type = CW_CONFIG_INT, .default_value = "50", .min = 0, .max = 100000,
     .offset = S_AT (replay_rate),
     .help = "replayed dead jobs fall due at most this many per second, in id order (0: all at once)"},
    {.path = "targets/caps", .env = "CW_BROKER_TARGETS",
     .type = CW_CONFIG_STRING, .default_value = "",
     .offset = S_AT (targets),
     .help = "per-target caps: target=max_inflight:rate_per_sec:burst,... (0 = unlimited)"},
    {.path = "publish/routes", .env = "CW_BROKER_PUBLISH_ROUTES",
     .type = CW_CONFIG_STRING,
     .default_value = "customer.upsert.requested.v1=customer.upsert:erp,"
                      "order.created.v1=order.create:erp,"
                      "order.status.changed.v1=order.status:erp",
     .offset = S_AT (routes),
     .help = "event type to job flow and target: type=flow:target,..."},
    {.path = "log/level", .env = "CW_BROKER_LOG_LEVEL",
     .type = CW_CONFIG_LOG_LEVEL, .default_value = "info",
     .offset = S_AT (log_level), .help = "lowest level logged"},
    {.path = NULL}
};

static int
s_usage (FILE *stream)
{
    fprintf (stream,
             "usage: causeway-broker [--config FILE] [--endpoint-file PATH] "
             "[--print-config] [--sample-config] [--help]\n"
             "  --config FILE         ZPL configuration (environment "
             "CW_BROKER_* overrides it)\n"
             "  --endpoint-file PATH  write the bound endpoint there once "
             "bound (tests)\n"
             "  --print-config        print the effective configuration "
             "and exit\n"
             "  --sample-config       print a commented sample configuration "
             "(etc/causeway-broker.cfg)\n"
             "Settings (file key, environment variable):\n");
    cw_config_write_sample (s_schema, "causeway-broker", stream);
    return stream == stderr ? CW_CONFIG_EXIT_CODE : 0;
}

//  "250ms", "10s", "5m", "1h" or a plain number of msec.
static int
s_duration (const char *text, int64_t *msec_p)
{
    char *end = NULL;
    long long number = strtoll (text, &end, 10);
    if (end == text || number < 0)
        return -1;
    int64_t scale = 1;
    if (streq (end, "") || streq (end, "ms"))
        scale = 1;
    else if (streq (end, "s"))
        scale = 1000;
    else if (streq (end, "m"))
        scale = 60000;
    else if (streq (end, "h"))
        scale = 3600000;
    else
        return -1;
    if (number > INT64_MAX / scale)
        return -1;
    *msec_p = number * scale;
    return 0;
}

static int
s_uint (const char *text, uint32_t *value_p)
{
    char *end = NULL;
    long long number = strtoll (text, &end, 10);
    if (end == text || *end || number < 0 || number > UINT32_MAX)
        return -1;
    *value_p = (uint32_t) number;
    return 0;
}

//  Splits "name=a:b:c,name2=..." into name and up to 3 fields, each
//  trimmed of white space. An empty name or field (say "type=:erp"), a
//  fourth field or a name given twice is an error: none of them may be
//  dropped or read as something else without a word. Returns the count
//  of entries, or -1 with a message naming the setting.
typedef struct {
    char *name;
    char *field [3];
    int fields;                 //  4: more than 3
} s_entry_t;

static char *
s_trim (char *text)
{
    while (isspace ((unsigned char) *text))
        text++;
    size_t length = strlen (text);
    while (length > 0 && isspace ((unsigned char) text [length - 1]))
        text [--length] = 0;
    return text;
}

static int
s_table (char *text, s_entry_t *entries, const char *setting, char *error,
         size_t size)
{
    int count = 0;
    char *save = NULL;
    for (char *item = strtok_r (text, ",", &save); item;
         item = strtok_r (NULL, ",", &save)) {
        item = s_trim (item);
        if (!*item)
            continue;
        char *equals = strchr (item, '=');
        if (!equals || equals == item || count == CW_BROKER_TABLE_MAX) {
            snprintf (error, size, "config key \"%s\": \"%s\" is not "
                      "name=value (at most %d entries)", setting, item,
                      CW_BROKER_TABLE_MAX);
            return -1;
        }
        *equals = 0;
        s_entry_t *entry = &entries [count];
        entry->name = s_trim (item);
        entry->fields = 0;
        bool empty = !*entry->name;
        for (char *field = equals + 1; field && entry->fields < 4;) {
            char *colon = strchr (field, ':');
            if (colon)
                *colon = 0;
            char *trimmed = s_trim (field);
            if (entry->fields < 3)
                entry->field [entry->fields] = trimmed;
            empty = empty || !*trimmed;
            entry->fields++;
            field = colon ? colon + 1 : NULL;
        }
        if (empty || entry->fields > 3) {
            snprintf (error, size, "config key \"%s\": entry \"%s\" has an "
                      "empty name or field, or more than 3 fields", setting,
                      entry->name);
            return -1;
        }
        for (int index = 0; index < count; index++)
            if (streq (entries [index].name, entry->name)) {
                snprintf (error, size, "config key \"%s\": \"%s\" is given "
                          "twice", setting, entry->name);
                return -1;
            }
        count++;
    }
    return count;
}


//  Splits "host:port" (host an IPv4 literal or a bracketed IPv6 one)
//  into host (brackets dropped) and port. Returns 0, or -1 if malformed.
static int
s_http_address (const char *text, char *host, size_t size, int *port_p)
{
    const char *colon = strrchr (text, ':');
    if (!colon || colon == text || !colon [1])
        return -1;
    const char *start = text;
    const char *end = colon;
    if (*text == '[') {
        if (end [-1] != ']')
            return -1;
        start++;
        end--;
    }
    size_t length = (size_t) (end - start);
    if (length == 0 || length >= size)
        return -1;
    memcpy (host, start, length);
    host [length] = 0;
    struct in6_addr any;
    if (inet_pton (AF_INET, host, &any) != 1
    &&  inet_pton (AF_INET6, host, &any) != 1)
        return -1;
    char *after = NULL;
    errno = 0;
    long port = strtol (colon + 1, &after, 10);
    if (errno || *after || port < 0 || port > 65535
    ||  !isdigit ((unsigned char) colon [1]))
        return -1;
    *port_p = (int) port;
    return 0;
}

int
main (int argc, char *argv [])
{
    cw_log_init ("causeway-broker", CW_LOG_INFO);
    const char *config_file = NULL;
    const char *endpoint_file = NULL;
    bool print_config = false;
    for (int index = 1; index < argc; index++) {
        if (streq (argv [index], "--help"))
            return s_usage (stdout);
        else
        if (streq (argv [index], "--sample-config")) {
            cw_config_write_sample (s_schema, "causeway-broker", stdout);
            return 0;
        }
        else
        if (streq (argv [index], "--print-config"))
            print_config = true;
        else
        if (streq (argv [index], "--config") && index + 1 < argc)
            config_file = argv [++index];
        else
        if (streq (argv [index], "--endpoint-file") && index + 1 < argc)
            endpoint_file = argv [++index];
        else {
            fprintf (stderr, "causeway-broker: unknown argument \"%s\"\n",
                     argv [index]);
            return s_usage (stderr);
        }
    }
    s_settings_t settings;
    cw_config_t *config = cw_config_new (s_schema);
    cw_config_load_or_exit (config, config_file, &settings);
    cw_log_set_level (settings.log_level);
    if (print_config) {
        cw_config_print (config, stdout);
        cw_config_destroy (&config);
        return 0;
    }

    //  Tables: flows, targets, routes
    char error [CW_BROKER_ERROR_SIZE] = "";
    char *flows_text = strdup (settings.retry_flows);
    char *targets_text = strdup (settings.targets);
    char *routes_text = strdup (settings.routes);
    s_entry_t entries [3][CW_BROKER_TABLE_MAX];
    int flow_count = s_table (flows_text, entries [0], "retry/flows", error,
                              sizeof (error));
    int target_count = flow_count < 0 ? -1
        : s_table (targets_text, entries [1], "targets/caps", error, sizeof (error));
    int route_count = target_count < 0 ? -1
        : s_table (routes_text, entries [2], "publish/routes", error, sizeof (error));
    cw_core_flow_t flows [CW_BROKER_TABLE_MAX];
    cw_core_target_t targets [CW_BROKER_TABLE_MAX];
    cw_broker_route_t routes [CW_BROKER_TABLE_MAX];
    for (int index = 0; route_count >= 0 && index < flow_count; index++) {
        s_entry_t *entry = &entries [0][index];
        flows [index].flow = entry->name;
        if (entry->fields != 3
        ||  s_uint (entry->field [0], &flows [index].policy.max_attempts)
        ||  s_duration (entry->field [1], &flows [index].policy.base_msec)
        ||  s_duration (entry->field [2], &flows [index].policy.cap_msec)
        ||  flows [index].policy.max_attempts > CW_BROKER_ATTEMPTS_MAX
        ||  flows [index].policy.base_msec > CW_BROKER_BASE_MAX
        ||  flows [index].policy.cap_msec > CW_BROKER_CAP_MAX) {
            //  The bounds of retry/max_attempts, retry/base, retry/cap: a
            //  cap beyond them overflowed the time of the next attempt
            snprintf (error, sizeof (error), "config key \"retry/flows\": "
                      "entry \"%s\" is not flow=attempts:base:cap (attempts"
                      " at most 1000, base at most 1h, cap at most 24h)",
                      entry->name);
            route_count = -1;
        }
    }
    for (int index = 0; route_count >= 0 && index < target_count; index++) {
        s_entry_t *entry = &entries [1][index];
        targets [index].target = entry->name;
        if (entry->fields != 3
        ||  s_uint (entry->field [0], &targets [index].max_inflight)
        ||  s_uint (entry->field [1], &targets [index].rate_per_sec)
        ||  s_uint (entry->field [2], &targets [index].burst)) {
            snprintf (error, sizeof (error), "config key \"targets/caps\": "
                      "entry \"%s\" is not target=max_inflight:rate:burst",
                      entry->name);
            route_count = -1;
        }
    }
    for (int index = 0; index < route_count; index++) {
        s_entry_t *entry = &entries [2][index];
        routes [index].event_type = entry->name;
        routes [index].flow = entry->fields > 0 ? entry->field [0] : NULL;
        routes [index].target = entry->fields > 1 ? entry->field [1] : NULL;
        if (!routes [index].flow || entry->fields > 2) {
            snprintf (error, sizeof (error), "config key \"publish/routes\": "
                      "entry \"%s\" is not type=flow:target", entry->name);
            route_count = -1;
            break;
        }
    }
    char name [CW_BROKER_ID_SIZE];
    if (*settings.broker_id)
        snprintf (name, sizeof (name), "%s", settings.broker_id);
    else {
        char host [64] = "broker";
        gethostname (host, sizeof (host) - 1);
        snprintf (name, sizeof (name), "%s-%d", host, (int) getpid ());
    }
    //  Leases are owned by the name plus this run's incarnation: a broker
    //  restarted under the same broker/id never takes its previous run's
    //  leases for its own (its sweep would skip them and its claims would
    //  let their keys' successors pass); they expire and are swept back
    //  like any lost broker's.
    if (sodium_init () < 0) {
        fprintf (stderr, "causeway-broker: libsodium failed to start\n");
        return 1;
    }
    char broker_id [CW_BROKER_ID_SIZE + 16];
    snprintf (broker_id, sizeof (broker_id), "%s/%08" PRIx32, name,
              randombytes_random ());
    cw_broker_config_t broker_config = {
        .endpoint = settings.bind,
        .poll_only = settings.poll_only,
        .inbox_ttl_msec = settings.inbox_ttl_msec,
        .retention_msec = settings.retention_msec,
        .purge_msec = settings.purge_msec,
        .drain_msec = settings.drain_msec,
        .replay_rate = settings.replay_rate,
        .routes = routes,
        .route_count = route_count > 0 ? (size_t) route_count : 0,
        .core = {
            .broker_id = broker_id,
            .lease_msec = settings.lease_msec,
            .renew_margin_msec = settings.renew_margin_msec,
            .job_deadline_msec = settings.job_deadline_msec,
            .heartbeat_msec = settings.heartbeat_msec,
            .liveness = (uint32_t) settings.liveness,
            .claim_max = (uint32_t) settings.claim_max,
            .prefetch = (uint32_t) settings.prefetch,
            .poll_msec = settings.poll_msec,
            .flush_max = (uint32_t) settings.flush_max,
            .flush_msec = settings.flush_msec,
            .retry_msec = settings.retry_msec,
            .default_policy = {
                .base_msec = settings.retry_base_msec,
                .cap_msec = settings.retry_cap_msec,
                .max_attempts = (uint32_t) settings.retry_max_attempts
            },
            .flows = flows,
            .flow_count = flow_count > 0 ? (size_t) flow_count : 0,
            .targets = targets,
            .target_count = target_count > 0 ? (size_t) target_count : 0,
            .seed = (uint64_t) zclock_time () ^ (uint64_t) getpid ()
        }
    };
    if (route_count >= 0
    &&  cw_core_config_check (&broker_config.core, error, sizeof (error)) != 0)
        route_count = -1;
    char http_host [CW_BROKER_HTTP_HOST_SIZE] = "";
    if (route_count >= 0 && *settings.http) {
        if (s_http_address (settings.http, http_host, sizeof (http_host),
                            &broker_config.http_port)) {
            snprintf (error, sizeof (error), "config key \"server/http\": "
                      "\"%s\" is not host:port (an IPv4 or [IPv6] literal "
                      "and a port 0..65535, e.g. 127.0.0.1:9464)",
                      settings.http);
            route_count = -1;
        }
        else
            broker_config.http_host = http_host;
    }
    if (route_count < 0) {
        cw_log (CW_LOG_FATAL, "config_invalid", error, NULL);
        free (flows_text);
        free (targets_text);
        free (routes_text);
        cw_config_destroy (&config);
        return CW_CONFIG_EXIT_CODE;
    }

    //  SIGHUP is blocked in every thread (they inherit this mask) and
    //  taken by the main loop: no thread's poll is interrupted by it
    sigset_t hangup;
    sigemptyset (&hangup);
    sigaddset (&hangup, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &hangup, NULL);

    int exit_code = CW_BROKER_EXIT_FAILED;
    char *db_uri = cw_secret_load (settings.db_uri_file, error, sizeof (error));
    zcert_t *cert = db_uri ? cw_curve_cert_load_secret (settings.cert_file,
                                                        error, sizeof (error))
                           : NULL;
    zactor_t *zap = cert ? cw_zap_new (settings.peers_dir, error, sizeof (error))
                         : NULL;
    zactor_t *broker = NULL;
    if (!zap)
        cw_log (CW_LOG_FATAL, "startup_failed", "cannot start", "error", error,
                NULL);
    else {
        broker_config.server_cert = cert;
        broker_config.db_uri = db_uri;
        broker = zactor_new (cw_broker_actor, &broker_config);
    }
    char *endpoint = NULL;
    if (broker) {
        //  zactor_new returns the actor whatever it signalled: one that
        //  could not start (bind_failed, store_failed, logged) has ended,
        //  and its pipe holds the end signal instead of the endpoint
        zstr_send (broker, "ENDPOINT");
        zmsg_t *answer = zmsg_recv (broker);
        if (answer && zmsg_signal (answer) < 0)
            endpoint = zmsg_popstr (answer);
        zmsg_destroy (&answer);
        if (!endpoint) {
            cw_log (CW_LOG_FATAL, "startup_failed", "cannot start the broker",
                    NULL);
            //  Its end signal is read: the destructor must not wait for it
            zsock_set_rcvtimeo (zactor_sock (broker), 0);
            zactor_destroy (&broker);
        }
    }
    if (broker) {
        if (endpoint_file && endpoint) {
            char temp [1024];
            snprintf (temp, sizeof (temp), "%s.tmp", endpoint_file);
            FILE *file = fopen (temp, "w");
            if (file) {
                fprintf (file, "%s\n", endpoint);
                fclose (file);
                rename (temp, endpoint_file);
            }
        }
        zstr_free (&endpoint);
        bool draining = false;
        int64_t drain_until = 0;
        while (true) {
            zmq_pollitem_t item = { zsock_resolve (broker), 0, ZMQ_POLLIN, 0 };
            zmq_poll (&item, 1, CW_BROKER_WAIT_MSEC);
            if (item.revents & ZMQ_POLLIN) {
                char *message = zstr_recv (broker);
                bool exited = message && streq (message, "EXIT");
                zstr_free (&message);
                if (exited) {
                    exit_code = 0;
                    break;
                }
            }
            struct timespec no_wait = { 0, 0 };
            if (sigtimedwait (&hangup, NULL, &no_wait) == SIGHUP
            &&  cw_zap_reload (zap, error, sizeof (error)) < 0)
                cw_log (CW_LOG_ERROR, "reload_failed",
                        "allowed keys not reloaded; the previous ones stay",
                        "error", error, NULL);
            if (draining && zclock_mono () >= drain_until) {
                //  The drain could not finish (the database unreachable:
                //  results and releases not recorded); their leases run
                //  out and the jobs run again, same idempotency keys
                cw_log (CW_LOG_ERROR, "drain_unfinished",
                        "drain did not finish in broker/drain plus grace;"
                        " leases not released will expire", NULL);
                exit_code = CW_BROKER_EXIT_FAILED;
                break;
            }
            if (zsys_interrupted) {
                if (draining) {
                    cw_log (CW_LOG_WARN, "shutdown_forced",
                            "second signal: exiting now", NULL);
                    break;
                }
                draining = true;
                drain_until = zclock_mono () + settings.drain_msec
                            + CW_BROKER_DRAIN_GRACE_MSEC;
                zsys_interrupted = 0;
                zstr_send (broker, "DRAIN");
            }
        }
        zactor_destroy (&broker);
    }
    zactor_destroy (&zap);
    cw_curve_cert_destroy (&cert);
    cw_secret_destroy (&db_uri);
    free (flows_text);
    free (targets_text);
    free (routes_text);
    cw_config_destroy (&config);
    cw_log (CW_LOG_INFO, "broker_stopped", "broker stopped", NULL);
    return exit_code;
}
