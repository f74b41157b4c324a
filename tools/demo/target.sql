-- The demo's target database: a CRM with its own rules.
CREATE TABLE companies (
    id       text PRIMARY KEY,
    name     text NOT NULL,
    currency text
);

CREATE TABLE customers (
    id            integer PRIMARY KEY,
    company       text NOT NULL,
    name          text NOT NULL,
    state         smallint NOT NULL,
    origin_system text NOT NULL
);

CREATE TABLE orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL,
    status      text NOT NULL,
    -- The CRM does not accept credit orders; the ERP does.
    total       numeric(12,2) NOT NULL CONSTRAINT orders_total_not_negative CHECK (total >= 0)
);

CREATE TABLE order_lines (
    order_id integer NOT NULL REFERENCES orders ON DELETE CASCADE,
    line     integer NOT NULL,
    item     text NOT NULL,
    qty      integer NOT NULL,
    price    numeric(12,2),
    PRIMARY KEY (order_id, line)
);
