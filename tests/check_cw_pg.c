/*  =========================================================================
    check_cw_pg - connect with retry, prepared statements, transactions,
    SQLSTATE classes and reconnect, against the private PostgreSQL
    =========================================================================
*/
#include "cw_log.h"
#include "cw_pg.h"
#include "cw_test.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

//  A loopback port nobody listens on: bound, read back, closed.
static int
s_closed_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (fd, 0);
    struct sockaddr_in address;
    memset (&address, 0, sizeof (address));
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    ck_assert_int_eq (bind (fd, (struct sockaddr *) &address,
                            sizeof (address)), 0);
    socklen_t length = sizeof (address);
    ck_assert_int_eq (getsockname (fd, (struct sockaddr *) &address, &length),
                      0);
    close (fd);
    return ntohs (address.sin_port);
}

static int
s_count (const char *text, const char *needle)
{
    int count = 0;
    for (const char *found = strstr (text, needle); found;
         found = strstr (found + 1, needle))
        count++;
    return count;
}

static cw_pg_t *
s_connect (const char *uri)
{
    cw_pg_t *pg = cw_pg_new (uri);
    ck_assert_int_eq (cw_pg_connect (pg), 0);
    ck_assert (cw_pg_connected (pg));
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_OK);
    return pg;
}

static char *
s_value (cw_pg_t *pg, const char *sql)
{
    cw_pg_rows_t *rows = NULL;
    ck_assert_msg (cw_pg_exec_sql (pg, sql, 0, NULL, &rows) == 0, "%s: %s",
                   sql, cw_pg_error (pg));
    ck_assert_int_eq (cw_pg_rows_count (rows), 1);
    const char *value = cw_pg_rows_value (rows, 0, 0);
    char *copy = value ? strdup (value) : NULL;
    cw_pg_rows_destroy (&rows);
    return copy;
}

START_TEST (test_classify)
{
    ck_assert_int_eq (cw_pg_classify ("23505"), CW_PG_UNIQUE);
    ck_assert_int_eq (cw_pg_classify ("40001"), CW_PG_SERIALIZATION);
    ck_assert_int_eq (cw_pg_classify ("40P01"), CW_PG_SERIALIZATION);
    ck_assert_int_eq (cw_pg_classify ("08006"), CW_PG_CONNECTION);
    ck_assert_int_eq (cw_pg_classify ("57P01"), CW_PG_CONNECTION);
    ck_assert_int_eq (cw_pg_classify (NULL), CW_PG_CONNECTION);
    ck_assert_int_eq (cw_pg_classify (""), CW_PG_CONNECTION);
    ck_assert_int_eq (cw_pg_classify ("42501"), CW_PG_PERMISSION);
    ck_assert_int_eq (cw_pg_classify ("42P01"), CW_PG_ERROR);
    ck_assert_int_eq (cw_pg_classify ("00000"), CW_PG_OK);
    ck_assert_str_eq (cw_pg_failure_name (CW_PG_UNIQUE), "unique");
    ck_assert_str_eq (cw_pg_failure_name (CW_PG_SERIALIZATION),
                      "serialization");
    ck_assert_str_eq (cw_pg_failure_name (CW_PG_CONNECTION), "connection");
}
END_TEST

START_TEST (test_connect_gives_up)
{
    char uri[128];
    snprintf (uri, sizeof (uri),
              "postgresql://causeway:hunter2secret@127.0.0.1:%d/nowhere",
              s_closed_port ());
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    cw_log_set_stream (stream);
    cw_log_init ("check_cw_pg", CW_LOG_DEBUG);

    cw_pg_t *pg = cw_pg_new (uri);
    cw_pg_set_retry (pg, 3, 20);
    long long started = cw_test_now_msec ();
    ck_assert_int_eq (cw_pg_connect (pg), -1);
    long long elapsed = cw_test_now_msec () - started;
    ck_assert (!cw_pg_connected (pg));
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_CONNECTION);
    ck_assert_ptr_nonnull (strstr (cw_pg_error (pg),
                                   "could not connect to database after 3 "
                                   "attempts"));
    ck_assert_ptr_null (strstr (cw_pg_error (pg), "hunter2secret"));
    //  Backoff 20 ms then 40 ms between the three attempts.
    ck_assert_int_ge (elapsed, 60);
    cw_pg_destroy (&pg);
    ck_assert_ptr_null (pg);
    cw_pg_destroy (&pg);

    //  A malformed URI is refused without echoing it.
    pg = cw_pg_new ("postgresql://causeway:hunter2secret@[::1/x?bad=%zz");
    ck_assert_int_eq (cw_pg_connect (pg), -1);
    ck_assert_ptr_nonnull (strstr (cw_pg_error (pg), "invalid database URI"));
    cw_pg_destroy (&pg);

    cw_log_set_stream (NULL);
    fclose (stream);
    ck_assert_int_eq (s_count (text, "\"event\":\"db_connect_failed\""), 3);
    ck_assert_ptr_nonnull (strstr (text, "\"attempt\":3"));
    ck_assert_ptr_nonnull (strstr (text, "\"host\":\"127.0.0.1\""));
    ck_assert_ptr_null (strstr (text, "hunter2secret"));
    free (text);
}
END_TEST

