-- Per-account concurrency (ACCOUNT_CONCURRENCY) across every dispatcher that serves the account:
-- each of its locations and the shared pool. A dispatcher claims a slot here, in one conditional
-- INSERT (atomic in D1), before it grants a lease, so two dispatchers never both take the last
-- slot; the slot goes when the execution leaves its leased states (the dispatcher's `finished`).
-- See worker/db/slots.ts.
CREATE TABLE IF NOT EXISTS account_slots (
  execution_id TEXT PRIMARY KEY,
  account_alias TEXT NOT NULL,
  taken_time INTEGER NOT NULL
);
-- The count of an account's slots (claim and pick).
CREATE INDEX IF NOT EXISTS account_slots_by_account ON account_slots (account_alias, taken_time);

-- One job's executions filtered by status (GET /jobs/{alias}/{jobId}/executions?status=): a job
-- run every minute by a schedule has half a million executions a year; without this the filter
-- walks all of them.
CREATE INDEX IF NOT EXISTS executions_by_job_status ON executions (account_alias, job_id, status, created_time DESC, id DESC);
