-- Deterministic seed: every value derives from the row number, so the same size gives the
-- same data every time. :customers customers, 3x orders, ~9x items, ~3x payments, ~2x audit.
INSERT INTO app.customers
SELECT g,
       'Customer ' || g,
       CASE WHEN g % 17 = 0 THEN NULL WHEN g % 19 = 0 THEN '' ELSE 'customer' || g || '@example.com' END,
       (ARRAY['US','GB','DE','SG','AU','FR','JP','BR'])[1 + g % 8],
       CASE WHEN g % 23 = 0 THEN NULL ELSE round(((g::bigint * 7919) % 1000000) / 100.0, 2) END,
       date '2015-01-01' + (g % 3650),
       timestamp '2024-01-01 00:00:00' + g * interval '37 seconds' + (g % 1000) * interval '1 microsecond',
       CASE WHEN g % 29 = 0 THEN NULL ELSE timestamptz '2025-06-01 00:00:00+00' + g * interval '53 seconds' END,
       CASE WHEN g % 101 = 0 THEN 'NaN'::float8 WHEN g % 103 = 0 THEN '-0'::float8
            WHEN g % 107 = 0 THEN 'Infinity'::float8 WHEN g % 109 = 0 THEN '-Infinity'::float8
            ELSE (g % 1000) / 7.0 END,
       CASE WHEN g % 31 = 0 THEN NULL ELSE decode(md5('avatar' || g), 'hex') END,
       jsonb_build_object('tier', (ARRAY['gold','silver','bronze'])[1 + g % 3], 'tags', jsonb_build_array('t' || g % 5, 't' || g % 7), 'since', 2015 + g % 10),
       md5('customer' || g)::uuid
FROM generate_series(1, :customers) g;

INSERT INTO app.orders
SELECT g,
       1 + (g::bigint * 7) % :customers,
       (ARRAY['open','paid','shipped','delivered','returned'])[1 + g % 5],
       round(((g::bigint * 104729) % 10000000) / 10000.0, 4),
       timestamptz '2025-01-01 00:00:00+00' + g * interval '11 seconds',
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'note for order ' || g END
FROM generate_series(1, 3 * :customers) g;

INSERT INTO app.order_items
SELECT o, l, 'SKU-' || lpad(((o::bigint * 31 + l) % 99999)::text, 7, '0'), 1 + (o + l) % 9, round(((o::bigint * 13 + l * 7) % 50000) / 100.0, 2)
FROM generate_series(1, 3 * :customers) o, generate_series(1, 1 + o % 5) l;

INSERT INTO app.payments
SELECT md5('payment' || g)::uuid, g, round(((g::bigint * 104729) % 10000000) / 10000.0, 2),
       timestamptz '2025-01-01 00:05:00+00' + g * interval '11 seconds',
       (ARRAY['card','transfer','wallet'])[1 + g % 3]
FROM generate_series(1, 3 * :customers) g
WHERE g % 10 <> 0;

INSERT INTO app.audit_log
SELECT timestamptz '2025-01-01 00:00:00+00' + (g / 2) * interval '1 second',   -- pairs of exact duplicates
       'user' || (g / 2) % 500, (ARRAY['login','logout','update','export'])[1 + (g / 2) % 4],
       jsonb_build_object('n', g / 2)
FROM generate_series(1, 2 * :customers) g;

ANALYZE;
