-- udc schema, part 9: the event outbox, for a host whose account log is not in this database
-- (the Worker: core's data is in D1, each account's log in its Durable Object). A change's
-- events are stored here in the change's own batch, so they commit with it or not at all; core
-- then sends them to the account's hub, which takes each id once (part 10), and deletes them.
-- What a failed send leaves here goes with the account's next change, or with the scheduled run. Hosts whose log shares this database (udc-server, Spin) leave it empty.
CREATE TABLE IF NOT EXISTS event_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  event TEXT NOT NULL,
  target_device_id TEXT,
  audience TEXT,
  data TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS event_outbox_user ON event_outbox (user_id, id);
