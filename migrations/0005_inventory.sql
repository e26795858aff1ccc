-- The account inventory (GET/PUT /inventory/{alias}): one document per account, replaced whole.
-- `hosts` is the JSON array as answered: [{"id", "groups": [...], "hostVars": {...}}], at most
-- 10,000 hosts (the 1 MiB body limit keeps it well under D1's 2 MB row limit). Host vars are
-- not secrets and are stored as given. A lease of a dynamic-inventory job reads it by primary key.
CREATE TABLE IF NOT EXISTS inventories (
  account_alias TEXT PRIMARY KEY,
  hosts TEXT NOT NULL,
  updated_time INTEGER NOT NULL
);
