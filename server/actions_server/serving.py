"""`actions-server serve`: one process, or N sharing the port with SO_REUSEPORT.

Start-up order: config → manifests → database (embedded or URL) → migrations
→ pool → HTTP. With `--workers N` the parent does everything up to the
migrations once, then starts N processes that each load the manifests and
serve; the parent forwards SIGTERM/SIGINT and exits when they have.

Shutdown (SIGTERM or SIGINT): first, for `server.drain_seconds`, /readyz answers
503 while requests are still served, each answer closing its connection (a load
balancer's health checks take the instance out meanwhile); then stop accepting,
close idle keep-alive connections, let in-flight requests finish within
`server.shutdown_grace_seconds`, close the pool, exit 0.

With `--reload` (development, one process) a Reloader (reload.py) watches the
app's files and swaps each valid change into the running HTTP front, executor
and scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import ipaddress
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .builtins import load_app
from .config import Config, load_config
from .errors import ActionsServerError
from .http.app import HttpFront, create_server
from .logs import configure_logging
from .metrics import SHARED_DIR_ENV, share_last, share_while_running
from .queue.worker import Worker
from .registry import counts
from .runtime import Runtime, open_runtime
from .scheduler import Scheduler

log = logging.getLogger("actions_server.serve")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    host: str
    port: int
    workers: int = 1
    migrate_app: bool = True
    http: bool = True  # False: `actions-server worker`
    jobs: bool = True  # the worker and the scheduler; False: `serve --no-worker`
    reload: bool = False  # `serve --reload`: swap in the app's changes (one process only)
    dev: bool = (
        False  # `actions-server dev`: a line per request, banner, open dashboard on loopback
    )


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run `main` on uvloop when it is installed (it is on Linux), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main)
    return uvloop.run(main)


async def serve_forever(
    config: Config,
    dsn: str,
    options: ServeOptions,
    *,
    migrate: bool = True,
    http: bool = True,
    jobs: bool = True,
) -> None:
    """Serve HTTP and/or run the worker and the scheduler until SIGTERM or SIGINT."""
    registry = load_app(config)
    async with open_runtime(
        config, registry, dsn=dsn, migrate=migrate, migrate_app=options.migrate_app
    ) as runtime:
        if options.dev and options.migrate_app and migrate:
            await seed_for_development(runtime)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner, front = await _start_http(runtime, options) if http else (None, None)
        worker = (
            Worker(runtime.executor, runtime.database, config.queue, dsn=runtime.listen_dsn)
            if jobs
            else None
        )
        scheduler = Scheduler(config, registry, runtime.database) if jobs else None
        working = asyncio.create_task(worker.run(stop)) if worker else None
        if scheduler:
            scheduler.start()
        sharing = asyncio.create_task(share_while_running(stop))
        reloading = None
        if options.reload:
            from .reload import Reloader  # watchfiles is loaded only when asked for

            reloading = asyncio.create_task(Reloader(runtime, front, scheduler).watch(stop))
        if not options.reload:  # a reload replaces the modules and registry frozen here
            settle_heap()
        try:
            await stop.wait()
            if front is not None and config.server.drain_seconds > 0:
                front.draining = True
                log.info(
                    "draining for %gs: /readyz answers 503, requests are still served",
                    config.server.drain_seconds,
                )
                await asyncio.sleep(config.server.drain_seconds)
            log.info("shutting down: finishing in-flight requests and jobs")
        finally:
            if scheduler:
                scheduler.stop()
            stop.set()
            if front is not None:
                await front.close()  # realtime sockets told to go elsewhere, presence left
            await asyncio.gather(
                runner.cleanup() if runner else asyncio.sleep(0),
                working if working else asyncio.sleep(0),
                reloading if reloading else asyncio.sleep(0),
            )
            await sharing
            share_last()


async def seed_for_development(runtime: Runtime) -> None:
    """`dev` runs the seeds that have not run, so the app can be tried at once."""
    from .seeds import run_seeds

    report = await run_seeds(runtime)
    for name in report.changed:
        log.warning(
            "seed %s changed since it ran, and was not run again "
            "(actions-server seed --fresh runs every seed again)",
            name,
        )


def settle_heap() -> None:
    """Move everything made at start-up out of the garbage collector's sight.

    The registry, compiled schemas, templates and imported modules are hundreds
    of thousands of objects that live as long as the process. Python's oldest
    generation rescans them all on every full collection: under load that was a
    40-50 ms pause every second or two, the whole p99 (25 ms against 3 ms
    without). `gc.freeze` keeps them out of every later collection; they are
    still freed by reference counting if they ever become garbage.
    """
    gc.collect()
    gc.freeze()


async def _start_http(runtime: Runtime, options: ServeOptions) -> tuple[web.BaseRunner, HttpFront]:
    config = runtime.config
    access_log = logging.getLogger("actions_server.access") if config.server.access_log else None
    server, front = create_server(runtime, dev=options.dev, access_log=access_log)
    runner = web.ServerRunner(
        server, handle_signals=False, shutdown_timeout=config.server.shutdown_grace_seconds
    )
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, reuse_port=options.workers > 1)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise ActionsServerError(
                f"port {options.port} on {options.host} is already in use: stop what listens "
                "there, or choose another port with --port"
            ) from None
        raise ActionsServerError(f"cannot listen on {options.host}:{options.port}: {exc}") from None
    registry = runtime.registry
    port = bound_port(runner) or options.port
    log.info(
        "serving %s on http://%s:%d (%s)",
        config.app,
        options.host,
        port,
        counts(registry),
    )
    if options.dev:
        log.info("%s", banner(config, options.host, port))
    return runner, front


def banner(config: Config, host: str, port: int) -> str:
    """What a developer needs at start-up: the URLs that matter and how to get a token."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)
    base = f"http://{shown}:{port}"
    rows = [("API", f"{base}/"), ("Docs", f"{base}/docs  (try each action; /openapi.json)")]
    if config.dashboard.enabled:
        rows.append(
            ("Dashboard", f"{base}{config.dashboard.path}  (no token needed from this machine)")
        )
    if config.metrics.enabled:
        rows.append(("Metrics", f"{base}/metrics"))
    roles = [r for r in config.auth.roles if not r.startswith("org:")]
    role = f" --role {roles[0]}" if roles else ""
    where = "" if config.file.name == "config.yaml" else f" {config.file.name}"
    rows.append(("Token", f"actions-server token{where} --user ID{role}"))
    rows.append(("Reload", "on: each saved change to the app is swapped in"))
    width = max(len(name) for name, _ in rows)
    return "development server ready\n" + "\n".join(
        f"  {name:<{width}}  {value}" for name, value in rows
    )


