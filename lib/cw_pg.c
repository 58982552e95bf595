/*  =========================================================================
    cw_pg - one PostgreSQL connection: connect with retry, prepared
    statements, transactions, SQLSTATE classes, reconnect
    =========================================================================
*/
#include "cw_pg.h"
#include "cw_log.h"

#include <assert.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CW_PG_ERROR_SIZE 512            //  Longest kept error message
#define CW_PG_CONNECT_TIMEOUT "10"      //  libpq connect_timeout, seconds
#define CW_PG_KEEPALIVES_IDLE "30"      //  TCP keepalive: idle seconds,
#define CW_PG_KEEPALIVES_INTERVAL "10"  //  then a probe every 10 s,
#define CW_PG_KEEPALIVES_COUNT "3"      //  3 unanswered: connection lost
#define CW_PG_CHANNEL_MAX 63            //  Longest LISTEN channel name

//  A registered statement; prepared on the connection of one generation.
typedef struct _statement_t statement_t;
struct _statement_t {
    char *name;                 //  Statement name
    char *sql;                  //  Statement text
    int nparams;                //  Number of parameters
    uint64_t generation;        //  Connection it was prepared on, 0 none
    statement_t *next;          //  Next statement in the registry
};

struct _cw_pg_t {
    char *uri;                  //  libpq URI, may hold a password
    char *password;             //  Password from the URI, for redaction
    PGconn *conn;               //  Connection, NULL before connect
    uint64_t generation;        //  Counts successful connects
    statement_t *statements;    //  Registry of prepared statements
    char **channels;            //  LISTEN channels, again after reconnect
    size_t channel_count;       //  Entries in channels
    int attempts;               //  Connect attempts
    int backoff_msec;           //  First pause between attempts
    bool in_transaction;        //  Between begin and commit/rollback
    bool rolled_back;           //  A failure rolled the transaction back
    cw_pg_failure_t failure;    //  Class of the last failure
    char sqlstate[6];           //  SQLSTATE of the last failure
    char error[CW_PG_ERROR_SIZE];   //  Message of the last failure
};

struct _cw_pg_rows_t {
    int count;                  //  Number of rows
    int columns;                //  Number of columns
    int64_t affected;           //  Rows affected (PQcmdTuples)
    char **values;              //  count x columns values, NULL = SQL NULL
};

static void *
s_alloc (size_t size)
{
    void *memory = calloc (1, size);
    if (!memory)
        abort ();
    return memory;
}

static char *
s_strdup (const char *text)
{
    size_t size = strlen (text) + 1;
    char *copy = (char *) s_alloc (size);
    memcpy (copy, text, size);
    return copy;
}

static void
s_wipe_free (char **text_p)
{
    if (*text_p) {
        volatile char *cursor = *text_p;
        while (*cursor)
            *cursor++ = 0;
        free (*text_p);
        *text_p = NULL;
    }
}

static void
s_sleep_msec (int msec)
{
    struct timespec pause = { msec / 1000, (long) (msec % 1000) * 1000000L };
    while (nanosleep (&pause, &pause) == -1 && errno == EINTR)
        ;
}

//  Keeps one line of a libpq message in self->error: newlines and tabs
//  become spaces, trailing space goes, and the password (if it ever
//  appears) is replaced.
static void
s_set_error (cw_pg_t *self, cw_pg_failure_t failure, const char *sqlstate,
             const char *message)
{
    self->failure = failure;
    snprintf (self->sqlstate, sizeof (self->sqlstate), "%s",
              sqlstate ? sqlstate : "");
    snprintf (self->error, sizeof (self->error), "%s",
              message ? message : "unknown error");
    char *cursor;
    for (cursor = self->error; *cursor; cursor++)
        if (*cursor == '\n' || *cursor == '\t' || *cursor == '\r')
            *cursor = ' ';
    while (cursor > self->error && cursor[-1] == ' ')
        *--cursor = 0;
    if (self->password && *self->password) {
        char *found;
        while ((found = strstr (self->error, self->password)) != NULL)
            memset (found, '*', strlen (self->password));
    }
}

