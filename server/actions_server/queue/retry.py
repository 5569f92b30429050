"""When a failed job runs again: pure functions of the attempt and the policy.

Exponential backoff uses full jitter (a uniform draw between 0 and the capped
exponential delay), which spreads retries of jobs that failed together instead
of sending them back in a thundering herd.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..manifests.model import RetryPolicy

Draw = Callable[[float, float], float]


def retry_delay(policy: RetryPolicy, attempt: int, draw: Draw = random.uniform) -> float:
    """Seconds to wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed."""
    if policy.backoff == "fixed":
        return min(policy.base_seconds, policy.max_seconds)
    ceiling = min(policy.max_seconds, policy.base_seconds * 2 ** min(62, max(0, attempt - 1)))
    return draw(0.0, ceiling)


def gives_up(attempt: int, max_attempts: int) -> bool:
    """Whether attempt `attempt` was the last one allowed."""
    return attempt >= max_attempts
