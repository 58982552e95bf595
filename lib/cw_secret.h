/*  =========================================================================
    cw_secret - secrets only from files, never from code, config or argv

    A secret NAME is looked up as:
      1. the file named by the environment variable NAME_FILE;
      2. else $CREDENTIALS_DIRECTORY/<name in lower case> (systemd
         LoadCredential=), when that file exists.
    A plain NAME variable holding the secret itself is refused. The file
    must be a regular file that is neither group- nor world-readable (or
    writable); one trailing newline is dropped. Secrets are wiped from
    memory when destroyed.
    =========================================================================
*/
#ifndef CW_SECRET_H_INCLUDED
#define CW_SECRET_H_INCLUDED

#include <stddef.h>

#define CW_SECRET_MAX_SIZE 65536    //  Largest secret file read, bytes

//  Reads the secret in path. Returns it as a fresh NUL-terminated string,
//  or NULL with a message in error[size] (names the file and the reason).
//  Caller owns return value and must destroy it with cw_secret_destroy.
char *
    cw_secret_load (const char *path, char *error, size_t size);

//  Looks up secret NAME as described above. Returns 0 and sets *secret_p
//  when found, 1 when it is not configured at all (*secret_p NULL), -1 on
//  any error, with a message in error[size]. Caller owns *secret_p.
int
    cw_secret_lookup (const char *name, char **secret_p, char *error,
                      size_t size);

//  Wipes and frees a secret, and nulls the pointer. Tolerates NULL.
void
    cw_secret_destroy (char **secret_p);

#endif
