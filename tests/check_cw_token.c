/*  =========================================================================
    check_cw_token - Ed25519 JWT: sign, verify, reject, rotate, key files
    =========================================================================
*/
#include "cw_test.h"
#include "cw_token.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NOW 1767225600  //  2026-01-01T00:00:00Z

static unsigned char s_public[2][CW_TOKEN_PUBLIC_SIZE];
static unsigned char s_secret[2][CW_TOKEN_SECRET_SIZE];

static void
s_setup (void)
{
    ck_assert_int_ge (sodium_init (), 0);
    crypto_sign_keypair (s_public[0], s_secret[0]);
    crypto_sign_keypair (s_public[1], s_secret[1]);
}

//  Signs a token with key index, valid NOW .. NOW+300, for "webshop".
static char *
s_token (int index)
{
    cw_token_signer_t *signer = cw_token_signer_new (s_secret[index]);
    cw_token_claims_t claims = {.iss = "erp-mw",
                                .sub = "worker-1",
                                .aud = "webshop",
                                .iat = NOW,
                                .nbf = NOW,
                                .exp = NOW + 300};
    char error[256];
    char *token = cw_token_sign (signer, &claims, error, sizeof (error));
    ck_assert_msg (token != NULL, "%s", error);
    cw_token_signer_destroy (&signer);
    return token;
}

static cw_token_verifier_t *
s_verifier (int index)
{
    cw_token_verifier_t *verifier = cw_token_verifier_new ();
    ck_assert_int_eq (cw_token_verifier_add_key (verifier, s_public[index]), 0);
    cw_token_verifier_set_audience (verifier, "webshop");
    return verifier;
}

//  Verifies and expects failure whose message contains expected.
static void
s_expect_reject (cw_token_verifier_t *verifier,
                 const char *token,
                 int64_t now,
                 const char *expected)
{
    char error[256] = "";
    cw_token_claims_t claims;
    ck_assert_int_eq (
        cw_token_verify (verifier, token, now, &claims, error, sizeof (error)),
        -1);
    ck_assert_msg (strstr (error, expected) != NULL,
                   "error \"%s\" does not say \"%s\"", error, expected);
    ck_assert_ptr_null (claims.iss);
}

