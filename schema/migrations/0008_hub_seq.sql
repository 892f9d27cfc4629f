-- udc schema, part 8: an event and its sequence number are stored by one statement. The log
-- keeps `hub_seq` (the last number given out, which never goes back even when retention empties
-- the log) up to date itself, so storing an event is one INSERT that takes the next number: a
-- crash or an error can no longer take a number and store no event (a gap every device would
-- see). No semicolon inside the trigger ends a line: the migration runners split files there.
CREATE TRIGGER IF NOT EXISTS hub_events_seq AFTER INSERT ON hub_events
BEGIN
  INSERT INTO hub_seq (user_id, last_seq) VALUES (NEW.user_id, NEW.seq) ON CONFLICT (user_id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq); END;
