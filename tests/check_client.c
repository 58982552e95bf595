/*  =========================================================================
    check_client - causeway, the operator CLI, against a real broker: the
    causeway binary run as a process, causeway-broker as a process on a
    private PostgreSQL database (migrated with causeway-migrate), real
    CURVE with certificates made at test time. Dead jobs are made with
    SQL; what a replay did is read back with SQL.
    =========================================================================
*/
#include "cw_curve.h"
#include "cw_fixture.h"
#include "cw_test.h"

#include <arpa/inet.h>
#include <check.h>
#include <czmq.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MSEC 20000
#define ARGS_MAX 40

typedef struct {
    char *tmp;                  //  Temp dir: certs, uri file, logs
    char *uri;                  //  Superuser URI of the test database
    zcert_t *server;            //  Broker cert
    zcert_t *operator;          //  Admin cert, allowed (peers/)
    char *broker_pub;           //  Path of the broker's .pub
    char *operator_secret;      //  Path of the operator's .secret
    char *endpoint;             //  Bound endpoint
    pid_t pid;                  //  Broker
    int runs;                   //  causeway runs so far (log names)
    const char *timeout;        //  --timeout of s_admin runs
} fixture_t;

static fixture_t *
s_fixture_new (void)
{
    fixture_t *self = (fixture_t *) calloc (1, sizeof (fixture_t));
    self->tmp = cw_test_tmpdir ("check_client");
    self->timeout = "15s";
    self->server = cw_curve_cert_new ("admin", "broker");
    self->operator = cw_curve_cert_new ("admin", "operator");
    cw_fixture_cert_save (self->tmp, self->server, "server", "broker");
    cw_fixture_cert_save (self->tmp, self->operator, "peers", "operator");
    self->broker_pub = zsys_sprintf ("%s/server/broker.pub", self->tmp);
    self->operator_secret = zsys_sprintf ("%s/peers/operator.secret",
                                          self->tmp);
    return self;
}

//  Makes the database and starts the broker on it.
static void
s_broker_start (fixture_t *self)
{
    self->uri = cw_test_db_new ("client");
    const char *islands[] = {"erp_mw", "shop", NULL};
    cw_fixture_migrate_islands (self->tmp, self->uri, islands);
    const char *settings[] = {
        "CW_BROKER_ID=broker-test", "CW_BROKER_DB_POLL=200ms",
        "CW_BROKER_FLUSH=1ms", "CW_BROKER_SERVER_HEARTBEAT=200ms",
        "CW_BROKER_LOG_LEVEL=debug", NULL};
    self->pid = cw_fixture_broker_start (self->tmp, self->uri, "endpoint",
                                         "broker.log", settings, NULL,
                                         WAIT_MSEC, &self->endpoint);
}

static void
s_fixture_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    if (self->pid > 0)
        cw_test_stop (self->pid, 5000);
    zcert_destroy (&self->server);
    cw_curve_cert_destroy (&self->operator);
    zstr_free (&self->broker_pub);
    zstr_free (&self->operator_secret);
    free (self->endpoint);
    if (self->uri)
        cw_test_db_destroy (&self->uri);
    cw_test_tmpdir_destroy (&self->tmp);
    free (self);
    *self_p = NULL;
}

//  Runs causeway with args (NULL-terminated) and extra environment envp
//  (may be NULL); returns its exit code and sets *output_p to what it
//  wrote (stdout and stderr; caller frees; "" when nothing).
static int
s_run (fixture_t *self, const char *const args[], const char *const envp[],
       char **output_p)
{
    char *program = cw_test_build_path ("client/causeway");
    const char *argv[ARGS_MAX] = {program};
    int count = 1;
    for (; args[count - 1]; count++) {
        ck_assert_int_lt (count, ARGS_MAX - 1);
        argv[count] = args[count - 1];
    }
    argv[count] = NULL;
    char *log = zsys_sprintf ("%s/causeway-%d.out", self->tmp, ++self->runs);
    int rc = cw_fixture_run (argv, envp, log);
    char *text = cw_fixture_slurp (log);
    *output_p = text ? text : strdup ("");
    zstr_free (&log);
    free (program);
    return rc;
}

//  Runs causeway with the global options that reach the fixture's broker
//  as the operator (--json first when json), then args.
static int
s_admin (fixture_t *self, bool json, const char *const args[],
         char **output_p)
{
    const char *argv[ARGS_MAX] = {
        "--broker", self->endpoint, "--broker-key", self->broker_pub,
        "--cert", self->operator_secret, "--timeout", self->timeout};
    int count = 8;
    if (json)
        argv[count++] = "--json";
    for (int index = 0; args[index]; index++) {
        ck_assert_int_lt (count, ARGS_MAX - 1);
        argv[count++] = args[index];
    }
    argv[count] = NULL;
    return s_run (self, argv, NULL, output_p);
}

//  Fails unless text holds needle.
static void
s_has (const char *text, const char *needle)
{
    ck_assert_msg (strstr (text, needle) != NULL, "\"%s\" not in:\n%s",
                   needle, text);
}

//  Parses text as one JSON object; fails the test if it is not one.
static json_t *
s_json (const char *text)
{
    json_error_t error;
    json_t *value = json_loads (text, 0, &error);
    ck_assert_msg (json_is_object (value), "not a JSON object (%s):\n%s",
                   error.text, text);
    return value;
}

//  --- Status and connection ---------------------------------------------

