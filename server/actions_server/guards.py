"""Guards: the checks a manifest puts in front of an action, on every trigger.

Each guard in a manifest becomes an async check that raises an ActionError to
deny. What a guard decides is a pure function below (`*_denial`), tested
without a database; the checks around them only fetch what the decision needs
(membership, plan features, a rate-limit counter).

Identity comes first: a guard that needs to know the caller answers 401 when it
does not (`unauthenticated`, or `invalid_token` when a token was presented and
refused) before it considers 403. The system principal (cron) passes only in
actions that say `run_as: system`.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .auth import ANONYMOUS, AuthContext, Principal, TokenError
from .clock import SYSTEM_CLOCK, Clock
from .config import OrgTables
from .db.orgs import IdFormats, feature_query, membership_query
from .errors import ActionError, BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized
from .kv import KV
from .manifests.imports import import_callable
from .manifests.model import ActionSpec, GuardSpec

if TYPE_CHECKING:
    from .context import Context


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """What the trigger knows about who is calling, before any guard runs."""

    principal: Principal = ANONYMOUS
    token_error: TokenError | None = None  # a token was presented and refused
    client_ip: str | None = None
    org_header: str | None = None  # x-org-id
    via_cookie: bool = False  # the token came from the session cookie (CSRF applies)


NOBODY = Caller()  # an anonymous caller with nothing known about it


class GuardCall(NamedTuple):
    """What a guard sees (a NamedTuple: one is made per guarded run)."""

    ctx: Context
    caller: Caller
    payload: Any
    action: ActionSpec


# A guard raises to deny. The pure ones decide on the spot and return None; the
# ones that need I/O return an awaitable, so a run behind pure guards only pays
# for function calls, not for coroutines.
Guard = Callable[[GuardCall], Awaitable[None] | None]


# --- pure decisions ---------------------------------------------------------------------


def identity_denial(auth: AuthContext, caller: Caller, run_as: str) -> ActionError | None:
    """Why the caller is not known well enough for an identity guard, or None."""
    if auth.is_system:
        if run_as == "system":
            return None
        return Unauthorized(
            "this run has no user (it runs as the system); "
            "add `run_as: system` to the action to allow it",
            code="unauthenticated",
        )
    if caller.token_error is not None and not auth.is_authenticated:
        return caller.token_error
    if not auth.is_authenticated:
        return Unauthorized(
            "authentication required: send Authorization: Bearer <token>",
            code="unauthenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


def permission_denial(
    auth: AuthContext, caller: Caller, permission: str, run_as: str
) -> ActionError | None:
    denial = identity_denial(auth, caller, run_as)
    if denial is not None or auth.has_permission(permission):
        return denial
    return Forbidden(f"missing permission {permission!r}")


def role_denial(auth: AuthContext, caller: Caller, role: str, run_as: str) -> ActionError | None:
    denial = identity_denial(auth, caller, run_as)
    if denial is not None or auth.is_system or auth.has_role(role):
        return denial
    return Forbidden(f"missing role {role!r}")


_ID_FORMATS = {
    "uuid": re.compile(
        r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z"
    ),
    "integer": re.compile(r"[0-9]{1,18}\Z"),
    "text": re.compile(r".{1,200}\Z", re.S),
}


def chosen_org(caller: Caller, payload: Any, auth: AuthContext) -> str | ActionError:
    """The org a run acts in: `x-org-id`, else the input's `org_id`, else the carried one."""
    from_input = payload.get("org_id") if isinstance(payload, Mapping) else None
    if from_input is not None and not isinstance(from_input, str | int):
        return BadRequest("org_id must be a string", code="invalid_org")
    from_input = str(from_input) if from_input is not None else None
    header = caller.org_header
    if header is not None and from_input is not None and header != from_input:
        return BadRequest("x-org-id and the input's org_id name different orgs", code="invalid_org")
    org = header or from_input or auth.principal.org_id
    if not org:
        return BadRequest("this action needs an org: send x-org-id or org_id", code="org_required")
    return org


def membership_denial(org_id: str, org_exists: bool, role: str | None) -> ActionError | None:
    if not org_exists:
        return NotFound(f"no org {org_id}", code="org_not_found")
    if role is None:
        return Forbidden(f"not a member of org {org_id}")
    return None


def feature_denial(feature: str, has_it: bool) -> ActionError | None:
    if has_it:
        return None
    return Forbidden(f"the org's plan does not include {feature!r}", code="upgrade_required")


def rate_window(now: float, window_seconds: float) -> tuple[float, int]:
    """(start of the fixed window containing `now`, whole seconds until it ends)."""
    start = math.floor(now / window_seconds) * window_seconds
    return start, max(1, math.ceil(start + window_seconds - now))


def rate_subject(key: str, auth: AuthContext, caller: Caller) -> str:
    """Whose counter a request counts against; anonymous callers count per IP, never together."""
    if key == "org" and auth.org_id:
        return f"org:{auth.org_id}"
    if key in ("user", "org") and auth.user_id:
        return f"user:{auth.user_id}"
    if auth.is_system:
        return "system"
    return f"ip:{caller.client_ip or 'unknown'}"


