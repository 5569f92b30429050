-- The plans and the features each includes (orgs.getFeatures, the has_feature guard).
-- The first migration made the two the app cannot run without; this keeps them
-- complete and adds the feature a demo needs. Safe to run on any database.
INSERT INTO plans (key, name) VALUES ('free', 'Free'), ('pro', 'Pro')
ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name;

INSERT INTO plan_features (plan_key, feature_key) VALUES
    ('free', 'projects'),
    ('pro', 'projects'),
    ('pro', 'reports')
ON CONFLICT DO NOTHING;
