/*  =========================================================================
    causeway-migrate - creates the roles and schemas, applies and shows
    the forward-only migrations of one island

        causeway-migrate roles  [--sql-dir DIR]
        causeway-migrate apply  --island erp_mw|shop [--sql-dir DIR]
        causeway-migrate status --island erp_mw|shop [--sql-dir DIR]

    The database URI comes from cw_secret: the 0600 file named by
    CW_DB_URI_FILE, or the systemd credential cw_db_uri. `roles` needs a
    superuser URI; `apply` and `status` the island owner's.
    Exit: 0 done, 1 failed, 2 bad usage or configuration.
    =========================================================================
*/
#include "cw_log.h"
#include "cw_migrate.h"
#include "cw_pg.h"
#include "cw_secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CW_PKGDATADIR
#   define CW_PKGDATADIR "/usr/local/share/causeway"
#endif
#define CW_MIGRATE_EXIT_OK 0
#define CW_MIGRATE_EXIT_FAILED 1
#define CW_MIGRATE_EXIT_USAGE 2
#define CW_MIGRATE_ERROR_SIZE 1024

static int
s_usage (const char *problem)
{
    if (problem)
        fprintf (stderr, "causeway-migrate: %s\n", problem);
    fprintf (stderr,
             "usage: causeway-migrate roles|apply|status [--island NAME] "
             "[--sql-dir DIR]\n"
             "  roles   create missing roles and the erp_mw and shop schemas "
             "(superuser URI)\n"
             "  apply   apply the island's pending migrations (owner URI)\n"
             "  status  list the island's migrations and their state\n"
             "  --island erp_mw|shop   required by apply and status\n"
             "  --sql-dir DIR          default %s/sql\n"
             "The database URI is read from the 0600 file named by "
             "CW_DB_URI_FILE\n"
             "or the systemd credential cw_db_uri.\n",
             CW_PKGDATADIR);
    return CW_MIGRATE_EXIT_USAGE;
}

int
main (int argc, char *argv[])
{
    cw_log_init ("causeway-migrate", CW_LOG_WARN);
    const char *command = NULL;
    const char *island = NULL;
    const char *sql_dir = CW_PKGDATADIR "/sql";
    for (int index = 1; index < argc; index++) {
        const char *arg = argv[index];
        if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0) {
            s_usage (NULL);
            return CW_MIGRATE_EXIT_OK;
        }
        if (strcmp (arg, "--island") == 0 || strcmp (arg, "--sql-dir") == 0) {
            if (index + 1 >= argc) {
                char problem[64];
                snprintf (problem, sizeof (problem), "option %s needs a value",
                          arg);
                return s_usage (problem);
            }
            if (strcmp (arg, "--island") == 0)
                island = argv[++index];
            else
                sql_dir = argv[++index];
        }
        else
        if (arg[0] == '-' || command) {
            char problem[256];
            snprintf (problem, sizeof (problem), "unexpected argument \"%.200s\"",
                      arg);
            return s_usage (problem);
        }
        else
            command = arg;
    }
    if (!command)
        return s_usage ("missing command");
    bool roles = strcmp (command, "roles") == 0;
    bool apply = strcmp (command, "apply") == 0;
    bool status = strcmp (command, "status") == 0;
    if (!roles && !apply && !status) {
        char problem[256];
        snprintf (problem, sizeof (problem), "unknown command \"%.200s\"",
                  command);
        return s_usage (problem);
    }
    if (!roles && !island)
        return s_usage ("option --island is required (erp_mw or shop)");
    if (island && !cw_migrate_island_valid (island)) {
        char problem[256];
        snprintf (problem, sizeof (problem),
                  "invalid --island \"%.200s\": use erp_mw or shop", island);
        return s_usage (problem);
    }
    char error[CW_MIGRATE_ERROR_SIZE];
    char *uri = NULL;
    int found = cw_secret_lookup ("CW_DB_URI", &uri, error, sizeof (error));
    if (found != 0) {
        if (found > 0)
            fprintf (stderr, "causeway-migrate: no database URI: set "
                             "CW_DB_URI_FILE to a 0600 file holding it, or "
                             "provide the systemd credential cw_db_uri\n");
        else
            fprintf (stderr, "causeway-migrate: cannot read the database "
                             "URI: %s\n",
                     error);
        return CW_MIGRATE_EXIT_USAGE;
    }
    cw_pg_t *pg = cw_pg_new (uri);
    cw_secret_destroy (&uri);
    int rc = CW_MIGRATE_EXIT_FAILED;
    if (cw_pg_connect (pg)) {
        fprintf (stderr, "causeway-migrate: %s\n", cw_pg_error (pg));
        goto done;
    }
    int result;
    if (roles)
        result = cw_migrate_roles (pg, sql_dir, stdout, error, sizeof (error));
    else
    if (apply)
        result = cw_migrate_apply (pg, sql_dir, island, stdout, error,
                                   sizeof (error));
    else
        result = cw_migrate_status (pg, sql_dir, island, stdout, error,
                                    sizeof (error));
    if (result)
        fprintf (stderr, "causeway-migrate: %s\n", error);
    else
        rc = CW_MIGRATE_EXIT_OK;
done:
    cw_pg_destroy (&pg);
    return rc;
}
