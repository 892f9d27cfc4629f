-- udc schema, part 1: accounts, sessions, devices, trust.
-- Applied by `wrangler d1 migrations apply` (D1), by udc-server at start and by the Spin component.
-- Rules for every migration here (the runner splits on ";" at line end):
--   * one statement per ";"-terminated line group, no triggers, no ";" inside literals;
--   * no BLOB columns: binary values are stored as hex or base64 text, because D1 returns blobs
--     as JSON arrays and the three executors should read every column the same way;
--   * times are integer milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  kdf_algorithm TEXT NOT NULL,
  kdf_memory_kib INTEGER NOT NULL,
  kdf_iterations INTEGER NOT NULL,
  kdf_parallelism INTEGER NOT NULL,
  kdf_salt TEXT NOT NULL,
  -- hex HMAC-SHA256(pepper, auth_key): the client's Argon2id-derived key, never the password
  auth_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  name TEXT NOT NULL,
  platform TEXT NOT NULL,
  os_version TEXT NOT NULL,
  app_version TEXT NOT NULL,
  -- JSON array of capability names
  capabilities TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  -- soft delete: later features (files shared to a device, audit trails) keep pointing here
  removed_at INTEGER
);

CREATE INDEX devices_by_user ON devices(user_id, created_at);

-- Directed: device_id trusts target_device_id. Both belong to user_id.
CREATE TABLE trust_links (
  device_id TEXT NOT NULL REFERENCES devices(id),
  target_device_id TEXT NOT NULL REFERENCES devices(id),
  user_id TEXT NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (device_id, target_device_id)
);

CREATE INDEX trust_links_by_target ON trust_links(target_device_id);

-- A session is one refresh-token family; access tokens carry its id (`sid`) and are refused
-- as soon as it is revoked.
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  device_id TEXT REFERENCES devices(id),
  created_at INTEGER NOT NULL,
  revoked_at INTEGER,
  revoked_reason TEXT,
  -- set when this session is swapped for a device-bound one; guards the swap's batch
  replaced_by TEXT
);

CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_device ON sessions(device_id);

CREATE TABLE refresh_tokens (
  -- hex SHA-256 of the opaque token; the token itself is never stored
  token_hash TEXT PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions(id),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  -- hash of the token that replaced this one; guards the rotation's batch
  replaced_by TEXT
);

CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);

-- Failed sign-ins in a fixed window, keyed by "email:<sha256>" or "ip:<address>".
CREATE TABLE login_throttle (
  key TEXT PRIMARY KEY,
  window_start INTEGER NOT NULL,
  failures INTEGER NOT NULL
);
