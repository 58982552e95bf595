/*  =========================================================================
    cw_pg - one PostgreSQL connection: connect with retry, prepared
    statements, transactions, SQLSTATE classes, reconnect

    Statements run only through PQexecParams / PQexecPrepared (parameters
    travel apart from the SQL text); the one exception, cw_pg_exec_script,
    runs a migration file's fixed text. Every PGresult is checked and
    cleared inside the function that ran it; callers get rows copied into
    a cw_pg_rows_t.

    After a failure, cw_pg_failure tells the caller what kind it was, so it
    can retry the right things:
      CW_PG_UNIQUE         23505: the row exists (a duplicate: acknowledge)
      CW_PG_SERIALIZATION  40001, 40P01: re-run the whole transaction
      CW_PG_CONNECTION     08xxx, 57P0x, or the connection is gone: the
                           next call reconnects; the transaction is lost
      CW_PG_PERMISSION     42501: a missing grant (never retry)
      CW_PG_ERROR          anything else (never retry blindly)

        cw_pg_t *pg = cw_pg_new (uri);
        if (cw_pg_connect (pg) == 0
        &&  cw_pg_prepare (pg, "job_get", "SELECT flow FROM erp_mw.jobs "
                                          "WHERE id = $1", 1) == 0) {
            const char *values[] = { "42" };
            cw_pg_rows_t *rows = NULL;
            if (cw_pg_exec (pg, "job_get", 1, values, &rows) == 0)
                use (cw_pg_rows_value (rows, 0, 0));
            cw_pg_rows_destroy (&rows);
        }
        cw_pg_destroy (&pg);
    =========================================================================
*/
#ifndef CW_PG_H_INCLUDED
#define CW_PG_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#define CW_PG_CONNECT_ATTEMPTS 5        //  Default connect attempts
#define CW_PG_CONNECT_BACKOFF 200       //  Default first backoff, msec
#define CW_PG_CONNECT_BACKOFF_MAX 10000 //  Longest backoff, msec

typedef enum {
    CW_PG_OK = 0,
    CW_PG_UNIQUE,
    CW_PG_SERIALIZATION,
    CW_PG_CONNECTION,
    CW_PG_PERMISSION,
    CW_PG_ERROR
} cw_pg_failure_t;

typedef struct _cw_pg_t cw_pg_t;
typedef struct _cw_pg_rows_t cw_pg_rows_t;

//  Creates a connection object for a libpq URI or conninfo string; does
//  not connect yet. The URI is never logged (it may hold a password).
//  Caller owns return value and must destroy it when done.
cw_pg_t *
    cw_pg_new (const char *uri);

//  Closes the connection, wipes the URI and frees the object; nulls the
//  pointer. Tolerates NULL.
void
    cw_pg_destroy (cw_pg_t **self_p);

//  Sets how cw_pg_connect retries: attempts >= 1, the first pause in msec
//  (doubled after each failure, at most CW_PG_CONNECT_BACKOFF_MAX).
void
    cw_pg_set_retry (cw_pg_t *self, int attempts, int backoff_msec);

//  Connects, retrying with exponential backoff; each failed attempt is
//  logged (host, port, database, attempt, libpq's reason; never the URI).
//  Returns 0, or -1 after the last attempt (see cw_pg_error).
int
    cw_pg_connect (cw_pg_t *self);

//  True when the connection is open and usable.
bool
    cw_pg_connected (cw_pg_t *self);

//  Listens on channel (a lower-case SQL identifier of 1-63 bytes): LISTEN
//  runs now (connecting first when needed) and again after every
//  reconnect. Notifications sent while the connection was down are lost:
//  a caller looks at its table once after each (re)listen. Returns 0 or
//  -1 (see cw_pg_failure).
int
    cw_pg_listen (cw_pg_t *self, const char *channel);

//  The connection's socket, to poll for notifications; -1 when not
//  connected.
int
    cw_pg_socket (cw_pg_t *self);

//  Reads what the server sent, without blocking, and returns how many
//  notifications (of any channel) it held: 0 when none. Returns -1 when
//  the connection is lost (closed; the next cw_pg_listen or statement
//  reconnects). Server messages on the way go to the log, never stderr.
int
    cw_pg_notifications (cw_pg_t *self);

//  Registers a named statement; it is prepared on the server now when
//  connected (and again after any reconnect). Registering the same name
//  with the same SQL again is harmless; other SQL under a known name is
//  refused. Returns 0 or -1.
int
    cw_pg_prepare (cw_pg_t *self, const char *name, const char *sql,
                   int nparams);

//  Executes a prepared statement with nparams text parameters (NULL
//  entries are SQL NULL). When rows_p is not NULL, *rows_p receives the
//  result rows (caller owns them). Reconnects first when the connection
//  was lost outside a transaction. A failure inside a transaction rolls
//  the transaction back. Returns 0 or -1 (see cw_pg_failure).
int
    cw_pg_exec (cw_pg_t *self, const char *name, int nparams,
                const char *const *values, cw_pg_rows_t **rows_p);

//  The same for one-off SQL (PQexecParams, unnamed statement).
int
    cw_pg_exec_sql (cw_pg_t *self, const char *sql, int nparams,
                    const char *const *values, cw_pg_rows_t **rows_p);

//  Runs fixed SQL text holding several statements (a migration file) with
//  the simple query protocol. Never pass text built from input. Returns
//  0 or -1; inside a transaction a failure rolls it back.
int
    cw_pg_exec_script (cw_pg_t *self, const char *script);

//  Starts a transaction (READ COMMITTED). Returns 0 or -1.
int
    cw_pg_begin (cw_pg_t *self);

//  Commits the transaction. Returns -1 when the commit failed or the
//  transaction had already been rolled back by a failed statement.
int
    cw_pg_commit (cw_pg_t *self);

//  Rolls back the transaction; harmless when none is open. Returns 0 or -1.
int
    cw_pg_rollback (cw_pg_t *self);

//  True between cw_pg_begin and cw_pg_commit/cw_pg_rollback (or a failure).
bool
    cw_pg_in_transaction (cw_pg_t *self);

//  Class of the last failure (CW_PG_OK after a success).
cw_pg_failure_t
    cw_pg_failure (cw_pg_t *self);

//  SQLSTATE of the last failure ("" when there was none).
const char *
    cw_pg_sqlstate (cw_pg_t *self);

//  Message of the last failure, one line ("" when there was none).
const char *
    cw_pg_error (cw_pg_t *self);

//  Maps a SQLSTATE to a failure class; NULL or "" is CW_PG_CONNECTION
//  (libpq reports no SQLSTATE when the server is unreachable).
cw_pg_failure_t
    cw_pg_classify (const char *sqlstate);

//  Returns the failure class's name ("unique", "serialization", ...).
const char *
    cw_pg_failure_name (cw_pg_failure_t failure);

//  Result rows: counts, values as text (NULL for SQL NULL), rows affected.
int
    cw_pg_rows_count (cw_pg_rows_t *self);
int
    cw_pg_rows_columns (cw_pg_rows_t *self);
const char *
    cw_pg_rows_value (cw_pg_rows_t *self, int row, int column);
//  Rows affected by INSERT/UPDATE/DELETE (or returned by SELECT).
int64_t
    cw_pg_rows_affected (cw_pg_rows_t *self);

//  Frees rows and nulls the pointer. Tolerates NULL.
void
    cw_pg_rows_destroy (cw_pg_rows_t **self_p);

#endif
