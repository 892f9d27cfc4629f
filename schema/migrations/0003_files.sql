-- udc schema, part 3: files sent between a user's devices. The bytes live in object storage
-- (docs/ARCHITECTURE.md, "Bytes never pass through a function"); these rows are what the
-- functions signed and recorded.

CREATE TABLE files (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  sender_device_id TEXT NOT NULL REFERENCES devices(id),
  name TEXT NOT NULL,
  mime TEXT NOT NULL,
  size INTEGER NOT NULL,
  -- lowercase hex SHA-256 of the whole file, as the sender declared it; receivers verify it
  sha256 TEXT NOT NULL,
  -- the object in the bucket; a deduplicated file shares the object of an earlier one
  object_key TEXT NOT NULL,
  -- the store's multipart upload (kept after completion so a retried complete finds the file)
  upload_id TEXT,
  part_size INTEGER NOT NULL,
  part_count INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('uploading', 'available')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  completed_at INTEGER,
  -- soft delete: restorable for a while, then the scheduled purge removes the row (and the
  -- object, once no other file of the account uses it)
  deleted_at INTEGER
);

CREATE INDEX files_by_user ON files(user_id, created_at);

CREATE INDEX files_by_content ON files(user_id, sha256, size);

CREATE INDEX files_by_object ON files(object_key);

CREATE UNIQUE INDEX files_by_upload ON files(user_id, upload_id);

-- Parts the sender reported as stored (ETag from the store), for resume and completion.
CREATE TABLE file_parts (
  file_id TEXT NOT NULL REFERENCES files(id),
  part_number INTEGER NOT NULL,
  etag TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  PRIMARY KEY (file_id, part_number)
);

-- The devices a file was sent to; `downloaded_at` once that device confirmed the bytes.
CREATE TABLE file_shares (
  file_id TEXT NOT NULL REFERENCES files(id),
  device_id TEXT NOT NULL REFERENCES devices(id),
  shared_at INTEGER NOT NULL,
  downloaded_at INTEGER,
  PRIMARY KEY (file_id, device_id)
);

CREATE INDEX file_shares_by_device ON file_shares(device_id, downloaded_at);

-- `Idempotency-Key`: the first successful answer to a request, replayed for 24 hours.
-- `status` is NULL while the first request is still running.
CREATE TABLE idempotency_keys (
  user_id TEXT NOT NULL REFERENCES users(id),
  operation TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  status INTEGER,
  response TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, operation, key)
);
