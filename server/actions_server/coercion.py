"""Turn strings (query string, path parameters, environment variables) into the
JSON types a schema asks for.

Coercion is best effort and pure: a value that does not fit is left as the
string it was, so that schema validation reports it with its path and every
other failing field in the same answer. Plans are built once per schema at load
time; applying one is a dict lookup and a conversion per value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from .jsonutil import INT_MAX, INT_MIN

Coercer = Callable[[str], Any]

# ASCII digits only (\d also matches other scripts' digits), and few enough of
# them for int() and to mean something: anything longer stays a string.
_INT = re.compile(r"[+-]?[0-9]{1,300}\Z")
_NUMBER = re.compile(r"[+-]?([0-9]{1,300}(\.[0-9]{0,300})?|\.[0-9]{1,300})([eE][+-]?[0-9]{1,4})?\Z")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _to_integer(value: str) -> Any:
    if _INT.match(value):
        number = int(value)
        # Beyond 64 bits an integer cannot be stored or answered as JSON here, and
        # as a float it would change: left a string, validation reports it.
        return number if INT_MIN <= number <= INT_MAX else value
    return value


def _to_number(value: str) -> Any:
    if _INT.match(value):
        return _to_integer(value)
    if _NUMBER.match(value):
        number = float(value)
        return number if math.isfinite(number) else value
    return value


def _to_boolean(value: str) -> Any:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value


def _to_null(value: str) -> Any:
    return None if value in ("null", "") else value


def _keep(value: str) -> Any:
    return value


_BY_TYPE: dict[str, Coercer] = {
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "null": _to_null,
    "string": _keep,
}
# When a schema allows several types, the narrowest interpretation wins.
_PREFERENCE = ("null", "integer", "number", "boolean", "string")


def resolve_local_ref(schema: Any, root: Mapping[str, Any]) -> Any:
    """Follow `$ref: "#/..."` pointers inside `root` (refs are bundled at load)."""
    seen = 0
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        ref: str = schema["$ref"]
        if not ref.startswith("#") or seen > 32:
            return schema
        target: Any = root
        for raw in ref[1:].split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return schema
        schema = target
        seen += 1
    return schema


def _types_of(schema: Any, root: Mapping[str, Any]) -> list[str]:
    schema = resolve_local_ref(schema, root)
    if not isinstance(schema, Mapping):
        return []
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    found: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, ()) or ():
            found.extend(_types_of(branch, root))
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        found.extend(_json_type(v) for v in values)
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def scalar_coercer(types: list[str]) -> Coercer:
    """A function that tries each allowed type, narrowest first."""
    chain = [_BY_TYPE[t] for t in _PREFERENCE if t in types]
    if not chain:
        return _keep
    if len(chain) == 1:
        return chain[0]

    def coerce(value: str) -> Any:
        for step in chain:
            result = step(value)
            if not isinstance(result, str) or step is _keep:
                return result
        return value

    return coerce


class FieldPlan:
    """How to coerce the raw string values of one named field."""

    __slots__ = ("coerce", "is_array")

    def __init__(self, coerce: Coercer, is_array: bool) -> None:
        self.coerce = coerce
        self.is_array = is_array

    def apply(self, values: list[str]) -> Any:
        if self.is_array:
            return [self.coerce(v) for v in values]
        if len(values) == 1:
            return self.coerce(values[0])
        # Repeated, but not an array: keep every value so validation names the field.
        return [self.coerce(v) for v in values]


def field_plan(schema: Any, root: Mapping[str, Any]) -> FieldPlan:
    types = _types_of(schema, root)
    if "array" in types:
        resolved = resolve_local_ref(schema, root)
        items = resolved.get("items", {}) if isinstance(resolved, Mapping) else {}
        return FieldPlan(scalar_coercer(_types_of(items, root)), is_array=True)
    return FieldPlan(scalar_coercer(types), is_array=False)


class ObjectPlan:
    """Coercion plans for the properties of an object schema.

    `accepts_unknown` says whether fields the schema does not name may pass
    through (as strings); when the schema forbids additional properties they are
    dropped instead, as FastAPI ignores undeclared query parameters.
    """

    __slots__ = ("accepts_unknown", "fields")

    def __init__(self, fields: dict[str, FieldPlan], accepts_unknown: bool) -> None:
        self.fields = fields
        self.accepts_unknown = accepts_unknown

    def coerce(self, name: str, values: list[str]) -> tuple[bool, Any]:
        """(keep?, value) for one field with its raw values."""
        plan = self.fields.get(name)
        if plan is None:
            if not self.accepts_unknown:
                return False, None
            return True, values[0] if len(values) == 1 else values
        return True, plan.apply(values)


def object_plan(schema: Any) -> ObjectPlan:
    """Build the plan for an input schema (with local refs only)."""
    if not isinstance(schema, Mapping):
        return ObjectPlan({}, accepts_unknown=True)
    root = schema
    fields: dict[str, FieldPlan] = {}
    accepts_unknown = True
    for part in _object_parts(schema, root):
        for name, sub in (part.get("properties") or {}).items():
            fields[name] = field_plan(sub, root)
        if part.get("additionalProperties") is False or part.get("unevaluatedProperties") is False:
            accepts_unknown = False
    return ObjectPlan(fields, accepts_unknown)


def _object_parts(schema: Any, root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    schema = resolve_local_ref(schema, root)
    if not isinstance(schema, Mapping):
        return []
    parts = [schema]
    for branch in schema.get("allOf", ()) or ():
        parts.extend(_object_parts(branch, root))
    return parts


def coerce_to_schema(value: str, schema: Any, root: Mapping[str, Any]) -> Any:
    """Coerce one string to the schema's type (used for `${VAR}` in config)."""
    return field_plan(schema, root).apply([value])
