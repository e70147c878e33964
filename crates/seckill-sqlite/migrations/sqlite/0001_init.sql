-- Sales are immutable once created; only orders change.
CREATE TABLE sales (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    stock                  INTEGER NOT NULL CHECK (stock >= 1),
    price_cents            INTEGER NOT NULL CHECK (price_cents >= 0),
    starts_at              INTEGER NOT NULL,  -- unix milliseconds
    ends_at                INTEGER,           -- unix milliseconds, NULL = no end
    per_user_limit         INTEGER NOT NULL CHECK (per_user_limit >= 1),
    payment_timeout_secs   INTEGER NOT NULL CHECK (payment_timeout_secs >= 1),
    require_purchase_token INTEGER NOT NULL,
    created_at             INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per reservation. Stock in memory is rebuilt from the rows whose
-- status holds stock, never from a stored counter.
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    sale_id         TEXT NOT NULL REFERENCES sales (id),
    user_id         TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity >= 1),
    status          TEXT NOT NULL
                    CHECK (status IN ('queued', 'pending_payment', 'paid', 'expired', 'cancelled')),
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    paid_at         INTEGER,
    payment_ref     TEXT
) WITHOUT ROWID;

CREATE INDEX orders_by_user ON orders (user_id, sale_id);

-- One answer per Idempotency-Key of a user on a sale (I5).
CREATE UNIQUE INDEX orders_by_idempotency_key
    ON orders (sale_id, user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The expiry queue: unpaid orders by deadline.
CREATE INDEX orders_pending_by_deadline
    ON orders (expires_at)
    WHERE status = 'pending_payment';
