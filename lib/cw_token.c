/*  =========================================================================
    cw_token - service-to-service signed tokens (Ed25519 JWT, RFC 8037)
    =========================================================================
*/
#include "cw_token.h"
#include "cw_secret.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CW_TOKEN_B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define CW_TOKEN_KID_BYTES 9   //  SHA-256 bytes that make a kid
#define CW_TOKEN_JTI_BYTES 16  //  Random bytes in a made-up jti
#define CW_TOKEN_SECRET_TAG "cw-ed25519-secret"
#define CW_TOKEN_PUBLIC_TAG "cw-ed25519-public"
#define CW_TOKEN_LINE_MAX 256   //  Longest key file line, bytes
#define CW_TOKEN_PATH_MAX 4096  //  Longest key file path, bytes

struct _cw_token_signer_t {
    unsigned char secret_key[CW_TOKEN_SECRET_SIZE];  //  Ed25519 secret key
    char kid[CW_TOKEN_KID_SIZE];                     //  Derived key id
};

typedef struct {
    unsigned char public_key[CW_TOKEN_PUBLIC_SIZE];  //  Ed25519 public key
    char kid[CW_TOKEN_KID_SIZE];                     //  Derived key id
} s_key_t;

struct _cw_token_verifier_t {
    s_key_t keys[CW_TOKEN_KEYS_MAX];  //  Keys accepted, first count used
    size_t count;                     //  Keys held
    char *audience;                   //  Required audience, or NULL
    char *issuer;                     //  Required issuer, or NULL
    int leeway;                       //  Clock skew allowed, seconds
};

static void
s_init (void)
{
    if (sodium_init () < 0)
        abort ();
}

//  Encodes bytes as base64url without padding; caller frees.
static char *
s_encode (const unsigned char *bytes, size_t length)
{
    size_t size = sodium_base64_ENCODED_LEN (length, CW_TOKEN_B64);
    char *text = (char *) malloc (size);
    if (!text)
        abort ();
    sodium_bin2base64 (text, size, bytes, length, CW_TOKEN_B64);
    return text;
}

//  Decodes base64url text[length] (no padding, nothing else) into a fresh
//  buffer with a NUL after it. Returns NULL when it is not base64url.
static unsigned char *
s_decode (const char *text, size_t length, size_t *decoded)
{
    unsigned char *bytes = (unsigned char *) malloc (length + 1);
    if (!bytes)
        abort ();
    const char *end = NULL;
    if (sodium_base642bin (bytes, length, text, length, NULL, decoded, &end,
                           CW_TOKEN_B64)
            != 0
        || end != text + length) {
        free (bytes);
        return NULL;
    }
    bytes[*decoded] = 0;
    return bytes;
}

static char *
s_strdup (const char *text)
{
    char *copy = strdup (text);
    if (!copy)
        abort ();
    return copy;
}

//  Formats t (seconds since the epoch) as an ISO 8601 UTC time.
static void
s_time_text (int64_t t, char *text, size_t size)
{
    time_t seconds = (time_t) t;
    struct tm parts;
    if (gmtime_r (&seconds, &parts))
        strftime (text, size, "%Y-%m-%dT%H:%M:%SZ", &parts);
    else
        snprintf (text, size, "%" PRId64, t);
}

void
cw_token_claims_reset (cw_token_claims_t *claims)
{
    if (!claims)
        return;
    free (claims->iss);
    free (claims->sub);
    free (claims->aud);
    free (claims->jti);
    memset (claims, 0, sizeof (*claims));
}

void
cw_token_kid (const unsigned char *public_key, char *kid)
{
    assert (public_key);
    assert (kid);
    s_init ();
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, public_key, CW_TOKEN_PUBLIC_SIZE);
    sodium_bin2base64 (kid, CW_TOKEN_KID_SIZE, hash, CW_TOKEN_KID_BYTES,
                       CW_TOKEN_B64);
}

