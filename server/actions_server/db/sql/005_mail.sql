-- The development mail transport: every message the app sends, as the worker
-- would have handed it to SMTP. One row per sending job.
CREATE TABLE actions_server.mail_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text UNIQUE,
    sender text NOT NULL,
    recipients jsonb NOT NULL,
    cc jsonb NOT NULL DEFAULT '[]',
    bcc jsonb NOT NULL DEFAULT '[]',
    reply_to text,
    subject text NOT NULL,
    text_body text,
    html_body text,
    template text,
    attachments jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_outbox_created_at_idx ON actions_server.mail_outbox (created_at);
