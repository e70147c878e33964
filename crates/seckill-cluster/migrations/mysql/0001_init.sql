-- The cluster's order store on MySQL/MariaDB: the same tables as the
-- embedded SQLite store (crates/seckill-store/migrations/sqlite/0001_init.sql),
-- times in unix milliseconds.
--
-- Text compares byte for byte (utf8mb4_bin): user ids and Idempotency-Keys
-- are case-sensitive, as everywhere else. Lengths are the API's bounds
-- (user id, Idempotency-Key and payment_ref: 200 bytes; name: 200 chars).
CREATE TABLE sales (
    id                     VARCHAR(64) NOT NULL PRIMARY KEY,
    name                   VARCHAR(200) NOT NULL,
    stock                  BIGINT NOT NULL CHECK (stock >= 1),
    price_cents            BIGINT NOT NULL CHECK (price_cents >= 0),
    starts_at              BIGINT NOT NULL,
    ends_at                BIGINT NULL,       -- NULL = no end
    per_user_limit         BIGINT NOT NULL CHECK (per_user_limit >= 1),
    payment_timeout_secs   BIGINT NOT NULL CHECK (payment_timeout_secs >= 1),
    require_purchase_token BOOLEAN NOT NULL,
    created_at             BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per reservation, inserted by the stream consumers.
CREATE TABLE orders (
    id              VARCHAR(64) NOT NULL PRIMARY KEY,
    sale_id         VARCHAR(64) NOT NULL,
    user_id         VARCHAR(200) NOT NULL,
    quantity        BIGINT NOT NULL CHECK (quantity >= 1),
    status          VARCHAR(16) NOT NULL
                    CHECK (status IN ('queued', 'pending_payment', 'paid', 'expired', 'cancelled')),
    idempotency_key VARCHAR(200) NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    paid_at         BIGINT NULL,
    payment_ref     VARCHAR(200) NULL,
    CONSTRAINT orders_sale FOREIGN KEY (sale_id) REFERENCES sales (id),
    KEY orders_by_user (user_id, sale_id),
    -- One answer per Idempotency-Key of a user on a sale (I5). No partial
    -- index here, but a unique index holds any number of rows with a NULL
    -- part, so orders without a key never collide: the same rule.
    UNIQUE KEY orders_by_idempotency_key (sale_id, user_id, idempotency_key),
    -- The expiry queue: unpaid orders by deadline, the range
    -- status = 'pending_payment' AND expires_at <= now.
    KEY orders_pending_by_deadline (status, expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
