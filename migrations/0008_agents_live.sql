-- GET /metrics: live agents of every account and the shared pool, online or not, without reading
-- the whole table (agents_by_account leads with the account, which the metrics do not name).
CREATE INDEX IF NOT EXISTS agents_live ON agents (revoked_time, last_seen);
