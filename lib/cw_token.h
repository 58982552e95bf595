/*  =========================================================================
    cw_token - service-to-service signed tokens (Ed25519 JWT, RFC 8037)

    A token is base64url(header) "." base64url(claims) "." base64url(sig),
    without padding. Header: {"alg":"EdDSA","typ":"JWT","kid":KID}.
    Claims: iss, sub, aud, iat, nbf, exp (seconds since the epoch), jti.
    KID is derived from the public key (base64url of the first 9 bytes of
    its SHA-256), so a key file always names the same kid.

    Key files (one line each):
      PREFIX.secret   "cw-ed25519-secret KID BASE64URL(64-byte secret key)"
                      mode 0600, read through cw_secret
      PREFIX.public   "cw-ed25519-public KID BASE64URL(32-byte public key)"
                      may be world-readable

    A verifier holds up to CW_TOKEN_KEYS_MAX public keys at once (key
    rotation: old and new valid together) and picks one by the token's kid.
    Time is always a parameter, so tests choose the clock.

        cw_token_signer_t *signer = cw_token_signer_load ("svc.secret", ...);
        cw_token_claims_t claims = {.iss = "erp-mw", .sub = "worker",
            .aud = "webshop", .iat = now, .nbf = now, .exp = now + 300};
        char *token = cw_token_sign (signer, &claims, error, sizeof error);

        cw_token_verifier_t *verifier = cw_token_verifier_new ();
        cw_token_verifier_load_key (verifier, "svc.public", ...);
        cw_token_verifier_set_audience (verifier, "webshop");
        if (cw_token_verify (verifier, token, now, NULL, error, size))
            ... 401 with error ...
    =========================================================================
*/
#ifndef CW_TOKEN_H_INCLUDED
#define CW_TOKEN_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define CW_TOKEN_KEYS_MAX 4         //  Public keys one verifier holds
#define CW_TOKEN_KID_SIZE 16        //  Room for a kid and its NUL
#define CW_TOKEN_LEEWAY_DEFAULT 30  //  Clock skew allowed, seconds
#define CW_TOKEN_SIZE_MAX 8192      //  Longest token accepted, bytes
#define CW_TOKEN_PUBLIC_SIZE 32     //  Ed25519 public key, bytes
#define CW_TOKEN_SECRET_SIZE 64     //  Ed25519 secret key, bytes

typedef struct _cw_token_signer_t cw_token_signer_t;
typedef struct _cw_token_verifier_t cw_token_verifier_t;

//  Claims to sign, or claims read from a verified token. Strings are
//  borrowed when signing (jti NULL: a random one is made); when filled in
//  by cw_token_verify they are owned and freed by cw_token_claims_reset.
typedef struct {
    char *iss;    //  Issuer (service that signed)
    char *sub;    //  Subject (caller identity)
    char *aud;    //  Audience (first one if an array)
    char *jti;    //  Token id
    int64_t iat;  //  Issued at, seconds since the epoch
    int64_t nbf;  //  Not before, seconds
    int64_t exp;  //  Expires at, seconds
} cw_token_claims_t;

//  Frees the strings of claims filled in by cw_token_verify and zeroes it.
void cw_token_claims_reset (cw_token_claims_t *claims);

//  Derives the kid of a public key into kid[CW_TOKEN_KID_SIZE].
void cw_token_kid (const unsigned char *public_key, char *kid);

//  Makes a new key pair and writes prefix.secret (0600, created fresh,
//  never overwritten) and prefix.public (0644). Returns 0, or -1 with a
//  message in error[size].
int cw_token_keygen (const char *prefix, char *error, size_t size);

//  Makes a signer from a 64-byte Ed25519 secret key (copied).
//  Caller owns return value and must destroy it when done.
cw_token_signer_t *cw_token_signer_new (const unsigned char *secret_key);

//  Reads a secret key file (through cw_secret: must be mode 0600).
//  Returns NULL with a message in error[size] on failure.
//  Caller owns return value and must destroy it when done.
cw_token_signer_t *
cw_token_signer_load (const char *path, char *error, size_t size);

//  Wipes and frees a signer and nulls the pointer. Tolerates NULL.
void cw_token_signer_destroy (cw_token_signer_t **self_p);

//  Returns the signer's kid.
const char *cw_token_signer_kid (cw_token_signer_t *self);

//  Signs claims (iss, sub, aud required; jti NULL = random). Returns the
//  token, or NULL with a message in error[size].
//  Caller owns return value and must free it when done.
char *cw_token_sign (cw_token_signer_t *self,
                     const cw_token_claims_t *claims,
                     char *error,
                     size_t size);

//  Makes an empty verifier (no keys, no audience or issuer check,
//  leeway CW_TOKEN_LEEWAY_DEFAULT). Caller owns return value.
cw_token_verifier_t *cw_token_verifier_new (void);

//  Frees a verifier and nulls the pointer. Tolerates NULL.
void cw_token_verifier_destroy (cw_token_verifier_t **self_p);

//  Adds a 32-byte public key; its kid is derived. Returns 0, or -1 when
//  CW_TOKEN_KEYS_MAX keys are held already or the kid is held.
int cw_token_verifier_add_key (cw_token_verifier_t *self,
                               const unsigned char *public_key);

//  Reads a public key file and adds it. Returns 0, or -1 with a message.
int cw_token_verifier_load_key (cw_token_verifier_t *self,
                                const char *path,
                                char *error,
                                size_t size);

//  Returns how many keys the verifier holds.
size_t cw_token_verifier_keys (cw_token_verifier_t *self);

//  Requires aud to contain audience (NULL: no check). Copied.
void cw_token_verifier_set_audience (cw_token_verifier_t *self,
                                     const char *audience);

//  Requires iss to equal issuer (NULL: no check). Copied.
void cw_token_verifier_set_issuer (cw_token_verifier_t *self,
                                   const char *issuer);

//  Sets the clock skew allowed on exp, nbf and iat, in seconds.
void cw_token_verifier_set_leeway (cw_token_verifier_t *self, int seconds);

//  Verifies token at time now (seconds since the epoch): shape, header
//  (alg must be EdDSA), kid, signature, exp (required), nbf, iat,
//  audience and issuer. Returns 0 and, when claims is not NULL, fills it
//  in (caller resets it); or -1 with a message in error[size] naming what
//  failed ("token expired at ...", "audience mismatch ...").
int cw_token_verify (cw_token_verifier_t *self,
                     const char *token,
                     int64_t now,
                     cw_token_claims_t *claims,
                     char *error,
                     size_t size);

#endif
