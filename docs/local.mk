#  docs/: fragment of the top Makefile.am (see there).

#  Database: islands, roles, migrations, claim query, retention.
EXTRA_DIST += docs/database.md
