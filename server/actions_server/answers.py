"""What a run answers: its output, the JSON a client receives, and, for HTTP, the
handler's `Response`, the cookies `ctx.auth` set, or a kept answer replayed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import receipts
from .errors import InternalError
from .jsonutil import dumps
from .receipts import ReceiptKey, Stored
from .response import Cookie, Response

if TYPE_CHECKING:
    from .context import Context


class Result:
    """What a run produced: the output (a Response's body: other triggers see only
    that), the JSON the client receives, whether a job's completion was committed
    with it, the handler's Response if it returned one, the cookies `ctx.auth` set,
    and, for a retry with a receipt, the kept answer instead of all of these."""

    __slots__ = ("completed", "cookies", "json", "output", "replayed", "response")

    def __init__(
        self,
        output: Any,
        json: bytes,
        completed: bool = False,
        response: Response | None = None,
        cookies: list[Cookie] | None = None,
        replayed: Stored | None = None,
    ) -> None:
        self.output = output
        self.json = json
        self.completed = completed
        self.response = response
        self.cookies = cookies or ()
        self.replayed = replayed


REPLAYED = b'{"replayed":true}'  # what the run record says of a retry


def raw_note(response: Response) -> bytes:
    """What the run record keeps of a body sent as bytes or streamed."""
    body = response.body
    size = len(body) if isinstance(body, bytes | bytearray | memoryview) else None
    return dumps({"raw_body": {"bytes": size, "content_type": response.content_type}})


def answer_status(response: Response | None, output: Any, status: int) -> int:
    """The HTTP status of a run's answer: the Response's, else the trigger's, with
    an empty body turning a 200 into 204."""
    if response is not None and response.status is not None:
        return response.status
    if output is None and not (response is not None and response.is_raw):
        return 204 if status == 200 else status
    return status


async def keep(
    ctx: Context,
    receipt: ReceiptKey,
    response: Response | None,
    output: Any,
    body: bytes,
    status: int,
) -> None:
    """Keep the answer under `receipt`, in the run's transaction."""
    if response is not None and response.is_stream:
        return  # a stream cannot be sent twice; its retry runs again (docs/http.md)
    headers = dict(response.headers) if response is not None else {}
    content: bytes | None
    if response is not None and response.is_raw:
        content = bytes(response.body)
        headers.setdefault("Content-Type", response.content_type or "application/octet-stream")
    else:
        content = None if output is None else body
        if content is not None:
            headers.setdefault("Content-Type", "application/json")
    final = answer_status(response, output, status)
    await receipts.keep(await ctx.db.connection(), receipt, final, headers, content)


def encode(output: Any) -> bytes:
    try:
        return dumps(output)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InternalError(
            f"the action returned a value JSON cannot hold: {exc}", code="invalid_output"
        ) from exc
