/*  =========================================================================
    cw_test - helpers for integration tests
    =========================================================================
*/
#include "cw_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#if defined (__linux__)
#   include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#define CW_TEST_POLL_USEC 10000  //  Pause between polls, usec

extern char **environ;

static char *
s_strdup_printf (const char *format, const char *a, const char *b)
{
    size_t size = strlen (format) + strlen (a) + strlen (b) + 1;
    char *result = (char *) malloc (size);
    if (!result)
        abort ();
    snprintf (result, size, format, a, b);
    return result;
}

long long
cw_test_now_msec (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (long long) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

const char *
cw_test_pguri (void)
{
    const char *uri = getenv ("CW_TEST_PGURI");
    if (!uri || !*uri) {
        fprintf (stderr, "CW_TEST_PGURI is not set: run the tests through "
                         "scripts/test or scripts/pg run make check\n");
        exit (1);
    }
    return uri;
}

//  Replaces the database name (the path) of a postgresql:// URI, keeping
//  the query string.
static char *
s_uri_with_dbname (const char *uri, const char *dbname)
{
    const char *scheme = strstr (uri, "://");
    const char *host = scheme ? scheme + 3 : uri;
    const char *slash = strchr (host, '/');
    const char *query = strchr (host, '?');
    if (slash && query && slash > query)
        slash = NULL;
    size_t head = slash ? (size_t) (slash - uri)
                        : query ? (size_t) (query - uri) : strlen (uri);
    size_t size = head + strlen (dbname) + (query ? strlen (query) : 0) + 2;
    char *result = (char *) malloc (size);
    if (!result)
        abort ();
    snprintf (result, size, "%.*s/%s%s", (int) head, uri, dbname,
              query ? query : "");
    return result;
}

int
cw_test_sql (const char *uri, const char *sql, char *error, size_t size)
{
    PGconn *conn = PQconnectdb (uri);
    int rc = -1;
    if (PQstatus (conn) != CONNECTION_OK) {
        if (error)
            snprintf (error, size, "%s", PQerrorMessage (conn));
        PQfinish (conn);
        return -1;
    }
    PGresult *result = PQexec (conn, sql);
    ExecStatusType status = PQresultStatus (result);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        rc = 0;
    else
    if (error)
        snprintf (error, size, "%s", PQresultErrorMessage (result));
    PQclear (result);
    PQfinish (conn);
    return rc;
}

char *
cw_test_sql_value (const char *uri, const char *sql)
{
    PGconn *conn = PQconnectdb (uri);
    char *value = NULL;
    if (PQstatus (conn) == CONNECTION_OK) {
        PGresult *result = PQexec (conn, sql);
        if (PQresultStatus (result) == PGRES_TUPLES_OK
            && PQntuples (result) > 0 && !PQgetisnull (result, 0, 0))
            value = strdup (PQgetvalue (result, 0, 0));
        PQclear (result);
    }
    PQfinish (conn);
    return value;
}

char *
cw_test_db_new (const char *prefix)
{
    static int counter = 0;
    char dbname[64];
    snprintf (dbname, sizeof (dbname), "%s_%d_%d", prefix, (int) getpid (),
              ++counter);
    const char *admin = cw_test_pguri ();
    char sql[256];
    char error[512];
    snprintf (sql, sizeof (sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
              dbname);
    if (cw_test_sql (admin, sql, error, sizeof (error))) {
        fprintf (stderr, "cw_test_db_new: %s", error);
        exit (1);
    }
    snprintf (sql, sizeof (sql), "CREATE DATABASE %s", dbname);
    if (cw_test_sql (admin, sql, error, sizeof (error))) {
        fprintf (stderr, "cw_test_db_new: %s", error);
        exit (1);
    }
    return s_uri_with_dbname (admin, dbname);
}

void
cw_test_db_destroy (char **uri_p)
{
    if (!uri_p || !*uri_p)
        return;
    const char *uri = *uri_p;
    const char *scheme = strstr (uri, "://");
    const char *slash = strchr (scheme ? scheme + 3 : uri, '/');
    if (slash) {
        char dbname[64];
        size_t length = strcspn (slash + 1, "?");
        if (length < sizeof (dbname)) {
            memcpy (dbname, slash + 1, length);
            dbname[length] = 0;
            char sql[128];
            snprintf (sql, sizeof (sql),
                      "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
            cw_test_sql (cw_test_pguri (), sql, NULL, 0);
        }
    }
    free (*uri_p);
    *uri_p = NULL;
}

char *
cw_test_uri_as (const char *uri, const char *role)
{
    //  libpq takes the last value of a repeated parameter, so appending a
    //  user keeps everything else of the URI.
    return s_strdup_printf (strchr (uri, '?') ? "%s&user=%s" : "%s?user=%s",
                            uri, role);
}

char *
cw_test_build_path (const char *relative)
{
    const char *dir = getenv ("CW_BUILDDIR");
    return s_strdup_printf ("%s/%s", dir ? dir : ".", relative);
}

char *
cw_test_src_path (const char *relative)
{
    const char *dir = getenv ("CW_SRCDIR");
    return s_strdup_printf ("%s/%s", dir ? dir : ".", relative);
}

pid_t
cw_test_spawn (const char *const argv[], const char *const envp[],
               const char *log_path)
{
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid > 0)
        return pid;
    //  Child: own process group, so a stray grandchild dies with it.
    setpgid (0, 0);
#if defined (__linux__)
    //  A test that fails (its process ends without stopping what it
    //  started) takes the process with it; on other systems the test's
    //  own cw_test_stop is all there is
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () != parent)
        _exit (1);
#else
    (void) parent;
#endif
    if (log_path) {
        int fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2 (fd, STDOUT_FILENO);
            dup2 (fd, STDERR_FILENO);
            close (fd);
        }
    }
    for (int index = 0; envp && envp[index]; index++)
        putenv ((char *) envp[index]);
    execv (argv[0], (char *const *) argv);
    fprintf (stderr, "cw_test_spawn: cannot run %s: %s\n", argv[0],
             strerror (errno));
    _exit (127);
}

