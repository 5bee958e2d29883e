"""Waiting in tests for what nothing signals (rows in PostgreSQL, another process, a metric): one bounded poll.

Where the code under test offers an event (`AmiLink.connected`, the fake AMI's `wait_for`), wait on that
instead; this is for the rest. Never a fixed sleep: the poll ends as soon as the condition holds.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Awaitable, Callable

Condition = Callable[[], bool | Awaitable[bool]]


async def until(condition: Condition, *, within: float = 10.0, every: float = 0.02, what: str = "") -> None:
    """Check `condition` (sync or async) every `every` seconds until it holds; fail after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            for _ in itertools.count():
                held = condition()
                if inspect.isawaitable(held):
                    held = await held
                if held:
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"not reached within {within} s: {what or condition}") from None
