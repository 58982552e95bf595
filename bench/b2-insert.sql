-- bench/b2-insert.sql: one job per transaction (B2's producer), an
-- http.generic customer upsert at erpsim; run by pgbench -R 100. The job's
-- id also goes to b2_made in the same transaction: that row is never
-- updated, so its xmin's commit timestamp is when the job became visible.
WITH j AS (
    INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload, target,
                             correlation_id, produced_at)
    VALUES ('http.generic', 'bench', 'b2-' || :client_id || '-' || random (),
            '{"method": "POST", "path": "/api/v1/customers",
              "body": {"tenant": "bench", "customerId": "C-B2", "name": "B2"}}',
            'erp', 'b2', clock_timestamp ())
    RETURNING id)
INSERT INTO public.b2_made (job_id) SELECT id FROM j;
