"""config.yaml: interpolation, typing of interpolated values, validation with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions_server.config import interpolate, load_config
from actions_server.errors import LoadError


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A}", {"A": ""}, ""),
        ("pre-${A}-${B:-b}-post", {"A": "a"}, "pre-a-b-post"),
        ("cost: $$5", {}, "cost: $5"),
        ("${A:-with:colon}", {}, "with:colon"),
        ("no refs", {}, "no refs"),
    ],
)
def test_interpolate(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == (expected, [])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "${MISSING}",
            "environment variable MISSING is not set (give a default with ${MISSING:-value})",
        ),
        ("${1BAD}", "bad variable reference ${1BAD}: '1BAD' is not a variable name"),
        ("${OPEN", "unclosed '${' (write '$$' for a literal '$')"),
    ],
)
def test_interpolate_errors(text: str, error: str) -> None:
    assert interpolate(text, {})[1] == [error]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_whole_value_references_take_the_schema_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'app: a\nserver: {port: "${PORT:-9000}", access_log: "${LOG:-false}"}\n'
        "database: {url: '${DATABASE_URL:-embedded}', pool: {max: '${MAX}'}}\n",
    )
    config = load_config(path, env={"MAX": "3"})
    assert config.server.port == 9000
    assert config.server.access_log is False
    assert config.database.pool.max == 3
    assert config.database.is_embedded
    assert (
        load_config(path, env={"DATABASE_URL": "postgresql://h/db", "MAX": "3"}).database.url
        == "postgresql://h/db"
    )


def test_secrets_that_look_like_numbers_stay_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "app: '${APP}'\n")
    assert load_config(path, env={"APP": "12345"}).app == "12345"


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "app: a\n"
        "server:\n"
        "  port: high\n"
        "  colour: blue\n"
        "database:\n"
        "  url: ${NOPE}\n"
        "  pool: {min: 5, max: 2}\n"
        "logging: {level: loud}\n",
    )
    with pytest.raises(LoadError) as caught:
        load_config(path, env={})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:6: database.url: environment variable NOPE is not set (give a default with ${{NOPE:-value}})",
        f'{path}:3: server.port: "high" is not of type "integer"',
        f"{path}:4: server: unknown key 'colour'",
        f"{path}:8: logging.level: 'loud' is not one of: debug, info, warning, error",
    ]


def test_checks_beyond_the_schema_come_once_the_shapes_are_right(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "app: a\ndatabase:\n  pool: {min: 5, max: 2}\nserver: {trusted_proxies: [10.0.0.0/8, nope]}\n",
    )
    with pytest.raises(LoadError) as caught:
        load_config(path, env={})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4: server.trusted_proxies: 'nope' is not an address or CIDR range",
        f"{path}:3: database.pool.min is larger than max",
    ]


def test_an_smtp_ca_file_must_exist_next_to_the_config(tmp_path: Path) -> None:
    text = "app: a\nmail:\n  transport: smtp\n  smtp: {host: mx.test, ca_file: certs/ca.pem}\n"
    path = write(tmp_path, text)
    with pytest.raises(LoadError) as caught:
        load_config(path, env={})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4: mail.smtp.ca_file: no such file 'certs/ca.pem'"
    ]
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("")
    assert load_config(path, env={}).mail.smtp == {"host": "mx.test", "ca_file": "certs/ca.pem"}


@pytest.mark.parametrize(
    "text",
    [
        "app: a\ndatabase: null\n",
        "app: a\ndatabase: {pool: null}\n",
        "app: a\ndatabase: {pool: {min: a, max: 3}}\n",
    ],
)
def test_wrong_shapes_are_problems_not_crashes(tmp_path: Path, text: str) -> None:
    with pytest.raises(LoadError) as caught:
        load_config(write(tmp_path, text), env={})
    assert len(caught.value.problems) == 1


def test_missing_file_and_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read" in str(caught.value.problems[0])
    path = write(tmp_path, "app: [\n")
    with pytest.raises(LoadError) as caught:
        load_config(path)
    assert str(caught.value.problems[0]).startswith(f"{path}:2: invalid YAML:")


def test_app_is_required(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as caught:
        load_config(write(tmp_path, "server: {}\n"))
    assert [p.message for p in caught.value.problems] == ["missing required key 'app'"]


def test_unquoted_dates_stay_strings(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "app: 2024-01-01\n")).app == "2024-01-01"


def test_transaction_pooling_needs_a_direct_url_for_listen(tmp_path: Path) -> None:
    path = write(
        tmp_path, "app: a\ndatabase:\n  url: postgresql://h:6432/db\n  transaction_pooling: true\n"
    )
    with pytest.raises(LoadError) as caught:
        load_config(path, env={})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4: database.transaction_pooling: LISTEN cannot go through a transaction "
        "pooler; set database.listen_url to a direct connection to PostgreSQL"
    ]
    path.write_text(path.read_text() + "  listen_url: postgresql://h:5432/db\n")
    database = load_config(path, env={}).database
    assert database.transaction_pooling
    assert database.listen_url == "postgresql://h:5432/db"
