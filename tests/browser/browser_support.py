"""Where Chromium is, where screenshots go, and how to wait for Selenium."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

from support.apps import REPO

ARTIFACTS = REPO / ".ci" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
T = TypeVar("T")


async def blocking(call: Callable[..., T], *args: Any) -> T:
    """Selenium blocks; the server under test runs on this event loop."""
    return await asyncio.to_thread(call, *args)
