"""The chaos soak: steady mixed load through HAProxy while a driver breaks things.

The topology of the scale-out rig on a PostgreSQL of its own (so that it can be
restarted): PostgreSQL ← PgBouncer (transaction pooling) ← three `serve
--no-worker` instances and one `worker` ← HAProxy ← the load (reads, writes
that push a job, emit an event and publish on a channel, and signed webhook
deliveries, sent again with the same delivery id until answered, as a sender
does), plus a cron tick every second. At random intervals the driver kills -9 an instance or the worker (a
supervisor starts it again at once), restarts PostgreSQL, or restarts PgBouncer;
`app0` is never killed, so that its memory can be watched for the whole run.

Then the load stops, the queue is left to finish, and the database is counted:
every acknowledged write is there, every order's job and event delivery ran
exactly once (each effect is a row written in the run's transaction), every
acknowledged webhook delivery ran exactly once however often it was sent, no job is
stuck or dead, and no cron tick ran twice. Requests failed while PostgreSQL or
PgBouncer was down are expected (503s) and reported, not counted as losses.

    python tests/soak/chaos.py --seconds 600        # on demand, minutes long
    ACTIONS_SERVER_SOAK_SECONDS=600 pytest tests/soak  # the same through pytest

CI runs the short variant (tests/soak/test_chaos.py, 75 s of chaos).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: the tests' support package is beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import psycopg

from support.fleet import Fleet, Instance, write_rig_app
from support.load import Load, Tally
from support.polling import eventually, query
from support.postgres import ThrowawayPostgres
from support.processes import free_port, http
from support.rig import HAProxy, PgBouncer

CHAOS = ("kill -9 an instance", "kill -9 the worker", "restart PostgreSQL", "restart PgBouncer")
FAST_RETRY = "retry: {attempts: 50, backoff: exponential, base_seconds: 0.5, max_seconds: 5}"


@dataclass
class Soak:
    """What happened, and what the accounting found wrong (`problems`, empty when all is well)."""

    seconds: float
    rate: float
    events: list[tuple[float, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        return json.dumps(
            {"figures": self.figures, "chaos": self.events, "problems": self.problems}, indent=2
        )


class Rig:
    """Everything the soak starts, and the moves of the chaos driver."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.postgres = ThrowawayPostgres(folder / "postgres")
        server = self.postgres.listen_on_tcp(free_port(), max_connections=200)
        query(server, "CREATE DATABASE soak")
        self.direct = psycopg.conninfo.make_conninfo(server, dbname="soak")
        self.bouncer = PgBouncer(folder / "pgbouncer", server, pool_size=20)
        self.bouncer.start()
        config = write_rig_app(folder / "app", cron=True, drain_seconds=1, concurrency=8)
        # Jobs see the database go away many times: let them try often, quickly.
        manifest = config.parent / "actions" / "rig.yaml"
        text = manifest.read_text()
        for name in ("fulfil", "notify"):
            text = text.replace(
                f"handler: {_package(text)}.handlers:{name}\n",
                f"handler: {_package(text)}.handlers:{name}\n    {FAST_RETRY}\n",
            )
        manifest.write_text(text)
        env = {"DATABASE_URL": self.bouncer.dsn("soak"), "LISTEN_URL": self.direct}
        self.fleet = Fleet(config, env)
        self.ports = [free_port() for _ in range(3)]
        for i, port in enumerate(self.ports):
            self.fleet.serve(f"app{i}", port)
        self.fleet.worker("worker")
        self.fleet.wait_healthy()
        self.balancer = HAProxy(folder / "haproxy", self.ports)
        self.balancer.start()
        self.base = f"http://127.0.0.1:{self.balancer.port}"
        self.generation = Counter[str]()

    def survivor(self) -> Instance:
        return self.fleet.members["app0"]

    def _replace(self, name: str) -> None:
        old = self.fleet.members.pop(name)
        old.served.process.kill()
        old.served.process.wait(10)
        self.generation[name] += 1
        fresh = f"{name}.{self.generation[name]}"
        instance = self.fleet.serve(fresh, old.port) if old.port else self.fleet.worker(fresh)
        self.fleet.members[name] = self.fleet.members.pop(fresh)
        instance.name = name

    def strike(self, move: str, rng: random.Random) -> None:
        if move == "kill -9 an instance":
            self._replace(rng.choice(["app1", "app2"]))
        elif move == "kill -9 the worker":
            self._replace("worker")
        elif move == "restart PostgreSQL":
            self.postgres.stop()  # immediate: a crash, then recovery on start
            self.postgres.start()
        else:
            self.bouncer.restart()

    def close(self) -> None:
        self.balancer.stop()
        self.fleet.stop()
        self.bouncer.stop()
        self.postgres.close()


