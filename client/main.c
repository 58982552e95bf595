/*  =========================================================================
    causeway - the operator CLI

    causeway <command> [arguments]; each command is one function in the
    table below (later: replay, reconcile, status, dlq, slo).
    Exit codes: 0 done, 1 failure, 2 bad usage.
    =========================================================================
*/
#include "cw_curve.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

#define CW_CLIENT_EXIT_OK 0
#define CW_CLIENT_EXIT_FAILURE 1
#define CW_CLIENT_EXIT_USAGE 2
#define CW_CLIENT_ERROR_MAX 1024

typedef int (s_command_fn) (int argc, char *argv[]);

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
//  Dispatcher

static const s_command_t s_commands[] = {
    {"cert", s_cert, "make and inspect CURVE certificates"},
    {NULL, NULL, NULL}};

static void
s_help (FILE *stream)
{
    fprintf (stream, "usage: causeway <command> [arguments]\n\ncommands:\n");
    for (int index = 0; s_commands[index].name; index++)
        fprintf (stream, "  %-10s %s\n", s_commands[index].name,
                 s_commands[index].summary);
    fprintf (stream, "\n\"causeway <command> --help\" describes one.\n");
}

int
main (int argc, char *argv[])
{
    if (argc < 2) {
        s_help (stderr);
        return CW_CLIENT_EXIT_USAGE;
    }
    if (streq (argv[1], "--help") || streq (argv[1], "-h")
        || streq (argv[1], "help")) {
        s_help (stdout);
        return CW_CLIENT_EXIT_OK;
    }
    for (int index = 0; s_commands[index].name; index++)
        if (streq (argv[1], s_commands[index].name))
            return s_commands[index].run (argc - 1, argv + 1);
    return s_usage_error ("unknown command \"%s\"", argv[1]);
}
