"""The seed's SaaS flow end to end, with the database-bound baseline as its yardstick.

    DATABASE_URL=postgresql://... python benchmarks/flow.py [--seconds 10] [--rate 50]

One `actions-server serve` process (HTTP, worker and scheduler, the defaults a
user gets; benchmarks/flow_app) pinned to CPU 0. Each flow is five runs:

    POST /orders (orders.create: INSERT, emit order.created)
      -> orders.audit   (event delivery: INSERT into audit_log)
      -> orders.notify  (event delivery: push job sendReceipt)
           -> orders.sendReceipt (job: ctx.mail.send)
                -> actions_server.sendMail (built-in job: the outbox row)

1. throughput: wrk (-t1 -c16, pinned to CPU 1) posts orders for `--seconds`;
   completed flows per second is the number of orders over the time from the
   first order to the last outbox row. The yardstick, in the same run: the
   hand-written aiohttp + psycopg app of benchmarks/db_bound.py answering
   `POST /items` (one INSERT) under the same wrk.
2. latency: orders posted one at a time at `--rate` per second while the worker
   keeps up; end to end from the order's INSERT to its outbox row (both the
   database's clock), p50/p99, and the median of each stage, read from the
   jobs' own timestamps (created_at, started_at, finished_at) by trace id.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psycopg
from psycopg.rows import dict_row

from actions_server.db.migrate import apply_migrations
from http_overhead import free_port, pinned, start_server
from scratch_db import drop_database, fresh_database

HERE = Path(__file__).resolve().parent
APP = HERE / "flow_app"
ORDER = '{"customer": "Acme", "email": "buyer@example.com", "total_cents": 4200}'
ITEM = '{"name": "a new item"}'
WAIT_SECONDS = 300


def wrk_rate(url: str, body: str, seconds: float, connections: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(
            f"wrk.method = \"POST\"\nwrk.body = '{body}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        script.flush()
        output = subprocess.run(
            [
                *pinned(1),
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"errors while measuring {url}:\n{output}")
    return int(re.search(r"(\d+) requests in", output).group(1)) / seconds  # type: ignore[union-attr]


def count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]


def wait_for_flows(dsn: str, orders: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while count(dsn, "SELECT count(*) FROM actions_server.mail_outbox") < orders:
        if time.monotonic() > deadline:
            raise SystemExit("the flows did not all finish in time")
        time.sleep(0.2)


def flows_per_second(dsn: str) -> tuple[int, float]:
    with psycopg.connect(dsn) as conn:
        orders, seconds = conn.execute(
            "SELECT (SELECT count(*) FROM orders),"
            " extract(epoch FROM (SELECT max(created_at) FROM actions_server.mail_outbox)"
            " - (SELECT min(created_at) FROM orders))"
        ).fetchone()  # type: ignore[misc]
    return int(orders), int(orders) / float(seconds)


STAGES = """
WITH flow AS (
    SELECT o.id, o.created_at AS ordered,
           min(d.started_at) AS delivered,
           max(d.finished_at) FILTER (WHERE d.action = 'orders.notify') AS notified,
           min(d.trace_id) AS trace_id
    FROM orders o
    JOIN actions_server.jobs d ON d.kind = 'event' AND (d.payload->>'id')::bigint = o.id
    GROUP BY o.id, o.created_at
)
SELECT f.id,
       extract(epoch FROM m.created_at - f.ordered) * 1000 AS end_to_end,
       extract(epoch FROM f.delivered - f.ordered) * 1000 AS to_subscribers,
       extract(epoch FROM r.started_at - f.notified) * 1000 AS to_job,
       extract(epoch FROM s.started_at - r.finished_at) * 1000 AS to_mail_job,
       extract(epoch FROM m.created_at - s.started_at) * 1000 AS to_outbox
FROM flow f
JOIN actions_server.jobs r ON r.trace_id = f.trace_id AND r.action = 'orders.sendReceipt'
JOIN actions_server.jobs s ON s.trace_id = f.trace_id AND s.action = 'actions_server.sendMail'
JOIN actions_server.mail_outbox m ON m.job_id = s.id::text
"""


async def post_at_rate(base: str, seconds: float, rate: float) -> int:
    sent = 0
    async with aiohttp.ClientSession() as session:
        interval, next_at = 1 / rate, time.perf_counter()
        end = next_at + seconds
        while next_at < end:
            async with session.post(
                base + "/orders", data=ORDER, headers={"content-type": "application/json"}
            ) as response:
                if response.status != 201:
                    raise SystemExit(f"POST /orders answered {response.status}")
            sent += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return sent


def reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE orders, audit_log, actions_server.jobs, actions_server.events,"
            " actions_server.mail_outbox"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=50, help="orders per second, latency phase")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    server_dsn = os.environ.get("DATABASE_URL")
    if not server_dsn:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server where a database may be created")
    name, dsn = fresh_database(server_dsn, "flowbench")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(apply_migrations(dsn, APP / "migrations"))
        asyncio.run(apply_migrations(dsn, HERE / "db_app" / "migrations"))
        os.environ["DATABASE_URL"] = dsn
        ours, raw = free_port(), free_port()
        serve = [sys.executable, "-m", "actions_server.cli", "serve", "config.yaml"]
        processes.append(start_server([*serve, "--port", str(ours)], APP, ours))
        raw_app = [sys.executable, str(HERE / "raw_db.py"), str(raw), dsn, "10"]
        processes.append(start_server(raw_app, HERE, raw))
        baseline = wrk_rate(f"http://127.0.0.1:{raw}/items", ITEM, args.seconds, args.connections)
        posted = wrk_rate(f"http://127.0.0.1:{ours}/orders", ORDER, args.seconds, args.connections)
        orders = count(dsn, "SELECT count(*) FROM orders")
        wait_for_flows(dsn, orders)
        orders, flows = flows_per_second(dsn)
        reset(dsn)
        sent = asyncio.run(post_at_rate(f"http://127.0.0.1:{ours}", args.seconds, args.rate))
        wait_for_flows(dsn, sent)
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            rows = conn.execute(STAGES).fetchall()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        drop_database(server_dsn, name)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    print(f"throughput ({args.seconds:g} s of wrk -c{args.connections}, then the backlog drains)")
    print(f"  hand-written POST /items (one INSERT):  {baseline:>8,.0f} req/s")
    print(f"  POST /orders answered:                  {posted:>8,.0f} req/s")
    print(f"  completed flows (5 runs each):          {flows:>8,.0f} flows/s  ({orders} flows)")
    print(f"  flows / hand-written inserts:           {flows / baseline:>8.2f}")
    e2e = [float(r["end_to_end"]) for r in rows]
    print(f"latency ({len(rows)} flows at {args.rate:g}/s)")
    print(f"  end to end: p50 {pct(e2e, 0.5):.1f} ms, p99 {pct(e2e, 0.99):.1f} ms")
    for stage, label in (
        ("to_subscribers", "order INSERT -> first subscriber starts"),
        ("to_job", "notify done -> sendReceipt starts"),
        ("to_mail_job", "sendReceipt done -> sendMail starts"),
        ("to_outbox", "sendMail starts -> outbox row"),
    ):
        values = [float(r[stage]) for r in rows]
        print(f"  {label:<42} p50 {statistics.median(values):6.1f} ms")


if __name__ == "__main__":
    main()
