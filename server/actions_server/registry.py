"""The immutable index of an app's actions: by name, by route, by event, by schedule,
by MCP tool name.

Built from the loader's ModuleSpecs in one pass that also finds what no single
file can show: two actions with one name, two actions on one method and path,
two tools with one name.
A new registry is built on every (re)load and swapped in whole; nothing in it
changes afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .config import Config
from .errors import LoadError, Problem
from .manifests.loader import load_modules
from .manifests.model import (
    ActionSpec,
    ApiTrigger,
    ChannelSpec,
    CronTrigger,
    EventTrigger,
    McpTrigger,
    ModuleSpec,
    WebhookTrigger,
)
from .manifests.paths import PathTemplate
from .realtime.patterns import ChannelTable


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    method: str
    path: PathTemplate
    status: int
    action: ActionSpec
    webhook: WebhookTrigger | None = None  # a webhook route: verified before anything else


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    action: ActionSpec
    trigger: CronTrigger


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """An action offered to MCP clients under `name` (its `mcp` trigger)."""

    name: str
    action: ActionSpec
    trigger: McpTrigger


@dataclass(frozen=True, slots=True, kw_only=True)
class Registry:
    modules: tuple[ModuleSpec, ...]
    actions: Mapping[str, ActionSpec]
    routes: tuple[Route, ...]
    subscriptions: Mapping[str, tuple[ActionSpec, ...]]  # event name → actions
    schedules: tuple[Schedule, ...]
    tools: Mapping[str, Tool]  # MCP tool name → its action, in the order declared
    channels: ChannelTable[ChannelSpec] = field(default_factory=ChannelTable)

    def action(self, name: str) -> ActionSpec | None:
        return self.actions.get(name)


def build_registry(
    modules: Iterable[ModuleSpec], builtins: Iterable[ActionSpec] = ()
) -> tuple[Registry, list[Problem]]:
    """Index `modules` (and the framework's `builtins`, which belong to no module of
    the app); the problems are duplicate names and conflicting routes."""
    modules = tuple(modules)
    framework = ModuleSpec(
        name="actions_server", description="", prefix="", file="(built in)", actions=tuple(builtins)
    )
    problems: list[Problem] = []
    actions: dict[str, ActionSpec] = {}
    routes: dict[tuple[str, str], Route] = {}
    subscriptions: dict[str, list[ActionSpec]] = {}
    schedules: list[Schedule] = []
    tools: dict[str, Tool] = {}
    for module in (*modules, framework):
        for action in module.actions:
            first = actions.get(action.name)
            if first is not None:
                where = first.location
                problems.append(
                    _at(action, f"duplicate action name {action.name!r} (first at {where})")
                )
                continue
            actions[action.name] = action
            for trigger in action.triggers:
                if isinstance(trigger, ApiTrigger | WebhookTrigger):
                    key = (trigger.method, trigger.path.key)
                    taken = routes.get(key)
                    if taken is not None:
                        problems.append(
                            Problem(
                                file=trigger.location.file,
                                line=trigger.location.line,
                                message=f"{trigger.method} {trigger.path} is already served by "
                                f"{taken.action.name!r} ({taken.action.location})",
                            )
                        )
                        continue
                    routes[key] = Route(
                        method=trigger.method,
                        path=trigger.path,
                        status=trigger.status,
                        action=action,
                        webhook=trigger if isinstance(trigger, WebhookTrigger) else None,
                    )
                elif isinstance(trigger, EventTrigger):
                    subscriptions.setdefault(trigger.event, []).append(action)
                elif isinstance(trigger, McpTrigger):
                    other = tools.get(trigger.name)
                    if other is not None:
                        where = other.trigger.location
                        problems.append(
                            _at(
                                trigger,
                                f"mcp: tool name {trigger.name!r} is already taken by "
                                f"{other.action.name!r} ({where})",
                            )
                        )
                        continue
                    tools[trigger.name] = Tool(name=trigger.name, action=action, trigger=trigger)
                elif isinstance(trigger, CronTrigger):
                    schedules.append(Schedule(action=action, trigger=trigger))
    registry = Registry(
        modules=modules,
        actions=MappingProxyType(actions),
        routes=tuple(routes.values()),
        subscriptions=MappingProxyType({k: tuple(v) for k, v in subscriptions.items()}),
        schedules=tuple(schedules),
        tools=MappingProxyType(tools),
        channels=ChannelTable(_channels(modules, actions, problems)),
    )
    return registry, problems


def _at(spec: ActionSpec | McpTrigger, message: str) -> Problem:
    return Problem(file=spec.location.file, line=spec.location.line, message=message)


def _channels(
    modules: tuple[ModuleSpec, ...], actions: Mapping[str, ActionSpec], problems: list[Problem]
) -> list[ChannelSpec]:
    """Every declared channel, but those whose pattern another has (`org:{id}` and
    `org:{org_id}` are one) or whose `on_message` names no action."""
    kept: dict[str, ChannelSpec] = {}
    for module in modules:
        for channel in module.channels:
            where = channel.location
            first = kept.get(channel.pattern.key)
            if first is not None:
                problems.append(
                    Problem(
                        file=where.file,
                        line=where.line,
                        message=f"channel {channel.name!r} is already declared as "
                        f"{first.name!r} ({first.location})",
                    )
                )
                continue
            if channel.on_message is not None and channel.on_message not in actions:
                problems.append(
                    Problem(
                        file=where.file,
                        line=where.line,
                        message=f"channel {channel.name!r}: on_message names no action "
                        f"{channel.on_message!r}",
                    )
                )
                continue
            refused = _params_refused(channel, actions)
            if refused:
                problems.append(
                    Problem(
                        file=where.file,
                        line=where.line,
                        message=f"channel {channel.name!r}: the input of {channel.on_message!r} "
                        f"must accept the channel's parameters (they are added to every "
                        f"message); it allows no {', '.join(map(repr, refused))}",
                    )
                )
                continue
            kept[channel.pattern.key] = channel
    return list(kept.values())


def _params_refused(channel: ChannelSpec, actions: Mapping[str, ActionSpec]) -> list[str]:
    """The channel's parameters that its on_message action's input schema would reject."""
    action = actions.get(channel.on_message or "")
    if action is None or action.input is None:
        return []
    plan = action.input.plan
    if plan.accepts_unknown:
        return []
    return [name for name in channel.pattern.params if name not in plan.fields]


def load_registry(config: Config, builtins: Iterable[ActionSpec] = ()) -> Registry:
    """Load every manifest the config names, beside `builtins` (the framework's own
    actions: the runtime's `builtins.load_app` adds them); raise LoadError listing
    every problem."""
    modules, problems = load_modules(config)
    registry, more = build_registry(modules, builtins=builtins)
    problems.extend(more)
    if problems:
        raise LoadError(sorted(problems, key=lambda p: (p.file, p.line or 0)))
    return registry


def counts(registry: Registry) -> str:
    """The app's share of `registry`, as the start-up log, `validate`, `routes` and each
    reload say it: `5 actions in 2 modules, 4 routes, 1 event subscription, 1 cron
    schedule`. The framework's own actions (mail delivery) are not counted."""
    app = {action.name for module in registry.modules for action in module.actions}
    subscribers = sum(
        action.name in app for actions in registry.subscriptions.values() for action in actions
    )
    return ", ".join(
        (
            f"{_n(len(app), 'action')} in {_n(len(registry.modules), 'module')}",
            _n(len(registry.routes), "route"),
            _n(subscribers, "event subscription"),
            _n(len(registry.schedules), "cron schedule"),
        )
    )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
