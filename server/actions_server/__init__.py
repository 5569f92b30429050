"""actions-server: a declarative, YAML-driven action server.

Handlers import what they need from here: the errors they may raise and the
types of `ctx`.
"""

from .auth import AuthContext, Principal
from .context import Context, RunLogger
from .db.query import QueryError
from .db.session import DbSession, TableQuery
from .errors import (
    ActionError,
    ActionsServerError,
    BadRequest,
    Conflict,
    ErrorDetail,
    Forbidden,
    LoadError,
    NotFound,
    Problem,
    TooManyRequests,
    Unauthorized,
)
from .http.uploads import UploadedFile
from .request import HttpRequest
from .response import Cookie, Response
from .scope import RunInfo

__all__ = [
    "ActionError",
    "ActionsServerError",
    "AuthContext",
    "BadRequest",
    "Conflict",
    "Context",
    "Cookie",
    "DbSession",
    "ErrorDetail",
    "Forbidden",
    "HttpRequest",
    "LoadError",
    "NotFound",
    "Principal",
    "Problem",
    "QueryError",
    "Response",
    "RunInfo",
    "RunLogger",
    "TableQuery",
    "TooManyRequests",
    "Unauthorized",
    "UploadedFile",
]
