--  erp_mw: wake brokers when jobs are inserted. One notification per
--  statement (a statement-level trigger), never one per row: an INSERT of
--  10 000 rows sends one NOTIFY. Brokers LISTEN on channel cw_jobs and
--  claim; a short poll remains the safety net (and the only way under a
--  transaction-pooling PgBouncer, where LISTEN does not work).
CREATE FUNCTION erp_mw.jobs_notify () RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify ('cw_jobs', '');
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION erp_mw.jobs_notify () FROM PUBLIC;

CREATE TRIGGER jobs_notify AFTER INSERT ON erp_mw.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION erp_mw.jobs_notify ();
