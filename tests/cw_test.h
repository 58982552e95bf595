/*  =========================================================================
    cw_test - helpers for integration tests: private databases, child
    processes stopped by pid, ports chosen at run time

    The harness (scripts/test, or `make check` under scripts/pg) exports:
      CW_TEST_PGURI   superuser URI of the private PostgreSQL cluster
      CW_BUILDDIR     absolute build directory (programs live here)
      CW_SRCDIR       absolute source directory (sql/, docs/ live here)
    A missing CW_TEST_PGURI is a test failure, never a silent skip.
    =========================================================================
*/
#ifndef CW_TEST_H_INCLUDED
#define CW_TEST_H_INCLUDED

#include <stdbool.h>
#include <sys/types.h>

//  Returns the superuser URI of the private cluster; fails the calling
//  process (exit 1 with a message) when CW_TEST_PGURI is not set.
const char *
    cw_test_pguri (void);

//  Creates a fresh, empty database named prefix_<pid>_<counter>, dropping
//  any leftover of that name. Returns its superuser URI. Caller owns return
//  value and must free it when done.
char *
    cw_test_db_new (const char *prefix);

//  Drops a database made by cw_test_db_new (its connections are ended
//  first) and frees *uri_p.
void
    cw_test_db_destroy (char **uri_p);

//  Returns the URI of the same database as uri, connecting as another
//  role (the private cluster trusts loopback). Caller owns return value.
char *
    cw_test_uri_as (const char *uri, const char *role);

//  Runs one SQL command through libpq on uri; returns 0 on success, -1 on
//  error (message copied to error[size] when error is not NULL).
int
    cw_test_sql (const char *uri, const char *sql, char *error, size_t size);

//  Runs a query returning one value; returns it as a fresh string, or NULL
//  on error or no row. Caller owns return value.
char *
    cw_test_sql_value (const char *uri, const char *sql);

//  Path of a built file: CW_BUILDDIR/relative. Caller owns return value.
char *
    cw_test_build_path (const char *relative);

//  Path of a source file: CW_SRCDIR/relative. Caller owns return value.
char *
    cw_test_src_path (const char *relative);

//  Starts argv[0] with argv; stdout and stderr go to log_path (appended)
//  when given. Extra environment entries ("NAME=value", NULL-terminated)
//  are added to the child's environment. Returns the pid, or -1.
pid_t
    cw_test_spawn (const char *const argv[], const char *const envp[],
                   const char *log_path);

//  Waits up to timeout_msec for the child pid to exit. Returns 1 with
//  its status (as from waitpid) in *status_p once it has, 0 if it still
//  runs, -1 if it is not our child.
int
    cw_test_wait_exit (pid_t pid, int timeout_msec, int *status_p);

//  Stops a child by pid: SIGTERM, waits up to timeout_msec, then SIGKILL.
//  Returns the exit status as from waitpid, or -1 if it was not our child.
int
    cw_test_stop (pid_t pid, int timeout_msec);

//  Sends SIGKILL to the child and reaps it.
void
    cw_test_kill (pid_t pid);

//  Waits until path exists and is non-empty; returns its first line as a
//  fresh string (caller frees) or NULL after timeout_msec.
char *
    cw_test_wait_file (const char *path, int timeout_msec);

//  Waits until a TCP connect to 127.0.0.1:port succeeds; true if it did
//  within timeout_msec.
bool
    cw_test_wait_port (int port, int timeout_msec);

//  Makes a fresh private temporary directory (mode 0700). Caller frees.
char *
    cw_test_tmpdir (const char *prefix);

//  Removes a directory tree made by cw_test_tmpdir and frees *path_p.
void
    cw_test_tmpdir_destroy (char **path_p);

//  Writes content to dir/name and then sets its mode with chmod (so the
//  umask does not matter). Returns the path (caller frees), or NULL if the
//  file could not be written or its mode set.
char *
    cw_test_write_file (const char *dir,
                        const char *name,
                        const char *content,
                        mode_t mode);

//  Milliseconds on a monotonic clock.
long long
    cw_test_now_msec (void);

#endif
