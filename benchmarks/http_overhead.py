"""What actions-server costs per request, against raw aiohttp, in one run.

The servers run as one process each, pinned to CPU 0, on uvloop, serving the
same two endpoints:

- `GET /hello`: a constant object;
- `POST /echo`: a 3-field JSON input (one `format: email`), returned as is.
  actions-server validates the input and a declared output; the baselines do not.
- `GET /me` (actions-server only): behind `authenticated` and `has_permission`,
  called with a valid bearer token, compared with the baselines' `GET /hello`.

The baselines are a usual aiohttp `web.Application` (the issue's target) and
aiohttp's low-level `web.Server`, which actions-server builds on, so that the
part of the difference that comes from skipping Application is visible.

The load generator (wrk when installed, else benchmarks/pyload.py) runs pinned
to CPU 1. The servers are measured alternately, several short rounds each, so
that drift on a noisy machine hits both alike. Printed per server: the median
requests/s and p99 latency, and the server's CPU time per request (read from
/proc, so time the hypervisor gave to others does not count); then the ratio
actions-server / raw of both.

    python benchmarks/http_overhead.py [--rounds 7] [--seconds 3] [--connections 32]

actions-server needs a database to start (the benchmarked actions do not touch
it): DATABASE_URL, or the embedded one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

HERE = Path(__file__).resolve().parent
ECHO_BODY = json.dumps({"email": "ann@example.com", "name": "Ann", "age": 30})
SERVER_CPU, LOAD_CPU = 0, 1
TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")


NAMES = ("raw aiohttp", "raw web.Server", "actions-server")


@dataclass
class Sample:
    requests_per_second: float
    p99_ms: float
    cpu_us_per_request: float


@dataclass
class Load:
    requests: int
    seconds: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * TICK_SECONDS


def start_server(command: list[str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([*pinned(SERVER_CPU), *command], cwd=cwd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}: {' '.join(command)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server on port {port} did not start")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Request:
    """One endpoint as the load generator sends it."""

    method: str
    path: str
    token: str | None = None

    @property
    def body(self) -> str | None:
        return ECHO_BODY if self.method == "POST" else None


# Each case: what every server is asked. /me exists only in actions-server; the
# baselines answer the same case with their /hello (the comparison).
TOKEN = jwt.encode(
    {"sub": "bench-user", "permissions": ["profile:read"], "exp": int(time.time()) + 86400},
    "benchmark-secret-that-is-long-enough-0123456789",
    algorithm="HS256",
)
CASES: dict[str, dict[str, Request]] = {
    "GET /hello": dict.fromkeys(NAMES, Request("GET", "/hello")),
    "POST /echo": dict.fromkeys(NAMES, Request("POST", "/echo")),
    "GET /me": {
        "raw aiohttp": Request("GET", "/hello"),
        "raw web.Server": Request("GET", "/hello"),
        "actions-server": Request("GET", "/me", TOKEN),
    },
}
TARGETS = {"GET /hello": 0.80, "POST /echo": 0.80, "GET /me": 0.75}


def wrk(base: str, request: Request, seconds: float, connections: int) -> Load:
    command = [*pinned(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if request.token:
        command += ["-H", f"Authorization: Bearer {request.token}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if request.body is not None:
            script.write(
                f'wrk.method = "{request.method}"\n'
                f"wrk.body = {json.dumps(request.body)}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            script.flush()
            command += ["-s", script.name]
        url = base + request.path
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"errors while measuring {url}:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output).groups()  # type: ignore[union-attr]
    return Load(requests, seconds, float(value) * _UNITS[unit])


def pyload(base: str, request: Request, seconds: float, connections: int) -> Load:
    script = str(HERE / "pyload.py")
    command = [*pinned(LOAD_CPU), sys.executable, script, base + request.path, str(seconds)]
    command += [str(connections), request.body or "", request.token or ""]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests, p99 = json.loads(output)
    return Load(requests, seconds, p99)


def sample(
    measure: Callable[..., Load],
    pid: int,
    base: str,
    request: Request,
    seconds: float,
    connections: int,
) -> Sample:
    cpu_before = cpu_seconds(pid)
    load = measure(base, request, seconds, connections)
    cpu = cpu_seconds(pid) - cpu_before
    return Sample(load.requests / load.seconds, load.p99_ms, cpu / load.requests * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    measure = wrk if shutil.which("wrk") else pyload
    print(
        f"load: {measure.__name__}, {args.connections} connections; "
        f"{args.rounds} alternating rounds of {args.seconds:g}s per server and case"
    )
    raw_port, low_port, ours_port = free_port(), free_port(), free_port()
    raw = [sys.executable, str(HERE / "raw_aiohttp.py")]
    ours = [sys.executable, "-m", "actions_server.cli", "serve", "config.yaml", "--port"]
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    results: dict[tuple[str, str], list[Sample]] = {}
    try:  # started inside the try: a server that fails to start stops the others
        for name, command, cwd, port in (
            ("raw aiohttp", [*raw, str(raw_port), "app"], HERE, raw_port),
            ("raw web.Server", [*raw, str(low_port), "server"], HERE, low_port),
            ("actions-server", [*ours, str(ours_port)], HERE / "app", ours_port),
        ):
            servers[name] = (start_server(command, cwd, port), port)
        for case in args.cases:
            plan = [
                (name, process.pid, f"http://127.0.0.1:{port}")
                for name, (process, port) in servers.items()
            ]
            for name, pid, base in plan:  # warm-up, not recorded
                sample(measure, pid, base, CASES[case][name], 1, args.connections)
            for _ in range(args.rounds):
                for name, pid, base in plan:
                    got = sample(
                        measure, pid, base, CASES[case][name], args.seconds, args.connections
                    )
                    results.setdefault((case, name), []).append(got)
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    report(results, args.cases)


def report(results: dict[tuple[str, str], list[Sample]], cases: list[str]) -> None:
    head = f"{'case':<11} {'server':<15} {'req/s':>8} {'p99 ms':>7} {'CPU µs/req':>11}"
    print(f"\n{head}   req/s of each round")
    for case in cases:
        for name in NAMES:
            samples = results[(case, name)]
            rps = statistics.median(s.requests_per_second for s in samples)
            p99 = statistics.median(s.p99_ms for s in samples)
            cpu = statistics.median(s.cpu_us_per_request for s in samples)
            rounds = " ".join(f"{s.requests_per_second:.0f}" for s in samples)
            served = CASES[case][name]
            label = (
                f"{name} ({served.method} {served.path})"
                if served.path != case.split()[1]
                else name
            )
            print(f"{case:<11} {label:<15} {rps:>8.0f} {p99:>7.2f} {cpu:>11.1f}   {rounds}")
        ours = results[(case, "actions-server")]
        for baseline in ("raw aiohttp", "raw web.Server"):
            # Paired: each round's servers ran back to back, so their ratio is
            # steadier than the ratio of medians taken over drifting rounds.
            pairs = list(zip(ours, results[(case, baseline)], strict=True))
            throughput = statistics.median(
                a.requests_per_second / b.requests_per_second for a, b in pairs
            )
            cpu_ratio = statistics.median(
                b.cpu_us_per_request / a.cpu_us_per_request for a, b in pairs
            )
            line = f"{case:<11} {'ratio':<15} {throughput:>8.2f} {'':>7} {cpu_ratio:>11.2f}"
            target = f" (target ≥ {TARGETS[case]:.2f})" if baseline == "raw aiohttp" else ""
            print(f"{line}   vs {baseline}{target}")
        print()
    print("ratio: median over rounds of actions-server / baseline (paired, back to back), in req/s")
    print("and in CPU per request (the baseline's over ours). The targets are against raw aiohttp")
    print("(web.Application); GET /me is compared with the baselines' GET /hello.")


if __name__ == "__main__":
    main()