//  Server notices (e.g. "already exists, skipping") go to the log at
//  debug level instead of libpq's default stderr printing.
static void
s_notice (void *arg, const char *message)
{
    (void) arg;
    char line[CW_PG_ERROR_SIZE];
    snprintf (line, sizeof (line), "%s", message);
    line[strcspn (line, "\n")] = 0;
    cw_log (CW_LOG_DEBUG, "db_notice", "database notice", "notice", line,
            NULL);
}

static void
s_clear_error (cw_pg_t *self)
{
    self->failure = CW_PG_OK;
    self->sqlstate[0] = 0;
    self->error[0] = 0;
}

cw_pg_t *
cw_pg_new (const char *uri)
{
    assert (uri);
    cw_pg_t *self = (cw_pg_t *) s_alloc (sizeof (cw_pg_t));
    self->uri = s_strdup (uri);
    self->attempts = CW_PG_CONNECT_ATTEMPTS;
    self->backoff_msec = CW_PG_CONNECT_BACKOFF;
    PQconninfoOption *options = PQconninfoParse (uri, NULL);
    if (options) {
        for (PQconninfoOption *option = options; option->keyword; option++)
            if (strcmp (option->keyword, "password") == 0
                && option->val)
                self->password = s_strdup (option->val);
        PQconninfoFree (options);
    }
    return self;
}

void
cw_pg_destroy (cw_pg_t **self_p)
{
    assert (self_p);
    cw_pg_t *self = *self_p;
    if (!self)
        return;
    if (self->conn)
        PQfinish (self->conn);
    while (self->statements) {
        statement_t *next = self->statements->next;
        free (self->statements->name);
        free (self->statements->sql);
        free (self->statements);
        self->statements = next;
    }
    for (size_t index = 0; index < self->channel_count; index++)
        free (self->channels[index]);
    free (self->channels);
    s_wipe_free (&self->uri);
    s_wipe_free (&self->password);
    free (self);
    *self_p = NULL;
}

void
cw_pg_set_retry (cw_pg_t *self, int attempts, int backoff_msec)
{
    assert (self);
    assert (attempts >= 1);
    assert (backoff_msec >= 0);
    self->attempts = attempts;
    self->backoff_msec = backoff_msec;
}

static int
    s_finish (cw_pg_t *self, PGresult *result, cw_pg_rows_t **rows_p);

//  LISTEN on the open connection (channel checked by cw_pg_listen).
//  Returns 0 or -1 with the error set.
static int
s_listen_now (cw_pg_t *self, const char *channel)
{
    char sql[CW_PG_CHANNEL_MAX + 16];
    snprintf (sql, sizeof (sql), "LISTEN %s", channel);
    return s_finish (self, PQexec (self->conn, sql), NULL);
}

//  One connect attempt. Returns 0 or -1 with the error set.
static int
s_connect_once (cw_pg_t *self)
{
    if (self->conn) {
        PQfinish (self->conn);
        self->conn = NULL;
    }
    //  Our defaults first: a value in the URI overrides them. Keepalives
    //  find a server that vanished without closing the connection (a
    //  failover, a cable) within about a minute, not TCP's two hours.
    const char *const keywords[] = {
        "connect_timeout", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "dbname", NULL
    };
    const char *const values[] = {
        CW_PG_CONNECT_TIMEOUT, CW_PG_KEEPALIVES_IDLE,
        CW_PG_KEEPALIVES_INTERVAL, CW_PG_KEEPALIVES_COUNT, self->uri, NULL
    };
    self->conn = PQconnectdbParams (keywords, values, 1);
    if (PQstatus (self->conn) != CONNECTION_OK) {
        s_set_error (self, CW_PG_CONNECTION, NULL, PQerrorMessage (self->conn));
        return -1;
    }
    PQsetNoticeProcessor (self->conn, s_notice, NULL);
    self->generation++;
    for (size_t index = 0; index < self->channel_count; index++)
        if (s_listen_now (self, self->channels[index]))
            return -1;
    return 0;
}

