--  erp_mw: indexes for the broker's real claim query (broker/cw_store.c).
--  The claim orders ready jobs by (next_run_at, id) and checks head-of-line
--  per ordering key with NOT EXISTS over earlier jobs of the same key in
--  any unfinished state (dead included: a dead job parks its successors).
--  Without these the planner sorts the whole backlog (bench/b4-growth:
--  33 ms at 1k vs 821 ms at 1M ready jobs); with them a claim of 100 is an
--  index scan whatever the depth.
CREATE INDEX jobs_ready_id_idx ON erp_mw.jobs (next_run_at, id)
    WHERE state = 'ready';
CREATE INDEX jobs_okey_idx ON erp_mw.jobs (ordering_key, id)
    WHERE ordering_key IS NOT NULL;
