"""A validated config document → the frozen `Config`, defaults filled in."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..sourcemap import JsonPath
from .model import (
    DEFAULT_MAIL_RETRY,
    AuthConfig,
    Config,
    CorsConfig,
    DashboardConfig,
    DatabaseConfig,
    JwtConfig,
    KVConfig,
    LoggingConfig,
    MailConfig,
    MetricsConfig,
    OrgTables,
    PoolConfig,
    QueueConfig,
    RealtimeConfig,
    RunsConfig,
    SchedulerConfig,
    ServerConfig,
    SessionConfig,
    StorageConfig,
)


def mail_config(raw: Mapping[str, Any]) -> MailConfig:
    values = dict(raw)
    sender = values.pop("from", None)
    if "retry" in values:  # the keys given; the defaults for the rest
        values["retry"] = MappingProxyType({**DEFAULT_MAIL_RETRY, **values["retry"]})
    return MailConfig(sender=sender, **values)


def build_config(
    data: dict[str, Any], file: Path, lines: Mapping[JsonPath, int], jwt: JwtConfig
) -> Config:
    root = file.parent

    def folder(key: str, default: str) -> Path | None:
        value = data.get(key, default)
        return None if value is None else (root / value).resolve()

    server = data.get("server", {})
    database = data.get("database", {})
    pool = database.get("pool", {})
    auth = data.get("auth", {})
    typed = {
        "app",
        "version",
        "actions",
        "schemas",
        "migrations",
        "seeds",
        "server",
        "database",
        "auth",
        "kv",
        "storage",
        "mail",
        "queue",
        "scheduler",
        "logging",
        "dashboard",
        "runs",
        "metrics",
        "realtime",
    }
    return Config(
        app=data["app"],
        version=data.get("version"),
        file=file,
        root=root,
        actions=tuple(data.get("actions", ["actions/"])),
        schemas=folder("schemas", "schemas/"),
        migrations=folder("migrations", "migrations/"),
        seeds=folder("seeds", "seeds/"),
        server=ServerConfig(
            **{
                **server,
                "trusted_proxies": tuple(server.get("trusted_proxies", ())),
                "cors": cors_config(server.get("cors")),
            }
        ),
        database=DatabaseConfig(
            **{k: v for k, v in database.items() if k != "pool"}, pool=PoolConfig(**pool)
        ),
        auth=AuthConfig(
            jwt=jwt,
            roles={role: tuple(perms) for role, perms in auth.get("roles", {}).items()},
            orgs=OrgTables(**auth.get("orgs", {})),
            session=SessionConfig(**auth.get("session", {})),
        ),
        logging=LoggingConfig(**data.get("logging", {})),
        dashboard=DashboardConfig(**data.get("dashboard", {})),
        runs=runs_config(data.get("runs", {})),
        metrics=metrics_config(data.get("metrics", {})),
        kv=KVConfig(**data.get("kv", {})),
        storage=StorageConfig(**data.get("storage", {})),
        mail=mail_config(data.get("mail", {})),
        queue=QueueConfig(**data.get("queue", {})),
        scheduler=SchedulerConfig(**data.get("scheduler", {})),
        realtime=RealtimeConfig(**data.get("realtime", {})),
        sections={k: v for k, v in data.items() if k not in typed and isinstance(v, dict)},
        lines=lines,
    )


def cors_config(raw: Mapping[str, Any] | None) -> CorsConfig | None:
    if raw is None:
        return None
    values: dict[str, Any] = dict(raw)
    for key in ("allow_headers", "expose_headers"):
        if key in values:
            values[key] = tuple(values[key])
    if values["origins"] != "*":
        values["origins"] = tuple(values["origins"])
    return CorsConfig(**values)


def metrics_config(raw: Mapping[str, Any]) -> MetricsConfig:
    if "allow" in raw:
        raw = {**raw, "allow": tuple(raw["allow"])}
    return MetricsConfig(**raw)


def runs_config(raw: Mapping[str, Any]) -> RunsConfig:
    if "redact_keys" in raw:
        raw = {**raw, "redact_keys": tuple(raw["redact_keys"])}
    return RunsConfig(**raw)
