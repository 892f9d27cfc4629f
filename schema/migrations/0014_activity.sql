-- udc schema, part 14: the account's security activity, its owner's own record of what
-- happened to it (sign-ins and failed attempts, devices added and removed, trust given and
-- withdrawn, approvals, password and recovery code changes, remote sessions). Each row is
-- written in the batch of the change it records; rows older than 90 days are swept.
CREATE TABLE account_activity (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  -- The device (if any) and session that acted, and from where.
  device_id TEXT,
  session_id TEXT,
  client_ip TEXT,
  client TEXT,
  -- The device it acted on (added, removed, trusted, approved for remote control).
  target_device_id TEXT,
  -- JSON: what else it says (how one signed in, a remote session's mode).
  detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX account_activity_by_user ON account_activity (user_id, id);
CREATE INDEX account_activity_by_age ON account_activity (at);
