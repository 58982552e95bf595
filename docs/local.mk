#  docs/: fragment of the top Makefile.am (see there).

#  Database: islands, roles, migrations, claim query, retention.
EXTRA_DIST += docs/database.md
#  idempotency keys, retry arithmetic, configuration; sample config rules
EXTRA_DIST += docs/idempotency-keys.md docs/retry.md docs/config.md etc/README
#  The envelope, events, sync bodies and contract versions (proto/)
EXTRA_DIST += docs/envelope.md
#  erpsim: the ERP simulator
EXTRA_DIST += docs/erpsim.md
#  CURVE, ZAP, roles and certificates
EXTRA_DIST += docs/security.md
#  The CWP/1 wire codec (proto/cw_msg)
EXTRA_DIST += docs/wire.md
#  The broker's pure decision core (broker/cw_core)
EXTRA_DIST += docs/broker-core.md
#  causeway-worker: config, flows, outcome mapping, shutdown
EXTRA_DIST += docs/worker.md etc/causeway-worker.cfg
#  webshop branch: the reference webshop and service tokens
EXTRA_DIST += docs/webshop.md docs/tokens.md




#  causeway-relay: outbox -> PUBLISH/ACK, delivery guarantees
EXTRA_DIST += docs/relay.md
#  Seeded simulation of the broker's decision core (tests/sim)
EXTRA_DIST += docs/simulation.md
#  causeway, the operator client: status, dlq list, replay
EXTRA_DIST += docs/operator.md
#  Operations: what to watch, who is paged, what to do
EXTRA_DIST += docs/runbook.md
