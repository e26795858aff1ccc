-- The executions index, extended by the Execution object's write-through.
-- event_count: events stored when the row was last written (exact once the execution has ended),
-- so the status service can page across a job's executions without asking every object.
ALTER TABLE executions ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0;
-- checked_time: when the cron sweep last poked this (active) execution's object for missed alarms.
ALTER TABLE executions ADD COLUMN checked_time INTEGER;
-- The sweep: active rows by status, oldest update first.
CREATE INDEX IF NOT EXISTS executions_by_status_updated ON executions (status, updated_time);
