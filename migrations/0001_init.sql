-- Accounts exist implicitly by alias; this table records settings when an account has any.
CREATE TABLE IF NOT EXISTS accounts (
  alias TEXT PRIMARY KEY,
  webhook_secret TEXT,
  created_time INTEGER NOT NULL
);

-- The executions index: one row per execution, written through by the Execution Durable Object
-- (the authority). `version` is the object's transition counter: a write only lands if newer.
CREATE TABLE IF NOT EXISTS executions (
  id TEXT PRIMARY KEY,
  account_alias TEXT NOT NULL,
  job_id TEXT NOT NULL,
  status TEXT NOT NULL,
  trigger TEXT NOT NULL DEFAULT 'api',
  schedule_id TEXT,
  agent_id TEXT,
  reason TEXT,
  created_time INTEGER NOT NULL,
  updated_time INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 0,
  -- The execution as answered by the API (snake_case JSON), so lists need no Durable Object calls.
  snapshot TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS executions_by_account ON executions (account_alias, created_time DESC, id DESC);
CREATE INDEX IF NOT EXISTS executions_by_account_status ON executions (account_alias, status, created_time DESC, id DESC);
CREATE INDEX IF NOT EXISTS executions_by_job ON executions (account_alias, job_id, created_time DESC, id DESC);