//  status against a live broker: --json gives the counters, the human
//  form one per line; the environment is a fallback, flags win.
START_TEST (test_status)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self);
    char *output = NULL;
    const char *status[] = {"status", NULL};
    ck_assert_int_eq (s_admin (self, true, status, &output), 0);
    json_t *result = s_json (output);
    ck_assert (json_is_integer (json_object_get (result, "workers")));
    ck_assert_int_eq (json_integer_value (json_object_get (result, "workers")),
                      0);
    ck_assert (json_is_boolean (json_object_get (result, "draining")));
    json_decref (result);
    free (output);

    ck_assert_int_eq (s_admin (self, false, status, &output), 0);
    s_has (output, "workers ");
    s_has (output, "draining ");
    s_has (output, "results.ok ");
    ck_assert_ptr_null (strchr (output, '{'));
    free (output);

    //  From the environment alone
    char *broker = zsys_sprintf ("CAUSEWAY_BROKER=%s", self->endpoint);
    char *key = zsys_sprintf ("CAUSEWAY_BROKER_KEY=%s",
                              zcert_public_txt (self->server));
    char *cert = zsys_sprintf ("CAUSEWAY_CERT=%s", self->operator_secret);
    const char *env[] = {broker, key, cert, NULL};
    const char *json_status[] = {"--json", "status", NULL};
    ck_assert_int_eq (s_run (self, json_status, env, &output), 0);
    result = s_json (output);
    ck_assert (json_is_integer (json_object_get (result, "workers")));
    //  The two clients before said DISCONNECT: the broker forgot them
    //  (it would keep a silent peer for 1.2 s)
    ck_assert_int_eq (json_integer_value (json_object_get (result, "peers")),
                      1);
    json_decref (result);
    free (output);

    //  A .pub whose path is 40 characters of the Z85 alphabet, as
    //  /tmp/causeway-quickstart/keys/broker.pub is: read as the file it
    //  names. Before, it was taken for a key, and the handshake failed.
    char folder[] = "/tmp/cwkeyXXXXXX";
    ck_assert_ptr_nonnull (mkdtemp (folder));
    char *z85_path = zsys_sprintf ("%s/brokerkey12345678.pub", folder);
    while (strlen (z85_path) < 40) {
        char *longer = zsys_sprintf ("%s/k%s", folder,
                                     z85_path + strlen (folder) + 1);
        zstr_free (&z85_path);
        z85_path = longer;
    }
    ck_assert_int_eq (strlen (z85_path), 40);
    char *copy = cw_fixture_slurp (self->broker_pub);
    ck_assert_ptr_nonnull (copy);
    cw_fixture_write (z85_path, copy);
    free (copy);
    const char *by_path[] = {"--broker", self->endpoint, "--broker-key",
                             z85_path, "--cert", self->operator_secret,
                             "--timeout", "5s", "status", NULL};
    ck_assert_int_eq (s_run (self, by_path, NULL, &output), 0);
    s_has (output, "workers ");
    free (output);
    unlink (z85_path);
    rmdir (folder);
    zstr_free (&z85_path);

    //  A flag wins over its variable: --broker to where nothing listens
    const char *flag[] = {"--broker", "tcp://127.0.0.1:1", "--timeout",
                          "300ms", "status", NULL};
    ck_assert_int_eq (s_run (self, flag, env, &output), 1);
    s_has (output, "tcp://127.0.0.1:1");
    free (output);
    zstr_free (&broker);
    zstr_free (&key);
    zstr_free (&cert);
    s_fixture_destroy (&self);
}
END_TEST

//  No broker at the endpoint: exit 1 within the timeout (--timeout, or
//  10 s by default), naming the endpoint and the wait.
START_TEST (test_unreachable)
{
    fixture_t *self = s_fixture_new ();
    //  A port bound but not listening (held for the test): a connect to
    //  it is refused, as when no broker runs
    int holder = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (holder, 0);
    struct sockaddr_in address = {.sin_family = AF_INET};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    ck_assert_int_eq (bind (holder, (struct sockaddr *) &address,
                            sizeof (address)), 0);
    socklen_t length = sizeof (address);
    ck_assert_int_eq (getsockname (holder, (struct sockaddr *) &address,
                                   &length), 0);
    int port = ntohs (address.sin_port);
    char *endpoint = zsys_sprintf ("tcp://127.0.0.1:%d", port);
    const char *args[] = {"--broker", endpoint, "--broker-key",
                          self->broker_pub, "--cert", self->operator_secret,
                          "--timeout", "1s", "status", NULL};
    char *output = NULL;
    long long started = cw_test_now_msec ();
    ck_assert_int_eq (s_run (self, args, NULL, &output), 1);
    long long took = cw_test_now_msec () - started;
    ck_assert_int_ge (took, 900);
    ck_assert_int_lt (took, 5000);
    char *expected = zsys_sprintf ("no answer from the broker at %s within "
                                   "1 s", endpoint);
    s_has (output, expected);
    s_has (output, "no connection could be made");
    free (output);
    zstr_free (&expected);
    //  Without --timeout: 10 s
    args[6] = "status";
    args[7] = NULL;
    started = cw_test_now_msec ();
    ck_assert_int_eq (s_run (self, args, NULL, &output), 1);
    took = cw_test_now_msec () - started;
    ck_assert_int_ge (took, 9900);
    ck_assert_int_lt (took, 15000);
    expected = zsys_sprintf ("no answer from the broker at %s within 10 s",
                             endpoint);
    s_has (output, expected);
    free (output);
    zstr_free (&expected);
    zstr_free (&endpoint);
    close (holder);
    s_fixture_destroy (&self);
}
END_TEST

