/*  =========================================================================
    cw_fixture - integration-test fixtures shared by the suites that run
    real Causeway processes (check_broker, check_call, check_pipeline,
    check_relay, check_worker): a database migrated by causeway-migrate,
    CURVE certificates in a temp dir, causeway-broker started on a port
    chosen at run time, sample configs compared with etc/

    Every helper fails the calling test (Check assertions) when it cannot
    do its job; call them only inside a test or a checked fixture.
    =========================================================================
*/
#ifndef CW_FIXTURE_H_INCLUDED
#define CW_FIXTURE_H_INCLUDED

#include <czmq.h>
#include <sys/types.h>

//  Writes text to path, mode 0600.
void
    cw_fixture_write (const char *path, const char *text);

//  Reads a whole file into a fresh string; NULL if unreadable or empty.
//  Caller owns return value and must free it when done.
char *
    cw_fixture_slurp (const char *path);

//  Runs argv (extra environment envp, output appended to log) to the end;
//  returns its exit code, or -1 if it did not exit normally.
int
    cw_fixture_run (const char *const argv[], const char *const envp[],
                    const char *log);

//  Runs `causeway-migrate command [--island island]` against uri (the URI
//  goes through dir/migrate-uri, 0600; output to dir/migrate.log); the
//  command must exit 0.
void
    cw_fixture_migrate (const char *dir, const char *uri, const char *command,
                        const char *island);

//  Creates the roles on uri, then applies each island of the NULL-
//  terminated list as its owner role cw_<island>_owner.
void
    cw_fixture_migrate_islands (const char *dir, const char *uri,
                                const char *const islands[]);

//  SQL on uri (cw_test_sql), failing the test with the query and the
//  error when it fails.
void
    cw_fixture_sql_ok (const char *uri, const char *sql);

//  The one value of a query as text (caller frees); fails the test when
//  there is none (no row, SQL NULL, or an error).
char *
    cw_fixture_sql_value (const char *uri, const char *sql);

//  The one value of a query as a number (a count(*) and the like).
long
    cw_fixture_sql_count (const char *uri, const char *sql);

//  Fails the test unless the one value of a query is expected.
void
    cw_fixture_sql_eq (const char *uri, const char *sql, const char *expected);

//  Database down and back, as a restart or failover looks to a client:
//  with refuse, the database of uri takes no new connection
//  (ALLOW_CONNECTIONS false, set from the cluster's maintenance database)
//  and every connection to it is terminated; returns how many were.
//  Without, connections are taken again; returns 0.
long
    cw_fixture_db_refuse (const char *uri, bool refuse);

//  Saves cert as dir/subdir/name{,.secret} (subdir made 0700 if missing).
void
    cw_fixture_cert_save (const char *dir, zcert_t *cert, const char *subdir,
                          const char *name);

//  Starts causeway-broker on tcp://127.0.0.1:* against uri as role
//  cw_broker (URI in dir/broker-uri), with certificate
//  dir/server/broker.secret and peers dir/peers, then NAME=value settings
//  (NULL-terminated, may be NULL) and extra (the same; later entries win).
//  The endpoint file is dir/endpoint_name (removed first), the log
//  dir/log_name. Returns the pid and sets *endpoint_p to the bound endpoint
//  (caller frees). Fails the test if the broker does not bind in
//  wait_msec.
pid_t
    cw_fixture_broker_start (const char *dir, const char *uri,
                             const char *endpoint_name, const char *log_name,
                             const char *const settings[],
                             const char *const extra[], int wait_msec,
                             char **endpoint_p);

//  Runs build_relative (a program) with --sample-config in dir and checks
//  it exits 0 and prints exactly the file etc_relative of the source tree.
void
    cw_fixture_sample_config_check (const char *dir, const char *build_relative,
                                    const char *etc_relative);

#endif