START_TEST (test_prepared_statements)
{
    char *uri = cw_test_db_new ("cw_pg");
    cw_pg_t *pg = s_connect (uri);
    ck_assert_int_eq (cw_pg_exec_sql (pg, "CREATE TABLE item (id int PRIMARY "
                                          "KEY, name text)",
                                      0, NULL, NULL),
                      0);
    const char *insert = "INSERT INTO item (id, name) VALUES ($1, $2)";
    ck_assert_int_eq (cw_pg_prepare (pg, "item_insert", insert, 2), 0);
    //  The same statement again is harmless; other SQL under it is not.
    ck_assert_int_eq (cw_pg_prepare (pg, "item_insert", insert, 2), 0);
    ck_assert_int_eq (cw_pg_prepare (pg, "item_insert", "SELECT 1", 0), -1);
    ck_assert_ptr_nonnull (strstr (cw_pg_error (pg), "name is taken"));

    const char *first[] = { "1", "it's \"quoted\"; DROP TABLE item; --" };
    const char *second[] = { "2", NULL };
    cw_pg_rows_t *rows = NULL;
    ck_assert_int_eq (cw_pg_exec (pg, "item_insert", 2, first, &rows), 0);
    ck_assert_int_eq (cw_pg_rows_affected (rows), 1);
    cw_pg_rows_destroy (&rows);
    ck_assert_int_eq (cw_pg_exec (pg, "item_insert", 2, second, NULL), 0);

    ck_assert_int_eq (cw_pg_prepare (pg, "item_list",
                                     "SELECT id, name FROM item WHERE id >= $1"
                                     " ORDER BY id",
                                     1),
                      0);
    const char *from[] = { "1" };
    ck_assert_int_eq (cw_pg_exec (pg, "item_list", 1, from, &rows), 0);
    ck_assert_int_eq (cw_pg_rows_count (rows), 2);
    ck_assert_int_eq (cw_pg_rows_columns (rows), 2);
    ck_assert_str_eq (cw_pg_rows_value (rows, 0, 1), first[1]);
    ck_assert_ptr_null (cw_pg_rows_value (rows, 1, 1));
    cw_pg_rows_destroy (&rows);
    ck_assert_ptr_null (rows);

    //  A duplicate key is a unique violation the caller can tell apart.
    ck_assert_int_eq (cw_pg_exec (pg, "item_insert", 2, first, &rows), -1);
    ck_assert_ptr_null (rows);
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_UNIQUE);
    ck_assert_str_eq (cw_pg_sqlstate (pg), "23505");
    ck_assert_ptr_nonnull (strstr (cw_pg_error (pg), "duplicate key"));
    //  A bad statement is a plain error with its SQLSTATE.
    ck_assert_int_eq (cw_pg_exec_sql (pg, "SELECT * FROM missing", 0, NULL,
                                      NULL),
                      -1);
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_ERROR);
    ck_assert_str_eq (cw_pg_sqlstate (pg), "42P01");
    ck_assert_int_eq (cw_pg_exec (pg, "never_prepared", 0, NULL, NULL), -1);
    ck_assert_ptr_nonnull (strstr (cw_pg_error (pg), "not prepared"));
    //  And the connection goes on.
    ck_assert_int_eq (cw_pg_exec (pg, "item_list", 1, from, &rows), 0);
    ck_assert_int_eq (cw_pg_rows_count (rows), 2);
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_OK);
    ck_assert_str_eq (cw_pg_sqlstate (pg), "");
    cw_pg_rows_destroy (&rows);
    cw_pg_destroy (&pg);
    cw_test_db_destroy (&uri);
}
END_TEST