//  A broker key that is not the broker's: the CURVE handshake fails, the
//  client times out (exit 1) and points at --broker-key.
START_TEST (test_wrong_broker_key)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self);
    zcert_t *other = cw_curve_cert_new ("admin", "other");
    const char *args[] = {"--broker", self->endpoint, "--broker-key",
                          zcert_public_txt (other), "--cert",
                          self->operator_secret, "--timeout", "1500ms",
                          "status", NULL};
    char *output = NULL;
    long long started = cw_test_now_msec ();
    ck_assert_int_eq (s_run (self, args, NULL, &output), 1);
    ck_assert_int_lt (cw_test_now_msec () - started, 6000);
    char *expected = zsys_sprintf ("no answer from the broker at %s within "
                                   "1500 ms", self->endpoint);
    s_has (output, expected);
    s_has (output, "--broker-key");
    free (output);
    zstr_free (&expected);
    zcert_destroy (&other);
    s_fixture_destroy (&self);
}
END_TEST

//  Certificates the broker or the client refuse: a key the broker does
//  not know (ZAP refuses it: exit 1 at once, saying so), a certificate
//  without the admin role, a secret readable by others, a missing file.
START_TEST (test_certificate_refused)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self);
    zcert_t *stranger = cw_curve_cert_new ("admin", "stranger");
    cw_fixture_cert_save (self->tmp, stranger, "elsewhere", "stranger");
    zcert_t *worker = cw_curve_cert_new ("worker", "worker");
    cw_fixture_cert_save (self->tmp, worker, "peers", "worker");
    char *stranger_secret = zsys_sprintf ("%s/elsewhere/stranger.secret",
                                          self->tmp);
    const char *args[] = {"--broker", self->endpoint, "--broker-key",
                          self->broker_pub, "--cert", stranger_secret,
                          "--timeout", "10s", "status", NULL};
    char *output = NULL;
    long long started = cw_test_now_msec ();
    ck_assert_int_eq (s_run (self, args, NULL, &output), 1);
    ck_assert_int_lt (cw_test_now_msec () - started, 5000);
    s_has (output, "refused this client's certificate");
    s_has (output, self->endpoint);
    free (output);

    char *worker_secret = zsys_sprintf ("%s/peers/worker.secret", self->tmp);
    args[5] = worker_secret;
    ck_assert_int_eq (s_run (self, args, NULL, &output), 1);
    s_has (output, "has role \"worker\": broker commands need an admin "
                   "certificate");
    free (output);

    ck_assert_int_eq (chmod (stranger_secret, 0644), 0);
    args[5] = stranger_secret;
    ck_assert_int_eq (s_run (self, args, NULL, &output), 1);
    s_has (output, "--cert");
    s_has (output, "0600");
    free (output);

    char *missing = zsys_sprintf ("%s/none.secret", self->tmp);
    args[5] = missing;
    ck_assert_int_eq (s_run (self, args, NULL, &output), 1);
    s_has (output, "--cert");
    free (output);

    zstr_free (&missing);
    zstr_free (&worker_secret);
    zstr_free (&stranger_secret);
    cw_curve_cert_destroy (&worker);
    cw_curve_cert_destroy (&stranger);
    s_fixture_destroy (&self);
}
END_TEST

//  --- Usage --------------------------------------------------------------

