/*  =========================================================================
    cw_fixture - integration-test fixtures shared by the suites that run
    real Causeway processes (see cw_fixture.h)
    =========================================================================
*/
#include "cw_fixture.h"
#include "cw_curve.h"
#include "cw_test.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CW_FIXTURE_ENV_MAX 48   //  Environment entries of a broker

void
cw_fixture_write (const char *path, const char *text)
{
    assert (path);
    assert (text);
    FILE *file = fopen (path, "w");
    ck_assert_ptr_nonnull (file);
    fputs (text, file);
    fclose (file);
    ck_assert_int_eq (chmod (path, 0600), 0);
}

char *
cw_fixture_slurp (const char *path)
{
    assert (path);
    FILE *stream = fopen (path, "r");
    if (!stream)
        return NULL;
    char *text = NULL;
    size_t size = 0;
    if (getdelim (&text, &size, 0, stream) <= 0) {
        free (text);
        text = NULL;
    }
    fclose (stream);
    return text;
}

int
cw_fixture_run (const char *const argv[], const char *const envp[],
                const char *log)
{
    assert (argv);
    pid_t pid = cw_test_spawn (argv, envp, log);
    ck_assert_int_gt (pid, 0);
    int status = 0;
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

void
cw_fixture_migrate (const char *dir, const char *uri, const char *command,
                    const char *island)
{
    assert (dir);
    assert (uri);
    assert (command);
    char *uri_path = zsys_sprintf ("%s/migrate-uri", dir);
    cw_fixture_write (uri_path, uri);
    char *env = zsys_sprintf ("CW_DB_URI_FILE=%s", uri_path);
    char *program = cw_test_build_path ("migrate/causeway-migrate");
    char *sql = cw_test_src_path ("sql");
    const char *argv[] = {program, command, "--sql-dir", sql,
                          island ? "--island" : NULL, island, NULL};
    const char *envp[] = {env, NULL};
    char *log = zsys_sprintf ("%s/migrate.log", dir);
    ck_assert_msg (cw_fixture_run (argv, envp, log) == 0,
                   "causeway-migrate %s failed; see %s", command, log);
    zstr_free (&log);
    free (sql);
    free (program);
    zstr_free (&env);
    zstr_free (&uri_path);
}

void
cw_fixture_sql_ok (const char *uri, const char *sql)
{
    char error[1024] = "";
    ck_assert_msg (cw_test_sql (uri, sql, error, sizeof (error)) == 0, "%s: %s",
                   sql, error);
}

char *
cw_fixture_sql_value (const char *uri, const char *sql)
{
    char *value = cw_test_sql_value (uri, sql);
    ck_assert_msg (value != NULL, "%s: no value", sql);
    return value;
}

long
cw_fixture_sql_count (const char *uri, const char *sql)
{
    char *value = cw_fixture_sql_value (uri, sql);
    long count = strtol (value, NULL, 10);
    free (value);
    return count;
}

void
cw_fixture_sql_eq (const char *uri, const char *sql, const char *expected)
{
    char *value = cw_fixture_sql_value (uri, sql);
    ck_assert_msg (strcmp (value, expected) == 0, "%s: \"%s\", expected \"%s\"",
                   sql, value, expected);
    free (value);
}

long
cw_fixture_db_refuse (const char *uri, bool refuse)
{
    //  The name from the URI: while refused, the database answers nothing
    const char *scheme = strstr (uri, "://");
    const char *slash = strchr (scheme ? scheme + 3 : uri, '/');
    ck_assert_msg (slash != NULL, "no database name in the URI");
    char *name = strndup (slash + 1, strcspn (slash + 1, "?"));
    char *alter = zsys_sprintf ("ALTER DATABASE %s ALLOW_CONNECTIONS %s",
                                name, refuse ? "false" : "true");
    cw_fixture_sql_ok (cw_test_pguri (), alter);
    long terminated = 0;
    if (refuse) {
        char *end = zsys_sprintf (
            "SELECT count (pg_terminate_backend (pid)) FROM pg_stat_activity"
            " WHERE datname = '%s'", name);
        terminated = cw_fixture_sql_count (cw_test_pguri (), end);
        zstr_free (&end);
    }
    zstr_free (&alter);
    free (name);
    return terminated;
}

void
cw_fixture_migrate_islands (const char *dir, const char *uri,
                            const char *const islands[])
{
    assert (islands);
    cw_fixture_migrate (dir, uri, "roles", NULL);
    for (size_t index = 0; islands[index]; index++) {
        char *role = zsys_sprintf ("cw_%s_owner", islands[index]);
        char *owner = cw_test_uri_as (uri, role);
        cw_fixture_migrate (dir, owner, "apply", islands[index]);
        free (owner);
        zstr_free (&role);
    }
}

void
cw_fixture_cert_save (const char *dir, zcert_t *cert, const char *subdir,
                      const char *name)
{
    assert (dir);
    assert (cert);
    assert (subdir);
    assert (name);
    char *path = zsys_sprintf ("%s/%s", dir, subdir);
    mkdir (path, 0700);
    char error[256];
    ck_assert_msg (
        cw_curve_cert_save (cert, path, name, false, error, sizeof (error)) == 0,
        "%s", error);
    zstr_free (&path);
}

//  Appends list (NULL-terminated, may be NULL) to envp after *count_p.
static void
s_env_append (const char **envp, size_t *count_p, const char *const list[])
{
    for (size_t index = 0; list && list[index]; index++) {
        ck_assert_uint_lt (*count_p, CW_FIXTURE_ENV_MAX - 1);
        envp[(*count_p)++] = list[index];
    }
    envp[*count_p] = NULL;
}

pid_t
cw_fixture_broker_start (const char *dir, const char *uri,
                         const char *endpoint_name, const char *log_name,
                         const char *const settings[],
                         const char *const extra[], int wait_msec,
                         char **endpoint_p)
{
    assert (dir);
    assert (uri);
    assert (endpoint_name);
    assert (log_name);
    assert (endpoint_p);
    char *uri_path = zsys_sprintf ("%s/broker-uri", dir);
    char *broker_uri = cw_test_uri_as (uri, "cw_broker");
    cw_fixture_write (uri_path, broker_uri);
    free (broker_uri);
    char *endpoint_file = zsys_sprintf ("%s/%s", dir, endpoint_name);
    unlink (endpoint_file);
    char *env[3] = {
        zsys_sprintf ("CW_BROKER_DB_URI_FILE=%s", uri_path),
        zsys_sprintf ("CW_BROKER_SERVER_CERT_FILE=%s/server/broker.secret",
                      dir),
        zsys_sprintf ("CW_BROKER_SERVER_PEERS=%s/peers", dir)};
    const char *envp[CW_FIXTURE_ENV_MAX] = {
        env[0], env[1], env[2], "CW_BROKER_SERVER_BIND=tcp://127.0.0.1:*"};
    size_t count = 4;
    s_env_append (envp, &count, settings);
    s_env_append (envp, &count, extra);
    char *program = cw_test_build_path ("broker/causeway-broker");
    const char *argv[] = {program, "--endpoint-file", endpoint_file, NULL};
    char *log = zsys_sprintf ("%s/%s", dir, log_name);
    pid_t pid = cw_test_spawn (argv, envp, log);
    ck_assert_int_gt (pid, 0);
    *endpoint_p = cw_test_wait_file (endpoint_file, wait_msec);
    ck_assert_msg (*endpoint_p != NULL, "broker did not bind; see %s", log);
    zstr_free (&log);
    free (program);
    for (int index = 0; index < 3; index++)
        zstr_free (&env[index]);
    zstr_free (&endpoint_file);
    zstr_free (&uri_path);
    return pid;
}

void
cw_fixture_sample_config_check (const char *dir, const char *build_relative,
                                const char *etc_relative)
{
    assert (dir);
    assert (build_relative);
    assert (etc_relative);
    char *program = cw_test_build_path (build_relative);
    char *sample_log = zsys_sprintf ("%s/sample", dir);
    const char *sample[] = {program, "--sample-config", NULL};
    ck_assert_int_eq (cw_fixture_run (sample, NULL, sample_log), 0);
    char *etc = cw_test_src_path (etc_relative);
    char *generated = cw_fixture_slurp (sample_log);
    char *committed = cw_fixture_slurp (etc);
    ck_assert_ptr_nonnull (generated);
    ck_assert_ptr_nonnull (committed);
    const char *name = strrchr (build_relative, '/');
    ck_assert_msg (streq (generated, committed),
                   "%s is stale: regenerate it with %s --sample-config",
                   etc_relative, name ? name + 1 : build_relative);
    free (generated);
    free (committed);
    free (etc);
    zstr_free (&sample_log);
    free (program);
}
