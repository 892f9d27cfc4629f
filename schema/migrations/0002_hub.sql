-- udc schema, part 2: the realtime hub's storage (udc-hub's SqlStore).
-- udc-server and the Spin component keep every account's hub here; on Cloudflare each account's
-- hub is a Durable Object that runs these same statements on its own SQLite storage (so the
-- tables stay empty in D1). IF NOT EXISTS because the Durable Object runs them on every start.

-- The last sequence number given out per account; never decreases, so numbers are never reused.
CREATE TABLE IF NOT EXISTS hub_seq (
  user_id TEXT PRIMARY KEY,
  last_seq INTEGER NOT NULL
);

-- The durable event log. `data` is the event's JSON; retention prunes old rows.
CREATE TABLE IF NOT EXISTS hub_events (
  user_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  at INTEGER NOT NULL,
  event TEXT NOT NULL,
  target_device_id TEXT,
  data TEXT NOT NULL,
  PRIMARY KEY (user_id, seq)
);

CREATE TABLE IF NOT EXISTS hub_presence (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  state TEXT NOT NULL,
  last_seen INTEGER NOT NULL,
  acked_seq INTEGER NOT NULL,
  PRIMARY KEY (user_id, device_id)
);
