-- bench/b2-insert.sql: one job per transaction (B2's producer), an
-- http.generic customer upsert at erpsim; run by pgbench -R 100.
INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload, target,
                         correlation_id, produced_at)
VALUES ('http.generic', 'bench', 'b2-' || :client_id || '-' || random (),
        '{"method": "POST", "path": "/api/v1/customers",
          "body": {"tenant": "bench", "customerId": "C-B2", "name": "B2"}}',
        'erp', 'b2', clock_timestamp ());
