"""docker-compose.yml and deploy/kubernetes/ agree with the code they deploy.

No Docker or Kubernetes here: the files are parsed and cross-checked. Every
environment variable given to the app is one config.yaml reads (and every one it
needs without a default is given); every command is an `actions-server` command
with options that command has; ports and probe paths are the ones the app
serves; PgBouncer pools by transaction wherever the app is told so and LISTEN
goes around it; grace periods cover the drain plus the shutdown grace; the
selectors of Services and PodDisruptionBudgets match the pods.
"""

from __future__ import annotations

import configparser
import inspect
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from actions_server.cli import main
from actions_server.config import load_config
from actions_server.config.model import QueueConfig, ServerConfig
from actions_server.http.app import HttpFront
from support.apps import REPO

COMPOSE = REPO / "docker-compose.yml"
KUBERNETES = REPO / "deploy" / "kubernetes"
APP_SERVICES = ("migrate", "app", "worker")
_REFERENCE = re.compile(r"\$\{(\w+)(:-[^}]*)?\}")


def config_references() -> dict[str, bool]:
    """The variables config.yaml reads, each with whether it has a default."""
    found: dict[str, bool] = {}
    for name, default in _REFERENCE.findall((REPO / "config.yaml").read_text()):
        found[name] = found.get(name, False) or bool(default)
    return found


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def manifests() -> Iterator[dict[str, Any]]:
    for path in sorted(KUBERNETES.glob("*.yaml")):
        yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def kubernetes_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for doc in of_kind("ConfigMap"):
        if doc["metadata"]["name"] == "saas-example":
            env.update(doc["data"])
    for doc in of_kind("Secret"):
        env.update(doc["stringData"])
    return env


def containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) of every workload running the app's image."""
    for doc in of_kind("Deployment") + of_kind("Job"):
        spec = doc["spec"]["template"]["spec"]
        for container in spec["containers"]:
            if container["image"].startswith("saas-example"):
                yield spec, container


def check_command(command: list[str]) -> click.Command:
    assert command[:1] == ["actions-server"], command
    sub = main.commands.get(command[1])  # type: ignore[attr-defined]
    assert sub is not None, f"no command {command[1]!r}"
    assert command[2] == "config.yaml"
    options = {opt for param in sub.params for opt in param.opts}
    for word in command[3:]:
        if word.startswith("-"):
            assert word in options, f"{command[1]} has no option {word}"
    return sub  # type: ignore[no-any-return]


def check_env(env: Mapping[str, str]) -> None:
    read = config_references()
    unknown = sorted(set(env) - set(read))
    assert unknown == [], f"config.yaml reads none of {unknown}"
    missing = sorted(
        name for name, has_default in read.items() if not has_default and name not in env
    )
    assert missing == []
    config = load_config(REPO / "config.yaml", env=dict(env))  # the values are valid
    database = config.database
    assert database.transaction_pooling
    assert urlsplit(database.url).hostname == "pgbouncer"
    assert database.listen_url is not None
    assert urlsplit(database.listen_url).hostname == "postgres"  # LISTEN goes around it
    assert config.kv.backend == "redis"
    assert config.storage.backend == "s3"
    assert config.server.drain_seconds > 0


def test_compose_runs_the_documented_topology() -> None:
    services = compose()["services"]
    assert set(services) == {
        *APP_SERVICES,
        "postgres",
        "pgbouncer",
        "redis",
        "minio",
        "nginx",
    }
    assert services["app"]["deploy"]["replicas"] == 3
    for name in APP_SERVICES:
        check_env(services[name]["environment"])
    assert check_command(services["migrate"]["command"]).name == "migrate"
    assert "--no-migrate" in services["app"]["command"]
    assert check_command(services["worker"]["command"]).name == "worker"
    serve = services["app"]["command"]
    check_command(serve)
    port = serve[serve.index("--port") + 1]
    assert services["app"]["expose"] == [port]
    nginx = (REPO / "deploy" / "nginx.conf").read_text()
    assert f"server app:{port} " in nginx
    assert "non_idempotent" not in nginx


def test_pgbouncer_pools_by_transaction() -> None:
    ini = configparser.ConfigParser(comment_prefixes=(";",))
    ini.read(REPO / "deploy" / "pgbouncer.ini")
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    port = ini["pgbouncer"]["listen_port"]
    env = compose()["services"]["app"]["environment"]
    assert str(urlsplit(env["DATABASE_URL"]).port) == port
    assert str(urlsplit(kubernetes_env()["DATABASE_URL"]).port) == port


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_grace_periods_cover_the_drain_and_the_shutdown() -> None:
    env = compose()["services"]["app"]["environment"]
    drain = float(env["DRAIN_SECONDS"])
    needed = drain + ServerConfig().shutdown_grace_seconds
    services = compose()["services"]
    assert seconds(services["app"]["stop_grace_period"]) > needed
    assert seconds(services["worker"]["stop_grace_period"]) > QueueConfig().shutdown_grace_seconds
    for spec, container in containers():
        if container["command"][1] == "serve":
            assert spec["terminationGracePeriodSeconds"] > needed
        elif container["command"][1] == "worker":
            assert spec["terminationGracePeriodSeconds"] > QueueConfig().shutdown_grace_seconds


def test_kubernetes_workloads_match_the_code() -> None:
    check_env(kubernetes_env())
    builtins = inspect.getsource(HttpFront.__init__)
    commands = set()
    for _, container in containers():
        sub = check_command(container["command"])
        commands.add(sub.name)
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        command = container["command"]
        if "--port" in command:
            assert ports == {"http": int(command[command.index("--port") + 1])}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in container:
                path = container[probe]["httpGet"]["path"]
                assert f'"{path}"' in builtins, f"the app serves no {path}"
                assert container[probe]["httpGet"]["port"] in ports
        if sub.name == "serve":
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            probe = container["readinessProbe"]
            out_after = probe["periodSeconds"] * probe["failureThreshold"]
            assert float(kubernetes_env()["DRAIN_SECONDS"]) >= out_after + 2
    assert commands == {"serve", "worker", "migrate"}


@pytest.mark.parametrize("kind", ["Service", "PodDisruptionBudget"])
def test_selectors_match_the_pods(kind: str) -> None:
    pods = [doc["spec"]["template"]["metadata"]["labels"] for doc in of_kind("Deployment")]
    for doc in of_kind(kind):
        selector = doc["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert any(selector.items() <= labels.items() for labels in pods), doc["metadata"]


def test_services_point_at_named_container_ports() -> None:
    named = {
        port["name"]
        for doc in of_kind("Deployment")
        for container in doc["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
    }
    for doc in of_kind("Service"):
        for port in doc["spec"]["ports"]:
            assert port["targetPort"] in named


def test_the_files_exist(repo: Path) -> None:
    assert (repo / "Dockerfile").is_file()
    assert {p.name for p in KUBERNETES.glob("*.yaml")} == {
        "app.yaml",
        "env.yaml",
        "migrate-job.yaml",
        "pgbouncer.yaml",
        "worker.yaml",
    }