//  Writes content to path, created fresh (O_EXCL) with mode.
static int
s_write_new (const char *path,
             const char *content,
             mode_t mode,
             char *error,
             size_t size)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY, mode);
    if (fd < 0) {
        snprintf (error, size, "could not create key file \"%s\": %s", path,
                  strerror (errno));
        return -1;
    }
    //  The umask may have taken bits away; set exactly what we want.
    size_t length = strlen (content);
    if (fchmod (fd, mode) != 0
        || write (fd, content, length) != (ssize_t) length || close (fd)) {
        snprintf (error, size, "could not write key file \"%s\": %s", path,
                  strerror (errno));
        unlink (path);
        return -1;
    }
    return 0;
}

int
cw_token_keygen (const char *prefix, char *error, size_t size)
{
    assert (prefix);
    s_init ();
    char secret_path[CW_TOKEN_PATH_MAX];
    char public_path[CW_TOKEN_PATH_MAX];
    if (!*prefix
        || snprintf (secret_path, sizeof (secret_path), "%s.secret", prefix)
               >= (int) sizeof (secret_path)
        || snprintf (public_path, sizeof (public_path), "%s.public", prefix)
               >= (int) sizeof (public_path)) {
        snprintf (error, size, "invalid key file prefix \"%s\"", prefix);
        return -1;
    }
    unsigned char public_key[CW_TOKEN_PUBLIC_SIZE];
    unsigned char secret_key[CW_TOKEN_SECRET_SIZE];
    crypto_sign_keypair (public_key, secret_key);
    char kid[CW_TOKEN_KID_SIZE];
    cw_token_kid (public_key, kid);

    char *secret_text = s_encode (secret_key, sizeof (secret_key));
    char *public_text = s_encode (public_key, sizeof (public_key));
    char line[CW_TOKEN_LINE_MAX];
    snprintf (line, sizeof (line), "%s %s %s\n", CW_TOKEN_SECRET_TAG, kid,
              secret_text);
    int rc = s_write_new (secret_path, line, 0600, error, size);
    sodium_memzero (line, sizeof (line));
    sodium_memzero (secret_text, strlen (secret_text));
    sodium_memzero (secret_key, sizeof (secret_key));
    if (rc == 0) {
        snprintf (line, sizeof (line), "%s %s %s\n", CW_TOKEN_PUBLIC_TAG, kid,
                  public_text);
        rc = s_write_new (public_path, line, 0644, error, size);
        if (rc)
            unlink (secret_path);
    }
    free (secret_text);
    free (public_text);
    return rc;
}

//  Parses "TAG KID BASE64" into key[length]; checks the kid when the key
//  is a public key (derived from it). Returns 0 or -1 with a message.
static int
s_parse_key_line (const char *path,
                  const char *text,
                  const char *tag,
                  unsigned char *key,
                  size_t length,
                  char *kid,
                  char *error,
                  size_t size)
{
    size_t tag_length = strlen (tag);
    if (strncmp (text, tag, tag_length) != 0 || text[tag_length] != ' ') {
        snprintf (error, size,
                  "cannot read key file \"%s\": does not start "
                  "with \"%s\"",
                  path, tag);
        return -1;
    }
    const char *kid_start = text + tag_length + 1;
    const char *space = strchr (kid_start, ' ');
    if (!space || space == kid_start
        || (size_t) (space - kid_start) >= CW_TOKEN_KID_SIZE) {
        snprintf (error, size,
                  "cannot read key file \"%s\": missing or "
                  "invalid key id",
                  path);
        return -1;
    }
    memcpy (kid, kid_start, (size_t) (space - kid_start));
    kid[space - kid_start] = 0;
    const char *encoded = space + 1;
    size_t encoded_length = strcspn (encoded, "\r\n");
    size_t decoded = 0;
    const char *end = NULL;
    if (sodium_base642bin (key, length, encoded, encoded_length, NULL, &decoded,
                           &end, CW_TOKEN_B64)
            != 0
        || end != encoded + encoded_length || decoded != length) {
        snprintf (error, size,
                  "cannot read key file \"%s\": key is not %zu "
                  "bytes of base64url",
                  path, length);
        return -1;
    }
    return 0;
}

