/*  =========================================================================
    check_sql_schema - the two islands' migrations through the real
    causeway-migrate program: apply from empty, no-op re-run, checksum
    refusal, concurrent runners, roles and grants, the audit hash chain,
    and the claim query's index at a million jobs
    =========================================================================
*/
#include "cw_pg.h"
#include "cw_fixture.h"
#include "cw_test.h"

#include <check.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIGRATE_TIMEOUT_MSEC 60000
#define ERP_MW_FILES "12"       //  sql/erp_mw/*.sql
#define SHOP_FILES "4"          //  sql/shop/*.sql

static char *s_dir;             //  Private temporary directory of a test

static void
s_setup (void)
{
    s_dir = cw_test_tmpdir ("sql_schema");
}

static void
s_teardown (void)
{
    cw_test_tmpdir_destroy (&s_dir);
}

static char *
s_path (const char *name)
{
    size_t size = strlen (s_dir) + strlen (name) + 2;
    char *path = (char *) malloc (size);
    ck_assert_ptr_nonnull (path);
    snprintf (path, size, "%s/%s", s_dir, name);
    return path;
}

static void
s_write (const char *path, const char *text, const char *mode)
{
    FILE *file = fopen (path, mode);
    ck_assert_ptr_nonnull (file);
    fputs (text, file);
    fclose (file);
}

//  Whole content of a file (caller frees).
static char *
s_read (const char *path)
{
    FILE *file = fopen (path, "r");
    ck_assert_msg (file != NULL, "cannot open %s", path);
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    char buffer[4096];
    size_t length;
    while ((length = fread (buffer, 1, sizeof (buffer), file)) > 0)
        fwrite (buffer, 1, length, stream);
    fclose (file);
    fclose (stream);
    return text;
}

//  Starts causeway-migrate with the URI in a 0600 file; does not wait.
static pid_t
s_migrate_start (const char *uri, const char *command, const char *island,
                 const char *sql_dir, const char *log_name)
{
    static int counter = 0;
    char name[64];
    snprintf (name, sizeof (name), "uri-%d", ++counter);
    char *uri_path = s_path (name);
    s_write (uri_path, uri, "w");
    ck_assert_int_eq (chmod (uri_path, 0600), 0);
    char env_uri[1024];
    snprintf (env_uri, sizeof (env_uri), "CW_DB_URI_FILE=%s", uri_path);
    free (uri_path);
    char *program = cw_test_build_path ("migrate/causeway-migrate");
    char *default_sql = cw_test_src_path ("sql");
    const char *argv[8] = { program, command };
    int argc = 2;
    if (island) {
        argv[argc++] = "--island";
        argv[argc++] = island;
    }
    argv[argc++] = "--sql-dir";
    argv[argc++] = sql_dir ? sql_dir : default_sql;
    argv[argc] = NULL;
    const char *envp[] = { env_uri, NULL };
    char *log_path = s_path (log_name);
    unlink (log_path);
    pid_t pid = cw_test_spawn (argv, envp, log_path);
    ck_assert_int_gt (pid, 0);
    free (log_path);
    free (program);
    free (default_sql);
    return pid;
}

//  Waits for a child to exit on its own; returns its exit code.
static int
s_migrate_wait (pid_t pid)
{
    long long deadline = cw_test_now_msec () + MIGRATE_TIMEOUT_MSEC;
    int status = 0;
    while (waitpid (pid, &status, WNOHANG) == 0) {
        if (cw_test_now_msec () > deadline) {
            cw_test_stop (pid, 1000);
            ck_abort_msg ("causeway-migrate did not finish");
        }
        usleep (10000);
    }
    ck_assert (WIFEXITED (status));
    return WEXITSTATUS (status);
}

//  Runs causeway-migrate; returns its exit code, its output in *log_p.
static int
s_migrate (const char *uri, const char *command, const char *island,
           const char *sql_dir, char **log_p)
{
    pid_t pid = s_migrate_start (uri, command, island, sql_dir, "run.log");
    int code = s_migrate_wait (pid);
    char *log_path = s_path ("run.log");
    char *log = s_read (log_path);
    free (log_path);
    if (log_p)
        *log_p = log;
    else
        free (log);
    return code;
}

static void
s_migrate_ok (const char *uri, const char *command, const char *island)
{
    char *log = NULL;
    int code = s_migrate (uri, command, island, NULL, &log);
    ck_assert_msg (code == 0, "%s %s: exit %d: %s", command,
                   island ? island : "", code, log);
    free (log);
}

//  A fresh database with roles, schemas and both islands migrated.
static char *
s_islands_new (void)
{
    char *uri = cw_test_db_new ("sql_schema");
    s_migrate_ok (uri, "roles", NULL);
    char *erp_owner = cw_test_uri_as (uri, "cw_erp_mw_owner");
    char *shop_owner = cw_test_uri_as (uri, "cw_shop_owner");
    s_migrate_ok (erp_owner, "apply", "erp_mw");
    s_migrate_ok (shop_owner, "apply", "shop");
    free (erp_owner);
    free (shop_owner);
    return uri;
}

