"""JSON Schema validation of action input and output.

Schemas are compiled once at load with jsonschema-rs (well under a microsecond
per call, against 20–40 µs for a Python validator); formats such as `email` are
checked. The fast path is one `is_valid` call; only a failing value pays for
collecting every error as a JSON pointer and a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema_rs
import orjson

from . import redaction
from .coercion import ObjectPlan, object_plan, resolve_local_ref
from .errors import ErrorDetail
from .jsonutil import dumps

_Kind = jsonschema_rs.ValidationErrorKind


def json_pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class CompiledSchema:
    """A bundled schema (local `$ref`s only), its validator and its coercion plan."""

    __slots__ = ("_plan", "_validator", "binary_fields", "defaults", "schema")

    def __init__(self, schema: dict[str, Any] | bool) -> None:
        self.schema = schema
        # Raises jsonschema_rs.ValidationError for an invalid schema, or ValueError
        # (e.g. a bad regex); the loader turns both into problems.
        self._validator = jsonschema_rs.validator_for(schema, validate_formats=True)
        self._plan: ObjectPlan | None = None
        self.defaults = _top_level_defaults(schema)
        self.binary_fields = _binary_fields(schema)

    @property
    def plan(self) -> ObjectPlan:
        """How to coerce query and path strings to this (object) schema's types."""
        if self._plan is None:
            self._plan = object_plan(self.schema)
        return self._plan

    def errors(self, instance: Any) -> list[ErrorDetail]:
        """Every way `instance` fails; empty when it is valid."""
        try:
            if self._validator.is_valid(instance):
                return []
        except ValueError:
            # A value JSON cannot hold directly (UUID, datetime, Decimal from the
            # database): validate what the client would receive.
            instance = orjson.loads(dumps(instance))
            if self._validator.is_valid(instance):
                return []
        return [d for e in self._validator.iter_errors(instance) for d in _details(e)]


def _binary_fields(schema: dict[str, Any] | bool) -> frozenset[str]:
    """Top-level properties declared `format: binary`: the fields that take uploaded files."""
    if not isinstance(schema, dict):
        return frozenset()
    found = set()
    for name, sub in (schema.get("properties") or {}).items():
        resolved = resolve_local_ref(sub, schema)
        if isinstance(resolved, dict) and resolved.get("format") == "binary":
            found.add(name)
    return frozenset(found)


def _top_level_defaults(schema: dict[str, Any] | bool) -> dict[str, Any]:
    """`default`s of the top-level properties: filled in when the input lacks them."""
    if not isinstance(schema, dict):
        return {}
    defaults = {}
    for name, sub in (schema.get("properties") or {}).items():
        resolved = resolve_local_ref(sub, schema)
        if isinstance(resolved, dict) and "default" in resolved:
            defaults[name] = resolved["default"]
    return defaults


def _details(error: jsonschema_rs.ValidationError) -> list[ErrorDetail]:
    path = list(error.instance_path)
    kind = error.kind
    if isinstance(kind, _Kind.Required):
        return [ErrorDetail(json_pointer([*path, kind.property]), "is required")]
    if isinstance(kind, _Kind.AdditionalProperties):
        return [
            ErrorDetail(json_pointer([*path, key]), "is not an allowed property")
            for key in kind.unexpected
        ]
    if isinstance(kind, _Kind.Format):
        return [ErrorDetail(json_pointer(path), f"is not a valid {kind.format}")]
    message = error.message
    if is_sensitive(path):
        message = _without_value(message, error.instance)
    return [ErrorDetail(json_pointer(path), message)]


def is_sensitive(path: Iterable[str | int]) -> bool:
    """Whether a value at `path` must never be echoed (a password, a token, ...)."""
    return redaction.DEFAULT.path_is_sensitive(path)


def _without_value(message: str, instance: Any) -> str:
    """The validator's message with the offending value taken out of it."""
    try:
        shown = orjson.dumps(instance).decode()
    except TypeError:
        return "is not valid"
    return message.replace(shown, "the value") if shown in message else "is not valid"
