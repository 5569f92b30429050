"""The wall clock as a value: what code that decides by the time of day is given.

A `Clock` is any callable of no arguments that returns seconds since the epoch;
`time.time` is the one every process uses. Code that makes a decision from the
time (a rate-limit window) takes a Clock when it is built rather than calling
`time.time` itself, so a test can hold time still or move it on instead of
sleeping. Calling it costs what calling `time.time` costs: nothing is wrapped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

SYSTEM_CLOCK: Clock = time.time
