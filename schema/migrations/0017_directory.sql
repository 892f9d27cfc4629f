-- udc schema, part 17: the directory, what a request must find before it knows its account.
-- On Cloudflare each account's data lives in its own Durable Object and this directory is the
-- one thing D1 serves to all of them; udc-server and Spin keep it in their one database, beside
-- everything else, so the same statements run on every host. (The sign-in throttles,
-- `login_throttle` of part 1, are the directory's too: an address guessing at many accounts.)

-- Which account an email belongs to. An account claims its email here before it is created
-- (a claim whose account was never created is taken over by the next sign-up with the email),
-- and releases it when it is erased.
CREATE TABLE account_directory (
  email TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE INDEX account_directory_by_user ON account_directory(user_id);

INSERT INTO account_directory (email, user_id, created_at)
  SELECT email, id, created_at FROM users WHERE deleted_at IS NULL;

-- Which account a sign-in approval request went to (`user_id` NULL: the email has none), so the
-- new device's polls reach it. Kept until the request expires.
CREATE TABLE approval_directory (
  id TEXT PRIMARY KEY,
  user_id TEXT,
  expires_at INTEGER NOT NULL
);

INSERT INTO approval_directory (id, user_id, expires_at)
  SELECT id, user_id, expires_at FROM pending_logins;

-- Which account a refresh token made before tokens named their account belongs to (by the
-- token's hash), so a device that kept one is still routed to its account. Nothing adds to it
-- after this migration; each row goes when its token would have expired.
CREATE TABLE refresh_directory (
  token_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);

INSERT INTO refresh_directory (token_hash, user_id, expires_at)
  SELECT t.token_hash, s.user_id, t.expires_at FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id;
