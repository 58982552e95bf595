/*  =========================================================================
    cw_migrate - forward-only schema migrations of one island
    =========================================================================
*/
#include "cw_migrate.h"
#include "cw_log.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CW_MIGRATE_FILE_MAX (16 * 1024 * 1024)  //  Largest migration, bytes
#define CW_MIGRATE_LOCK_CLASS "7305"    //  Advisory lock key, first half
#define CW_MIGRATE_PATH_MAX 4096        //  Longest path we build

//  One migration file, read and hashed.
typedef struct {
    int version;                //  NNN of the name
    char *name;                 //  File name, e.g. "001_queue.sql"
    char *text;                 //  Content
    char sha256[65];            //  Hex SHA-256 of the content
} migration_t;

static const char *s_islands[] = { "erp_mw", "shop", NULL };

static const char *s_lock_sql
    = "SELECT pg_advisory_xact_lock (" CW_MIGRATE_LOCK_CLASS
      ", hashtext ($1))";
static const char *s_enter_sql
    = "SELECT set_config ('role', r.rolname, true),"
      " set_config ('search_path', n.nspname, true)"
      " FROM pg_catalog.pg_namespace n"
      " JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner"
      " WHERE n.nspname = $1";
static const char *s_create_sql
    = "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version int PRIMARY KEY,"
      " name text NOT NULL,"
      " sha256 text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now ())";
static const char *s_find_sql
    = "SELECT name, sha256 FROM schema_migrations WHERE version = $1";
static const char *s_newest_sql
    = "SELECT max (version) FROM schema_migrations";
static const char *s_record_sql
    = "INSERT INTO schema_migrations (version, name, sha256)"
      " VALUES ($1, $2, $3)";
static const char *s_xact_sql = "SELECT pg_current_xact_id ()::text";
static const char *s_exists_sql
    = "SELECT to_regclass ('schema_migrations') IS NOT NULL";
static const char *s_list_sql
    = "SELECT version, name, sha256,"
      " to_char (applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
      " FROM schema_migrations ORDER BY version";

bool
cw_migrate_island_valid (const char *island)
{
    if (!island)
        return false;
    for (int index = 0; s_islands[index]; index++)
        if (strcmp (island, s_islands[index]) == 0)
            return true;
    return false;
}

static long long
s_now_msec (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (long long) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  Reads a whole file. Returns a fresh string or NULL with error set.
static char *
s_read_file (const char *path, char *error, size_t size)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        snprintf (error, size, "could not open file \"%s\": %s", path,
                  strerror (errno));
        return NULL;
    }
    char *text = NULL;
    size_t length = 0;
    if (fseek (file, 0, SEEK_END) == 0) {
        long end = ftell (file);
        if (end >= 0 && end <= CW_MIGRATE_FILE_MAX && fseek (file, 0, SEEK_SET) == 0) {
            text = (char *) malloc ((size_t) end + 1);
            if (!text)
                abort ();
            length = fread (text, 1, (size_t) end, file);
            if (length != (size_t) end || ferror (file)) {
                free (text);
                text = NULL;
            }
        }
    }
    fclose (file);
    if (!text) {
        snprintf (error, size, "could not read file \"%s\" (unreadable or "
                               "larger than %d bytes)",
                  path, CW_MIGRATE_FILE_MAX);
        return NULL;
    }
    text[length] = 0;
    if (strlen (text) != length) {
        snprintf (error, size, "cannot use file \"%s\": it contains a NUL "
                               "byte",
                  path);
        free (text);
        return NULL;
    }
    return text;
}

//  Parses "NNN_description.sql": returns the version, 0 for files that do
//  not end in .sql (ignored), -1 for a .sql file with a bad name.
static int
s_parse_name (const char *name)
{
    size_t length = strlen (name);
    if (length < 4 || strcmp (name + length - 4, ".sql") != 0)
        return 0;
    size_t digits = 0;
    while (isdigit ((unsigned char) name[digits]))
        digits++;
    if (digits < 3 || digits > 6 || name[digits] != '_')
        return -1;
    const char *cursor = name + digits + 1;
    if (cursor == name + length - 4)
        return -1;
    for (; cursor < name + length - 4; cursor++)
        if (!(islower ((unsigned char) *cursor)
              || isdigit ((unsigned char) *cursor) || *cursor == '_'))
            return -1;
    char *end = NULL;
    long version = strtol (name, &end, 10);
    if (end != name + digits || version < 1)
        return -1;
    return (int) version;
}

