"""The MCP tools of a registry, as `tools/list` shows them, and which a caller sees.

Built once per registry (a reload builds a new one): each tool's definition in
both eras' shapes, sorted by name so the list is the same on every request and
every instance. Pure: no I/O, no executor.

Who sees what (docs/mcp.md): an anonymous caller sees every tool, so that
calling one that needs a caller answers 401 and an OAuth-capable client signs
in. A known caller (a user, or the system principal on stdio) does not see the
tools whose identity guards (`authenticated`, `has_permission`, `has_role`)
would refuse them; only the guards before the first `in_org` are judged, since
an org membership may grant the role or permission later ones ask for. Guards
that need I/O or the input (`in_org`, `has_feature`, `rate_limit`, custom
guards) never hide a tool: the call decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..auth import AuthContext
from ..errors import ActionError
from ..guards import Caller, identity_denial, permission_denial, role_denial
from ..manifests.model import ActionSpec, GuardSpec, McpTrigger
from ..registry import Registry, Tool

NO_INPUT: Mapping[str, Any] = {"type": "object"}  # MCP requires an object root

_HINTS = (
    ("readOnlyHint", "read_only"),
    ("destructiveHint", "destructive"),
    ("idempotentHint", "idempotent"),
    ("openWorldHint", "open_world"),
)

Denial = Callable[[AuthContext, Caller, str], ActionError | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    tool: Tool
    modern: dict[str, Any]  # the definition as 2026-07-28 spells it
    legacy: dict[str, Any]  # ... and as 2025-11-25 and earlier do
    checks: tuple[Denial, ...]  # the guards that hide it from a known caller

    def shown_to(self, auth: AuthContext, caller: Caller) -> bool:
        run_as = self.tool.action.run_as
        return all(deny(auth, caller, run_as) is None for deny in self.checks)


class Catalogue:
    """The tools of one registry, in name order."""

    def __init__(self, registry: Registry) -> None:
        tools = sorted(registry.tools.values(), key=lambda tool: tool.name)
        self.tools: dict[str, Tool] = {tool.name: tool for tool in tools}
        self._entries = [
            _Entry(
                tool=tool,
                modern=tool_json(tool, modern=True),
                legacy=tool_json(tool, modern=False),
                checks=screen(tool.action),
            )
            for tool in tools
        ]
        # Whether tools/list depends on who asks (then no shared cache may keep it).
        self.private = any(entry.checks for entry in self._entries)

    def get(self, name: Any) -> Tool | None:
        return self.tools.get(name) if isinstance(name, str) else None

    def listed(self, auth: AuthContext, caller: Caller, *, modern: bool) -> list[dict[str, Any]]:
        """The definitions `caller` is shown, in the era's shape."""
        known = auth.is_authenticated
        return [
            entry.modern if modern else entry.legacy
            for entry in self._entries
            if not known or entry.shown_to(auth, caller)
        ]


def screen(action: ActionSpec) -> tuple[Denial, ...]:
    """The pure identity checks that decide whether a known caller sees `action`."""
    return tuple(_checks(action.guards))


def _checks(guards: tuple[GuardSpec, ...]) -> Iterator[Denial]:
    for guard in guards:
        if guard.name == "in_org":
            return
        if guard.name == "authenticated":
            yield identity_denial
        elif guard.name == "has_permission":
            yield _bound(permission_denial, guard.argument)
        elif guard.name == "has_role":
            yield _bound(role_denial, guard.argument)


def _bound(
    decide: Callable[[AuthContext, Caller, str, str], ActionError | None], argument: str
) -> Denial:
    def deny(auth: AuthContext, caller: Caller, run_as: str) -> ActionError | None:
        return decide(auth, caller, argument, run_as)

    return deny


def tool_json(tool: Tool, *, modern: bool) -> dict[str, Any]:
    """A tool's definition. The schemas are the action's, `$ref`s bundled under
    `$defs`; before 2026-07-28 an output schema must have an object root, so a tool
    whose output is not an object shows none (and its results carry text only)."""
    action, trigger = tool.action, tool.trigger
    entry: dict[str, Any] = {"name": tool.name}
    if trigger.title:
        entry["title"] = trigger.title
    if action.description:
        entry["description"] = action.description
    entry["inputSchema"] = action.input.schema if action.input is not None else dict(NO_INPUT)
    if structured(tool, modern=modern):
        assert action.output is not None
        entry["outputSchema"] = action.output.schema
    hints = hints_of(trigger)
    if hints:
        entry["annotations"] = hints
    return entry


def hints_of(trigger: McpTrigger) -> dict[str, Any]:
    hints: dict[str, Any] = {"title": trigger.title} if trigger.title else {}
    for hint, field in _HINTS:
        value = getattr(trigger, field)
        if value is not None:
            hints[hint] = value
    return hints


def structured(tool: Tool, *, modern: bool) -> bool:
    """Whether the tool declares an output schema the era can carry (and so its
    results carry `structuredContent`)."""
    output = tool.action.output
    if output is None:
        return False
    return modern or (isinstance(output.schema, dict) and output.schema.get("type") == "object")
