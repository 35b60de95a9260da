-- supervisor:no-transaction
-- CONCURRENTLY cannot run inside a transaction; the marker above runs this
-- file on its own (one statement), so writes to events never block.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_account_id_at_idx ON events (account_id, at);