int
cw_pg_connect (cw_pg_t *self)
{
    assert (self);
    self->in_transaction = false;
    self->rolled_back = false;
    char *error = NULL;
    PQconninfoOption *options = PQconninfoParse (self->uri, &error);
    if (!options) {
        //  libpq's parse message may quote a fragment of the URI.
        PQfreemem (error);
        s_set_error (self, CW_PG_ERROR, NULL,
                     "invalid database URI (not shown: it may hold a "
                     "password)");
        cw_log (CW_LOG_ERROR, "db_uri_invalid", self->error, NULL);
        return -1;
    }
    PQconninfoFree (options);
    int backoff = self->backoff_msec;
    for (int attempt = 1; attempt <= self->attempts; attempt++) {
        if (s_connect_once (self) == 0) {
            s_clear_error (self);
            if (attempt > 1)
                cw_log (CW_LOG_INFO, "db_connected", "connected to database",
                        "host", PQhost (self->conn), "port",
                        PQport (self->conn), "dbname", PQdb (self->conn),
                        NULL);
            return 0;
        }
        char number[16], pause[16];
        snprintf (number, sizeof (number), "%d", attempt);
        snprintf (pause, sizeof (pause), "%d",
                  attempt < self->attempts ? backoff : 0);
        cw_log (CW_LOG_WARN, "db_connect_failed",
                "could not connect to database", "host", PQhost (self->conn),
                "port", PQport (self->conn), "dbname", PQdb (self->conn),
                "user", PQuser (self->conn), "#attempt", number,
                "#retry_in_msec", pause, "error", self->error, NULL);
        if (attempt < self->attempts) {
            s_sleep_msec (backoff);
            backoff = backoff * 2 > CW_PG_CONNECT_BACKOFF_MAX
                          ? CW_PG_CONNECT_BACKOFF_MAX : backoff * 2;
        }
    }
    char reason[CW_PG_ERROR_SIZE];
    snprintf (reason, sizeof (reason), "%s", self->error);
    char message[CW_PG_ERROR_SIZE + 64];
    snprintf (message, sizeof (message),
              "could not connect to database after %d attempts: %s",
              self->attempts, reason);
    s_set_error (self, CW_PG_CONNECTION, NULL, message);
    return -1;
}

bool
cw_pg_connected (cw_pg_t *self)
{
    assert (self);
    return self->conn && PQstatus (self->conn) == CONNECTION_OK;
}

