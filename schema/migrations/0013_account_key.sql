-- udc schema, part 13: one account key, wrapped, and a recovery code. A random key seals
-- everything an account's devices share; the password's enc_key only wraps it, and the server
-- keeps that wrapped key (`wrapped_key`, never the key). NULL for an account made before this:
-- its key is the password's enc_key itself, which its next client wraps (`PUT /account/key`),
-- so changing the password later keeps every item sealed before.
ALTER TABLE users ADD COLUMN wrapped_key TEXT;
-- The recovery code's proof, kept as a keyed hash like the password's, and the account key
-- wrapped by the code's own key: the code resets the password and keeps the data.
ALTER TABLE users ADD COLUMN recovery_hash TEXT;
ALTER TABLE users ADD COLUMN recovery_wrapped_key TEXT;
ALTER TABLE users ADD COLUMN recovery_set_at INTEGER;
