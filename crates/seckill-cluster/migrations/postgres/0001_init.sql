-- The cluster's order store: the same tables as the embedded SQLite store
-- (crates/seckill-store/migrations/sqlite/0001_init.sql), times in unix
-- milliseconds. Sales are immutable once created; only orders change.
CREATE TABLE sales (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    stock                  BIGINT NOT NULL CHECK (stock >= 1),
    price_cents            BIGINT NOT NULL CHECK (price_cents >= 0),
    starts_at              BIGINT NOT NULL,
    ends_at                BIGINT,            -- NULL = no end
    per_user_limit         BIGINT NOT NULL CHECK (per_user_limit >= 1),
    payment_timeout_secs   BIGINT NOT NULL CHECK (payment_timeout_secs >= 1),
    require_purchase_token BOOLEAN NOT NULL,
    created_at             BIGINT NOT NULL
);

-- One row per reservation, inserted by the stream consumers.
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    sale_id         TEXT NOT NULL REFERENCES sales (id),
    user_id         TEXT NOT NULL,
    quantity        BIGINT NOT NULL CHECK (quantity >= 1),
    status          TEXT NOT NULL
                    CHECK (status IN ('queued', 'pending_payment', 'paid', 'expired', 'cancelled')),
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    paid_at         BIGINT,
    payment_ref     TEXT
);

CREATE INDEX orders_by_user ON orders (user_id, sale_id);

-- One answer per Idempotency-Key of a user on a sale (I5).
CREATE UNIQUE INDEX orders_by_idempotency_key
    ON orders (sale_id, user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The expiry queue: unpaid orders by deadline.
CREATE INDEX orders_pending_by_deadline
    ON orders (expires_at)
    WHERE status = 'pending_payment';