static void
s_sql_denied (const char *uri, const char *sql, const char *why)
{
    char error[1024] = "";
    ck_assert_msg (cw_test_sql (uri, sql, error, sizeof (error)) == -1,
                   "%s succeeded", sql);
    ck_assert_msg (strstr (error, why) != NULL, "%s: %s", sql, error);
}

static void
s_copy (const char *from, const char *to)
{
    char *text = s_read (from);
    s_write (to, text, "w");
    free (text);
}

START_TEST (test_apply_from_empty_then_noop)
{
    char *uri = cw_test_db_new ("sql_schema");
    char *log = NULL;
    ck_assert_int_eq (s_migrate (uri, "roles", NULL, NULL, &log), 0);
    ck_assert_ptr_nonnull (strstr (log, "schemas erp_mw and shop exist"));
    free (log);
    char *erp_owner = cw_test_uri_as (uri, "cw_erp_mw_owner");
    char *shop_owner = cw_test_uri_as (uri, "cw_shop_owner");
    ck_assert_int_eq (s_migrate (erp_owner, "status", "erp_mw", NULL, &log),
                      0);
    ck_assert_ptr_nonnull (strstr (log, "0 applied, " ERP_MW_FILES
                                        " pending"));
    free (log);
    ck_assert_int_eq (s_migrate (erp_owner, "apply", "erp_mw", NULL, &log),
                      0);
    ck_assert_ptr_nonnull (strstr (log, "applied 001_queue.sql"));
    ck_assert_ptr_nonnull (strstr (log, "applied " ERP_MW_FILES " of "
                                        ERP_MW_FILES));
    free (log);
    ck_assert_int_eq (s_migrate (shop_owner, "apply", "shop", NULL, &log), 0);
    ck_assert_ptr_nonnull (strstr (log, "applied " SHOP_FILES " of "
                                        SHOP_FILES));
    free (log);

    //  Again: nothing changes and it says so.
    ck_assert_int_eq (s_migrate (uri, "roles", NULL, NULL, &log), 0);
    ck_assert_ptr_nonnull (strstr (log, "0 created"));
    free (log);
    ck_assert_int_eq (s_migrate (erp_owner, "apply", "erp_mw", NULL, &log),
                      0);
    ck_assert_ptr_nonnull (strstr (log, "nothing to do, all " ERP_MW_FILES
                                        " migrations already applied"));
    free (log);
    ck_assert_int_eq (s_migrate (shop_owner, "apply", "shop", NULL, &log), 0);
    ck_assert_ptr_nonnull (strstr (log, "nothing to do"));
    free (log);
    ck_assert_int_eq (s_migrate (shop_owner, "status", "shop", NULL, &log), 0);
    ck_assert_ptr_nonnull (strstr (log, SHOP_FILES " applied, 0 pending, 0 "
                                        "changed, 0 missing"));
    free (log);
    cw_fixture_sql_eq (uri, "SELECT count(*) FROM erp_mw.schema_migrations",
                       ERP_MW_FILES);
    cw_fixture_sql_eq (uri, "SELECT count(*) FROM shop.schema_migrations",
                       SHOP_FILES);
    //  Every table belongs to its island's owner.
    cw_fixture_sql_eq (uri,
                       "SELECT string_agg (DISTINCT tableowner, ',') FROM "
                       "pg_tables WHERE schemaname = 'erp_mw'",
                       "cw_erp_mw_owner");
    cw_fixture_sql_eq (uri,
                       "SELECT string_agg (DISTINCT tableowner, ',') FROM "
                       "pg_tables WHERE schemaname = 'shop'",
                       "cw_shop_owner");
    free (erp_owner);
    free (shop_owner);
    cw_test_db_destroy (&uri);
}
END_TEST

