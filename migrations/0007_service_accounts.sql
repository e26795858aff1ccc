-- Service accounts (/serviceAccounts/{alias}) and what POST /authentication/login checks.
-- The password is never stored: only a salted PBKDF2-SHA256 hash (base64), with its salt (base64)
-- and the iteration count it was made with, so the count can be raised later (a login rehashes).
-- `token_version` is carried by every token the login issues and compared on each request: bumping
-- it (a new password, username or role) or deleting the row refuses those tokens at once.
CREATE TABLE IF NOT EXISTS service_accounts (
  id TEXT PRIMARY KEY,
  account_alias TEXT NOT NULL,
  alias TEXT NOT NULL,
  -- What login takes: unique across the service, case-insensitively (ASCII only, see the schema).
  username TEXT NOT NULL COLLATE NOCASE,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  password_salt TEXT NOT NULL,
  password_iterations INTEGER NOT NULL,
  token_version INTEGER NOT NULL DEFAULT 1,
  created_time INTEGER NOT NULL,
  last_updated_time INTEGER NOT NULL
);
-- One alias per account (and GET/PUT/DELETE of one by alias).
CREATE UNIQUE INDEX IF NOT EXISTS service_accounts_by_alias ON service_accounts (account_alias, alias);
-- GET /serviceAccounts/{alias}: newest first, as every list.
CREATE INDEX IF NOT EXISTS service_accounts_by_account ON service_accounts (account_alias, created_time DESC, id DESC);
-- Login looks an account up by username; the uniqueness is the service-wide rule.
CREATE UNIQUE INDEX IF NOT EXISTS service_accounts_by_username ON service_accounts (username);
