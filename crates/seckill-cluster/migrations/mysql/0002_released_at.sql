-- When an order gave its units back (cancelled or expired), by the clock of
-- the node that changed it: the nodes look for recent releases that never
-- reached Redis (`crate::reconcile::Releases`) without reading every order.
-- Orders released before this column existed count from their creation.
ALTER TABLE orders ADD COLUMN released_at BIGINT NULL;
UPDATE orders SET released_at = created_at WHERE status IN ('expired', 'cancelled');
CREATE INDEX orders_by_released_at ON orders (released_at);
