"""Every exception actions-server raises or lets handlers raise.

The hierarchy::

    ActionsServerError                 base of everything below
    ├── LoadError                      config or manifests are wrong; carries Problem list
    └── ActionError(status, code, message, details)
        ├── BadRequest          400 bad_request
        │   └── ValidationFailed  400 validation_failed (details: one per failing field)
        ├── Unauthorized        401 unauthorized
        ├── Forbidden           403 forbidden
        ├── NotFound            404 not_found
        ├── MethodNotAllowed    405 method_not_allowed (Allow header)
        ├── RequestTimeout      408 request_timeout (the body did not arrive in time)
        ├── Conflict            409 conflict
        ├── PayloadTooLarge     413 payload_too_large
        ├── UnsupportedMediaType 415 unsupported_media_type
        ├── TooManyRequests     429 rate_limited (Retry-After header)
        ├── InternalError       500 internal_error (never carries the cause's text)
        ├── DatabaseUnavailable 503 database_unavailable
        ├── BackendUnavailable  503 backend_unavailable (Redis or the object store did not answer)
        ├── ServerBusy          503 server_busy (every database connection is in use)
        └── ActionTimeout       504 timeout (the action's timeout_seconds passed)

An `ActionError` is status + code + message + details and nothing more (as in
Starlette's HTTPException): the HTTP layer turns it into the one error body of
docs/http.md#errors, the CLI prints the same body.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_TRACEBACK = 8000  # characters of a traceback kept with a failed run or job


def traceback_text(cause: BaseException) -> str:
    """The end of `cause`'s traceback, as Python prints it, at most MAX_TRACEBACK long."""
    return "".join(traceback.format_exception(cause))[-MAX_TRACEBACK:]


class ActionsServerError(Exception):
    """Base class of every error raised by actions-server."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong in a config or manifest file, with where it is."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


class LoadError(ActionsServerError):
    """The config or the manifests cannot be loaded; `problems` lists every reason."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''}:\n{lines}")


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One failing field: a JSON pointer into the input and what is wrong there."""

    path: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class ActionError(ActionsServerError):
    """An error with an HTTP status, a stable machine-readable code and a message.

    Raise it (or one of its subclasses) from a handler to answer with that status.
    """

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
        *,
        details: Iterable[ErrorDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.message = message if message is not None else self.default_message()
        self.details: tuple[ErrorDetail, ...] = tuple(details)
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    def default_message(self) -> str:
        return self.code.replace("_", " ")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.message!r})"


class _FixedStatus(ActionError):
    """Subclasses fix the status; their constructor takes the message first."""

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Iterable[ErrorDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(None, code, message, details=details, headers=headers)


class BadRequest(_FixedStatus):
    status = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    code = "validation_failed"

    def default_message(self) -> str:
        return "input is invalid"


class Unauthorized(_FixedStatus):
    status = 401
    code = "unauthorized"


class Forbidden(_FixedStatus):
    status = 403
    code = "forbidden"


class NotFound(_FixedStatus):
    status = 404
    code = "not_found"


class MethodNotAllowed(_FixedStatus):
    status = 405
    code = "method_not_allowed"

    def __init__(self, allowed: Iterable[str], message: str | None = None) -> None:
        allow = ", ".join(sorted(allowed))
        super().__init__(
            message or f"method not allowed; allowed: {allow}", headers={"Allow": allow}
        )


class RequestTimeout(_FixedStatus):
    status = 408
    code = "request_timeout"


class Conflict(_FixedStatus):
    status = 409
    code = "conflict"


class PayloadTooLarge(_FixedStatus):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(_FixedStatus):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(_FixedStatus):
    status = 429
    code = "rate_limited"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        code: str | None = None,
    ) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(message, code=code, headers=headers)
        self.retry_after = retry_after


class InternalError(_FixedStatus):
    status = 500
    code = "internal_error"

    def default_message(self) -> str:
        return "internal server error"


class DatabaseUnavailable(_FixedStatus):
    status = 503
    code = "database_unavailable"

    def default_message(self) -> str:
        return "the database is unavailable; try again shortly"


class BackendUnavailable(_FixedStatus):
    """A service beside the database (Redis, the object store) did not answer."""

    status = 503
    code = "backend_unavailable"

    def default_message(self) -> str:
        return "a backing service is unavailable; try again shortly"


class ServerBusy(_FixedStatus):
    status = 503
    code = "server_busy"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or "every database connection is busy; try again shortly",
            headers={"Retry-After": "1"},
        )


class ActionTimeout(_FixedStatus):
    status = 504
    code = "timeout"
