-- An operator asked to cancel a running job: the worker holding it cancels its
-- run (at the handler's next await) and marks it cancelled. A request for a job
-- whose worker died is honoured when its lease is reaped.
ALTER TABLE actions_server.jobs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