cw_token_signer_t *
cw_token_signer_new (const unsigned char *secret_key)
{
    assert (secret_key);
    s_init ();
    cw_token_signer_t *self =
        (cw_token_signer_t *) calloc (1, sizeof (cw_token_signer_t));
    if (!self)
        abort ();
    memcpy (self->secret_key, secret_key, CW_TOKEN_SECRET_SIZE);
    //  An Ed25519 secret key carries its public key in its last 32 bytes.
    unsigned char public_key[CW_TOKEN_PUBLIC_SIZE];
    crypto_sign_ed25519_sk_to_pk (public_key, self->secret_key);
    cw_token_kid (public_key, self->kid);
    return self;
}

cw_token_signer_t *
cw_token_signer_load (const char *path, char *error, size_t size)
{
    assert (path);
    char *text = cw_secret_load (path, error, size);
    if (!text)
        return NULL;
    unsigned char secret_key[CW_TOKEN_SECRET_SIZE];
    char kid[CW_TOKEN_KID_SIZE];
    int rc = s_parse_key_line (path, text, CW_TOKEN_SECRET_TAG, secret_key,
                               sizeof (secret_key), kid, error, size);
    cw_secret_destroy (&text);
    if (rc)
        return NULL;
    cw_token_signer_t *self = cw_token_signer_new (secret_key);
    sodium_memzero (secret_key, sizeof (secret_key));
    if (strcmp (self->kid, kid) != 0) {
        snprintf (error, size,
                  "cannot use key file \"%s\": key id \"%s\" "
                  "does not match its key (\"%s\")",
                  path, kid, self->kid);
        cw_token_signer_destroy (&self);
    }
    return self;
}

void
cw_token_signer_destroy (cw_token_signer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sodium_memzero (*self_p, sizeof (cw_token_signer_t));
    free (*self_p);
    *self_p = NULL;
}

const char *
cw_token_signer_kid (cw_token_signer_t *self)
{
    assert (self);
    return self->kid;
}

