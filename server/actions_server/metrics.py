"""Metrics, served at `GET /metrics` in the Prometheus text format.

The request path only adds to plain dictionaries (a tally): a counter is one
dict update, a histogram observation a `bisect` and two list updates, under a
microsecond together. prometheus-client's own metric objects cost 3–4 µs per
request here (a lock per increment, a Python loop over the buckets), which on
a 60 µs request is too much; so the tally is turned into metric families only
when scraped, and prometheus-client writes the text.

With `serve --workers N` a scrape reaches one process of several. The parent
then names a folder (`ACTIONS_SERVER_METRICS_DIR`); every process writes its
tally there as JSON once a second and on exit, and a scrape adds up all the
files, its own tally taken live. Counts are cumulative per process, so the sum
stays monotonic when a process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger("actions_server.metrics")

SHARED_DIR_ENV = "ACTIONS_SERVER_METRICS_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
WRITE_INTERVAL_SECONDS = 1.0
# Where request and job latencies fall for an API: 1 ms to 30 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
UNMATCHED = ""  # the action label of a request no route matched

# name → (help, label names); counters are keyed by their label values.
COUNTERS = {
    "actions_server_http_requests": (
        "HTTP requests answered, by action and status code.",
        ("action", "status"),
    ),
    "actions_server_runs": (
        "Runs of actions, by trigger (api, event, job, cron, cli) and outcome "
        "(ok, rejected, error).",
        ("action", "trigger", "outcome"),
    ),
    "actions_server_event_deliveries": (
        "Deliveries queued for events, one per subscribed action.",
        ("event",),
    ),
    "actions_server_run_buffer_dropped": (
        "Run records and log lines dropped because the database could not keep up.",
        ("kind",),
    ),
}
HISTOGRAMS = {
    "actions_server_http_request_duration_seconds": (
        "Time from a request's arrival to its response, by action and status code.",
        ("action", "status"),
        LATENCY_BUCKETS,
    ),
    "actions_server_job_wait_seconds": (
        "Time from a job being due to a worker starting it.",
        (),
        WAIT_BUCKETS,
    ),
}


class Tally:
    """This process's counts. Histograms keep one count per bucket (not cumulative),
    then the +Inf bucket, then the sum."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in COUNTERS}
        self.histograms: dict[str, dict[tuple[str, ...], list[float]]] = {
            name: {} for name in HISTOGRAMS
        }
        self._requests = self.counters["actions_server_http_requests"]
        self._runs = self.counters["actions_server_runs"]
        self._latency = self.histograms["actions_server_http_request_duration_seconds"]

    def count(self, name: str, labels: tuple[str, ...], amount: float = 1) -> None:
        series = self.counters[name]
        series[labels] = series.get(labels, 0) + amount

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        bounds = HISTOGRAMS[name][2]
        series = self.histograms[name]
        buckets = series.get(labels)
        if buckets is None:
            buckets = series[labels] = [0.0] * (len(bounds) + 2)
        buckets[bisect_left(bounds, value)] += 1
        buckets[-1] += value

    # The two calls every request makes, inlined.

    def observe_request(self, action: str, status: int, seconds: float) -> None:
        key = (action, str(status))
        self._requests[key] = self._requests.get(key, 0) + 1
        buckets = self._latency.get(key)
        if buckets is None:
            buckets = self._latency[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        buckets[-1] += seconds

    def observe_run(self, action: str, trigger: str, outcome: str) -> None:
        key = (action, trigger, outcome)
        self._runs[key] = self._runs.get(key, 0) + 1

    # Sharing between processes.

    def to_json(self) -> dict[str, Any]:
        return {
            "counters": {n: [[*k, v] for k, v in s.items()] for n, s in self.counters.items()},
            "histograms": {
                n: [[list(k), v] for k, v in s.items()] for n, s in self.histograms.items()
            },
        }

    def add(self, data: Mapping[str, Any]) -> None:
        """Add another process's tally (as `to_json` wrote it) to this one."""
        for name, rows in data.get("counters", {}).items():
            if name in self.counters:
                for *labels, value in rows:
                    self.count(name, tuple(labels), value)
        for name, rows in data.get("histograms", {}).items():
            if name in self.histograms:
                series = self.histograms[name]
                for labels, values in rows:
                    current = series.setdefault(tuple(labels), [0.0] * len(values))
                    for i, value in enumerate(values):
                        current[i] += value


TALLY = Tally()


def observe_request(action: str, status: int, seconds: float) -> None:
    TALLY.observe_request(action, status, seconds)


def observe_run(action: str, trigger: str, outcome: str) -> None:
    TALLY.observe_run(action, trigger, outcome)


def observe_job_wait(seconds: float) -> None:
    TALLY.observe("actions_server_job_wait_seconds", (), seconds)


def count_event_deliveries(event: str, deliveries: int) -> None:
    TALLY.count("actions_server_event_deliveries", (event,), deliveries)


def count_dropped(kind: str, amount: int) -> None:
    TALLY.count("actions_server_run_buffer_dropped", (kind,), amount)


# --- exposition ---------------------------------------------------------------------


class _Families(Collector):
    def __init__(self, tally: Tally, gauges: Mapping[str, Mapping[str, float]]) -> None:
        self.tally = tally
        self.gauges = gauges

    def collect(self) -> Iterable[Metric]:
        for name, (documentation, labels) in COUNTERS.items():
            counter = CounterMetricFamily(name, documentation, labels=list(labels))
            for values, value in sorted(self.tally.counters[name].items()):
                counter.add_metric(list(values), value)
            yield counter
        for name, (documentation, labels, bounds) in HISTOGRAMS.items():
            histogram = HistogramMetricFamily(name, documentation, labels=list(labels))
            for values, counts in sorted(self.tally.histograms[name].items()):
                cumulative, running = [], 0.0
                for bound, count in zip((*map(str, bounds), "+Inf"), counts[:-1], strict=True):
                    running += count
                    cumulative.append((bound, running))
                histogram.add_metric(list(values), cumulative, counts[-1])
            yield histogram
        jobs = GaugeMetricFamily(
            "actions_server_jobs", "Jobs in the queue by state.", labels=["state"]
        )
        for state, value in self.gauges.get("jobs", {}).items():
            jobs.add_metric([state], value)
        yield jobs


def exposition(jobs_by_state: Mapping[str, float]) -> bytes:
    """The text a scrape gets: every process's tally, plus the queue depths."""
    tally = TALLY
    folder = os.environ.get(SHARED_DIR_ENV)
    if folder:
        tally = Tally()
        tally.add(TALLY.to_json())
        for path in Path(folder).glob("*.json"):
            if path.stem == str(os.getpid()):
                continue  # this process counts live
            try:
                tally.add(json.loads(path.read_text()))
            except (OSError, ValueError):  # being replaced right now: next scrape
                continue
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Families(tally, {"jobs": jobs_by_state}))
    return generate_latest(registry)


def write_shared(folder: str) -> None:
    """Write this process's tally for the others' scrapes (atomically: temp + rename)."""
    target = Path(folder) / f"{os.getpid()}.json"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(TALLY.to_json()))
    temporary.replace(target)


async def share_while_running(stop: asyncio.Event) -> None:
    """With several processes: write the tally every second until `stop`."""
    folder = os.environ.get(SHARED_DIR_ENV)
    while folder and not stop.is_set():
        try:
            write_shared(folder)
        except OSError as exc:
            log.warning("cannot share metrics: %s", exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WRITE_INTERVAL_SECONDS):
                await stop.wait()


def share_last() -> None:
    """The final write, once the process has answered its last request."""
    folder = os.environ.get(SHARED_DIR_ENV)
    if folder:
        with contextlib.suppress(OSError):
            write_shared(folder)
