"""The app's API reference, generated from its registry: an OpenAPI 3.1 document
(`GET /openapi.json`, `actions-server openapi`) and a readable page (`GET /docs`)
rendered from that document. Both are pure functions of the registry and the
config; the HTTP front builds them once per registry it serves.
"""

from __future__ import annotations

from .document import build_openapi
from .page import render_docs_page
from .swagger import CONTENT_SECURITY_POLICY, asset, swagger_page

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "asset",
    "build_openapi",
    "render_docs_page",
    "swagger_page",
]
