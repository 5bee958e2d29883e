"""The PostgreSQL the agent uses: the embedded cluster (no DSN) or an external server, one code path."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from agent.life.statelock import StateDirBusy, StateLock
from agent.store import migrate as migrations
from agent.store.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Pool = asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@dataclass(frozen=True, slots=True)
class Server:
    """The database the agent runs on: its DSN, and the embedded cluster when it is one."""

    dsn: str
    embedded: EmbeddedPostgres | None


@asynccontextmanager
async def for_agent(dsn: str, state_dir: Path) -> AsyncIterator[Server]:
    """The agent's database. With an empty `dsn` it is the embedded cluster, which belongs to the agent (the
    holder of the state directory's lock): started when it is not running, stopped when the agent stops,
    whoever started it."""
    if dsn:
        yield Server(dsn, None)
        return
    cluster = EmbeddedPostgres(state_dir / "pg")
    await cluster.start()
    try:
        yield Server(cluster.dsn, cluster)
    finally:
        await cluster.stop()


@asynccontextmanager
async def embedded_or_external(dsn: str, state_dir: Path) -> AsyncIterator[str]:
    """A command line tool's database (migrate, redeliver, backfill): with an empty `dsn`, the embedded cluster.

    A tool that finds the cluster running (a live agent's) uses it and leaves it running; one that started it
    stops it only if no agent took the state directory meanwhile, holding the lock while it stops so that no
    agent starts on a stopping cluster.
    """
    if dsn:
        yield dsn
        return
    cluster = EmbeddedPostgres(state_dir / "pg")
    started = await cluster.start()
    try:
        yield cluster.dsn
    finally:
        if started:
            await _stop_unless_an_agent_runs(cluster, state_dir)


async def _stop_unless_an_agent_runs(cluster: EmbeddedPostgres, state_dir: Path) -> None:
    lock = StateLock(state_dir)
    try:
        lock.acquire()
    except StateDirBusy:
        log.info("an agent started on %s meanwhile: the embedded PostgreSQL stays up for it", state_dir)
        return
    try:
        await cluster.stop()
    finally:
        lock.release()


# Over TCP, the server notices a peer that vanished without closing (power cut, network gone) in about
# idle + interval x count = 25 s instead of the system's hours: its advisory locks (a PBX's AMI stream) pass
# to a standby and it stops counting as an agent sharing the rate limits. Ignored on Unix sockets.
KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


def session_settings(name: str) -> dict[str, str]:
    """Every agent connection's settings; `name` is its application_name (`agent.store.peers` counts agents by it)."""
    return {"application_name": name, **KEEPALIVES}


async def create_pool(dsn: str, size: int = 10, *, name: str) -> Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        init=_init_connection,
        command_timeout=30,
        server_settings=session_settings(name),
    )
    assert pool is not None
    return pool


async def migrate(pool: Pool, report: migrations.Report | None = None) -> list[str]:
    async with pool.acquire() as conn:
        return await migrations.apply(conn, report)


async def probe(pool: Pool) -> dict[str, Any]:
    """For /health: one round trip to the server."""
    async with pool.acquire(timeout=1.5) as conn:
        await conn.fetchval("SELECT 1")
    return {"pool_size": pool.get_size(), "pool_idle": pool.get_idle_size()}


def is_transient(exc: BaseException) -> bool:
    """A failure that a retry can cure: the server away, restarting, or the connection lost."""
    # InternalClientError: a connection left mid-operation when its server died ("another operation is in
    # progress"); the pool closes it, and the retry gets a new one
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state.startswith(("08", "57", "53"))  # connection, operator intervention, resources
    return False
