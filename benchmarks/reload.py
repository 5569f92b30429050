"""How soon a saved change answers under `serve --reload`, against restarting `serve`.

    DATABASE_URL=postgresql://... python benchmarks/reload.py [--saves 20] [--actions 300]

In a fresh database on the server DATABASE_URL names, on an app written to a
temporary folder with `--actions` actions besides the ones the saves add (ten per
manifest, each with an input schema and a route of its own):

1. baseline: `--starts` cold starts of `actions-server serve` (the process
   started, framework migrations already applied), each timed from the start
   of the process until its first route answers 200; what a restart costs when
   there is no reload.
2. reload: one `actions-server serve --reload` process; `--saves` times a new
   handler module and a new manifest naming it are written, and the time from
   the first write until the new route answers 200 (polled every few ms on a
   kept-alive connection) is taken. Also printed: the reload's own duration as
   the server logs it (loading and swapping, without the watcher's debounce).

Printed: p50 and max of each, and the ratio reload / cold start (targets, with
300 actions: a cold start within 1 s, a reload within 100 ms as the server logs it).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from scratch_db import drop_database, fresh_database  # a sibling: run as a script

PACKAGE = "bench_reload"
POLL_SECONDS = 0.002

CONFIG = """
app: reload-bench
database: {url: '${DATABASE_URL}'}
logging: {level: info}
"""

MANIFEST = """
module: r{n}
actions:
  - name: r{n}.get
    handler: bench_reload.h{n}:get
    triggers: [{{api: GET /r{n}}}]
"""

HANDLER = """
async def get(input, ctx):
    return {{"n": {n}}}
"""


MANY_HANDLER = """
async def item(input, ctx):
    return {"id": input["id"]}
"""

MANY_ACTION = """
  - name: m{m}.item{i}
    handler: bench_reload.many:item
    input:
      type: object
      required: [id]
      properties: {{id: {{type: integer, minimum: 1}}, q: {{type: string, maxLength: 50}}}}
    triggers: [{{api: GET /m{m}/item{i}/:id}}]
"""


def write_app(folder: Path, actions: int) -> None:
    (folder / "actions").mkdir()
    (folder / PACKAGE).mkdir()
    (folder / PACKAGE / "__init__.py").write_text("")
    (folder / PACKAGE / "many.py").write_text(textwrap.dedent(MANY_HANDLER))
    (folder / "config.yaml").write_text(textwrap.dedent(CONFIG))
    for m in range(0, actions, 10):
        body = "".join(MANY_ACTION.format(m=m, i=i) for i in range(min(10, actions - m)))
        (folder / "actions" / f"m{m}.yaml").write_text(f"module: m{m}\nactions:{body}")
    save(folder, 0)


def save(folder: Path, n: int) -> None:
    """A new handler module, then the manifest that routes to it (as a developer saves)."""
    (folder / PACKAGE / f"h{n}.py").write_text(textwrap.dedent(HANDLER.format(n=n)))
    (folder / "actions" / f"r{n}.yaml").write_text(textwrap.dedent(MANIFEST.format(n=n)))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(folder: Path, dsn: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": dsn}
    command = [sys.executable, "-m", "actions_server.cli", "serve", "config.yaml"]
    log = (folder / "serve.log").open("ab")
    return subprocess.Popen(
        [*command, "--port", str(port), "--no-migrate", *extra],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def status(conn: http.client.HTTPConnection, path: str) -> int | None:
    """The status of GET `path`, or None while nothing listens."""
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        conn.close()  # reconnects on the next request
        return None


def wait_for(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def cold_start(folder: Path, dsn: str) -> float:
    port = free_port()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    started = time.perf_counter()
    process = start(folder, dsn, port)
    try:
        wait_for(lambda: status(conn, "/r0") == 200, 60, "serve to answer")
        return time.perf_counter() - started
    finally:
        conn.close()
        stop(process)


def reloads(folder: Path, dsn: str, saves: int) -> list[float]:
    port = free_port()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    process = start(folder, dsn, port, "--reload")
    log = folder / "serve.log"
    try:
        wait_for(lambda: status(conn, "/r0") == 200, 60, "serve --reload to answer")
        wait_for(lambda: "watching" in log.read_text(), 30, "the watcher")
        times = []
        for n in range(1, saves + 1):
            path = f"/r{n}"
            started = time.perf_counter()
            save(folder, n)
            wait_for(lambda path=path: status(conn, path) == 200, 30, f"{path} to answer")  # type: ignore[misc]
            times.append(time.perf_counter() - started)
            time.sleep(0.3)  # the next save is a separate one
        return times
    finally:
        conn.close()
        stop(process)


def migrate(folder: Path, dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": dsn}
    command = [sys.executable, "-m", "actions_server.cli", "migrate", "config.yaml"]
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)


def ms(seconds: list[float]) -> str:
    return f"p50 {statistics.median(seconds) * 1000:7.0f} ms, max {max(seconds) * 1000:7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--saves", type=int, default=20, help="saves timed under --reload")
    parser.add_argument("--starts", type=int, default=5, help="cold starts timed")
    parser.add_argument("--actions", type=int, default=300, help="actions the app starts with")
    args = parser.parse_args()
    server_dsn = os.environ.get("DATABASE_URL")
    if not server_dsn:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server where a database can be created")
    folder = Path(tempfile.mkdtemp(prefix="reload-bench-"))
    name, dsn = fresh_database(server_dsn, "bench_reload")
    try:
        write_app(folder, args.actions)
        migrate(folder, dsn)
        starts = [cold_start(folder, dsn) for _ in range(args.starts)]
        saves = reloads(folder, dsn, args.saves)
        logged = [
            float(m) / 1000
            for m in re.findall(r"reloaded in (\d+) ms", (folder / "serve.log").read_text())
        ]
    finally:
        drop_database(server_dsn, name)
        shutil.rmtree(folder, ignore_errors=True)

    print(f"an app of {args.actions + 1} actions, {args.saves} more added by the saves")
    print(
        f"cold start of serve until the first route answers  {ms(starts)}  "
        f"({args.starts} starts; target with 300 actions: 1000 ms)"
    )
    print(
        f"reload: save until the new route answers           {ms(saves)}  "
        f"({args.saves} saves of a handler + manifest)"
    )
    print(
        f"  of which loading and swapping (server's log)     {ms(logged)}  "
        f"({len(logged)} reloads; target with 300 actions: 100 ms)"
    )
    ratio = statistics.median(saves) / statistics.median(starts)
    print(f"reload / cold start (p50)                          {ratio:.2f}")


if __name__ == "__main__":
    main()
