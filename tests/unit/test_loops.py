"""Background loops stop when asked, even when a library swallowed the stop request.

The defect: psycopg, cancelled mid-statement, may raise an error of its own in
place of the CancelledError; a loop catching `Exception` then slept to its next
round and never ended, and a shutdown (or a test's teardown) awaiting it hung.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg

from actions_server import loops
from actions_server.auth.revocation import RevocationList


@contextlib.asynccontextmanager
async def connection_that_turns_cancel_into_an_error() -> AsyncIterator[object]:
    """What psycopg may do when cancelled while it waits for the server."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise psycopg.OperationalError("connection lost while cancelling") from None
    yield object()  # never reached


async def test_the_revocation_refresher_stops_when_its_cancel_is_replaced_by_an_error() -> None:
    task = RevocationList().start(connection_that_turns_cancel_into_an_error)
    await asyncio.sleep(0.05)  # inside its first round, waiting for the "server"
    await asyncio.wait_for(loops.stop(task), timeout=5)
    assert task.cancelled()


async def test_pause_ends_a_round_whose_stop_request_was_swallowed() -> None:
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            with contextlib.suppress(Exception):
                async with connection_that_turns_cancel_into_an_error():
                    pass
            await loops.pause(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled()
    assert rounds == 1  # it did not go round again after the stop request


async def test_stop_cancels_again_a_task_that_ignored_the_first_cancel() -> None:
    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)  # a plain sleep: only a second cancel ends it

    tasks = [asyncio.create_task(stubborn()) for _ in range(2)]
    await asyncio.sleep(0.01)
    await asyncio.wait_for(loops.stop(iter(tasks)), timeout=5 * loops.STOP_RETRY_SECONDS)
    assert all(task.cancelled() for task in tasks)


async def test_pause_sleeps_when_no_stop_was_asked() -> None:
    started = asyncio.get_running_loop().time()
    await loops.pause(0.02)
    assert asyncio.get_running_loop().time() - started >= 0.02
