-- A sale's orders by status: the report (`units_by_status`) and `seckill
-- reconcile` read them per sale, which was a scan of every order. (MySQL
-- indexes the foreign key on sale_id by itself.)
CREATE INDEX orders_by_sale ON orders (sale_id, status);
