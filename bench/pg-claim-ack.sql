-- bench/pg-claim-ack.sql: one pgbench transaction = what a broker does for
-- one batch, with the statements of broker/cw_store.c: the claim (its own
-- commit), then the group commit of the batch's results (one statement,
-- one commit: the jobs done + one job_attempts row each).
-- Run with -M prepared (the broker prepares its statements) and
-- -D limit=100.
WITH claimed AS (
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
       j.max_attempts, j.payload::text, j.tenant, j.idempotency_key,
       j.correlation_id, j.traceparent)
SELECT coalesce (array_agg (id), '{}') AS ids FROM claimed \gset
WITH t AS (
    SELECT id, 'done'::text AS state, 1 AS attempts, 'bench-worker'::text AS worker,
           1 AS attempt, 'ok'::text AS outcome, 0 AS http_status,
           NULL::text AS error, 0::bigint AS duration_ms
      FROM unnest (:ids::bigint[]) AS id),
 u AS (
    UPDATE erp_mw.jobs j
       SET state = t.state, attempts = t.attempts,
           last_error = COALESCE (t.error, j.last_error),
           dead_reason = NULL,
           finished_at = CASE WHEN t.state IN ('done', 'dead') THEN now () END,
           lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
      FROM t
     WHERE j.id = t.id AND j.state = 'leased'
       AND j.lease_owner = 'bench-' || :client_id AND j.lease_token = 1
       AND j.attempts = t.attempts - 1
    RETURNING j.id),
 a AS (
    INSERT INTO erp_mw.job_attempts (job_id, attempt, worker, outcome,
        http_status, error, duration_ms, started_at, finished_at)
    SELECT t.id, t.attempt, t.worker, t.outcome, NULLIF (t.http_status, 0),
           t.error, LEAST (t.duration_ms, 2147483647)::int,
           now () - t.duration_ms * interval '1 millisecond', now ()
      FROM t JOIN u ON u.id = t.id
    ON CONFLICT (job_id, attempt) DO NOTHING)
SELECT count(*) FROM u;
