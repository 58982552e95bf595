--  shop: wake the relay when outbox rows are inserted (one notification
--  per statement, channel cw_shop_outbox), and record why the broker
--  rejected a row (it is then never published again).
CREATE FUNCTION shop.outbox_notify () RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify ('cw_shop_outbox', '');
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION shop.outbox_notify () FROM PUBLIC;

CREATE TRIGGER outbox_notify AFTER INSERT ON shop.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION shop.outbox_notify ();

ALTER TABLE shop.outbox ADD COLUMN rejected_reason text;
COMMENT ON COLUMN shop.outbox.rejected_reason IS
    'Why the broker rejected the event (set with published_at; never retried)';
GRANT UPDATE (rejected_reason) ON shop.outbox TO cw_relay_shop;
