--  erp_mw grants: each program gets only what it needs. A migration that
--  adds a table adds its grants in the same file.
REVOKE ALL ON ALL TABLES IN SCHEMA erp_mw FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA erp_mw FROM PUBLIC;

--  causeway-broker: DML on the queue tables, no DDL, audit log append-only.
GRANT USAGE ON SCHEMA erp_mw TO cw_broker;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    erp_mw.jobs, erp_mw.job_attempts, erp_mw.inbox, erp_mw.outbox,
    erp_mw.idempotency, erp_mw.external_refs, erp_mw.subscriptions,
    erp_mw.feed_cursors
    TO cw_broker;
GRANT SELECT, INSERT ON erp_mw.audit_log TO cw_broker;
GRANT EXECUTE ON FUNCTION erp_mw.purge_finished (interval, int),
    erp_mw.purge_expired (int), erp_mw.audit_verify (),
    erp_mw.audit_content (bigint, timestamptz, text, text, text, text, jsonb)
    TO cw_broker;

--  cw_report: read-only on the business tables.
GRANT USAGE ON SCHEMA erp_mw TO cw_report;
GRANT SELECT ON
    erp_mw.jobs, erp_mw.job_attempts, erp_mw.inbox, erp_mw.outbox,
    erp_mw.external_refs, erp_mw.subscriptions, erp_mw.feed_cursors,
    erp_mw.audit_log
    TO cw_report;
GRANT EXECUTE ON FUNCTION erp_mw.audit_verify (),
    erp_mw.audit_content (bigint, timestamptz, text, text, text, text, jsonb)
    TO cw_report;
