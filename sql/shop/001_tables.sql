--  shop: the webshop's outbox and inbox, and the reference webshop's
--  domain tables. Money is always bigint minor units + char(3) currency.

CREATE TABLE shop.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type text NOT NULL,
    tenant text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    payload jsonb NOT NULL,
    correlation_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
COMMENT ON TABLE shop.outbox IS
    'Events the webshop publishes, written in the transaction of the change; read by causeway-relay';
CREATE INDEX outbox_unpublished_idx ON shop.outbox (id)
    WHERE published_at IS NULL;

CREATE TABLE shop.inbox (
    idempotency_key text PRIMARY KEY,
    event_type text NOT NULL,
    response_status int NOT NULL,
    response_body text,
    received_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE shop.inbox IS
    'De-duplication of the /webshop/... calls: a repeated key gets the stored response';

CREATE TABLE shop.customers (
    tenant text NOT NULL,
    customer_id text NOT NULL,
    email text NOT NULL,
    name text NOT NULL,
    address jsonb NOT NULL DEFAULT '{}',
    version bigint NOT NULL DEFAULT 1,
    erp_customer_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, customer_id)
);
COMMENT ON TABLE shop.customers IS
    'Reference webshop customers; version grows with every change';

CREATE TABLE shop.orders (
    tenant text NOT NULL,
    order_id text NOT NULL,
    customer_id text NOT NULL,
    status text NOT NULL,
    currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_minor bigint NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    erp_order_id text,
    payment_status text,
    payment_version bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, order_id),
    FOREIGN KEY (tenant, customer_id) REFERENCES shop.customers
);
COMMENT ON TABLE shop.orders IS
    'Reference webshop orders with their ERP id and latest payment status';
CREATE INDEX orders_order_id_idx ON shop.orders (order_id);

CREATE TABLE shop.order_lines (
    tenant text NOT NULL,
    order_id text NOT NULL,
    line_no int NOT NULL CHECK (line_no >= 1),
    article_number text NOT NULL,
    quantity int NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL,
    line_total_minor bigint NOT NULL,
    PRIMARY KEY (tenant, order_id, line_no),
    FOREIGN KEY (tenant, order_id) REFERENCES shop.orders ON DELETE CASCADE
);
COMMENT ON TABLE shop.order_lines IS 'Lines of an order, amounts in minor units';

CREATE TABLE shop.order_documents (
    tenant text NOT NULL,
    order_id text NOT NULL,
    invoice_number text NOT NULL,
    invoice_id text,
    document_url text,
    document_token text,
    external_version bigint NOT NULL,
    pdf bytea,
    linked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, order_id, invoice_number),
    FOREIGN KEY (tenant, order_id) REFERENCES shop.orders ON DELETE CASCADE
);
COMMENT ON TABLE shop.order_documents IS
    'Invoices linked to orders (erp.invoice.available.v1); the customer invoice endpoint serves them';

CREATE TABLE shop.product_prices (
    article_number text NOT NULL,
    price_list text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    effective_at timestamptz NOT NULL,
    external_version bigint NOT NULL,
    PRIMARY KEY (article_number, price_list)
);
COMMENT ON TABLE shop.product_prices IS
    'ERP prices (erp.price.updated.v1); a lower external_version never overwrites a higher one';

CREATE TABLE shop.payments (
    tenant text NOT NULL,
    order_id text NOT NULL,
    status text NOT NULL,
    amount_minor bigint NOT NULL,
    currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    external_version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, order_id),
    FOREIGN KEY (tenant, order_id) REFERENCES shop.orders ON DELETE CASCADE
);
COMMENT ON TABLE shop.payments IS
    'Latest payment status of an order pushed by the ERP';
