"""The metrics tally: counting, histogram buckets, and adding up several processes."""

from __future__ import annotations

import json

from actions_server.metrics import LATENCY_BUCKETS, Tally


def test_histogram_buckets_are_upper_bounds_inclusive() -> None:
    tally = Tally()
    for seconds in (0.0005, 0.001, 0.003, 100):
        tally.observe_request("a.b", 200, seconds)
    buckets = tally.histograms["actions_server_http_request_duration_seconds"][("a.b", "200")]
    assert buckets[0] == 2  # ≤ 1 ms, the bound itself included
    assert buckets[LATENCY_BUCKETS.index(0.005)] == 1
    assert buckets[len(LATENCY_BUCKETS)] == 1  # +Inf
    assert buckets[-1] == 0.0005 + 0.001 + 0.003 + 100  # the sum


def test_tallies_of_several_processes_add_up() -> None:
    first, second = Tally(), Tally()
    first.observe_request("a.b", 200, 0.002)
    second.observe_request("a.b", 200, 0.002)
    second.observe_request("a.b", 500, 0.2)
    second.observe_run("a.b", "api", "error")
    total = Tally()
    for tally in (first, second):
        total.add(json.loads(json.dumps(tally.to_json())))  # as the files carry them
    assert total.counters["actions_server_http_requests"] == {("a.b", "200"): 2, ("a.b", "500"): 1}
    assert total.counters["actions_server_runs"] == {("a.b", "api", "error"): 1}
    latency = total.histograms["actions_server_http_request_duration_seconds"]
    assert sum(latency[("a.b", "200")][:-1]) == 2
    assert sum(latency[("a.b", "500")][:-1]) == 1
