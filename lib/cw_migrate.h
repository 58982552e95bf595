/*  =========================================================================
    cw_migrate - forward-only schema migrations of one island

    Files sql/<island>/NNN_description.sql are applied in version order,
    each once, each in its own transaction together with its row in
    <island>.schema_migrations (version, name, sha256, applied_at). The
    transaction takes pg_advisory_xact_lock on the island first, so two
    runners never race: the second waits and then finds the file applied.
    It runs as the owner of the island's schema (SET ROLE, so the
    connecting role must be that owner or a member of it). A file already
    applied whose SHA-256 changed is refused: write a new file instead.

    Human progress lines go to out (NULL for none); errors to error[size].
    =========================================================================
*/
#ifndef CW_MIGRATE_H_INCLUDED
#define CW_MIGRATE_H_INCLUDED

#include "cw_pg.h"

#include <stdbool.h>
#include <stdio.h>

//  True for the names of the islands: "erp_mw" and "shop".
bool
    cw_migrate_island_valid (const char *island);

//  Runs sql_dir/roles.sql (cluster roles and the island schemas) in one
//  transaction. Needs a superuser or CREATEROLE connection. Returns 0 or -1.
int
    cw_migrate_roles (cw_pg_t *pg, const char *sql_dir, FILE *out,
                      char *error, size_t size);

//  Applies the island's pending files. Returns 0 (also when there was
//  nothing to do, which out is told) or -1.
int
    cw_migrate_apply (cw_pg_t *pg, const char *sql_dir, const char *island,
                      FILE *out, char *error, size_t size);

//  Writes each file's state (applied, pending, changed) to out. Returns 0
//  when no applied file changed, -1 otherwise or on error.
int
    cw_migrate_status (cw_pg_t *pg, const char *sql_dir, const char *island,
                       FILE *out, char *error, size_t size);

#endif
