-- Membership and invitation roles as the seed stores them: 'org:admin',
-- 'org:member', 'org:billing_manager' (the role names auth.roles grants
-- permissions to). Rows written before this migration said 'admin' / 'member'.
ALTER TABLE org_memberships DROP CONSTRAINT org_memberships_role_check;
UPDATE org_memberships SET role = 'org:' || role WHERE role NOT LIKE 'org:%';
ALTER TABLE org_memberships ADD CONSTRAINT org_memberships_role_check
    CHECK (role IN ('org:admin', 'org:member', 'org:billing_manager'));

ALTER TABLE invitations DROP CONSTRAINT invitations_role_check;
UPDATE invitations SET role = 'org:' || role WHERE role NOT LIKE 'org:%';
ALTER TABLE invitations ADD CONSTRAINT invitations_role_check
    CHECK (role IN ('org:admin', 'org:member', 'org:billing_manager'));
