/*  =========================================================================
    cw_curve - CURVE certificates with roles, and socket setup

    A certificate is a CZMQ zcert whose metadata carries `role` (`worker`,
    `relay:<island>` or `admin`) and `name`. On disk a pair is two ZPL
    files: <name>.pub (public key + metadata, mode 0644) and <name>.secret
    (both keys + metadata, mode 0600, never readable by group or others,
    read back through cw_secret's rules). The broker's allowed keys are a
    directory of .pub files (see cw_zap).
    =========================================================================
*/
#ifndef CW_CURVE_H_INCLUDED
#define CW_CURVE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#define CW_CURVE_ZAP_DOMAIN "causeway"  //  ZAP domain of broker sockets
#define CW_CURVE_ROLE_MAX 64            //  Longest role text, bytes
#define CW_CURVE_NAME_MAX 64            //  Longest certificate name, bytes
#define CW_CURVE_KEY_TXT 40             //  Length of a Z85 key, chars

//  Returns true if role is `worker`, `admin` or `relay:<island>` with
//  island made of [a-z_] (1 .. 32 chars).
bool
    cw_curve_role_valid (const char *role);

//  If role is `relay:<island>`, copies the island to island[size] and
//  returns 0; returns -1 for any other role.
int
    cw_curve_role_island (const char *role, char *island, size_t size);

//  Returns true if name is usable as a certificate name and file name:
//  [A-Za-z0-9_.-], 1 .. 64 chars, not starting with '.'.
bool
    cw_curve_name_valid (const char *name);

//  Makes a new key pair with metadata role and name. Returns NULL if the
//  role or the name is not valid. Caller owns return value and must
//  destroy it with zcert_destroy.
zcert_t *
    cw_curve_cert_new (const char *role, const char *name);

//  Overwrites the certificate's secret key (binary and Z85) with zeros;
//  zcert_destroy frees it as it is. The public key and metadata stay.
void
    cw_curve_cert_wipe (zcert_t *cert);

//  Wipes the secret key, then destroys the certificate. Use for every
//  certificate that held a secret key.
void
    cw_curve_cert_destroy (zcert_t **cert_p);

//  Writes dir/<name>.pub (0644) and dir/<name>.secret (0600). Each file is
//  written to a private temporary file first and then linked into place,
//  so the secret is never readable by others and a reader never sees a
//  half-written file. Existing files are kept (returns -1) unless force.
//  Returns 0, or -1 with a message in error[size].
int
    cw_curve_cert_save (zcert_t *cert, const char *dir, const char *name,
                        bool force, char *error, size_t size);

//  Loads a secret certificate through cw_secret (refuses a file readable
//  or writable by group or others). Returns NULL with a message in
//  error[size] on failure. Caller owns return value (zcert_destroy).
zcert_t *
    cw_curve_cert_load_secret (const char *path, char *error, size_t size);

//  Loads a public certificate (.pub). Returns NULL with a message in
//  error[size] on failure. Caller owns return value (zcert_destroy).
zcert_t *
    cw_curve_cert_load_public (const char *path, char *error, size_t size);

//  Makes sock a CURVE server with server_cert's keys and the ZAP domain
//  (CW_CURVE_ZAP_DOMAIN when NULL). Call before binding; start the ZAP
//  handler (cw_zap_new) before that.
void
    cw_curve_server_setup (zsock_t *sock, const zcert_t *server_cert,
                           const char *zap_domain);

//  Makes sock a CURVE client with client_cert's keys that trusts the
//  server key server_public_z85 (40 chars). Call before connecting.
void
    cw_curve_client_setup (zsock_t *sock, const zcert_t *client_cert,
                           const char *server_public_z85);

#endif
