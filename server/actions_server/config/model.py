"""The configuration as frozen values, with their defaults (documented in
docs/configuration.md, which a test keeps in step with these)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import Problem
from ..sourcemap import JsonPath, SourceDoc

EMBEDDED = "embedded"
STATE_DIR = ".actions-server"


@dataclass(frozen=True, slots=True, kw_only=True)
class CorsConfig:
    """`server.cors`: which browser origins may call the API (http/cors.py applies it)."""

    origins: tuple[str, ...] | str  # "*": any origin
    credentials: bool = False
    allow_headers: tuple[str, ...] = (
        "authorization",
        "content-type",
        "x-org-id",
        "x-trace-id",
        "idempotency-key",
    )
    expose_headers: tuple[str, ...] = ("x-trace-id", "retry-after", "location")
    max_age: int = 600


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 10 * 1024 * 1024
    shutdown_grace_seconds: float = 30.0
    # After SIGTERM, /readyz answers 503 this long while requests are still served
    # (each answer closing its connection), so a load balancer stops sending first.
    drain_seconds: float = 0.0
    body_timeout_seconds: float = 30.0
    action_timeout_seconds: float = 60.0  # for HTTP runs without their own timeout_seconds
    header_timeout_seconds: float = 15.0  # a request head not in by then: 408, closed
    max_connections: int = 1000  # per process
    access_log: bool = False
    trusted_proxies: tuple[str, ...] = ()
    cors: CorsConfig | None = None  # off unless configured
    idempotency_ttl_seconds: float = 86400.0  # how long an Idempotency-Key's answer is kept
    webhook_receipt_ttl_seconds: float = 7 * 86400.0  # how long a delivery id is remembered


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
    # A direct connection for LISTEN (a transaction pooler cannot carry it); None: `url`.
    listen_url: str | None = None
    # `url` is a transaction pooler (PgBouncer pool_mode=transaction): no prepared
    # statements, no session-level settings, statement_timeout by SET LOCAL.
    transaction_pooling: bool = False

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
class SessionConfig:
    """`auth.session`: cookie login (`ctx.auth.login`); off without a cookie name."""

    cookie: str | None = None
    ttl_seconds: int = 86400
    secure: bool = True
    same_site: str = "Lax"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    jwt: JwtConfig = field(default_factory=JwtConfig)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    orgs: OrgTables = field(default_factory=OrgTables)
    session: SessionConfig = field(default_factory=SessionConfig)


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
    # A successful HTTP run (api, webhook, mcp) faster than slow_ms that logged nothing
    # is stored with this probability; every other run always is. Counts and latency
    # percentiles (/metrics) count every run either way.
    sample_rate: float = 0.01
    slow_ms: float = 250.0


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
class RealtimeConfig:
    """WebSocket channels (docs/realtime.md)."""

    enabled: bool = True
    path: str = "/realtime"
    max_sockets: int = 800  # per process; past it 503 at the upgrade
    max_channels_per_socket: int = 100
    max_message_bytes: int = 65536  # a larger client frame closes the socket (1009)
    messages_per_second: float = 20.0  # per socket, in bursts of as many
    heartbeat_timeout_seconds: float = 60.0  # no message from a client for this long: closed
    max_payload_bytes: int = 1024 * 1024  # of one published payload, as JSON
    send_buffer_bytes: int = 4 * 1024 * 1024  # unsent to one client; past it the socket is closed
    retention_minutes: int = 60  # stored messages are pruned after this (hourly)
    presence_heartbeat_seconds: float = 5.0
    presence_timeout_seconds: float = 15.0  # an instance silent this long is gone
    reauthorize_seconds: float = 300.0  # joined channels' guards are checked again; 0: never


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole, validated configuration. Paths are absolute."""

    app: str
    version: str | None = None  # the app's; see app_version()
    file: Path
    root: Path
    actions: tuple[str, ...] = ("actions/",)
    schemas: Path | None = None
    migrations: Path | None = None
    seeds: Path | None = None
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
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
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