def rate_denial(count: int, limit: int, retry_after: int) -> ActionError | None:
    if count <= limit:
        return None
    return TooManyRequests(
        f"rate limit of {limit} reached; retry in {retry_after}s", retry_after=retry_after
    )


# --- the checks -------------------------------------------------------------------------


class GuardFactory:
    """Builds each action's checks once; they share the app's counters and settings."""

    def __init__(
        self,
        counters: KV,
        orgs: OrgTables,
        root: Any,
        ids: IdFormats | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.counters = counters
        self.clock = clock  # rate-limit windows are cut by it
        self.orgs = orgs
        self.root = root
        self._membership = membership_query(orgs)
        self._feature = feature_query(orgs)
        if ids is None:
            ids = IdFormats(org=orgs.id_format or "text", user=orgs.id_format or "text")
        self._org_id = _ID_FORMATS[ids.org]
        self._user_id = _ID_FORMATS[ids.user]

    def compile(self, action: ActionSpec) -> tuple[Guard, ...]:
        return tuple(self._one(spec, action.run_as) for spec in action.guards)

    def _one(self, spec: GuardSpec, run_as: str) -> Guard:
        name, argument = spec.name, spec.argument
        if name == "authenticated":
            return _raising(lambda call: identity_denial(call.ctx.auth, call.caller, run_as))
        if name == "has_permission":
            return _raising(
                lambda call: permission_denial(call.ctx.auth, call.caller, argument, run_as)
            )
        if name == "has_role":
            return _raising(lambda call: role_denial(call.ctx.auth, call.caller, argument, run_as))
        if name == "in_org":
            return lambda call: self._in_org(call, run_as)
        if name == "has_feature":
            return lambda call: self._has_feature(call, argument)
        if name == "rate_limit":
            return lambda call: self._rate_limit(call, argument)
        if name != "guard":  # the loader accepts only the names handled above
            raise ValueError(f"unknown guard {name!r}")
        function = import_callable(argument, self.root)
        if _takes_input(function):
            return lambda call: function(call.ctx, call.payload)
        return lambda call: function(call.ctx)

    async def _in_org(self, call: GuardCall, run_as: str) -> None:
        auth = call.ctx.auth
        _raise(identity_denial(auth, call.caller, run_as))
        org = chosen_org(call.caller, call.payload, auth)
        if isinstance(org, ActionError):
            raise org
        if auth.org_id == org and auth.org_role is not None:
            return  # already established in this run
        if not self._org_id.match(org):
            raise NotFound(f"no org {org}", code="org_not_found")
        user = auth.user_id if auth.user_id and self._user_id.match(auth.user_id) else None
        # app.org_id goes out with the lookup; a denied run rolls back with it.
        call.ctx.db.set_local("app.org_id", org)
        rows = await call.ctx.db.execute(self._membership, (user, org))
        role = rows[0]["role"] if rows else None
        if auth.is_system and rows:
            role = "system"
        _raise(membership_denial(org, bool(rows), role))
        # The id as stored, not as spelled: `ABC…` and `abc…` are one org, one
        # rate-limit bucket, one app.org_id.
        canonical = rows[0]["org_id"]
        if canonical != org:
            call.ctx.db.set_local("app.org_id", canonical)
        auth.enter_org(canonical, str(role))

    async def _has_feature(self, call: GuardCall, feature: str) -> None:
        org = call.ctx.auth.org_id
        if org is None:  # the loader requires in_org first; a carried org may be missing
            raise BadRequest(
                "this action needs an org: send x-org-id or org_id", code="org_required"
            )
        rows = await call.ctx.db.execute(self._feature, (org, feature))
        _raise(feature_denial(feature, bool(rows)))

    async def _rate_limit(self, call: GuardCall, limit: Mapping[str, Any]) -> None:
        window = float(limit["window_seconds"])
        start, retry_after = rate_window(self.clock(), window)
        subject = rate_subject(limit["key"], call.ctx.auth, call.caller)
        # A counter per window, through the KV store but outside the run's
        # transaction: a request that fails still counts.
        key = f"actions_server:rate:{call.action.name}|{subject}|{start:.0f}"
        count = await self.counters.incr(key, 1, ttl=window + 1)
        _raise(rate_denial(count, int(limit["max"]), retry_after))


def _takes_input(function: Callable[..., Any]) -> bool:
    """A custom guard is `async def guard(ctx)`, or `guard(ctx, input)` to see the input."""
    parameters = inspect.signature(function).parameters.values()
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


def _raise(denial: ActionError | None) -> None:
    if denial is not None:
        raise denial


def _raising(decide: Callable[[GuardCall], ActionError | None]) -> Guard:
    def check(call: GuardCall) -> None:
        denial = decide(call)
        if denial is not None:
            raise denial

    return check
