-- Webhooks (callbacks): each account's signing secret, and one row per delivery.
--
-- webhook_secrets: the current secret and, for 24 hours after a rotation, the previous one (which
-- keeps signing beside the new one). Both are ciphertexts under RUNNER_SECRETS_KEY, like job secrets.
CREATE TABLE IF NOT EXISTS webhook_secrets (
  account_alias TEXT PRIMARY KEY,
  secret TEXT NOT NULL,
  previous_secret TEXT,
  previous_until INTEGER,
  created_time INTEGER NOT NULL
);

-- deliveries: one per (execution, callback, event) that the callback's level selects. The id is
-- derived from those three, so an outbox entry sent twice makes one row. `sequence` counts per
-- execution and URL (what a receiver orders by); `event_seq` is the event's own sequence.
-- status: pending (queued or being retried), delivered (a 2xx), failed (retries exhausted, or the
-- URL is refused now); attempts counts every send, redeliveries included.
CREATE TABLE IF NOT EXISTS deliveries (
  id TEXT PRIMARY KEY,
  account_alias TEXT NOT NULL,
  job_id TEXT NOT NULL,
  execution_id TEXT NOT NULL,
  callback_index INTEGER NOT NULL,
  url TEXT NOT NULL,
  level TEXT NOT NULL,
  event_seq INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_response_code INTEGER,
  last_error TEXT,
  created_time INTEGER NOT NULL,
  updated_time INTEGER NOT NULL,
  delivered_time INTEGER
);
-- An execution's deliveries in event order (the list and its count).
CREATE INDEX IF NOT EXISTS deliveries_by_execution ON deliveries (execution_id, event_seq, callback_index);
