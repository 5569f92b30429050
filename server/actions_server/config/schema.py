"""The config's JSON Schema (`schemas/config.schema.yaml`) and lookups in it."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from .. import sourcemap
from ..coercion import resolve_local_ref
from ..sourcemap import JsonPath


@cache
def config_schema() -> dict[str, Any]:
    """The JSON Schema of config.yaml (also printed by `actions-server schema`)."""
    path = Path(__file__).parent.parent / "schemas" / "config.schema.yaml"
    schema: dict[str, Any] = sourcemap.parse_file(path).data
    return schema


@cache
def config_validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(config_schema())


def schema_at(path: JsonPath) -> Any:
    """The sub-schema describing the value at `path`, or None."""
    root = config_schema()
    schema: Any = root
    for part in path:
        schema = resolve_local_ref(schema, root)
        if not isinstance(schema, Mapping):
            return None
        if isinstance(part, int):
            schema = schema.get("items")
        else:
            props = schema.get("properties") or {}
            schema = props.get(part, schema.get("additionalProperties"))
    return schema if isinstance(schema, Mapping) else None


def set_at(data: Any, path: JsonPath, value: Any) -> None:
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