//  Bad usage exits 2 with a message naming the flag, before connecting
//  (no broker runs: each case would otherwise fail with exit 1).
START_TEST (test_usage)
{
    fixture_t *self = s_fixture_new ();
    struct {
        const char *args[16];           //  After the global options
        const char *needle;             //  In the message
    } cases[] = {
        {{"dlq", "list", "--tenant", "t1", "--limit", "0", NULL},
         "dlq list: --limit must be an integer 1..1000"},
        {{"dlq", "list", "--tenant", "t1", "--limit", "1001", NULL},
         "--limit must be an integer 1..1000"},
        {{"dlq", "list", "--tenant", "t1", "--limit", "ten", NULL},
         "--limit must be an integer 1..1000"},
        {{"dlq", "list", "--flow", "f", NULL}, "--tenant is required"},
        {{"dlq", "list", "--tenant", "", NULL}, "--tenant must be"},
        {{"dlq", "list", "--tenant", "t1", "--reason", "bored", NULL},
         "--reason must be"},
        {{"dlq", "list", "--tenant", "t1", "--since", "yesterday", NULL},
         "--since must be an RFC 3339 time"},
        {{"dlq", "list", "--tenant", "t1", "--until", "2026-13-01T00:00:00Z",
          NULL},
         "--until must be an RFC 3339 time"},
        {{"dlq", "list", "--tenant", "t1", "--after", "-1", NULL},
         "--after must be an integer"},
        {{"dlq", "list", "--tenant", "t1", "--why", "x", NULL},
         "unknown option \"--why\""},
        {{"dlq", "list", "--tenant", "t1", "--limit", NULL},
         "--limit needs a value"},
        {{"dlq", "list", "--tenant", "t1", "--json", NULL},
         "--json is a global option"},
        {{"dlq", "purge", NULL}, "unknown subcommand \"purge\""},
        {{"replay", "--tenant", "t1", NULL}, "--why TEXT is required"},
        {{"replay", "--tenant", "t1", "--why", "", NULL}, "--why must be"},
        {{"replay", "--tenant", "t1", "--limit", "10001", "--dry-run", NULL},
         "replay: --limit must be an integer 1..10000"},
        {{"replay", "--tenant", "t1", "--after", "5", "--dry-run", NULL},
         "unknown option \"--after\""},
        {{"status", "extra", NULL}, "unexpected argument"},
        {{"frobnicate", NULL}, "unknown command \"frobnicate\""},
    };
    char *output = NULL;
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        const char *argv[ARGS_MAX] = {
            "--broker", "tcp://127.0.0.1:1", "--broker-key",
            self->broker_pub, "--cert", self->operator_secret};
        int count = 6;
        for (int arg = 0; cases[index].args[arg]; arg++)
            argv[count++] = cases[index].args[arg];
        argv[count] = NULL;
        int rc = s_run (self, argv, NULL, &output);
        ck_assert_msg (rc == 2, "case %zu: exit %d, not 2:\n%s", index, rc,
                       output);
        s_has (output, cases[index].needle);
        free (output);
    }
    //  Global options: a bad --timeout, a broker command without --broker,
    //  a broker key that is 40 characters but not Z85, a bad endpoint
    const char *timeout[] = {"--timeout", "10x", "status", NULL};
    ck_assert_int_eq (s_run (self, timeout, NULL, &output), 2);
    s_has (output, "--timeout must be a duration");
    free (output);
    const char *no_broker[] = {"--broker-key", self->broker_pub, "--cert",
                               self->operator_secret, "status", NULL};
    ck_assert_int_eq (s_run (self, no_broker, NULL, &output), 2);
    s_has (output, "--broker ENDPOINT (or CAUSEWAY_BROKER) is required");
    free (output);
    const char *bad_key[] = {"--broker", "tcp://127.0.0.1:1", "--broker-key",
                             "012345678901234567890123456789012345678\"",
                             "--cert", self->operator_secret, "status", NULL};
    ck_assert_int_eq (s_run (self, bad_key, NULL, &output), 2);
    s_has (output, "--broker-key");
    free (output);
    const char *bad_endpoint[] = {"--broker", "broker:5570", "--broker-key",
                                  self->broker_pub, "--cert",
                                  self->operator_secret, "status", NULL};
    ck_assert_int_eq (s_run (self, bad_endpoint, NULL, &output), 2);
    s_has (output, "--broker \"broker:5570\" is not an endpoint");
    free (output);
    //  Help: exit 0 and the flags described
    const char *helps[][3] = {{"--help", NULL, NULL},
                              {"status", "--help", NULL},
                              {"dlq", "--help", NULL},
                              {"dlq", "list", "--help"},
                              {"replay", "--help", NULL}};
    const char *topics[] = {"--broker-key", "counters", "--after",
                            "--after", "--dry-run"};
    for (size_t index = 0; index < 5; index++) {
        const char *argv[4] = {helps[index][0], helps[index][1],
                               helps[index][2], NULL};
        ck_assert_int_eq (s_run (self, argv, NULL, &output), 0);
        s_has (output, topics[index]);
        free (output);
    }
    s_fixture_destroy (&self);
}
END_TEST

//  --- Dead letters ------------------------------------------------------

//  Makes five dead jobs of http.generic, each payload an envelope whose
//  data names an order and a customer: t1 dl-1 (O-1, C-1), dl-2 (O-2,
//  C-1), dl-3 (O-3, C-2), dl-5 (O-5, C-3, exhausted), and t2 dl-4 (O-1,
//  C-1). dl-1's last error is long and holds a newline and an escape.
static void
s_dead_jobs (fixture_t *self)
{
    const char *rows[][6] = {
        {"t1", "dl-1", "O-1", "C-1", "rejected",
         "rejected (422): \x1b[31mname\nmust not be empty; the ERP also "
         "says that the street, the city and the postal code are missing"},
        {"t1", "dl-2", "O-2", "C-1", "rejected", "rejected (422): vat"},
        {"t1", "dl-3", "O-3", "C-2", "rejected", "rejected (400): sku"},
        {"t2", "dl-4", "O-1", "C-1", "rejected", "rejected (422): name"},
        {"t1", "dl-5", "O-5", "C-3", "exhausted", "timeout after 1000 ms"}};
    for (size_t index = 0; index < sizeof (rows) / sizeof (rows[0]);
         index++) {
        const char *const *row = rows[index];
        char *sql = zsys_sprintf (
            "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
            "  ordering_key, payload, state, dead_reason, attempts,"
            "  last_error, finished_at)"
            " VALUES ('http.generic', '%s', '%s', '%s:%s',"
            "  jsonb_build_object ('id', '%s', 'source', 'shop',"
            "    'type', 'order.created.v1', 'specversion', '1.0',"
            "    'time', '2026-11-27T07:00:00Z', 'tenantid', '%s',"
            "    'idempotencykey', '%s',"
            "    'datacontenttype', 'application/json',"
            "    'data', jsonb_build_object ('orderId', '%s',"
            "      'customerId', '%s')),"
            "  'dead', '%s', 1, $e$%s$e$, now ())",
            row[0], row[1], row[0], row[2], row[1], row[0], row[1], row[2],
            row[3], row[4], row[5]);
        cw_fixture_sql_ok (self->uri, sql);
        zstr_free (&sql);
    }
}

