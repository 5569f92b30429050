"""Every default the docs state is the default the code has.

The code holds each default once: the config dataclasses as the loader fills them
(`load_config` on a config that gives little more than the app's name),
`SmtpSettings` for `mail.smtp`, `ActionSpec` and `RetryPolicy` for the keys of an
action. The docs state defaults in two marked forms, and this test reads only
those (never prose):

- a fenced block opened with ```` ```yaml defaults ````: every value in it is the
  default of its key (a mapping is followed down to its leaves);
- the Markdown table right after an HTML comment `<!-- defaults: config PREFIX -->`
  (keys of that config section) or `<!-- defaults: action -->` (keys of an action):
  its first column names the key(s) in backticks, and its `default` column gives
  the value as YAML in backticks, `none` for null, or `—` / `(required)` for a key
  without a default.

The config's JSON Schema (its `default:` annotations, which editors show) is
checked against the same defaults.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from actions_server.config import Config, CorsConfig, config_schema, load_config
from actions_server.mail.transports import SmtpSettings
from actions_server.manifests.model import ActionSpec
from support.apps import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_DEFAULTS_BLOCK = re.compile(r"^```yaml[ \t]+defaults[ \t]*\n(.*?)^```$", re.S | re.M)
_TABLE_MARK = re.compile(r"^<!--\s*defaults:\s*(config\s+(?P<prefix>[\w.]+)|action)\s*-->$")
NO_DEFAULT = ("—", "(required)")

Key = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Stated:
    """One default as a doc states it."""

    where: str  # file:line
    scope: str  # "config" or "action"
    key: Key
    value: Any
    has_default: bool = True


# --- what the docs state -----------------------------------------------------------------


def leaves(value: Any, key: Key = ()) -> Iterator[tuple[Key, Any]]:
    if isinstance(value, Mapping) and value:
        for name, inner in value.items():
            yield from leaves(inner, (*key, str(name)))
    else:
        yield key, value


def stated_in_blocks(doc: Path) -> Iterator[Stated]:
    text = doc.read_text()
    for match in _DEFAULTS_BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        for key, value in leaves(yaml.safe_load(match.group(1))):
            yield Stated(f"{doc.name}:{line}", "config", key, value)


def table_cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def cell_value(cell: str, where: str) -> tuple[bool, Any]:
    """(whether there is a default, the default) from a table's `default` cell."""
    if cell in NO_DEFAULT:
        return False, None
    if cell == "none":
        return True, None
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"{where}: state a default as `yaml`, none, — or (required), not {cell!r}"
    return True, yaml.safe_load(match.group(1))


def stated_in_tables(doc: Path) -> Iterator[Stated]:
    lines = doc.read_text().splitlines()
    for number, line in enumerate(lines):
        mark = _TABLE_MARK.match(line.strip())
        if not mark:
            continue
        scope = "action" if mark["prefix"] is None else "config"
        prefix = tuple(mark["prefix"].split(".")) if mark["prefix"] else ()
        table = []
        for row in lines[number + 1 :]:
            if not row.startswith("|"):
                break
            table.append(row)
        assert len(table) > 2, f"{doc.name}:{number + 1}: no table follows the defaults mark"
        header = [cell.lower() for cell in table_cells(table[0])]
        column = header.index("default")
        for offset, row in enumerate(table[2:], start=number + 4):
            cells = table_cells(row)
            where = f"{doc.name}:{offset}"
            has_default, value = cell_value(cells[column], where)
            names = re.findall(r"`([^`]+)`", cells[0])
            assert names, f"{where}: the first column names the key in backticks"
            for name in names:
                key = (*prefix, *name.split("."))
                yield Stated(where, scope, key, value, has_default)


def everything_stated() -> list[Stated]:
    return [s for doc in DOCS for s in (*stated_in_blocks(doc), *stated_in_tables(doc))]


