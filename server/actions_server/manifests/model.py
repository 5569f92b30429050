"""Frozen specs of what the manifests declare, built by the loader.

Specs are values: they hold the parsed manifest, the bundled schemas with their
compiled validators and the imported handler, and nothing that changes while
the server runs. The registry indexes them; the executor runs them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..realtime.patterns import ChannelPattern
from ..validation import CompiledSchema
from ..webhooks.verify import VerifySpec
from .paths import PathTemplate

Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    file: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiTrigger:
    method: str
    path: PathTemplate
    location: Location
    status: int = 200

    @property
    def kind(self) -> str:
        return "api"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseDoc:
    """A response an action declares (`responses:`), for the OpenAPI document."""

    description: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # name → what it holds
    content_type: str | None = None  # a body other than the output's JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookTrigger:
    """A route for another service's calls: verified on the raw bytes before anything
    runs; `mode: async` answers 202 and runs the action as a job."""

    method: str
    path: PathTemplate
    verify: VerifySpec
    location: Location
    mode: str = "sync"
    status: int = 200

    @property
    def kind(self) -> str:
        return "webhook"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventTrigger:
    event: str
    location: Location

    @property
    def kind(self) -> str:
        return "event"


@dataclass(frozen=True, slots=True, kw_only=True)
class CronTrigger:
    expression: str
    timezone: str
    location: Location

    @property
    def kind(self) -> str:
        return "cron"


@dataclass(frozen=True, slots=True, kw_only=True)
class McpTrigger:
    """The action as an MCP tool: `{mcp: NAME}`, or `{mcp: true}` for a name made
    from the action's (manifests/toolnames.py). The hints are None when not given."""

    name: str
    location: Location
    title: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None

    @property
    def kind(self) -> str:
        return "mcp"


Trigger = ApiTrigger | EventTrigger | CronTrigger | WebhookTrigger | McpTrigger


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardSpec:
    """One guard as written: `authenticated`, `{has_permission: users:create}`, ..."""

    name: str
    argument: Any
    location: Location

    def __str__(self) -> str:
        if self.argument is None:
            return self.name
        if self.name == "rate_limit":
            limit = self.argument
            return f"rate_limit: {limit['max']}/{limit['window_seconds']:g}s per {limit['key']}"
        return f"{self.name}: {self.argument}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 3
    backoff: str = "exponential"
    base_seconds: float = 1.0
    max_seconds: float = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSpec:
    """An action as its manifest declares it.

    The defaults here are the manifest's: the loader passes only the keys a
    manifest gives, and docs/manifests.md's table of keys is checked against them.
    """

    name: str
    module: str
    handler_ref: str
    handler: Handler
    location: Location
    description: str = ""
    input: CompiledSchema | None = None
    output: CompiledSchema | None = None
    triggers: tuple[Trigger, ...] = ()
    guards: tuple[GuardSpec, ...] = ()  # the module's first, then the action's own
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = None
    transaction: bool = True
    run_as: str = "caller"
    idempotency: bool = True  # HTTP: an Idempotency-Key on an unsafe method is honoured
    responses: tuple[tuple[int, ResponseDoc], ...] = ()  # (status, doc) declared, for OpenAPI
    tags: tuple[str, ...] = ()

    @property
    def api_triggers(self) -> tuple[ApiTrigger, ...]:
        return tuple(t for t in self.triggers if isinstance(t, ApiTrigger))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSpec:
    """A realtime channel as its manifest declares it (`channels:` beside `actions:`)."""

    pattern: ChannelPattern
    module: str
    location: Location
    description: str = ""
    guards: tuple[GuardSpec, ...] = ()  # the module's first, then the channel's own
    on_message: str | None = None  # the action a client's message runs
    presence: bool = False

    @property
    def name(self) -> str:
        return self.pattern.text


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSpec:
    name: str
    description: str
    prefix: str
    file: str
    actions: tuple[ActionSpec, ...]
    channels: tuple[ChannelSpec, ...] = ()