START_TEST (test_changed_checksum_refused)
{
    char *uri = cw_test_db_new ("sql_schema");
    s_migrate_ok (uri, "roles", NULL);
    char *owner = cw_test_uri_as (uri, "cw_erp_mw_owner");
    //  A private copy of sql/erp_mw to edit.
    char *sql_dir = s_path ("sql");
    char *island_dir = s_path ("sql/erp_mw");
    ck_assert_int_eq (mkdir (sql_dir, 0700), 0);
    ck_assert_int_eq (mkdir (island_dir, 0700), 0);
    const char *files[] = { "001_queue.sql", "002_audit_log.sql",
                            "003_retention.sql", "004_grants.sql", NULL };
    char from[4200], to[4096];
    for (int index = 0; files[index]; index++) {
        char relative[256];
        snprintf (relative, sizeof (relative), "sql/erp_mw/%s",
                  files[index]);
        char *source = cw_test_src_path (relative);
        snprintf (to, sizeof (to), "%s/%s", island_dir, files[index]);
        s_copy (source, to);
        free (source);
    }
    char *log = NULL;
    ck_assert_int_eq (s_migrate (owner, "apply", "erp_mw", sql_dir, &log), 0);
    free (log);

    //  An applied file changes: refused, and status says which.
    snprintf (to, sizeof (to), "%s/002_audit_log.sql", island_dir);
    snprintf (from, sizeof (from), "%s.orig", to);
    s_copy (to, from);
    s_write (to, "-- an innocent comment\n", "a");
    ck_assert_int_eq (s_migrate (owner, "apply", "erp_mw", sql_dir, &log), 1);
    ck_assert_ptr_nonnull (strstr (log, "002_audit_log.sql"));
    ck_assert_ptr_nonnull (strstr (log, "applied with another content"));
    ck_assert_ptr_nonnull (strstr (log, "forward-only"));
    free (log);
    ck_assert_int_eq (s_migrate (owner, "status", "erp_mw", sql_dir, &log), 1);
    ck_assert_ptr_nonnull (strstr (log, "CHANGED  002_audit_log.sql"));
    free (log);
    s_copy (from, to);
    unlink (from);

    //  A new file applies; a broken one keeps nothing and is not recorded.
    snprintf (to, sizeof (to), "%s/005_extra.sql", island_dir);
    s_write (to, "CREATE TABLE erp_mw.extra (id int);\n", "w");
    snprintf (to, sizeof (to), "%s/006_broken.sql", island_dir);
    s_write (to, "CREATE TABLE erp_mw.half (id int);\nSELECT 1/0;\n", "w");
    ck_assert_int_eq (s_migrate (owner, "apply", "erp_mw", sql_dir, &log), 1);
    ck_assert_ptr_nonnull (strstr (log, "applied 005_extra.sql"));
    ck_assert_ptr_nonnull (strstr (log, "could not apply \"erp_mw/"
                                        "006_broken.sql\": division by zero"));
    free (log);
    cw_fixture_sql_eq (uri,
                       "SELECT string_agg (version::text, ',' ORDER BY version)"
                       " FROM erp_mw.schema_migrations",
                       "1,2,3,4,5");
    cw_fixture_sql_eq (uri, "SELECT to_regclass ('erp_mw.half') IS NULL", "t");

    //  A file that ends the runner's transaction (ROLLBACK here) is not
    //  recorded, even when the owner's own search_path would let the
    //  record land after it.
    unlink (to);
    cw_fixture_sql_ok (uri, "DO $$ BEGIN EXECUTE format ('ALTER ROLE "
                            "cw_erp_mw_owner IN DATABASE %I SET search_path "
                            "= erp_mw', current_database ()); END $$");
    snprintf (to, sizeof (to), "%s/006_rollback.sql", island_dir);
    s_write (to,
             "CREATE TABLE erp_mw.lost (id int);\nROLLBACK;\n"
             "CREATE TABLE erp_mw.after_rollback (id int);\n",
             "w");
    ck_assert_int_eq (s_migrate (owner, "apply", "erp_mw", sql_dir, &log), 1);
    ck_assert_ptr_nonnull (strstr (log, "006_rollback.sql\": it ended the "
                                        "transaction"));
    free (log);
    cw_fixture_sql_eq (uri,
                       "SELECT string_agg (version::text, ',' ORDER BY version)"
                       " FROM erp_mw.schema_migrations",
                       "1,2,3,4,5");

    //  A file numbered below the newest applied one (added late, as a
    //  merge can) would run out of order: refused, naming it; before, it
    //  was applied after migrations that never saw it.
    unlink (to);
    snprintf (to, sizeof (to), "%s/009_nine.sql", island_dir);
    s_write (to, "CREATE TABLE erp_mw.nine (id int);\n", "w");
    ck_assert_int_eq (s_migrate (owner, "apply", "erp_mw", sql_dir, &log), 0);
    free (log);
    char late[4096];
    snprintf (late, sizeof (late), "%s/007_late.sql", island_dir);
    s_write (late, "CREATE TABLE erp_mw.late (id int);\n", "w");
    ck_assert_int_eq (s_migrate (owner, "apply", "erp_mw", sql_dir, &log), 1);
    ck_assert_msg (strstr (log, "007_late.sql\": version 7 is below the "
                                "newest applied one (9)"), "%s", log);
    free (log);
    cw_fixture_sql_eq (uri,
                       "SELECT string_agg (version::text, ',' ORDER BY version)"
                       " FROM erp_mw.schema_migrations",
                       "1,2,3,4,5,9");
    cw_fixture_sql_eq (uri, "SELECT to_regclass ('erp_mw.late') IS NULL", "t");
    unlink (late);

    //  A badly named file is refused by name.
    unlink (to);
    snprintf (to, sizeof (to), "%s/7-Bad.sql", island_dir);
    s_write (to, "SELECT 1;\n", "w");
    ck_assert_int_eq (s_migrate (owner, "apply", "erp_mw", sql_dir, &log), 1);
    ck_assert_ptr_nonnull (strstr (log, "7-Bad.sql\": its name must be "
                                        "NNN_description.sql"));
    free (log);
    free (island_dir);
    free (sql_dir);
    free (owner);
    cw_test_db_destroy (&uri);
}
END_TEST

