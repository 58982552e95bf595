/*  =========================================================================
    causeway - the operator CLI

    causeway [global options] <command> [arguments]; each command is one
    function in the table at the end. `cert` makes and shows CURVE
    certificates (no broker needed); `status`, `dlq list`, `dlq discard`
    and `replay` talk to a broker over CurveZMQ (client/cw_client: a DEALER socket,
    CURVE client with an admin certificate, CWP/1 REQUEST / RESPONSE,
    proto/PROTOCOL.md §4.9). Global options: --broker, --broker-key,
    --cert (environment CAUSEWAY_BROKER, CAUSEWAY_BROKER_KEY,
    CAUSEWAY_CERT as fallback; flags win), --timeout, --json.
    Arguments are checked here, before connecting, by the rules of the
    spec; the broker checks them again. `slo` measures the contract's
    service levels from the job rows. Not yet: reconcile.
    Exit codes: 0 done, 1 failure, 2 bad usage. docs/operator.md.
    =========================================================================
*/
#include "cw_client.h"
#include "cw_curve.h"
#include "cw_envelope.h"
#include "cw_log.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define CW_CLIENT_EXIT_OK 0
#define CW_CLIENT_EXIT_FAILURE 1
#define CW_CLIENT_EXIT_USAGE 2
#define CW_CLIENT_ERROR_MAX 1024
#define CW_CLIENT_TIMEOUT_DEFAULT 10000     //  --timeout, msec
#define CW_CLIENT_TIMEOUT_MAX 3600000       //  --timeout at most 1 h, msec
#define CW_CLIENT_TENANT_MAX 255            //  Selection limits, bytes
#define CW_CLIENT_FLOW_MAX 64               //  (PROTOCOL.md §4.9)
#define CW_CLIENT_ID_MAX 255                //  --order, --customer
#define CW_CLIENT_WHY_MAX 500               //  replay.confirm reason
#define CW_CLIENT_LIST_LIMIT_MAX 1000       //  dlq.list limit
#define CW_CLIENT_PREVIEW_LIMIT_MAX 10000   //  replay.preview limit
#define CW_CLIENT_WIDTH_DEFAULT 80          //  Columns when not a terminal
#define CW_CLIENT_WIDTH_MIN 20              //  Narrower is taken as unknown
#define CW_CLIENT_WIDTH_MAX 1000            //  COLUMNS at most
#define CW_CLIENT_NUMBER_SIZE 32            //  Room for an int64 as text
#define CW_CLIENT_LABEL_SIZE 96             //  Room for a line's label
#define CW_CLIENT_NAME_WIDTH 18             //  status: counter name column
#define CW_CLIENT_MSEC_PER_SEC 1000
#define CW_CLIENT_MSEC_PER_MIN 60000
#define CW_CLIENT_ERROR_COLUMNS_MIN 30      //  Less: last_error below
#define CW_CLIENT_ERROR_INDENT 4            //  ... indented this much
#define CW_CLIENT_CELL_MAX 40               //  Widest other column
#define CW_CLIENT_ENV_BROKER "CAUSEWAY_BROKER"
#define CW_CLIENT_ENV_BROKER_KEY "CAUSEWAY_BROKER_KEY"
#define CW_CLIENT_ENV_CERT "CAUSEWAY_CERT"

//  Global options, from flags or the environment
typedef struct {
    const char *broker;             //  Broker endpoint
    const char *broker_from;        //  "--broker" or its variable
    const char *broker_key;         //  Z85 key or path of the broker's .pub
    const char *broker_key_from;    //  "--broker-key" or its variable
    const char *cert;               //  Path of the admin .secret
    const char *cert_from;          //  "--cert" or its variable
    int64_t timeout_msec;           //  Wait for each answer
    bool json;                      //  Print results as JSON
} s_global_t;

typedef int (s_command_fn) (s_global_t *global, int argc, char *argv[]);

typedef struct {
    const char *name;               //  Command word
    s_command_fn *run;              //  Runs it with argv[0] = name
    const char *summary;            //  One line for --help
} s_command_t;

static int
s_usage_error (const char *format, const char *detail)
{
    fprintf (stderr, "causeway: ");
    fprintf (stderr, format, detail);
    fprintf (stderr, "\nTry \"causeway --help\".\n");
    return CW_CLIENT_EXIT_USAGE;
}

static bool
s_is_help (const char *arg)
{
    return streq (arg, "--help") || streq (arg, "-h");
}

//  -------------------------------------------------------------------------
//  causeway cert

static void
s_cert_help (FILE *stream)
{
    fprintf (stream,
        "usage: causeway cert new --role ROLE --name NAME [--dir DIR] "
        "[--force]\n"
        "       causeway cert show FILE\n"
        "\n"
        "new   makes a CURVE key pair: DIR/NAME.pub (public, mode 0644) and\n"
        "      DIR/NAME.secret (secret, mode 0600); prints the public key.\n"
        "      ROLE is worker, admin or relay:<island> (island: a-z and _).\n"
        "      DIR defaults to the current directory. Existing files are\n"
        "      kept unless --force.\n"
        "show  prints the public key, role and name of a certificate file\n"
        "      (.pub or .secret; never prints the secret key).\n");
}

static int
s_cert_new (int argc, char *argv[])
{
    const char *role = NULL;
    const char *name = NULL;
    const char *dir = ".";
    bool force = false;
    for (int index = 1; index < argc; index++) {
        const char *arg = argv[index];
        const char **target = NULL;
        if (streq (arg, "--role"))
            target = &role;
        else
        if (streq (arg, "--name"))
            target = &name;
        else
        if (streq (arg, "--dir"))
            target = &dir;
        else
        if (streq (arg, "--force")) {
            force = true;
            continue;
        }
        else
        if (streq (arg, "--help") || streq (arg, "-h")) {
            s_cert_help (stdout);
            return CW_CLIENT_EXIT_OK;
        }
        else
            return s_usage_error ("cert new: unknown option \"%s\"", arg);
        if (index + 1 >= argc)
            return s_usage_error ("cert new: option %s needs a value", arg);
        *target = argv[++index];
    }
    if (!role)
        return s_usage_error ("cert new: %s is required (worker, admin or "
                              "relay:<island>)", "--role");
    if (!cw_curve_role_valid (role))
        return s_usage_error ("cert new: invalid --role \"%s\": use worker, "
                              "admin or relay:<island> (island: a-z and _)",
                              role);
    if (!name)
        return s_usage_error ("cert new: %s is required", "--name");
    if (!cw_curve_name_valid (name))
        return s_usage_error ("cert new: invalid --name \"%s\": use 1 to 64 "
                              "of A-Z a-z 0-9 _ . -, not starting with '.'",
                              name);
    zcert_t *cert = cw_curve_cert_new (role, name);
    char error[CW_CLIENT_ERROR_MAX];
    if (cw_curve_cert_save (cert, dir, name, force, error, sizeof (error))
        != 0) {
        fprintf (stderr, "causeway: cert new: %s\n", error);
        cw_curve_cert_destroy (&cert);
        return CW_CLIENT_EXIT_FAILURE;
    }
    printf ("public-key: %s\nrole: %s\nname: %s\n", zcert_public_txt (cert),
            role, name);
    printf ("public: %s/%s.pub\nsecret: %s/%s.secret\n", dir, name, dir,
            name);
    cw_curve_cert_destroy (&cert);
    return CW_CLIENT_EXIT_OK;
}