# --- what the code says ----------------------------------------------------------------


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """Every default the loader fills in: a config that gives only its app's name, and
    the key of an `auth.jwt` section (the section's other keys then take defaults)."""
    folder = tmp_path_factory.mktemp("defaults")
    (folder / "config.yaml").write_text(f"app: docs\nauth: {{jwt: {{secret: {'k' * 32}}}}}\n")
    return load_config(folder / "config.yaml", env={})


class NoDefault(LookupError):
    pass


def config_default(config: Config, key: Key) -> Any:
    """The default of a config key, from the one place the code keeps it."""
    node: Any
    rest: Key
    if key[:2] == ("mail", "smtp"):  # kept as given; SmtpSettings fills in the rest
        node, rest = SmtpSettings(host="(required)"), key[2:]
    elif len(key) > 2 and key[:2] == ("server", "cors"):  # given, these fill in the rest
        node, rest = CorsConfig(origins="(required)"), key[2:]
    else:
        node, rest = config, key
    for part in rest:
        if dataclasses.is_dataclass(node):
            name = "sender" if part == "from" else part
            if name not in {f.name for f in dataclasses.fields(node)}:
                raise NoDefault(f"no config key {'.'.join(key)}")
            node = getattr(node, name)
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise NoDefault(f"no default for config key {'.'.join(key)}")
    if isinstance(node, SmtpSettings | CorsConfig) or node == "(required)":
        raise NoDefault(f"config key {'.'.join(key)} has no default")
    return node


def action_default(key: Key) -> Any:
    [name] = key
    for field in dataclasses.fields(ActionSpec):
        if field.name == name:
            if field.default is dataclasses.MISSING:
                raise NoDefault(f"an action's {name} has no default")
            return field.default
    raise NoDefault(f"an action has no key {name}")


def plain(value: Any) -> Any:
    """Code values as YAML would write them: lists, dicts, scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def agrees(code: Any, stated: Any, root: Path) -> bool:
    if isinstance(code, Path):  # folders: stated relative to config.yaml
        return isinstance(stated, str) and (root / stated).resolve() == code
    return bool(plain(code) == stated)


# --- the tests --------------------------------------------------------------------------


def test_the_docs_state_defaults_in_the_marked_forms() -> None:
    stated = everything_stated()
    files = {s.where.split(":")[0] for s in stated}
    # The tables and blocks this test exists for; a mark lost in an edit fails here.
    assert {"configuration.md", "manifests.md", "mail.md", "jobs.md"} <= files
    assert ("retry",) in {s.key for s in stated if s.scope == "action"}


@pytest.mark.parametrize(
    "stated", everything_stated(), ids=lambda s: f"{s.where}:{'.'.join(s.key)}"
)
def test_a_stated_default_is_the_codes(stated: Stated, config: Config) -> None:
    look_up = (
        action_default if stated.scope == "action" else lambda key: config_default(config, key)
    )
    if not stated.has_default:
        with pytest.raises(NoDefault):
            look_up(stated.key)
        return
    try:
        code = look_up(stated.key)
    except NoDefault as exc:
        pytest.fail(f"{stated.where} states a default for {'.'.join(stated.key)}: {exc}")
    assert agrees(code, stated.value, config.root), (
        f"{stated.where}: the docs say {'.'.join(stated.key)} defaults to {stated.value!r}, "
        f"the code to {plain(code)!r}"
    )


def schema_defaults(schema: Mapping[str, Any], key: Key = ()) -> Iterator[tuple[Key, Any]]:
    for name, sub in (schema.get("properties") or {}).items():
        if "default" in sub:
            yield (*key, name), sub["default"]
        yield from schema_defaults(sub, (*key, name))


@pytest.mark.parametrize(
    ("key", "value"), list(schema_defaults(config_schema())), ids=lambda v: str(v)
)
def test_the_config_schema_states_the_codes_defaults(key: Key, value: Any, config: Config) -> None:
    assert agrees(config_default(config, key), value, config.root), (
        f"config.schema.yaml: {'.'.join(key)} defaults to {value!r}, "
        f"the code to {plain(config_default(config, key))!r}"
    )
