--  erp_mw: a job's max_attempts is NULL unless the job itself overrides
--  it; NULL means the broker's retry policy for the job's flow
--  (retry/flows, else retry/max_attempts). Before, every row defaulted to
--  10, so the per-flow policy never applied.
ALTER TABLE erp_mw.jobs ALTER COLUMN max_attempts DROP DEFAULT;
ALTER TABLE erp_mw.jobs ALTER COLUMN max_attempts DROP NOT NULL;
COMMENT ON COLUMN erp_mw.jobs.max_attempts IS
    'Attempts before the job is dead (exhausted); NULL: the broker''s policy for the flow';
