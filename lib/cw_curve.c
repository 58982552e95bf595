/*  =========================================================================
    cw_curve - CURVE certificates with roles, and socket setup
    =========================================================================
*/
#include "cw_curve.h"
#include "cw_secret.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CW_CURVE_ISLAND_MAX 32      //  Longest island name, bytes
#define CW_CURVE_RELAY_PREFIX "relay:"
#define CW_CURVE_PUBLIC_MODE 0644   //  Mode of .pub files
#define CW_CURVE_KEY_BIN 32         //  Length of a binary key, bytes

bool
cw_curve_role_valid (const char *role)
{
    if (!role)
        return false;
    if (streq (role, "worker") || streq (role, "admin"))
        return true;
    char island[CW_CURVE_ISLAND_MAX + 1];
    return cw_curve_role_island (role, island, sizeof (island)) == 0;
}

int
cw_curve_role_island (const char *role, char *island, size_t size)
{
    assert (island);
    if (!role)
        return -1;
    size_t prefix = strlen (CW_CURVE_RELAY_PREFIX);
    if (strncmp (role, CW_CURVE_RELAY_PREFIX, prefix) != 0)
        return -1;
    const char *name = role + prefix;
    size_t length = strlen (name);
    if (length == 0 || length > CW_CURVE_ISLAND_MAX || length >= size)
        return -1;
    for (size_t index = 0; index < length; index++)
        if (!((name[index] >= 'a' && name[index] <= 'z')
              || name[index] == '_'))
            return -1;
    memcpy (island, name, length + 1);
    return 0;
}