//  The id of the job with idempotency key key. Caller frees.
static char *
s_id (fixture_t *self, const char *key)
{
    char *sql = zsys_sprintf ("SELECT id FROM erp_mw.jobs"
                              " WHERE idempotency_key = '%s'", key);
    char *id = cw_fixture_sql_value (self->uri, sql);
    zstr_free (&sql);
    return id;
}

//  The ids of result's array member name, joined by commas. Caller frees.
static char *
s_ids (const json_t *result, const char *name, const char *member)
{
    const json_t *list = json_object_get (result, name);
    ck_assert_msg (json_is_array (list), "no array %s", name);
    char *text = strdup ("");
    size_t index;
    const json_t *item;
    json_array_foreach (list, index, item) {
        const json_t *id = member ? json_object_get (item, member) : item;
        ck_assert (json_is_integer (id));
        char *longer = zsys_sprintf ("%s%s%" JSON_INTEGER_FORMAT, text,
                                     index ? "," : "",
                                     json_integer_value (id));
        free (text);
        text = strdup (longer);
        zstr_free (&longer);
    }
    return text;
}

//  The longest line of text, in characters (UTF-8 aware).
static size_t
s_longest_line (const char *text)
{
    size_t longest = 0;
    size_t current = 0;
    for (; *text; text++) {
        if (*text == '\n') {
            longest = current > longest ? current : longest;
            current = 0;
        }
        else
        if (((unsigned char) *text & 0xC0) != 0x80)
            current++;
    }
    return current > longest ? current : longest;
}

//  dlq list: by tenant, order, customer and reason, paging with --after,
//  human (one line per job, errors cleaned and cut to the width) and
//  --json (the broker's result).
START_TEST (test_dlq_list)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self);
    s_dead_jobs (self);
    char *id1 = s_id (self, "dl-1");
    char *id2 = s_id (self, "dl-2");
    char *id3 = s_id (self, "dl-3");
    char *id5 = s_id (self, "dl-5");
    char *output = NULL;

    //  --json: the tenant's dead jobs by id, with order and customer
    const char *tenant[] = {"dlq", "list", "--tenant", "t1", NULL};
    ck_assert_int_eq (s_admin (self, true, tenant, &output), 0);
    json_t *result = s_json (output);
    char *ids = s_ids (result, "jobs", "id");
    char *expected = zsys_sprintf ("%s,%s,%s,%s", id1, id2, id3, id5);
    ck_assert_str_eq (ids, expected);
    zstr_free (&expected);
    free (ids);
    ck_assert (json_is_false (json_object_get (result, "more")));
    json_t *first = json_array_get (json_object_get (result, "jobs"), 0);
    ck_assert_str_eq (json_string_value (json_object_get (first, "order")),
                      "O-1");
    ck_assert_str_eq (json_string_value (json_object_get (first, "customer")),
                      "C-1");
    ck_assert_str_eq (json_string_value (json_object_get (first, "reason")),
                      "rejected");
    json_decref (result);
    free (output);

    //  Human: a header, one line per job, nothing wider than COLUMNS, the
    //  long error cut, control characters gone, times to the second
    const char *wide[] = {"COLUMNS=140", NULL};
    const char *argv[ARGS_MAX] = {
        "--broker", self->endpoint, "--broker-key", self->broker_pub,
        "--cert", self->operator_secret, "dlq", "list", "--tenant", "t1",
        NULL};
    ck_assert_int_eq (s_run (self, argv, wide, &output), 0);
    s_has (output, "ID");
    s_has (output, "  LAST ERROR\n");
    s_has (output, "O-1/C-1");
    s_has (output, "O-5/C-3");
    s_has (output, "exhausted");
    s_has (output, "rejected (422):  [31mname must not be empty");
    s_has (output, "...\n");
    s_has (output, "Z  rejected (422): vat\n");
    ck_assert_ptr_null (strchr (output, '\x1b'));
    ck_assert_ptr_null (strstr (output, "postal code"));
    ck_assert_uint_le (s_longest_line (output), 140);
    ck_assert_ptr_null (strstr (output, "more match"));
    char *line = zsys_sprintf ("\n%s ", id3);
    s_has (output, line);
    zstr_free (&line);
    free (output);
    //  Narrow: each last error on a line of its own below its job
    const char *narrow[] = {"COLUMNS=80", NULL};
    ck_assert_int_eq (s_run (self, argv, narrow, &output), 0);
    ck_assert_uint_le (s_longest_line (output), 80);
    s_has (output, "Z\n    rejected (422): vat\n");
    s_has (output, "\n    LAST ERROR\n");
    ck_assert_ptr_null (strstr (output, "postal code"));
    free (output);

    //  By order, by customer, by reason
    const char *order[] = {"dlq", "list", "--tenant", "t1", "--order",
                           "O-1", NULL};
    ck_assert_int_eq (s_admin (self, true, order, &output), 0);
    result = s_json (output);
    ids = s_ids (result, "jobs", "id");
    ck_assert_str_eq (ids, id1);
    free (ids);
    json_decref (result);
    free (output);
    const char *customer[] = {"dlq", "list", "--tenant", "t1", "--customer",
                              "C-1", NULL};
    ck_assert_int_eq (s_admin (self, true, customer, &output), 0);
    result = s_json (output);
    ids = s_ids (result, "jobs", "id");
    expected = zsys_sprintf ("%s,%s", id1, id2);
    ck_assert_str_eq (ids, expected);
    zstr_free (&expected);
    free (ids);
    json_decref (result);
    free (output);
    ck_assert_int_eq (s_admin (self, false, customer, &output), 0);
    s_has (output, "O-2/C-1");
    ck_assert_ptr_null (strstr (output, "O-3"));
    free (output);
    const char *reason[] = {"dlq", "list", "--tenant", "t1", "--reason",
                            "exhausted", "--since", "2000-01-01T00:00:00Z",
                            NULL};
    ck_assert_int_eq (s_admin (self, true, reason, &output), 0);
    result = s_json (output);
    ids = s_ids (result, "jobs", "id");
    ck_assert_str_eq (ids, id5);
    free (ids);
    json_decref (result);
    free (output);

    //  Paging: --limit 2 says more match and how to go on; --after goes on
    const char *page[] = {"dlq", "list", "--tenant", "t1", "--limit", "2",
                          NULL};
    ck_assert_int_eq (s_admin (self, false, page, &output), 0);
    expected = zsys_sprintf ("2 shown; more match: --after %s", id2);
    s_has (output, expected);
    zstr_free (&expected);
    ck_assert_ptr_null (strstr (output, "O-3/C-2"));
    free (output);
    const char *next[] = {"dlq", "list", "--tenant", "t1", "--limit", "2",
                          "--after", id2, NULL};
    ck_assert_int_eq (s_admin (self, true, next, &output), 0);
    result = s_json (output);
    ids = s_ids (result, "jobs", "id");
    expected = zsys_sprintf ("%s,%s", id3, id5);
    ck_assert_str_eq (ids, expected);
    zstr_free (&expected);
    free (ids);
    ck_assert (json_is_false (json_object_get (result, "more")));
    json_decref (result);
    free (output);

    //  Nothing matches: said so, exit 0
    const char *none[] = {"dlq", "list", "--tenant", "t3", NULL};
    ck_assert_int_eq (s_admin (self, false, none, &output), 0);
    s_has (output, "no dead jobs match");
    free (output);
    free (id1);
    free (id2);
    free (id3);
    free (id5);
    s_fixture_destroy (&self);
}
END_TEST

