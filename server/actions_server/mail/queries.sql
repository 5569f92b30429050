-- The outbox transport (actions_server.mail_outbox).

-- name: store
INSERT INTO actions_server.mail_outbox
    (job_id, sender, recipients, cc, bcc, reply_to, subject, text_body, html_body, template, attachments)
VALUES (%(job_id)s, %(sender)s, %(to)s, %(cc)s, %(bcc)s, %(reply_to)s, %(subject)s, %(text)s, %(html)s,
        %(template)s, %(attachments)s)
ON CONFLICT (job_id) DO NOTHING;

-- name: recent
SELECT id, created_at, sender, recipients, subject, template, text_body, html_body, attachments
FROM actions_server.mail_outbox
ORDER BY id DESC
LIMIT %s;