START_TEST (test_concurrent_apply)
{
    char *uri = cw_test_db_new ("sql_schema");
    s_migrate_ok (uri, "roles", NULL);
    char *owner = cw_test_uri_as (uri, "cw_erp_mw_owner");
    pid_t first = s_migrate_start (owner, "apply", "erp_mw", NULL, "a.log");
    pid_t second = s_migrate_start (owner, "apply", "erp_mw", NULL, "b.log");
    ck_assert_int_eq (s_migrate_wait (first), 0);
    ck_assert_int_eq (s_migrate_wait (second), 0);
    char *path_a = s_path ("a.log");
    char *path_b = s_path ("b.log");
    char *log_a = s_read (path_a);
    char *log_b = s_read (path_b);
    //  Each file was applied by exactly one of them.
    const char *files[] = { "applied 001_queue.sql", "applied 002_audit_log",
                            "applied 003_retention", "applied 004_grants",
                            NULL };
    for (int index = 0; files[index]; index++)
        ck_assert_msg ((strstr (log_a, files[index]) != NULL)
                           != (strstr (log_b, files[index]) != NULL),
                       "%s: a=[%s] b=[%s]", files[index], log_a, log_b);
    cw_fixture_sql_eq (uri, "SELECT count(*) FROM erp_mw.schema_migrations",
                       ERP_MW_FILES);
    free (log_a);
    free (log_b);
    free (path_a);
    free (path_b);
    free (owner);
    cw_test_db_destroy (&uri);
}
END_TEST

START_TEST (test_refusals_and_usage)
{
    char *uri = cw_test_db_new ("sql_schema");
    char *log = NULL;
    //  Schema missing: roles must run first.
    ck_assert_int_eq (s_migrate (uri, "apply", "erp_mw", NULL, &log), 1);
    ck_assert_ptr_nonnull (strstr (log, "schema \"erp_mw\" does not exist"));
    free (log);
    s_migrate_ok (uri, "roles", NULL);
    //  Islands never cross: the erp_mw owner cannot migrate shop.
    char *erp_owner = cw_test_uri_as (uri, "cw_erp_mw_owner");
    ck_assert_int_eq (s_migrate (erp_owner, "apply", "shop", NULL, &log), 1);
    ck_assert_ptr_nonnull (strstr (log, "permission denied to set role"));
    free (log);
    //  A program role cannot create roles.
    char *broker = cw_test_uri_as (uri, "cw_broker");
    ck_assert_int_eq (s_migrate (broker, "roles", NULL, NULL, &log), 1);
    ck_assert_ptr_nonnull (strstr (log, "could not create roles"));
    free (log);

    //  Usage errors exit 2 and name the problem.
    ck_assert_int_eq (s_migrate (uri, "apply", NULL, NULL, &log), 2);
    ck_assert_ptr_nonnull (strstr (log, "--island is required"));
    free (log);
    ck_assert_int_eq (s_migrate (uri, "apply", "crm", NULL, &log), 2);
    ck_assert_ptr_nonnull (strstr (log, "invalid --island \"crm\""));
    free (log);
    ck_assert_int_eq (s_migrate (uri, "upgrade", NULL, NULL, &log), 2);
    ck_assert_ptr_nonnull (strstr (log, "unknown command \"upgrade\""));
    free (log);
    ck_assert_int_eq (s_migrate (uri, "status", "erp_mw", "/nonexistent",
                                 &log),
                      1);
    ck_assert_ptr_nonnull (strstr (log, "could not open migration directory"));
    free (log);

    //  The URI file must be private; without one there is no URI.
    char *program = cw_test_build_path ("migrate/causeway-migrate");
    char *uri_path = s_path ("open-uri");
    s_write (uri_path, uri, "w");
    ck_assert_int_eq (chmod (uri_path, 0644), 0);
    char env_uri[1024];
    snprintf (env_uri, sizeof (env_uri), "CW_DB_URI_FILE=%s", uri_path);
    const char *argv[] = { program, "roles", NULL };
    const char *envp[] = { env_uri, NULL };
    char *log_path = s_path ("open.log");
    ck_assert_int_eq (s_migrate_wait (cw_test_spawn (argv, envp, log_path)),
                      2);
    log = s_read (log_path);
    ck_assert_ptr_nonnull (strstr (log, "readable or writable by group"));
    ck_assert_ptr_null (strstr (log, uri));
    free (log);
    unlink (log_path);
    ck_assert_int_eq (s_migrate_wait (cw_test_spawn (argv, NULL, log_path)),
                      2);
    log = s_read (log_path);
    ck_assert_ptr_nonnull (strstr (log, "no database URI"));
    free (log);
    free (log_path);
    free (uri_path);
    free (program);
    free (erp_owner);
    free (broker);
    cw_test_db_destroy (&uri);
}
END_TEST