static int
s_compare (const void *left, const void *right)
{
    const migration_t *a = (const migration_t *) left;
    const migration_t *b = (const migration_t *) right;
    return (a->version > b->version) - (a->version < b->version);
}

static void
s_migrations_free (migration_t *migrations, int count)
{
    for (int index = 0; index < count; index++) {
        free (migrations[index].name);
        free (migrations[index].text);
    }
    free (migrations);
}

//  Loads sql_dir/island/NNN_*.sql sorted by version. Returns the count
//  (sets *migrations_p, caller frees with s_migrations_free) or -1.
static int
s_migrations_load (const char *sql_dir, const char *island,
                   migration_t **migrations_p, char *error, size_t size)
{
    char dir_path[CW_MIGRATE_PATH_MAX];
    snprintf (dir_path, sizeof (dir_path), "%s/%s", sql_dir, island);
    DIR *dir = opendir (dir_path);
    if (!dir) {
        snprintf (error, size, "could not open migration directory \"%s\": "
                               "%s",
                  dir_path, strerror (errno));
        return -1;
    }
    if (sodium_init () < 0)
        abort ();
    migration_t *migrations = NULL;
    int count = 0, capacity = 0, rc = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL) {
        int version = s_parse_name (entry->d_name);
        if (version == 0)
            continue;
        if (version < 0) {
            snprintf (error, size, "cannot use migration file \"%s/%s\": its "
                                   "name must be NNN_description.sql "
                                   "(lower case, digits, underscores)",
                      dir_path, entry->d_name);
            rc = -1;
            break;
        }
        char path[CW_MIGRATE_PATH_MAX + 256];
        snprintf (path, sizeof (path), "%s/%s", dir_path, entry->d_name);
        char *text = s_read_file (path, error, size);
        if (!text) {
            rc = -1;
            break;
        }
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            migrations = (migration_t *) realloc (
                migrations, (size_t) capacity * sizeof (migration_t));
            if (!migrations)
                abort ();
        }
        migration_t *migration = &migrations[count++];
        migration->version = version;
        migration->name = strdup (entry->d_name);
        if (!migration->name)
            abort ();
        migration->text = text;
        unsigned char digest[crypto_hash_sha256_BYTES];
        crypto_hash_sha256 (digest, (const unsigned char *) text,
                            strlen (text));
        sodium_bin2hex (migration->sha256, sizeof (migration->sha256), digest,
                        sizeof (digest));
    }
    closedir (dir);
    if (rc == 0 && count == 0) {
        snprintf (error, size, "no migration files (NNN_description.sql) in "
                               "\"%s\"",
                  dir_path);
        rc = -1;
    }
    if (rc == 0) {
        qsort (migrations, (size_t) count, sizeof (migration_t), s_compare);
        for (int index = 1; index < count; index++)
            if (migrations[index].version == migrations[index - 1].version) {
                snprintf (error, size, "cannot use migration files \"%s\" "
                                       "and \"%s\": both have version %d",
                          migrations[index - 1].name, migrations[index].name,
                          migrations[index].version);
                rc = -1;
                break;
            }
    }
    if (rc) {
        s_migrations_free (migrations, count);
        return -1;
    }
    *migrations_p = migrations;
    return count;
}

//  Inside a fresh transaction: takes the island's lock (when lock is
//  true), becomes the schema owner and puts the schema on the search
//  path. Returns 0 or -1 (transaction rolled back).
static int
s_enter_island (cw_pg_t *pg, const char *island, bool lock, char *error,
                size_t size)
{
    const char *values[] = { island };
    if (lock && cw_pg_exec_sql (pg, s_lock_sql, 1, values, NULL)) {
        snprintf (error, size, "could not lock island \"%s\": %s", island,
                  cw_pg_error (pg));
        return -1;
    }
    cw_pg_rows_t *rows = NULL;
    if (cw_pg_exec_sql (pg, s_enter_sql, 1, values, &rows)) {
        snprintf (error, size, "cannot migrate island \"%s\" as this role: "
                               "%s (connect as the owner of schema \"%s\")",
                  island, cw_pg_error (pg), island);
        return -1;
    }
    int found = cw_pg_rows_count (rows);
    cw_pg_rows_destroy (&rows);
    if (found == 0) {
        cw_pg_rollback (pg);
        snprintf (error, size, "schema \"%s\" does not exist: run "
                               "\"causeway-migrate roles\" as a superuser "
                               "first",
                  island);
        return -1;
    }
    return 0;
}

