--  Lease tokens: every claim (and every insert leased to its broker)
--  stamps the jobs it leases with a token its broker never reuses; COMMIT,
--  RENEW and RELEASE act only on the lease of the token they carry. The
--  owner and attempts alone cannot tell two leases of one job by one
--  broker apart once its claims and commits run on separate connections
--  (docs/broker.md, "Leases"; docs/simulation.md).
--
--  Rows leased before this migration have no token: no broker's COMMIT,
--  RENEW or RELEASE matches them, and the sweep makes them ready once
--  their lease runs out, with no attempt spent. Stop the brokers (they
--  drain and release) before applying it, as for any migration that
--  changes the broker's statements.
ALTER TABLE erp_mw.jobs ADD COLUMN lease_token bigint;
COMMENT ON COLUMN erp_mw.jobs.lease_token IS
    'Token of the current lease (set with lease_owner by a claim; NULL when not leased)';
