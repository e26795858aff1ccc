-- Accounts exist implicitly by alias; this table records settings when an account has any.
CREATE TABLE IF NOT EXISTS accounts (
  alias TEXT PRIMARY KEY,
  webhook_secret TEXT,
  created_time INTEGER NOT NULL
);
