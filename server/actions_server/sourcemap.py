"""YAML (and JSON) documents that remember the line of every value.

Config and manifest errors must name the file and the line, so documents are
parsed to a node tree first and then built into plain JSON values, recording for
every path (a tuple of keys and list indexes) the line where it starts. A
mapping entry is recorded at its key's line, which is where a reader looks.

Scalars resolve as YAML 1.1 does, except timestamps: an unquoted `2024-01-01`
stays a string, because every value here must be JSON.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from .errors import Problem

JsonPath = tuple[str | int, ...]

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]  # chosen at import time
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceDoc:
    """A parsed document: its data, its file name as shown to users, and its lines."""

    file: str
    data: Any
    lines: Mapping[JsonPath, int] = field(default_factory=dict)

    def line_of(self, path: JsonPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def problem(self, path: JsonPath, message: str) -> Problem:
        return Problem(file=self.file, line=self.line_of(path), message=message)


MAX_VALUES = 100_000


class SourceError(Exception):
    """The text is not a YAML document; `problem` says where."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def format_path(path: JsonPath) -> str:
    """`("actions", 0, "handler")` → `actions[0].handler`, for messages."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def parse_text(text: str, file: str) -> SourceDoc:
    """Parse one YAML or JSON document; raise SourceError on a syntax error."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or str(exc)
        raise SourceError(Problem(file=file, line=line, message=f"invalid YAML: {what}")) from None
    except yaml.YAMLError as exc:
        raise SourceError(Problem(file=file, line=None, message=f"invalid YAML: {exc}")) from None
    finally:
        loader.dispose()
    if node is None:
        return SourceDoc(file=file, data=None, lines={})
    builder = _Builder(loader, file)
    data = builder.build(node, ())
    if builder.problems:
        raise SourceError(builder.problems[0])
    return SourceDoc(file=file, data=data, lines=builder.lines)


# Documents parsed before, by file: a reload parses again only the files whose text
# changed (building the line map is most of loading an app of hundreds of actions).
# Keyed by the text itself, not the modification time, which a quick second save
# can leave unchanged.
_parsed: dict[tuple[str, str], tuple[str, SourceDoc]] = {}
_PARSED_LIMIT = 4096


def parse_file(path: Path, shown_as: str | None = None) -> SourceDoc:
    file = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(Problem(file=file, line=None, message=f"cannot read: {exc}")) from None
    key = (str(path), file)
    known = _parsed.get(key)
    if known is None or known[0] != text:
        if len(_parsed) >= _PARSED_LIMIT:
            _parsed.clear()
        known = _parsed[key] = (text, parse_text(text, file))
    doc = known[1]
    return SourceDoc(file=doc.file, data=_copied(doc.data), lines=doc.lines)


def _copied(data: Any) -> Any:
    """A copy of parsed data (mappings, lists, immutable scalars): callers may change theirs."""
    if type(data) is dict:
        return {key: _copied(value) for key, value in data.items()}
    if type(data) is list:
        return [_copied(value) for value in data]
    return data


def schema_errors(
    data: Any, validator: jsonschema_rs.Validator, schema: Mapping[str, Any] | None = None
) -> Iterator[tuple[JsonPath, str]]:
    """(path, message) for every way `data` fails `validator`.

    An unknown key is reported at its own path, a missing one at its mapping's;
    given the `schema` itself, an unknown key names the nearest known one
    (`unknown key 'triger' (did you mean 'triggers'?)`).
    """
    for error in validator.iter_errors(data):
        path: JsonPath = tuple(error.instance_path)
        where = f"{format_path(path)}: " if path else ""
        kind = error.kind
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            known = _known_keys(schema, list(error.schema_path)) if schema is not None else []
            for key in kind.unexpected:
                yield (*path, key), f"{where}unknown key {key!r}{did_you_mean(key, known)}"
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
            yield path, f"{where}missing required key {kind.property!r}"
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
            options = ", ".join(str(o) for o in kind.options)
            yield path, f"{where}{error.instance!r} is not one of: {options}"
        else:
            yield path, f"{where}{error.message}"


def schema_problems(
    doc: SourceDoc,
    data: Any,
    validator: jsonschema_rs.Validator,
    schema: Mapping[str, Any] | None = None,
) -> Iterator[Problem]:
    """Every way `data` fails `validator`, each at the line of the failing value."""
    for path, message in schema_errors(data, validator, schema):
        yield doc.problem(path, message)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the nearest of `known`, or nothing when none is near."""
    near = difflib.get_close_matches(word, list(known), n=3, cutoff=0.65)
    if not near:
        return ""
    # Of the near ones, the one that starts most like the word: `retries` is `retry`.
    best = max(near, key=lambda k: (_shared_start(word, k), -near.index(k)))
    return f" (did you mean {best!r}?)"


def _shared_start(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _known_keys(schema: Mapping[str, Any], schema_path: list[Any]) -> list[str]:
    """The property names of the subschema whose `additionalProperties` refused a key.

    jsonschema-rs gives the keyword's location with `$ref`s already followed
    (`$defs/action/additionalProperties`), so the path is walked as it is; a
    path this cannot follow gives no suggestion rather than a wrong one.
    """
    node: Any = schema
    for part in schema_path[:-1]:  # the last is the `additionalProperties` keyword
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return []
    properties = node.get("properties") if isinstance(node, Mapping) else None
    return list(properties) if isinstance(properties, Mapping) else []


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self._loader = loader
        self._file = file
        self._depth = 0
        self._count = 0
        self.lines: dict[JsonPath, int] = {}
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: JsonPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._count += 1
        if self._count > MAX_VALUES:  # aliases can make a small file expand without end
            raise SourceError(
                Problem(
                    file=self._file,
                    line=node.start_mark.line + 1,
                    message=f"the document expands to more than {MAX_VALUES} values (aliases?)",
                )
            )
        self._depth += 1
        if self._depth > 200:  # an alias that contains itself
            raise SourceError(
                Problem(file=self._file, line=node.start_mark.line + 1, message="nesting too deep")
            )
        try:
            if isinstance(node, yaml.MappingNode):
                return dict(self._mapping(node, path))
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node)
        finally:
            self._depth -= 1

    def _mapping(self, node: yaml.MappingNode, path: JsonPath) -> Iterator[tuple[str, Any]]:
        self._loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self._scalar(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                key = str(key)
            if key in seen:
                self.problems.append(
                    Problem(file=self._file, line=line, message=f"duplicate key {key!r}")
                )
                continue
            seen.add(key)
            self.lines[(*path, key)] = line
            yield key, self.build(value_node, (*path, key))

    def _scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise SourceError(
                Problem(
                    file=self._file,
                    line=node.start_mark.line + 1,
                    message="a mapping key must be a plain value",
                )
            )
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise SourceError(
                Problem(file=self._file, line=node.start_mark.line + 1, message=str(exc.problem))
            ) from None
