"""Exactly one agent consumes each PBX's AMI stream: a PostgreSQL advisory lock per PBX.

All of an agent's PBX locks live on one dedicated connection (session-level locks), so when the agent
dies its connection drops, PostgreSQL releases every lock it held, and a standby agent takes over at its
next try (every `interval` seconds). PostgreSQL is the arbiter; there is no protocol of our own. When the
database itself goes away, an agent goes on consuming what it held until it can ask again (`run`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from agent.store import database
from agent.store.peers import agent_name

log = logging.getLogger(__name__)

LOCK_CLASS = 0x70627861  # "pbxa": the first key of the two-int advisory lock; the second is hashtext(name)
TRY_INTERVAL_S = 2.0


class PbxLocks:
    def __init__(
        self,
        dsn: str,
        on_acquired: Callable[[str], None],
        on_released: Callable[[str], Awaitable[None]],
        on_standby: Callable[[str, str | None], None],
        *,
        interval: float = TRY_INTERVAL_S,
        name: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.name = name or agent_name()  # application_name, as the agent's pool's (agent.store.peers)
        self.on_acquired = on_acquired
        self.on_released = on_released
        self.on_standby = on_standby
        self.interval = interval
        self.wanted: set[str] = set()
        self.held: set[str] = set()
        self._conn: asyncpg.Connection[Any] | None = None
        self._changed = asyncio.Event()

    def want(self, name: str) -> None:
        self.wanted.add(name)
        self._changed.set()

    async def release(self, name: str) -> None:
        self.wanted.discard(name)
        if name in self.held:
            self.held.discard(name)
            await self.on_released(name)
            conn = self._conn
            if conn is not None and not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CLASS, name)

    async def run(self) -> None:
        """Hold the connection and try for the wanted locks, until cancelled.

        A lost connection (the database restarting, the network) does not stop the PBXs this agent consumes:
        nobody can take their locks from a database that is away, and the calls of those seconds must not be
        lost (they wait in the planner's journal). Once connected again, each is locked again; one that
        another agent took meanwhile is released here (that agent consumes it now; a call both saw is
        stored once, by its keys)."""
        warned = False
        try:
            while True:
                try:
                    conn = await asyncpg.connect(self.dsn, server_settings=database.session_settings(self.name))
                except Exception as exc:
                    if not database.is_transient(exc):
                        raise
                    if not warned:
                        log.warning(
                            "PBX locks: database unreachable (%s); %s consumed by this agent until it is back",
                            exc,
                            ", ".join(sorted(self.held)) or "no PBX",
                        )
                        warned = True
                    await asyncio.sleep(self.interval)
                    continue
                warned = False
                try:
                    await self._hold(conn)
                finally:
                    self._conn = None
                    if not conn.is_closed():
                        conn.terminate()
        finally:
            held, self.held = sorted(self.held), set()
            for name in held:
                await self.on_released(name)

    async def _hold(self, conn: asyncpg.Connection[Any]) -> None:
        """Until `conn` is lost: lock again what this agent consumes, then keep trying for the rest."""
        self._conn = conn
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await self._relock(conn)
            while not lost.is_set():
                await self._try(conn)
                self._changed.clear()
                waits = {asyncio.ensure_future(lost.wait()), asyncio.ensure_future(self._changed.wait())}
                try:
                    await asyncio.wait(waits, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
        except Exception as exc:
            if not database.is_transient(exc):
                raise
        log.warning("PBX locks: the connection to the database was lost; connecting again")

    async def _relock(self, conn: asyncpg.Connection[Any]) -> None:
        """After a reconnect: the PBXs still consumed here are locked again, or given up to their new holder."""
        for name in sorted(self.held):
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS, name):
                continue
            self.held.discard(name)
            log.warning("PBX %s: another agent took its lock while the database was away; it consumes it now", name)
            await self.on_released(name)
            self.on_standby(name, await self._holder(conn, name))

    async def _try(self, conn: asyncpg.Connection[Any]) -> None:
        for name in sorted(self.wanted - self.held):
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS, name):
                self.held.add(name)
                log.info("PBX %s: this agent (%s) consumes its AMI stream", name, self.name)
                self.on_acquired(name)
            else:
                self.on_standby(name, await self._holder(conn, name))

    async def _holder(self, conn: asyncpg.Connection[Any], name: str) -> str | None:
        holder: str | None = await conn.fetchval(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.classid = $1::bigint::oid"
            " AND l.objid = (hashtext($2)::bigint & 4294967295)::oid AND l.granted",
            LOCK_CLASS,
            name,
        )
        return holder
