-- udc schema, part 16: passkeys. A passkey signs its owner in without the password (WebAuthn);
-- `wrapped_key` is the account key wrapped by a key from the passkey's PRF output, where the
-- authenticator has one, so such a sign-in also unlocks the data. The server keeps the public
-- key only, and the wrapped key it cannot open.
CREATE TABLE passkeys (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id),
  -- The credential id the authenticator chose (base64url), unique across accounts.
  credential_id TEXT NOT NULL UNIQUE,
  -- COSE algorithm (-7 ES256, -8 EdDSA) and the public key (base64url: a P-256 point or an
  -- Ed25519 key).
  alg INTEGER NOT NULL,
  public_key TEXT NOT NULL,
  -- The site it was made on: it signs for that site alone.
  rp_id TEXT NOT NULL,
  sign_count INTEGER NOT NULL DEFAULT 0,
  name TEXT NOT NULL,
  wrapped_key TEXT,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);
-- Challenges are signed by the server, not stored; one used is kept until it would have
-- expired, so it signs one ceremony only.
CREATE TABLE passkey_challenges_used (
  challenge_hash TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
