-- bench/pg-claim.sql: the broker's batch claim (broker/cw_store.c
-- s_sql_claim: due ready jobs of the worker's flows, heads of their
-- ordering keys only, SKIP LOCKED), timed alone: BEGIN, the claim,
-- ROLLBACK, so the backlog keeps its size from one claim to the next.
-- Run with -M prepared -D limit=100.
BEGIN;
UPDATE erp_mw.jobs j
   SET state = 'leased', lease_owner = 'bench-' || :client_id, lease_token = 1,
       lease_expires_at = now () + 30000::bigint * interval '1 millisecond'
 WHERE j.id IN (
   SELECT c.id FROM erp_mw.jobs c
    WHERE c.state = 'ready' AND c.next_run_at <= now ()
      AND c.flow = ANY ('{noop,http.generic}'::text[])
      AND (c.target IS NULL OR c.flow = ANY ('{noop,http.generic}'::text[])
           OR (c.flow, c.target) IN (SELECT w.flow, w.target
                 FROM unnest ('{}'::text[], '{}'::text[]) AS w (flow, target)))
      AND (c.ordering_key IS NULL OR NOT EXISTS (
           SELECT 1 FROM erp_mw.jobs p
            WHERE p.ordering_key = c.ordering_key AND p.id < c.id
              AND p.state IN ('ready', 'leased', 'parked', 'dead')))
    ORDER BY c.next_run_at, c.id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING j.id, j.flow, j.target, j.ordering_key, j.attempts,
   j.max_attempts, (extract (epoch FROM j.lease_expires_at) * 1000)::bigint,
   j.payload::text, j.tenant, j.idempotency_key, j.correlation_id,
   j.traceparent,
   -- the broker formats created_at with to_char and a format with colons;
   -- pgbench would take the colons for variables, so: to_json
   to_json (j.created_at AT TIME ZONE 'UTC')::text;
ROLLBACK;
