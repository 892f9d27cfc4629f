-- udc schema, part 10: the hub's side of the event outbox (part 9): the last outbox id it logged,
-- per account. Outbox ids grow in the order their changes committed, so an id at or below it is
-- one the hub has (a send whose answer was lost, sent again) and is dropped. The Durable Object
-- runs this on its own storage on every start, hence IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS hub_outbox (
  user_id TEXT PRIMARY KEY,
  taken INTEGER NOT NULL
);
