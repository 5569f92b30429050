"""`actions_server.__all__` is sorted and names exactly what the package exports (as httpx does)."""

from __future__ import annotations

import inspect

import actions_server


def test_all_is_sorted_and_complete() -> None:
    exported = actions_server.__all__
    assert exported == sorted(exported)
    public = {
        name
        for name, value in vars(actions_server).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(exported)


def test_handler_errors_are_importable_with_their_status() -> None:
    from actions_server import (
        ActionError,
        BadRequest,
        Conflict,
        Forbidden,
        NotFound,
        TooManyRequests,
        Unauthorized,
    )

    assert [
        e().status
        for e in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests)
    ] == [
        400,
        401,
        403,
        404,
        409,
        429,
    ]
    error = ActionError(402, "payment_required", "pay first")
    assert (error.status, error.code, error.message) == (402, "payment_required", "pay first")
