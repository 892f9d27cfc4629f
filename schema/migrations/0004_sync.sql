-- udc schema, part 4: what devices keep in step — the clipboard (end-to-end encrypted), settings
-- documents with conflict policies, sign-in approvals from a trusted device, and handoff snapshots.

-- Clipboard items. The server holds ciphertext it cannot read: the content type and plaintext size
-- are all it knows. An item too big to travel inline is an encrypted file (`file_id`).
CREATE TABLE clipboard_items (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  device_id TEXT NOT NULL REFERENCES devices(id),
  content_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  -- base64 of the device's sealed item (nonce + AEAD output); NULL when the item is a file
  ciphertext TEXT,
  file_id TEXT REFERENCES files(id),
  created_at INTEGER NOT NULL
);

CREATE INDEX clipboard_items_by_user ON clipboard_items(user_id, created_at);

-- Per device: whether it sends its copies and receives the others'. No row = both on.
CREATE TABLE clipboard_prefs (
  device_id TEXT PRIMARY KEY REFERENCES devices(id),
  user_id TEXT NOT NULL REFERENCES users(id),
  send INTEGER NOT NULL,
  receive INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- Per account: how many clipboard items are kept (default 20).
CREATE TABLE clipboard_accounts (
  user_id TEXT PRIMARY KEY REFERENCES users(id),
  history_size INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- One change counter per account: every applied settings change takes the next number as its
-- version, so "what changed since N" is one range read. `writer` makes each batch's swap of the
-- counter unique: the rest of the batch is guarded on it (D1 has no interactive transactions).
CREATE TABLE sync_counters (
  user_id TEXT PRIMARY KEY REFERENCES users(id),
  seq INTEGER NOT NULL,
  writer TEXT
);

-- Settings documents: (namespace, key) -> JSON value. A delete keeps a tombstone (value NULL)
-- so deltas carry it.
CREATE TABLE settings_docs (
  user_id TEXT NOT NULL REFERENCES users(id),
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  version INTEGER NOT NULL,
  modified_at INTEGER NOT NULL,
  device_id TEXT,
  PRIMARY KEY (user_id, namespace, key)
);

CREATE INDEX settings_docs_by_version ON settings_docs(user_id, version);

CREATE TABLE settings_policies (
  user_id TEXT NOT NULL REFERENCES users(id),
  namespace TEXT NOT NULL,
  policy TEXT NOT NULL CHECK (policy IN ('client_wins', 'server_wins', 'most_recent_wins', 'manual')),
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, namespace)
);

-- Stale writes under the `manual` policy wait here for the user.
CREATE TABLE settings_conflicts (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  device_id TEXT,
  base_version INTEGER NOT NULL,
  server_version INTEGER NOT NULL,
  client_value TEXT,
  client_modified_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  resolved_at INTEGER,
  resolution TEXT
);

CREATE INDEX settings_conflicts_by_user ON settings_conflicts(user_id, created_at);

-- Every conflict and how it was resolved.
CREATE TABLE settings_resolutions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  device_id TEXT,
  policy TEXT NOT NULL,
  outcome TEXT NOT NULL,
  base_version INTEGER NOT NULL,
  server_version INTEGER NOT NULL,
  version INTEGER,
  conflict_id TEXT,
  at INTEGER NOT NULL
);

CREATE INDEX settings_resolutions_by_user ON settings_resolutions(user_id, at);

-- A new device asking to sign in with an approval from a device already signed in.
-- `user_id` is NULL when the email has no account: the request looks the same and expires.
CREATE TABLE pending_logins (
  id TEXT PRIMARY KEY,
  user_id TEXT REFERENCES users(id),
  email TEXT NOT NULL,
  device_name TEXT NOT NULL,
  public_key TEXT NOT NULL,
  client_ip TEXT,
  -- SHA-256 of the secret the new device polls with
  poll_secret_hash TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'consumed')),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  approver_device_id TEXT,
  -- the account key sealed to `public_key` by the approver; cleared once delivered
  sealed_key TEXT,
  responded_at INTEGER,
  session_id TEXT
);

CREATE INDEX pending_logins_by_user ON pending_logins(user_id, state, expires_at);

CREATE INDEX pending_logins_by_email ON pending_logins(email, created_at);

-- Handoff: what a device was doing, sealed like the clipboard, for another device to take up.
CREATE TABLE handoffs (
  user_id TEXT NOT NULL REFERENCES users(id),
  key TEXT NOT NULL,
  device_id TEXT NOT NULL REFERENCES devices(id),
  content_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  ciphertext TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, key)
);
