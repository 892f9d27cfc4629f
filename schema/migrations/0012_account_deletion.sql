-- udc schema, part 12: deleting an account. The request ends the account at once: its sessions
-- end, its email is freed (replaced by a tombstone no address can equal) and `deleted_at` is
-- set. Its sockets, log, stored objects and rows are then erased; where a step fails (the store
-- or the hub unreachable) the tombstone stays and the scheduled run finishes the erasure.
ALTER TABLE users ADD COLUMN deleted_at INTEGER;