//  A channel is a lower-case SQL identifier: it goes into LISTEN as is.
static bool
s_channel_valid (const char *channel)
{
    size_t length = strlen (channel);
    if (length == 0 || length > CW_PG_CHANNEL_MAX
        || (channel[0] >= '0' && channel[0] <= '9'))
        return false;
    for (size_t index = 0; index < length; index++) {
        char c = channel[index];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

int
cw_pg_listen (cw_pg_t *self, const char *channel)
{
    assert (self);
    assert (channel);
    if (!s_channel_valid (channel)) {
        s_set_error (self, CW_PG_ERROR, NULL,
                     "LISTEN channel: not a lower-case identifier of 1-63 "
                     "bytes");
        return -1;
    }
    bool known = false;
    for (size_t index = 0; index < self->channel_count; index++)
        if (strcmp (self->channels[index], channel) == 0)
            known = true;
    if (!known) {
        char **channels = (char **) realloc (
            self->channels, (self->channel_count + 1) * sizeof (char *));
        if (!channels)
            abort ();
        self->channels = channels;
        self->channels[self->channel_count++] = s_strdup (channel);
    }
    if (self->in_transaction) {
        s_set_error (self, CW_PG_ERROR, NULL,
                     "LISTEN inside a transaction waits for its commit");
        return -1;
    }
    if (!cw_pg_connected (self))
        return cw_pg_connect (self);    //  Listens on every channel
    return s_listen_now (self, channel);
}

int
cw_pg_socket (cw_pg_t *self)
{
    assert (self);
    return cw_pg_connected (self) ? PQsocket (self->conn) : -1;
}

int
cw_pg_notifications (cw_pg_t *self)
{
    assert (self);
    if (!cw_pg_connected (self)) {
        s_set_error (self, CW_PG_CONNECTION, NULL, "not connected");
        return -1;
    }
    if (!PQconsumeInput (self->conn) || PQstatus (self->conn) != CONNECTION_OK) {
        s_set_error (self, CW_PG_CONNECTION, NULL, PQerrorMessage (self->conn));
        PQfinish (self->conn);
        self->conn = NULL;
        self->in_transaction = false;
        return -1;
    }
    int count = 0;
    PGnotify *notify;
    while ((notify = PQnotifies (self->conn))) {
        count++;
        PQfreemem (notify);
    }
    return count;
}

//  Makes sure there is a connection: reconnects when it was lost. A lost
//  connection inside a transaction is reported, not hidden.
static int
s_ensure_connected (cw_pg_t *self)
{
    if (cw_pg_connected (self))
        return 0;
    if (self->conn)
        cw_log (CW_LOG_WARN, "db_reconnect", "reconnecting to database",
                "host", PQhost (self->conn), "port", PQport (self->conn),
                "dbname", PQdb (self->conn), NULL);
    return cw_pg_connect (self);
}

//  Records the failure of a result (or of the connection when result is
//  NULL); a failure inside a transaction ends it.
static void
s_fail (cw_pg_t *self, PGresult *result)
{
    const char *sqlstate = result
                               ? PQresultErrorField (result, PG_DIAG_SQLSTATE)
                               : NULL;
    const char *message = result
                              ? PQresultErrorField (result,
                                                    PG_DIAG_MESSAGE_PRIMARY)
                              : NULL;
    if (!message)
        message = PQerrorMessage (self->conn);
    cw_pg_failure_t failure = cw_pg_classify (sqlstate);
    if (PQstatus (self->conn) != CONNECTION_OK)
        failure = CW_PG_CONNECTION;
    s_set_error (self, failure, sqlstate, message);
    if (self->in_transaction) {
        self->in_transaction = false;
        self->rolled_back = true;
        if (failure != CW_PG_CONNECTION) {
            PGresult *rollback = PQexecParams (self->conn, "ROLLBACK", 0,
                                               NULL, NULL, NULL, NULL, 0);
            if (PQresultStatus (rollback) != PGRES_COMMAND_OK)
                cw_log (CW_LOG_WARN, "db_rollback_failed",
                        "could not roll back transaction", "error",
                        PQerrorMessage (self->conn), NULL);
            PQclear (rollback);
        }
    }
}

static cw_pg_rows_t *
s_rows_new (PGresult *result)
{
    cw_pg_rows_t *self = (cw_pg_rows_t *) s_alloc (sizeof (cw_pg_rows_t));
    self->count = PQntuples (result);
    self->columns = PQnfields (result);
    const char *affected = PQcmdTuples (result);
    self->affected = *affected ? strtoll (affected, NULL, 10) : self->count;
    size_t cells = (size_t) self->count * (size_t) self->columns;
    self->values = (char **) s_alloc ((cells ? cells : 1) * sizeof (char *));
    for (int row = 0; row < self->count; row++)
        for (int column = 0; column < self->columns; column++)
            if (!PQgetisnull (result, row, column))
                self->values[row * self->columns + column]
                    = s_strdup (PQgetvalue (result, row, column));
    return self;
}

//  Checks and clears a result; copies rows when asked. Returns 0 or -1.
static int
s_finish (cw_pg_t *self, PGresult *result, cw_pg_rows_t **rows_p)
{
    ExecStatusType status = PQresultStatus (result);
    int rc = 0;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        s_clear_error (self);
        if (rows_p)
            *rows_p = s_rows_new (result);
    }
    else {
        s_fail (self, result);
        rc = -1;
    }
    PQclear (result);
    return rc;
}

static statement_t *
s_statement_find (cw_pg_t *self, const char *name)
{
    for (statement_t *statement = self->statements; statement;
         statement = statement->next)
        if (strcmp (statement->name, name) == 0)
            return statement;
    return NULL;
}

//  Prepares a statement on the current connection unless it already is.
static int
s_statement_prepare (cw_pg_t *self, statement_t *statement)
{
    if (statement->generation == self->generation)
        return 0;
    PGresult *result = PQprepare (self->conn, statement->name,
                                  statement->sql, statement->nparams, NULL);
    if (s_finish (self, result, NULL))
        return -1;
    statement->generation = self->generation;
    return 0;
}

int
cw_pg_prepare (cw_pg_t *self, const char *name, const char *sql, int nparams)
{
    assert (self);
    assert (name && *name);
    assert (sql);
    assert (nparams >= 0);
    statement_t *statement = s_statement_find (self, name);
    if (statement) {
        if (strcmp (statement->sql, sql) != 0 || statement->nparams != nparams) {
            char message[256];
            snprintf (message, sizeof (message),
                      "cannot prepare statement \"%s\": the name is taken by "
                      "other SQL",
                      name);
            s_set_error (self, CW_PG_ERROR, NULL, message);
            return -1;
        }
    }
    else {
        statement = (statement_t *) s_alloc (sizeof (statement_t));
        statement->name = s_strdup (name);
        statement->sql = s_strdup (sql);
        statement->nparams = nparams;
        statement->next = self->statements;
        self->statements = statement;
    }
    if (!cw_pg_connected (self)) {
        s_clear_error (self);
        return 0;               //  Prepared after the next connect
    }
    return s_statement_prepare (self, statement);
}

//  Reconnects when needed; a transaction whose connection was lost fails.
static int
s_before (cw_pg_t *self)
{
    if (self->in_transaction && !cw_pg_connected (self)) {
        s_fail (self, NULL);
        return -1;
    }
    return s_ensure_connected (self);
}

int
cw_pg_exec (cw_pg_t *self, const char *name, int nparams,
            const char *const *values, cw_pg_rows_t **rows_p)
{
    assert (self);
    assert (name);
    assert (nparams == 0 || values);
    if (rows_p)
        *rows_p = NULL;
    statement_t *statement = s_statement_find (self, name);
    if (!statement) {
        char message[256];
        snprintf (message, sizeof (message),
                  "statement \"%s\" is not prepared", name);
        s_set_error (self, CW_PG_ERROR, NULL, message);
        return -1;
    }
    assert (nparams == statement->nparams);
    if (s_before (self) || s_statement_prepare (self, statement))
        return -1;
    PGresult *result = PQexecPrepared (self->conn, name, nparams, values,
                                       NULL, NULL, 0);
    return s_finish (self, result, rows_p);
}

int
cw_pg_exec_sql (cw_pg_t *self, const char *sql, int nparams,
                const char *const *values, cw_pg_rows_t **rows_p)
{
    assert (self);
    assert (sql);
    assert (nparams == 0 || values);
    if (rows_p)
        *rows_p = NULL;
    if (s_before (self))
        return -1;
    PGresult *result = PQexecParams (self->conn, sql, nparams, NULL, values,
                                     NULL, NULL, 0);
    return s_finish (self, result, rows_p);
}

int
cw_pg_exec_script (cw_pg_t *self, const char *script)
{
    assert (self);
    assert (script);
    if (s_before (self))
        return -1;
    //  The simple query protocol runs several statements; the last
    //  result tells whether all of them succeeded.
    PGresult *result = PQexec (self->conn, script);
    return s_finish (self, result, NULL);
}

int
cw_pg_begin (cw_pg_t *self)
{
    assert (self);
    assert (!self->in_transaction);
    self->rolled_back = false;
    if (cw_pg_exec_sql (self, "BEGIN", 0, NULL, NULL))
        return -1;
    self->in_transaction = true;
    return 0;
}

int
cw_pg_commit (cw_pg_t *self)
{
    assert (self);
    if (!self->in_transaction) {
        if (self->rolled_back) {
            //  Keep the failure that rolled it back; say so in front.
            char message[CW_PG_ERROR_SIZE + 32];
            snprintf (message, sizeof (message),
                      "transaction was rolled back: %s", self->error);
            char sqlstate[6];
            memcpy (sqlstate, self->sqlstate, sizeof (sqlstate));
            s_set_error (self, self->failure, sqlstate, message);
            self->rolled_back = false;
        }
        else
            s_set_error (self, CW_PG_ERROR, NULL, "no transaction is open");
        return -1;
    }
    //  A failed COMMIT (e.g. a serialization failure) ends the
    //  transaction too: PostgreSQL has rolled it back.
    self->in_transaction = false;
    return cw_pg_exec_sql (self, "COMMIT", 0, NULL, NULL);
}

int
cw_pg_rollback (cw_pg_t *self)
{
    assert (self);
    self->rolled_back = false;
    if (!self->in_transaction)
        return 0;
    self->in_transaction = false;
    return cw_pg_exec_sql (self, "ROLLBACK", 0, NULL, NULL);
}

bool
cw_pg_in_transaction (cw_pg_t *self)
{
    assert (self);
    return self->in_transaction;
}

cw_pg_failure_t
cw_pg_failure (cw_pg_t *self)
{
    assert (self);
    return self->failure;
}

const char *
cw_pg_sqlstate (cw_pg_t *self)
{
    assert (self);
    return self->sqlstate;
}

const char *
cw_pg_error (cw_pg_t *self)
{
    assert (self);
    return self->error;
}

cw_pg_failure_t
cw_pg_classify (const char *sqlstate)
{
    if (!sqlstate || !*sqlstate)
        return CW_PG_CONNECTION;
    if (strcmp (sqlstate, "00000") == 0)
        return CW_PG_OK;
    if (strcmp (sqlstate, "23505") == 0)
        return CW_PG_UNIQUE;
    if (strcmp (sqlstate, "40001") == 0 || strcmp (sqlstate, "40P01") == 0)
        return CW_PG_SERIALIZATION;
    if (strncmp (sqlstate, "08", 2) == 0 || strcmp (sqlstate, "57P01") == 0
        || strcmp (sqlstate, "57P02") == 0 || strcmp (sqlstate, "57P03") == 0)
        return CW_PG_CONNECTION;
    if (strcmp (sqlstate, "42501") == 0)
        return CW_PG_PERMISSION;
    return CW_PG_ERROR;
}

const char *
cw_pg_failure_name (cw_pg_failure_t failure)
{
    switch (failure) {
        case CW_PG_OK:
            return "ok";
        case CW_PG_UNIQUE:
            return "unique";
        case CW_PG_SERIALIZATION:
            return "serialization";
        case CW_PG_CONNECTION:
            return "connection";
        case CW_PG_PERMISSION:
            return "permission";
        case CW_PG_ERROR:
            return "error";
    }
    return "error";
}

int
cw_pg_rows_count (cw_pg_rows_t *self)
{
    assert (self);
    return self->count;
}

int
cw_pg_rows_columns (cw_pg_rows_t *self)
{
    assert (self);
    return self->columns;
}

const char *
cw_pg_rows_value (cw_pg_rows_t *self, int row, int column)
{
    assert (self);
    assert (row >= 0 && row < self->count);
    assert (column >= 0 && column < self->columns);
    return self->values[row * self->columns + column];
}

int64_t
cw_pg_rows_affected (cw_pg_rows_t *self)
{
    assert (self);
    return self->affected;
}

void
cw_pg_rows_destroy (cw_pg_rows_t **self_p)
{
    assert (self_p);
    cw_pg_rows_t *self = *self_p;
    if (!self)
        return;
    size_t cells = (size_t) self->count * (size_t) self->columns;
    for (size_t cell = 0; cell < cells; cell++)
        free (self->values[cell]);
    free (self->values);
    free (self);
    *self_p = NULL;
}