bool
cw_curve_name_valid (const char *name)
{
    if (!name || !*name || *name == '.')
        return false;
    size_t length = strlen (name);
    if (length > CW_CURVE_NAME_MAX)
        return false;
    for (size_t index = 0; index < length; index++) {
        char c = name[index];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

zcert_t *
cw_curve_cert_new (const char *role, const char *name)
{
    if (!cw_curve_role_valid (role) || !cw_curve_name_valid (name))
        return NULL;
    zcert_t *cert = zcert_new ();
    assert (cert);
    zcert_set_meta (cert, "role", "%s", role);
    zcert_set_meta (cert, "name", "%s", name);
    return cert;
}

//  Writes one certificate file of cert to a fresh private temporary file
//  in dir (mode 0600 from mkstemp), then sets mode. Returns the temporary
//  path (caller frees) or NULL with a message.
static char *
s_write_temporary (zcert_t *cert, const char *dir, const char *name,
                   bool secret, char *error, size_t size)
{
    char *path = zsys_sprintf ("%s/.%s.%s.XXXXXX", dir, name,
                               secret ? "secret" : "pub");
    assert (path);
    int fd = mkstemp (path);
    if (fd < 0) {
        snprintf (error, size, "could not create file in \"%s\": %s", dir,
                  strerror (errno));
        zstr_free (&path);
        return NULL;
    }
    //  zcert writes through fopen ("w"), which keeps the 0600 mode of the
    //  file mkstemp made; the secret is never visible with a wider mode.
    int rc = secret ? zcert_save_secret (cert, path)
                    : zcert_save_public (cert, path);
    if (rc == 0 && !secret && fchmod (fd, CW_CURVE_PUBLIC_MODE) != 0)
        rc = -1;
    if (rc == 0 && fsync (fd) != 0)
        rc = -1;
    int saved = errno;
    close (fd);
    if (rc != 0) {
        snprintf (error, size, "could not write \"%s\": %s", path,
                  strerror (saved));
        unlink (path);
        zstr_free (&path);
        return NULL;
    }
    return path;
}

//  Moves a temporary file into place: link () refuses an existing target
//  (no race between check and write), rename () replaces it when forced.
static int
s_install (const char *temporary, const char *target, bool force,
           char *error, size_t size)
{
    int rc = force ? rename (temporary, target) : link (temporary, target);
    int saved = errno;
    if (!force)
        unlink (temporary);
    if (rc != 0) {
        if (saved == EEXIST)
            snprintf (error, size, "cannot write \"%s\": file exists (use "
                                   "--force to replace it)", target);
        else
            snprintf (error, size, "could not write \"%s\": %s", target,
                      strerror (saved));
        if (force)
            unlink (temporary);
        return -1;
    }
    return 0;
}

int
cw_curve_cert_save (zcert_t *cert, const char *dir, const char *name,
                    bool force, char *error, size_t size)
{
    assert (cert);
    assert (dir);
    assert (name);
    if (!cw_curve_name_valid (name)) {
        snprintf (error, size, "invalid certificate name \"%s\": use 1 to "
                               "%d of [A-Za-z0-9_.-], not starting with '.'",
                  name, CW_CURVE_NAME_MAX);
        return -1;
    }
    char *public_path = zsys_sprintf ("%s/%s.pub", dir, name);
    char *secret_path = zsys_sprintf ("%s/%s.secret", dir, name);
    char *public_tmp = NULL;
    char *secret_tmp = NULL;
    int rc = -1;
    if (!force) {
        const char *paths[] = {public_path, secret_path};
        for (int index = 0; index < 2; index++)
            if (access (paths[index], F_OK) == 0) {
                snprintf (error, size, "cannot write \"%s\": file exists "
                                       "(use --force to replace it)",
                          paths[index]);
                goto done;
            }
    }
    secret_tmp = s_write_temporary (cert, dir, name, true, error, size);
    if (!secret_tmp)
        goto done;
    public_tmp = s_write_temporary (cert, dir, name, false, error, size);
    if (!public_tmp)
        goto done;
    if (s_install (secret_tmp, secret_path, force, error, size) != 0)
        goto done;
    zstr_free (&secret_tmp);
    if (s_install (public_tmp, public_path, force, error, size) != 0) {
        unlink (secret_path);
        goto done;
    }
    zstr_free (&public_tmp);
    rc = 0;
done:
    if (secret_tmp)
        unlink (secret_tmp);
    if (public_tmp)
        unlink (public_tmp);
    zstr_free (&secret_tmp);
    zstr_free (&public_tmp);
    zstr_free (&public_path);
    zstr_free (&secret_path);
    return rc;
}

//  Decodes one Z85 key of 40 chars into 32 bytes; 0 or -1.
static int
s_decode_key (const char *text, byte *key)
{
    if (!text || strlen (text) != CW_CURVE_KEY_TXT)
        return -1;
    return zmq_z85_decode (key, text) ? 0 : -1;
}

//  Builds a certificate from parsed ZPL: curve/public-key, optionally
//  curve/secret-key, and the metadata section. Wipes the secret key text.
static zcert_t *
s_cert_from_config (zconfig_t *root, const char *path, bool secret,
                    char *error, size_t size)
{
    byte public_key[CW_CURVE_KEY_BIN];
    byte secret_key[CW_CURVE_KEY_BIN];
    memset (secret_key, 0, sizeof (secret_key));
    zconfig_t *public_item = zconfig_locate (root, "curve/public-key");
    if (!public_item || s_decode_key (zconfig_value (public_item),
                                      public_key) != 0) {
        snprintf (error, size, "cannot use certificate \"%s\": no valid "
                               "curve/public-key", path);
        return NULL;
    }
    if (secret) {
        zconfig_t *secret_item = zconfig_locate (root, "curve/secret-key");
        char *text = secret_item ? zconfig_value (secret_item) : NULL;
        int rc = s_decode_key (text, secret_key);
        if (text)
            sodium_memzero (text, strlen (text));
        if (rc != 0) {
            snprintf (error, size, "cannot use certificate \"%s\": no "
                                   "valid curve/secret-key", path);
            return NULL;
        }
    }
    zcert_t *cert = zcert_new_from (public_key, secret_key);
    sodium_memzero (secret_key, sizeof (secret_key));
    assert (cert);
    zconfig_t *item = zconfig_locate (root, "metadata");
    for (item = item ? zconfig_child (item) : NULL; item;
         item = zconfig_next (item))
        zcert_set_meta (cert, zconfig_name (item), "%s",
                        zconfig_value (item) ? zconfig_value (item) : "");
    return cert;
}

void
cw_curve_cert_wipe (zcert_t *cert)
{
    assert (cert);
    //  czmq hands out const pointers into the certificate's own arrays
    sodium_memzero ((byte *) zcert_secret_key (cert), CW_CURVE_KEY_BIN);
    char *text = (char *) zcert_secret_txt (cert);
    sodium_memzero (text, strlen (text));
}

void
cw_curve_cert_destroy (zcert_t **cert_p)
{
    assert (cert_p);
    if (*cert_p)
        cw_curve_cert_wipe (*cert_p);
    zcert_destroy (cert_p);
}

zcert_t *
cw_curve_cert_load_secret (const char *path, char *error, size_t size)
{
    assert (path);
    char *text = cw_secret_load (path, error, size);
    if (!text)
        return NULL;
    zconfig_t *root = zconfig_str_load (text);
    cw_secret_destroy (&text);
    if (!root) {
        snprintf (error, size, "cannot use certificate \"%s\": not a ZPL "
                               "file", path);
        return NULL;
    }
    zcert_t *cert = s_cert_from_config (root, path, true, error, size);
    zconfig_destroy (&root);
    return cert;
}

zcert_t *
cw_curve_cert_load_public (const char *path, char *error, size_t size)
{
    assert (path);
    if (access (path, R_OK) != 0) {
        snprintf (error, size, "could not read certificate \"%s\": %s", path,
                  strerror (errno));
        return NULL;
    }
    zconfig_t *root = zconfig_load (path);
    if (!root) {
        snprintf (error, size, "cannot use certificate \"%s\": not a ZPL "
                               "file", path);
        return NULL;
    }
    //  A public certificate holding a secret key: a secret where secrets
    //  do not belong (a peers directory is read by the broker's user and
    //  copied about). Refused, so that it is noticed and moved away.
    zconfig_t *secret_item = zconfig_locate (root, "curve/secret-key");
    if (secret_item) {
        char *text = zconfig_value (secret_item);
        if (text)
            sodium_memzero (text, strlen (text));
        zconfig_destroy (&root);
        snprintf (error, size, "cannot use certificate \"%s\": a public "
                               "certificate must not hold a curve/secret-key "
                               "(move the file somewhere private; install "
                               "only the .pub that cert new wrote)", path);
        return NULL;
    }
    zcert_t *cert = s_cert_from_config (root, path, false, error, size);
    zconfig_destroy (&root);
    return cert;
}

void
cw_curve_server_setup (zsock_t *sock, const zcert_t *server_cert,
                       const char *zap_domain)
{
    assert (sock);
    assert (server_cert);
    zcert_t *cert = (zcert_t *) server_cert;  //  zcert takes no const
    zsock_set_zap_domain (sock, zap_domain ? zap_domain
                                           : CW_CURVE_ZAP_DOMAIN);
    zsock_set_curve_server (sock, 1);
    zsock_set_curve_secretkey_bin (sock, zcert_secret_key (cert));
    zsock_set_curve_publickey_bin (sock, zcert_public_key (cert));
}

void
cw_curve_client_setup (zsock_t *sock, const zcert_t *client_cert,
                       const char *server_public_z85)
{
    assert (sock);
    assert (client_cert);
    assert (server_public_z85);
    assert (strlen (server_public_z85) == CW_CURVE_KEY_TXT);
    zcert_t *cert = (zcert_t *) client_cert;  //  zcert takes no const
    zsock_set_curve_secretkey_bin (sock, zcert_secret_key (cert));
    zsock_set_curve_publickey_bin (sock, zcert_public_key (cert));
    zsock_set_curve_serverkey (sock, server_public_z85);
}
