"""Resolve `$ref`s into `schemas/` and bundle them into one self-contained schema.

A manifest's `{$ref: user.yaml}` names `schemas/user.yaml`; a shared schema's
own refs are relative to its file. Bundling copies every referenced file once
into the schema's `$defs` (under the file's name without extension, e.g.
`user`) and rewrites each ref to a local pointer, so validators compile without
a resolver and OpenAPI generation can lift the same `$defs` into components.
Shared files are parsed and meta-validated once per load, and their problems are
reported once, at their own lines.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from ..errors import Problem
from ..sourcemap import JsonPath, SourceDoc, SourceError, format_path, parse_file

META_SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
_JSON_TYPES = "string, number, integer, boolean, object, array, null"


@cache
def _meta_validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for({"$ref": META_SCHEMA_URI})


def schema_problems(schema: Any, doc: SourceDoc, at: JsonPath) -> list[Problem]:
    """Why `schema` (found at `at` in `doc`) is not a valid JSON Schema."""
    problems = []
    for error in _meta_validator().iter_errors(schema):
        inner = tuple(error.instance_path)
        path = (*at, *inner)
        if inner and inner[-1] == "type":
            message = f"{error.instance!r} is not a JSON Schema type ({_JSON_TYPES})"
        else:
            message = error.message
        problems.append(doc.problem(path, f"{format_path(path)}: invalid JSON Schema: {message}"))
    return problems


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _pointer_exists(data: Any, pointer: str) -> bool:
    if pointer in ("", "/"):
        return True
    target = data
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return False
    return True


class SchemaStore:
    """The shared schemas of one load, parsed on first reference."""

    def __init__(self, folder: Path | None, shown: Callable[[Path], str]) -> None:
        self.folder = folder
        self._shown = shown
        self._docs: dict[Path, SourceDoc | None] = {}
        self.problems: list[Problem] = []  # problems inside shared files, each once

    def shared(self, file: Path) -> SourceDoc | None:
        """The parsed file, or None when it is missing or broken (problem recorded)."""
        if file in self._docs:
            return self._docs[file]
        doc: SourceDoc | None = None
        if file.is_file():
            try:
                doc = parse_file(file, shown_as=self._shown(file))
            except SourceError as exc:
                self.problems.append(exc.problem)
            else:
                self.problems.extend(schema_problems(doc.data, doc, ()))
        self._docs[file] = doc
        return doc

    def bundle(self, schema: Any, doc: SourceDoc, at: JsonPath) -> tuple[Any, list[Problem]]:
        """`schema` (found at `at` in `doc`) with every file ref copied into `$defs`."""
        return _Bundler(self, doc, at).run(schema)


class _Bundler:
    def __init__(self, store: SchemaStore, doc: SourceDoc, at: JsonPath) -> None:
        self.store = store
        self.doc = doc
        self.at = at
        self.defs: dict[str, Any] = {}
        self.names: dict[Path, str] = {}
        self.problems: list[Problem] = []

    def run(self, schema: Any) -> tuple[Any, list[Problem]]:
        if not isinstance(schema, dict):
            return schema, []
        base = self.store.folder or Path(".")
        own_defs = schema.get("$defs")
        self._taken = set(own_defs) if isinstance(own_defs, dict) else set()
        result = self._rewrite(schema, self.doc, self.at, None, base)
        if self.defs:
            merged = dict(own_defs) if isinstance(own_defs, dict) else {}
            merged.update(self.defs)
            result["$defs"] = merged
        return result, self.problems

    def _rewrite(
        self, node: Any, doc: SourceDoc, path: JsonPath, prefix: str | None, base: Path
    ) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    out[key] = self._target(value, doc, (*path, key), prefix, base)
                elif prefix is not None and key in ("$id", "$schema"):
                    continue  # a bundled file's own $id would re-root its local refs
                else:
                    out[key] = self._rewrite(value, doc, (*path, key), prefix, base)
            return out
        if isinstance(node, list):
            return [self._rewrite(v, doc, (*path, i), prefix, base) for i, v in enumerate(node)]
        return node

    def _target(
        self, ref: str, doc: SourceDoc, path: JsonPath, prefix: str | None, base: Path
    ) -> str:
        file_part, _, fragment = ref.partition("#")
        if not file_part:
            return ref if prefix is None else f"#{prefix}{fragment}"
        if "://" in file_part or file_part.startswith("urn:"):
            self._problem(
                doc,
                path,
                f"cannot resolve $ref {ref!r}: only files under schemas/ can be referenced",
            )
            return ref
        file = (base / file_part).resolve()
        folder = self.store.folder
        if folder is None or not file.is_relative_to(folder):
            self._problem(
                doc,
                path,
                f"cannot resolve $ref {ref!r}: only files under schemas/ can be referenced",
            )
            return ref
        shared = self.store.shared(file)
        if shared is None:
            shown = self.store._shown(file)
            reason = "no such file" if not file.exists() else "the file has problems"
            self._problem(doc, path, f"cannot resolve $ref {ref!r}: {reason} ({shown})")
            return ref
        if fragment and not _pointer_exists(shared.data, fragment):
            self._problem(
                doc, path, f"cannot resolve $ref {ref!r}: {shared.file} has no {fragment!r}"
            )
            return ref
        name = self.names.get(file)
        if name is None:
            name = self._name_for(file)
            self.names[file] = name
            self.defs[name] = True  # placeholder: a cycle back to this file finds its name
            inner_prefix = f"/$defs/{_escape(name)}"
            self.defs[name] = self._rewrite(shared.data, shared, (), inner_prefix, file.parent)
        return f"#/$defs/{_escape(name)}{fragment}"

    def _name_for(self, file: Path) -> str:
        folder = self.store.folder
        try:
            rel = file.relative_to(folder) if folder else Path(file.name)
        except ValueError:
            rel = Path(file.name)
        name = str(rel.with_suffix("")).replace("/", ".")
        candidate, n = name, 1
        while candidate in self._taken or candidate in self.defs:
            n += 1
            candidate = f"{name}_{n}"
        return candidate

    def _problem(self, doc: SourceDoc, path: JsonPath, message: str) -> None:
        self.problems.append(doc.problem(path, message))