def _package(manifest: str) -> str:
    return manifest.split("handler: ", 1)[1].split(".handlers:", 1)[0]


def rss_mb(instance: Instance) -> float:
    return psutil.Process(instance.served.process.pid).memory_info().rss / 2**20


async def chaos(rig: Rig, soak: Soak, rng: random.Random, until: float) -> None:
    """Strike at random intervals until `until`; every kind of move at least once."""
    moves = list(CHAOS)
    rng.shuffle(moves)
    started = time.monotonic()
    spacing = max(4.0, soak.seconds / 10)
    while True:
        await asyncio.sleep(rng.uniform(0.5, 1.5) * spacing)
        if time.monotonic() >= until:
            return
        move = moves.pop(0) if moves else rng.choice(CHAOS)
        soak.events.append((round(time.monotonic() - started, 1), move))
        await asyncio.to_thread(rig.strike, move, rng)


def wait_quiet(direct: str, seconds: float, cutoff: datetime.datetime) -> dict[str, int]:
    """Wait until no job, event delivery or cron tick due before `cutoff` is left
    (ticks keep coming due while the rig runs); the statuses then."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            rows = query(
                direct,
                "SELECT status, count(*) AS n FROM actions_server.jobs "
                "WHERE kind <> 'cron' OR run_at < %s GROUP BY 1",
                cutoff,
            )
        except Exception:
            rows = []
        statuses = {r["status"]: r["n"] for r in rows}
        if statuses and set(statuses) <= {"done", "dead", "cancelled"}:
            return statuses
        if time.monotonic() > deadline:
            return statuses
        time.sleep(0.5)


def reason(failure: str) -> str:
    """`POST /orders: 503` → `POST 503`: what failed, without the request's own path."""
    method, _, rest = failure.partition(" ")
    return f"{method} {rest.split(': ', 1)[-1][:60]}"


