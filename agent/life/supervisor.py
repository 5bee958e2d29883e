"""Owns the agent's long-running tasks: a task that crashes is logged and restarted with backoff."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0


class Supervisor:
    def __init__(self, on_restart: Callable[[str], None] | None = None, backoff_base: float = 1.0) -> None:
        """`on_restart(name)` hears every restart of a crashed component (the agent counts them in /metrics)."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_restart = on_restart
        self._backoff_base = backoff_base
        self.restarts: dict[str, int] = {}

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """The end of `async with supervisor`: every component is stopped (`stop()`)."""
        await self.stop()

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` until stop(); if it raises, log the traceback and run it again after a backoff."""
        if name in self._tasks:
            raise ValueError(f"component {name!r} is already running")
        self._tasks[name] = asyncio.create_task(self._keep_running(name, run), name=name)

    async def stop_one(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def stop(self, grace: float = 5.0) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                log.error("component %s did not stop within %.0f s", task.get_name(), grace)

    async def _keep_running(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await run()
                log.warning("component %s returned; starting it again", name)
            except asyncio.CancelledError:
                raise
            except Exception:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # it failed while being cancelled: stopping wins, no restart
                log.exception("component %s crashed", name)
            if time.monotonic() - started > HEALTHY_AFTER_S:
                failures = 0
            failures += 1
            self.restarts[name] = self.restarts.get(name, 0) + 1
            if self._on_restart is not None:
                self._on_restart(name)
            delay = min(BACKOFF_MAX_S, self._backoff_base * 2 ** (failures - 1))
            log.info("restarting component %s in %.1f s", name, delay)
            await asyncio.sleep(delay)
