"""actions-server with its defaults against its peers, per request, in one run.

Five servers, one process each pinned to CPU 0, the load generator (wrk -t1,
else benchmarks/pyload.py) pinned to CPU 1, measured in alternation: several
short rounds, each running every server back to back (in an order rotated from
round to round), so that drift on a noisy machine hits them alike.

- raw aiohttp: benchmarks/raw_aiohttp.py (the baseline, 1.00);
- actions-server: benchmarks/app, the app of http_overhead.py, with the default
  configuration (every run recorded);
- Litestar, FastAPI, Connexion 3: benchmarks/peers_http/, each on uvicorn with
  uvloop and httptools, one worker, in a virtualenv of its own under
  benchmarks/.peers/ made on first use (benchmarks/peers_venv.py).

Cases, each framework doing the work its own idiomatic way:

- `GET /hello`: a constant object;
- `POST /echo`: a 3-field JSON body (`email` an email, `name` non-empty, `age` a
  non-negative integer, nothing else), validated and returned: actions-server's
  input schema, a pydantic model (FastAPI), a msgspec Struct (Litestar), the
  OpenAPI spec (Connexion); raw aiohttp validates nothing;
- `GET /me`: an HS256 bearer token verified with PyJWT and a permission checked:
  guards `authenticated` + `has_permission` (actions-server), dependencies
  (FastAPI), guards (Litestar), an oauth2 security scheme with a required scope
  (Connexion). raw aiohttp answers this case with its `GET /hello`, as in
  http_overhead.py, where the issue's target for /me comes from.

Printed: per case and server the median req/s, p99 and the server's CPU µs per
request; the ratio to raw aiohttp (median of the per-round ratios); and whether
actions-server is ahead of each peer (median of per-round actions-server / peer).

    python benchmarks/http_peers.py [--rounds 7] [--seconds 2] [--connections 32]

actions-server needs a database to start: DATABASE_URL, or the embedded one.
Servers listen on ports 19400-19499.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt

from http_overhead import (  # siblings: run as a script
    ECHO_BODY,
    TOKEN,
    Request,
    Sample,
    pyload,
    sample,
    start_server,
    wrk,
)
from peers_venv import peer_python, versions

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers_http"
NAMES = ("raw aiohttp", "actions-server", "Litestar", "FastAPI", "Connexion")
VENVS = {"Litestar": "litestar", "FastAPI": "fastapi", "Connexion": "connexion"}
SCRIPTS = {
    "Litestar": "litestar_app.py",
    "FastAPI": "fastapi_app.py",
    "Connexion": "connexion_app.py",
}
ME = Request("GET", "/me", TOKEN)
CASES: dict[str, dict[str, Request]] = {
    "GET /hello": dict.fromkeys(NAMES, Request("GET", "/hello")),
    "POST /echo": dict.fromkeys(NAMES, Request("POST", "/echo")),
    "GET /me": {**dict.fromkeys(NAMES, ME), "raw aiohttp": Request("GET", "/hello")},
}
# A valid token without the permission /me needs: 403 (or 401) everywhere.
NO_PERMISSION = jwt.encode(
    {"sub": "bench-user", "permissions": ["other"], "exp": int(time.time()) + 86400},
    "benchmark-secret-that-is-long-enough-0123456789",
    algorithm="HS256",
)
TARGETS = {"GET /hello": 0.80, "POST /echo": 0.80, "GET /me": 0.75}


def ports(count: int, first: int = 19400, last: int = 19499) -> list[int]:
    """`count` free ports in the range this benchmark may use."""
    found: list[int] = []
    for port in range(first, last + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise SystemExit(f"no {count} free ports in {first}-{last}")


def call(base: str, method: str, path: str, body: str | None, token: str | None) -> int:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body.encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def check(name: str, base: str) -> None:
    """Each server does the work it is measured on: valid passes, invalid does not."""
    bad_email = json.dumps({"email": "not an email", "name": "Ann", "age": 30})
    extra = json.dumps({"email": "ann@example.com", "name": "Ann", "age": 30, "x": 1})
    negative = json.dumps({"email": "ann@example.com", "name": "Ann", "age": -1})
    expect: list[tuple[str, str, str | None, str | None, bool]] = [
        ("GET", "/hello", None, None, True),
        ("POST", "/echo", ECHO_BODY, None, True),
    ]
    if name != "raw aiohttp":
        expect += [
            ("POST", "/echo", bad_email, None, False),
            ("POST", "/echo", extra, None, False),
            ("POST", "/echo", negative, None, False),
            ("GET", "/me", None, TOKEN, True),
            ("GET", "/me", None, None, False),
            ("GET", "/me", None, NO_PERMISSION, False),
            ("GET", "/me", None, TOKEN[:-2] + "xx", False),
        ]
    for method, path, body, token, ok in expect:
        status = call(base, method, path, body, token)
        if (200 <= status < 300) != ok:
            raise SystemExit(f"{name}: {method} {path} answered {status}, expected ok={ok}")


def commands(port_of: dict[str, int]) -> dict[str, tuple[list[str], Path]]:
    ours = [sys.executable, "-m", "actions_server.cli", "serve", "config.yaml", "--port"]
    raw = [sys.executable, str(HERE / "raw_aiohttp.py")]
    made = {
        "raw aiohttp": ([*raw, str(port_of["raw aiohttp"]), "app"], HERE),
        "actions-server": ([*ours, str(port_of["actions-server"])], HERE / "app"),
    }
    for name, venv in VENVS.items():
        python = str(peer_python(venv))
        made[name] = ([python, SCRIPTS[name], str(port_of[name])], PEERS)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    # The defaults: every run recorded (benchmarks/app reads this variable).
    os.environ.pop("BENCH_RECORD_RUNS", None)
    measure = wrk if shutil.which("wrk") else pyload
    for venv in VENVS.values():
        print(f"{venv}: {versions(venv)}")
    print(
        f"load: {measure.__name__}, {args.connections} connections; "
        f"{args.rounds} alternating rounds of {args.seconds:g}s per server and case"
    )
    port_of = dict(zip(NAMES, ports(len(NAMES)), strict=True))
    servers: dict[str, subprocess.Popen[bytes]] = {}
    results: dict[tuple[str, str], list[Sample]] = {}
    try:  # started inside the try: a server that fails to start stops the others
        for name, (command, cwd) in commands(port_of).items():
            servers[name] = start_server(command, cwd, port_of[name])
            check(name, f"http://127.0.0.1:{port_of[name]}")
        for case in args.cases:
            plan = [
                (name, servers[name].pid, f"http://127.0.0.1:{port_of[name]}") for name in NAMES
            ]
            for name, pid, base in plan:  # warm-up, not recorded
                sample(measure, pid, base, CASES[case][name], 1, args.connections)
            for round_ in range(args.rounds):
                shift = round_ % len(plan)
                for name, pid, base in plan[shift:] + plan[:shift]:
                    got = sample(
                        measure, pid, base, CASES[case][name], args.seconds, args.connections
                    )
                    results.setdefault((case, name), []).append(got)
    finally:
        for process in servers.values():
            process.send_signal(signal.SIGTERM)
        for process in servers.values():
            process.wait(30)
    report(results, args.cases)


def paired(ours: list[Sample], theirs: list[Sample]) -> float:
    return statistics.median(
        a.requests_per_second / b.requests_per_second for a, b in zip(ours, theirs, strict=True)
    )


def cpu_paired(ours: list[Sample], theirs: list[Sample]) -> float:
    return statistics.median(
        b.cpu_us_per_request / a.cpu_us_per_request for a, b in zip(ours, theirs, strict=True)
    )


def report(results: dict[tuple[str, str], list[Sample]], cases: list[str]) -> None:
    head = f"{'case':<11} {'server':<15} {'req/s':>8} {'p99 ms':>7} {'CPU µs/req':>11} {'× raw':>6}"
    print(f"\n{head}   req/s of each round")
    for case in cases:
        raw = results[(case, "raw aiohttp")]
        for name in NAMES:
            samples = results[(case, name)]
            rps = statistics.median(s.requests_per_second for s in samples)
            p99 = statistics.median(s.p99_ms for s in samples)
            cpu = statistics.median(s.cpu_us_per_request for s in samples)
            rounds = " ".join(f"{s.requests_per_second:.0f}" for s in samples)
            print(
                f"{case:<11} {name:<15} {rps:>8.0f} {p99:>7.2f} {cpu:>11.1f} "
                f"{paired(samples, raw):>6.2f}   {rounds}"
            )
        print()

    print("Ratio to raw aiohttp (median of per-round ratios, req/s):\n")
    print("| server | " + " | ".join(cases) + " |")
    print("| --- |" + " ---: |" * len(cases))
    for name in NAMES:
        cells = [f"{paired(results[(c, name)], results[(c, 'raw aiohttp')]):.2f}" for c in cases]
        print(f"| {name} | " + " | ".join(cells) + " |")
    targets = " | ".join(f"≥ {TARGETS[c]:.2f}" for c in cases)
    print(f"| target for actions-server | {targets} |")

    print(
        "\nThe same by CPU per request (raw aiohttp's CPU µs/req over the server's, per round):\n"
    )
    print("| server | " + " | ".join(cases) + " |")
    print("| --- |" + " ---: |" * len(cases))
    for name in NAMES:
        cells = [
            f"{cpu_paired(results[(c, name)], results[(c, 'raw aiohttp')]):.2f}" for c in cases
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")

    print(
        "\nactions-server / peer, req/s (and CPU per request: the peer's over ours),"
        " median of per-round ratios; > 1: actions-server ahead:\n"
    )
    print("| peer | " + " | ".join(cases) + " |")
    print("| --- |" + " ---: |" * len(cases))
    for peer in NAMES[2:]:
        cells = []
        for c in cases:
            ratio = paired(results[(c, "actions-server")], results[(c, peer)])
            cpu = cpu_paired(results[(c, "actions-server")], results[(c, peer)])
            cells.append(f"{ratio:.2f} {'ahead' if ratio > 1 else 'BEHIND'} (CPU {cpu:.2f})")
        print(f"| {peer} | " + " | ".join(cells) + " |")
    print("\nGET /me: raw aiohttp serves its GET /hello (no token), as in http_overhead.py.")


if __name__ == "__main__":
    main()
