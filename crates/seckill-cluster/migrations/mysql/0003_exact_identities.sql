-- User ids, Idempotency-Keys and payment references compare byte for byte.
-- utf8mb4_bin is a PAD SPACE collation: it took `victim ` for `victim`,
-- which let one user read and cancel another's orders and made a keyed
-- reservation collide with another user's row. Binary strings never pad,
-- on MySQL and MariaDB alike; the API bounds these values in bytes.
ALTER TABLE orders
    MODIFY user_id VARBINARY(200) NOT NULL,
    MODIFY idempotency_key VARBINARY(200) NULL,
    MODIFY payment_ref VARBINARY(200) NULL;