START_TEST (test_grants)
{
    char *uri = s_islands_new ();
    char *relay = cw_test_uri_as (uri, "cw_relay_shop");
    char *broker = cw_test_uri_as (uri, "cw_broker");
    char *webshop = cw_test_uri_as (uri, "cw_webshop");
    char *report = cw_test_uri_as (uri, "cw_report");
    cw_fixture_sql_ok (webshop,
                       "INSERT INTO shop.customers (tenant, customer_id, "
                       "email, name) VALUES ('t1', 'c1', 'a@example.org', "
                       "'Ann')");
    cw_fixture_sql_ok (webshop, "INSERT INTO shop.outbox (event_type, tenant, "
                                "idempotency_key, payload) VALUES "
                                "('customer.upsert.requested.v1', 't1', "
                                "'customer:t1:c1:1', '{}')");

    //  The relay: shop.outbox read + published_at and rejected_reason,
    //  nothing else.
    cw_fixture_sql_ok (relay,
                       "SELECT id FROM shop.outbox WHERE published_at IS NULL "
                       "ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED");
    cw_fixture_sql_ok (relay, "UPDATE shop.outbox SET published_at = now ()");
    cw_fixture_sql_ok (relay, "UPDATE shop.outbox SET rejected_reason = 'x'");
    s_sql_denied (relay, "SELECT * FROM erp_mw.jobs", "permission denied");
    s_sql_denied (relay, "SELECT * FROM shop.customers", "permission denied");
    s_sql_denied (relay, "UPDATE shop.outbox SET payload = '{}'",
                  "permission denied");
    s_sql_denied (relay, "INSERT INTO shop.outbox (event_type, tenant, "
                         "idempotency_key, payload) VALUES ('x', 't', 'k', "
                         "'{}')",
                  "permission denied");
    s_sql_denied (relay, "DELETE FROM shop.outbox", "permission denied");

    //  The broker: erp_mw DML, no DDL, no shop at all.
    cw_fixture_sql_ok (broker,
                       "INSERT INTO erp_mw.jobs (flow, tenant, "
                       "idempotency_key, payload) VALUES ('customer', 't1', "
                       "'customer:t1:c1:1', '{}')");
    cw_fixture_sql_ok (broker, "UPDATE erp_mw.jobs SET attempts = 1");
    cw_fixture_sql_ok (broker,
                       "INSERT INTO erp_mw.inbox (idempotency_key, source, "
                       "event_type, expires_at) VALUES ('k', 'shop', 'x', "
                       "now () + interval '30 days')");
    cw_fixture_sql_ok (broker, "SELECT erp_mw.purge_finished ('1 day', 100)");
    s_sql_denied (broker, "SELECT * FROM shop.outbox", "permission denied");
    s_sql_denied (broker, "SELECT * FROM shop.customers", "permission denied");
    s_sql_denied (broker, "SELECT * FROM shop.orders", "permission denied");
    s_sql_denied (broker, "CREATE TABLE erp_mw.mine (id int)",
                  "permission denied");
    s_sql_denied (broker, "DROP TABLE erp_mw.jobs", "must be owner");
    s_sql_denied (broker, "DELETE FROM erp_mw.schema_migrations",
                  "permission denied");

    //  The webshop: its own island only.
    s_sql_denied (webshop, "SELECT * FROM erp_mw.jobs", "permission denied");

    //  Reporting reads both islands and writes nothing.
    cw_fixture_sql_eq (report, "SELECT count(*) FROM erp_mw.jobs", "1");
    cw_fixture_sql_eq (report, "SELECT count(*) FROM shop.customers", "1");
    s_sql_denied (report, "INSERT INTO erp_mw.jobs (flow, tenant, "
                          "idempotency_key, payload) VALUES ('x', 't', 'k2', "
                          "'{}')",
                  "permission denied");
    s_sql_denied (report, "INSERT INTO shop.inbox (idempotency_key, "
                          "event_type, response_status) VALUES ('k', 'x', "
                          "200)",
                  "permission denied");
    s_sql_denied (report, "UPDATE shop.orders SET status = 'x'",
                  "permission denied");
    free (relay);
    free (broker);
    free (webshop);
    free (report);
    cw_test_db_destroy (&uri);
}
END_TEST

