"""The dashboard's pages: one method per page, each a query or two and a template."""

from __future__ import annotations

import datetime
import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

import jinja2
from aiohttp import web

from ..auth import SYSTEM
from ..errors import ActionError, BadRequest, NotFound
from ..ids import new_trace_id
from ..manifests.cron import parse_cron
from ..manifests.model import ApiTrigger, EventTrigger, McpTrigger, Trigger, WebhookTrigger
from ..queue import store as queue_store
from . import queries
from .access import DashboardAccess, from_elsewhere, from_loopback

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("actions_server.dashboard")

STATUSES = ("ok", "rejected", "error")
TRIGGERS = ("api", "webhook", "mcp", "event", "job", "cron", "cli", "join", "channel")
JOB_STATES = ("queued", "running", "dead", "done", "cancelled")
STATS_WINDOW_SECONDS = 3600
HTML = "text/html; charset=utf-8"
# What the pages allow a browser to do: nothing but show them and post their forms.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Page = Callable[[web.BaseRequest, "Session", list[str]], Awaitable[web.StreamResponse]]


class Session:
    """The signed-in operator of one request: their token and its CSRF token."""

    def __init__(self, token: str, csrf: str) -> None:
        self.token = token
        self.csrf = csrf


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["json"] = lambda value: json.dumps(value, indent=2, default=str, sort_keys=True)
    env.filters["ms"] = lambda value: "–" if value is None else f"{value:.1f} ms"
    env.filters["when"] = _when
    env.filters["without"] = lambda value, key: {k: v for k, v in value.items() if k != key}
    return env


def _when(value: datetime.datetime | None) -> str:
    if value is None:
        return "–"
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


