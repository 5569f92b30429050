CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL);
INSERT INTO items (name) SELECT 'item ' || n FROM generate_series(1, 1000) AS n;
