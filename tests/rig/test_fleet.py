"""Three `serve` processes on one database through PgBouncer: limits are global, cron
ticks run once, jobs spread over the instances, and a `kill -9` loses nothing."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.fleet import Fleet, write_rig_app
from support.polling import eventually, query
from support.rig import Urls

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MakeFleet = Callable[..., Fleet]


@pytest.fixture
def make_fleet(tmp_path: Path, urls: Urls) -> Iterator[MakeFleet]:
    fleets: list[Fleet] = []

    def make(
        names: tuple[str, ...] = ("a", "b", "c"),
        *,
        worker: bool = False,
        envs: dict[str, dict[str, str]] | None = None,
        **app: object,
    ) -> Fleet:
        config = write_rig_app(tmp_path, **app)  # type: ignore[arg-type]
        fleet = Fleet(config, urls.env)
        fleets.append(fleet)
        for name in names:
            fleet.serve(name, worker=worker, **(envs or {}).get(name, {}))
        fleet.wait_healthy()
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()


def window(seconds: float = 3600) -> int:
    return int(time.time() // seconds)


@pytest.mark.parametrize("backend", ["postgres", "redis"])
async def test_a_rate_limit_of_n_admits_n_across_three_instances(
    make_fleet: MakeFleet, backend: str, redis_url: str
) -> None:
    kv = "{backend: postgres}"
    if backend == "redis":
        kv = f"{{backend: redis, url: '{redis_url}', prefix: 'rig-{uuid.uuid4().hex[:8]}:'}}"
    fleet = make_fleet(limit=10, kv=kv)
    bases = itertools.cycle([instance.base for instance in fleet.servers()])
    for _ in range(2):  # a second go only if the hour turned during the first
        began = window()
        async with aiohttp.ClientSession() as session:

            async def call(base: str) -> int:
                async with session.get(base + "/limited") as response:
                    return response.status

            statuses = await asyncio.gather(*(call(next(bases)) for _ in range(45)))
        if window() == began:
            break
    assert sorted(statuses).count(200) == 10, statuses
    assert statuses.count(429) == 35


async def test_cron_ticks_once_jobs_spread_and_a_killed_instance_loses_nothing(
    make_fleet: MakeFleet, urls: Urls
) -> None:
    # c holds every job it starts until it is killed, so the kill surely cuts jobs short.
    fleet = make_fleet(worker=True, cron=True, concurrency=2, envs={"c": {"RIG_HOLD_JOBS": "1"}})
    instances = list(fleet.servers())
    victim = instances[2]
    async with aiohttp.ClientSession() as session:

        async def order(n: int) -> None:
            base = instances[n % 2].base  # never through c, which is killed
            async with session.post(base + "/orders", json={"ref": f"o{n}"}) as response:
                assert response.status == 201, await response.text()

        await asyncio.gather(*(order(n) for n in range(30)))

        def held_by_victim() -> list[dict[str, Any]]:
            return query(
                urls.direct,
                "SELECT id FROM actions_server.jobs WHERE status = 'running' AND locked_by LIKE %s",
                f"%:{victim.served.process.pid}:%",
            )

        assert await eventually(held_by_victim, seconds=30), "the victim claimed no job"
        victim.served.process.send_signal(signal.SIGKILL)
        victim.served.process.wait(10)
        # What it held when it died: a job it had only held ready (prefetch) may have
        # gone back to the queue before the kill, its attempt not counted.
        held = held_by_victim()
        assert held, "the victim held no job when it was killed"
        await asyncio.gather(*(order(n) for n in range(30, 60)))
    done = await eventually(
        lambda: query(urls.direct, "SELECT count(*) AS n FROM effects")[0]["n"] >= 120, seconds=60
    )
    assert done, query(urls.direct, "SELECT status, count(*) FROM actions_server.jobs GROUP BY 1")
    await asyncio.sleep(2)  # any duplicate would have shown by now
    twice = query(
        urls.direct,
        "SELECT ref, kind, count(*) AS n FROM effects GROUP BY 1, 2 HAVING count(*) <> 1",
    )
    assert twice == []
    assert query(urls.direct, "SELECT count(*) AS n FROM effects")[0]["n"] == 120
    stuck = query(
        urls.direct,
        "SELECT count(*) AS n FROM actions_server.jobs WHERE status <> 'done' AND kind <> 'cron'",
    )
    assert stuck[0]["n"] == 0
    # The jobs cut short ran again elsewhere, once.
    retried = query(
        urls.direct,
        "SELECT status, attempts FROM actions_server.jobs WHERE id = ANY(%s)",
        [row["id"] for row in held],
    )
    assert retried == [{"status": "done", "attempts": 2}] * len(held)
    by_pid = query(
        urls.direct, "SELECT pid, count(*) AS n FROM effects WHERE kind = %s GROUP BY pid", "fulfil"
    )
    pids = {instance.served.process.pid for instance in instances}
    assert {row["pid"] for row in by_pid} <= pids - {victim.served.process.pid}
    assert len(by_pid) == 2, by_pid  # spread: both survivors ran jobs
    # Cron: three schedulers; each scheduled second was enqueued once (cron_ticks'
    # key), and every tick job done ran its handler exactly once. One statement,
    # one snapshot: a tick's effect commits with its job's completion.
    [cron] = query(
        urls.direct,
        "SELECT (SELECT coalesce(array_agg(fire_time ORDER BY fire_time), '{}') FROM ticks) AS ran,"
        " (SELECT coalesce(array_agg(run_at ORDER BY run_at), '{}') FROM actions_server.jobs"
        "  WHERE action = 'rig.tick' AND status = 'done') AS done,"
        " (SELECT count(*) FROM actions_server.jobs WHERE action = 'rig.tick') AS jobs,"
        " (SELECT count(DISTINCT run_at) FROM actions_server.jobs WHERE action = 'rig.tick')"
        "  AS seconds",
    )
    assert len(cron["ran"]) >= 5, "cron hardly ticked"
    assert cron["ran"] == cron["done"]  # each done tick ran once, none ran twice
    assert cron["jobs"] == cron["seconds"]  # one job per scheduled second
