"""What aiohttp's response path costs, against `WholeResponse`, in one run.

Two of aiohttp's low-level servers (benchmarks/raw_aiohttp.py), one process each
pinned to CPU 0, answer `GET /hello` with the same small JSON body: `server`
with `web.json_response` (aiohttp's path: prepare, headers, write_eof), `whole`
with actions-server's `WholeResponse` (head and body in one write). wrk, pinned
to CPU 1, loads them in alternating rounds; printed per server are the median
requests/s and the server's CPU time per request (from /proc), then the ratio.

Then, in this process, the response alone: `Response()` + `prepare` + `write_eof`
on a transport that drops what it is given, for both classes in alternation, the
request's own construction timed apart and taken out.

    python benchmarks/response_path.py [--rounds 5] [--seconds 2] [--count 20000]

`--rounds 0` times the response in process only.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time
from typing import Any
from unittest import mock

from aiohttp import web
from aiohttp.http_writer import StreamWriter
from aiohttp.test_utils import make_mocked_request

from actions_server.http.whole import WholeResponse
from http_overhead import HERE, Request, Sample, free_port, sample, start_server, wrk

BODY = b'{"message": "Hello, world!"}'
HEADERS = {"Content-Type": "application/json", "x-trace-id": "0123456789abcdef"}


def over_sockets(rounds: int, seconds: float) -> None:
    servers = {}
    try:
        for kind in ("server", "whole"):
            port = free_port()
            command = [sys.executable, str(HERE / "raw_aiohttp.py"), str(port), kind]
            servers[kind] = (start_server(command, HERE, port), port)
        samples: dict[str, list[Sample]] = {kind: [] for kind in servers}
        for round_ in range(rounds + 1):  # the first round warms up
            for kind, (process, port) in servers.items():
                base = f"http://127.0.0.1:{port}"
                got = sample(wrk, process.pid, base, Request("GET", "/hello"), seconds, 32)
                if round_:
                    samples[kind].append(got)
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    print(f"{'server':<30} {'req/s':>8} {'CPU µs/req':>11}")
    label = {"server": "web.Server + web.Response", "whole": "web.Server + WholeResponse"}
    for kind, rows in samples.items():
        rps = statistics.median(r.requests_per_second for r in rows)
        cpu = statistics.median(r.cpu_us_per_request for r in rows)
        print(f"{label[kind]:<30} {rps:>8.0f} {cpu:>11.1f}")
    pairs = list(zip(samples["whole"], samples["server"], strict=True))
    throughput = statistics.median(w.requests_per_second / s.requests_per_second for w, s in pairs)
    cpu_ratio = statistics.median(s.cpu_us_per_request / w.cpu_us_per_request for w, s in pairs)
    print(f"{'ratio (whole / aiohttp)':<30} {throughput:>8.2f} {cpu_ratio:>11.2f}")


class _Dropping:
    def write(self, data: bytes) -> None:
        pass

    def writelines(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def in_process(count: int) -> None:
    loop = asyncio.get_running_loop()
    transport = _Dropping()
    protocol = mock.Mock(transport=transport, _paused=False)  # never waits to drain
    mocked = make_mocked_request("GET", "/hello", transport=transport, protocol=protocol)
    message, payload = mocked._message, mocked._payload

    async def timed(kind: type[web.Response] | None) -> float:
        started = time.perf_counter()
        for _ in range(count):
            writer = StreamWriter(protocol, loop)
            request = web.BaseRequest(message, payload, protocol, writer, None, loop)  # type: ignore[arg-type]
            if kind is not None:
                response = kind(body=BODY, headers=HEADERS)
                await response.prepare(request)
                await response.write_eof()
        return (time.perf_counter() - started) / count * 1e6

    times: dict[str, list[float]] = {"request only": [], "web.Response": [], "WholeResponse": []}
    for _ in range(5):
        times["request only"].append(await timed(None))
        times["web.Response"].append(await timed(web.Response))
        times["WholeResponse"].append(await timed(WholeResponse))
    base = min(times["request only"])
    aiohttp_path = min(times["web.Response"]) - base
    whole_path = min(times["WholeResponse"]) - base
    print(f"\nin process, best of 5 × {count}: the response alone, µs")
    print(f"  web.Response  {aiohttp_path:6.1f}")
    print(f"  WholeResponse {whole_path:6.1f}   ({aiohttp_path / whole_path:.1f}× less)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    if args.rounds:
        over_sockets(args.rounds, args.seconds)
    asyncio.run(in_process(args.count))


if __name__ == "__main__":
    main()