START_TEST (test_audit_log_chain)
{
    char *uri = s_islands_new ();
    char *broker = cw_test_uri_as (uri, "cw_broker");
    char *owner = cw_test_uri_as (uri, "cw_erp_mw_owner");
    for (int index = 0; index < 3; index++)
        cw_fixture_sql_ok (broker,
                           "INSERT INTO erp_mw.audit_log (actor, action, "
                           "target, correlation_id, detail) VALUES "
                           "('worker-1', 'erp.call', 'order:t1:o1', 'c-1', "
                           "'{\"status\": 201}')");
    cw_fixture_sql_eq (broker,
                       "SELECT checked || ':' || coalesce "
                       "(first_broken::text, 'none') FROM "
                       "erp_mw.audit_verify ()",
                       "3:none");
    //  Each row links to the one before.
    cw_fixture_sql_eq (uri,
                       "SELECT bool_and (a.prev_hash = b.hash) FROM "
                       "erp_mw.audit_log a JOIN erp_mw.audit_log b ON b.seq = "
                       "a.seq - 1",
                       "t");
    //  Append-only: no grant, and the trigger even for a superuser.
    s_sql_denied (broker, "UPDATE erp_mw.audit_log SET actor = 'x'",
                  "permission denied");
    s_sql_denied (broker, "DELETE FROM erp_mw.audit_log",
                  "permission denied");
    s_sql_denied (broker, "TRUNCATE erp_mw.audit_log", "permission denied");
    s_sql_denied (uri, "UPDATE erp_mw.audit_log SET actor = 'x'",
                  "append-only");
    s_sql_denied (uri, "DELETE FROM erp_mw.audit_log", "append-only");
    s_sql_denied (uri, "TRUNCATE erp_mw.audit_log", "append-only");
    //  A tampered row (only the owner can) breaks the chain right there.
    cw_fixture_sql_ok (owner,
                       "UPDATE erp_mw.audit_log SET detail = '{\"status\": "
                       "500}' WHERE seq = 2");
    cw_fixture_sql_eq (broker,
                       "SELECT checked || ':' || coalesce "
                       "(first_broken::text, 'none') FROM "
                       "erp_mw.audit_verify ()",
                       "2:2");
    free (broker);
    free (owner);
    cw_test_db_destroy (&uri);
}
END_TEST

//  The broker's claim, as documented in docs/database.md.
#define CLAIM_SQL                                                            \
    "UPDATE erp_mw.jobs SET state = 'leased', lease_owner = $1,"             \
    " lease_expires_at = now () + $2::interval"                              \
    " WHERE id IN (SELECT id FROM erp_mw.jobs"                               \
    " WHERE state = 'ready' AND next_run_at <= now ()"                       \
    " ORDER BY next_run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)"             \
    " RETURNING id, flow, idempotency_key, payload"

START_TEST (test_claim_index_at_a_million)
{
    char *uri = s_islands_new ();
    long long started = cw_test_now_msec ();
    //  900,000 ready jobs due over the last hour, 100,000 done a month ago.
    cw_fixture_sql_ok (uri,
                       "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                       " payload, state, next_run_at, finished_at)"
                       " SELECT 'order', 't1', 'order:t1:' || g || ':1',"
                       " '{\"lines\": 3}', CASE WHEN g % 10 = 0 THEN 'done'"
                       " ELSE 'ready' END,"
                       " now () - interval '1 hour' + g * interval '3 ms',"
                       " CASE WHEN g % 10 = 0 THEN now () - interval '30 days'"
                       " END FROM generate_series (1, 1000000) g");
    cw_fixture_sql_ok (uri, "ANALYZE erp_mw.jobs");
    long long loaded = cw_test_now_msec ();

    char *broker = cw_test_uri_as (uri, "cw_broker");
    cw_pg_t *pg = cw_pg_new (broker);
    ck_assert_int_eq (cw_pg_connect (pg), 0);
    //  The plan of the whole claim: the partial index, no Seq Scan.
    cw_pg_rows_t *rows = NULL;
    const char *plan_values[] = { "broker-1", "30 seconds", "100" };
    ck_assert_int_eq (cw_pg_exec_sql (pg, "EXPLAIN (FORMAT JSON) " CLAIM_SQL,
                                      3, plan_values, &rows),
                      0);
    const char *plan = cw_pg_rows_value (rows, 0, 0);
    ck_assert_msg (strstr (plan, "\"Index Name\": \"jobs_ready_id_idx\""),
                   "%s", plan);
    ck_assert_msg (!strstr (plan, "\"Seq Scan\""), "%s", plan);
    cw_pg_rows_destroy (&rows);

    //  The claim itself, as the broker, twice: disjoint batches.
    ck_assert_int_eq (cw_pg_prepare (pg, "claim", CLAIM_SQL, 3), 0);
    long long claim_started = cw_test_now_msec ();
    ck_assert_int_eq (cw_pg_exec (pg, "claim", 3, plan_values, &rows), 0);
    long long claim_msec = cw_test_now_msec () - claim_started;
    ck_assert_int_eq (cw_pg_rows_count (rows), 100);
    cw_pg_rows_destroy (&rows);
    ck_assert_int_eq (cw_pg_exec (pg, "claim", 3, plan_values, &rows), 0);
    ck_assert_int_eq (cw_pg_rows_count (rows), 100);
    cw_pg_rows_destroy (&rows);
    cw_fixture_sql_eq (uri,
                       "SELECT count(DISTINCT id) FROM erp_mw.jobs WHERE "
                       "state = 'leased' AND lease_owner = 'broker-1'",
                       "200");

    //  Retention: one batch per call, until nothing is left; a job's
    //  attempts go with it (job_attempts has no foreign key: migration 008)
    cw_fixture_sql_ok (
        uri, "INSERT INTO erp_mw.job_attempts (job_id, attempt, worker,"
             " outcome, started_at) SELECT id, 1, 'w1', 'ok', now ()"
             " FROM erp_mw.jobs WHERE state = 'done'");
    long long purge_started = cw_test_now_msec ();
    const char *purge_values[] = { "7 days", "50000" };
    ck_assert_int_eq (cw_pg_exec_sql (pg, "SELECT erp_mw.purge_finished "
                                          "($1::interval, $2::int)",
                                      2, purge_values, &rows),
                      0);
    long long purge_msec = cw_test_now_msec () - purge_started;
    ck_assert_str_eq (cw_pg_rows_value (rows, 0, 0), "50000");
    cw_pg_rows_destroy (&rows);
    cw_fixture_sql_eq (
        uri, "SELECT count(*) FROM erp_mw.jobs WHERE state = 'done'", "50000");
    cw_fixture_sql_eq (uri, "SELECT count(*) FROM erp_mw.job_attempts",
                       "50000");
    cw_fixture_sql_eq (uri,
                       "SELECT count(*) FROM erp_mw.job_attempts a WHERE NOT"
                       " EXISTS (SELECT 1 FROM erp_mw.jobs j WHERE j.id ="
                       " a.job_id)",
                       "0");
    fprintf (stderr,
             "sql_schema: 1,000,000 jobs loaded + analyzed in %lld ms; "
             "claim of 100 in %lld ms; purge of 50,000 done jobs in %lld "
             "ms\n",
             loaded - started, claim_msec, purge_msec);
    cw_pg_destroy (&pg);
    free (broker);
    cw_test_db_destroy (&uri);
}
END_TEST

