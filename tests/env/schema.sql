-- The application schema of the rehearsal's source (standing in for the on-prem Oracle
-- database). Types chosen to exercise every canonical-encoding rule of data-validator.
CREATE SCHEMA IF NOT EXISTS app;

CREATE TABLE app.customers (
    id           bigint PRIMARY KEY,
    name         varchar(80) NOT NULL,
    email        varchar(120),            -- some '' and some NULL, as Oracle would have them
    country      char(2) NOT NULL,
    credit_limit numeric(12,2),
    created_on   date NOT NULL,
    updated_at   timestamp NOT NULL,
    last_login   timestamptz,
    score        double precision,        -- includes -0, NaN and infinities
    avatar       bytea,
    profile      jsonb,
    external_id  uuid NOT NULL
);

CREATE TABLE app.orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES app.customers (id),
    status      varchar(16) NOT NULL,
    total       numeric(14,4) NOT NULL,
    ordered_at  timestamptz NOT NULL,
    notes       text
);

CREATE TABLE app.order_items (
    order_id   bigint NOT NULL REFERENCES app.orders (id),
    line_no    integer NOT NULL,
    sku        char(12) NOT NULL,
    qty        integer NOT NULL,
    unit_price numeric(10,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE app.payments (
    id       uuid PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES app.orders (id),
    amount   numeric(12,2) NOT NULL,
    paid_at  timestamptz NOT NULL,
    method   varchar(16) NOT NULL
);

-- No primary key: compared as a multiset; exact duplicate rows are part of the data.
CREATE TABLE app.audit_log (
    event_time timestamptz NOT NULL,
    actor      varchar(40) NOT NULL,
    action     varchar(40) NOT NULL,
    detail     jsonb
);
ALTER TABLE app.audit_log REPLICA IDENTITY FULL;
