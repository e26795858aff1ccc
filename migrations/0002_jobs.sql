-- Jobs: one row per job definition.
-- `definition` is the non-secret part as JSON (what the API answers, plus `has…` flags), so reads
-- and lists never decrypt. `secrets` is one AES-256-GCM ciphertext ("v1.<kid>.<iv>.<ct>", see
-- worker/lib/secrets.ts) of the JSON of every secret of the job (job and host private keys,
-- repository password and key), or NULL when the job has none.
-- `version` increments on every replace: an update only lands on the version it read (no lost merge).
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  account_alias TEXT NOT NULL,
  definition TEXT NOT NULL,
  secrets TEXT,
  created_time INTEGER NOT NULL,
  last_updated_time INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 1
);
-- List by account, newest first (and the count of the same list).
CREATE INDEX IF NOT EXISTS jobs_by_account ON jobs (account_alias, created_time DESC, id DESC);
