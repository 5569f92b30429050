"""Move the `$defs` of bundled action schemas into OpenAPI's `components/schemas`.

At load every shared file an action `$ref`s is copied into that action's schema
under `$defs` (manifests/refs.py), so `schemas/user.yaml` sits in the `$defs` of
every action that uses it. Lifted out, each becomes one named component that all
operations reference, and the local refs (`#/$defs/user/...`) are rewritten to
`#/components/schemas/user/...`. A definition that means something else under a
name already taken (two actions with different own `$defs: {item: ...}`) gets
the next free name (`item_2`), so no operation ever points at the wrong one. A
ref into the action's root schema (`#`, `#/properties/...`; rare: recursion)
needs the root itself as a component, so it is lifted too, under the owner's
name. Pure: plain dicts in, plain dicts out.
"""

from __future__ import annotations

import re
from typing import Any

_PREFIX = "#/components/schemas/"
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
# Keywords whose value maps names (of properties, definitions) to subschemas: the
# keys there are names, not keywords, even when a name is `$id`.
_NAME_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
# `$id` would re-root every relative ref below it; `$schema` only restates the
# 2020-12 dialect OpenAPI 3.1 already uses.
_DROPPED = frozenset({"$id", "$schema"})


def component_name(name: str) -> str:
    """`name` with the characters a component name cannot hold replaced by `_`."""
    return _INVALID_NAME_CHARS.sub("_", name) or "_"


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


class ComponentSchemas:
    """The shared schemas of one document, collected as each action's schemas are lifted."""

    def __init__(self, reserved: dict[str, Any]) -> None:
        # The framework's own components (the error body) keep their names.
        self.schemas: dict[str, Any] = dict(reserved)

    def lift(self, schema: dict[str, Any] | bool, owner: str) -> dict[str, Any] | bool:
        """`schema` without its `$defs`, every local ref pointing into components."""
        if not isinstance(schema, dict):
            return schema
        raw_defs = schema.get("$defs")
        defs: dict[str, Any] = raw_defs if isinstance(raw_defs, dict) else {}
        root = {key: value for key, value in schema.items() if key != "$defs"}
        names: dict[str, str] = {}
        for name in defs:  # two names may clean up to one ("a b", "a_b")
            cleaned = component_name(name)
            names[name] = (
                cleaned
                if cleaned not in names.values()
                else self._free_name(cleaned, set(names.values()))
            )
        taken = set(names.values())
        root_name = self._free_name(component_name(owner), taken)
        taken.add(root_name)
        while True:
            rewriter = _Rewriter(names, root_name)
            rewritten = {name: rewriter.schema(body) for name, body in defs.items()}
            clashes = [
                name
                for name, body in rewritten.items()
                if names[name] in self.schemas and self.schemas[names[name]] != body
            ]
            if not clashes:
                break
            # Renaming changes the text of every definition that refers to the
            # renamed one, so check them all again; fresh names never clash.
            for name in clashes:
                names[name] = self._free_name(names[name], taken)
                taken.add(names[name])
        inline: dict[str, Any] = rewriter.schema(root)
        for name, body in rewritten.items():
            self.schemas.setdefault(names[name], body)
        if rewriter.needs_root:
            self.schemas[root_name] = inline
        return inline

    def resolve(self, schema: Any) -> Any:
        """What a schema that is only a `$ref` into components points at (a copy, to
        read its properties or trim them); any other schema as it is."""
        seen = 0
        while isinstance(schema, dict) and set(schema) == {"$ref"} and seen < 32:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith(_PREFIX):
                break
            target: Any = self.schemas
            for token in ref[len(_PREFIX) :].split("/"):
                key = _unescape(token)
                if isinstance(target, dict) and key in target:
                    target = target[key]
                elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                    target = target[int(key)]
                else:
                    return schema
            schema, seen = target, seen + 1
        return dict(schema) if isinstance(schema, dict) else schema

    def _free_name(self, name: str, taken: set[str]) -> str:
        candidate, n = name, 1
        while candidate in self.schemas or candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        return candidate


class _Rewriter:
    def __init__(self, names: dict[str, str], root_name: str) -> None:
        self.names = names
        self.root_name = root_name
        self.needs_root = False

    def schema(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.schema(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = self.ref(value)
            elif key in _DROPPED and isinstance(value, str):
                continue
            elif key in _NAME_MAPS and isinstance(value, dict):
                out[key] = {name: self.schema(sub) for name, sub in value.items()}
            else:
                out[key] = self.schema(value)
        return out

    def ref(self, ref: str) -> str:
        if ref.startswith("#/$defs/"):
            token, slash, rest = ref[len("#/$defs/") :].partition("/")
            name = self.names.get(_unescape(token))
            if name is not None:
                return f"{_PREFIX}{_escape(name)}{slash}{rest}"
        if ref == "#" or ref.startswith("#/"):
            self.needs_root = True
            return f"{_PREFIX}{_escape(self.root_name)}{ref[1:]}"
        return ref  # an anchor or an absolute URI: left as written