START_TEST (test_transactions)
{
    char *uri = cw_test_db_new ("cw_pg");
    cw_pg_t *pg = s_connect (uri);
    ck_assert_int_eq (cw_pg_exec_script (pg, "CREATE TABLE item (id int "
                                             "PRIMARY KEY); CREATE TABLE "
                                             "other (id int)"),
                      0);
    ck_assert_int_eq (cw_pg_prepare (pg, "item_insert",
                                     "INSERT INTO item (id) VALUES ($1)", 1),
                      0);
    const char *one[] = { "1" };
    const char *two[] = { "2" };

    //  A failed statement rolls the whole transaction back.
    ck_assert_int_eq (cw_pg_begin (pg), 0);
    ck_assert (cw_pg_in_transaction (pg));
    ck_assert_int_eq (cw_pg_exec (pg, "item_insert", 1, one, NULL), 0);
    ck_assert_int_eq (cw_pg_exec (pg, "item_insert", 1, one, NULL), -1);
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_UNIQUE);
    ck_assert (!cw_pg_in_transaction (pg));
    ck_assert_int_eq (cw_pg_commit (pg), -1);
    ck_assert_ptr_nonnull (strstr (cw_pg_error (pg),
                                   "transaction was rolled back"));
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_UNIQUE);
    char *count = s_value (pg, "SELECT count(*) FROM item");
    ck_assert_str_eq (count, "0");
    free (count);

    //  A good one commits; an explicit rollback undoes.
    ck_assert_int_eq (cw_pg_begin (pg), 0);
    ck_assert_int_eq (cw_pg_exec (pg, "item_insert", 1, one, NULL), 0);
    ck_assert_int_eq (cw_pg_commit (pg), 0);
    ck_assert_int_eq (cw_pg_begin (pg), 0);
    ck_assert_int_eq (cw_pg_exec (pg, "item_insert", 1, two, NULL), 0);
    ck_assert_int_eq (cw_pg_rollback (pg), 0);
    ck_assert_int_eq (cw_pg_rollback (pg), 0);     //  none open: harmless
    ck_assert_int_eq (cw_pg_commit (pg), -1);
    ck_assert_ptr_nonnull (strstr (cw_pg_error (pg), "no transaction"));
    count = s_value (pg, "SELECT string_agg (id::text, ',') FROM item");
    ck_assert_str_eq (count, "1");
    free (count);

    //  A script failing half-way inside a transaction keeps nothing.
    ck_assert_int_eq (cw_pg_begin (pg), 0);
    ck_assert_int_eq (cw_pg_exec_script (pg, "INSERT INTO other VALUES (1);"
                                             " SELECT 1/0;"),
                      -1);
    ck_assert_str_eq (cw_pg_sqlstate (pg), "22012");
    ck_assert (!cw_pg_in_transaction (pg));
    count = s_value (pg, "SELECT count(*) FROM other");
    ck_assert_str_eq (count, "0");
    free (count);
    cw_pg_destroy (&pg);
    cw_test_db_destroy (&uri);
}
END_TEST

START_TEST (test_serialization_failure)
{
    char *uri = cw_test_db_new ("cw_pg");
    cw_pg_t *first = s_connect (uri);
    cw_pg_t *second = s_connect (uri);
    ck_assert_int_eq (cw_pg_exec_script (first, "CREATE TABLE account (id int"
                                                " PRIMARY KEY, amount int);"
                                                " INSERT INTO account VALUES"
                                                " (1, 0)"),
                      0);
    ck_assert_int_eq (cw_pg_begin (first), 0);
    ck_assert_int_eq (cw_pg_exec_sql (first, "SET TRANSACTION ISOLATION "
                                             "LEVEL REPEATABLE READ",
                                      0, NULL, NULL),
                      0);
    char *amount = s_value (first, "SELECT amount FROM account WHERE id = 1");
    ck_assert_str_eq (amount, "0");
    free (amount);
    ck_assert_int_eq (cw_pg_exec_sql (second, "UPDATE account SET amount = 5"
                                              " WHERE id = 1",
                                      0, NULL, NULL),
                      0);
    ck_assert_int_eq (cw_pg_exec_sql (first, "UPDATE account SET amount = 7"
                                             " WHERE id = 1",
                                      0, NULL, NULL),
                      -1);
    ck_assert_int_eq (cw_pg_failure (first), CW_PG_SERIALIZATION);
    ck_assert_str_eq (cw_pg_sqlstate (first), "40001");
    ck_assert (!cw_pg_in_transaction (first));
    cw_pg_destroy (&first);
    cw_pg_destroy (&second);
    cw_test_db_destroy (&uri);
}
END_TEST