//  The current transaction's id as text into xact. Returns 0, or -1 with
//  error.
static int
s_xact (cw_pg_t *pg, char *xact, size_t xact_size, char *error, size_t size)
{
    cw_pg_rows_t *rows = NULL;
    if (cw_pg_exec_sql (pg, s_xact_sql, 0, NULL, &rows)) {
        snprintf (error, size, "could not read the transaction id: %s",
                  cw_pg_error (pg));
        return -1;
    }
    snprintf (xact, xact_size, "%s", cw_pg_rows_value (rows, 0, 0));
    cw_pg_rows_destroy (&rows);
    return 0;
}

//  Applies one migration unless it is there. Returns 1 when applied, 0
//  when it already was, -1 on error (transaction rolled back).
static int
s_apply_one (cw_pg_t *pg, const char *island, migration_t *migration,
             char *error, size_t size)
{
    if (cw_pg_begin (pg)) {
        snprintf (error, size, "could not begin transaction: %s",
                  cw_pg_error (pg));
        return -1;
    }
    if (s_enter_island (pg, island, true, error, size))
        return -1;
    if (cw_pg_exec_sql (pg, s_create_sql, 0, NULL, NULL)) {
        snprintf (error, size, "could not create %s.schema_migrations: %s",
                  island, cw_pg_error (pg));
        return -1;
    }
    char version[16];
    snprintf (version, sizeof (version), "%d", migration->version);
    const char *find_values[] = { version };
    cw_pg_rows_t *rows = NULL;
    if (cw_pg_exec_sql (pg, s_find_sql, 1, find_values, &rows)) {
        snprintf (error, size, "could not read %s.schema_migrations: %s",
                  island, cw_pg_error (pg));
        return -1;
    }
    int rc = 1;
    if (cw_pg_rows_count (rows) > 0) {
        const char *sha256 = cw_pg_rows_value (rows, 0, 1);
        if (sha256 && strcmp (sha256, migration->sha256) == 0)
            rc = 0;
        else {
            snprintf (error, size, "cannot apply \"%s/%s\": version %d was "
                                   "applied with another content (sha256 %s, "
                                   "file now %s); migrations are "
                                   "forward-only: restore the file and add a "
                                   "new one",
                      island, migration->name, migration->version,
                      sha256 ? sha256 : "?", migration->sha256);
            rc = -1;
        }
        cw_pg_rows_destroy (&rows);
        cw_pg_rollback (pg);
        return rc;
    }
    cw_pg_rows_destroy (&rows);
    //  Forward-only and in order: a file numbered below the newest applied
    //  one (added late, e.g. by a merge) would run after migrations that
    //  never saw it
    if (cw_pg_exec_sql (pg, s_newest_sql, 0, NULL, &rows)) {
        snprintf (error, size, "could not read %s.schema_migrations: %s",
                  island, cw_pg_error (pg));
        return -1;
    }
    const char *newest_text = cw_pg_rows_count (rows) > 0
                                  ? cw_pg_rows_value (rows, 0, 0)
                                  : NULL;
    long newest = newest_text ? strtol (newest_text, NULL, 10) : 0;
    cw_pg_rows_destroy (&rows);
    if (newest > migration->version) {
        snprintf (error, size, "cannot apply \"%s/%s\": version %d is below "
                               "the newest applied one (%ld), so it would run "
                               "out of order; number it above %ld",
                  island, migration->name, migration->version, newest, newest);
        cw_pg_rollback (pg);
        return -1;
    }
    //  The runner's transaction, to see whether the file ended it
    char xact[32], after[32];
    if (s_xact (pg, xact, sizeof (xact), error, size))
        return -1;
    if (cw_pg_exec_script (pg, migration->text)) {
        snprintf (error, size, "could not apply \"%s/%s\": %s (SQLSTATE %s); "
                               "nothing of it was kept",
                  island, migration->name, cw_pg_error (pg),
                  cw_pg_sqlstate (pg));
        return -1;
    }
    if (s_xact (pg, after, sizeof (after), error, size))
        return -1;
    if (strcmp (after, xact)) {
        snprintf (error, size, "cannot record \"%s/%s\": it ended the "
                               "transaction it runs in (COMMIT or ROLLBACK "
                               "in the file); what ran before that may be "
                               "committed or lost: check the island by "
                               "hand, then remove the transaction control",
                  island, migration->name);
        cw_pg_rollback (pg);
        return -1;
    }
    const char *record_values[] = { version, migration->name,
                                    migration->sha256 };
    if (cw_pg_exec_sql (pg, s_record_sql, 3, record_values, NULL)
        || cw_pg_commit (pg)) {
        snprintf (error, size, "could not record \"%s/%s\": %s", island,
                  migration->name, cw_pg_error (pg));
        return -1;
    }
    return 1;
}