//  Shared buffers (hit + read) of the whole plan: the first node's.
static long
s_plan_buffers (const char *plan)
{
    const char *hit = strstr (plan, "\"Shared Hit Blocks\": ");
    const char *read = strstr (plan, "\"Shared Read Blocks\": ");
    ck_assert_msg (hit && read, "no buffers in the plan");
    return strtol (hit + strlen ("\"Shared Hit Blocks\": "), NULL, 10)
           + strtol (read + strlen ("\"Shared Read Blocks\": "), NULL, 10);
}

//  Jobs of one ordering key commit in the order of their ids
//  (sql/erp_mw/011): while one transaction's insert of key K is
//  uncommitted, another insert of K waits, then draws a larger id. Before,
//  the second insert went through at once; had it drawn the smaller id
//  and committed last, a claim in between would have run the later job
//  first. Jobs without a key, and other keys, never wait.
START_TEST (test_ordering_lock)
{
    char *uri = s_islands_new ();
    PGconn *first = PQconnectdb (uri);
    PGconn *second = PQconnectdb (uri);
    ck_assert_int_eq (PQstatus (first), CONNECTION_OK);
    ck_assert_int_eq (PQstatus (second), CONNECTION_OK);
    const char *insert =
        "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
        " ordering_key, payload) VALUES ('order', 't1', $1, $2, '{}')"
        " RETURNING id";
    PGresult *result = PQexec (first, "BEGIN");
    PQclear (result);
    const char *first_values[] = {"k-1", "t1:K"};
    result = PQexecParams (first, insert, 2, NULL, first_values, NULL, NULL, 0);
    ck_assert_int_eq (PQresultStatus (result), PGRES_TUPLES_OK);
    long first_id = strtol (PQgetvalue (result, 0, 0), NULL, 10);
    PQclear (result);

    //  No key, and another key: not held up
    const char *free_values[][2] = {{"k-2", NULL}, {"k-3", "t1:OTHER-9"}};
    for (int index = 0; index < 2; index++) {
        result = PQexecParams (second, insert, 2, NULL, free_values[index],
                               NULL, NULL, 0);
        ck_assert_int_eq (PQresultStatus (result), PGRES_TUPLES_OK);
        PQclear (result);
    }
    //  The same key waits for the first transaction
    const char *second_values[] = {"k-4", "t1:K"};
    ck_assert_int_eq (PQsendQueryParams (second, insert, 2, NULL,
                                         second_values, NULL, NULL, 0), 1);
    usleep (500 * 1000);
    ck_assert_int_eq (PQconsumeInput (second), 1);
    ck_assert_msg (PQisBusy (second), "the second insert of t1:K did not wait");
    result = PQexec (first, "COMMIT");
    ck_assert_int_eq (PQresultStatus (result), PGRES_COMMAND_OK);
    PQclear (result);
    result = PQgetResult (second);
    ck_assert_int_eq (PQresultStatus (result), PGRES_TUPLES_OK);
    long second_id = strtol (PQgetvalue (result, 0, 0), NULL, 10);
    PQclear (result);
    while ((result = PQgetResult (second)))
        PQclear (result);
    ck_assert_int_gt (second_id, first_id);
    PQfinish (first);
    PQfinish (second);
    cw_test_db_destroy (&uri);
}
END_TEST

