"""How many agents share this database, so that each sends at its share of every CRM account's rate limit.

Every connection an agent opens is named `pbx-agent <host:pid>` (PostgreSQL's application_name); the live
agents are the distinct such names in pg_stat_activity, on this database. An agent that dies loses its
connections and PostgreSQL drops its rows, so the count falls by itself: PostgreSQL is the arbiter, there is
no protocol of our own. CLI commands (`pbx-agent redeliver`, ...) name theirs `pbx-agent-cli ...` and do not
count: they do not run outbox workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from agent.store import database

log = logging.getLogger(__name__)

REFRESH_S = 20.0
AGENT_PREFIX = "pbx-agent "
TOOL_PREFIX = "pbx-agent-cli "

# application_name is shown for every session, whoever owns it (only query text, addresses and states are
# hidden from a role that is not a member of the session's role or of pg_read_all_stats)
COUNT_SQL = (
    "SELECT count(DISTINCT application_name) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name LIKE 'pbx-agent %'"
)


def agent_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def agent_name(ident: str | None = None) -> str:
    """The application_name of a running agent's connections."""
    return AGENT_PREFIX + (ident or agent_id())


def tool_name(command: str) -> str:
    """The application_name of a CLI command's connections: not an agent, not counted."""
    return f"{TOOL_PREFIX}{command} {agent_id()}"


def join_hold(agents: int, interval: float) -> float:
    """How long an agent that starts beside others leaves sending to them: until each has counted it (they
    refresh every `interval`, with some slack for their query). Until then they still send at their old,
    larger share, and the newcomer's share would come on top. Nothing waits meanwhile: the outbox is shared.
    An agent alone starts at once."""
    return 1.5 * interval if agents > 1 else 0.0


async def count_agents(pool: database.Pool) -> int:
    """The agents connected to this database now (this one included when it has a connection open)."""
    return int(await pool.fetchval(COUNT_SQL))


class AgentCount:
    """The number of agents sharing the database, refreshed every `interval` seconds from `source`; each
    change goes to the listeners (the rate limiters). A failed refresh keeps the last count."""

    def __init__(self, source: Callable[[], Awaitable[int]], *, interval: float = REFRESH_S) -> None:
        self.source = source
        self.interval = interval
        self.agents = 1
        self._listeners: list[Callable[[int], None]] = []

    def on_change(self, listener: Callable[[int], None]) -> None:
        """`listener(agents)` now and at every change."""
        self._listeners.append(listener)
        listener(self.agents)

    async def refresh(self) -> int:
        agents = max(1, await self.source())
        if agents != self.agents:
            log.info(
                "%d agent(s) share this database: each sends at 1/%d of every CRM account's rate limit", agents, agents
            )
            self.agents = agents
            for listener in self._listeners:
                listener(agents)
        return agents

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception as exc:
                if not database.is_transient(exc):
                    raise
                log.warning("counting the agents on the database failed (%s); keeping %d", exc, self.agents)
