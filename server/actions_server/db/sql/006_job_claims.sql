-- Each claim of a job gets a token of its own. The worker acknowledges, extends
-- and releases by token, so a run whose lease ran out (the job was reaped and
-- claimed again, perhaps by the same worker) can no longer touch the new claim.
ALTER TABLE actions_server.jobs ADD COLUMN claim uuid;