def account(rig: Rig, soak: Soak, tally: Tally) -> None:
    direct = rig.direct
    # One moment for every check: a tick that comes due while the checks run is not
    # counted as quiet by one and as "never run" by another.
    [row] = query(direct, "SELECT now() - interval '10 seconds' AS cutoff")
    cutoff = row["cutoff"]
    statuses = wait_quiet(direct, 120, cutoff)
    orders = {r["ref"] for r in query(direct, "SELECT ref FROM orders")}
    lost = sorted(set(tally.acknowledged) - orders)
    hooks = query(direct, "SELECT ref, count(*) AS n FROM effects WHERE kind = 'hook' GROUP BY 1")
    hooked = {r["ref"]: r["n"] for r in hooks}
    undelivered = sorted(d for d in tally.delivered if hooked.get(d) != 1)
    effects = query(
        direct,
        "SELECT kind, count(*) AS n, count(DISTINCT ref) AS refs FROM effects GROUP BY kind",
    )
    by_kind = {r["kind"]: r for r in effects}
    twice = query(
        direct, "SELECT ref, kind FROM effects GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 10"
    )
    missing = query(
        direct,
        "SELECT o.ref FROM orders o WHERE (SELECT count(*) FROM effects e"
        " WHERE e.ref = o.ref AND e.kind IN ('fulfil', 'notify')) <> 2 LIMIT 10",
    )
    ticks = query(direct, "SELECT fire_time, count(*) AS n FROM ticks GROUP BY 1 ORDER BY 1")
    doubled_ticks = [str(t["fire_time"]) for t in ticks if t["n"] > 1]
    unrun = query(
        direct,
        "SELECT c.fire_time FROM actions_server.cron_ticks c WHERE c.action = 'rig.tick'"
        " AND c.fire_time < %s AND NOT EXISTS (SELECT FROM ticks t WHERE t.fire_time = c.fire_time)"
        " LIMIT 5",
        cutoff,
    )
    span = (ticks[-1]["fire_time"] - ticks[0]["fire_time"]).total_seconds() + 1 if ticks else 0
    soak.figures.update(
        requests=dict(tally.sent),
        answered_ok=dict(tally.ok),
        failed_requests=len(tally.failures),
        failures_by_reason=dict(Counter(reason(f) for f in tally.failures).most_common(8)),
        writes_acknowledged=len(tally.acknowledged),
        webhook_deliveries_acknowledged=len(tally.delivered),
        orders_in_database=len(orders),
        effects={k: {"rows": v["n"], "orders": v["refs"]} for k, v in by_kind.items()},
        jobs_by_status=statuses,
        cron_ticks=len(ticks),
        cron_seconds_spanned=int(span),
    )
    if lost:
        soak.problems.append(f"{len(lost)} acknowledged writes missing, e.g. {lost[:5]}")
    if undelivered:
        soak.problems.append(f"acknowledged deliveries not run exactly once: {undelivered[:5]}")
    if twice:
        soak.problems.append(f"effects ran more than once: {twice}")
    if missing:
        soak.problems.append(f"orders whose job or event did not run exactly once: {missing}")
    if set(statuses) - {"done"}:
        soak.problems.append(f"jobs not done at the end: {statuses}")
    if doubled_ticks:
        soak.problems.append(f"cron ticks that ran twice: {doubled_ticks[:5]}")
    if unrun:
        soak.problems.append(f"cron ticks enqueued and never run: {unrun}")
    if not tally.acknowledged:
        soak.problems.append("no write was acknowledged: the load never got through")


async def run_soak(
    folder: Path,
    seconds: float,
    *,
    rate: float = 60,
    seed: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Soak:
    seed = seed if seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    soak = Soak(seconds=seconds, rate=rate, figures={"seed": seed})
    rig = await asyncio.to_thread(Rig, folder)
    try:
        await eventually(lambda: http("GET", rig.base + "/readyz")[0] == 200)
        load = Load(rig.base, rate, redeliver=True)
        load.start()
        began = time.monotonic()
        await asyncio.sleep(min(5.0, seconds / 10))  # warmed up: the baseline of memory
        rss = [rss_mb(rig.survivor())]
        say(f"load at {rate}/s through {rig.base}; chaos for {seconds:g}s (seed {seed})")
        await chaos(rig, soak, rng, began + seconds)
        await asyncio.sleep(max(0.0, began + seconds - time.monotonic()))
        rss.append(rss_mb(rig.survivor()))
        tally = await load.stop()
        soak.figures["seconds_of_load"] = round(time.monotonic() - began, 1)
        await asyncio.to_thread(account, rig, soak, tally)
        soak.figures["survivor_rss_mb"] = {"start": round(rss[0], 1), "end": round(rss[1], 1)}
        # Flat: a leak of a few kB per request would show as tens of MB here.
        if rss[1] > rss[0] * 1.5 + 20:
            soak.problems.append(f"app0's memory grew from {rss[0]:.0f} to {rss[1]:.0f} MB")
    finally:
        await asyncio.to_thread(rig.close)
    return soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rate", type=float, default=60, help="requests per second")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="actions-server-soak-"))
    folder.chmod(0o755)
    try:
        soak = asyncio.run(
            run_soak(folder, args.seconds, rate=args.rate, seed=args.seed, say=print)
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(soak.report())
    return 1 if soak.problems else 0


if __name__ == "__main__":
    sys.exit(main())