class Dashboard:
    def __init__(self, runtime: Runtime, *, open_on_loopback: bool = False) -> None:
        self.runtime = runtime
        self.access = DashboardAccess(runtime.config, runtime.executor.auth)
        # `actions-server dev`: a browser on this machine needs no token. The session's
        # "token" is then a random string of this process, used only to sign CSRF tokens.
        self.local_session = secrets.token_urlsafe(32) if open_on_loopback else None
        self.prefix = self.access.path
        self.templates = _environment()
        self.pages: dict[tuple[str, str], Page] = {
            ("GET", ""): self.actions,
            ("GET", "runs"): self.runs,
            ("GET", "run"): self.run,
            ("GET", "jobs"): self.jobs,
            ("POST", "jobs"): self.job_action,
            ("GET", "cron"): self.cron,
            ("POST", "cron"): self.cron_action,
            ("GET", "events"): self.events,
            ("GET", "mail"): self.mail,
        }

    def owns(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def handle(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        parts = [p for p in path[len(self.prefix) :].split("/") if p]
        method = "GET" if request.method == "HEAD" else request.method
        if method == "POST" and from_elsewhere(request):
            message = "this form was posted from another site"
            return self.render("error.html.j2", {"message": message}, status=403, session=None)
        if parts[:1] == ["login"]:
            return await self.login(request, method)
        if parts[:1] == ["logout"] and method == "POST":
            response = _redirect(self.url("login"))
            self.access.forget(response)
            return response
        token = self.access.token_of(request)
        auth, problem = self.access.check(token)
        if (auth is None or token is None) and self.local_session and from_loopback(request):
            token = self.local_session
        elif auth is None or token is None:
            return self.render("login.html.j2", {"problem": problem}, status=401, session=None)
        page = self.pages.get((method, parts[0] if parts else ""))
        if page is None:
            return self.render("error.html.j2", {"message": "no such page"}, status=404)
        session = Session(token, self.access.csrf(token))
        try:
            return await page(request, session, parts[1:])
        except ActionError as exc:
            return self.render(
                "error.html.j2", {"message": exc.message}, status=exc.status, session=session
            )

    # --- pages ----------------------------------------------------------------------

    async def login(self, request: web.BaseRequest, method: str) -> web.StreamResponse:
        if method != "POST":
            return self.render("login.html.j2", {"problem": None}, session=None)
        form = await request.post()
        token = str(form.get("token", "")).strip()
        auth, problem = self.access.check(token)
        if auth is None:
            problem = problem or "paste a bearer token"
            return self.render("login.html.j2", {"problem": problem}, status=401, session=None)
        response = _redirect(self.url(""))
        self.access.remember(response, token, secure=self.access.is_https(request))
        return response

    async def actions(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        registry = self.runtime.registry
        names = sorted(registry.actions)
        async with self.runtime.database.detached() as conn:
            stats = {
                row["action"]: row
                for row in await queries.action_stats(conn, names, STATS_WINDOW_SECONDS)
            }
        rows = [
            {
                "name": name,
                "triggers": [_describe_trigger(t) for t in registry.actions[name].triggers],
                "guards": [str(g) for g in registry.actions[name].guards],
                **stats.get(name, {}),
            }
            for name in names
        ]
        return self.render("actions.html.j2", {"actions": rows}, session=session)

    async def runs(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        query = request.query
        filters = {
            "action": query.get("action") or None,
            "status": _choice(query.get("status"), STATUSES, "status"),
            "trigger": _choice(query.get("trigger"), TRIGGERS, "trigger"),
            "trace_id": query.get("trace_id") or None,
        }
        since_hours = _number(query.get("since_hours"), "since_hours")
        before = _uuid(query.get("before"), "before") if query.get("before") else None
        starts = [_moment(query.get("from"), "from")]
        if since_hours is not None:
            starts.append(datetime.datetime.now(datetime.UTC).timestamp() - since_hours * 3600)
        since = max((s for s in starts if s is not None), default=None)
        until = _moment(query.get("until"), "until")
        async with self.runtime.database.detached() as conn:
            rows = await queries.runs(
                conn,
                action=filters["action"],
                status=filters["status"],
                trigger=filters["trigger"],
                trace_id=filters["trace_id"],
                since=since,
                until=until,
                before=before,
            )
        times = {name: query.get(name) for name in ("since_hours", "from", "until")}
        kept = {k: v for k, v in {**filters, **times}.items() if v}
        more = None
        if len(rows) == queries.PAGE:
            more = "runs?" + urlencode({**kept, "before": str(rows[-1]["id"])})
        context = {
            "runs": rows,
            "filters": kept,
            "more": more,
            "statuses": STATUSES,
            "triggers": TRIGGERS,
            "actions": sorted(self.runtime.registry.actions),
        }
        return self.render("runs.html.j2", context, session=session)

    async def run(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        if len(rest) != 1:
            raise NotFound("no such run")
        run_id = _uuid(rest[0], "run id")
        async with self.runtime.database.detached() as conn:
            row = await queries.run(conn, run_id)
            if row is None:
                raise NotFound(f"no run {run_id} (it may have been pruned)")
            logs = await queries.run_logs(conn, run_id)
            tree = await queries.run_tree(conn, run_id)
            parent = await queries.run(conn, row["parent_id"]) if row["parent_id"] else None
        context = {"run": row, "logs": logs, "children": _nest(tree, run_id), "parent": parent}
        return self.render("run.html.j2", context, session=session)

    async def jobs(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        status = _choice(request.query.get("status"), JOB_STATES, "status") or "dead"
        async with self.runtime.database.detached() as conn:
            rows = await queries.jobs(conn, status)
            counts = await queue_store.count_by_state(conn)
        context = {
            "jobs": rows,
            "status": status,
            "states": JOB_STATES,
            "counts": counts,
            "notice": request.query.get("notice"),
        }
        return self.render("jobs.html.j2", context, session=session)

    async def job_action(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        """POST jobs/<id>/retry or jobs/<id>/cancel, from the jobs page's buttons."""
        form = await request.post()
        if not self.access.csrf_ok(session.token, _text(form.get("csrf"))):
            raise ActionError(403, "csrf", "the form is stale or not from this dashboard: reload")
        if len(rest) != 2 or rest[1] not in ("retry", "cancel") or not rest[0].isdigit():
            raise NotFound("no such job action")
        job_id, verb = int(rest[0]), rest[1]
        back = _choice(_text(form.get("back")), JOB_STATES, "back") or "dead"
        async with self.runtime.database.detached() as conn:
            if verb == "retry":
                retried = await queue_store.retry(conn, job_id)
                if retried.queued:
                    notice = f"job {job_id} queued again"
                elif job_id in retried.held:
                    notice = f"job {job_id} stays dead: job {retried.held[job_id]} holds its key"
                else:
                    notice = f"job {job_id} is not dead or cancelled"
            else:
                outcome = await queue_store.cancel(conn, job_id)
                notice = {
                    "cancelled": f"job {job_id} cancelled",
                    "requested": f"job {job_id} is running: its worker was asked to cancel it",
                }.get(outcome or "", f"job {job_id} has already finished")
        log.info("dashboard: %s", notice)
        return _redirect(self.url("jobs", status=back, notice=notice))

    async def cron(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        registry = self.runtime.registry
        now = datetime.datetime.now(datetime.UTC)
        schedules = [
            {
                "action": s.action.name,
                "expression": s.trigger.expression,
                "timezone": s.trigger.timezone,
                "next": parse_cron(s.trigger.expression, s.trigger.timezone).get_next_fire_time(
                    None, now
                ),
            }
            for s in registry.schedules
        ]
        names = sorted({s["action"] for s in schedules})
        async with self.runtime.database.detached() as conn:
            recent = await queries.cron_runs(conn, names)
            missed = await queries.misfires(conn)
        by_action: dict[str, list[dict[str, Any]]] = {}
        for row in recent:
            by_action.setdefault(row["action"], []).append(row)
        context = {
            "schedules": schedules,
            "recent": by_action,
            "misfires": missed,
            "notice": request.query.get("notice"),
        }
        return self.render("cron.html.j2", context, session=session)

    async def cron_action(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        """POST cron/<action>/run: a tick of the action now, as the scheduler would queue
        one (a job, run by a worker as the system), guarded as Retry is."""
        form = await request.post()
        if not self.access.csrf_ok(session.token, _text(form.get("csrf"))):
            raise ActionError(403, "csrf", "the form is stale or not from this dashboard: reload")
        if len(rest) != 2 or rest[1] != "run":
            raise NotFound("no such cron action")
        name = unquote(rest[0])
        spec = self.runtime.registry.action(name)
        if spec is None or not any(s.action.name == name for s in self.runtime.registry.schedules):
            raise NotFound(f"no cron action {name!r}")
        now = datetime.datetime.now(datetime.UTC)
        async with self.runtime.database.control() as conn:
            job_id = await queue_store.enqueue_tick(
                conn,
                name,
                now,
                max_attempts=spec.retry.attempts,
                trace_id=new_trace_id(),
                principal=SYSTEM.to_json(),
            )
        notice = f"{name} queued to run now (job {job_id})"
        log.info("dashboard: %s", notice)
        return _redirect(self.url("cron", notice=notice))

    async def events(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        async with self.runtime.database.detached() as conn:
            rows = await queries.events(conn)
        return self.render("events.html.j2", {"events": rows}, session=session)

    async def mail(
        self, request: web.BaseRequest, session: Session, rest: list[str]
    ) -> web.StreamResponse:
        async with self.runtime.database.detached() as conn:
            rows = await queries.outbox(conn)
        return self.render("mail.html.j2", {"messages": rows}, session=session)

    # --- helpers --------------------------------------------------------------------

    def url(self, page: str, **query: str) -> str:
        base = f"{self.prefix}/{page}" if page else self.prefix
        return f"{base}?{urlencode(query)}" if query else base

    def render(
        self,
        template: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        session: Session | None = None,
    ) -> web.Response:
        body = self.templates.get_template(template).render(
            **context, base=self.prefix, session=session, app=self.runtime.config.app
        )
        return web.Response(
            text=body, status=status, headers={**SECURITY_HEADERS, "Content-Type": HTML}
        )


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **SECURITY_HEADERS})


def _nest(rows: list[dict[str, Any]], root: uuid.UUID) -> list[dict[str, Any]]:
    """Flat descendants → a tree under `root`: each node gets its `children`."""
    nodes = {row["id"]: {**row, "children": []} for row in rows}
    top: list[dict[str, Any]] = []
    for node in nodes.values():
        parent = node["parent_id"]
        (top if parent == root else nodes[parent]["children"] if parent in nodes else top).append(
            node
        )
    return top


def _describe_trigger(trigger: Trigger) -> str:
    if isinstance(trigger, ApiTrigger):
        return f"{trigger.method} {trigger.path.openapi}"
    if isinstance(trigger, WebhookTrigger):
        return f"webhook {trigger.method} {trigger.path.openapi} ({trigger.verify.scheme})"
    if isinstance(trigger, EventTrigger):
        return f"event {trigger.event}"
    if isinstance(trigger, McpTrigger):
        return f"mcp tool {trigger.name}"
    return f"cron {trigger.expression} ({trigger.timezone})"


def _choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise BadRequest(f"{name} is one of {', '.join(allowed)}")
    return value


def _number(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{name} is a number") from None
    if not 0 < number <= 24 * 366:
        raise BadRequest(f"{name} is between 0 and a year of hours")
    return number


def _moment(value: str | None, name: str) -> float | None:
    """A `datetime-local` form value (no zone: read as UTC) as seconds since the epoch."""
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} is a date and time, like 2026-11-27T14:30") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _uuid(value: str | None, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        raise BadRequest(f"{name} is not a run id") from None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
