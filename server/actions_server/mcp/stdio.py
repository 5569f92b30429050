"""MCP over stdin and stdout (`actions-server mcp`), for clients that start the server.

One JSON-RPC message per line each way. Stdout carries protocol frames and
nothing else: the command moves file descriptor 1 aside for them before anything
starts and points 1 at stderr, so a stray print, a library's chatter or a child
process (the embedded PostgreSQL) lands on stderr with every log line.

The caller is fixed for the process (`--user`, `--role`, `--org`, `--system`):
there are no headers and no tokens on stdio, so every refusal, a 401 included,
is a tool result. Requests are answered concurrently; `notifications/cancelled`
cancels one (its run rolls back, and nothing is sent for it). A legacy client's
`initialize` sets the revision its later messages speak; a modern client names
it in each message. At end of input, or on SIGTERM/SIGINT, the runs in flight
get `server.shutdown_grace_seconds` to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import sys
import threading
from typing import Any, BinaryIO

from ..config import Config
from ..guards import Caller
from ..ids import new_trace_id
from ..jsonutil import InputError, JSONDecodeError, dumps, parse_input
from ..registry import Registry
from ..runtime import open_runtime
from .protocol import (
    HANDSHAKE_VERSIONS,
    INTERNAL_ERROR,
    PARSE_ERROR,
    Message,
    RequestId,
    RpcError,
    negotiated,
    parse_message,
    protocol_of,
    response,
)
from .server import McpServer
from .settings import McpSettings

log = logging.getLogger("actions_server.mcp")


def claim_stdout() -> BinaryIO:
    """Stdout for protocol frames only: a duplicate of fd 1, then fd 1 (and Python's
    sys.stdout) pointed at stderr for everything else."""
    sys.stdout.flush()
    frames = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return frames


class Lines:
    """Stdin lines and stdout frames moved by two threads, so that neither a pipe
    nor a file nor a terminal ever blocks the event loop."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self.loop = asyncio.get_running_loop()
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.outgoing: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.stdin, self.stdout = stdin, stdout
        threading.Thread(target=self._read, name="mcp-stdin", daemon=True).start()
        self.writer = threading.Thread(target=self._write, name="mcp-stdout", daemon=True)
        self.writer.start()

    def _read(self) -> None:
        try:
            for line in iter(self.stdin.readline, b""):
                self.loop.call_soon_threadsafe(self.incoming.put_nowait, line)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self.loop.call_soon_threadsafe(self.incoming.put_nowait, None)

    def _write(self) -> None:
        while (frame := self.outgoing.get()) is not None:
            try:
                self.stdout.write(frame)
                self.stdout.flush()
            except (BrokenPipeError, ValueError):
                return  # the client went away

    def send(self, message: dict[str, Any]) -> None:
        self.outgoing.put(dumps(message) + b"\n")

    async def close(self) -> None:
        self.outgoing.put(None)
        await asyncio.to_thread(self.writer.join, 5)


class StdioSession:
    """The messages of one client, answered for one caller."""

    def __init__(self, server: McpServer, caller: Caller, lines: Lines) -> None:
        self.server = server
        self.caller = caller
        self.lines = lines
        self.version = HANDSHAKE_VERSIONS[0]  # a legacy message's, once initialize agreed
        self.running: dict[RequestId, asyncio.Task[None]] = {}

    def receive(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            data = parse_input(line)
        except (JSONDecodeError, InputError) as exc:
            self.lines.send(RpcError(PARSE_ERROR, f"not a JSON message: {exc}").to_json(None))
            return
        try:
            message = parse_message(data)
        except RpcError as exc:
            raw_id = data.get("id") if isinstance(data, dict) else None
            self.lines.send(exc.to_json(raw_id if isinstance(raw_id, str | int) else None))
            return
        if message.method is None:
            return  # a response to nothing this server asked
        if message.id is None:
            self._notified(message)
            return
        task = asyncio.create_task(self._answer(message))
        request_id = message.id
        self.running[request_id] = task
        task.add_done_callback(lambda _: self.running.pop(request_id, None))

    def _notified(self, message: Message) -> None:
        if message.method == "notifications/cancelled":
            request_id = message.params.get("requestId")
            task = self.running.get(request_id) if isinstance(request_id, str | int) else None
            if task is not None:
                task.cancel()

    async def _answer(self, message: Message) -> None:
        assert message.id is not None
        trace_id = new_trace_id()
        try:
            if message.method == "initialize":
                self.version = negotiated(message.params.get("protocolVersion"))
                version = self.version
            else:
                version = protocol_of(message, None, unnamed=self.version)
            result = await self.server.answer(message, version, self.caller, trace_id, http=False)
        except RpcError as exc:
            self.lines.send(exc.to_json(message.id))
        except Exception:
            log.error("MCP request failed", exc_info=True, extra={"trace_id": trace_id})
            error = RpcError(
                INTERNAL_ERROR, f"internal error; see the server log for trace id {trace_id}"
            )
            self.lines.send(error.to_json(message.id))
        else:
            self.lines.send(response(message.id, result))

    async def finish(self, grace_seconds: float) -> None:
        """Let the runs in flight end within `grace_seconds`, then cancel the rest."""
        tasks = list(self.running.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


async def serve_stdio(
    config: Config,
    registry: Registry,
    caller: Caller,
    *,
    dsn: str,
    stdin: BinaryIO,
    stdout: BinaryIO,
    migrate_app: bool = True,
) -> None:
    """Answer MCP on `stdin`/`stdout` as `caller` until the input ends or a signal."""
    async with open_runtime(config, registry, dsn=dsn, migrate_app=migrate_app) as runtime:
        server = McpServer(runtime.executor, registry, McpSettings.from_config(config))
        lines = Lines(stdin, stdout)
        session = StdioSession(server, caller, lines)
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, _set, stop)
        log.info("MCP on stdio: %d tools", len(server.catalogue.tools))
        try:
            while True:
                line_task = asyncio.ensure_future(lines.incoming.get())
                await asyncio.wait({line_task, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not line_task.done():
                    line_task.cancel()
                    break
                line = line_task.result()
                if line is None:
                    break
                session.receive(line)
            await session.finish(config.server.shutdown_grace_seconds)
        finally:
            await lines.close()


def _set(stop: asyncio.Future[None]) -> None:
    if not stop.done():
        stop.set_result(None)
