"""A manifest action's `triggers:` entries → Trigger values (api, webhook, event, cron,
mcp), with what each entry gets wrong reported against its line."""

from __future__ import annotations

import os
from typing import Any

from ..config import interpolate
from ..errors import Problem
from ..sourcemap import JsonPath, SourceDoc
from ..webhooks.verify import VerifySpec, standard_key
from .cron import CronError, parse_cron
from .model import (
    ApiTrigger,
    CronTrigger,
    EventTrigger,
    Location,
    McpTrigger,
    Trigger,
    WebhookTrigger,
)
from .paths import PathError, join_paths, parse_api_trigger, parse_path

TRIGGER_KINDS = ("api", "webhook", "event", "cron", "mcp")
VERIFY_OPTIONS = ("tolerance_seconds", "header", "algorithm", "encoding", "prefix", "id_header")


class TriggerReader:
    """Reads the triggers of one manifest file; problems go to `problems`."""

    def __init__(self, doc: SourceDoc, timezone: str, problems: list[Problem]) -> None:
        self.doc = doc
        self.timezone = timezone  # the app's, for a cron trigger that names none
        self.problems = problems

    def read(self, entries: list[dict[str, Any]], at: JsonPath, prefix: str) -> list[Trigger]:
        """Each entry's Trigger; an entry with a problem is left out (and reported)."""
        triggers: list[Trigger] = []
        for index, entry in enumerate(entries):
            path = (*at, index)
            kinds = [k for k in TRIGGER_KINDS if k in entry]
            if len(kinds) != 1:
                found = " and ".join(kinds) if kinds else "none"
                self._problem(
                    path,
                    f"a trigger has exactly one of {', '.join(TRIGGER_KINDS)} (found {found})",
                )
                continue
            kind = kinds[0]
            if "status" in entry and kind not in ("api", "webhook"):
                self._problem((*path, "status"), "status applies only to api and webhook triggers")
            for key in ("verify", "mode"):
                if key in entry and kind != "webhook":
                    self._problem((*path, key), f"{key} applies only to webhook triggers")
            if kind == "webhook" and "verify" not in entry:
                self._problem(path, "a webhook trigger needs verify: {scheme, secrets}")
                continue
            if "timezone" in entry and kind != "cron":
                self._problem((*path, "timezone"), "timezone applies only to cron triggers")
            for key in ("title", "annotations"):
                if key in entry and kind != "mcp":
                    self._problem((*path, key), f"{key} applies only to mcp triggers")
            trigger = self._trigger(kind, entry, path, prefix)
            if trigger is not None:
                triggers.append(trigger)
        return triggers

    def _trigger(
        self, kind: str, entry: dict[str, Any], at: JsonPath, prefix: str
    ) -> Trigger | None:
        location = self._location(at)
        if kind == "event":
            return EventTrigger(event=entry["event"], location=location)
        if kind == "mcp":
            # `mcp: true` leaves the name to _tool, which knows the action's.
            name = entry["mcp"] if isinstance(entry["mcp"], str) else ""
            hints = entry.get("annotations", {})
            return McpTrigger(name=name, title=entry.get("title"), location=location, **hints)
        if kind == "cron":
            timezone = entry.get("timezone", self.timezone)
            try:
                parse_cron(entry["cron"], timezone)
            except CronError as exc:
                self._problem((*at, "cron"), str(exc))
                return None
            return CronTrigger(expression=entry["cron"], timezone=timezone, location=location)
        try:
            method, path = parse_api_trigger(entry[kind])
            template = parse_path(join_paths(prefix, path))
        except PathError as exc:
            self._problem((*at, kind), str(exc))
            return None
        status = {"status": entry["status"]} if "status" in entry else {}
        if kind == "webhook":
            verify = self._verify(entry["verify"], (*at, "verify"))
            if verify is None:
                return None
            mode = {"mode": entry["mode"]} if "mode" in entry else {}
            return WebhookTrigger(
                method=method, path=template, verify=verify, location=location, **status, **mode
            )
        return ApiTrigger(method=method, path=template, location=location, **status)

    def _verify(self, raw: dict[str, Any], at: JsonPath) -> VerifySpec | None:
        """A webhook's `verify:` block; `${VAR}` in its secrets comes from the environment."""
        secrets = []
        for index, secret in enumerate(raw.get("secrets", ())):
            value, errors = interpolate(secret, os.environ)
            for error in errors:
                self._problem((*at, "secrets", index), f"verify.secrets: {error}")
            if not errors and not value:
                self._problem((*at, "secrets", index), "verify.secrets: a secret is empty")
            secrets.append(value)
        if raw["scheme"] == "hmac" and not raw.get("header"):
            self._problem(at, "verify: the hmac scheme needs header (where the signature is)")
        if raw["scheme"] == "standard":
            for index, secret in enumerate(secrets):
                try:
                    standard_key(secret)
                except ValueError:
                    self._problem(
                        (*at, "secrets", index),
                        "verify.secrets: a standard secret is whsec_ followed by base64",
                    )
        options = {k: raw[k] for k in VERIFY_OPTIONS if k in raw}
        return VerifySpec(scheme=raw["scheme"], secrets=tuple(secrets), **options)

    def _location(self, at: JsonPath) -> Location:
        return Location(file=self.doc.file, line=self.doc.line_of(at))

    def _problem(self, at: JsonPath, message: str) -> None:
        self.problems.append(self.doc.problem(at, message))
