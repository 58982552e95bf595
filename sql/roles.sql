--  Cluster roles and the two island schemas. Run once per cluster and
--  database by a superuser (or a CREATEROLE role that may create schemas):
--      causeway-migrate roles
--  Idempotent: missing roles are created, existing ones are left alone.
--  Roles get LOGIN but no password: the operator sets passwords (or
--  certificates) with ALTER ROLE; none is ever stored here.
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[
        'cw_erp_mw_owner',      --  owns schema erp_mw, runs its migrations
        'cw_shop_owner',        --  owns schema shop, runs its migrations
        'cw_broker',            --  causeway-broker: DML on erp_mw
        'cw_relay_shop',        --  causeway-relay for shop: shop.outbox only
        'cw_webshop',           --  reference webshop: DML on shop
        'cw_report'             --  read-only reporting on both islands
    ]
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                       WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format ('CREATE ROLE %I LOGIN NOSUPERUSER '
                                'NOCREATEDB NOCREATEROLE NOINHERIT',
                                role_name);
            EXCEPTION
                --  Another session created it at the same moment.
                WHEN duplicate_object OR unique_violation THEN
                    NULL;
            END;
        END IF;
    END LOOP;
END
$roles$;

CREATE SCHEMA IF NOT EXISTS erp_mw AUTHORIZATION cw_erp_mw_owner;
CREATE SCHEMA IF NOT EXISTS shop AUTHORIZATION cw_shop_owner;
--  Islands never cross: no PUBLIC access to either schema.
REVOKE ALL ON SCHEMA erp_mw FROM PUBLIC;
REVOKE ALL ON SCHEMA shop FROM PUBLIC;