def bound_port(runner: web.BaseRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return None


DEV_SECRET_PREFIX = "dev-only"


def check_secrets(config: Config, host: str) -> None:
    """Refuse a development JWT secret anywhere but loopback.

    The example's config falls back to a published `dev-only-…` secret so that
    `make serve` works out of the box; with it, anyone can sign an admin token.
    """
    secret = config.auth.jwt.secret or ""
    if secret.startswith(DEV_SECRET_PREFIX) and not _loopback(host):
        raise ActionsServerError(
            f"auth.jwt.secret is a development secret and the server would listen on {host}: "
            "set JWT_SECRET (e.g. `openssl rand -hex 32`), or listen on 127.0.0.1"
        )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(config: Config, dsn: str, options: ServeOptions) -> int:
    if options.workers <= 1:
        run_loop(serve_forever(config, dsn, options, http=options.http, jobs=options.jobs))
        return 0
    from .db.migrate import apply_migrations

    folder = config.migrations if options.migrate_app else None
    run_loop(apply_migrations(dsn, folder, run_role=config.database.role))
    port = options.port or _free_port(options.host)
    child_options = dataclasses.replace(options, port=port, migrate_app=False)
    # Each worker writes its metrics to a file here; a scrape of any one adds them up.
    metrics_dir = tempfile.mkdtemp(prefix="actions-server-metrics-")
    os.environ[SHARED_DIR_ENV] = metrics_dir
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_child_main,
            args=(str(config.file), dsn, child_options),
            name=f"actions-server-{i}",
        )
        for i in range(options.workers)
    ]
    for child in children:
        child.start()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.is_alive() and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("started %d worker processes on port %d", len(children), port)
    for child in children:
        child.join()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    failed = [c.name for c in children if c.exitcode not in (0, None)]
    if failed:
        log.error("worker processes exited with errors: %s", ", ".join(failed))
        return 1
    return 0


def _child_main(config_file: str, dsn: str, options: ServeOptions) -> None:
    config = load_config(config_file)
    configure_logging(config.logging.level, config.logging.format, sys.stdout)
    run_loop(
        serve_forever(config, dsn, options, migrate=False, http=options.http, jobs=options.jobs)
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
