--  erp_mw: the head-of-line index holds only a key's unfinished jobs.
--  The claim and the publish insert (broker/cw_store.c) look for earlier
--  jobs of a key in state ready, leased, parked or dead. 006's
--  jobs_okey_idx covered every job of the key, done ones included, so
--  each head checked visited the heap page of every done job of its key
--  still in the table: with 1,000 done jobs per key a claim of 100 read
--  ~100,000 buffers (80 ms at 1M rows instead of 5 ms), growing with the
--  key's history until retention (tests/check_sql_schema,
--  test_head_of_line_with_history). 001's jobs_ordering_idx leaves out
--  dead, so no query can use it. One partial index on exactly those
--  states replaces both.
DROP INDEX erp_mw.jobs_okey_idx;
DROP INDEX erp_mw.jobs_ordering_idx;
CREATE INDEX jobs_okey_idx ON erp_mw.jobs (ordering_key, id)
    WHERE ordering_key IS NOT NULL
      AND state IN ('ready', 'leased', 'parked', 'dead');
