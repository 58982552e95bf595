/*  =========================================================================
    causeway-token - make Ed25519 token keys, sign and check tokens

      causeway-token keygen --out PREFIX
      causeway-token sign --key-file PREFIX.secret --iss ISS --sub SUB
                          --aud AUD [--ttl SECONDS]
      causeway-token verify --public-key FILE [--public-key FILE]
                            [--aud AUD] [--iss ISS] [TOKEN | -]

    Exit codes: 0 done, 1 failed (invalid token, I/O), 2 bad usage.
    =========================================================================
*/
#include "cw_log.h"
#include "cw_token.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOKEN_TTL_DEFAULT 300  //  Token lifetime, seconds
#define TOKEN_TTL_MAX 86400    //  Longest lifetime accepted, seconds
#define TOKEN_ERROR_SIZE 512   //  Room for an error message

static const char *s_usage =
    "usage: causeway-token keygen --out PREFIX\n"
    "       causeway-token sign --key-file FILE --iss ISS --sub SUB "
    "--aud AUD [--ttl SECONDS]\n"
    "       causeway-token verify --public-key FILE [--public-key FILE] "
    "[--aud AUD] [--iss ISS] [TOKEN|-]\n"
    "\n"
    "keygen writes PREFIX.secret (mode 0600) and PREFIX.public.\n"
    "sign prints a token valid for --ttl seconds (default 300).\n"
    "verify reads the token from the argument or standard input and\n"
    "prints its claims as JSON.\n";

static int
s_fail_usage (const char *message)
{
    fprintf (stderr, "causeway-token: %s\n%s", message, s_usage);
    return 2;
}

static int
s_keygen (int argc, char **argv)
{
    const char *prefix = NULL;
    static const struct option options[] = {
        {"out", required_argument, NULL, 'o'}, {NULL, 0, NULL, 0}};
    int option;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        if (option == 'o')
            prefix = optarg;
        else
            return s_fail_usage ("unknown option for keygen");
    }
    if (!prefix || optind != argc)
        return s_fail_usage ("keygen needs --out PREFIX and nothing else");
    char error[TOKEN_ERROR_SIZE];
    if (cw_token_keygen (prefix, error, sizeof (error))) {
        cw_log (CW_LOG_ERROR, "keygen_failed", error, NULL);
        return 1;
    }
    printf ("%s.secret\n%s.public\n", prefix, prefix);
    return 0;
}

static int
s_sign (int argc, char **argv)
{
    const char *key_file = NULL;
    cw_token_claims_t claims = {0};
    long ttl = TOKEN_TTL_DEFAULT;
    static const struct option options[] = {
        {"key-file", required_argument, NULL, 'k'},
        {"iss", required_argument, NULL, 'i'},
        {"sub", required_argument, NULL, 's'},
        {"aud", required_argument, NULL, 'a'},
        {"ttl", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0}};
    int option;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        char *end = NULL;
        switch (option) {
            case 'k':
                key_file = optarg;
                break;
            case 'i':
                claims.iss = optarg;
                break;
            case 's':
                claims.sub = optarg;
                break;
            case 'a':
                claims.aud = optarg;
                break;
            case 't':
                errno = 0;
                ttl = strtol (optarg, &end, 10);
                if (errno || end == optarg || *end || ttl <= 0
                    || ttl > TOKEN_TTL_MAX)
                    return s_fail_usage ("--ttl must be 1..86400 seconds");
                break;
            default:
                return s_fail_usage ("unknown option for sign");
        }
    }
    if (!key_file || !claims.iss || !claims.sub || !claims.aud
        || optind != argc)
        return s_fail_usage ("sign needs --key-file, --iss, --sub and --aud");
    char error[TOKEN_ERROR_SIZE];
    cw_token_signer_t *signer =
        cw_token_signer_load (key_file, error, sizeof (error));
    if (!signer) {
        cw_log (CW_LOG_ERROR, "key_unreadable", error, NULL);
        return 1;
    }
    int64_t now = (int64_t) time (NULL);
    claims.iat = now;
    claims.nbf = now;
    claims.exp = now + ttl;
    char *token = cw_token_sign (signer, &claims, error, sizeof (error));
    cw_token_signer_destroy (&signer);
    if (!token) {
        cw_log (CW_LOG_ERROR, "sign_failed", error, NULL);
        return 1;
    }
    printf ("%s\n", token);
    free (token);
    return 0;
}

static int
s_verify (int argc, char **argv)
{
    cw_token_verifier_t *verifier = cw_token_verifier_new ();
    static const struct option options[] = {
        {"public-key", required_argument, NULL, 'p'},
        {"aud", required_argument, NULL, 'a'},
        {"iss", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0}};
    char error[TOKEN_ERROR_SIZE];
    int option;
    int rc = 1;
    char *line = NULL;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        if (option == 'p') {
            if (cw_token_verifier_load_key (verifier, optarg, error,
                                            sizeof (error))) {
                cw_log (CW_LOG_ERROR, "key_unreadable", error, NULL);
                goto done;
            }
        }
        else if (option == 'a')
            cw_token_verifier_set_audience (verifier, optarg);
        else if (option == 'i')
            cw_token_verifier_set_issuer (verifier, optarg);
        else {
            rc = s_fail_usage ("unknown option for verify");
            goto done;
        }
    }
    if (cw_token_verifier_keys (verifier) == 0 || argc - optind > 1) {
        rc = s_fail_usage ("verify needs --public-key and at most one token");
        goto done;
    }
    const char *token = NULL;
    if (optind < argc && strcmp (argv[optind], "-") != 0)
        token = argv[optind];
    else {
        size_t capacity = 0;
        ssize_t length = getline (&line, &capacity, stdin);
        if (length <= 0) {
            cw_log (CW_LOG_ERROR, "token_missing",
                    "no token on standard "
                    "input",
                    NULL);
            goto done;
        }
        line[strcspn (line, "\r\n")] = 0;
        token = line;
    }
    cw_token_claims_t claims;
    if (cw_token_verify (verifier, token, (int64_t) time (NULL), &claims, error,
                         sizeof (error))) {
        cw_log (CW_LOG_ERROR, "token_rejected", error, NULL);
        goto done;
    }
    json_t *object = json_pack (
        "{s:s?, s:s?, s:s?, s:s?, s:I}", "iss", claims.iss, "sub", claims.sub,
        "aud", claims.aud, "jti", claims.jti, "exp", (json_int_t) claims.exp);
    json_dumpf (object, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar ('\n');
    json_decref (object);
    cw_token_claims_reset (&claims);
    rc = 0;
done:
    free (line);
    cw_token_verifier_destroy (&verifier);
    return rc;
}

int
main (int argc, char **argv)
{
    cw_log_init ("causeway-token", CW_LOG_INFO);
    if (argc < 2)
        return s_fail_usage ("missing command");
    const char *command = argv[1];
    if (strcmp (command, "--help") == 0 || strcmp (command, "help") == 0) {
        fputs (s_usage, stdout);
        return 0;
    }
    //  getopt_long sees the command's own arguments only.
    argc--;
    argv++;
    optind = 1;
    if (strcmp (command, "keygen") == 0)
        return s_keygen (argc, argv);
    if (strcmp (command, "sign") == 0)
        return s_sign (argc, argv);
    if (strcmp (command, "verify") == 0)
        return s_verify (argc, argv);
    return s_fail_usage ("unknown command");
}
