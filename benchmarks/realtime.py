"""Realtime fan-out: one `actions-server serve`, N sockets in one channel.

    DATABASE_URL=postgresql://... python benchmarks/realtime.py [--sockets 1000]

In a fresh database on the server DATABASE_URL names, one server process
(pinned to CPU 0; this script on CPU 1) serves `--sockets` WebSockets, all joined
to `bench:room`. The clients are a minimal WebSocket client (asyncio protocols
that count frames and read only the fields they need), so that one Python
process can take what the server sends. Publishes are made in this script with
the statement `ctx.channel(...).publish` uses, one transaction each.

1. memory: the server's resident set before and after the sockets connected and
   joined, per socket (target ≤ 20 KB);
2. latency: `--publishes` single publishes, 20 ms apart; for each delivery, the
   time from the publishing COMMIT being sent to the frame arriving at the
   client; p50 and p99 over every delivery (target p99 ≤ 50 ms);
3. throughput: `--burst` messages published in transactions of `--per-commit`,
   as fast as they commit; deliveries per second from the first COMMIT to the
   last frame received by any socket (target ≥ 50,000/s).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg
from psycopg.rows import dict_row

from actions_server.db.migrate import apply_migrations
from actions_server.realtime import store
from scratch_db import drop_database, fresh_database  # a sibling: run as a script

HERE = Path(__file__).resolve().parent
APP = HERE / "realtime_app"
CHANNEL = "bench:room"


def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


class Client(asyncio.Protocol):
    """One WebSocket: the handshake, then frames counted as they arrive."""

    def __init__(self, host: str, port: int, record: dict[int, list[float]]) -> None:
        self.host, self.port = host, port
        self.record = record  # seq -> arrival times, while measuring latency
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.joined = asyncio.get_running_loop().create_future()
        self.messages = 0
        self.last_at = 0.0
        self.parse = True
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET /realtime HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def send(self, data: dict[str, object]) -> None:
        payload = orjson.dumps(data)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        assert self.transport is not None
        self.transport.write(bytes((0x81, 0x80 | len(payload))) + mask + masked)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(bytes(buffer[:200]).decode()))
                return
            del buffer[: end + 4]
            self.upgraded.set_result(None)
        now = time.perf_counter()
        offset = 0
        size = len(buffer)
        while size - offset >= 2:
            length = buffer[offset + 1] & 0x7F
            head = 2
            if length == 126:
                if size - offset < 4:
                    break
                length, head = int.from_bytes(buffer[offset + 2 : offset + 4], "big"), 4
            elif length == 127:
                if size - offset < 10:
                    break
                length, head = int.from_bytes(buffer[offset + 2 : offset + 10], "big"), 10
            if size - offset < head + length:
                break
            body = buffer[offset + head : offset + head + length]
            offset += head + length
            if body.startswith(b'{"type":"message"'):
                self.messages += 1
                self.last_at = now
                if self.parse:
                    seq = orjson.loads(body)["payload"]["seq"]
                    self.record.setdefault(seq, []).append(now)
            elif body.startswith(b'{"type":"reply"') and not self.joined.done():
                self.joined.set_result(None)
        del buffer[:offset]


async def until(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if done() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.01)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def connect(host: str, port: int, count: int, record: dict[int, list[float]]) -> list[Client]:
    loop = asyncio.get_running_loop()
    clients = []
    for start in range(0, count, 100):  # in waves: a listen backlog is finite
        wave = []
        for _ in range(min(100, count - start)):
            _, client = await loop.create_connection(lambda: Client(host, port, record), host, port)
            wave.append(client)
        await asyncio.gather(*(c.upgraded for c in wave))
        for n, client in enumerate(wave):
            client.send({"type": "join", "ref": str(start + n), "topic": CHANNEL})
        await asyncio.wait_for(asyncio.gather(*(c.joined for c in wave)), 60)
        clients += wave
    return clients


async def publish(
    conn: psycopg.AsyncConnection[dict[str, object]], messages: list[dict[str, object]]
) -> float:
    """Publish in one transaction; when its COMMIT was sent."""
    async with conn.transaction():
        await store.publish(
            conn,  # type: ignore[arg-type]
            [
                store.Outgoing(channel=CHANNEL, event="tick", payload=orjson.dumps(m).decode())
                for m in messages
            ],
        )
        sent = time.perf_counter()  # leaving the block sends COMMIT
    return sent


async def run(dsn: str, port: int, server_pid: int, args: argparse.Namespace) -> None:
    host = "127.0.0.1"
    record: dict[int, list[float]] = {}
    # One socket first: the listener, presence and the first join's imports are not
    # counted as the sockets' memory.
    warm = await connect(host, port, 1, {})
    await asyncio.sleep(0.5)
    before = rss_kb(server_pid)
    clients = await connect(host, port, args.sockets, record)
    await asyncio.sleep(1.0)
    after = rss_kb(server_pid)
    per_socket = (after - before) / args.sockets
    print(
        f"memory               {per_socket:>9.1f} KB per idle socket "
        f"({before / 1024:.0f} → {after / 1024:.0f} MB RSS for {args.sockets}; target ≤ 20 KB)"
    )

    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row
    ) as conn:
        sent_at: dict[int, float] = {}
        for seq in range(args.publishes):
            sent_at[seq] = await publish(conn, [{"seq": seq, "at": time.time()}])
            await asyncio.sleep(0.02)
        expected = args.publishes * args.sockets
        await until(lambda: sum(len(v) for v in record.values()) >= expected, 10)
        latencies = sorted(
            (arrival - sent_at[seq]) * 1000
            for seq, arrivals in record.items()
            for arrival in arrivals
        )
        received = len(latencies)
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        firsts = sorted((min(arrivals) - sent_at[seq]) * 1000 for seq, arrivals in record.items())
        print(
            f"latency              p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"({received}/{expected} deliveries of {args.publishes} publishes; target p99 ≤ 50 ms)"
        )
        print(
            f"  first socket       p50 {statistics.median(firsts):.1f} ms, "
            f"p99 {firsts[int(len(firsts) * 0.99) - 1]:.1f} ms "
            "(the rest is the server writing to, and this process reading, every socket)"
        )

        for client in clients:
            client.parse = False
            client.messages = 0
        total = args.burst * args.sockets
        cpu_before = cpu_seconds(server_pid)
        started = time.perf_counter()
        for first in range(0, args.burst, args.per_commit):
            await publish(
                conn,
                [
                    {"seq": -1, "n": n}
                    for n in range(first, min(args.burst, first + args.per_commit))
                ],
            )
        published = time.perf_counter()
        await until(lambda: sum(c.messages for c in clients) >= total, 60)
        got = sum(c.messages for c in clients)
        last = max(c.last_at for c in clients)
        rate = got / (last - started)
        cpu = cpu_seconds(server_pid) - cpu_before
        print(
            f"throughput           {rate:>9.0f} deliveries/s "
            f"({got}/{total} frames: {args.burst} messages × {args.sockets} sockets, "
            f"{args.per_commit} per commit, published in {published - started:.2f} s; "
            "target ≥ 50,000)"
        )
        print(
            f"  server CPU         {cpu * 1e6 / got:.2f} µs per delivery "
            f"({got / cpu:,.0f} deliveries per CPU-second)"
        )
    for client in [*warm, *clients]:
        assert client.transport is not None
        client.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument(
        "--publishes", type=int, default=200, help="single publishes for the latency"
    )
    parser.add_argument("--burst", type=int, default=500, help="messages for the throughput")
    parser.add_argument(
        "--per-commit", type=int, default=10, help="messages per transaction in the burst"
    )
    args = parser.parse_args()
    server_dsn = os.environ.get("DATABASE_URL")
    if not server_dsn:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server where a database can be created")
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    name, dsn = fresh_database(server_dsn, "bench_realtime")
    port = 18000 + os.getpid() % 1000
    server = None
    try:
        asyncio.run(apply_migrations(dsn, None))
        env = {**os.environ, "DATABASE_URL": dsn}
        command = [
            *pinned(0),
            sys.executable,
            "-m",
            "actions_server.cli",
            "serve",
            "config.yaml",
            "--port",
            str(port),
            "--no-worker",
            "--no-migrate",
        ]
        server = subprocess.Popen(command, cwd=APP, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        print(f"one server process, {args.sockets} sockets in {CHANNEL!r}")
        asyncio.run(run(dsn, port, server.pid, args))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        drop_database(server_dsn, name)


if __name__ == "__main__":
    main()
