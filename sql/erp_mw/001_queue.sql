--  erp_mw: the job queue, its attempts, inbox, outbox, stored sync-API
--  responses, id mappings, subscriptions and feed cursors.

CREATE TABLE erp_mw.jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow text NOT NULL,
    tenant text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    ordering_key text,
    payload jsonb NOT NULL,
    correlation_id text,
    traceparent text,
    target text,
    state text NOT NULL DEFAULT 'ready'
        CHECK (state IN ('ready', 'leased', 'done', 'dead', 'parked')),
    attempts int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts int NOT NULL DEFAULT 10 CHECK (max_attempts >= 1),
    next_run_at timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_expires_at timestamptz,
    last_error text,
    dead_reason text
        CHECK (dead_reason IN ('rejected', 'exhausted', 'version_rejected',
                               'operator')),
    origin_job_id bigint,
    produced_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CHECK (state <> 'leased'
           OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (state <> 'dead' OR dead_reason IS NOT NULL)
);
COMMENT ON TABLE erp_mw.jobs IS
    'The queue: one row per unit of work; claimed with FOR UPDATE SKIP LOCKED';
COMMENT ON COLUMN erp_mw.jobs.origin_job_id IS
    'The dead job this one replays (no foreign key: the origin may be purged)';

--  The claim query's index: only ready rows, in due order.
CREATE INDEX jobs_ready_idx ON erp_mw.jobs (next_run_at)
    WHERE state = 'ready';
--  Expired leases are found by this one (a lost broker's jobs).
CREATE INDEX jobs_leased_idx ON erp_mw.jobs (lease_expires_at)
    WHERE state = 'leased';
--  Per-key ordering: what is in flight or waiting for one ordering key.
CREATE INDEX jobs_ordering_idx ON erp_mw.jobs (ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('ready', 'leased', 'parked');
--  Dead-letter queue listing and replay by tenant.
CREATE INDEX jobs_dead_idx ON erp_mw.jobs (tenant, flow, finished_at)
    WHERE state = 'dead';
--  Retention: finished jobs by age.
CREATE INDEX jobs_finished_idx ON erp_mw.jobs (finished_at)
    WHERE state = 'done';

CREATE TABLE erp_mw.job_attempts (
    job_id bigint NOT NULL REFERENCES erp_mw.jobs (id) ON DELETE CASCADE,
    attempt int NOT NULL CHECK (attempt >= 1),
    worker text NOT NULL,
    outcome text NOT NULL
        CHECK (outcome IN ('ok', 'retry', 'reject', 'duplicate', 'lost')),
    http_status int,
    error text,
    duration_ms int CHECK (duration_ms >= 0),
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    PRIMARY KEY (job_id, attempt)
);
COMMENT ON TABLE erp_mw.job_attempts IS
    'Every attempt of every job: who ran it, how it ended, how long it took';

CREATE TABLE erp_mw.inbox (
    idempotency_key text PRIMARY KEY,
    source text NOT NULL,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    job_id bigint
);
COMMENT ON TABLE erp_mw.inbox IS
    'De-duplication of everything that enters, kept longer than the longest retry schedule';
CREATE INDEX inbox_expires_idx ON erp_mw.inbox (expires_at);

CREATE TABLE erp_mw.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type text NOT NULL,
    tenant text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    payload jsonb NOT NULL,
    correlation_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
COMMENT ON TABLE erp_mw.outbox IS
    'Events the middleware publishes (erp.*.v1), written in the transaction of the outcome';
CREATE INDEX outbox_unpublished_idx ON erp_mw.outbox (id)
    WHERE published_at IS NULL;

CREATE TABLE erp_mw.idempotency (
    key text PRIMARY KEY,
    request_hash text NOT NULL,
    state text NOT NULL DEFAULT 'in_flight'
        CHECK (state IN ('in_flight', 'done')),
    status int,
    response_body text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CHECK (state = 'in_flight' OR status IS NOT NULL)
);
COMMENT ON TABLE erp_mw.idempotency IS
    'Stored sync-API responses by Idempotency-Key; a replay returns the stored one';
CREATE INDEX idempotency_expires_idx ON erp_mw.idempotency (expires_at);

CREATE TABLE erp_mw.external_refs (
    tenant text NOT NULL,
    entity_kind text NOT NULL
        CHECK (entity_kind IN ('customer', 'order', 'invoice', 'product',
                               'payment')),
    webshop_id text NOT NULL,
    erp_id text,
    last_synced_version bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, entity_kind, webshop_id)
);
COMMENT ON TABLE erp_mw.external_refs IS
    'Webshop id to ERP id, and the last version synced (stale versions are acknowledged, not applied)';
CREATE UNIQUE INDEX external_refs_erp_idx
    ON erp_mw.external_refs (tenant, entity_kind, erp_id)
    WHERE erp_id IS NOT NULL;

CREATE TABLE erp_mw.subscriptions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type text NOT NULL,
    endpoint text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_type, endpoint)
);
COMMENT ON TABLE erp_mw.subscriptions IS
    'Which delivery endpoint receives which event type';

CREATE TABLE erp_mw.feed_cursors (
    feed text PRIMARY KEY,
    cursor text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE erp_mw.feed_cursors IS
    'Position in each polled ERP feed (e.g. price changes since cursor)';
