"""Manifest files → ModuleSpecs, with every problem found in one pass.

Each file is parsed with its lines, checked against the manifest JSON Schema,
and then each action that is well-formed is checked for what a schema cannot
see: handler imports, schemas and their `$ref`s, triggers, cron expressions,
guards, and path parameters the input schema would reject. An action with a
structural problem is not checked further, so one typo yields one problem, not
a cascade. Cross-file checks (duplicate names, conflicting routes) belong to
the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from ..config import Config
from ..errors import Problem
from ..realtime.patterns import PatternError, parse_pattern
from ..sourcemap import JsonPath, SourceDoc, SourceError, parse_file, schema_errors
from ..validation import CompiledSchema
from .guardspec import GuardSyntaxError, parse_guard
from .imports import ImportProblem, import_callable
from .model import (
    ActionSpec,
    ApiTrigger,
    ChannelSpec,
    GuardSpec,
    Location,
    McpTrigger,
    ModuleSpec,
    ResponseDoc,
    RetryPolicy,
    WebhookTrigger,
)
from .paths import PathError, parse_path
from .refs import SchemaStore
from .refs import schema_problems as json_schema_problems
from .toolnames import tool_name_from, tool_name_problem
from .triggers import TriggerReader

MANIFEST_SUFFIXES = (".yaml", ".yml")
_GLOB_CHARS = frozenset("*?[")


@cache
def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of manifest files (also printed by `actions-server schema`)."""
    path = Path(__file__).parent.parent / "schemas" / "manifest.schema.yaml"
    schema: dict[str, Any] = parse_file(path).data
    return schema


@cache
def _manifest_validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(manifest_schema())


def manifest_files(config: Config) -> tuple[list[Path], list[Problem]]:
    """The manifest files the config's `actions` patterns name, in a stable order."""
    files: dict[Path, None] = {}
    problems = []
    for index, pattern in enumerate(config.actions):
        if _GLOB_CHARS & set(pattern):
            found = [p for p in sorted(config.root.glob(pattern)) if p.is_file()]
        else:
            target = (config.root / pattern).resolve()
            if target.is_dir():
                found = sorted(p for p in target.rglob("*") if p.suffix in MANIFEST_SUFFIXES)
            elif target.is_file():
                found = [target]
            else:
                problems.append(
                    config.problem(("actions", index), f"actions: {pattern!r} does not exist")
                )
                continue
        for path in found:
            files[path.resolve()] = None
    return list(files), problems


def load_modules(config: Config) -> tuple[list[ModuleSpec], list[Problem]]:
    """Every manifest the config names, and every problem found in them."""
    files, problems = manifest_files(config)
    store = SchemaStore(config.schemas, config.relative)
    modules = []
    for file in files:
        module, found = load_module(file, config, store)
        problems.extend(found)
        if module is not None:
            modules.append(module)
    problems.extend(store.problems)
    return modules, list(dict.fromkeys(problems))


def load_module(
    file: Path, config: Config, store: SchemaStore
) -> tuple[ModuleSpec | None, list[Problem]]:
    try:
        doc = parse_file(file, shown_as=config.relative(file))
    except SourceError as exc:
        return None, [exc.problem]
    if doc.data is None:
        return None, [doc.problem((), "the manifest is empty; it needs `module:` and `actions:`")]
    errors = list(schema_errors(doc.data, _manifest_validator(), manifest_schema()))
    structural = [doc.problem(path, message) for path, message in errors]
    broken = {_error_root(path) for path, _ in errors}
    if not isinstance(doc.data, dict) or "module" in broken or "actions" not in doc.data:
        return None, structural
    return _ModuleLoader(doc, config, store, broken).load(structural)


def _error_root(path: JsonPath) -> str | int:
    """Which action (by index) or top-level key a structural error belongs to."""
    if not path:
        return ""
    if path[0] == "actions" and len(path) > 1:
        return path[1]
    if path[0] == "channels" and len(path) > 1:
        return f"channels/{path[1]}"
    return path[0]


