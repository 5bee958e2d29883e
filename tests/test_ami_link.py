"""The live AMI path over real TCP: FakeAmi serves recorded Asterisk bytes to AmiLink + CallTracker."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from agent.config.sections import PbxSection
from agent.ingest.link import AmiNotConnected
from agent.ingest.pipeline import PbxPipeline
from agent.tracking.event import CallEvent
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from tests import recordings
from tests.fakes.ami import FakeAmi
from tests.waiting import until


def pbx_for(fake: FakeAmi, secret: str = "secret") -> PbxSection:
    return PbxSection(
        name="office", enterprise="100", username="agent", secret=secret, host="127.0.0.1", port=fake.port, region="BY"
    )


@asynccontextmanager
async def pipeline(
    fake: FakeAmi, secret: str = "secret", **link_options: float
) -> AsyncIterator[tuple[PbxPipeline, list[CallEvent], HealthRegistry]]:
    events: list[CallEvent] = []
    health = HealthRegistry()
    pipe = PbxPipeline(pbx_for(fake, secret), "BY", health, Metrics(), events.append)
    for name, value in link_options.items():
        setattr(pipe.link, name, value)
    task = asyncio.create_task(pipe.run())
    try:
        yield pipe, events, health
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def essence(events: list[CallEvent]) -> list[tuple[object, ...]]:
    """What must not depend on how the bytes arrived (times do)."""
    return [
        (
            e.event,
            e.call_id,
            e.direction,
            e.phone,
            e.did,
            e.extension,
            e.answered_by,
            e.result,
            e.extensions,
            e.recording,
            e.from_extension,
            e.to_extension,
            e.kind,
            e.forwarded_to,
        )
        for e in events
    ]


@pytest.mark.parametrize("name", recordings.NAMES)
async def test_every_recording_through_the_live_link(name: str) -> None:
    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / f"{name}.ami", directory / f"{name}.timing", speed=math.inf, chunk_size=97)
    async with fake, pipeline(fake) as (pipe, events, _):
        await fake.wait_finished(within=10)
        await until(lambda: pipe.tracker.live_calls() == 0 and any(e.event == "ended" for e in events))
    expected = recordings.play(name, with_timing=False)
    assert essence(events) == essence(expected)
    assert sum(e.event == "ended" for e in events) == sum(e.event == "ended" for e in expected) >= 1


async def test_health_reports_the_link() -> None:
    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / "a_incoming_answered.ami", directory / "a_incoming_answered.timing", speed=100)
    async with fake, pipeline(fake) as (pipe, _, health):
        await until(lambda: pipe.link.connected.is_set())
        await fake.wait_finished(within=10)
        report = await health.report()
        link = report["components"]["pbx:office"]
        assert (report["status"], link["status"], link["connected"], link["reconnects"]) == ("ok", "ok", True, 0)
        assert link["since"] > 0 and link["last_event_at"] > 0
        assert any(a.get("Action") == "CoreShowChannels" for a in fake.actions)


async def test_mid_call_disconnect_and_reconnect_ends_the_call_once() -> None:
    name = "a_incoming_answered"
    directory = recordings.recordings_dir()
    stream = (directory / f"{name}.ami").read_bytes()
    cut = stream.index(b"Event: BridgeEnter") + 40  # inside a message, after the call was answered
    fake = FakeAmi(directory / f"{name}.ami", directory / f"{name}.timing", speed=math.inf, drop_at=cut)
    async with fake, pipeline(fake) as (pipe, events, health):
        await fake.wait_finished(within=15)
        await until(lambda: any(e.event == "ended" for e in events))
        assert pipe.link.reconnects == 1
        assert (await health.report())["components"]["pbx:office"]["reconnects"] == 1
    ended = [e for e in events if e.event == "ended"]
    assert len(ended) == 1
    assert (ended[0].answered_by, ended[0].result, ended[0].direction) == ("150", "answered", "in")
    assert sum(e.event == "answered" for e in events) == 1


async def test_call_that_ended_while_the_link_was_down_is_closed_once() -> None:
    name = "a_incoming_answered"
    directory = recordings.recordings_dir()
    stream = (directory / f"{name}.ami").read_bytes()
    cut = stream.index(b"Event: BridgeEnter")
    fake = FakeAmi(
        directory / f"{name}.ami",
        directory / f"{name}.timing",
        speed=math.inf,
        drop_at=cut,
        skip_while_down=len(stream),
    )  # everything after the cut happened while we were away
    async with fake, pipeline(fake) as (pipe, events, _):
        await until(lambda: any(e.event == "ended" for e in events))
        await asyncio.sleep(0.1)
        assert pipe.tracker.live_calls() == 0
    ended = [e for e in events if e.event == "ended"]
    assert len(ended) == 1
    assert ended[0].call_id == "1795419120.0"
    assert ended[0].extra.get("closed_by") == "reconcile"


async def test_wrong_secret_is_reported_and_retried_slowly() -> None:
    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf)
    async with fake, pipeline(fake, secret="wrong", auth_retry=0.2) as (_pipe, events, health):
        await until(lambda: fake.failed_logins >= 2, within=5)
        link = (await health.report())["components"]["pbx:office"]
        assert link["status"] == "down" and link["auth_failed"] is True
        assert "Authentication failed" in link["error"]
        assert "wrong" not in str(link)
        assert fake.failed_logins <= 4  # slow retries, not a crash loop
        assert not events


async def test_reconnects_after_an_asterisk_restart() -> None:
    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf)
    async with fake, pipeline(fake) as (pipe, _, health):
        await until(lambda: fake.logins == 1)
        await fake.restart()
        await until(lambda: fake.logins == 2)
        await until(lambda: pipe.link.connected.is_set())
        assert pipe.link.reconnects == 1
        assert (await health.report())["components"]["pbx:office"]["connected"] is True


async def test_unanswered_ping_drops_the_connection() -> None:
    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf, responders={"Ping": lambda _f: b""})
    async with fake, pipeline(fake, ping_interval=0.05, ping_timeout=0.1) as (pipe, _, _h):
        await until(lambda: fake.logins >= 2, within=10)
        assert pipe.link.reconnects >= 1


async def test_actions_pending_at_a_drop_fail_and_are_never_resent() -> None:
    directory = recordings.recordings_dir()
    fake = FakeAmi(
        directory / "a_incoming_answered.ami", speed=math.inf, responders={"Originate": lambda _f: b""}
    )  # accepted, never answered
    async with fake, pipeline(fake) as (pipe, _, _h):
        await until(lambda: pipe.link.connected.is_set())
        pending = asyncio.create_task(pipe.link.send_action({"Action": "Originate", "Channel": "Local/150@x"}))
        await fake.wait_action("Originate")
        await fake.drop_clients()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(pending, 5)
        await until(lambda: fake.logins == 2)
        await asyncio.sleep(0.2)
        assert sum(a.get("Action") == "Originate" for a in fake.actions) == 1


async def test_agent_stores_ended_calls_and_counts_them(db_dsn: str, make_config: Callable[..., object]) -> None:
    from dataclasses import replace

    import aiohttp

    from agent.app import Agent

    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / "p_l_ring_group.ami", directory / "p_l_ring_group.timing", speed=math.inf)
    async with fake:
        config = replace(make_config(db_dsn), pbx=(pbx_for(fake),))  # type: ignore[type-var]
        agent = Agent(config)  # type: ignore[arg-type]
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.ready.wait(), 30)
            pool = agent.parts.pool
            rows: list[object] = []

            async def stored() -> bool:
                rows[:] = await pool.fetch("SELECT * FROM calls")
                return bool(rows)

            await until(stored, within=10, every=0.05)
            (row,) = rows
            assert dict(row)["answered_by"] == "151"  # type: ignore[call-overload]
            assert dict(row)["extensions"] == ["150", "151", "152"]  # type: ignore[call-overload]
            assert dict(row)["result"] == "answered"  # type: ignore[call-overload]
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{agent.parts.http_port}/metrics") as resp,
            ):
                text = await resp.text()
            assert 'pbx_agent_calls_ended_total{direction="in",result="answered"} 1.0' in text
            assert 'pbx_agent_ami_events_total{event="DialBegin",pbx="office"} 3.0' in text
        finally:
            agent.stopping.set()
            await asyncio.wait_for(task, 15)


async def test_a_cancel_is_never_lost_to_an_answer_landing_with_it() -> None:
    """On Python 3.11 `asyncio.wait_for` returned the answer when it landed together with a cancel, and the cancel
    was gone: a pipeline stopped just as its AMI connection dropped never ended (its endpoint learner took the
    lost connection's error for an answer and waited for the next connect)."""
    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf)
    async with fake, pipeline(fake) as (pipe, _, _h):
        await until(lambda: pipe.link.connected.is_set())
        asking = asyncio.create_task(pipe.link.send_action({"Action": "Ping"}))
        await asyncio.sleep(0)  # sent; the fake cannot have answered yet (its answer needs the socket)
        protocol = pipe.link._protocol
        assert protocol is not None and protocol.last_action_id is not None
        # what connection_lost does to a pending action, in the same turn of the loop as the cancel
        protocol.pending[protocol.last_action_id].future.set_exception(AmiNotConnected("lost"))
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