//  The broker cannot reach its database: dlq list gets the error
//  RESPONSE unavailable, printed with its code and message; exit 1.
START_TEST (test_dlq_unavailable)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self);
    cw_fixture_db_refuse (self->uri, true);
    char *output = NULL;
    const char *list[] = {"dlq", "list", "--tenant", "t1", NULL};
    //  At once when the broker's store is idle; after its connect retries
    //  (some 16 s) when it was already reconnecting
    self->timeout = "45s";
    int rc = s_admin (self, false, list, &output);
    cw_fixture_db_refuse (self->uri, false);
    ck_assert_msg (rc == 1, "exit %d:\n%s", rc, output);
    s_has (output, "the broker answered dlq.list with error unavailable");
    free (output);
    s_fixture_destroy (&self);
}
END_TEST

//  replay: --dry-run shows the ids and changes nothing; --why replays
//  them in place (ready, same row) with one audit row; a second run
//  finds nothing and sends no confirm.
START_TEST (test_replay)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self);
    s_dead_jobs (self);
    char *id1 = s_id (self, "dl-1");
    char *id2 = s_id (self, "dl-2");
    char *id3 = s_id (self, "dl-3");
    char *output = NULL;

    const char *dry[] = {"replay", "--tenant", "t1", "--customer", "C-1",
                         "--dry-run", NULL};
    ck_assert_int_eq (s_admin (self, false, dry, &output), 0);
    char *expected = zsys_sprintf ("2 dead jobs match: %s %s", id1, id2);
    s_has (output, expected);
    zstr_free (&expected);
    s_has (output, "dry run: nothing replayed");
    free (output);
    ck_assert_int_eq (s_admin (self, true, dry, &output), 0);
    json_t *result = s_json (output);
    char *ids = s_ids (result, "job_ids", NULL);
    expected = zsys_sprintf ("%s,%s", id1, id2);
    ck_assert_str_eq (ids, expected);
    zstr_free (&expected);
    free (ids);
    ck_assert (json_is_false (json_object_get (result, "more")));
    json_decref (result);
    free (output);
    ck_assert_int_eq (cw_fixture_sql_count (self->uri,
                          "SELECT count(*) FROM erp_mw.jobs"
                          " WHERE state = 'dead'"), 5);
    ck_assert_int_eq (cw_fixture_sql_count (self->uri,
                          "SELECT count(*) FROM erp_mw.audit_log"), 0);

    //  Replay them
    const char *replay[] = {"replay", "--tenant", "t1", "--customer", "C-1",
                            "--why", "fixed", NULL};
    ck_assert_int_eq (s_admin (self, false, replay, &output), 0);
    expected = zsys_sprintf ("replayed 2: %s %s", id1, id2);
    s_has (output, expected);
    zstr_free (&expected);
    ck_assert_ptr_null (strstr (output, "skipped"));
    free (output);
    //  In place, ready again (no worker serves the flow: a claim the
    //  broker may make is handed back after a worker's liveness)
    char *sql = zsys_sprintf ("SELECT count(*) FROM erp_mw.jobs"
                              " WHERE id IN (%s, %s) AND state = 'ready'"
                              "   AND lease_owner IS NULL AND attempts = 1"
                              "   AND idempotency_key IN ('dl-1', 'dl-2')",
                              id1, id2);
    long long deadline = cw_test_now_msec () + WAIT_MSEC;
    while (cw_fixture_sql_count (self->uri, sql) != 2
           && cw_test_now_msec () < deadline)
        usleep (50000);
    ck_assert_int_eq (cw_fixture_sql_count (self->uri, sql), 2);
    zstr_free (&sql);
    ck_assert_int_eq (cw_fixture_sql_count (self->uri,
                          "SELECT count(*) FROM erp_mw.jobs"
                          " WHERE state = 'dead'"), 3);
    sql = zsys_sprintf ("SELECT count(*) FROM erp_mw.audit_log"
                        " WHERE action = 'replay' AND actor = 'admin:%s'"
                        "   AND detail ->> 'reason' = 'fixed'"
                        "   AND detail -> 'replayed' = '[%s, %s]'::jsonb",
                        zcert_public_txt (self->operator), id1, id2);
    ck_assert_int_eq (cw_fixture_sql_count (self->uri, sql), 1);
    zstr_free (&sql);

    //  Again: nothing matches, no confirm, no second audit row
    ck_assert_int_eq (s_admin (self, false, replay, &output), 0);
    s_has (output, "no dead jobs match: nothing to replay");
    free (output);
    ck_assert_int_eq (cw_fixture_sql_count (self->uri,
                          "SELECT count(*) FROM erp_mw.audit_log"), 1);

    //  --json, by order: the preview's ids and what the confirm did
    const char *by_order[] = {"replay", "--tenant", "t1", "--order", "O-3",
                              "--why", "sku added", NULL};
    ck_assert_int_eq (s_admin (self, true, by_order, &output), 0);
    result = s_json (output);
    ids = s_ids (result, "replayed", NULL);
    ck_assert_str_eq (ids, id3);
    free (ids);
    ids = s_ids (result, "skipped", NULL);
    ck_assert_str_eq (ids, "");
    free (ids);
    ids = s_ids (result, "job_ids", NULL);
    ck_assert_str_eq (ids, id3);
    free (ids);
    json_decref (result);
    free (output);
    ck_assert_int_eq (cw_fixture_sql_count (self->uri,
                          "SELECT count(*) FROM erp_mw.audit_log"
                          " WHERE action = 'replay'"), 2);
    //  The other tenant's dead job is untouched
    cw_fixture_sql_eq (self->uri, "SELECT state FROM erp_mw.jobs"
                                  " WHERE idempotency_key = 'dl-4'", "dead");

    //  --limit below the matches: the rest are left, and the output says so
    const char *limited[] = {"replay", "--tenant", "t2", "--limit", "1",
                             "--why", "one", NULL};
    cw_fixture_sql_ok (self->uri,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "  state, dead_reason, attempts, finished_at)"
        " VALUES ('http.generic', 't2', 'dl-6', '{}', 'dead', 'rejected', 1,"
        "  now ())");
    ck_assert_int_eq (s_admin (self, false, limited, &output), 0);
    s_has (output, "more match beyond --limit");
    s_has (output, "more dead jobs match");
    free (output);
    cw_fixture_sql_eq (self->uri, "SELECT state FROM erp_mw.jobs"
                                  " WHERE idempotency_key = 'dl-6'", "dead");
    free (id1);
    free (id2);
    free (id3);
    s_fixture_destroy (&self);
}
END_TEST