class _ModuleLoader:
    def __init__(
        self, doc: SourceDoc, config: Config, store: SchemaStore, broken: set[str | int]
    ) -> None:
        self.doc = doc
        self.config = config
        self.store = store
        self.broken = broken
        self.problems: list[Problem] = []

    def load(self, structural: list[Problem]) -> tuple[ModuleSpec | None, list[Problem]]:
        self.problems.extend(structural)
        data = self.doc.data
        prefix = data.get("prefix", "") if "prefix" not in self.broken else ""
        if prefix and prefix != "/":
            try:
                parse_path(prefix)
            except PathError as exc:
                self._problem(("prefix",), f"prefix: {exc}")
                prefix = ""
        module_guards = (
            () if "guards" in self.broken else self._guards(data.get("guards", []), ("guards",))
        )
        actions = []
        for index, raw in enumerate(data.get("actions") or []):
            if index in self.broken or "actions" in self.broken:
                continue
            action = self._action(raw, ("actions", index), prefix, module_guards, data["module"])
            if action is not None:
                actions.append(action)
        channels = () if "channels" in self.broken else self._channels(data, module_guards)
        module = ModuleSpec(
            name=data["module"],
            description=data.get("description", ""),
            prefix=prefix,
            file=self.doc.file,
            actions=tuple(actions),
            channels=channels,
        )
        return module, self.problems

    def _channels(
        self, data: dict[str, Any], module_guards: tuple[GuardSpec, ...]
    ) -> tuple[ChannelSpec, ...]:
        """The module's `channels:`; whether `on_message` names an action is the registry's
        check (the action may live in another file)."""
        channels = []
        for index, raw in enumerate(data.get("channels") or []):
            at: JsonPath = ("channels", index)
            if f"channels/{index}" in self.broken:
                continue
            before = len(self.problems)
            try:
                pattern = parse_pattern(raw["name"])
            except PatternError as exc:
                self._problem((*at, "name"), f"channels[{index}].name: {exc}")
                continue
            guards = module_guards + self._guards(raw.get("guards", []), (*at, "guards"))
            self._check_guard_order(guards)
            if any(g.name == "in_org" for g in guards) and "org_id" not in pattern.params:
                self._problem(
                    (*at, "name"),
                    f"channels[{index}]: guard in_org reads the org from the channel name, "
                    f"which needs a {{org_id}} segment ({pattern} has none)",
                )
            if len(self.problems) > before:
                continue
            options = {
                key: raw[key] for key in ("description", "on_message", "presence") if key in raw
            }
            channels.append(
                ChannelSpec(
                    pattern=pattern,
                    module=data["module"],
                    location=self._location(at),
                    guards=guards,
                    **options,
                )
            )
        return tuple(channels)

    # --- one action ---------------------------------------------------------

    def _action(
        self,
        raw: dict[str, Any],
        at: JsonPath,
        prefix: str,
        module_guards: tuple[GuardSpec, ...],
        module: str,
    ) -> ActionSpec | None:
        before = len(self.problems)
        handler = self._import(raw["handler"], (*at, "handler"))
        input_schema = self._schema(raw, "input", at)
        output_schema = self._schema(raw, "output", at)
        reader = TriggerReader(self.doc, self.config.timezone, self.problems)
        triggers = reader.read(raw.get("triggers", []), (*at, "triggers"), prefix)
        guards = module_guards + self._guards(raw.get("guards", []), (*at, "guards"))
        self._check_guard_order(guards)
        for index, trigger in enumerate(triggers):
            if isinstance(trigger, ApiTrigger | WebhookTrigger):
                self._check_path_params(trigger, input_schema, at)
            elif isinstance(trigger, McpTrigger):
                triggers[index] = self._tool(trigger, raw["name"], input_schema)
        if len(self.problems) > before or handler is None:
            return None
        # Only the options the manifest gives: ActionSpec holds the defaults.
        options: dict[str, Any] = {
            key: raw[key]
            for key in ("description", "timeout_seconds", "transaction", "run_as", "idempotency")
            if key in raw
        }
        if "retry" in raw:
            options["retry"] = RetryPolicy(**raw["retry"])
        if "tags" in raw:
            options["tags"] = tuple(raw["tags"])
        if "responses" in raw:
            options["responses"] = tuple(
                (
                    int(status),
                    ResponseDoc(
                        description=doc.get("description", ""),
                        headers=dict(doc.get("headers", {})),
                        content_type=doc.get("content_type"),
                    ),
                )
                for status, doc in sorted(raw["responses"].items(), key=lambda item: int(item[0]))
            )
        return ActionSpec(
            name=raw["name"],
            module=module,
            handler_ref=raw["handler"],
            handler=handler,
            input=input_schema,
            output=output_schema,
            triggers=tuple(triggers),
            guards=guards,
            location=self._location(at),
            **options,
        )

    def _import(self, ref: str, at: JsonPath) -> Any:
        try:
            return import_callable(ref, self.config.root)
        except ImportProblem as exc:
            self._problem(at, f"handler: {exc}")
            return None

    def _schema(self, raw: dict[str, Any], key: str, at: JsonPath) -> CompiledSchema | None:
        if key not in raw:
            return None
        path = (*at, key)
        schema = raw[key]
        invalid = json_schema_problems(schema, self.doc, path)
        if invalid:
            self.problems.extend(invalid)
            return None
        bundled, unresolved = self.store.bundle(schema, self.doc, path)
        if unresolved:
            self.problems.extend(unresolved)
            return None
        try:
            compiled = CompiledSchema(bundled)
        except (ValueError, jsonschema_rs.ValidationError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._problem(path, f"{key}: cannot compile the schema: {first_line}")
            return None
        # A default is filled in before validation, so a wrong one would make every
        # request that omits the field fail, blaming the client.
        for detail in compiled.errors(dict(compiled.defaults)):
            name = detail.path.split("/")[1] if detail.path.count("/") >= 1 else ""
            if name in compiled.defaults:
                where = (*path, "properties", name, "default")
                self._problem(where, f"{key}.properties.{name}.default: {detail.message}")
        return compiled

    def _check_path_params(
        self, trigger: ApiTrigger | WebhookTrigger, schema: CompiledSchema | None, at: JsonPath
    ) -> None:
        if schema is None:
            return
        plan = schema.plan
        for name in trigger.path.params:
            if name not in plan.fields and not plan.accepts_unknown:
                self._problem(
                    (*at, "input"),
                    f"input: path parameter {name!r} of {trigger.method} {trigger.path} is not a "
                    "property of the input schema, which allows no other properties",
                )

    def _tool(self, trigger: McpTrigger, action: str, schema: CompiledSchema | None) -> McpTrigger:
        """The trigger with its tool name; a problem when MCP cannot carry the tool."""
        where = trigger.location
        name = trigger.name or tool_name_from(action)
        wrong = tool_name_problem(name)
        if wrong is not None:
            made = "" if trigger.name else " (made from the action's name; give one: mcp: NAME)"
            self._problem_at(where, f"mcp: {wrong}{made}")
        if schema is not None:
            root = schema.schema
            if not isinstance(root, dict) or root.get("type") != "object":
                self._problem_at(
                    where,
                    "mcp: an MCP tool's input must be an object: give the input schema "
                    "`type: object` at its root",
                )
            for field in sorted(schema.binary_fields):
                self._problem_at(
                    where,
                    f"mcp: input field {field!r} is a file (format: binary); MCP cannot send files",
                )
        return dataclasses.replace(trigger, name=name)

    def _guards(self, entries: Iterable[Any], at: JsonPath) -> tuple[GuardSpec, ...]:
        guards = []
        for index, entry in enumerate(entries):
            path = (*at, index)
            try:
                name, argument = parse_guard(entry)
            except GuardSyntaxError as exc:
                self._problem(path, f"guards: {exc}")
                continue
            if name == "guard":
                try:
                    import_callable(argument, self.config.root)
                except ImportProblem as exc:
                    self._problem(path, f"guard: {exc}")
                    continue
            guards.append(GuardSpec(name=name, argument=argument, location=self._location(path)))
        return tuple(guards)

    def _check_guard_order(self, guards: tuple[GuardSpec, ...]) -> None:
        """Guards that act on the run's org need `in_org` to have found it first."""
        in_org_seen = False
        for guard in guards:
            needs_org = guard.name == "has_feature" or (
                guard.name == "rate_limit" and guard.argument["key"] == "org"
            )
            if needs_org and not in_org_seen:
                self.problems.append(
                    Problem(
                        file=guard.location.file,
                        line=guard.location.line,
                        message=f"guards: {guard} needs `in_org` before it "
                        "(module guards run first)",
                    )
                )
            in_org_seen = in_org_seen or guard.name == "in_org"

    def _location(self, at: JsonPath) -> Location:
        return Location(file=self.doc.file, line=self.doc.line_of(at))

    def _problem(self, at: JsonPath, message: str) -> None:
        self.problems.append(self.doc.problem(at, message))

    def _problem_at(self, where: Location, message: str) -> None:
        self.problems.append(Problem(file=where.file, line=where.line, message=message))
