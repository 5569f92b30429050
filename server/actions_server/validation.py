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
from .redaction import Redactor

_Kind = jsonschema_rs.ValidationErrorKind
MAX_QUOTED = 80  # characters of a value quoted back in an error message


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

    def errors(self, instance: Any, redactor: Redactor = redaction.DEFAULT) -> list[ErrorDetail]:
        """Every way `instance` fails; empty when it is valid. Messages never quote a
        value under a key `redactor` calls sensitive."""
        try:
            if self._validator.is_valid(instance):
                return []
        except ValueError:
            # A value JSON cannot hold directly (UUID, datetime, Decimal from the
            # database): validate what the client would receive.
            instance = orjson.loads(dumps(instance))
            if self._validator.is_valid(instance):
                return []
        return [d for e in self._validator.iter_errors(instance) for d in _details(e, redactor)]


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


def _details(error: jsonschema_rs.ValidationError, redactor: Redactor) -> list[ErrorDetail]:
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
    return [ErrorDetail(json_pointer(path), _message(error, redactor))]


def _message(error: jsonschema_rs.ValidationError, redactor: Redactor) -> str:
    """The validator's message, quoting the value as the client may see it: never a
    secret (by path, or inside the value), never more than MAX_QUOTED characters;
    for anyOf/oneOf, what each alternative expected."""
    path = list(error.instance_path)
    shown = "the value" if redactor.path_is_sensitive(path) else _quote(error.instance, redactor)
    kind = error.kind
    if isinstance(kind, _Kind.AnyOf | _Kind.OneOfNotValid):
        word = "any" if isinstance(kind, _Kind.AnyOf) else "exactly one"
        branches = [
            "; ".join(_branch_message(e, path, redactor) for e in branch) or "(no reason given)"
            for branch in kind.context
        ]
        listed = " | ".join(f"({n}) {reason}" for n, reason in enumerate(branches, 1))
        return f"{shown} must match {word} of {len(branches)} alternatives: {listed}"
    if isinstance(kind, _Kind.OneOfMultipleValid):
        return f"{shown} matches more than one of the alternatives; it must match exactly one"
    return _requote(error.message, error.instance, shown)


def _branch_message(
    error: jsonschema_rs.ValidationError, at: list[str | int], redactor: Redactor
) -> str:
    """One failure inside an alternative, relative to the value that failed."""
    path = list(error.instance_path)
    message = _message(error, redactor)
    if isinstance(error.kind, _Kind.Required):
        message = f"{error.kind.property!r} is required"
    if path[: len(at)] == at and len(path) > len(at):
        return f"at {json_pointer(path[len(at) :])}: {message}"
    return message


def _quote(instance: Any, redactor: Redactor) -> str:
    """`instance` as JSON, secrets redacted, cut to MAX_QUOTED characters."""
    try:
        text = orjson.dumps(instance).decode()
    except TypeError:
        return "the value"
    if redactor.could_hold_secrets(text):
        text = orjson.dumps(redactor.redact(instance)).decode()
    if len(text) > MAX_QUOTED:
        extra = f" ({len(instance)} characters)" if isinstance(instance, str) else ""
        text = f"{text[: MAX_QUOTED - 1]}…{extra}"
    return text


def _requote(message: str, instance: Any, shown: str) -> str:
    """`message` with the validator's own quotation of `instance` replaced by `shown`."""
    try:
        raw = orjson.dumps(instance).decode()
    except TypeError:
        return "is not valid"
    if raw == shown:
        return message
    return message.replace(raw, shown) if raw in message else "is not valid"
