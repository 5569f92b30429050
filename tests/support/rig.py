"""The scale-out rig's real parts: PgBouncer, HAProxy and nginx on loopback.

Each is Debian's package binary, started by the test as a child process with a
configuration written into the test's folder, listening on a free 127.0.0.1
port, and stopped (by its process id) when the test is done. Without the binary
the test is skipped, or fails when services are required (CI, `.ci/run`
installs the packages). The settings here are the ones docs/deployment.md
recommends; `tests/rig/test_deploy_files.py` keeps the two in step.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from support.postgres import services_required
from support.processes import free_port


@dataclass(frozen=True)
class Urls:
    """One database, through PgBouncer and directly."""

    pooled: str  # DATABASE_URL
    direct: str  # LISTEN_URL, and what a test reads the database with

    @property
    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.pooled, "LISTEN_URL": self.direct}

    @property
    def user(self) -> str:
        return str(psycopg.conninfo.conninfo_to_dict(self.direct).get("user") or "postgres")


def binary(name: str) -> str:
    """The path of `name` (in PATH or /usr/sbin); skip or fail the test without it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        message = f"{name} is not installed (apt-get install {name})"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return found


def wait_for_port(
    port: int, seconds: float = 15, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited ({process.returncode}) before port {port} opened")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


class Child:
    """A daemon run in the foreground as our child, its output in `folder/NAME.log`."""

    name = "child"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)  # daemons that drop privileges read their config here

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with (self.folder / f"{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )
        wait_for_port(self.port, process=self.process)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        path = self.folder / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class PgBouncer(Child):
    """PgBouncer in transaction pooling mode in front of the server of `server_dsn`."""

    name = "pgbouncer"

    def __init__(self, folder: Path, server_dsn: str, *, pool_size: int = 20) -> None:
        super().__init__(folder)
        info = psycopg.conninfo.conninfo_to_dict(server_dsn)
        self.user = str(info.get("user") or "postgres")
        target = f"host={info.get('host') or '127.0.0.1'} port={info.get('port') or 5432}"
        if info.get("password"):
            target += f" password={info['password']}"
        (folder / "userlist.txt").write_text(f'"{self.user}" ""\n')
        (folder / "pgbouncer.ini").write_text(
            f"""[databases]
* = {target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "userlist.txt"}
admin_users = {self.user}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 2000
server_lifetime = 3600
query_wait_timeout = 30
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
"""
        )
        for path in folder.iterdir():
            os.chmod(path, 0o644)

    def command(self) -> list[str]:
        # PgBouncer refuses to run as root; it reads its files as `nobody` then.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        return [binary("pgbouncer"), *user, str(self.folder / "pgbouncer.ini")]

    def dsn(self, database: str) -> str:
        """`database`'s DSN through this PgBouncer."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


def backend_lines(ports: Sequence[int], template: str) -> str:
    return "\n".join(template.format(i=i, port=port) for i, port in enumerate(ports))


class HAProxy(Child):
    """HAProxy round-robin over `ports`, health-checking GET /readyz (deployment.md).

    `mode="tcp"` stands for a layer-4 balancer such as a Kubernetes Service: it
    never retries, and a client's kept-alive connection stays on one instance.
    """

    name = "haproxy"

    def __init__(self, folder: Path, ports: Sequence[int], *, mode: str = "http") -> None:
        super().__init__(folder)
        servers = backend_lines(ports, "    server app{i} 127.0.0.1:{port} check")
        if mode == "http":
            retries = "    retries 3\n    option redispatch 1\n    retry-on conn-failure\n"
        else:
            retries = "    retries 0\n"
        (folder / "haproxy.cfg").write_text(
            f"""global
    maxconn 4000
    stats socket {folder / "haproxy.sock"} mode 600 level admin

defaults
    mode {mode}
    timeout connect 2s
    timeout client 60s
    timeout server 60s
{retries}
frontend app
    bind 127.0.0.1:{self.port}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2
{servers}
"""
        )

    def command(self) -> list[str]:
        return [binary("haproxy"), "-db", "-f", str(self.folder / "haproxy.cfg")]

    def sessions(self) -> dict[str, int]:
        """Connections each backend server was given so far (`show stat`'s stot)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.folder / "haproxy.sock"))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: int(row["stot"] or 0)
            for row in rows
            if row["pxname"] == "app" and row["svname"].startswith("app")
        }


class Nginx(Child):
    """nginx round-robin over `ports`: no active health checks in the free nginx; a refused
    connection moves the request on (never a request already sent, unless idempotent)."""

    name = "nginx"

    def __init__(self, folder: Path, ports: Sequence[int]) -> None:
        super().__init__(folder)
        servers = backend_lines(
            ports, "        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
        )
        temp = folder / "temp"
        temp.mkdir(exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (folder / "nginx.conf").write_text(
            f"""{user}daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "nginx.log"} warn;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    upstream app {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
}}
"""
        )

    def command(self) -> list[str]:
        folder = str(self.folder)
        log = str(self.folder / "nginx.log")
        return [binary("nginx"), "-p", folder, "-e", log, "-c", str(self.folder / "nginx.conf")]

    def stop(self, sig: int = signal.SIGQUIT, timeout: float = 15) -> None:
        super().stop(sig, timeout)
