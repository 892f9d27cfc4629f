-- udc schema, part 7: an event names all the devices it is for, so a change sent to many
-- devices is one row in the log, not one per receiver. JSON array of device ids; NULL for the
-- whole account. Rows from before keep their single `target_device_id`, read as a list of one.
ALTER TABLE hub_events ADD COLUMN audience TEXT;
