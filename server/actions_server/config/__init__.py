"""config.yaml → a frozen `Config`.

Loading is three pure steps over a parsed document: interpolate `${VAR}` and
`${VAR:-default}` from the environment (a value that is exactly one reference
takes the type the config schema asks for, so `port: ${PORT:-8080}` is an
integer), validate against the config's JSON Schema (`schemas/config.schema.yaml`),
then build the dataclasses of model.py with their defaults. Every problem found on the
way is reported with the file and line; none stops the search for the next.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .. import sourcemap
from ..coercion import coerce_to_schema
from ..errors import LoadError, Problem
from ..sourcemap import JsonPath, SourceDoc, SourceError, schema_problems
from .build import build_config
from .checks import semantic_problems
from .interpolation import interpolate, interpolate_tree
from .keys import jwt_config
from .model import (
    DEFAULT_MAIL_RETRY,
    DEFAULT_REDACT_KEYS,
    EMBEDDED,
    STATE_DIR,
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
from .schema import config_schema, config_validator, schema_at, set_at
from .version import app_version

__all__ = [
    "DEFAULT_MAIL_RETRY",
    "DEFAULT_REDACT_KEYS",
    "EMBEDDED",
    "STATE_DIR",
    "AuthConfig",
    "Config",
    "CorsConfig",
    "DashboardConfig",
    "DatabaseConfig",
    "JwtConfig",
    "KVConfig",
    "LoggingConfig",
    "MailConfig",
    "MetricsConfig",
    "OrgTables",
    "PoolConfig",
    "QueueConfig",
    "RealtimeConfig",
    "RunsConfig",
    "SchedulerConfig",
    "ServerConfig",
    "SessionConfig",
    "StorageConfig",
    "app_version",
    "config_from_doc",
    "config_schema",
    "interpolate",
    "load_config",
]


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate, validate and build the config; raise LoadError listing every problem."""
    file = Path(path).resolve()
    shown = str(path)
    try:
        doc = sourcemap.parse_file(file, shown_as=shown)
    except SourceError as exc:
        raise LoadError([exc.problem]) from None
    if doc.data is None:
        doc = SourceDoc(file=shown, data={}, lines={})
    return config_from_doc(doc, file, os.environ if env is None else env)


def config_from_doc(doc: SourceDoc, file: Path, env: Mapping[str, str]) -> Config:
    problems: list[Problem] = []
    errors: list[tuple[JsonPath, str]] = []
    data, whole_refs = interpolate_tree(doc.data, (), env, errors)
    problems.extend(
        doc.problem(path, f"{sourcemap.format_path(path)}: {msg}") for path, msg in errors
    )
    for ref_path, value in whole_refs:
        schema = schema_at(ref_path)
        if schema is not None:
            set_at(data, ref_path, coerce_to_schema(value, schema, config_schema()))
    if not isinstance(data, dict):
        problems.append(doc.problem((), "the config must be a mapping of keys to values"))
        raise LoadError(problems)
    problems.extend(schema_problems(doc, data, config_validator(), config_schema()))
    if problems:  # the checks below rely on the shapes the schema guarantees
        raise LoadError(problems)
    problems.extend(semantic_problems(data, doc, file.parent))
    jwt, jwt_problems = jwt_config(data.get("auth", {}).get("jwt", {}), file.parent, doc)
    problems.extend(jwt_problems)
    if problems:
        raise LoadError(problems)
    return build_config(data, file, doc.lines, jwt)
