-- Organizations, memberships, plans: the tables the in_org and has_feature guards read.
CREATE TABLE organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE org_memberships (
    org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_memberships_user_idx ON org_memberships (user_id);

CREATE TABLE plans (key text PRIMARY KEY, name text NOT NULL);

CREATE TABLE plan_features (
    plan_key text NOT NULL REFERENCES plans (key),
    feature_key text NOT NULL,
    PRIMARY KEY (plan_key, feature_key)
);

CREATE TABLE subscriptions (
    org_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    plan_key text NOT NULL REFERENCES plans (key),
    status text NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (key, name) VALUES ('free', 'Free'), ('pro', 'Pro');
INSERT INTO plan_features (plan_key, feature_key) VALUES
    ('free', 'projects'),
    ('pro', 'projects'),
    ('pro', 'reports');
