--  erp_mw: jobs of one ordering key commit in the order of their ids.
--  The claim (and the broker's publish) treat a keyed job as its key's
--  head when no earlier job of the key (smaller id) is unfinished. An id
--  is drawn when a row is formed but seen only at commit, so two
--  transactions inserting jobs of one key at once could commit the later
--  id first: a claim in between saw no earlier job and ran the later one
--  first, or both became heads. Now every keyed insert takes a
--  transaction lock on its key and draws its id only then, so the next
--  insert of that key waits for the commit and gets a larger id
--  (tests/check_sql_schema, test_ordering_lock). The locks are 256
--  stripes of the key's hash, so a transaction inserting jobs of many keys
--  holds at most 256 locks of PostgreSQL's shared lock table (sized by
--  max_locks_per_transaction x max_connections); keys of one stripe only
--  wait for each other while an insert of one of them is uncommitted.
--  broker/cw_store.c (lock_keys) takes the same stripes, in ascending
--  order, before its publish insert.
CREATE FUNCTION erp_mw.jobs_ordering_lock ()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock (hashtext ('erp_mw.jobs.ordering_key'),
                                   hashtext (NEW.ordering_key) & 255);
    NEW.id := nextval (pg_get_serial_sequence ('erp_mw.jobs', 'id'));
    RETURN NEW;
END;
$$;
REVOKE ALL ON FUNCTION erp_mw.jobs_ordering_lock () FROM PUBLIC;

CREATE TRIGGER jobs_ordering_lock
    BEFORE INSERT ON erp_mw.jobs
    FOR EACH ROW
    WHEN (NEW.ordering_key IS NOT NULL)
    EXECUTE FUNCTION erp_mw.jobs_ordering_lock ();