//  Encodes a JSON object as compact text, then base64url. Caller frees.
static char *
s_encode_json (json_t *object)
{
    char *text = json_dumps (object, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        abort ();
    char *encoded = s_encode ((const unsigned char *) text, strlen (text));
    free (text);
    return encoded;
}

char *
cw_token_sign (cw_token_signer_t *self,
               const cw_token_claims_t *claims,
               char *error,
               size_t size)
{
    assert (self);
    assert (claims);
    const char *missing = !claims->iss   ? "iss"
                          : !claims->sub ? "sub"
                          : !claims->aud ? "aud"
                                         : NULL;
    if (missing) {
        snprintf (error, size, "cannot sign token: claim \"%s\" is missing",
                  missing);
        return NULL;
    }
    if (claims->exp <= claims->nbf || claims->exp <= claims->iat) {
        snprintf (error, size,
                  "cannot sign token: exp must be after iat "
                  "and nbf");
        return NULL;
    }
    char jti[sodium_base64_ENCODED_LEN (CW_TOKEN_JTI_BYTES, CW_TOKEN_B64)];
    if (!claims->jti) {
        unsigned char random[CW_TOKEN_JTI_BYTES];
        randombytes_buf (random, sizeof (random));
        sodium_bin2base64 (jti, sizeof (jti), random, sizeof (random),
                           CW_TOKEN_B64);
    }
    json_t *header = json_pack ("{s:s, s:s, s:s}", "alg", "EdDSA", "typ", "JWT",
                                "kid", self->kid);
    json_t *body = json_pack (
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", claims->iss, "sub",
        claims->sub, "aud", claims->aud, "iat", (json_int_t) claims->iat, "nbf",
        (json_int_t) claims->nbf, "exp", (json_int_t) claims->exp, "jti",
        claims->jti ? claims->jti : jti);
    if (!header || !body) {
        //  json_pack fails only on strings that are not UTF-8.
        json_decref (header);
        json_decref (body);
        snprintf (error, size, "cannot sign token: a claim is not UTF-8");
        return NULL;
    }
    char *header_text = s_encode_json (header);
    char *body_text = s_encode_json (body);
    json_decref (header);
    json_decref (body);

    size_t input_length = strlen (header_text) + 1 + strlen (body_text);
    size_t signature_size =
        sodium_base64_ENCODED_LEN (crypto_sign_BYTES, CW_TOKEN_B64);
    char *token = (char *) malloc (input_length + 1 + signature_size);
    if (!token)
        abort ();
    snprintf (token, input_length + 1, "%s.%s", header_text, body_text);
    free (header_text);
    free (body_text);

    unsigned char signature[crypto_sign_BYTES];
    crypto_sign_detached (signature, NULL, (const unsigned char *) token,
                          input_length, self->secret_key);
    token[input_length] = '.';
    sodium_bin2base64 (token + input_length + 1, signature_size, signature,
                       sizeof (signature), CW_TOKEN_B64);
    return token;
}

cw_token_verifier_t *
cw_token_verifier_new (void)
{
    s_init ();
    cw_token_verifier_t *self =
        (cw_token_verifier_t *) calloc (1, sizeof (cw_token_verifier_t));
    if (!self)
        abort ();
    self->leeway = CW_TOKEN_LEEWAY_DEFAULT;
    return self;
}

void
cw_token_verifier_destroy (cw_token_verifier_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cw_token_verifier_t *self = *self_p;
    free (self->audience);
    free (self->issuer);
    free (self);
    *self_p = NULL;
}

int
cw_token_verifier_add_key (cw_token_verifier_t *self,
                           const unsigned char *public_key)
{
    assert (self);
    assert (public_key);
    if (self->count == CW_TOKEN_KEYS_MAX)
        return -1;
    char kid[CW_TOKEN_KID_SIZE];
    cw_token_kid (public_key, kid);
    for (size_t index = 0; index < self->count; index++)
        if (strcmp (self->keys[index].kid, kid) == 0)
            return -1;
    s_key_t *key = &self->keys[self->count++];
    memcpy (key->public_key, public_key, CW_TOKEN_PUBLIC_SIZE);
    memcpy (key->kid, kid, sizeof (kid));
    return 0;
}

int
cw_token_verifier_load_key (cw_token_verifier_t *self,
                            const char *path,
                            char *error,
                            size_t size)
{
    assert (self);
    assert (path);
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (error, size, "could not open key file \"%s\": %s", path,
                  strerror (errno));
        return -1;
    }
    char line[CW_TOKEN_LINE_MAX];
    bool read = fgets (line, sizeof (line), file) != NULL;
    fclose (file);
    if (!read) {
        snprintf (error, size, "cannot read key file \"%s\": empty", path);
        return -1;
    }
    unsigned char public_key[CW_TOKEN_PUBLIC_SIZE];
    char kid[CW_TOKEN_KID_SIZE];
    if (s_parse_key_line (path, line, CW_TOKEN_PUBLIC_TAG, public_key,
                          sizeof (public_key), kid, error, size))
        return -1;
    char derived[CW_TOKEN_KID_SIZE];
    cw_token_kid (public_key, derived);
    if (strcmp (kid, derived) != 0) {
        snprintf (error, size,
                  "cannot use key file \"%s\": key id \"%s\" "
                  "does not match its key (\"%s\")",
                  path, kid, derived);
        return -1;
    }
    if (cw_token_verifier_add_key (self, public_key)) {
        snprintf (error, size,
                  "cannot add key file \"%s\": key already "
                  "loaded or more than %d keys",
                  path, CW_TOKEN_KEYS_MAX);
        return -1;
    }
    return 0;
}

size_t
cw_token_verifier_keys (cw_token_verifier_t *self)
{
    assert (self);
    return self->count;
}

void
cw_token_verifier_set_audience (cw_token_verifier_t *self, const char *audience)
{
    assert (self);
    free (self->audience);
    self->audience = audience ? s_strdup (audience) : NULL;
}

void
cw_token_verifier_set_issuer (cw_token_verifier_t *self, const char *issuer)
{
    assert (self);
    free (self->issuer);
    self->issuer = issuer ? s_strdup (issuer) : NULL;
}

void
cw_token_verifier_set_leeway (cw_token_verifier_t *self, int seconds)
{
    assert (self);
    assert (seconds >= 0);
    self->leeway = seconds;
}