static void
s_terminate (const char *pid)
{
    char sql[128];
    snprintf (sql, sizeof (sql), "SELECT pg_terminate_backend (%ld, 10000)",
              strtol (pid, NULL, 10));
    char error[512];
    ck_assert_msg (cw_test_sql (cw_test_pguri (), sql, error,
                                sizeof (error)) == 0,
                   "%s", error);
}

START_TEST (test_reconnect)
{
    char *uri = cw_test_db_new ("cw_pg");
    cw_log_init ("check_cw_pg", CW_LOG_ERROR);
    cw_pg_t *pg = s_connect (uri);
    ck_assert_int_eq (cw_pg_prepare (pg, "add_one", "SELECT $1::int + 1", 1),
                      0);
    const char *forty_one[] = { "41" };
    char *pid = s_value (pg, "SELECT pg_backend_pid ()");

    //  The connection dies: the next call says so and the one after
    //  reconnects and prepares the statement again.
    s_terminate (pid);
    ck_assert_int_eq (cw_pg_exec (pg, "add_one", 1, forty_one, NULL), -1);
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_CONNECTION);
    cw_pg_rows_t *rows = NULL;
    ck_assert_int_eq (cw_pg_exec (pg, "add_one", 1, forty_one, &rows), 0);
    ck_assert_str_eq (cw_pg_rows_value (rows, 0, 0), "42");
    cw_pg_rows_destroy (&rows);
    char *new_pid = s_value (pg, "SELECT pg_backend_pid ()");
    ck_assert_str_ne (pid, new_pid);
    free (pid);

    //  Inside a transaction the loss is reported, never papered over.
    ck_assert_int_eq (cw_pg_begin (pg), 0);
    s_terminate (new_pid);
    free (new_pid);
    ck_assert_int_eq (cw_pg_exec (pg, "add_one", 1, forty_one, NULL), -1);
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_CONNECTION);
    ck_assert (!cw_pg_in_transaction (pg));
    ck_assert_int_eq (cw_pg_commit (pg), -1);
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_CONNECTION);
    ck_assert_int_eq (cw_pg_exec (pg, "add_one", 1, forty_one, NULL), 0);
    cw_pg_destroy (&pg);
    cw_test_db_destroy (&uri);
}
END_TEST

//  Waits until fd is readable; false after timeout_msec.
static bool
s_readable (int fd, int timeout_msec)
{
    struct pollfd item = { fd, POLLIN, 0 };
    return poll (&item, 1, timeout_msec) == 1;
}

//  Sends a NOTIFY on channel from a connection of its own.
static void
s_notify (const char *uri, const char *channel)
{
    char sql[128], error[512];
    snprintf (sql, sizeof (sql), "NOTIFY %s", channel);
    ck_assert_msg (cw_test_sql (uri, sql, error, sizeof (error)) == 0, "%s",
                   error);
}

