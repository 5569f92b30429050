"""config.yaml → a frozen `Config`.

Loading is three pure steps over a parsed document: interpolate `${VAR}` and
`${VAR:-default}` from the environment (a value that is exactly one reference
takes the type the config schema asks for, so `port: ${PORT:-8080}` is an
integer), validate against the config's JSON Schema (`schemas/config.schema.yaml`),
then build the dataclasses below with their defaults. Every problem found on the
way is reported with the file and line; none stops the search for the next.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema_rs
import jwt

from . import sourcemap
from .coercion import coerce_to_schema, resolve_local_ref
from .errors import LoadError, Problem
from .sourcemap import JsonPath, SourceDoc, SourceError, schema_problems

EMBEDDED = "embedded"
STATE_DIR = ".actions-server"

_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 10 * 1024 * 1024
    shutdown_grace_seconds: float = 30.0
    body_timeout_seconds: float = 30.0
    action_timeout_seconds: float = 60.0  # for HTTP runs without their own timeout_seconds
    header_timeout_seconds: float = 15.0  # a request head not in by then: 408, closed
    max_connections: int = 1000  # per process
    access_log: bool = False
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    min: int = 1
    max: int = 10
    acquire_timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    url: str = EMBEDDED
    pool: PoolConfig = field(default_factory=PoolConfig)
    statement_timeout_seconds: float | None = 30.0
    role: str | None = None  # SET LOCAL ROLE for every run, so RLS applies

    @property
    def is_embedded(self) -> bool:
        return self.url == EMBEDDED


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtConfig:
    secret: str | None = None
    public_key: str | None = None  # PEM text, read from a file when a path was given
    private_key: str | None = None
    jwks: Mapping[str, Any] | None = None  # the parsed JWKS file
    algorithms: tuple[str, ...] = ("HS256",)
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 10.0
    cache_size: int = 10_000

    @property
    def configured(self) -> bool:
        return bool(self.algorithms)

    @property
    def is_hmac(self) -> bool:
        return self.configured and all(a.startswith("HS") for a in self.algorithms)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgTables:
    """Where `in_org` and `has_feature` look (the seed's tables by default)."""

    organizations: str = "organizations"
    memberships: str = "org_memberships"
    subscriptions: str = "subscriptions"
    plan_features: str = "plan_features"
    # uuid, integer or text; None: read from the id columns' types at start.
    id_format: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    jwt: JwtConfig = field(default_factory=JwtConfig)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    orgs: OrgTables = field(default_factory=OrgTables)


@dataclass(frozen=True, slots=True, kw_only=True)
class KVConfig:
    backend: str = "postgres"
    url: str | None = None
    prefix: str | None = None
    timeout_seconds: float = 5.0  # redis: connecting, and each command


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageConfig:
    backend: str = "local"
    path: str = ".actions-server/storage"
    max_object_bytes: int = 100 * 1024 * 1024
    url_secret: str | None = None
    base_url: str = ""
    endpoint: str | None = None
    bucket: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    secure: bool = True
    create_bucket: bool = True
    timeout_seconds: float = 30.0  # s3: each request's reads (connecting: 5 s)


# Delivery is worth more patience than an action's default retry (3 attempts).
DEFAULT_MAIL_RETRY: Mapping[str, Any] = MappingProxyType(
    {"attempts": 8, "backoff": "exponential", "base_seconds": 2.0, "max_seconds": 600.0}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class MailConfig:
    transport: str = "outbox"
    sender: str | None = None  # `from` in config.yaml
    templates: str = "templates/mail"
    timeout_seconds: float = 60.0
    retry: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_MAIL_RETRY)  # sendMail
    smtp: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueConfig:
    concurrency: int = 16
    action_timeout_seconds: float = 900.0  # for job, event and cron runs without their own
    lease_seconds: float = 30.0
    poll_interval_seconds: float = 5.0
    shutdown_grace_seconds: float = 30.0
    retention_days: int = 7
    dead_retention_days: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerConfig:
    timezone: str = "UTC"
    misfire_grace_seconds: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    level: str = "info"
    format: str = "pretty"


DEFAULT_REDACT_KEYS = ("password", "token", "secret", "authorization", "api_key")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunsConfig:
    enabled: bool = True  # record every run and its log lines
    retention_days: int = 30
    redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS
    buffer_size: int = 10_000  # runs (and as many log lines) held while the database is slow
    buffer_bytes: int = 64 * 1024 * 1024  # ...and at most this much encoded JSON
    max_value_bytes: int = 1024 * 1024  # a larger input or output is stored as a note of its size
    flush_interval_seconds: float = 0.2
    batch_size: int = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    enabled: bool = True
    # Who may scrape GET /metrics: the socket peer's address must be in one of these.
    allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardConfig:
    enabled: bool = True
    path: str = "/_dashboard"
    permission: str = "dashboard:view"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole, validated configuration. Paths are absolute."""

    app: str
    file: Path
    root: Path
    actions: tuple[str, ...] = ("actions/",)
    schemas: Path | None = None
    migrations: Path | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    kv: KVConfig = field(default_factory=KVConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    runs: RunsConfig = field(default_factory=RunsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # Sections whose features land later are kept as validated mappings.
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    lines: Mapping[JsonPath, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def state_dir(self) -> Path:
        """`.actions-server/` next to the config: embedded database, local files."""
        return self.root / STATE_DIR

    @property
    def timezone(self) -> str:
        """The scheduler's default time zone for cron triggers."""
        return self.scheduler.timezone

    def problem(self, path: JsonPath, message: str) -> Problem:
        """A problem in the config file, at the line of `path`."""
        doc = SourceDoc(file=self.relative(self.file), data=None, lines=self.lines)
        return doc.problem(path, message)

    def relative(self, path: Path) -> str:
        """A path as shown to users: relative to the config's folder when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


# --- interpolation -----------------------------------------------------------


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace `${VAR}`, `${VAR:-default}` and `$$` in one string.

    Returns the new string and the list of what is wrong with it, if anything.
    """
    errors: list[str] = []

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$$":
            return "$"
        inner = match.group(1)
        if inner is None:
            errors.append("unclosed '${' (write '$$' for a literal '$')")
            return whole
        name, has_default, default = inner.partition(":-")
        if not _NAME.match(name):
            errors.append(f"bad variable reference ${{{inner}}}: {name!r} is not a variable name")
            return whole
        value = env.get(name)
        if value is not None and (value != "" or not has_default):
            return value
        if has_default:
            return default
        errors.append(
            f"environment variable {name} is not set (give a default with ${{{name}:-value}})"
        )
        return whole

    return _REFERENCE.sub(replace, text), errors


def _interpolate_tree(
    data: Any, path: JsonPath, env: Mapping[str, str], found: list[tuple[JsonPath, str]]
) -> tuple[Any, list[tuple[JsonPath, str]]]:
    """Interpolate every string in `data`; collect (path, error) pairs in `found`.

    Returns the new tree and the paths whose whole value was one reference.
    """
    whole_refs: list[tuple[JsonPath, str]] = []
    if isinstance(data, str):
        if "$" not in data:
            return data, whole_refs
        result, errors = interpolate(data, env)
        found.extend((path, e) for e in errors)
        if not errors and re.fullmatch(r"\$\{[^}]*\}", data):
            whole_refs.append((path, result))
        return result, whole_refs
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out[key], refs = _interpolate_tree(value, (*path, key), env, found)
            whole_refs.extend(refs)
        return out, whole_refs
    if isinstance(data, list):
        items: list[Any] = []
        for i, value in enumerate(data):
            item, refs = _interpolate_tree(value, (*path, i), env, found)
            items.append(item)
            whole_refs.extend(refs)
        return items, whole_refs
    return data, whole_refs


# --- schema ------------------------------------------------------------------


@cache
def config_schema() -> dict[str, Any]:
    """The JSON Schema of config.yaml (also printed by `actions-server schema`)."""
    path = Path(__file__).parent / "schemas" / "config.schema.yaml"
    schema: dict[str, Any] = sourcemap.parse_file(path).data
    return schema


@cache
def _config_validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(config_schema())


def _schema_at(path: JsonPath) -> Any:
    """The sub-schema describing the value at `path`, or None."""
    root = config_schema()
    schema: Any = root
    for part in path:
        schema = resolve_local_ref(schema, root)
        if not isinstance(schema, Mapping):
            return None
        if isinstance(part, int):
            schema = schema.get("items")
        else:
            props = schema.get("properties") or {}
            schema = props.get(part, schema.get("additionalProperties"))
    return schema if isinstance(schema, Mapping) else None


def _set_at(data: Any, path: JsonPath, value: Any) -> None:
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


# --- building ----------------------------------------------------------------


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
    data, whole_refs = _interpolate_tree(doc.data, (), env, errors)
    problems.extend(
        doc.problem(path, f"{sourcemap.format_path(path)}: {msg}") for path, msg in errors
    )
    for ref_path, value in whole_refs:
        schema = _schema_at(ref_path)
        if schema is not None:
            _set_at(data, ref_path, coerce_to_schema(value, schema, config_schema()))
    if not isinstance(data, dict):
        problems.append(doc.problem((), "the config must be a mapping of keys to values"))
        raise LoadError(problems)
    problems.extend(schema_problems(doc, data, _config_validator()))
    if problems:  # the checks below rely on the shapes the schema guarantees
        raise LoadError(problems)
    problems.extend(_semantic_problems(data, doc, file.parent))
    jwt, jwt_problems = _jwt_config(data.get("auth", {}).get("jwt", {}), file.parent, doc)
    problems.extend(jwt_problems)
    if problems:
        raise LoadError(problems)
    return _build(data, file, doc.lines, jwt)


def _key_fits(key: str, algorithms: Sequence[str], doc: SourceDoc, at: JsonPath) -> list[Problem]:
    """Every configured algorithm must accept the key, or a token naming another
    algorithm would fail inside PyJWT instead of being refused."""
    problems = []
    for algorithm in algorithms:
        try:
            jwt.get_algorithm_by_name(algorithm).prepare_key(key)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            reason = str(exc).split(".")[-1].strip() or type(exc).__name__
            problems.append(
                doc.problem(at, f"{'.'.join(map(str, at))}: not a key for {algorithm} ({reason})")
            )
    return problems


def _mail_config(raw: Mapping[str, Any]) -> MailConfig:
    values = dict(raw)
    sender = values.pop("from", None)
    if "retry" in values:  # the keys given; the defaults for the rest
        values["retry"] = MappingProxyType({**DEFAULT_MAIL_RETRY, **values["retry"]})
    return MailConfig(sender=sender, **values)


def _semantic_problems(data: dict[str, Any], doc: SourceDoc, root: Path) -> list[Problem]:
    """What the config schema cannot say: address syntax, min ≤ max."""
    problems = []
    for section, key in (("server", "trusted_proxies"), ("metrics", "allow")):
        for index, entry in enumerate(data.get(section, {}).get(key, [])):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                message = f"{section}.{key}: {entry!r} is not an address or CIDR range"
                problems.append(doc.problem((section, key, index), message))
    storage = data.get("storage", {})
    if storage.get("backend") == "s3":
        missing = [
            k for k in ("endpoint", "bucket", "access_key", "secret_key") if not storage.get(k)
        ]
        if missing:
            problems.append(
                doc.problem(("storage",), f"storage: the s3 backend needs {', '.join(missing)}")
            )
    mail = data.get("mail", {})
    if mail.get("transport") == "smtp" and not mail.get("smtp"):
        problems.append(
            doc.problem(
                ("mail",), "mail: the smtp transport needs an smtp section (host, port, ...)"
            )
        )
    ca_file = (mail.get("smtp") or {}).get("ca_file")
    if ca_file and not (root / ca_file).is_file():
        problems.append(
            doc.problem(("mail", "smtp", "ca_file"), f"mail.smtp.ca_file: no such file {ca_file!r}")
        )
    kv = data.get("kv", {})
    if kv.get("backend") == "redis" and not kv.get("url"):
        problems.append(
            doc.problem(("kv",), "kv: the redis backend needs a url (redis://host:6379/0)")
        )
    pool = data.get("database", {}).get("pool", {})
    if pool.get("min", 1) > pool.get("max", 10):
        problems.append(
            doc.problem(("database", "pool", "min"), "database.pool.min is larger than max")
        )
    return problems


def _build(
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
        "actions",
        "schemas",
        "migrations",
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
    }
    return Config(
        app=data["app"],
        file=file,
        root=root,
        actions=tuple(data.get("actions", ["actions/"])),
        schemas=folder("schemas", "schemas/"),
        migrations=folder("migrations", "migrations/"),
        server=ServerConfig(
            **{**server, "trusted_proxies": tuple(server.get("trusted_proxies", ()))}
        ),
        database=DatabaseConfig(
            **{k: v for k, v in database.items() if k != "pool"}, pool=PoolConfig(**pool)
        ),
        auth=AuthConfig(
            jwt=jwt,
            roles={role: tuple(perms) for role, perms in auth.get("roles", {}).items()},
            orgs=OrgTables(**auth.get("orgs", {})),
        ),
        logging=LoggingConfig(**data.get("logging", {})),
        dashboard=DashboardConfig(**data.get("dashboard", {})),
        runs=_runs_config(data.get("runs", {})),
        metrics=_metrics_config(data.get("metrics", {})),
        kv=KVConfig(**data.get("kv", {})),
        storage=StorageConfig(**data.get("storage", {})),
        mail=_mail_config(data.get("mail", {})),
        queue=QueueConfig(**data.get("queue", {})),
        scheduler=SchedulerConfig(**data.get("scheduler", {})),
        sections={k: v for k, v in data.items() if k not in typed and isinstance(v, dict)},
        lines=lines,
    )


def _metrics_config(raw: Mapping[str, Any]) -> MetricsConfig:
    if "allow" in raw:
        raw = {**raw, "allow": tuple(raw["allow"])}
    return MetricsConfig(**raw)


def _runs_config(raw: Mapping[str, Any]) -> RunsConfig:
    if "redact_keys" in raw:
        raw = {**raw, "redact_keys": tuple(raw["redact_keys"])}
    return RunsConfig(**raw)


# --- auth.jwt: keys and algorithms --------------------------------------------------

_HASH_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _jwt_config(
    raw: Mapping[str, Any], root: Path, doc: SourceDoc
) -> tuple[JwtConfig, list[Problem]]:
    """Check that the algorithms and keys fit together, and read key files.

    HMAC and public-key algorithms are never mixed in one config: a verifier that
    accepts both is open to algorithm confusion (an RS public key used as an HS
    secret).
    """
    if not raw:
        return JwtConfig(algorithms=()), []  # no tokens are accepted or issued
    at = ("auth", "jwt")
    problems: list[Problem] = []
    algorithms = tuple(raw.get("algorithms", ("HS256",)))
    hmac = [a for a in algorithms if a.startswith("HS")]
    if hmac and len(hmac) != len(algorithms):
        problems.append(
            doc.problem(
                (*at, "algorithms"),
                "auth.jwt.algorithms mixes HS* with public-key "
                "algorithms, which invites algorithm confusion; use one family",
            )
        )
    values: dict[str, Any] = {}
    for key in ("public_key", "private_key"):
        text = raw.get(key)
        if text and not text.lstrip().startswith("-----BEGIN"):
            path = (root / text).resolve()
            try:
                text = path.read_text()
            except OSError as exc:
                problems.append(
                    doc.problem((*at, key), f"auth.jwt.{key}: cannot read {text}: {exc.strerror}")
                )
                text = None
        values[key] = text
    jwks = None
    if raw.get("jwks_file"):
        try:
            jwks = json.loads((root / raw["jwks_file"]).read_text())
        except (OSError, ValueError) as exc:
            problems.append(
                doc.problem((*at, "jwks_file"), f"auth.jwt.jwks_file: cannot read a JWKS: {exc}")
            )
    secret = raw.get("secret")
    if hmac:
        if not secret:
            problems.append(doc.problem(at, f"auth.jwt: {hmac[0]} needs a secret"))
        else:
            need = max(_HASH_BYTES[a] for a in hmac)
            if len(secret.encode()) < need:
                problems.append(
                    doc.problem(
                        (*at, "secret"),
                        f"auth.jwt.secret is {len(secret.encode())} bytes; "
                        f"{'/'.join(hmac)} needs at least {need}",
                    )
                )
            if secret.lstrip().startswith("-----BEGIN"):
                problems.append(
                    doc.problem(
                        (*at, "secret"),
                        "auth.jwt.secret looks like a PEM key; "
                        "an HMAC secret must not be a public key (algorithm confusion)",
                    )
                )
    elif not values["public_key"] and jwks is None and not problems:
        problems.append(doc.problem(at, f"auth.jwt: {algorithms[0]} needs public_key or jwks_file"))
    for key in ("public_key", "private_key"):
        if values[key] and not hmac:
            problems.extend(_key_fits(values[key], algorithms, doc, (*at, key)))
    config = JwtConfig(
        secret=secret,
        public_key=values["public_key"],
        private_key=values["private_key"],
        jwks=jwks,
        algorithms=algorithms,
        audience=raw.get("audience"),
        issuer=raw.get("issuer"),
        leeway_seconds=raw.get("leeway_seconds", 10.0),
        cache_size=raw.get("cache_size", 10_000),
    )
    return config, problems
