"""`/docs`: Swagger UI on the app's `/openapi.json`, served from files in the package.

Swagger UI's distribution (`swagger-ui-dist` from the npm registry, pinned and
checksummed in `swagger_ui/SHA256SUMS`) is vendored because no Python package
ships a Swagger UI recent enough for OpenAPI 3.1 without dragging in much more
(docs/decisions.md). The page names no other host: its scripts, styles and the
document come from this server, and its Content-Security-Policy says so to the
browser. The validator badge, the one thing Swagger UI would fetch from
elsewhere, is switched off.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from markupsafe import escape

FOLDER = Path(__file__).with_name("swagger_ui")
VERSION = "5.32.0"

# name under /docs/ -> (file in FOLDER, content type)
ASSETS = {
    "swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
}
INIT_SCRIPT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  persistAuthorization: true,
  displayRequestDuration: true,
  filter: true,
  validatorUrl: null
});
"""
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


def swagger_page(title: str) -> str:
    """The HTML of `/docs`."""
    name = escape(title)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css?v={VERSION}">
<style>.as-links{{font:14px sans-serif;margin:12px 20px}}</style>
</head>
<body>
<p class="as-links">{name}: try each action below (Authorize takes a bearer token;
<code>x-org-id</code> is a parameter of the actions that act in an org) ·
<a href="/docs/reference">the reference as one page</a> ·
<a href="/openapi.json">openapi.json</a></p>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js?v={VERSION}"></script>
<script src="/docs/init.js?v={VERSION}"></script>
</body>
</html>
"""


@cache
def asset(name: str) -> tuple[bytes, str]:
    """The bytes and content type of `/docs/NAME`, read once."""
    if name == "init.js":
        return INIT_SCRIPT.encode(), "text/javascript; charset=utf-8"
    file, content_type = ASSETS[name]
    return (FOLDER / file).read_bytes(), content_type