//  Decodes one base64url segment holding a JSON object.
static json_t *
s_decode_json (const char *text, size_t length)
{
    size_t decoded = 0;
    unsigned char *bytes = s_decode (text, length, &decoded);
    if (!bytes)
        return NULL;
    json_t *object = json_loadb ((const char *) bytes, decoded,
                                 JSON_REJECT_DUPLICATES, NULL);
    free (bytes);
    if (object && !json_is_object (object)) {
        json_decref (object);
        return NULL;
    }
    return object;
}

//  Reads an integer time claim; absent is allowed unless required.
static int
s_time_claim (json_t *body,
              const char *name,
              bool required,
              int64_t *value,
              char *error,
              size_t size)
{
    json_t *item = json_object_get (body, name);
    if (!item && !required) {
        *value = 0;
        return 0;
    }
    if (!json_is_integer (item)) {
        snprintf (error, size, "invalid token: claim \"%s\" is %s", name,
                  item ? "not an integer" : "missing");
        return -1;
    }
    *value = (int64_t) json_integer_value (item);
    return 0;
}

//  Reads an optional string claim; returns -1 if present but not a string.
static int
s_string_claim (json_t *body,
                const char *name,
                const char **value,
                char *error,
                size_t size)
{
    json_t *item = json_object_get (body, name);
    *value = item ? json_string_value (item) : NULL;
    if (item && !*value) {
        snprintf (error, size,
                  "invalid token: claim \"%s\" is not a "
                  "string",
                  name);
        return -1;
    }
    return 0;
}

//  True when aud (a string or an array of strings) holds audience.
static bool
s_audience_matches (json_t *aud, const char *audience)
{
    if (json_is_string (aud))
        return strcmp (json_string_value (aud), audience) == 0;
    size_t index;
    json_t *item;
    json_array_foreach (aud, index,
                        item) if (json_is_string (item)
                                  && strcmp (json_string_value (item), audience)
                                         == 0) return true;
    return false;
}

//  Checks the verified body's times and names, fills claims.
static int
s_check_claims (cw_token_verifier_t *self,
                json_t *body,
                int64_t now,
                cw_token_claims_t *claims,
                char *error,
                size_t size)
{
    int64_t exp, nbf, iat;
    if (s_time_claim (body, "exp", true, &exp, error, size)
        || s_time_claim (body, "nbf", false, &nbf, error, size)
        || s_time_claim (body, "iat", false, &iat, error, size))
        return -1;
    char when[64];
    if (now >= exp + self->leeway) {
        s_time_text (exp, when, sizeof (when));
        snprintf (error, size, "token expired at %s", when);
        return -1;
    }
    if (json_object_get (body, "nbf") && now + self->leeway < nbf) {
        s_time_text (nbf, when, sizeof (when));
        snprintf (error, size, "token not valid before %s", when);
        return -1;
    }
    if (json_object_get (body, "iat") && now + self->leeway < iat) {
        s_time_text (iat, when, sizeof (when));
        snprintf (error, size, "token issued in the future (%s)", when);
        return -1;
    }
    const char *iss, *sub, *jti;
    if (s_string_claim (body, "iss", &iss, error, size)
        || s_string_claim (body, "sub", &sub, error, size)
        || s_string_claim (body, "jti", &jti, error, size))
        return -1;
    json_t *aud = json_object_get (body, "aud");
    if (aud && !json_is_string (aud) && !json_is_array (aud)) {
        snprintf (error, size,
                  "invalid token: claim \"aud\" is not a "
                  "string or an array");
        return -1;
    }
    if (self->audience && (!aud || !s_audience_matches (aud, self->audience))) {
        snprintf (error, size, "audience mismatch: token is not for \"%s\"",
                  self->audience);
        return -1;
    }
    if (self->issuer && (!iss || strcmp (iss, self->issuer) != 0)) {
        snprintf (error, size, "issuer mismatch: expected \"%s\"",
                  self->issuer);
        return -1;
    }
    if (claims) {
        memset (claims, 0, sizeof (*claims));
        const char *first = json_is_string (aud)
                                ? json_string_value (aud)
                                : json_string_value (json_array_get (aud, 0));
        claims->iss = iss ? s_strdup (iss) : NULL;
        claims->sub = sub ? s_strdup (sub) : NULL;
        claims->aud = first ? s_strdup (first) : NULL;
        claims->jti = jti ? s_strdup (jti) : NULL;
        claims->exp = exp;
        claims->nbf = nbf;
        claims->iat = iat;
    }
    return 0;
}