static char *
s_b64 (const char *text)
{
    size_t size = sodium_base64_ENCODED_LEN (
        strlen (text), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = (char *) malloc (size);
    sodium_bin2base64 (out, size, (const unsigned char *) text, strlen (text),
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

START_TEST (test_good_token)
{
    char *token = s_token (0);
    ck_assert_ptr_null (strchr (token, '='));
    cw_token_verifier_t *verifier = s_verifier (0);
    cw_token_verifier_set_issuer (verifier, "erp-mw");
    ck_assert_uint_eq (cw_token_verifier_keys (verifier), 1);
    cw_token_claims_t claims;
    char error[256];
    ck_assert_int_eq (cw_token_verify (verifier, token, NOW + 10, &claims,
                                       error, sizeof (error)),
                      0);
    ck_assert_str_eq (claims.iss, "erp-mw");
    ck_assert_str_eq (claims.sub, "worker-1");
    ck_assert_str_eq (claims.aud, "webshop");
    ck_assert_ptr_nonnull (claims.jti);
    ck_assert_int_eq (claims.exp, NOW + 300);
    ck_assert_int_eq (claims.nbf, NOW);
    cw_token_claims_reset (&claims);
    ck_assert_ptr_null (claims.iss);

    //  The header names the algorithm and the kid of the key.
    char *dot = strchr (token, '.');
    *dot = 0;
    char header[256];
    size_t length;
    ck_assert_int_eq (
        sodium_base642bin ((unsigned char *) header, sizeof (header) - 1, token,
                           strlen (token), NULL, &length, NULL,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING),
        0);
    header[length] = 0;
    char kid[CW_TOKEN_KID_SIZE];
    cw_token_kid (s_public[0], kid);
    char expected[128];
    snprintf (expected, sizeof (expected),
              "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    ck_assert_str_eq (header, expected);
    cw_token_verifier_destroy (&verifier);
    cw_token_verifier_destroy (&verifier);
    free (token);
}
END_TEST

START_TEST (test_times)
{
    char *token = s_token (0);
    cw_token_verifier_t *verifier = s_verifier (0);
    char error[256];
    //  Within the leeway either side: accepted.
    ck_assert_int_eq (cw_token_verify (verifier, token, NOW - 20, NULL, error,
                                       sizeof (error)),
                      0);
    ck_assert_int_eq (cw_token_verify (verifier, token, NOW + 320, NULL, error,
                                       sizeof (error)),
                      0);
    s_expect_reject (verifier, token, NOW + 330,
                     "token expired at 2026-01-01T00:05:00Z");
    s_expect_reject (verifier, token, NOW - 31, "token not valid before");
    cw_token_verifier_set_leeway (verifier, 0);
    s_expect_reject (verifier, token, NOW + 300, "token expired");
    cw_token_verifier_destroy (&verifier);
    free (token);
}
END_TEST

START_TEST (test_audience_and_issuer)
{
    char *token = s_token (0);
    cw_token_verifier_t *verifier = s_verifier (0);
    cw_token_verifier_set_audience (verifier, "erp");
    s_expect_reject (verifier, token, NOW, "audience mismatch");
    cw_token_verifier_set_audience (verifier, NULL);
    cw_token_verifier_set_issuer (verifier, "someone-else");
    s_expect_reject (verifier, token, NOW, "issuer mismatch");
    cw_token_verifier_destroy (&verifier);
    free (token);
}
END_TEST

START_TEST (test_wrong_key)
{
    char *token = s_token (0);
    cw_token_verifier_t *verifier = s_verifier (1);
    s_expect_reject (verifier, token, NOW, "unknown key id");

    //  A token signed by key 0 but claiming key 1's kid: bad signature.
    cw_token_signer_t *signer = cw_token_signer_new (s_secret[0]);
    char kid[CW_TOKEN_KID_SIZE];
    cw_token_kid (s_public[1], kid);
    char header_json[128];
    snprintf (header_json, sizeof (header_json),
              "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    char *header = s_b64 (header_json);
    char *rest = strchr (token, '.');
    size_t size = strlen (header) + strlen (rest) + 1;
    char *forged = (char *) malloc (size);
    snprintf (forged, size, "%s%s", header, rest);
    s_expect_reject (verifier, forged, NOW, "bad signature");
    free (forged);
    free (header);
    cw_token_signer_destroy (&signer);
    cw_token_verifier_destroy (&verifier);
    free (token);
}
END_TEST

START_TEST (test_tampered)
{
    char *token = s_token (0);
    cw_token_verifier_t *verifier = s_verifier (0);
    //  Payload: swap the claims for others signed by nobody.
    char *body = s_b64 ("{\"iss\":\"erp-mw\",\"sub\":\"admin\","
                        "\"aud\":\"webshop\",\"exp\":1767225900}");
    char *first = strchr (token, '.');
    char *second = strchr (first + 1, '.');
    size_t size = strlen (token) + strlen (body) + 1;
    char *tampered = (char *) malloc (size);
    snprintf (tampered, size, "%.*s.%s%s", (int) (first - token), token, body,
              second);
    s_expect_reject (verifier, tampered, NOW, "bad signature");
    //  Signature: flip one character.
    snprintf (tampered, size, "%s", token);
    char *last = tampered + strlen (tampered) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    s_expect_reject (verifier, tampered, NOW, "bad signature");
    //  Signature cut short.
    snprintf (tampered, size, "%s", token);
    tampered[strlen (tampered) - 4] = 0;
    s_expect_reject (verifier, tampered, NOW, "signature is not 64 bytes");
    free (tampered);
    free (body);
    cw_token_verifier_destroy (&verifier);
    free (token);
}
END_TEST

START_TEST (test_alg_none)
{
    cw_token_verifier_t *verifier = s_verifier (0);
    char *header = s_b64 ("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char *body = s_b64 ("{\"iss\":\"erp-mw\",\"sub\":\"x\","
                        "\"aud\":\"webshop\",\"exp\":1767225900}");
    char token[512];
    snprintf (token, sizeof (token), "%s.%s.", header, body);
    s_expect_reject (verifier, token, NOW, "algorithm \"none\" is not");
    free (header);
    header = s_b64 ("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    snprintf (token, sizeof (token), "%s.%s.c2ln", header, body);
    s_expect_reject (verifier, token, NOW, "algorithm \"HS256\" is not");
    free (header);
    header = s_b64 ("{\"typ\":\"JWT\"}");
    snprintf (token, sizeof (token), "%s.%s.c2ln", header, body);
    s_expect_reject (verifier, token, NOW, "algorithm \"(missing)\"");
    free (header);
    free (body);
    cw_token_verifier_destroy (&verifier);
}
END_TEST

START_TEST (test_malformed)
{
    cw_token_verifier_t *verifier = s_verifier (0);
    char *good = s_token (0);
    s_expect_reject (verifier, NULL, NOW, "missing token");
    s_expect_reject (verifier, "", NOW, "missing token");
    s_expect_reject (verifier, "abc", NOW, "not three");
    s_expect_reject (verifier, "a.b", NOW, "not three");
    s_expect_reject (verifier, "a.b.c.d", NOW, "not three");
    s_expect_reject (verifier, "..", NOW, "header is not base64url JSON");
    s_expect_reject (verifier, "!!!.e30.e30", NOW, "header is not");
    s_expect_reject (verifier, "bm90IGpzb24.e30.e30", NOW, "header is not");
    //  Padding is not base64url-without-padding.
    char *padded = (char *) malloc (strlen (good) + 2);
    char *dot = strchr (good, '.');
    snprintf (padded, strlen (good) + 2, "%.*s=%s", (int) (dot - good), good,
              dot);
    s_expect_reject (verifier, padded, NOW, "header is not");
    free (padded);
    //  Claims that are not an object, and a bad claim type.
    char *header = s_b64 ("{\"alg\":\"EdDSA\"}");
    char *array = s_b64 ("[1]");
    char token[512];
    snprintf (token, sizeof (token), "%s.%s.e30", header, array);
    s_expect_reject (verifier, token, NOW, "claims are not");
    free (array);
    char *big = (char *) malloc (CW_TOKEN_SIZE_MAX + 2);
    memset (big, 'a', CW_TOKEN_SIZE_MAX + 1);
    big[CW_TOKEN_SIZE_MAX + 1] = 0;
    s_expect_reject (verifier, big, NOW, "longer than");
    free (big);
    free (header);
    free (good);
    cw_token_verifier_destroy (&verifier);
}
END_TEST

START_TEST (test_claim_types)
{
    //  Validly signed tokens with wrong claim shapes: signed by hand.
    cw_token_verifier_t *verifier = s_verifier (0);
    char kid[CW_TOKEN_KID_SIZE];
    cw_token_kid (s_public[0], kid);
    char header_json[128];
    snprintf (header_json, sizeof (header_json),
              "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
    const char *bodies[] = {
        "{\"aud\":\"webshop\"}",
        "claim \"exp\" is missing",
        "{\"aud\":\"webshop\",\"exp\":\"soon\"}",
        "\"exp\" is not an integer",
        "{\"aud\":\"webshop\",\"exp\":1767225900,\"sub\":7}",
        "\"sub\" is not a string",
        "{\"aud\":[\"erp\",\"webshop\"],\"exp\":1767225900}",
        NULL,
        NULL};
    for (int index = 0; bodies[index]; index += 2) {
        char *header = s_b64 (header_json);
        char *body = s_b64 (bodies[index]);
        char input[512];
        snprintf (input, sizeof (input), "%s.%s", header, body);
        unsigned char signature[crypto_sign_BYTES];
        crypto_sign_detached (signature, NULL, (unsigned char *) input,
                              strlen (input), s_secret[0]);
        char encoded[128];
        sodium_bin2base64 (encoded, sizeof (encoded), signature,
                           sizeof (signature),
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        char token[768];
        snprintf (token, sizeof (token), "%s.%s", input, encoded);
        if (bodies[index + 1])
            s_expect_reject (verifier, token, NOW, bodies[index + 1]);
        else {
            //  An audience array containing ours is accepted.
            char error[256];
            cw_token_claims_t claims;
            ck_assert_int_eq (cw_token_verify (verifier, token, NOW, &claims,
                                               error, sizeof (error)),
                              0);
            ck_assert_str_eq (claims.aud, "erp");
            cw_token_claims_reset (&claims);
        }
        free (header);
        free (body);
    }
    cw_token_verifier_destroy (&verifier);
}
END_TEST

START_TEST (test_rotation)
{
    char *old_token = s_token (0);
    char *new_token = s_token (1);
    cw_token_verifier_t *verifier = s_verifier (0);
    s_expect_reject (verifier, new_token, NOW, "unknown key id");
    ck_assert_int_eq (cw_token_verifier_add_key (verifier, s_public[1]), 0);
    //  The same key twice is refused.
    ck_assert_int_eq (cw_token_verifier_add_key (verifier, s_public[1]), -1);
    char error[256];
    ck_assert_int_eq (
        cw_token_verify (verifier, old_token, NOW, NULL, error, sizeof (error)),
        0);
    ck_assert_int_eq (
        cw_token_verify (verifier, new_token, NOW, NULL, error, sizeof (error)),
        0);
    //  Old key retired: only the new one is accepted.
    cw_token_verifier_t *retired = s_verifier (1);
    s_expect_reject (retired, old_token, NOW, "unknown key id");
    ck_assert_int_eq (
        cw_token_verify (retired, new_token, NOW, NULL, error, sizeof (error)),
        0);
    cw_token_verifier_destroy (&retired);
    cw_token_verifier_destroy (&verifier);
    free (old_token);
    free (new_token);
}
END_TEST

START_TEST (test_sign_refuses)
{
    cw_token_signer_t *signer = cw_token_signer_new (s_secret[0]);
    char kid[CW_TOKEN_KID_SIZE];
    cw_token_kid (s_public[0], kid);
    ck_assert_str_eq (cw_token_signer_kid (signer), kid);
    char error[256];
    cw_token_claims_t claims = {.iss = "a", .sub = "b", .exp = NOW};
    ck_assert_ptr_null (cw_token_sign (signer, &claims, error, sizeof (error)));
    ck_assert_str_eq (error, "cannot sign token: claim \"aud\" is missing");
    claims.aud = "c";
    claims.iat = NOW;
    ck_assert_ptr_null (cw_token_sign (signer, &claims, error, sizeof (error)));
    ck_assert_ptr_nonnull (strstr (error, "exp must be after"));
    cw_token_signer_destroy (&signer);
    cw_token_signer_destroy (&signer);
}
END_TEST

START_TEST (test_key_files)
{
    char *dir = cw_test_tmpdir ("cw_token");
    char prefix[512], path[600];
    snprintf (prefix, sizeof (prefix), "%s/svc", dir);
    char error[256];
    ck_assert_int_eq (cw_token_keygen (prefix, error, sizeof (error)), 0);
    //  Never overwrites a key.
    ck_assert_int_eq (cw_token_keygen (prefix, error, sizeof (error)), -1);
    ck_assert_ptr_nonnull (strstr (error, "could not create key file"));

    struct stat info;
    snprintf (path, sizeof (path), "%s.secret", prefix);
    ck_assert_int_eq (stat (path, &info), 0);
    ck_assert_int_eq (info.st_mode & 0777, 0600);
    cw_token_signer_t *signer =
        cw_token_signer_load (path, error, sizeof (error));
    ck_assert_msg (signer != NULL, "%s", error);

    snprintf (path, sizeof (path), "%s.public", prefix);
    ck_assert_int_eq (stat (path, &info), 0);
    ck_assert_int_eq (info.st_mode & 0777, 0644);
    cw_token_verifier_t *verifier = cw_token_verifier_new ();
    ck_assert_int_eq (
        cw_token_verifier_load_key (verifier, path, error, sizeof (error)), 0);
    ck_assert_int_eq (
        cw_token_verifier_load_key (verifier, path, error, sizeof (error)), -1);
    ck_assert_ptr_nonnull (strstr (error, "already loaded"));

    cw_token_claims_t claims = {.iss = "i",
                                .sub = "s",
                                .aud = "webshop",
                                .iat = NOW,
                                .nbf = NOW,
                                .exp = NOW + 60,
                                .jti = "j-1"};
    char *token = cw_token_sign (signer, &claims, error, sizeof (error));
    cw_token_claims_t read;
    ck_assert_int_eq (
        cw_token_verify (verifier, token, NOW, &read, error, sizeof (error)),
        0);
    ck_assert_str_eq (read.jti, "j-1");
    cw_token_claims_reset (&read);
    free (token);

    //  A secret key readable by others is refused; so is a garbled file.
    snprintf (path, sizeof (path), "%s.secret", prefix);
    ck_assert_int_eq (chmod (path, 0644), 0);
    ck_assert_ptr_null (cw_token_signer_load (path, error, sizeof (error)));
    ck_assert_ptr_nonnull (strstr (error, "chmod 0600"));
    char *garbled = cw_test_write_file (
        dir, "garbled.public", "cw-ed25519-public abc not-base64!\n", 0644);
    ck_assert_ptr_nonnull (garbled);
    ck_assert_int_eq (
        cw_token_verifier_load_key (verifier, garbled, error, sizeof (error)),
        -1);
    free (garbled);
    ck_assert_ptr_nonnull (strstr (error, "key is not 32 bytes"));
    snprintf (path, sizeof (path), "%s/missing.public", dir);
    ck_assert_int_eq (
        cw_token_verifier_load_key (verifier, path, error, sizeof (error)), -1);
    ck_assert_ptr_nonnull (strstr (error, "could not open key file"));

    cw_token_signer_destroy (&signer);
    cw_token_verifier_destroy (&verifier);
    cw_test_tmpdir_destroy (&dir);
}
END_TEST

//  Runs a shell command, returns its first output line (caller frees) and
//  its exit status.
static char *
s_run (const char *command, int *status)
{
    FILE *pipe = popen (command, "r");
    ck_assert_ptr_nonnull (pipe);
    char *line = NULL;
    size_t capacity = 0;
    if (getline (&line, &capacity, pipe) < 0) {
        free (line);
        line = NULL;
    }
    else
        line[strcspn (line, "\n")] = 0;
    char rest[256];
    while (fgets (rest, sizeof (rest), pipe))
        ;
    int rc = pclose (pipe);
    *status = WIFEXITED (rc) ? WEXITSTATUS (rc) : -1;
    return line;
}

START_TEST (test_cli)
{
    char *dir = cw_test_tmpdir ("cw_token_cli");
    char *program = cw_test_build_path ("token/causeway-token");
    char command[2048];
    int status;
    snprintf (command, sizeof (command), "'%s' keygen --out '%s/k'", program,
              dir);
    char *line = s_run (command, &status);
    ck_assert_int_eq (status, 0);
    free (line);
    snprintf (command, sizeof (command),
              "'%s' sign --key-file '%s/k.secret' --iss erp-mw --sub w "
              "--aud webshop --ttl 60",
              program, dir);
    char *token = s_run (command, &status);
    ck_assert_int_eq (status, 0);
    ck_assert_ptr_nonnull (token);
    snprintf (command, sizeof (command),
              "'%s' verify --public-key '%s/k.public' --aud webshop '%s'",
              program, dir, token);
    line = s_run (command, &status);
    ck_assert_int_eq (status, 0);
    ck_assert_ptr_nonnull (strstr (line, "\"sub\":\"w\""));
    free (line);
    snprintf (command, sizeof (command),
              "'%s' verify --public-key '%s/k.public' --aud erp '%s' "
              "2>/dev/null",
              program, dir, token);
    line = s_run (command, &status);
    ck_assert_int_eq (status, 1);
    free (line);
    snprintf (command, sizeof (command),
              "'%s' sign --key-file '%s/k.secret' --ttl 0 2>/dev/null", program,
              dir);
    line = s_run (command, &status);
    ck_assert_int_eq (status, 2);
    free (line);
    free (token);
    free (program);
    cw_test_tmpdir_destroy (&dir);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_token");
    TCase *verify = tcase_create ("verify");
    tcase_set_timeout (verify, 10);
    tcase_add_checked_fixture (verify, s_setup, NULL);
    tcase_add_test (verify, test_good_token);
    tcase_add_test (verify, test_times);
    tcase_add_test (verify, test_audience_and_issuer);
    tcase_add_test (verify, test_wrong_key);
    tcase_add_test (verify, test_tampered);
    tcase_add_test (verify, test_alg_none);
    tcase_add_test (verify, test_malformed);
    tcase_add_test (verify, test_claim_types);
    tcase_add_test (verify, test_rotation);
    tcase_add_test (verify, test_sign_refuses);
    suite_add_tcase (suite, verify);
    TCase *files = tcase_create ("files");
    tcase_set_timeout (files, 20);
    tcase_add_checked_fixture (files, s_setup, NULL);
    tcase_add_test (files, test_key_files);
    tcase_add_test (files, test_cli);
    suite_add_tcase (suite, files);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
