-- Per-account settings (GET/PUT /accounts/{alias}/settings, worker/db/settings.ts): one row per
-- account that has changed any; an account without a row has the defaults (pending timeout 60
-- minutes, no shared-pool fallback). Read by primary key when an execution starts or restarts.
CREATE TABLE IF NOT EXISTS account_settings (
  account_alias TEXT PRIMARY KEY,
  -- A PENDING execution that no agent has leased after this many minutes ends INIT_FAILURE (no_agent).
  pending_timeout_minutes INTEGER NOT NULL,
  -- 1: location-less jobs may run on the shared pool while none of the account's own agents is online.
  shared_pool_fallback INTEGER NOT NULL,
  updated_time INTEGER NOT NULL
);
