-- Reports generated in the background, e-mails sent by a worker, billing history.
CREATE TABLE reports (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    requested_by uuid REFERENCES users (id) ON DELETE SET NULL,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done')),
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY reports_of_current_org ON reports
    USING (org_id = nullif(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = nullif(current_setting('app.org_id', true), '')::uuid);

-- What the sendEmail worker "sent" (the mail transport arrives with the storage issue).
CREATE TABLE sent_emails (
    id bigserial PRIMARY KEY,
    to_email text NOT NULL,
    template text NOT NULL,
    data jsonb NOT NULL DEFAULT '{}',
    job_id text,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sent_emails_job_idx ON sent_emails (job_id);

CREATE TABLE subscription_events (
    id bigserial PRIMARY KEY,
    org_id uuid NOT NULL,
    plan_key text NOT NULL,
    status text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE metrics_hourly (
    hour timestamptz PRIMARY KEY,
    jobs_done integer NOT NULL,
    jobs_dead integer NOT NULL,
    jobs_queued integer NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO saas_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO saas_app;
