--  erp_mw.audit_log: append-only and hash-chained.
--
--  Each row stores prev_hash (the hash of the row before it, 32 zero bytes
--  for the first) and hash = sha256(prev_hash || content), where content
--  is the canonical text of (seq, at in microseconds, actor, action,
--  target, correlation_id, detail). A BEFORE INSERT trigger computes them
--  under a transaction-level advisory lock, so inserting transactions
--  queue and the chain is linear; seq is unique, so a fork is impossible
--  even under REPEATABLE READ (the second insert fails instead).
--  UPDATE, DELETE and TRUNCATE raise for anyone but the table owner
--  (application roles are not even granted them).

CREATE TABLE erp_mw.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq bigint NOT NULL UNIQUE,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target text,
    correlation_id text,
    detail jsonb NOT NULL DEFAULT '{}',
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);
COMMENT ON TABLE erp_mw.audit_log IS
    'Append-only, hash-chained audit of every inbound/outbound ERP contract call and operator action';

--  The canonical content hashed for one row.
CREATE FUNCTION erp_mw.audit_content (seq bigint, at timestamptz,
                                      actor text, action text, target text,
                                      correlation_id text, detail jsonb)
RETURNS bytea
LANGUAGE sql IMMUTABLE
AS $$
    SELECT convert_to (jsonb_build_array (
        seq, (extract (epoch FROM at) * 1000000)::bigint, actor, action,
        target, correlation_id, detail)::text, 'UTF8')
$$;

CREATE FUNCTION erp_mw.audit_chain ()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, erp_mw
AS $$
DECLARE
    last_seq bigint;
    last_hash bytea;
BEGIN
    --  One writer at a time until commit: the chain stays linear.
    PERFORM pg_advisory_xact_lock (hashtext ('erp_mw.audit_log'));
    SELECT seq, hash INTO last_seq, last_hash
        FROM erp_mw.audit_log ORDER BY seq DESC LIMIT 1;
    NEW.seq := coalesce (last_seq, 0) + 1;
    NEW.at := coalesce (NEW.at, now ());
    NEW.prev_hash := coalesce (last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    NEW.hash := sha256 (NEW.prev_hash || erp_mw.audit_content (
        NEW.seq, NEW.at, NEW.actor, NEW.action, NEW.target,
        NEW.correlation_id, NEW.detail));
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON erp_mw.audit_log
    FOR EACH ROW EXECUTE FUNCTION erp_mw.audit_chain ();

--  Runs as the caller (SECURITY INVOKER): current_user is whoever
--  changes the table.
CREATE FUNCTION erp_mw.audit_append_only ()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF current_user <> (SELECT pg_get_userbyid (relowner)
                        FROM pg_catalog.pg_class WHERE oid = TG_RELID) THEN
        RAISE EXCEPTION 'cannot % erp_mw.audit_log: the audit log is append-only', lower (TG_OP)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the schema owner may repair it.';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON erp_mw.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION erp_mw.audit_append_only ();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON erp_mw.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION erp_mw.audit_append_only ();

--  Recomputes the chain. Returns the number of rows checked and the seq of
--  the first row whose links or hash do not match (NULL when it verifies).
CREATE FUNCTION erp_mw.audit_verify (OUT checked bigint, OUT first_broken bigint)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    entry record;
    expected_prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    expected_seq bigint := 1;
BEGIN
    checked := 0;
    first_broken := NULL;
    FOR entry IN SELECT * FROM erp_mw.audit_log ORDER BY seq LOOP
        checked := checked + 1;
        IF entry.seq <> expected_seq
           OR entry.prev_hash <> expected_prev
           OR entry.hash <> sha256 (entry.prev_hash || erp_mw.audit_content (
                  entry.seq, entry.at, entry.actor, entry.action,
                  entry.target, entry.correlation_id, entry.detail)) THEN
            first_broken := entry.seq;
            RETURN;
        END IF;
        expected_prev := entry.hash;
        expected_seq := entry.seq + 1;
    END LOOP;
END
$$;
