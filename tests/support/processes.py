"""Real `actions-server` processes for tests, with their output in a log file."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "actions_server.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: Any = None, timeout: float = 10, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Served:
    """A `python -m actions_server.cli ...` process whose output goes to a log file."""

    def __init__(
        self,
        args: list[str],
        cwd: Path,
        env: dict[str, str],
        log: Path,
        *,
        stderr_log: Path | None = None,
    ) -> None:
        """Stdout goes to `log`, and so does stderr unless `stderr_log` is given."""
        self.log = log
        self.terminated = False
        with log.open("w") as out:
            errors = stderr_log.open("w") if stderr_log else None
            try:
                self.process = subprocess.Popen(
                    [*CLI, *args],
                    cwd=cwd,
                    env=env,
                    stdout=out,
                    stderr=errors or subprocess.STDOUT,
                )
            finally:
                if errors is not None:
                    errors.close()

    def output(self) -> str:
        return self.log.read_text()

    def wait_until_healthy(self, base: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"serve exited early ({self.process.returncode}):\n{self.output()}"
                )
            try:
                if http("GET", base + "/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not become healthy:\n{self.output()}")

    def terminate(self) -> None:
        """Send SIGTERM once; a second one during shutdown would kill the process."""
        if not self.terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout: float = 60) -> int:
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
