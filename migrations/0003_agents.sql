-- Agents ("minions") and the registration tokens they register with.
-- Secrets are never stored: only the SHA-256 (hex) of a registration token or agent credential.

CREATE TABLE IF NOT EXISTS agent_tokens (
  id TEXT PRIMARY KEY,
  account_alias TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  -- A location fixed by the token wins over the one the agent asks for.
  location TEXT,
  created_time INTEGER NOT NULL,
  revoked_time INTEGER
);
-- GET /minions/{alias}/tokens: live tokens, newest first.
CREATE INDEX IF NOT EXISTS agent_tokens_by_account ON agent_tokens (account_alias, revoked_time, created_time DESC, id DESC);

CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY,
  -- NULL: an agent of the shared pool (run by the operator for every account).
  account_alias TEXT,
  name TEXT NOT NULL,
  location TEXT,
  version TEXT,
  hostname TEXT,
  concurrency INTEGER NOT NULL DEFAULT 1,
  credential_hash TEXT NOT NULL,
  -- The registration token used (NULL for a shared-pool agent registered with an operator JWT).
  token_id TEXT,
  created_time INTEGER NOT NULL,
  last_seen INTEGER,
  revoked_time INTEGER
);
-- GET /minions/{alias}: live agents, newest first.
CREATE INDEX IF NOT EXISTS agents_by_account ON agents (account_alias, revoked_time, created_time DESC, id DESC);
-- Routing: does the account have live agents in this location (or the default one)?
CREATE INDEX IF NOT EXISTS agents_by_location ON agents (account_alias, location, revoked_time);

-- Which executions an agent holds (minions list, revocation): the executions index by agent.
CREATE INDEX IF NOT EXISTS executions_by_agent ON executions (agent_id, status);
