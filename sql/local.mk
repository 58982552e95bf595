#  sql/: fragment of the top Makefile.am (see there).
#  Installed under $(pkgdatadir)/sql, where causeway-migrate looks by
#  default; every new migration file is listed here.
nobase_dist_pkgdata_DATA = \
    sql/roles.sql \
    sql/erp_mw/001_queue.sql \
    sql/erp_mw/002_audit_log.sql \
    sql/erp_mw/003_retention.sql \
    sql/erp_mw/004_grants.sql \
    sql/erp_mw/005_jobs_notify.sql \
    sql/erp_mw/006_claim_indexes.sql \
    sql/erp_mw/007_jobs_max_attempts_policy.sql \
    sql/erp_mw/008_attempts_without_fk.sql \
    sql/erp_mw/009_lease_token.sql \
    sql/erp_mw/010_ordering_open_idx.sql \
    sql/erp_mw/011_ordering_lock.sql \
    sql/erp_mw/012_jobs_discarded.sql \
    sql/shop/001_tables.sql \
    sql/shop/002_grants.sql \
    sql/shop/003_webshop_inbox_request.sql \
    sql/shop/004_outbox_notify.sql