START_TEST (test_head_of_line_with_history)
{
    //  The claim's head-of-line check (broker/cw_store.c, s_sql_claim;
    //  s_sql_insert_jobs has the same) looks for earlier unfinished jobs
    //  of the key. Its cost must not grow with the key's finished
    //  history: 200 keys with 1,000 done jobs each, then one ready job
    //  per key; a claim of 100 heads reads a few pages per head. With an
    //  index over every job of a key it visited each done row's heap
    //  page: ~100,000 buffers, 80 ms at 1M rows.
    char *uri = s_islands_new ();
    cw_fixture_sql_ok (uri,
                       "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                       " ordering_key, payload, state, attempts, next_run_at,"
                       " finished_at) SELECT 'order', 't1', 'd-' || g,"
                       " 't1:C-' || g % 200, '{}', 'done', 1,"
                       " now () - interval '2 days', now () - interval '1 day'"
                       " FROM generate_series (1, 200000) g");
    cw_fixture_sql_ok (uri,
                       "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key,"
                       " ordering_key, payload, next_run_at) SELECT 'order',"
                       " 't1', 'r-' || g, 't1:C-' || g, '{}',"
                       " now () - interval '1 hour' FROM generate_series"
                       " (0, 199) g");
    cw_fixture_sql_ok (uri, "VACUUM ANALYZE erp_mw.jobs");
    char *broker = cw_test_uri_as (uri, "cw_broker");
    cw_pg_t *pg = cw_pg_new (broker);
    ck_assert_int_eq (cw_pg_connect (pg), 0);
    cw_pg_rows_t *rows = NULL;
    ck_assert_int_eq (
        cw_pg_exec_sql (
            pg,
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
            " SELECT c.id FROM erp_mw.jobs c"
            "  WHERE c.state = 'ready' AND c.next_run_at <= now ()"
            "    AND c.flow = ANY ('{order}'::text[])"
            "    AND (c.target IS NULL OR c.flow = ANY ('{order}'::text[]))"
            "    AND (c.ordering_key IS NULL OR NOT EXISTS ("
            "         SELECT 1 FROM erp_mw.jobs p"
            "          WHERE p.ordering_key = c.ordering_key AND p.id < c.id"
            "            AND p.state IN ('ready', 'leased', 'parked', 'dead')))"
            "  ORDER BY c.next_run_at, c.id"
            "  LIMIT 100"
            "  FOR UPDATE SKIP LOCKED",
            0, NULL, &rows),
        0);
    const char *plan = cw_pg_rows_value (rows, 0, 0);
    ck_assert_msg (strstr (plan, "\"Actual Rows\": 100"), "not 100 rows");
    long buffers = s_plan_buffers (plan);
    fprintf (stderr,
             "sql_schema: claim of 100 heads with 1,000 done jobs"
             " each: %ld buffers\n",
             buffers);
    ck_assert_msg (buffers < 5000, "%ld buffers", buffers);
    cw_pg_rows_destroy (&rows);
    cw_pg_destroy (&pg);
    free (broker);
    cw_test_db_destroy (&uri);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("sql_schema");
    TCase *migrate = tcase_create ("migrate");
    tcase_set_timeout (migrate, 120);
    tcase_add_checked_fixture (migrate, s_setup, s_teardown);
    tcase_add_test (migrate, test_apply_from_empty_then_noop);
    tcase_add_test (migrate, test_changed_checksum_refused);
    tcase_add_test (migrate, test_concurrent_apply);
    tcase_add_test (migrate, test_refusals_and_usage);
    suite_add_tcase (suite, migrate);
    TCase *grants = tcase_create ("grants");
    tcase_set_timeout (grants, 120);
    tcase_add_checked_fixture (grants, s_setup, s_teardown);
    tcase_add_test (grants, test_grants);
    tcase_add_test (grants, test_audit_log_chain);
    suite_add_tcase (suite, grants);
    TCase *scale = tcase_create ("scale");
    tcase_set_timeout (scale, 300);
    tcase_add_checked_fixture (scale, s_setup, s_teardown);
    tcase_add_test (scale, test_claim_index_at_a_million);
    tcase_add_test (scale, test_head_of_line_with_history);
    tcase_add_test (grants, test_ordering_lock);
    suite_add_tcase (suite, scale);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
