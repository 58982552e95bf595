#  docs/: fragment of the top Makefile.am (see there).

#  webshop branch: the reference webshop and service tokens
EXTRA_DIST += docs/webshop.md docs/tokens.md

#  erpsim: the ERP simulator
EXTRA_DIST += docs/erpsim.md

#  Database: islands, roles, migrations, claim query, retention.
EXTRA_DIST += docs/database.md

#  The envelope, events, sync bodies and contract versions (proto/)
EXTRA_DIST += docs/envelope.md

#  idempotency keys, retry arithmetic, configuration; sample config rules
EXTRA_DIST += docs/idempotency-keys.md docs/retry.md docs/config.md etc/README
