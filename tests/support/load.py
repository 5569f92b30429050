"""Steady mixed HTTP load at a fixed rate, with every answer kept for accounting.

One request starts every 1/rate seconds whatever the others are doing (an open
model: a slow server does not slow the load down), cycling through reads,
writes (`POST /orders`, which pushes a job, emits an event and publishes), slow
requests and signed webhook deliveries. A write counts as acknowledged only when
its 201 arrived, a delivery when its 200 did. With `redeliver`, a failed delivery
is sent again with the same delivery id, as a webhook sender does, until it is
answered (every failed attempt is still counted as a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from support.fleet import WEBHOOK_SECRET

REDELIVERIES = 20


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # what went wrong, one line each
    acknowledged: list[str] = field(default_factory=list)  # refs of writes answered 201
    delivered: list[str] = field(default_factory=list)  # webhook delivery ids answered 200

    def summary(self) -> str:
        return f"sent {dict(self.sent)}, ok {dict(self.ok)}, failed {len(self.failures)}"


class Load:
    """Requests to `base` at `rate` per second until `stop()`; mix: read, write, slow."""

    def __init__(
        self, base: str, rate: float, *, prefix: str | None = None, redeliver: bool = False
    ) -> None:
        self.base = base
        self.redeliver = redeliver
        self.rate = rate
        self.prefix = prefix or uuid.uuid4().hex[:8]
        self.tally = Tally()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._numbers = itertools.count()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> Tally:
        self._stopping.set()
        if self._task is not None:
            await self._task
        return self.tally

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(limit=200)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            pending: set[asyncio.Task[None]] = set()
            interval = 1 / self.rate
            next_at = time.monotonic()
            kinds = itertools.cycle(["write", "read", "hook", "write", "read", "slow"])
            while not self._stopping.is_set():
                task = asyncio.create_task(self._one(session, next(kinds)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
            if pending:
                await asyncio.wait(pending)

    async def _one(self, session: aiohttp.ClientSession, kind: str) -> None:
        n = next(self._numbers)
        ref = f"{self.prefix}-{n}"
        if kind == "hook":
            await self._deliver(session, ref)
            return
        if kind == "write":
            method, path, body, expected = "POST", "/orders", {"ref": ref}, 201
        elif kind == "read":
            last = self.tally.acknowledged[-1] if self.tally.acknowledged else "none"
            method, path, body, expected = "GET", f"/orders/{last}", None, 200
        else:
            method, path, body, expected = "GET", "/slow?seconds=0.05", None, 200
        self.tally.sent[kind] += 1
        try:
            async with session.request(method, self.base + path, json=body) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return
        if status != expected:
            self.tally.failures.append(f"{method} {path}: {status}")
            return
        self.tally.ok[kind] += 1
        if kind == "write":
            self.tally.acknowledged.append(ref)

    async def _deliver(self, session: aiohttp.ClientSession, delivery: str) -> None:
        body = json.dumps({"ref": delivery}).encode()
        signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature}",
            "X-GitHub-Delivery": delivery,
        }
        self.tally.sent["hook"] += 1
        for _ in range(REDELIVERIES if self.redeliver else 1):
            failure = await self._post(session, "/hooks/rig", body, headers)
            if failure is None:
                self.tally.ok["hook"] += 1
                self.tally.delivered.append(delivery)
                return
            self.tally.failures.append(failure)
            await asyncio.sleep(0.5)

    async def _post(
        self, session: aiohttp.ClientSession, path: str, body: bytes, headers: dict[str, Any]
    ) -> str | None:
        try:
            async with session.post(self.base + path, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"POST {path}: {type(exc).__name__}: {exc}"
        return None if status == 200 else f"POST {path}: {status}"
