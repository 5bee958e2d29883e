"""The state directory (held by a lock, keeping the state secret) and the database the agent runs on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from agent.config.sections import Config
from agent.life.statelock import StateDirBusy, StateLock
from agent.life.supervisor import Supervisor
from agent.parts.errors import ConflictError, StartupError
from agent.store import database
from agent.store.keeper import EmbeddedKeeper
from agent.store.secretbox import load_or_create_secret
from agent.web.health import HealthRegistry

POOL_CLOSE_S = 3.0


@asynccontextmanager
async def state_part(cfg: Config) -> AsyncIterator[bytes]:
    """Hold `[agent] state_dir` (another agent on it: ConflictError); yields the state secret."""
    lock = StateLock(cfg.agent.state_dir)
    try:
        lock.acquire()
    except StateDirBusy as exc:
        raise ConflictError(str(exc)) from None
    try:
        yield await asyncio.to_thread(load_or_create_secret, cfg.agent.state_dir)
    finally:
        lock.release()


@dataclass(frozen=True)
class Database:
    dsn: str  # the PBX locks open connections of their own
    pool: database.Pool


@asynccontextmanager
async def database_part(
    cfg: Config, name: str, health: HealthRegistry, on_restart: Callable[[str], None] | None = None
) -> AsyncIterator[Database]:
    """The embedded cluster or `[database] dsn`, a pool named `name` (agent.store.peers), migrated, probed.
    An embedded cluster is kept alive (agent.store.keeper) for as long as the part is up."""
    async with database.for_agent(cfg.database.dsn, cfg.agent.state_dir) as server, Supervisor(on_restart) as keep:
        try:
            pool = await database.create_pool(server.dsn, cfg.database.pool_size, name=name)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StartupError(f"cannot connect to the database: {exc}") from exc
        try:
            await database.migrate(pool)
            health.register_probe("database", lambda: database.probe(pool), critical=True)
            if server.embedded is not None:
                keeper = EmbeddedKeeper(server.embedded, health.register("embedded_database", critical=False))
                keep.start("embedded-database", keeper.run)
            yield Database(server.dsn, pool)
        finally:
            await keep.stop()
            await _close(pool)


async def _close(pool: database.Pool) -> None:
    try:
        async with asyncio.timeout(POOL_CLOSE_S):
            await pool.close()
    except TimeoutError:
        pool.terminate()
