-- The audit log (GET /audit/{alias}): one row per change, written by worker/domain/audit.ts, most in
-- the same batch as the change it records. Who (`subject`, `subject_kind`), what (`action`), which
-- resource (`resource_type`, `resource_id`), when (`time`, epoch ms), from where (`ip`, the request's
-- CF-Connecting-IP, NULL locally) and `request_id` (the answer's Runner-Request-Id, to find the log
-- line). `details` is a small JSON object of non-secret facts. Never a secret in any column.
-- `account_alias` is NULL for what belongs to no account (the shared pool; a login of an unknown
-- username). Rows older than 90 days are pruned by the cron (worker/cron.ts).
CREATE TABLE IF NOT EXISTS audit_log (
  id TEXT PRIMARY KEY,
  account_alias TEXT,
  time INTEGER NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  subject_kind TEXT NOT NULL,
  resource_type TEXT NOT NULL,
  resource_id TEXT,
  ip TEXT,
  request_id TEXT,
  details TEXT NOT NULL DEFAULT '{}'
);
-- The account's log, newest first (also with ?since=).
CREATE INDEX IF NOT EXISTS audit_by_account ON audit_log (account_alias, time DESC, id DESC);
-- ?resource=job: one type of resource, newest first.
CREATE INDEX IF NOT EXISTS audit_by_resource_type ON audit_log (account_alias, resource_type, time DESC, id DESC);
-- ?resource=job/{id}: one resource's history, newest first.
CREATE INDEX IF NOT EXISTS audit_by_resource ON audit_log (account_alias, resource_type, resource_id, time DESC, id DESC);
-- The cron's prune: the oldest rows first, whatever their account.
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log (time);