//  Checks the island name, then loads its migrations as
//  s_migrations_load does. Returns their count, or -1 with error set.
static int
s_island_load (const char *sql_dir, const char *island,
               migration_t **migrations_p, char *error, size_t size)
{
    if (!cw_migrate_island_valid (island)) {
        snprintf (error, size, "unknown island \"%s\": use erp_mw or shop",
                  island ? island : "");
        return -1;
    }
    return s_migrations_load (sql_dir, island, migrations_p, error, size);
}

int
cw_migrate_apply (cw_pg_t *pg, const char *sql_dir, const char *island,
                  FILE *out, char *error, size_t size)
{
    assert (pg);
    assert (sql_dir);
    assert (error);
    migration_t *migrations = NULL;
    int count = s_island_load (sql_dir, island, &migrations, error, size);
    if (count < 0)
        return -1;
    int applied = 0, rc = 0;
    for (int index = 0; index < count; index++) {
        long long started = s_now_msec ();
        int result = s_apply_one (pg, island, &migrations[index], error, size);
        if (result < 0) {
            rc = -1;
            break;
        }
        if (result > 0) {
            applied++;
            char elapsed[24];
            snprintf (elapsed, sizeof (elapsed), "%lld",
                      s_now_msec () - started);
            cw_log (CW_LOG_INFO, "migration_applied", "applied migration",
                    "island", island, "file", migrations[index].name,
                    "sha256", migrations[index].sha256, "#duration_ms",
                    elapsed, NULL);
            if (out)
                fprintf (out, "%s: applied %s (%s ms)\n", island,
                         migrations[index].name, elapsed);
        }
    }
    if (rc == 0 && out) {
        if (applied == 0)
            fprintf (out, "%s: nothing to do, all %d migrations already "
                          "applied\n",
                     island, count);
        else
            fprintf (out, "%s: applied %d of %d migrations, %d were already "
                          "applied\n",
                     island, applied, count, count - applied);
    }
    s_migrations_free (migrations, count);
    return rc;
}

