-- Schedules (the original's Job Schedule Service): /jobs/{alias}/{jobId}/schedules.
-- A schedule fires its job on behalf of a service account (by alias, checked again at each fire).
-- `next_run_time` is the slot the cron tick fires next, or NULL when nothing is to fire (disabled,
-- or a date that has fired): the tick only ever reads rows through schedules_due.
-- `last_run_time` is the slot that fired last; `last_run_delay_ms` how long after it the tick
-- that started it ran (a slot missed while the service was down fires once, late).
CREATE TABLE IF NOT EXISTS schedules (
  id TEXT PRIMARY KEY,
  account_alias TEXT NOT NULL,
  job_id TEXT NOT NULL,
  description TEXT NOT NULL,
  service_account_alias TEXT NOT NULL,
  trigger_type TEXT NOT NULL,
  expression TEXT NOT NULL,
  timezone TEXT NOT NULL,
  enabled INTEGER NOT NULL,
  next_run_time INTEGER,
  last_run_time INTEGER,
  last_run_delay_ms INTEGER,
  last_execution_id TEXT,
  last_error TEXT,
  created_time INTEGER NOT NULL,
  last_updated_time INTEGER NOT NULL
);
-- The cron tick: due rows in slot order, so its cost grows with the number due, not held.
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_run_time) WHERE next_run_time IS NOT NULL;
-- A job's schedules, newest first (the list, its count, the 100-per-job limit, delete with the job).
CREATE INDEX IF NOT EXISTS schedules_by_job ON schedules (account_alias, job_id, created_time DESC, id DESC);
