-- The demo's source database: an ERP with companies, customers, orders and lines.
CREATE EXTENSION IF NOT EXISTS dualwrite;

CREATE TABLE companies (
    id       text PRIMARY KEY,
    name     text NOT NULL,
    currency text NOT NULL DEFAULT 'USD'
);

CREATE TABLE customers (
    id      integer PRIMARY KEY,
    company text NOT NULL REFERENCES companies,
    name    text,
    status  text NOT NULL DEFAULT 'active',
    credit_limit numeric(12,2)          -- not mapped: never leaves the source
);

CREATE TABLE orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers,
    status      text NOT NULL DEFAULT 'draft',
    total       numeric(12,2) NOT NULL DEFAULT 0,
    note        text                    -- not mapped
);

CREATE TABLE order_lines (
    order_id integer NOT NULL REFERENCES orders ON DELETE CASCADE,
    line     integer NOT NULL,
    item     text NOT NULL,
    qty      integer NOT NULL,
    price    numeric(12,2),
    PRIMARY KEY (order_id, line)
);
