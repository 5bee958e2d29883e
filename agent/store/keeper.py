"""The agent keeps its embedded PostgreSQL alive: a server that died (killed, OOM, crashed) is started again.

Checked every second from the cluster's postmaster.pid and /proc (no subprocess); a start that fails is tried
again with a growing pause. Meanwhile /health says so (`embedded_database`: down, `state: restarting`, the attempts and
the last error), the `database` probe fails, and the planner keeps ended calls in its journal; the pool's
connections are replaced as they are next used.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agent.store.embedded import EmbeddedPgError, EmbeddedPostgres
from agent.web.health import ComponentHealth

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
RETRY_MAX_S = 30.0


class EmbeddedKeeper:
    def __init__(self, cluster: EmbeddedPostgres, health: ComponentHealth, *, every: float = CHECK_EVERY_S) -> None:
        self.cluster = cluster
        self.health = health
        self.every = every
        self.restarts = 0
        health.set("ok", state="running", restarts=0)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            if not await asyncio.to_thread(self.cluster.server_alive):
                await self._restart()

    async def _restart(self) -> None:
        began, attempts, pause = time.monotonic(), 0, self.every
        log.error("embedded PostgreSQL in %s is not running; starting it again", self.cluster.data_dir)
        while True:
            attempts += 1
            self.health.set("down", state="restarting", attempts=attempts)
            try:
                await self.cluster.start()
            except (EmbeddedPgError, OSError) as exc:  # e.g. the dead server's backends still hold its memory
                self.health.set("down", last_error=str(exc))
                log.warning("embedded PostgreSQL did not start (attempt %d): %s", attempts, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                continue
            self.restarts += 1
            self.health.details.pop("last_error", None)
            self.health.set("ok", state="running", restarts=self.restarts, attempts=0)
            log.info("embedded PostgreSQL running again after %.1f s", time.monotonic() - began)
            return
