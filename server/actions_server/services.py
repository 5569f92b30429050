"""What a run can use besides the database: the KV store, object storage (and,
later, mail), built once per process from the config and closed with it."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import Config
from .db.pool import Database
from .kv import KV
from .kv.postgres import pool_kv, run_kv
from .kv.redis import RedisKV
from .mail.message import Mailer
from .mail.templates import Templates
from .mail.transports import OutboxTransport, SmtpSettings, SmtpTransport, Transport
from .storage import Storage
from .storage.local import LocalStorage

log = logging.getLogger("actions_server.services")

if TYPE_CHECKING:
    from .db.session import DbSession


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    redis_kv: RedisKV | None  # None: KV lives in PostgreSQL
    detached_kv: KV  # outside any run's transaction (rate limits)
    storage: Storage
    local_storage: LocalStorage | None  # set when the server serves signed URLs itself
    mailer: Mailer
    # Exceptions that mean a backend did not answer (a 503, not a handler bug),
    # each with what to tell the client.
    outages: tuple[tuple[tuple[type[BaseException], ...], str], ...] = ()
    channel_payload_bytes: int = 1024 * 1024  # realtime.max_payload_bytes

    def outage(self, exc: BaseException) -> str | None:
        """What to say when `exc` means a backend is unreachable; None otherwise."""
        for kinds, message in self.outages:
            if isinstance(exc, kinds):
                return message
        return None

    def kv_for(self, session: DbSession) -> KV:
        """`ctx.kv`: in PostgreSQL, on the run's connection, so it commits with the run."""
        if self.redis_kv is not None:
            return self.redis_kv
        return run_kv(session.connection)


async def open_services(config: Config, database: Database, stack: AsyncExitStack) -> Services:
    redis_kv = None
    if config.kv.backend == "redis":
        from redis.asyncio import Redis

        assert config.kv.url is not None  # the config's checks require it
        timeout = config.kv.timeout_seconds
        client = Redis.from_url(
            config.kv.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        stack.push_async_callback(client.aclose)
        redis_kv = RedisKV(
            client, config.kv.prefix if config.kv.prefix is not None else f"{config.app}:"
        )
    storage, local = await open_storage(config)
    outages: list[tuple[tuple[type[BaseException], ...], str]] = []
    if redis_kv is not None:
        from redis.exceptions import ConnectionError as RedisDown
        from redis.exceptions import TimeoutError as RedisSlow

        outages.append(((RedisDown, RedisSlow), "the key-value store (Redis) did not answer"))
    if local is None:
        from urllib3.exceptions import MaxRetryError, ProtocolError, TimeoutError

        outages.append(
            ((MaxRetryError, ProtocolError, TimeoutError), "the object store did not answer")
        )
    return Services(
        redis_kv=redis_kv,
        detached_kv=redis_kv or pool_kv(database),
        storage=storage,
        local_storage=local,
        mailer=mailer(config),
        outages=tuple(outages),
        channel_payload_bytes=config.realtime.max_payload_bytes,
    )


def mailer(config: Config) -> Mailer:
    settings = config.mail
    transport: Transport = OutboxTransport()
    if settings.transport == "smtp":
        assert settings.smtp is not None  # the config's checks require it
        smtp = dict(settings.smtp)
        if smtp.get("ca_file"):
            smtp["ca_file"] = str(config.root / smtp["ca_file"])  # relative to the config
        transport = SmtpTransport(SmtpSettings(**smtp))
    sender = settings.sender or f"{config.app} <noreply@localhost>"
    return Mailer(
        templates=Templates(config.root / settings.templates), sender=sender, transport=transport
    )


async def open_storage(config: Config) -> tuple[Storage, LocalStorage | None]:
    settings = config.storage
    if settings.backend == "s3":
        from minio import Minio

        from .storage.s3 import S3Storage

        assert settings.endpoint
        assert settings.bucket
        client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=s3_http_client(settings.timeout_seconds),
        )
        s3 = S3Storage(client, settings.bucket, max_object_bytes=settings.max_object_bytes)
        if settings.create_bucket:
            await s3.ensure_bucket()
        return s3, None
    local = LocalStorage(
        (config.root / settings.path).resolve(),
        max_object_bytes=settings.max_object_bytes,
        url_secret=url_secret(config),
        base_url=settings.base_url,
    )
    return local, local


S3_CONNECT_TIMEOUT_SECONDS = 5.0


def s3_http_client(read_timeout: float) -> Any:
    """The minio SDK's HTTP client, as it makes its own but with our timeouts: its
    default waits five minutes to connect and to read."""
    import certifi
    import urllib3

    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=S3_CONNECT_TIMEOUT_SECONDS, read=read_timeout),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        # As the SDK retries, but a read that timed out is retried once, not five
        # times: a store that stopped answering must not hold a run for minutes.
        retries=urllib3.Retry(
            total=5, read=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
        ),
    )


def url_secret(config: Config) -> bytes:
    """The key that signs local download URLs: configured, or derived from the JWT
    secret (so every instance agrees), or, with neither, random for this process."""
    if config.storage.url_secret:
        return config.storage.url_secret.encode()
    if config.auth.jwt.secret:
        return hmac.new(
            config.auth.jwt.secret.encode(), b"actions-server storage urls", "sha256"
        ).digest()
    log.warning("storage URLs are signed with a per-process key: set storage.url_secret")
    return secrets.token_bytes(32)