static int
s_cert_show (int argc, char *argv[])
{
    if (argc == 2 && (streq (argv[1], "--help") || streq (argv[1], "-h"))) {
        s_cert_help (stdout);
        return CW_CLIENT_EXIT_OK;
    }
    if (argc != 2)
        return s_usage_error ("cert show: %s", "give exactly one FILE");
    const char *path = argv[1];
    size_t length = strlen (path);
    bool secret = length > 7 && streq (path + length - 7, ".secret");
    char error[CW_CLIENT_ERROR_MAX];
    zcert_t *cert = secret
        ? cw_curve_cert_load_secret (path, error, sizeof (error))
        : cw_curve_cert_load_public (path, error, sizeof (error));
    if (!cert) {
        fprintf (stderr, "causeway: cert show: %s\n", error);
        return CW_CLIENT_EXIT_FAILURE;
    }
    const char *role = zcert_meta (cert, "role");
    const char *name = zcert_meta (cert, "name");
    printf ("public-key: %s\nrole: %s\nname: %s\n", zcert_public_txt (cert),
            role ? role : "(none)", name ? name : "(none)");
    int rc = CW_CLIENT_EXIT_OK;
    if (!cw_curve_role_valid (role)) {
        fprintf (stderr, "causeway: cert show: certificate \"%s\" has no "
                         "valid role: the broker ignores it\n", path);
        rc = CW_CLIENT_EXIT_FAILURE;
    }
    cw_curve_cert_destroy (&cert);
    return rc;
}

static int
s_cert (int argc, char *argv[])
{
    if (argc < 2 || streq (argv[1], "--help") || streq (argv[1], "-h")
        || streq (argv[1], "help")) {
        s_cert_help (argc < 2 ? stderr : stdout);
        return argc < 2 ? CW_CLIENT_EXIT_USAGE : CW_CLIENT_EXIT_OK;
    }
    if (streq (argv[1], "new"))
        return s_cert_new (argc - 1, argv + 1);
    if (streq (argv[1], "show"))
        return s_cert_show (argc - 1, argv + 1);
    return s_usage_error ("cert: unknown subcommand \"%s\" (new, show)",
                          argv[1]);
}

//  -------------------------------------------------------------------------
//  Shared by the broker commands: usage errors, argument rules, output

//  "causeway: COMMAND: MESSAGE" and a pointer to the command's --help.
static int
s_bad_usage (const char *command, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_bad_usage (const char *command, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "causeway: %s: ", command);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\nTry \"causeway %s --help\".\n", command);
    va_end (args);
    return CW_CLIENT_EXIT_USAGE;
}

//  "causeway: COMMAND: MESSAGE" for a failure (exit 1).
static int
s_failure (const char *command, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_failure (const char *command, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "causeway: %s: ", command);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    return CW_CLIENT_EXIT_FAILURE;
}

//  True if text is 1 .. max bytes of UTF-8 (the rule of every CWP/1
//  string, PROTOCOL.md §3).
static bool
s_text_valid (const char *text, size_t max)
{
    size_t length = strlen (text);
    return length > 0 && length <= max
        && cw_envelope_utf8_valid (text, length);
}

//  Parses a decimal integer min .. max; 0, or -1 if text is not one.
static int
s_integer_parse (const char *text, int64_t min, int64_t max, int64_t *value)
{
    //  strtoll would take leading blanks and a '+'
    if (!((*text >= '0' && *text <= '9') || *text == '-'))
        return -1;
    char *end = NULL;
    errno = 0;
    long long number = strtoll (text, &end, 10);
    if (errno || *end || number < min || number > max)
        return -1;
    *value = number;
    return 0;
}

