-- udc schema, part 17: the directory, what a request must find before it knows its account.
-- On Cloudflare each account's data lives in its own Durable Object and this directory is the
-- one thing D1 serves to all of them; udc-server and Spin keep it in their one database, beside
-- everything else, so the same statements run on every host.

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
