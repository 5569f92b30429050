"""The operator's dashboard at `dashboard.path` (default /_dashboard).

Server-rendered HTML (Jinja2, autoescaped, inline CSS, no script, no CDN): it
works offline and behind strict content security policies. Pages read the
framework's own tables; the only writes are retrying and cancelling jobs, as
POST forms with a CSRF token.
"""