//  causeway dlq discard: --dry-run changes nothing; with --why the
//  selected dead jobs become discarded (rows kept), one audit row
//  (action discard) names the operator and the reason; they no longer
//  show in dlq list; --why is required.
START_TEST (test_dlq_discard)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self);
    s_dead_jobs (self);
    char *id5 = s_id (self, "dl-5");
    char *output = NULL;
    const char *no_why[] = {"dlq", "discard", "--tenant", "t1", NULL};
    ck_assert_int_eq (s_admin (self, false, no_why, &output), 2);
    free (output);

    const char *dry[] = {"dlq", "discard", "--tenant", "t1", "--reason",
                         "exhausted", "--dry-run", NULL};
    ck_assert_int_eq (s_admin (self, false, dry, &output), 0);
    char *expected = zsys_sprintf ("1 dead job matches: %s", id5);
    s_has (output, expected);
    zstr_free (&expected);
    s_has (output, "dry run: nothing discarded");
    free (output);
    cw_fixture_sql_eq (self->uri, "SELECT state FROM erp_mw.jobs"
                                  " WHERE idempotency_key = 'dl-5'", "dead");

    const char *discard[] = {"dlq", "discard", "--tenant", "t1", "--reason",
                             "exhausted", "--why", "order cancelled", NULL};
    ck_assert_int_eq (s_admin (self, true, discard, &output), 0);
    json_t *result = s_json (output);
    char *ids = s_ids (result, "discarded", NULL);
    ck_assert_str_eq (ids, id5);
    free (ids);
    ids = s_ids (result, "skipped", NULL);
    ck_assert_str_eq (ids, "");
    free (ids);
    json_decref (result);
    free (output);
    cw_fixture_sql_eq (self->uri, "SELECT state || ' ' || dead_reason"
                                  "  FROM erp_mw.jobs"
                                  " WHERE idempotency_key = 'dl-5'",
                       "discarded exhausted");
    char *sql = zsys_sprintf ("SELECT count(*) FROM erp_mw.audit_log"
                              " WHERE action = 'discard'"
                              "   AND actor = 'admin:%s'"
                              "   AND detail ->> 'reason' = 'order cancelled'"
                              "   AND detail -> 'discarded' = '[%s]'::jsonb",
                              zcert_public_txt (self->operator), id5);
    ck_assert_int_eq (cw_fixture_sql_count (self->uri, sql), 1);
    zstr_free (&sql);
    //  Gone from the dead letters; the others stay
    const char *list[] = {"dlq", "list", "--tenant", "t1", NULL};
    ck_assert_int_eq (s_admin (self, true, list, &output), 0);
    result = s_json (output);
    ids = s_ids (result, "jobs", "id");
    char *id1 = s_id (self, "dl-1");
    char *id2 = s_id (self, "dl-2");
    char *id3 = s_id (self, "dl-3");
    expected = zsys_sprintf ("%s,%s,%s", id1, id2, id3);
    ck_assert_str_eq (ids, expected);
    zstr_free (&expected);
    free (id1);
    free (id2);
    free (id3);
    free (ids);
    json_decref (result);
    free (output);
    //  Again: nothing matches
    ck_assert_int_eq (s_admin (self, false, discard, &output), 0);
    s_has (output, "no dead jobs match: nothing to discard");
    free (output);
    free (id5);
    s_fixture_destroy (&self);
}
END_TEST