//  Parses a duration "500ms", "10s" or "2m" into msec (1 ms .. 1 h);
//  0, or -1 if text is not one.
static int
s_duration_parse (const char *text, int64_t *msec)
{
    char *end = NULL;
    if (!*text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    long long number = strtoll (text, &end, 10);
    if (errno)
        return -1;
    int64_t unit;
    if (streq (end, "ms"))
        unit = 1;
    else
    if (streq (end, "s"))
        unit = CW_CLIENT_MSEC_PER_SEC;
    else
    if (streq (end, "m"))
        unit = CW_CLIENT_MSEC_PER_MIN;
    else
        return -1;
    if (number <= 0 || number > CW_CLIENT_TIMEOUT_MAX / unit)
        return -1;
    *msec = number * unit;
    return 0;
}

//  A copy of text fit for a terminal: control characters become spaces,
//  bytes that start no UTF-8 character become '?', and at most columns
//  characters are kept (the last three "..." when cut). Caller frees.
static char *
s_printable (const char *text, size_t columns)
{
    size_t length = strlen (text);
    char *copy = (char *) zmalloc (length + 4);
    size_t at = 0;
    size_t out = 0;
    size_t shown = 0;
    while (at < length) {
        if (shown == columns) {
            if (columns >= 3) {
                //  Step back over three characters to make room for "..."
                for (int dots = 0; dots < 3; dots++) {
                    while (out > 0 && (copy [out - 1] & 0xC0) == 0x80)
                        out--;
                    out--;
                }
                memcpy (copy + out, "...", 3);
                out += 3;
            }
            break;
        }
        size_t step = cw_log_utf8_length (text + at);
        unsigned char byte = (unsigned char) text [at];
        if (step == 0) {
            copy [out++] = '?';
            step = 1;
        }
        else
        if (step == 1 && (byte < 0x20 || byte == 0x7f))
            copy [out++] = ' ';
        else {
            memcpy (copy + out, text + at, step);
            out += step;
        }
        at += step;
        shown++;
    }
    copy [out] = 0;
    return copy;
}

//  Characters (not bytes) in a UTF-8 text that s_printable made.
static size_t
s_columns (const char *text)
{
    size_t count = 0;
    for (; *text; text++)
        if (((unsigned char) *text & 0xC0) != 0x80)
            count++;
    return count;
}

//  Columns of the output: the terminal's, else COLUMNS, else 80.
static size_t
s_output_width (void)
{
    struct winsize size;
    if (isatty (STDOUT_FILENO) && ioctl (STDOUT_FILENO, TIOCGWINSZ, &size) == 0
        && size.ws_col >= CW_CLIENT_WIDTH_MIN)
        return size.ws_col;
    int64_t columns = 0;
    const char *text = getenv ("COLUMNS");
    if (text && s_integer_parse (text, CW_CLIENT_WIDTH_MIN, CW_CLIENT_WIDTH_MAX,
                                 &columns)
        == 0)
        return (size_t) columns;
    return CW_CLIENT_WIDTH_DEFAULT;
}

//  Prints value as indented JSON on stdout.
static int
s_print_json (const json_t *value)
{
    if (json_dumpf (value, stdout, JSON_INDENT (2)) != 0)
        return CW_CLIENT_EXIT_FAILURE;
    printf ("\n");
    return CW_CLIENT_EXIT_OK;
}

//  Prints ids as a list wrapped at the output width, after a label.
static void
s_print_ids (const char *label, const json_t *ids)
{
    size_t width = s_output_width ();
    printf ("%s", label);
    size_t column = strlen (label);
    size_t index;
    json_t *id;
    json_array_foreach (ids, index, id) {
        char text [CW_CLIENT_NUMBER_SIZE];
        snprintf (text, sizeof (text), " %" JSON_INTEGER_FORMAT,
                  json_integer_value (id));
        if (column + strlen (text) > width && column > strlen (label)) {
            printf ("\n ");
            column = 1;
            printf ("%s", text + 1);
            column += strlen (text + 1);
            continue;
        }
        printf ("%s", text);
        column += strlen (text);
    }
    printf ("\n");
}

//  True if value is an array of integers > 0.
static bool
s_ids_valid (const json_t *value)
{
    if (!json_is_array (value))
        return false;
    size_t index;
    json_t *id;
    json_array_foreach (value, index, id)
        if (!json_is_integer (id) || json_integer_value (id) <= 0)
            return false;
    return true;
}

//  -------------------------------------------------------------------------
//  The connection: certificate, broker key, endpoint from the globals

//  The broker's public key from a Z85 text or a .pub file into key
//  (CW_CURVE_KEY_TXT + 1 bytes). Returns an exit code.
static int
s_broker_key (const char *command, const s_global_t *global, char *key)
{
    const char *value = global->broker_key;
    //  A file first: a path can be 40 characters of the Z85 alphabet too
    //  ("/tmp/causeway-quickstart/keys/broker.pub" is)
    if (cw_client_key_valid (value) && access (value, F_OK) != 0) {
        snprintf (key, CW_CURVE_KEY_TXT + 1, "%s", value);
        return CW_CLIENT_EXIT_OK;
    }
    if (strlen (value) == CW_CURVE_KEY_TXT && !strchr (value, '/'))
        return s_bad_usage (command, "%s \"%s\" is 40 characters but not a "
                            "Z85 key", global->broker_key_from, value);
    char error [CW_CLIENT_ERROR_MAX];
    zcert_t *cert = cw_curve_cert_load_public (value, error, sizeof (error));
    if (!cert)
        return s_failure (command, "%s \"%s\" is neither a Z85 key (40 "
                          "characters) nor a usable .pub certificate: %s",
                          global->broker_key_from, value, error);
    snprintf (key, CW_CURVE_KEY_TXT + 1, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return CW_CLIENT_EXIT_OK;
}

//  Checks the globals a broker command needs, loads the certificate and
//  connects. Returns an exit code; on 0 *client_p is the new client.
static int
s_connect (const char *command, const s_global_t *global,
           cw_client_t **client_p)
{
    if (!global->broker)
        return s_bad_usage (command, "--broker ENDPOINT (or %s) is "
                            "required", CW_CLIENT_ENV_BROKER);
    if (!global->broker_key)
        return s_bad_usage (command, "--broker-key KEY (or %s) is "
                            "required: the broker's public key or its .pub "
                            "file", CW_CLIENT_ENV_BROKER_KEY);
    if (!global->cert)
        return s_bad_usage (command, "--cert FILE (or %s) is required: "
                            "an admin .secret certificate",
                            CW_CLIENT_ENV_CERT);
    if (!strstr (global->broker, "://"))
        return s_bad_usage (command, "%s \"%s\" is not an endpoint (use "
                            "e.g. tcp://broker.example:5570)",
                            global->broker_from, global->broker);
    char key [CW_CURVE_KEY_TXT + 1];
    int rc = s_broker_key (command, global, key);
    if (rc)
        return rc;
    char error [CW_CLIENT_ERROR_MAX];
    zcert_t *cert = cw_curve_cert_load_secret (global->cert, error,
                                               sizeof (error));
    if (!cert)
        return s_failure (command, "%s: %s", global->cert_from, error);
    const char *role = zcert_meta (cert, "role");
    if (!role || !streq (role, "admin")) {
        rc = s_failure (command, "%s \"%s\" has role \"%s\": broker "
                        "commands need an admin certificate",
                        global->cert_from, global->cert,
                        role ? role : "(none)");
        cw_curve_cert_destroy (&cert);
        return rc;
    }
    *client_p = cw_client_new (global->broker, cert, key, error,
                               sizeof (error));
    cw_curve_cert_destroy (&cert);
    if (!*client_p)
        return s_bad_usage (command, "%s: %s", global->broker_from, error);
    return CW_CLIENT_EXIT_OK;
}

//  Sends op with args (taken) and returns the result of an "ok"
//  RESPONSE in *result_p (caller owns). Returns an exit code: 1 with a
//  message for no answer, an ERROR, or an error RESPONSE (its code,
//  message and field).
static int
s_ask (const char *command, const s_global_t *global, cw_client_t *client,
       const char *op, json_t **args_p, json_t **result_p)
{
    char error [CW_CLIENT_ERROR_MAX];
    cw_msg_t *response = cw_client_request (client, op, args_p,
                                            global->timeout_msec, error,
                                            sizeof (error));
    if (!response)
        return s_failure (command, "%s", error);
    int rc = CW_CLIENT_EXIT_OK;
    if (response->response.error_code) {
        rc = s_failure (command, "the broker answered %s with error %s: "
                        "%s%s%s%s", op, response->response.error_code,
                        response->response.error_message
                            ? response->response.error_message : "",
                        response->response.error_field ? " (field " : "",
                        response->response.error_field
                            ? response->response.error_field : "",
                        response->response.error_field ? ")" : "");
    }
    else
    if (!json_is_object (response->response.result))
        rc = s_failure (command, "the broker's answer to %s has no result",
                        op);
    else
        *result_p = json_incref (response->response.result);
    cw_msg_destroy (&response);
    return rc;
}

//  True if arg is one of the global options (misplaced after a command).
static bool
s_global_option (const char *arg)
{
    return streq (arg, "--broker") || streq (arg, "--broker-key")
        || streq (arg, "--cert") || streq (arg, "--timeout")
        || streq (arg, "--json");
}

//  An option command does not take: exit 2, with a hint when arg is a
//  global option given after the command.
static int
s_option_unknown (const char *command, const char *arg)
{
    if (s_global_option (arg))
        return s_bad_usage (command, "%s is a global option: put it before "
                            "the command (causeway %s ... %s)", arg, arg,
                            command);
    return s_bad_usage (command, "unknown option \"%s\"", arg);
}

//  Takes the value of the option at argv[*index] into *target, moving
//  *index past it. Returns an exit code: 2 when the value is missing or
//  the option was given before.
static int
s_option_value (const char *command, int argc, char *argv[], int *index,
                const char **target)
{
    const char *arg = argv [*index];
    if (*index + 1 >= argc)
        return s_bad_usage (command, "%s needs a value", arg);
    if (*target)
        return s_bad_usage (command, "%s is given twice", arg);
    *target = argv [++*index];
    return CW_CLIENT_EXIT_OK;
}

//  Exit 2 naming flag unless value (when given) is an RFC 3339 time.
static int
s_time_option (const char *command, const char *flag, const char *value)
{
    if (value && !cw_envelope_time_valid (value))
        return s_bad_usage (command, "%s must be an RFC 3339 time with an "
                            "offset (2026-11-27T08:00:00Z)", flag);
    return CW_CLIENT_EXIT_OK;
}

//  -------------------------------------------------------------------------
//  causeway status

static void
s_status_help (FILE *stream)
{
    fprintf (stream,
        "usage: causeway [global options] status\n"
        "\n"
        "Asks the broker for its counters (op \"status\") and prints one\n"
        "per line (a group, such as results by outcome, one line per\n"
        "member), or the result object with --json. Among them: held,\n"
        "queued, inflight, workers, dispatched, commits, results, exhausted,\n"
        "published, duplicates, rejected, database_up, draining; all are\n"
        "in docs/broker.md, \"Admin operations\".\n");
}

static int
s_status (s_global_t *global, int argc, char *argv[])
{
    if (argc == 2 && s_is_help (argv [1])) {
        s_status_help (stdout);
        return CW_CLIENT_EXIT_OK;
    }
    if (argc > 1 && s_global_option (argv [1]))
        return s_option_unknown ("status", argv [1]);
    if (argc > 1)
        return s_bad_usage ("status", "unexpected argument \"%s\"", argv [1]);
    cw_client_t *client = NULL;
    int rc = s_connect ("status", global, &client);
    if (rc)
        return rc;
    json_t *args = json_object ();
    json_t *result = NULL;
    rc = s_ask ("status", global, client, "status", &args, &result);
    cw_client_destroy (&client);
    if (rc)
        return rc;
    if (global->json)
        rc = s_print_json (result);
    else {
        const char *name;
        json_t *value;
        json_object_foreach (result, name, value) {
            if (json_is_object (value)) {
                //  A group of counters (results by outcome): one line each
                const char *inner;
                json_t *count;
                json_object_foreach (value, inner, count) {
                    char *dotted = zsys_sprintf ("%s.%s", name, inner);
                    char *label = s_printable (dotted, CW_CLIENT_CELL_MAX);
                    if (json_is_integer (count))
                        printf ("%-*s %" JSON_INTEGER_FORMAT "\n",
                                CW_CLIENT_NAME_WIDTH, label,
                                json_integer_value (count));
                    free (label);
                    zstr_free (&dotted);
                }
                continue;
            }
            char *label = s_printable (name, CW_CLIENT_CELL_MAX);
            if (json_is_integer (value))
                printf ("%-*s %" JSON_INTEGER_FORMAT "\n",
                        CW_CLIENT_NAME_WIDTH, label,
                        json_integer_value (value));
            else
            if (json_is_boolean (value))
                printf ("%-*s %s\n", CW_CLIENT_NAME_WIDTH, label,
                        json_is_true (value) ? "yes" : "no");
            else {
                char *text = json_dumps (value, JSON_COMPACT | JSON_ENCODE_ANY);
                char *shown = s_printable (text ? text : "?",
                                           CW_CLIENT_CELL_MAX);
                printf ("%-*s %s\n", CW_CLIENT_NAME_WIDTH, label,
                        shown);
                free (shown);
                free (text);
            }
            free (label);
        }
    }
    json_decref (result);
    return rc;
}

//  -------------------------------------------------------------------------
//  Dead-letter selection: causeway dlq list, causeway replay

typedef struct {
    const char *tenant;             //  --tenant, required
    const char *flow;               //  --flow
    const char *order;              //  --order (data.orderId)
    const char *customer;           //  --customer (data.customerId)
    const char *reason;             //  --reason
    const char *since;              //  --since, RFC 3339
    const char *until;              //  --until, RFC 3339
    const char *limit;              //  --limit, as given
    const char *after;              //  --after (dlq list)
    const char *why;                //  --why (replay)
    bool dry_run;                   //  --dry-run (replay)
    int64_t limit_value;            //  --limit, checked; 0 = not given
    int64_t after_value;            //  --after, checked; -1 = not given
} s_selection_t;

static const char *s_reasons [] = {
    "rejected", "exhausted", "version_rejected", "operator", NULL};


//  Parses and checks the options of command (replay when replay, else
//  dlq list) into selection. Returns an exit code; -1 after --help.
static int
s_selection_parse (const char *command, bool replay, int argc, char *argv[],
                   s_selection_t *selection)
{
    memset (selection, 0, sizeof (*selection));
    selection->after_value = -1;
    for (int index = 1; index < argc; index++) {
        const char *arg = argv [index];
        const char **target = NULL;
        if (streq (arg, "--tenant"))
            target = &selection->tenant;
        else
        if (streq (arg, "--flow"))
            target = &selection->flow;
        else
        if (streq (arg, "--order"))
            target = &selection->order;
        else
        if (streq (arg, "--customer"))
            target = &selection->customer;
        else
        if (streq (arg, "--reason"))
            target = &selection->reason;
        else
        if (streq (arg, "--since"))
            target = &selection->since;
        else
        if (streq (arg, "--until"))
            target = &selection->until;
        else
        if (streq (arg, "--limit"))
            target = &selection->limit;
        else
        if (!replay && streq (arg, "--after"))
            target = &selection->after;
        else
        if (replay && streq (arg, "--why"))
            target = &selection->why;
        else
        if (replay && streq (arg, "--dry-run")) {
            selection->dry_run = true;
            continue;
        }
        else
        if (s_is_help (arg))
            return -1;
        else
            return s_option_unknown (command, arg);
        int rc = s_option_value (command, argc, argv, &index, target);
        if (rc)
            return rc;
    }
    if (!selection->tenant)
        return s_bad_usage (command, "--tenant is required");
    if (!s_text_valid (selection->tenant, CW_CLIENT_TENANT_MAX))
        return s_bad_usage (command, "--tenant must be 1..%d bytes of UTF-8",
                            CW_CLIENT_TENANT_MAX);
    if (selection->flow && !s_text_valid (selection->flow, CW_CLIENT_FLOW_MAX))
        return s_bad_usage (command, "--flow must be 1..%d bytes of UTF-8",
                            CW_CLIENT_FLOW_MAX);
    if (selection->order && !s_text_valid (selection->order, CW_CLIENT_ID_MAX))
        return s_bad_usage (command, "--order must be 1..%d bytes of UTF-8",
                            CW_CLIENT_ID_MAX);
    if (selection->customer
        && !s_text_valid (selection->customer, CW_CLIENT_ID_MAX))
        return s_bad_usage (command, "--customer must be 1..%d bytes of "
                            "UTF-8", CW_CLIENT_ID_MAX);
    if (selection->reason) {
        bool known = false;
        for (int index = 0; s_reasons [index]; index++)
            known = known || streq (selection->reason, s_reasons [index]);
        if (!known)
            return s_bad_usage (command, "--reason must be rejected, "
                                "exhausted, version_rejected or operator");
    }
    int rc = s_time_option (command, "--since", selection->since);
    if (!rc)
        rc = s_time_option (command, "--until", selection->until);
    if (rc)
        return rc;
    int64_t limit_max = replay ? CW_CLIENT_PREVIEW_LIMIT_MAX
                               : CW_CLIENT_LIST_LIMIT_MAX;
    if (selection->limit
        && s_integer_parse (selection->limit, 1, limit_max,
                            &selection->limit_value))
        return s_bad_usage (command, "--limit must be an integer 1..%lld",
                            (long long) limit_max);
    if (selection->after
        && s_integer_parse (selection->after, 0, INT64_MAX,
                            &selection->after_value))
        return s_bad_usage (command, "--after must be an integer >= 0 (a "
                            "job id)");
    if (replay && !selection->dry_run && !selection->why)
        return s_bad_usage (command, "--why TEXT is required (the reason "
                            "written to the audit log), unless --dry-run");
    if (selection->why && !s_text_valid (selection->why, CW_CLIENT_WHY_MAX))
        return s_bad_usage (command, "--why must be 1..%d bytes of UTF-8",
                            CW_CLIENT_WHY_MAX);
    return CW_CLIENT_EXIT_OK;
}

//  The args of dlq.list / replay.preview. Caller owns return value.
static json_t *
s_selection_args (const s_selection_t *selection)
{
    json_t *args = json_object ();
    json_object_set_new (args, "tenant", json_string (selection->tenant));
    const char *names [] = {"flow", "order", "customer", "reason", "since",
                            "until"};
    const char *values [] = {selection->flow, selection->order,
                             selection->customer, selection->reason,
                             selection->since, selection->until};
    for (size_t index = 0; index < sizeof (names) / sizeof (names [0]);
         index++)
        if (values [index])
            json_object_set_new (args, names [index],
                                 json_string (values [index]));
    if (selection->limit_value > 0)
        json_object_set_new (args, "limit",
                             json_integer (selection->limit_value));
    if (selection->after_value >= 0)
        json_object_set_new (args, "after_id",
                             json_integer (selection->after_value));
    return args;
}

static void
s_selection_help (FILE *stream, bool replay)
{
    fprintf (stream,
        "selection (combined with AND; only --tenant is required):\n"
        "  --tenant T      dead jobs of tenant T (1..255 bytes)\n"
        "  --flow F        of flow F (1..64 bytes)\n"
        "  --order O       whose event's data.orderId is O\n"
        "  --customer C    whose event's data.customerId is C\n"
        "  --reason R      dead for reason R: rejected, exhausted,\n"
        "                  version_rejected or operator\n"
        "  --since TIME    that died at or after TIME (RFC 3339,\n"
        "                  e.g. 2026-11-27T08:00:00Z)\n"
        "  --until TIME    that died before TIME\n"
        "  --limit N       at most N jobs (%s)\n",
        replay ? "1..10000, default 1000" : "1..1000, default 100");
}

//  -------------------------------------------------------------------------
//  causeway dlq list

static void
s_dlq_help (FILE *stream)
{
    fprintf (stream,
        "usage: causeway [global options] dlq list --tenant T [--flow F]\n"
        "           [--order O] [--customer C] [--reason R] [--since TIME]\n"
        "           [--until TIME] [--limit N] [--after ID]\n"
        "       causeway [global options] dlq discard --tenant T [...]\n"
        "           (--why TEXT | --dry-run)   (see dlq discard --help)\n"
        "\n"
        "Lists dead jobs (op \"dlq.list\") by ascending id: one line per\n"
        "job with its id, flow, order / customer, reason, attempts, time\n"
        "of death and last error (cut to fit the terminal). When more\n"
        "jobs match than were shown, the last line says so and gives the\n"
        "--after ID that shows the next ones. --json prints the result:\n"
        "{jobs: [{id, flow, tenant, idempotency_key, ordering_key, order,\n"
        "customer, reason, attempts, last_error, died_at, correlation_id}],\n"
        "more}.\n"
        "\n");
    s_selection_help (stream, false);
    fprintf (stream,
        "  --after ID      with an id above ID (paging)\n");
}

//  A cell of job: its member name as text (strings cleaned, integers
//  as decimals), "-" when absent or null. Caller frees.
static char *
s_cell (const json_t *job, const char *name, size_t columns)
{
    const json_t *value = json_object_get (job, name);
    if (json_is_string (value))
        return s_printable (json_string_value (value), columns);
    if (json_is_integer (value)) {
        char text [CW_CLIENT_NUMBER_SIZE];
        snprintf (text, sizeof (text), "%" JSON_INTEGER_FORMAT,
                  json_integer_value (value));
        return strdup (text);
    }
    return strdup ("-");
}

#define CW_CLIENT_DLQ_COLUMNS 6     //  Columns before last_error

static void
s_dlq_print (const json_t *jobs, bool more)
{
    const char *heads [CW_CLIENT_DLQ_COLUMNS] = {
        "ID", "FLOW", "ORDER/CUSTOMER", "REASON", "ATTEMPTS", "DIED AT"};
    size_t widths [CW_CLIENT_DLQ_COLUMNS];
    for (int column = 0; column < CW_CLIENT_DLQ_COLUMNS; column++)
        widths [column] = strlen (heads [column]);
    size_t count = json_array_size (jobs);
    char **cells = (char **) zmalloc (sizeof (char *) * (count + 1)
                                      * CW_CLIENT_DLQ_COLUMNS);
    char **errors = (char **) zmalloc (sizeof (char *) * (count + 1));
    for (size_t row = 0; row < count; row++) {
        const json_t *job = json_array_get (jobs, row);
        char **cell = cells + row * CW_CLIENT_DLQ_COLUMNS;
        cell [0] = s_cell (job, "id", CW_CLIENT_CELL_MAX);
        cell [1] = s_cell (job, "flow", CW_CLIENT_CELL_MAX);
        char *order = s_cell (job, "order", CW_CLIENT_CELL_MAX);
        char *customer = s_cell (job, "customer", CW_CLIENT_CELL_MAX);
        cell [2] = zsys_sprintf ("%s/%s", order, customer);
        free (order);
        free (customer);
        cell [3] = s_cell (job, "reason", CW_CLIENT_CELL_MAX);
        cell [4] = s_cell (job, "attempts", CW_CLIENT_CELL_MAX);
        cell [5] = s_cell (job, "died_at", CW_CLIENT_CELL_MAX);
        //  To the second: "2026-11-27T07:37:02.385323Z" -> "...02Z"
        char *fraction = strchr (cell [5], '.');
        if (fraction) {
            char *end = fraction + 1;
            while (*end >= '0' && *end <= '9')
                end++;
            memmove (fraction, end, strlen (end) + 1);
        }
        for (int column = 0; column < CW_CLIENT_DLQ_COLUMNS; column++) {
            size_t width = s_columns (cell [column]);
            if (width > widths [column])
                widths [column] = width;
        }
    }
    size_t used = 0;
    for (int column = 0; column < CW_CLIENT_DLQ_COLUMNS; column++)
        used += widths [column] + 2;
    size_t width = s_output_width ();
    //  The last error fills the rest of the line, or, when too little is
    //  left, a line of its own below the job's
    bool below = width < used + CW_CLIENT_ERROR_COLUMNS_MIN;
    size_t room = below ? width - CW_CLIENT_ERROR_INDENT : width - used;
    for (size_t row = 0; row < count; row++)
        errors [row] = s_cell (json_array_get (jobs, row), "last_error", room);
    for (size_t row = 0; row <= count; row++) {
        for (int column = 0; column < CW_CLIENT_DLQ_COLUMNS; column++) {
            const char *text = row == 0
                ? heads [column]
                : cells [(row - 1) * CW_CLIENT_DLQ_COLUMNS + column];
            //  Pad by characters, not bytes; no padding after the last
            bool last = below && column == CW_CLIENT_DLQ_COLUMNS - 1;
            printf ("%s%*s", text,
                    last ? 0 : (int) (widths [column] + 2 - s_columns (text)),
                    "");
        }
        if (!below)
            printf ("%s\n", row == 0 ? "LAST ERROR" : errors [row - 1]);
        else
        if (row == 0)
            printf ("\n%*sLAST ERROR\n", CW_CLIENT_ERROR_INDENT, "");
        else
            printf ("\n%*s%s\n", CW_CLIENT_ERROR_INDENT, "", errors [row - 1]);
    }
    if (more) {
        const json_t *last = json_object_get (json_array_get (jobs, count - 1),
                                              "id");
        printf ("%zu shown; more match: --after %" JSON_INTEGER_FORMAT
                " shows the next ones\n", count, json_integer_value (last));
    }
    for (size_t index = 0; index < count * CW_CLIENT_DLQ_COLUMNS; index++)
        free (cells [index]);
    for (size_t index = 0; index < count; index++)
        free (errors [index]);
    free (cells);
    free (errors);
}

static int
s_dlq_list (s_global_t *global, int argc, char *argv[])
{
    s_selection_t selection;
    int rc = s_selection_parse ("dlq list", false, argc, argv, &selection);
    if (rc < 0) {
        s_dlq_help (stdout);
        return CW_CLIENT_EXIT_OK;
    }
    if (rc)
        return rc;
    cw_client_t *client = NULL;
    rc = s_connect ("dlq list", global, &client);
    if (rc)
        return rc;
    json_t *args = s_selection_args (&selection);
    json_t *result = NULL;
    rc = s_ask ("dlq list", global, client, "dlq.list", &args, &result);
    cw_client_destroy (&client);
    if (rc)
        return rc;
    json_t *jobs = json_object_get (result, "jobs");
    json_t *more = json_object_get (result, "more");
    bool jobs_valid = json_is_array (jobs);
    for (size_t index = 0; jobs_valid && index < json_array_size (jobs);
         index++) {
        json_t *job = json_array_get (jobs, index);
        jobs_valid = json_is_object (job)
                  && json_is_integer (json_object_get (job, "id"));
    }
    if (!jobs_valid || !json_is_boolean (more))
        rc = s_failure ("dlq list", "the broker's answer to dlq.list is not "
                        "{jobs: [{id, ...}], more}");
    else
    if (global->json)
        rc = s_print_json (result);
    else
    if (json_array_size (jobs) == 0)
        printf ("no dead jobs match\n");
    else
        s_dlq_print (jobs, json_is_true (more) && json_array_size (jobs) > 0);
    json_decref (result);
    return rc;
}

static int
s_dlq_discard (s_global_t *global, int argc, char *argv[]);

static int
s_dlq (s_global_t *global, int argc, char *argv[])
{
    if (argc < 2 || s_is_help (argv [1]) || streq (argv [1], "help")) {
        s_dlq_help (argc < 2 ? stderr : stdout);
        return argc < 2 ? CW_CLIENT_EXIT_USAGE : CW_CLIENT_EXIT_OK;
    }
    if (streq (argv [1], "list"))
        return s_dlq_list (global, argc - 1, argv + 1);
    if (streq (argv [1], "discard"))
        return s_dlq_discard (global, argc - 1, argv + 1);
    return s_bad_usage ("dlq", "unknown subcommand \"%s\" (list, discard)",
                        argv [1]);
}

//  -------------------------------------------------------------------------
//  causeway replay

static void
s_replay_help (FILE *stream)
{
    fprintf (stream,
        "usage: causeway [global options] replay --tenant T [--flow F]\n"
        "           [--order O] [--customer C] [--reason R] [--since TIME]\n"
        "           [--until TIME] [--limit N] (--why TEXT | --dry-run)\n"
        "\n"
        "Replays dead jobs. First asks the broker which dead jobs the\n"
        "selection matches (op \"replay.preview\") and prints how many and\n"
        "their ids; with --dry-run it stops there and nothing changes.\n"
        "Otherwise it confirms exactly those ids (op \"replay.confirm\"):\n"
        "each job still dead is made ready again in place (same id,\n"
        "idempotency key and payload, so the far side de-duplicates), with\n"
        "a fresh attempt budget, and one audit row records the operator's\n"
        "key and TEXT. It prints the replayed ids and the skipped ones\n"
        "(replayed or discarded since the preview). No match: nothing is\n"
        "sent, exit 0. --json prints the preview's result with --dry-run,\n"
        "else {job_ids, more, replayed, skipped}.\n"
        "\n");
    s_selection_help (stream, true);
    fprintf (stream,
        "  --why TEXT      why (1..500 bytes, for the audit row); required\n"
        "                  unless --dry-run\n"
        "  --dry-run       show what would be replayed, change nothing\n");
}

//  What replay and dlq discard do with the dead jobs a selection matches:
//  the command's words, the op that confirms and the result member that
//  lists the jobs it changed.
typedef struct {
    const char *command;            //  "replay", "dlq discard"
    const char *confirm_op;         //  "replay.confirm", "dlq.discard"
    const char *done;               //  "replayed", "discarded"
    const char *verb;               //  "replay", "discard"
    void (*help) (FILE *stream);
} s_action_t;

//  Previews the selection (op "replay.preview": the exact ids), then,
//  unless --dry-run, confirms those ids with action's op.
static int
s_dead_action (const s_action_t *action, s_global_t *global, int argc,
               char *argv[])
{
    const char *command = action->command;
    s_selection_t selection;
    int rc = s_selection_parse (command, true, argc, argv, &selection);
    if (rc < 0) {
        action->help (stdout);
        return CW_CLIENT_EXIT_OK;
    }
    if (rc)
        return rc;
    cw_client_t *client = NULL;
    rc = s_connect (command, global, &client);
    if (rc)
        return rc;
    json_t *args = s_selection_args (&selection);
    json_t *preview = NULL;
    json_t *confirm = NULL;
    rc = s_ask (command, global, client, "replay.preview", &args, &preview);
    if (rc)
        goto done;
    json_t *job_ids = json_object_get (preview, "job_ids");
    json_t *more = json_object_get (preview, "more");
    if (!s_ids_valid (job_ids) || !json_is_boolean (more)) {
        rc = s_failure (command, "the broker's answer to replay.preview "
                        "is not {job_ids: [ids], more}");
        goto done;
    }
    size_t count = json_array_size (job_ids);
    if (!global->json) {
        if (count == 0)
            printf ("no dead jobs match: nothing to %s\n", action->verb);
        else {
            char label [CW_CLIENT_LABEL_SIZE];
            snprintf (label, sizeof (label), "%zu dead job%s match%s%s:",
                      count, count == 1 ? "" : "s", count == 1 ? "es" : "",
                      json_is_true (more) ? " (more match beyond --limit)"
                                          : "");
            s_print_ids (label, job_ids);
        }
    }
    if (count == 0 || selection.dry_run) {
        if (global->json)
            rc = s_print_json (preview);
        else
        if (count > 0)
            printf ("dry run: nothing %s\n", action->done);
        goto done;
    }
    args = json_pack ("{s:s, s:O, s:s}", "tenant", selection.tenant,
                      "job_ids", job_ids, "reason", selection.why);
    rc = s_ask (command, global, client, action->confirm_op, &args, &confirm);
    if (rc)
        goto done;
    json_t *changed = json_object_get (confirm, action->done);
    json_t *skipped = json_object_get (confirm, "skipped");
    if (!s_ids_valid (changed) || !s_ids_valid (skipped)) {
        rc = s_failure (command, "the broker's answer to %s is not {%s: "
                        "[ids], skipped: [ids]}", action->confirm_op,
                        action->done);
        goto done;
    }
    if (global->json) {
        json_t *both = json_pack ("{s:O, s:O, s:O, s:O}", "job_ids", job_ids,
                                  "more", more, action->done, changed,
                                  "skipped", skipped);
        rc = s_print_json (both);
        json_decref (both);
        goto done;
    }
    char label [CW_CLIENT_LABEL_SIZE];
    snprintf (label, sizeof (label), "%s %zu:", action->done,
              json_array_size (changed));
    s_print_ids (label, changed);
    if (json_array_size (skipped) > 0) {
        snprintf (label, sizeof (label), "skipped %zu (no longer dead, or "
                  "not of tenant):", json_array_size (skipped));
        s_print_ids (label, skipped);
    }
    if (json_is_true (more))
        printf ("more dead jobs match: run the same %s again for the "
                "next ones\n", command);
done:
    json_decref (preview);
    json_decref (confirm);
    cw_client_destroy (&client);
    return rc;
}

static int
s_replay (s_global_t *global, int argc, char *argv[])
{
    static const s_action_t action = {
        "replay", "replay.confirm", "replayed", "replay", s_replay_help };
    return s_dead_action (&action, global, argc, argv);
}

//  -------------------------------------------------------------------------
//  causeway dlq discard

static void
s_discard_help (FILE *stream)
{
    fprintf (stream,
        "usage: causeway [global options] dlq discard --tenant T [--flow F]\n"
        "           [--order O] [--customer C] [--reason R] [--since TIME]\n"
        "           [--until TIME] [--limit N] (--why TEXT | --dry-run)\n"
        "\n"
        "Discards dead jobs: they will never run, and no longer hold back\n"
        "the later jobs of their order or customer, which run next. First\n"
        "asks which dead jobs the selection matches (op \"replay.preview\")\n"
        "and prints them; with --dry-run it stops there. Otherwise it\n"
        "discards exactly those ids (op \"dlq.discard\"): each job still\n"
        "dead becomes \"discarded\" (the row stays, with its attempts and\n"
        "last error), and one audit row records the operator's key and\n"
        "TEXT. --json prints {job_ids, more, discarded, skipped}.\n"
        "\n");
    s_selection_help (stream, true);
    fprintf (stream,
        "  --why TEXT      why (1..500 bytes, for the audit row); required\n"
        "                  unless --dry-run\n"
        "  --dry-run       show what would be discarded, change nothing\n");
}

static int
s_dlq_discard (s_global_t *global, int argc, char *argv[])
{
    static const s_action_t action = {
        "dlq discard", "dlq.discard", "discarded", "discard",
        s_discard_help };
    return s_dead_action (&action, global, argc, argv);
}

//  -------------------------------------------------------------------------
//  causeway slo

#define CW_CLIENT_WINDOW_MAX_DAYS 366       //  slo --window at most

static void
s_slo_help (FILE *stream)
{
    fprintf (stream,
        "usage: causeway [global options] slo [--window N(m|h|d) | --since TIME]\n"
        "           [--until TIME] [--flow F]\n"
        "\n"
        "The contract's service levels, measured from the jobs finished in\n"
        "the window (op \"slo\"): per flow the jobs done and dead, the p50\n"
        "and p95 of event produced -> done, the jobs that needed a retry\n"
        "and how many of those ended done; then the contract's targets:\n"
        "customer/order sync p95 under 2 minutes, retry-to-success before\n"
        "the dead-letter queue at least 98%%. Done jobs older than the\n"
        "broker's retention/finished are gone: the output says from when\n"
        "the table still has them. --json prints the result.\n"
        "\n"
        "  --window N      the last N minutes (m), hours (h) or days (d);\n"
        "                  default 24h, at most %dd\n"
        "  --since TIME    from TIME instead (RFC 3339, with an offset)\n"
        "  --until TIME    up to TIME (default: now)\n"
        "  --flow F        one flow only\n", CW_CLIENT_WINDOW_MAX_DAYS);
}

//  "N" + m, h or d into seconds. Returns 0, or -1 if malformed or over
//  CW_CLIENT_WINDOW_MAX_DAYS.
static int
s_window_parse (const char *text, int64_t *seconds)
{
    if (!*text || *text < '0' || *text > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    long long number = strtoll (text, &end, 10);
    int64_t unit = streq (end, "m") ? 60 : streq (end, "h") ? 3600
                 : streq (end, "d") ? 86400 : 0;
    if (errno || !unit || number <= 0
        || number > (long long) CW_CLIENT_WINDOW_MAX_DAYS * 86400 / unit)
        return -1;
    *seconds = number * unit;
    return 0;
}

//  A duration in msec for people: "850 ms", "9.6 s", "2.5 min".
static void
s_msec_text (const json_t *value, char *text, size_t size)
{
    if (!json_is_integer (value)) {
        snprintf (text, size, "-");
        return;
    }
    json_int_t msec = json_integer_value (value);
    if (msec < 1000)
        snprintf (text, size, "%lld ms", (long long) msec);
    else
    if (msec < 120000)
        snprintf (text, size, "%.1f s", (double) msec / 1000.0);
    else
        snprintf (text, size, "%.1f min", (double) msec / 60000.0);
}

//  "2 of 3 (66.7%)", or "-" when none needed a retry.
static void
s_rate_text (const json_t *figures, char *text, size_t size)
{
    json_int_t retried = json_integer_value (json_object_get (figures,
                                                              "retried"));
    json_int_t done = json_integer_value (json_object_get (figures,
                                                           "retried_done"));
    if (retried <= 0)
        snprintf (text, size, "-");
    else
        snprintf (text, size, "%lld of %lld (%.1f%%)", (long long) done,
                  (long long) retried, 100.0 * (double) done
                                       / (double) retried);
}

static int
s_slo (s_global_t *global, int argc, char *argv[])
{
    const char *window = NULL, *since = NULL, *until = NULL, *flow = NULL;
    for (int index = 1; index < argc; index++) {
        const char *arg = argv [index];
        const char **target = NULL;
        if (s_is_help (arg)) {
            s_slo_help (stdout);
            return CW_CLIENT_EXIT_OK;
        }
        if (streq (arg, "--window"))
            target = &window;
        else
        if (streq (arg, "--since"))
            target = &since;
        else
        if (streq (arg, "--until"))
            target = &until;
        else
        if (streq (arg, "--flow"))
            target = &flow;
        else
            return s_option_unknown ("slo", arg);
        int rc = s_option_value ("slo", argc, argv, &index, target);
        if (rc)
            return rc;
    }
    int64_t seconds = 86400;
    if (window && since)
        return s_bad_usage ("slo", "give --window or --since, not both");
    if (window && s_window_parse (window, &seconds))
        return s_bad_usage ("slo", "--window must be N followed by m, h or "
                            "d (e.g. 24h, 30d), at most %dd",
                            CW_CLIENT_WINDOW_MAX_DAYS);
    int rc = s_time_option ("slo", "--since", since);
    if (!rc)
        rc = s_time_option ("slo", "--until", until);
    if (rc)
        return rc;
    if (flow && !s_text_valid (flow, CW_CLIENT_FLOW_MAX))
        return s_bad_usage ("slo", "--flow must be 1..%d bytes of UTF-8",
                            CW_CLIENT_FLOW_MAX);
    char since_text [32];
    if (!since) {
        time_t start = time (NULL) - (time_t) seconds;
        struct tm utc;
        gmtime_r (&start, &utc);
        strftime (since_text, sizeof (since_text), "%Y-%m-%dT%H:%M:%SZ",
                  &utc);
        since = since_text;
    }
    cw_client_t *client = NULL;
    rc = s_connect ("slo", global, &client);
    if (rc)
        return rc;
    json_t *args = json_pack ("{s:s}", "since", since);
    if (until)
        json_object_set_new (args, "until", json_string (until));
    if (flow)
        json_object_set_new (args, "flow", json_string (flow));
    json_t *result = NULL;
    rc = s_ask ("slo", global, client, "slo", &args, &result);
    cw_client_destroy (&client);
    if (rc)
        return rc;
    json_t *flows = json_object_get (result, "flows");
    json_t *sync = json_object_get (result, "sync");
    json_t *all = json_object_get (result, "all");
    json_t *targets = json_object_get (result, "targets");
    if (!json_is_array (flows) || !json_is_object (sync)
        || !json_is_object (all) || !json_is_object (targets)) {
        json_decref (result);
        return s_failure ("slo", "the broker's answer to slo is not {flows, "
                          "sync, all, targets}");
    }
    if (global->json) {
        rc = s_print_json (result);
        json_decref (result);
        return rc;
    }
    const char *oldest = json_string_value (json_object_get (result,
                                                             "oldest_done_at"));
    char *shown = s_printable (oldest ? oldest : "none", CW_CLIENT_CELL_MAX);
    printf ("jobs finished since %s%s%s (oldest done job kept: %s)\n", since,
            until ? " until " : "", until ? until : "", shown);
    free (shown);
    printf ("%-24s %7s %6s %9s %9s  %s\n", "FLOW", "DONE", "DEAD", "P50",
            "P95", "RETRIED -> DONE");
    size_t index;
    json_t *entry;
    json_array_foreach (flows, index, entry) {
        const char *flow_name = json_string_value (json_object_get (entry,
                                                                    "flow"));
        char *name = s_printable (flow_name ? flow_name : "?", 24);
        char p50 [32], p95 [32], rate [64];
        s_msec_text (json_object_get (entry, "latency_p50_ms"), p50,
                     sizeof (p50));
        s_msec_text (json_object_get (entry, "latency_p95_ms"), p95,
                     sizeof (p95));
        s_rate_text (entry, rate, sizeof (rate));
        printf ("%-24s %7lld %6lld %9s %9s  %s\n", name,
                (long long) json_integer_value (json_object_get (entry, "done")),
                (long long) json_integer_value (json_object_get (entry, "dead")),
                p50, p95, rate);
        free (name);
    }
    if (json_array_size (flows) == 0)
        printf ("(no job finished in the window)\n");
    //  The contract's targets
    json_t *p95 = json_object_get (sync, "latency_p95_ms");
    json_int_t p95_target = json_integer_value (json_object_get (
        targets, "sync_latency_p95_ms"));
    char text [64];
    s_msec_text (p95, text, sizeof (text));
    if (json_is_integer (p95))
        printf ("customer/order sync p95: %s (target under %lld s): %s\n",
                text, (long long) p95_target / 1000,
                json_integer_value (p95) < p95_target ? "met" : "NOT MET");
    else
        printf ("customer/order sync p95: no customer.upsert, order.create "
                "or order.status job done in the window\n");
    double rate_target = json_number_value (json_object_get (
        targets, "retry_to_success"));
    json_int_t retried = json_integer_value (json_object_get (all, "retried"));
    json_int_t retried_done = json_integer_value (json_object_get (
        all, "retried_done"));
    s_rate_text (all, text, sizeof (text));
    if (retried > 0)
        printf ("retry-to-success before the DLQ: %s (target at least "
                "%.0f%%): %s\n", text, rate_target * 100.0,
                (double) retried_done >= rate_target * (double) retried
                    ? "met" : "NOT MET");
    else
        printf ("retry-to-success before the DLQ: no job needed a retry\n");
    json_decref (result);
    return CW_CLIENT_EXIT_OK;
}

//  -------------------------------------------------------------------------
//  Dispatcher

static int
s_cert_command (s_global_t *global, int argc, char *argv[])
{
    (void) global;
    return s_cert (argc, argv);
}

static const s_command_t s_commands[] = {
    {"cert", s_cert_command, "make and inspect CURVE certificates"},
    {"status", s_status, "print the broker's counters"},
    {"dlq", s_dlq, "list or discard dead jobs (dlq list, dlq discard)"},
    {"replay", s_replay, "replay dead jobs (preview, then confirm)"},
    {"slo", s_slo, "the contract's service levels, from the job rows"},
    {NULL, NULL, NULL}};

static void
s_help (FILE *stream)
{
    fprintf (stream,
        "usage: causeway [global options] <command> [arguments]\n"
        "\ncommands:\n");
    for (int index = 0; s_commands[index].name; index++)
        fprintf (stream, "  %-10s %s\n", s_commands[index].name,
                 s_commands[index].summary);
    fprintf (stream,
        "\nglobal options (before the command; for status, dlq, replay):\n"
        "  --broker ENDPOINT   the broker, e.g. tcp://broker.example:5570\n"
        "                      (environment CAUSEWAY_BROKER)\n"
        "  --broker-key KEY    the broker's public key: 40 characters of\n"
        "                      Z85, or the path of its .pub certificate\n"
        "                      (environment CAUSEWAY_BROKER_KEY)\n"
        "  --cert FILE         this operator's admin .secret certificate,\n"
        "                      mode 0600 (environment CAUSEWAY_CERT)\n"
        "  --timeout DURATION  wait this long for each answer: 500ms, 10s,\n"
        "                      2m (default 10s, at most 1h)\n"
        "  --json              print the broker's result as JSON (scripts)\n"
        "Flags win over the environment.\n"
        "\nexit codes: 0 done, 1 failure (error answer, no answer in time,\n"
        "bad certificate), 2 bad usage.\n"
        "\"causeway <command> --help\" describes one; docs/operator.md has\n"
        "examples.\n");
}

//  Parses the global options from argv[1] on; returns the index of the
//  command word, or -1 after a usage error (printed).
static int
s_global_parse (int argc, char *argv[], s_global_t *global)
{
    global->broker = getenv (CW_CLIENT_ENV_BROKER);
    global->broker_from = CW_CLIENT_ENV_BROKER;
    global->broker_key = getenv (CW_CLIENT_ENV_BROKER_KEY);
    global->broker_key_from = CW_CLIENT_ENV_BROKER_KEY;
    global->cert = getenv (CW_CLIENT_ENV_CERT);
    global->cert_from = CW_CLIENT_ENV_CERT;
    global->timeout_msec = CW_CLIENT_TIMEOUT_DEFAULT;
    global->json = false;
    int index = 1;
    for (; index < argc && strncmp (argv [index], "--", 2) == 0; index++) {
        const char *arg = argv [index];
        if (streq (arg, "--help"))
            return index;
        if (streq (arg, "--json")) {
            global->json = true;
            continue;
        }
        const char **target = NULL;
        const char **from = NULL;
        if (streq (arg, "--broker")) {
            target = &global->broker;
            from = &global->broker_from;
        }
        else
        if (streq (arg, "--broker-key")) {
            target = &global->broker_key;
            from = &global->broker_key_from;
        }
        else
        if (streq (arg, "--cert")) {
            target = &global->cert;
            from = &global->cert_from;
        }
        else
        if (!streq (arg, "--timeout")) {
            s_usage_error ("unknown global option \"%s\"", arg);
            return -1;
        }
        if (index + 1 >= argc) {
            s_usage_error ("%s needs a value", arg);
            return -1;
        }
        const char *value = argv [++index];
        if (target) {
            *target = value;
            *from = arg;
        }
        else
        if (s_duration_parse (value, &global->timeout_msec)) {
            s_usage_error ("--timeout must be a duration from 1ms to 1h, "
                           "e.g. 500ms, 10s, 2m (not \"%s\")", value);
            return -1;
        }
    }
    //  An empty variable is as good as none
    if (global->broker && !*global->broker)
        global->broker = NULL;
    if (global->broker_key && !*global->broker_key)
        global->broker_key = NULL;
    if (global->cert && !*global->cert)
        global->cert = NULL;
    return index;
}

int
main (int argc, char *argv[])
{
    //  A CLI: Ctrl-C ends it at once (CZMQ's handler would only flag it)
    zsys_handler_set (NULL);
    //  cw_wire reports send failures through cw_log: keep those, not more
    cw_log_init ("causeway", CW_LOG_ERROR);
    s_global_t global;
    int first = s_global_parse (argc, argv, &global);
    if (first < 0)
        return CW_CLIENT_EXIT_USAGE;
    if (first >= argc) {
        s_help (stderr);
        return CW_CLIENT_EXIT_USAGE;
    }
    if (streq (argv [first], "--help") || streq (argv [first], "-h")
        || streq (argv [first], "help")) {
        s_help (stdout);
        return CW_CLIENT_EXIT_OK;
    }
    for (int index = 0; s_commands[index].name; index++)
        if (streq (argv [first], s_commands[index].name))
            return s_commands[index].run (&global, argc - first,
                                          argv + first);
    return s_usage_error ("unknown command \"%s\"", argv [first]);
}
