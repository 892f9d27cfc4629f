-- udc schema, part 15: files sealed on the device. `sealed` holds the file's description
-- (name, media type, SHA-256, part size) sealed with a key only the account's devices have;
-- for such a file `name` is empty, `mime` the default and `sha256` the account-keyed content
-- id the devices dedupe and confirm on. NULL for a file stored in the clear (sent before this,
-- or by an older client): it stays readable as it was.
ALTER TABLE files ADD COLUMN sealed TEXT;
