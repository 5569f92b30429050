-- Passwords for auth.signup / auth.login: an argon2id hash, never the password.
ALTER TABLE users ADD COLUMN password_hash text;