int
cw_token_verify (cw_token_verifier_t *self,
                 const char *token,
                 int64_t now,
                 cw_token_claims_t *claims,
                 char *error,
                 size_t size)
{
    assert (self);
    if (claims)
        memset (claims, 0, sizeof (*claims));
    if (!token || !*token) {
        snprintf (error, size, "missing token");
        return -1;
    }
    size_t length = strlen (token);
    if (length > CW_TOKEN_SIZE_MAX) {
        snprintf (error, size, "invalid token: longer than %d bytes",
                  CW_TOKEN_SIZE_MAX);
        return -1;
    }
    const char *first_dot = strchr (token, '.');
    const char *second_dot = first_dot ? strchr (first_dot + 1, '.') : NULL;
    if (!second_dot || strchr (second_dot + 1, '.')) {
        snprintf (error, size,
                  "invalid token: not three dot-separated "
                  "segments");
        return -1;
    }
    int rc = -1;
    json_t *header = NULL;
    json_t *body = NULL;
    unsigned char *signature = NULL;

    header = s_decode_json (token, (size_t) (first_dot - token));
    if (!header) {
        snprintf (error, size,
                  "invalid token: header is not base64url "
                  "JSON");
        goto done;
    }
    const char *alg = json_string_value (json_object_get (header, "alg"));
    if (!alg || strcmp (alg, "EdDSA") != 0) {
        snprintf (error, size,
                  "invalid token: algorithm \"%s\" is not "
                  "accepted (only EdDSA)",
                  alg ? alg : "(missing)");
        goto done;
    }
    json_t *typ = json_object_get (header, "typ");
    if (typ
        && (!json_is_string (typ)
            || strcmp (json_string_value (typ), "JWT") != 0)) {
        snprintf (error, size, "invalid token: type is not JWT");
        goto done;
    }
    if (json_object_get (header, "crit")) {
        snprintf (error, size,
                  "invalid token: critical header extensions "
                  "are not supported");
        goto done;
    }
    json_t *kid_item = json_object_get (header, "kid");
    const char *kid = json_string_value (kid_item);
    if (kid_item && !kid) {
        snprintf (error, size, "invalid token: kid is not a string");
        goto done;
    }
    body = s_decode_json (first_dot + 1, (size_t) (second_dot - first_dot - 1));
    if (!body) {
        snprintf (error, size,
                  "invalid token: claims are not base64url "
                  "JSON");
        goto done;
    }
    size_t signature_length = 0;
    signature =
        s_decode (second_dot + 1, strlen (second_dot + 1), &signature_length);
    if (!signature || signature_length != crypto_sign_BYTES) {
        snprintf (error, size,
                  "invalid token: signature is not %d bytes of "
                  "base64url",
                  crypto_sign_BYTES);
        goto done;
    }
    //  The kid picks the key; without a kid every key is tried.
    bool known = false;
    bool verified = false;
    for (size_t index = 0; index < self->count && !verified; index++) {
        if (kid && strcmp (kid, self->keys[index].kid) != 0)
            continue;
        known = true;
        verified = crypto_sign_verify_detached (signature,
                                                (const unsigned char *) token,
                                                (size_t) (second_dot - token),
                                                self->keys[index].public_key)
                   == 0;
    }
    if (!known) {
        snprintf (error, size, "invalid token: unknown key id \"%s\"",
                  kid ? kid : "(none)");
        goto done;
    }
    if (!verified) {
        snprintf (error, size, "invalid token: bad signature");
        goto done;
    }
    rc = s_check_claims (self, body, now, claims, error, size);
done:
    json_decref (header);
    json_decref (body);
    free (signature);
    return rc;
}
