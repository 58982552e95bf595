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
} fixture_t;

static fixture_t *
s_fixture_new (void)
{
    fixture_t *self = (fixture_t *) calloc (1, sizeof (fixture_t));
    self->tmp = cw_test_tmpdir ("check_client");
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
        "--cert", self->operator_secret, "--timeout", "5s"};
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
    json_decref (result);
    free (output);

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

//  No broker at the endpoint: exit 1 within the timeout, naming the
//  endpoint and the wait.
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
    s_has (output, "--cert");
    s_has (output, "admin certificate");
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
