-- udc schema, part 6: what the security review asked the server to remember.

-- A realtime ticket opens one socket: the hash of each one used, until it would have expired.
CREATE TABLE realtime_tickets_used (
  ticket_hash TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);

-- Device cookies: a client that signed in to an account before presents one at its next
-- sign-in, and its failures are counted on it alone, so nobody guessing at the email can lock
-- the owner's own clients out. Turned over at every sign-in.
CREATE TABLE login_cookies (
  cookie_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX login_cookies_by_user ON login_cookies(user_id);