int
cw_migrate_status (cw_pg_t *pg, const char *sql_dir, const char *island,
                   FILE *out, char *error, size_t size)
{
    assert (pg);
    assert (sql_dir);
    assert (error);
    migration_t *migrations = NULL;
    int count = s_island_load (sql_dir, island, &migrations, error, size);
    if (count < 0)
        return -1;
    cw_pg_rows_t *rows = NULL;
    int rc = -1;
    if (cw_pg_begin (pg)) {
        snprintf (error, size, "could not begin transaction: %s",
                  cw_pg_error (pg));
        goto done;
    }
    if (s_enter_island (pg, island, false, error, size))
        goto done;
    if (cw_pg_exec_sql (pg, s_exists_sql, 0, NULL, &rows)) {
        snprintf (error, size, "could not read %s.schema_migrations: %s",
                  island, cw_pg_error (pg));
        goto done;
    }
    bool exists = strcmp (cw_pg_rows_value (rows, 0, 0), "t") == 0;
    cw_pg_rows_destroy (&rows);
    if (exists && cw_pg_exec_sql (pg, s_list_sql, 0, NULL, &rows)) {
        snprintf (error, size, "could not read %s.schema_migrations: %s",
                  island, cw_pg_error (pg));
        goto done;
    }
    cw_pg_rollback (pg);
    rc = 0;
    int pending = 0, changed = 0, missing = 0;
    int applied_count = rows ? cw_pg_rows_count (rows) : 0;
    for (int index = 0; index < count; index++) {
        migration_t *migration = &migrations[index];
        const char *state = "pending";
        const char *at = "";
        for (int row = 0; row < applied_count; row++) {
            const char *version = cw_pg_rows_value (rows, row, 0);
            if (version && strtol (version, NULL, 10) == migration->version) {
                const char *sha256 = cw_pg_rows_value (rows, row, 2);
                at = cw_pg_rows_value (rows, row, 3);
                state = sha256 && strcmp (sha256, migration->sha256) == 0
                            ? "applied" : "CHANGED";
                break;
            }
        }
        if (strcmp (state, "pending") == 0)
            pending++;
        else
        if (strcmp (state, "CHANGED") == 0)
            changed++;
        if (out)
            fprintf (out, "%s: %-8s %s%s%s\n", island, state, migration->name,
                     *at ? "  " : "", at ? at : "");
    }
    for (int row = 0; row < applied_count; row++) {
        const char *version = cw_pg_rows_value (rows, row, 0);
        long number = version ? strtol (version, NULL, 10) : 0;
        bool found = false;
        for (int index = 0; index < count && !found; index++)
            found = migrations[index].version == number;
        if (!found) {
            missing++;
            if (out)
                fprintf (out, "%s: MISSING  %s (applied, but no such file in "
                              "%s/%s)\n",
                         island, cw_pg_rows_value (rows, row, 1), sql_dir,
                         island);
        }
    }
    if (out)
        fprintf (out, "%s: %d applied, %d pending, %d changed, %d missing\n",
                 island, count - pending - changed, pending, changed, missing);
    if (changed || missing) {
        snprintf (error, size, "island \"%s\" does not match its migration "
                               "files: %d changed, %d missing",
                  island, changed, missing);
        rc = -1;
    }
done:
    cw_pg_rows_destroy (&rows);
    cw_pg_rollback (pg);
    s_migrations_free (migrations, count);
    return rc;
}

int
cw_migrate_roles (cw_pg_t *pg, const char *sql_dir, FILE *out, char *error,
                  size_t size)
{
    assert (pg);
    assert (sql_dir);
    assert (error);
    char path[CW_MIGRATE_PATH_MAX];
    snprintf (path, sizeof (path), "%s/roles.sql", sql_dir);
    char *text = s_read_file (path, error, size);
    if (!text)
        return -1;
    static const char *count_sql
        = "SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname LIKE 'cw\\_%'";
    cw_pg_rows_t *rows = NULL;
    long before = 0, after = 0;
    int rc = -1;
    if (cw_pg_begin (pg)
        || cw_pg_exec_sql (pg, count_sql, 0, NULL, &rows)) {
        snprintf (error, size, "could not read roles: %s", cw_pg_error (pg));
        goto done;
    }
    before = strtol (cw_pg_rows_value (rows, 0, 0), NULL, 10);
    cw_pg_rows_destroy (&rows);
    if (cw_pg_exec_script (pg, text)) {
        snprintf (error, size, "could not create roles and schemas from "
                               "\"%s\": %s (SQLSTATE %s; this needs a "
                               "superuser connection)",
                  path, cw_pg_error (pg), cw_pg_sqlstate (pg));
        goto done;
    }
    if (cw_pg_exec_sql (pg, count_sql, 0, NULL, &rows)
        || cw_pg_commit (pg)) {
        snprintf (error, size, "could not commit roles: %s", cw_pg_error (pg));
        goto done;
    }
    after = strtol (cw_pg_rows_value (rows, 0, 0), NULL, 10);
    rc = 0;
    if (out)
        fprintf (out, "roles: %ld created, %ld already present; schemas "
                      "erp_mw and shop exist\n",
                 after - before, before);
done:
    cw_pg_rows_destroy (&rows);
    cw_pg_rollback (pg);
    free (text);
    return rc;
}
