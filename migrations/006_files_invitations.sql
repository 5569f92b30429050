-- Files uploaded to an org (the bytes live in object storage, under storage_key),
-- invitations to join an org; mail now goes through ctx.mail, so the stand-in
-- table the sendEmail worker wrote to goes.
CREATE TABLE files (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name text NOT NULL,
    content_type text NOT NULL,
    size bigint NOT NULL,
    storage_key text NOT NULL UNIQUE,
    uploaded_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_org_idx ON files (org_id, created_at DESC);
ALTER TABLE files ENABLE ROW LEVEL SECURITY;
CREATE POLICY files_of_current_org ON files
    USING (org_id = nullif(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = nullif(current_setting('app.org_id', true), '')::uuid);

-- The token in the e-mailed link is kept only as its SHA-256: a leaked table
-- does not let anyone join.
CREATE TABLE invitations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email text NOT NULL,
    role text NOT NULL CHECK (role IN ('admin', 'member')),
    token_sha256 text NOT NULL UNIQUE,
    invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '7 days',
    accepted_at timestamptz
);
-- One open invitation per address and org.
CREATE UNIQUE INDEX invitations_open_idx ON invitations (org_id, email) WHERE accepted_at IS NULL;

DROP TABLE sent_emails;

GRANT SELECT, INSERT, UPDATE, DELETE ON files, invitations TO saas_app;
