"""Shared fixtures: one real PostgreSQL cluster per test session (per xdist worker), a database per test."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from agent.app import Agent
from agent.config.checks import Address
from agent.config.sections import AgentSection, AgiSection, Config, DatabaseSection, HttpSection
from agent.life import logs
from agent.store import database
from agent.store.embedded import EmbeddedPostgres
from tests import old_platform

pytest_plugins = ["tests.browser"]  # the admin pages' browser fixtures: chromium, page

TEMPLATE_DB = "pbx_template"


@pytest.fixture(autouse=True)
def logging_left_as_found() -> Iterator[None]:
    """A command run in-process (`migrate` sets up the agent's logging: its own handler on the stdout of the
    moment, the root logger at INFO) must not hand that to the tests after it in the same worker: the handler
    writes to a capture stream closed since ("I/O operation on closed file"), and INFO lines pile up in every
    later test's report (the 100k-call tracker test's 100,000 "call ended" lines took it past its timeout)."""
    root = logging.getLogger()
    handlers, level = set(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in logs.NOISY}
    yield
    for added in [h for h in root.handlers if h not in handlers and type(h) is logging.StreamHandler]:
        root.removeHandler(added)
    root.setLevel(level)
    for name, was in levels.items():
        logging.getLogger(name).setLevel(was)


def reachable_tmpdir(prefix: str) -> Path:
    """A temp dir the unprivileged `postgres` user can pass through (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedPostgres]:
    root = reachable_tmpdir("pbx-agent-test-pg-")
    cluster = EmbeddedPostgres(root / "pg")

    async def start() -> None:
        await cluster.start()
        conn = await asyncpg.connect(cluster.dsn_for("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        pool = await database.create_pool(cluster.dsn_for(TEMPLATE_DB), 2, name="pbx-agent-test")
        try:
            await database.migrate(pool)
        finally:
            await pool.close()

    asyncio.run(start())
    yield cluster
    asyncio.run(cluster.stop())
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def db_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_cluster.dsn_for("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    finally:
        await admin.close()
    yield pg_cluster.dsn_for(name)
    admin = await asyncpg.connect(pg_cluster.dsn_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[database.Pool]:
    p = await database.create_pool(db_dsn, 4, name="pbx-agent-test")
    yield p
    await p.close()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def make(dsn: str = "", **agent_fields: object) -> Config:
        state = tmp_path / "state"
        return Config(
            path=tmp_path / "agent.toml",
            # a test's public_url is loopback: modules are registered all the same (tests/test_publishing.py checks
            # the refusal)
            agent=replace(AgentSection(state_dir=state, allow_private_public_url=True), **agent_fields),  # type: ignore[arg-type]
            database=DatabaseSection(dsn=dsn, pool_size=4),
            http=HttpSection(listen=Address("127.0.0.1", 0)),
            agi=AgiSection(listen=Address("127.0.0.1", 0)),
            pbx=(),
        )

    return make


@pytest.fixture
async def running_agent(db_dsn: str, make_config: Callable[..., Config]) -> AsyncIterator[Agent]:
    """The whole agent in this process, on a test database, HTTP on a free port."""
    agent = Agent(make_config(db_dsn))
    task = asyncio.create_task(agent.run())
    ready = asyncio.create_task(agent.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()
    assert ready in done, "agent did not become ready"
    yield agent
    agent.stopping.set()
    await asyncio.wait_for(task, timeout=15)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def agent_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_SOCKET", "WATCHDOG", "PBX_AGENT"))}
    return env


def dbname(dsn: str) -> str:
    return dsn.split("?", 1)[0].rsplit("/", 1)[-1]


@pytest.fixture
def agent_dir() -> Iterator[Path]:
    """A directory for an agent process's config and state; its embedded server never outlives the test."""
    path = reachable_tmpdir("pbx-agent-life-")
    yield path
    data = path / "state" / "pg" / "data"
    if (data / "postmaster.pid").exists():  # never leave a server behind, whatever the test did
        asyncio.run(EmbeddedPostgres(path / "state" / "pg").stop())
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def old_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """A database built like the old platform's, not migrated."""
    name = f"old_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_cluster.dsn_for("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg_cluster.dsn_for(name))
    try:
        await old_platform.build(conn)
    finally:
        await conn.close()
    yield pg_cluster.dsn_for(name)
    admin = await asyncpg.connect(pg_cluster.dsn_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def old_migrated(old_dsn: str) -> str:
    """The old platform's database after `pbx-agent migrate` (the agent's tables added beside the platform's)."""
    pool = await database.create_pool(old_dsn, 2, name="pbx-agent-test")
    try:
        await database.migrate(pool)
    finally:
        await pool.close()
    return old_dsn
