--  Retention: finished jobs and expired de-duplication rows leave the hot
--  tables in small batches. Each call deletes at most one batch and
--  returns how many rows went; call it again (each call its own
--  transaction) until it returns 0, e.g. from a timer:
--      SELECT erp_mw.purge_finished ('7 days', 5000);
--  Dead jobs (the dead-letter queue) are kept for replay; so is the inbox
--  until its expires_at.

CREATE FUNCTION erp_mw.purge_finished (older_than interval, batch int)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    deleted bigint;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'invalid batch size: %', batch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM erp_mw.jobs
        WHERE id IN (SELECT id FROM erp_mw.jobs
                     WHERE state = 'done'
                       AND finished_at < now () - older_than
                     ORDER BY finished_at
                     LIMIT batch
                     FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;

CREATE FUNCTION erp_mw.purge_expired (batch int)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    deleted bigint;
    more bigint;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'invalid batch size: %', batch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM erp_mw.inbox
        WHERE idempotency_key IN (SELECT idempotency_key FROM erp_mw.inbox
                                  WHERE expires_at < now ()
                                  LIMIT batch FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    DELETE FROM erp_mw.idempotency
        WHERE key IN (SELECT key FROM erp_mw.idempotency
                      WHERE expires_at < now () AND state = 'done'
                      LIMIT batch FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS more = ROW_COUNT;
    RETURN deleted + more;
END
$$;
