--  shop grants. A migration that adds a table adds its grants in the same
--  file.
REVOKE ALL ON ALL TABLES IN SCHEMA shop FROM PUBLIC;

--  causeway-relay: reads the outbox and marks rows published, nothing else.
GRANT USAGE ON SCHEMA shop TO cw_relay_shop;
GRANT SELECT ON shop.outbox TO cw_relay_shop;
GRANT UPDATE (published_at) ON shop.outbox TO cw_relay_shop;

--  The reference webshop: DML on its own schema.
GRANT USAGE ON SCHEMA shop TO cw_webshop;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    shop.outbox, shop.inbox, shop.customers, shop.orders, shop.order_lines,
    shop.order_documents, shop.product_prices, shop.payments
    TO cw_webshop;

--  cw_report: read-only on the business tables.
GRANT USAGE ON SCHEMA shop TO cw_report;
GRANT SELECT ON
    shop.outbox, shop.inbox, shop.customers, shop.orders, shop.order_lines,
    shop.order_documents, shop.product_prices, shop.payments
    TO cw_report;
