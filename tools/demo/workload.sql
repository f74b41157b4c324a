-- The demo's scripted workload, run with psql against the source.
\set ON_ERROR_STOP 0
\echo '--- 1. companies and customers (customer 3 belongs to company "dat": the map filters it out)'
BEGIN;
INSERT INTO companies VALUES ('usmf', 'Contoso US', 'USD'), ('usrt', 'Contoso Retail', 'USD'), ('dat', 'Demo data', 'EUR');
INSERT INTO customers (id, company, name, status, credit_limit) VALUES
    (1, 'usmf', 'Adatum', 'active', 5000),
    (2, 'usrt', 'Fabrikam', 'blocked', 100),
    (3, 'dat', 'Internal', 'active', NULL);
COMMIT;

\echo '--- 2. an order with two lines, in one transaction'
BEGIN;
INSERT INTO orders (id, customer_id, status, total, note) VALUES (100, 1, 'draft', 37.50, 'call first');
INSERT INTO order_lines VALUES (100, 1, 'widget', 3, 10.00), (100, 2, 'gadget', 1, 7.50);
COMMIT;

\echo '--- 3. the order is confirmed and shipped; a line is removed'
UPDATE orders SET status = 'shipped', total = 30.00 WHERE id = 100;
DELETE FROM order_lines WHERE order_id = 100 AND line = 2;

\echo '--- 4. a credit order: the target''s CHECK constraint rejects it, so the source COMMIT fails'
BEGIN;
INSERT INTO orders (id, customer_id, status, total) VALUES (101, 1, 'draft', -15.00);
INSERT INTO order_lines VALUES (101, 1, 'refund', 1, -15.00);
COMMIT;

\echo '--- 5. a savepoint rolled back: only what survives is sent'
BEGIN;
INSERT INTO orders (id, customer_id, status, total) VALUES (102, 2, 'draft', 99.00);
SAVEPOINT s1;
INSERT INTO order_lines VALUES (102, 1, 'mistake', 1, 1.00);
ROLLBACK TO SAVEPOINT s1;
INSERT INTO order_lines VALUES (102, 1, 'bolt', 9, 11.00);
COMMIT;