int
cw_test_wait_exit (pid_t pid, int timeout_msec, int *status_p)
{
    long long deadline = cw_test_now_msec () + timeout_msec;
    while (true) {
        pid_t done = waitpid (pid, status_p, WNOHANG);
        if (done == pid)
            return 1;
        if (done < 0)
            return -1;
        if (cw_test_now_msec () >= deadline)
            return 0;
        usleep (CW_TEST_POLL_USEC);
    }
}

int
cw_test_stop (pid_t pid, int timeout_msec)
{
    if (pid <= 0)
        return -1;
    int status = 0;
    kill (pid, SIGTERM);
    int exited = cw_test_wait_exit (pid, timeout_msec, &status);
    if (exited)
        return exited > 0 ? status : -1;
    kill (pid, SIGKILL);
    if (waitpid (pid, &status, 0) != pid)
        return -1;
    return status;
}

void
cw_test_kill (pid_t pid)
{
    if (pid <= 0)
        return;
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
}

char *
cw_test_wait_file (const char *path, int timeout_msec)
{
    long long deadline = cw_test_now_msec () + timeout_msec;
    do {
        FILE *file = fopen (path, "r");
        if (file) {
            char line[1024];
            char *result = NULL;
            if (fgets (line, sizeof (line), file)
                && line[strlen (line) - 1] == '\n') {
                line[strcspn (line, "\r\n")] = 0;
                result = strdup (line);
            }
            fclose (file);
            if (result)
                return result;
        }
        usleep (CW_TEST_POLL_USEC);
    } while (cw_test_now_msec () < deadline);
    return NULL;
}

bool
cw_test_wait_port (int port, int timeout_msec)
{
    long long deadline = cw_test_now_msec () + timeout_msec;
    do {
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in address;
        memset (&address, 0, sizeof (address));
        address.sin_family = AF_INET;
        address.sin_port = htons ((uint16_t) port);
        address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        int rc = connect (fd, (struct sockaddr *) &address, sizeof (address));
        close (fd);
        if (rc == 0)
            return true;
        usleep (CW_TEST_POLL_USEC);
    } while (cw_test_now_msec () < deadline);
    return false;
}

char *
cw_test_tmpdir (const char *prefix)
{
    const char *base = getenv ("TMPDIR");
    char *path = s_strdup_printf ("%s/%s.XXXXXX", base ? base : "/tmp",
                                  prefix);
    if (!mkdtemp (path)) {
        fprintf (stderr, "cw_test_tmpdir: %s\n", strerror (errno));
        exit (1);
    }
    return path;
}

static int
s_remove_entry (const char *path, const struct stat *info, int flag,
                struct FTW *ftw)
{
    (void) info;
    (void) flag;
    (void) ftw;
    return remove (path);
}

void
cw_test_tmpdir_destroy (char **path_p)
{
    if (!path_p || !*path_p)
        return;
    nftw (*path_p, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (*path_p);
    *path_p = NULL;
}

char *
cw_test_write_file (const char *dir,
                    const char *name,
                    const char *content,
                    mode_t mode)
{
    size_t size = strlen (dir) + strlen (name) + 2;
    char *path = (char *) malloc (size);
    if (!path)
        return NULL;
    snprintf (path, size, "%s/%s", dir, name);
    FILE *file = fopen (path, "w");
    bool written = file && fputs (content, file) >= 0;
    if (file && fclose (file))
        written = false;
    if (!written || chmod (path, mode)) {
        free (path);
        return NULL;
    }
    return path;
}
