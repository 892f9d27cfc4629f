-- udc schema, part 11: where each session was started and last used from, for its owner's list
-- of sessions (`GET /account/sessions`): the client's User-Agent, its address, and when it last
-- refreshed its tokens (a session is used at least that often while it is used at all; an
-- access token lives 15 minutes). NULL for sessions from before this part.
ALTER TABLE sessions ADD COLUMN client TEXT;
ALTER TABLE sessions ADD COLUMN client_ip TEXT;
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER;
