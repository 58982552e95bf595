/*  =========================================================================
    cw_secret - secrets only from files, never from code, config or argv
    =========================================================================
*/
#include "cw_secret.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CW_SECRET_NAME_MAX 128      //  Longest secret name, bytes

char *
cw_secret_load (const char *path, char *error, size_t size)
{
    if (!path || !*path) {
        snprintf (error, size, "cannot read secret: no file named");
        return NULL;
    }
    //  O_NONBLOCK: a FIFO must be refused below, not wait for a writer
    int fd = open (path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf (error, size, "could not open secret file \"%s\": %s", path,
                  strerror (errno));
        return NULL;
    }
    struct stat info;
    if (fstat (fd, &info) != 0 || !S_ISREG (info.st_mode)) {
        snprintf (error, size, "cannot read secret file \"%s\": not a "
                               "regular file", path);
        close (fd);
        return NULL;
    }
    if (info.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
        snprintf (error, size, "cannot use secret file \"%s\": mode %04o is "
                               "readable or writable by group or others "
                               "(chmod 0600 it)",
                  path, (unsigned) (info.st_mode & 07777));
        close (fd);
        return NULL;
    }
    if (info.st_size > CW_SECRET_MAX_SIZE) {
        snprintf (error, size, "cannot use secret file \"%s\": larger than "
                               "%d bytes", path, CW_SECRET_MAX_SIZE);
        close (fd);
        return NULL;
    }
    size_t limit = (size_t) info.st_size + 1;
    char *secret = (char *) malloc (limit);
    if (!secret)
        abort ();
    size_t length = 0;
    while (length < limit - 1) {
        ssize_t got = read (fd, secret + length, limit - 1 - length);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        length += (size_t) got;
    }
    close (fd);
    secret[length] = 0;
    if (length > 0 && secret[length - 1] == '\n')
        secret[--length] = 0;
    if (length > 0 && secret[length - 1] == '\r')
        secret[--length] = 0;
    if (length == 0 || strlen (secret) != length) {
        snprintf (error, size, "cannot use secret file \"%s\": %s", path,
                  length ? "contains a NUL byte" : "empty");
        sodium_memzero (secret, limit);
        free (secret);
        return NULL;
    }
    return secret;
}

int
cw_secret_lookup (const char *name, char **secret_p, char *error,
                  size_t size)
{
    assert (name);
    assert (secret_p);
    *secret_p = NULL;
    if (strlen (name) >= CW_SECRET_NAME_MAX) {
        snprintf (error, size, "cannot look up secret: name too long");
        return -1;
    }
    char variable[CW_SECRET_NAME_MAX + 8];
    snprintf (variable, sizeof (variable), "%s_FILE", name);
    const char *path = getenv (variable);
    if (path && *path) {
        *secret_p = cw_secret_load (path, error, size);
        return *secret_p ? 0 : -1;
    }
    if (getenv (name)) {
        snprintf (error, size, "cannot take secret %s from the environment: "
                               "put it in a file and set %s", name, variable);
        return -1;
    }
    const char *directory = getenv ("CREDENTIALS_DIRECTORY");
    if (directory && *directory) {
        char lower[CW_SECRET_NAME_MAX];
        size_t index;
        for (index = 0; name[index]; index++)
            lower[index] = (char) tolower ((unsigned char) name[index]);
        lower[index] = 0;
        char credential[PATH_MAX];
        snprintf (credential, sizeof (credential), "%s/%s", directory, lower);
        if (access (credential, F_OK) == 0) {
            *secret_p = cw_secret_load (credential, error, size);
            return *secret_p ? 0 : -1;
        }
    }
    snprintf (error, size, "secret %s is not configured: set %s", name,
              variable);
    return 1;
}

void
cw_secret_destroy (char **secret_p)
{
    if (!secret_p || !*secret_p)
        return;
    sodium_memzero (*secret_p, strlen (*secret_p));
    free (*secret_p);
    *secret_p = NULL;
}