START_TEST (test_listen)
{
    char *uri = cw_test_db_new ("cw_pg");
    cw_log_init ("check_cw_pg", CW_LOG_DEBUG);
    cw_pg_t *pg = cw_pg_new (uri);
    cw_pg_set_retry (pg, 1, 0);

    //  Channel names go into SQL as they are: only identifiers pass
    const char *bad[] = {
        "", "Upper", "has-dash", "has space", "9first", "x;LISTEN y",
        "a123456789012345678901234567890123456789012345678901234567890123",
        NULL
    };
    for (int index = 0; bad[index]; index++) {
        ck_assert_int_eq (cw_pg_listen (pg, bad[index]), -1);
        ck_assert_int_eq (cw_pg_failure (pg), CW_PG_ERROR);
        ck_assert_msg (strstr (cw_pg_error (pg), "channel"), "%s",
                       cw_pg_error (pg));
    }
    ck_assert (!cw_pg_connected (pg));
    ck_assert_int_eq (cw_pg_socket (pg), -1);
    ck_assert_int_eq (cw_pg_notifications (pg), -1);

    //  Listening connects; a NOTIFY from elsewhere makes the socket
    //  readable and is counted once
    ck_assert_msg (cw_pg_listen (pg, "cw_test_wake") == 0, "%s",
                   cw_pg_error (pg));
    ck_assert_int_eq (cw_pg_listen (pg, "cw_test_other"), 0);
    ck_assert_int_ge (cw_pg_socket (pg), 0);
    ck_assert_int_eq (cw_pg_notifications (pg), 0);
    s_notify (uri, "cw_test_wake");
    s_notify (uri, "cw_test_other");
    s_notify (uri, "cw_test_unheard");
    int heard = 0;
    for (int round = 0; round < 50 && heard < 2; round++) {
        ck_assert (s_readable (cw_pg_socket (pg), 5000));
        int count = cw_pg_notifications (pg);
        ck_assert_int_ge (count, 0);
        heard += count;
    }
    ck_assert_int_eq (heard, 2);

    //  The connection is terminated: the loss is reported once, with no
    //  line of libpq's own on stderr (every line is a JSON log record)
    char *pid = s_value (pg, "SELECT pg_backend_pid ()");
    char *captured = cw_test_tmpdir ("check_cw_pg");
    char path[512];
    snprintf (path, sizeof (path), "%s/stderr", captured);
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge (fd, 0);
    ck_assert_int_ge (dup2 (fd, STDERR_FILENO), 0);
    close (fd);
    s_terminate (pid);
    free (pid);
    ck_assert (s_readable (cw_pg_socket (pg), 5000));
    int result = cw_pg_notifications (pg);
    int count = result;
    while (count >= 0 && s_readable (cw_pg_socket (pg), 1000))
        count = cw_pg_notifications (pg);
    fflush (stderr);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    ck_assert_int_eq (count, -1);
    ck_assert_int_eq (cw_pg_failure (pg), CW_PG_CONNECTION);
    ck_assert (!cw_pg_connected (pg));
    ck_assert_int_eq (cw_pg_socket (pg), -1);
    char text[8192] = "";
    FILE *file = fopen (path, "r");
    ck_assert_ptr_nonnull (file);
    text[fread (text, 1, sizeof (text) - 1, file)] = 0;
    fclose (file);
    for (const char *line = text; *line; line = strchr (line, '\n') + 1) {
        ck_assert_msg (*line == '{', "not a log record: %s", line);
        if (!strchr (line, '\n'))
            break;
    }
    cw_test_tmpdir_destroy (&captured);

    //  Listening again reconnects and listens on both channels again
    ck_assert_int_eq (cw_pg_listen (pg, "cw_test_wake"), 0);
    ck_assert (cw_pg_connected (pg));
    s_notify (uri, "cw_test_other");
    ck_assert (s_readable (cw_pg_socket (pg), 5000));
    heard = 0;
    for (int round = 0; round < 50 && heard < 1; round++) {
        int got = cw_pg_notifications (pg);
        ck_assert_int_ge (got, 0);
        heard += got;
        if (!heard)
            ck_assert (s_readable (cw_pg_socket (pg), 5000));
    }
    ck_assert_int_eq (heard, 1);
    cw_pg_destroy (&pg);
    cw_log_init ("check_cw_pg", CW_LOG_ERROR);
    cw_test_db_destroy (&uri);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_pg");
    TCase *unit = tcase_create ("classify");
    tcase_set_timeout (unit, 10);
    tcase_add_test (unit, test_classify);
    suite_add_tcase (suite, unit);
    TCase *connect = tcase_create ("connect");
    tcase_set_timeout (connect, 30);
    tcase_add_test (connect, test_connect_gives_up);
    tcase_add_test (connect, test_reconnect);
    tcase_add_test (connect, test_listen);
    suite_add_tcase (suite, connect);
    TCase *statements = tcase_create ("statements");
    tcase_set_timeout (statements, 30);
    tcase_add_test (statements, test_prepared_statements);
    tcase_add_test (statements, test_transactions);
    tcase_add_test (statements, test_serialization_failure);
    suite_add_tcase (suite, statements);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
