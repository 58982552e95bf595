--  erp_mw: an operator may discard a dead letter (the broker's
--  dlq.discard, `causeway dlq discard`). It leaves the dead-letter queue
--  for the state 'discarded', which no claim and no head-of-line check
--  looks at, so the jobs parked behind it on its ordering key run. The
--  row stays, with its attempts, last error and dead_reason; the audit
--  log names who discarded it and why.
--
--  The new check allows every state the old one did, so rows already in
--  the table satisfy it: NOT VALID skips the scan of the whole table
--  (under the ACCESS EXCLUSIVE lock this statement holds) that could
--  only confirm it; new and updated rows are checked all the same.
ALTER TABLE erp_mw.jobs
    DROP CONSTRAINT jobs_state_check,
    ADD CONSTRAINT jobs_state_check
        CHECK (state IN ('ready', 'leased', 'done', 'dead', 'parked',
                         'discarded')) NOT VALID;
COMMENT ON CONSTRAINT jobs_state_check ON erp_mw.jobs IS
    'discarded (012): a dead letter an operator dropped; never run, never blocks its key';
