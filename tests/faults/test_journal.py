"""Ended calls while PostgreSQL is away: on disk within a second, kept across a stop, stored once when it is back.

A real cluster of the test's own (stopped and started again here), the real planner and outbox."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent.delivery.dispatch import CrmDispatcher
from agent.delivery.integrations import Integrations
from agent.delivery.journal import Journal, decode, encode
from agent.delivery.outbox import Outbox
from agent.delivery.planner import Planner
from agent.repair.replay import read_timing, replay
from agent.store import database
from agent.store.embedded import EmbeddedPostgres
from agent.store.secretbox import SecretBox
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.tracker import CallTracker
from connectors.registry import connectors, secret_fields
from tests import recordings
from tests.conftest import reachable_tmpdir
from tests.waiting import until


def ended_calls(n: int) -> list[CallEvent]:
    tracker = CallTracker(ChannelRules(), "100", "office")
    events = replay(recordings.burst(n), None, tracker)
    ended = [e for e in events if e.event == "ended"]
    assert len(ended) == n
    return ended


def test_every_event_of_every_recording_survives_the_journal_unchanged() -> None:
    directory = recordings.recordings_dir()
    seen = 0
    for ami in sorted(directory.glob("*.ami")):
        timing_file = ami.with_suffix(".timing")
        timing = read_timing(timing_file.read_text()) if timing_file.exists() else None
        for event in replay(ami.read_bytes(), timing, CallTracker(ChannelRules(), "100", "office")):
            assert decode(encode(event)) == event
            seen += 1
    assert seen > 60  # every kind of event, from every recording


@pytest.fixture
async def own_cluster() -> AsyncIterator[EmbeddedPostgres]:
    root = reachable_tmpdir("pbx-agent-journal-")
    cluster = EmbeddedPostgres(root / "pg")
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


async def calls_stored(dsn: str) -> int:
    pool = await database.create_pool(dsn, 1, name="test-count")
    try:
        return int(await pool.fetchval("SELECT count(*) FROM calls"))
    finally:
        await pool.close()


async def test_calls_ended_while_the_database_is_away_reach_it_once(
    own_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    pool = await database.create_pool(own_cluster.dsn, 2, name="test")
    await database.migrate(pool)
    http = httpx.AsyncClient()
    integrations = Integrations(pool, SecretBox(b"k" * 32, secret_fields()), connectors(), http)
    outbox = Outbox(pool, CrmDispatcher(integrations))
    journal = Journal(tmp_path)
    first_ten, next_ten = ended_calls(20)[:10], ended_calls(20)[10:]
    planner = Planner(integrations, outbox, journal=journal)
    task = asyncio.create_task(planner.run())
    try:
        for event in first_ten:
            planner.put(event)

        async def ten() -> bool:
            return await calls_stored(own_cluster.dsn) == 10

        await until(ten, within=10)
        await own_cluster.stop()
        for event in next_ten:
            planner.put(event)
        await until(lambda: len(journal.pending()) == 10, within=5)  # on disk while the database is away
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        planner.close()  # the agent stops: nothing more was queued, nothing is lost
    assert {e.call_id for e in journal.pending()} == {e.call_id for e in next_ten}

    await own_cluster.start()  # the next start of the agent, on the same pool
    again = Planner(integrations, outbox, journal=journal)
    task = asyncio.create_task(again.run())
    try:

        async def twenty() -> bool:
            return await calls_stored(own_cluster.dsn) == 20

        await until(twenty, within=20)
        await until(lambda: journal.pending() == [], within=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await http.aclose()
        await pool.close()
    assert not journal.rejected_path.exists()


async def test_stop_keeps_what_is_queued(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    planner = Planner(None, None, journal=journal)  # type: ignore[arg-type]  # never runs: only the stop
    queued = ended_calls(3)
    for event in queued:
        planner.put(event)
    planner.close()
    assert journal.pending() == queued