//  causeway slo: the figures per flow and the contract's targets, met or
//  not, in human output and --json; bad usage names the flag.
START_TEST (test_slo)
{
    fixture_t *self = s_fixture_new ();
    s_broker_start (self);
    //  order.create: four done in 2 s, then one dead after three attempts
    //  and one done on its second: 1 of 2 retried ended done
    cw_fixture_sql_ok (self->uri,
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,"
        "  state, dead_reason, attempts, produced_at, finished_at)"
        " SELECT 'order.create', 't1', 'slo-' || n, '{}'::jsonb, 'done', NULL,"
        "   1, now () - interval '2 seconds', now ()"
        "   FROM generate_series (1, 4) n"
        " UNION ALL SELECT 'order.create', 't1', 'slo-dead', '{}', 'dead',"
        "   'exhausted', 3, now () - interval '1 minute', now ()"
        " UNION ALL SELECT 'order.create', 't1', 'slo-retried', '{}', 'done',"
        "   NULL, 2, now () - interval '2 seconds', now ()");
    char *output = NULL;
    const char *slo[] = {"slo", "--window", "1h", NULL};
    ck_assert_int_eq (s_admin (self, false, slo, &output), 0);
    s_has (output, "order.create");
    s_has (output, "1 of 2 (50.0%)");
    s_has (output, "customer/order sync p95: 2.0 s (target under 120 s): met");
    s_has (output, "retry-to-success before the DLQ: 1 of 2 (50.0%) (target "
                   "at least 98%): NOT MET");
    free (output);
    ck_assert_int_eq (s_admin (self, true, slo, &output), 0);
    json_t *result = s_json (output);
    json_t *all = json_object_get (result, "all");
    ck_assert_int_eq (json_integer_value (json_object_get (all, "done")), 5);
    ck_assert_int_eq (json_integer_value (json_object_get (all, "dead")), 1);
    ck_assert_int_eq (json_integer_value (json_object_get (all,
                          "latency_p95_ms")), 2000);
    json_decref (result);
    free (output);
    //  A window before any of it
    const char *empty[] = {"slo", "--since", "2000-01-01T00:00:00Z",
                           "--until", "2000-01-02T00:00:00Z", NULL};
    ck_assert_int_eq (s_admin (self, false, empty, &output), 0);
    s_has (output, "(no job finished in the window)");
    s_has (output, "no job needed a retry");
    free (output);
    //  Bad usage, before connecting
    const char *bad_window[] = {"slo", "--window", "24x", NULL};
    ck_assert_int_eq (s_admin (self, false, bad_window, &output), 2);
    s_has (output, "--window");
    free (output);
    const char *both[] = {"slo", "--window", "1h", "--since",
                          "2000-01-01T00:00:00Z", NULL};
    ck_assert_int_eq (s_admin (self, false, both, &output), 2);
    s_has (output, "--window or --since");
    free (output);
    const char *bad_since[] = {"slo", "--since", "yesterday", NULL};
    ck_assert_int_eq (s_admin (self, false, bad_since, &output), 2);
    s_has (output, "--since");
    free (output);
    s_fixture_destroy (&self);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("client");
    TCase *broker = tcase_create ("broker");
    tcase_set_timeout (broker, 60);
    tcase_add_test (broker, test_status);
    tcase_add_test (broker, test_unreachable);
    tcase_add_test (broker, test_wrong_broker_key);
    tcase_add_test (broker, test_certificate_refused);
    suite_add_tcase (suite, broker);
    TCase *dead = tcase_create ("dead_letters");
    tcase_set_timeout (dead, 90);
    tcase_add_test (dead, test_dlq_list);
    tcase_add_test (dead, test_dlq_unavailable);
    tcase_add_test (dead, test_replay);
    tcase_add_test (dead, test_dlq_discard);
    tcase_add_test (dead, test_slo);
    suite_add_tcase (suite, dead);
    TCase *usage = tcase_create ("usage");
    tcase_set_timeout (usage, 60);
    tcase_add_test (usage, test_usage);
    suite_add_tcase (suite, usage);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
