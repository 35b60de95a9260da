CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    kind        TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
