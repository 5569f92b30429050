"""JSON encoding for responses, CLI output and validation of database values, and
the one set of limits every JSON input meets at the door.

orjson writes UUID, datetime, date and time natively; Decimal is written as the
exact number it holds (a JSON number, not a float approximation), sets as lists.

Input limits (`parse_input`), one for the whole pipeline: a document nested
deeper than `MAX_DEPTH` is refused, because orjson cannot encode more than 254
levels (an echoed input would become a 500) and nothing real nests that deep;
an integer beyond 64 bits is refused, because orjson would read it as a float
and silently change it (2^64 → 1.8446744073709552e+19).
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from decimal import Decimal
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError

MAX_DEPTH = 128  # nesting levels of objects and arrays in any input
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # what orjson reads exactly
# A run of 19 digits or more may be an integer orjson cannot hold (it may also
# sit in a string or a fraction: then the exact parse below finds nothing).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


class InputError(ValueError):
    """JSON input beyond the limits every input meets; the message says which."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value)) if value.is_finite() else None
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def dumps_for_db(value: Any) -> bytes:
    """JSON for a jsonb column: as `dumps`, and non-string keys become strings, as the
    standard library (psycopg's default) makes them."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def dumps_pretty(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=orjson.OPT_INDENT_2).decode()


loads = orjson.loads


def storable_text(text: str) -> str:
    """`text` as PostgreSQL can store it (in text and in jsonb): NUL becomes U+FFFD
    and a lone surrogate '?'. Cheap when there is nothing to replace."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def parse_input(body: bytes) -> Any:
    """`body` parsed as JSON input: JSONDecodeError when it is not JSON, InputError
    when it is deeper than MAX_DEPTH or holds an integer beyond 64 bits."""
    data = loads(body)
    # Cheap tests in C first: without that many brackets the document cannot be
    # that deep, and without a long run of digits no integer can be that large.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        check_depth(data)
    if _LONG_DIGITS.search(body):
        _check_integers(body)
    return data


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Raise InputError when `value` nests objects and arrays deeper than `limit`.

    Iterative: a hostile document must not reach Python's recursion limit here.
    """
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    raise InputError(f"the JSON is nested deeper than {limit} levels")
                stack.append((child, depth + 1))


def _check_integers(body: bytes) -> None:
    def exact(text: str) -> int:
        number = int(text)
        if not INT_MIN <= number <= INT_MAX:
            raise InputError(
                f"the integer {text[:24]}{'…' if len(text) > 24 else ''} is beyond 64 bits; "
                "send it as a string"
            )
        return number

    json.loads(body, parse_int=exact)
