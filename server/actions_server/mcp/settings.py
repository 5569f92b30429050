"""The `mcp:` section of config.yaml, with what it falls back on (docs/mcp.md).

Kept as a plain section by the config loader (as `openapi:` is); read here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Config, app_version
from ..http.cors import normal_origin


@dataclass(frozen=True, slots=True, kw_only=True)
class McpSettings:
    enabled: bool = True
    # Browser origins allowed to call /mcp besides loopback ones; a request without
    # Origin (every non-browser client) is always allowed.
    allowed_origins: frozenset[str] = frozenset()
    # The protected resource's identifier (RFC 9728); None: auth.jwt.audience when it
    # is a URL, else this endpoint's URL as the request reached it.
    resource: str | None = None
    # Where clients get tokens; empty: auth.jwt.issuer when it is a URL.
    authorization_servers: tuple[str, ...] = ()
    instructions: str | None = None  # told to clients at initialize / server/discover
    server_name: str = "actions-server"
    server_version: str = "0.0.0"

    @classmethod
    def from_config(cls, config: Config) -> McpSettings:
        raw: dict[str, Any] = dict(config.sections.get("mcp", {}))
        jwt = config.auth.jwt
        audience = jwt.audience if jwt.audience and _is_url(jwt.audience) else None
        issuer = [jwt.issuer] if jwt.issuer and _is_url(jwt.issuer) else []
        servers = raw.get("authorization_servers") or issuer
        return cls(
            enabled=bool(raw.get("enabled", True)),
            allowed_origins=frozenset(normal_origin(o) for o in raw.get("allowed_origins", ())),
            resource=raw.get("resource") or audience,
            authorization_servers=tuple(servers),
            instructions=raw.get("instructions"),
            server_name=config.app,
            server_version=app_version(config),
        )

    @property
    def server_info(self) -> dict[str, str]:
        return {"name": self.server_name, "version": self.server_version}


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))
