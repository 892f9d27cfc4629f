-- udc schema, part 5: remote control sessions between a user's own devices. Each row is also
-- the audit trail: who asked, which device, what mode, when it started, how and when it ended.

CREATE TABLE remote_sessions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  requester_device_id TEXT NOT NULL REFERENCES devices(id),
  target_device_id TEXT NOT NULL REFERENCES devices(id),
  mode TEXT NOT NULL CHECK (mode IN ('view_only', 'view_and_control')),
  max_duration_secs INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'denied', 'expired', 'ended')),
  created_at INTEGER NOT NULL,
  answered_at INTEGER,
  ended_at INTEGER,
  -- requester_ended, target_ended, canceled, max_duration, heartbeat_lost, not_answered, denied
  end_reason TEXT,
  ended_by_device_id TEXT,
  -- the last heartbeat of each side while active
  requester_seen_at INTEGER,
  target_seen_at INTEGER,
  -- input events relayed through the server (when no peer-to-peer path exists)
  relayed_inputs INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX remote_sessions_by_user ON remote_sessions(user_id, created_at);
