"""Tests of the fake AMI server (tests/fakes/ami.py), over a real loopback socket.

The client here is a tiny raw asyncio client written for these tests, not the agent's code.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.ami import FakeAmi, find_recordings_dir, load_recording, parse_headers

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
END = b"\r\n\r\n"


@pytest.fixture(scope="session")
def recordings() -> Path:
    try:
        return find_recordings_dir(Path(__file__))
    except FileNotFoundError:
        pytest.skip("Asterisk recordings not found (set PBX_RECORDINGS)")


def scenario(recordings: Path, name: str, *, timing: bool = True, **kwargs: Any) -> FakeAmi:
    t = recordings / f"{name}.timing" if timing else None
    return FakeAmi(recordings / f"{name}.ami", t, **kwargs)


class RawClient:
    """Just enough AMI client: send actions, read raw bytes or whole messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, action: str, **headers: str) -> None:
        lines = [f"Action: {action}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def banner(self) -> bytes:
        async with asyncio.timeout(2):
            return await self.reader.readline()

    async def message(self) -> bytes:
        async with asyncio.timeout(3):
            return await self.reader.readuntil(END)

    async def exactly(self, n: int) -> bytes:
        async with asyncio.timeout(5):
            return await self.reader.readexactly(n)

    async def until_eof(self) -> bytes:
        async with asyncio.timeout(3):
            return await self.reader.read()

    async def until_response(self, action_id: str) -> tuple[list[bytes], bytes]:
        """Read messages until the response carrying ``action_id``; return (before, response)."""
        before: list[bytes] = []
        while True:
            msg = await self.message()
            if msg.startswith(b"Response:") and f"\r\nActionID: {action_id}\r\n".encode() in msg:
                return before, msg
            before.append(msg)

    async def login(self, user: str = "agent", secret: str = "secret", action_id: str = "L1") -> bytes:
        await self.send("Login", ActionID=action_id, Username=user, Secret=secret, Events="on")
        return await self.message()


@asynccontextmanager
async def connect(fake: FakeAmi) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
    try:
        yield RawClient(reader, writer)
    finally:
        writer.close()
        with suppress(ConnectionError, OSError):
            await writer.wait_closed()


def fields(msg: bytes) -> dict[str, str]:
    return dict(parse_headers(msg))


def ok_login(action_id: str = "L1") -> bytes:
    return f"Response: Success\r\nActionID: {action_id}\r\nMessage: Authentication accepted\r\n\r\n".encode()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "recording_name" in metafunc.fixturenames:
        try:
            names = sorted(p.stem for p in find_recordings_dir(Path(__file__)).glob("*.ami"))
        except FileNotFoundError:
            names = []
        metafunc.parametrize("recording_name", names)


# ------------------------------------------------------------------------------ parsing


def test_split_without_timing_matches_timing_ranges(recordings: Path, recording_name: str) -> None:
    """Splitting on the banner line and blank lines gives exactly the .timing byte ranges."""
    ami = recordings / f"{recording_name}.ami"
    _, timed = load_recording(ami, recordings / f"{recording_name}.timing")
    _, split = load_recording(ami)
    assert [(m.start, m.end) for m in split] == [(m.start, m.end) for m in timed]
    assert [m.name for m in split[1:]] == [m.name for m in timed[1:]]


# ------------------------------------------------------------------------------ connect / login


async def test_banner_comes_from_the_recording(recordings: Path) -> None:
    async with scenario(recordings, "a_incoming_answered") as fake, connect(fake) as client:
        banner = await client.banner()
        assert banner == BANNER
        assert (recordings / "a_incoming_answered.ami").read_bytes().startswith(banner)
        assert fake.connections == 1


async def test_login_accepted(recordings: Path) -> None:
    async with scenario(recordings, "a_incoming_answered") as fake, connect(fake) as client:
        await client.banner()
        assert await client.login(action_id="abc-1") == ok_login("abc-1")
        assert fake.logins == 1
        assert fake.actions[0]["Action"] == "Login"
        assert fake.actions[0]["Username"] == "agent"


async def test_login_failed_closes_and_sends_nothing_else(recordings: Path) -> None:
    async with scenario(recordings, "a_incoming_answered") as fake, connect(fake) as client:
        await client.banner()
        await client.send("Login", ActionID="x-1", Username="agent", Secret="wrong")
        rest = await client.until_eof()
        assert rest == b"Response: Error\r\nActionID: x-1\r\nMessage: Authentication failed\r\n\r\n"
        assert fake.logins == 0
        assert fake.failed_logins == 1
        assert fake.position == fake.stream_start  # nothing was streamed


async def test_no_events_before_login(recordings: Path) -> None:
    async with scenario(recordings, "a_incoming_answered", speed=math.inf) as fake, connect(fake) as client:
        await client.banner()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.reader.read(1)
        await client.send("Ping", ActionID="p-0")
        assert await client.message() == (b"Response: Error\r\nActionID: p-0\r\nMessage: Permission denied\r\n\r\n")
        assert fake.position == fake.stream_start
        assert not fake.finished.is_set()


# ------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("chunk_size", [None, 13])
async def test_stream_is_the_recording_after_its_login_response(
    recordings: Path, recording_name: str, chunk_size: int | None
) -> None:
    raw = (recordings / f"{recording_name}.ami").read_bytes()
    _, msgs = load_recording(recordings / f"{recording_name}.ami", recordings / f"{recording_name}.timing")
    login_end = msgs[1].end
    assert msgs[1].name == "Success" and msgs[-1].name == "Goodbye"
    expected = raw[login_end : msgs[-1].start]  # everything but the recorder's own Goodbye
    fake = scenario(recordings, recording_name, speed=math.inf, chunk_size=chunk_size)
    async with fake, connect(fake) as client:
        await client.banner()
        assert await client.login() == ok_login()
        got = await client.exactly(len(expected))
        assert got == expected
        assert got.startswith(b"Event: FullyBooted\r\n")
        await fake.wait_finished(within=2)
        # Nothing more: the connection stays open and idle.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.reader.read(1)


async def test_stream_without_timing_file(recordings: Path) -> None:
    raw = (recordings / "c_incoming_busy.ami").read_bytes()
    fake = scenario(recordings, "c_incoming_busy", timing=False)
    async with fake, connect(fake) as client:
        await client.banner()
        await client.login()
        got = await client.exactly(len(fake.stream_bytes))
        assert got == fake.stream_bytes == raw[fake.stream_start : fake.stream_end]
        assert raw[fake.stream_end :].startswith(b"Response: Goodbye\r\n")
        await fake.wait_finished(within=2)


async def test_events_off_session_gets_no_events(recordings: Path) -> None:
    async with scenario(recordings, "c_incoming_busy", speed=math.inf) as fake, connect(fake) as client:
        await client.banner()
        await client.send("Login", ActionID="L1", Username="agent", Secret="secret", Events="off")
        assert await client.message() == ok_login()
        await client.send("Ping", ActionID="p-1")
        assert (await client.message()).startswith(b"Response: Success\r\nActionID: p-1\r\nPing: Pong\r\n")
        assert fake.position == fake.stream_start


async def test_ping_answered_while_streaming(recordings: Path) -> None:
    # a_incoming_answered: both BridgeEnter at ~3.01 s, then silence until the hangup at 11.02 s.
    fake = scenario(recordings, "a_incoming_answered", speed=20)
    quiet_from = max(m.end for m in fake.messages if m.t < 5)  # last message before the gap
    assert min(m.t for m in fake.messages if m.start >= quiet_from) > 11
    async with fake, connect(fake) as client:
        await client.banner()
        await client.login()
        await client.exactly(quiet_from - fake.stream_start)
        await client.send("Ping", ActionID="p-7")
        before, pong = await client.until_response("p-7")
        assert before == []  # answered in the quiet gap, ahead of the next events
        assert not fake.finished.is_set()
        f = fields(pong)
        assert list(f) == ["Response", "ActionID", "Ping", "Timestamp"]
        assert f["Response"] == "Success" and f["Ping"] == "Pong"
        assert re.fullmatch(r"\d{10}\.\d{6}", f["Timestamp"])
        assert abs(float(f["Timestamp"]) - time.time()) < 5
        # The stream goes on after the Pong.
        rest = await client.message()
        assert rest.startswith(b"Event: ")
        await fake.wait_finished(within=3)


async def test_timing_gaps_are_scaled(recordings: Path) -> None:
    speed = 40.0
    fake = scenario(recordings, "b_incoming_missed", speed=speed)
    last_t = fake.messages[-2].t  # the last event (the Goodbye is not replayed)
    login_t = fake.login_response.t
    expected = (last_t - login_t) / speed
    assert expected > 0.4
    async with fake, connect(fake) as client:
        await client.banner()
        await client.login()
        started = time.monotonic()
        await client.exactly(len(fake.stream_bytes))
        elapsed = time.monotonic() - started
    assert expected * 0.85 - 0.05 <= elapsed <= expected * 1.5 + 0.3, (elapsed, expected)


# ------------------------------------------------------------------------------ actions


async def test_logoff_says_goodbye_and_closes(recordings: Path) -> None:
    async with scenario(recordings, "a_incoming_answered", speed=math.inf) as fake, connect(fake) as client:
        await client.banner()
        await client.send("Logoff", ActionID="bye")
        assert await client.until_eof() == (
            b"Response: Goodbye\r\nActionID: bye\r\nMessage: Thanks for all the fish.\r\n\r\n"
        )
        await fake.wait_for(lambda: fake.clients == 0, within=2)


async def test_unknown_action_and_originate(recordings: Path) -> None:
    async with scenario(recordings, "c_incoming_busy", speed=math.inf) as fake, connect(fake) as client:
        await client.banner()
        await client.login()
        await client.send("Frobnicate", ActionID="u-1")
        _, resp = await client.until_response("u-1")
        assert resp == (
            b"Response: Error\r\nActionID: u-1\r\nMessage: Invalid/unknown command: Frobnicate. "
            b"Use Action: ListCommands to show available commands.\r\n\r\n"
        )
        await client.send(
            "Originate",
            ActionID="o-1",
            Channel="Local/150@agents",
            Context="from-internal",
            Exten="+375447654321",
            Priority="1",
        )
        _, resp = await client.until_response("o-1")
        assert fields(resp)["Message"] == "Originate successfully queued"
        originate = await fake.wait_action("originate", within=1)
        assert originate["Channel"] == "Local/150@agents"
        assert originate["Exten"] == "+375447654321"


async def _core_show_channels(client: RawClient, action_id: str) -> tuple[bytes, list[bytes]]:
    await client.send("CoreShowChannels", ActionID=action_id)
    _, resp = await client.until_response(action_id)
    items: list[bytes] = []
    while True:
        msg = await client.message()
        items.append(msg)
        if msg.startswith(b"Event: CoreShowChannelsComplete\r\n"):
            return resp, items


async def test_core_show_channels_mid_call(recordings: Path) -> None:
    fake = scenario(recordings, "a_incoming_answered", speed=math.inf)
    bridge_enters = [m for m in fake.messages if m.name == "BridgeEnter"]
    fake = scenario(recordings, "a_incoming_answered", speed=math.inf, pause_at=bridge_enters[1].end)
    async with fake, connect(fake) as client:
        await client.banner()
        await client.login()
        await client.exactly(bridge_enters[1].end - fake.stream_start)
        await fake.wait_paused(within=2)

        resp, items = await _core_show_channels(client, "csc-1")
        assert resp == (
            b"Response: Success\r\nActionID: csc-1\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
        )
        *chans, complete = [fields(m) for m in items]
        assert complete == {
            "Event": "CoreShowChannelsComplete",
            "ActionID": "csc-1",
            "EventList": "Complete",
            "ListItems": "4",
        }
        for chan in chans:
            assert list(chan) == [
                "Event", "ActionID", "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum",
                "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode",
                "Context", "Exten", "Priority", "Uniqueid", "Linkedid", "Application",
                "ApplicationData", "Duration", "BridgeId",
            ]  # fmt: skip
            assert chan["Event"] == "CoreShowChannel" and chan["ActionID"] == "csc-1"
            assert chan["Linkedid"] == "1795419120.0"
            assert re.fullmatch(r"\d\d:\d\d:\d\d", chan["Duration"])
        by_name = {c["Channel"]: c for c in chans}
        assert set(by_name) == {
            "Local/375173880000@from-trunk-00000000;1",
            "Local/375173880000@from-trunk-00000000;2",
            "Local/150@agents-00000001;1",
            "Local/150@agents-00000001;2",
        }
        trunk = by_name["Local/375173880000@from-trunk-00000000;2"]
        leg = by_name["Local/150@agents-00000001;1"]
        bridge_id = "9b49b1a3-3337-4b96-985b-1cbb379dedc4"
        assert trunk["BridgeId"] == leg["BridgeId"] == bridge_id
        assert by_name["Local/375173880000@from-trunk-00000000;1"]["BridgeId"] == ""
        assert trunk["Uniqueid"] == "1795419120.1"
        assert trunk["ChannelStateDesc"] == "Up" and trunk["CallerIDNum"] == "+375291234567"
        assert trunk["Application"] == "Dial"
        assert leg["Application"] == "AppDial"
        assert leg["Duration"] == "00:00:03"  # created at 0.006 s, now at 3.012 s (recording clock)
        assert fake.live_channels() == [{k: v for k, v in c.items() if k not in ("Event", "ActionID")} for c in chans]

        # After the call: nothing live.
        fake.unpause()
        await fake.wait_finished(within=2)
        _, items = await _core_show_channels(client, "csc-2")
        assert [fields(m)["Event"] for m in items] == ["CoreShowChannelsComplete"]
        assert fields(items[-1])["ListItems"] == "0"


async def test_core_show_channels_before_any_call(recordings: Path) -> None:
    fake = scenario(recordings, "a_incoming_answered", speed=math.inf, pause_at=0)
    async with fake, connect(fake) as client:
        await client.banner()
        await client.login()
        await fake.wait_paused(within=2)
        _, items = await _core_show_channels(client, "c0")
        assert len(items) == 1 and fields(items[0])["ListItems"] == "0"


# ------------------------------------------------------------------------------ faults


async def test_drop_mid_message_then_reconnect_resumes(recordings: Path) -> None:
    raw = (recordings / "a_incoming_answered.ami").read_bytes()
    probe = scenario(recordings, "a_incoming_answered")
    cut = next(m for m in probe.messages if m.name == "DialBegin")
    drop_at = cut.start + 50  # in the middle of the first DialBegin
    fake = scenario(recordings, "a_incoming_answered", speed=math.inf, drop_at=drop_at)
    async with fake:
        async with connect(fake) as client:
            await client.banner()
            await client.login()
            first = await client.until_eof()
            assert first == raw[fake.stream_start : drop_at]
            assert not first.endswith(END)
        await fake.wait_for(lambda: fake.clients == 0, within=2)
        assert fake.drops == 1
        async with connect(fake) as client:
            assert await client.banner() == BANNER
            assert await client.login(action_id="L2") == ok_login("L2")
            fully_booted = await client.message()
            assert fully_booted.startswith(b"Event: FullyBooted\r\n")
            rest = await client.exactly(fake.stream_end - cut.start)
            assert rest == raw[cut.start : fake.stream_end]  # the cut message again, whole
        assert (fake.connections, fake.logins) == (2, 2)
        await fake.wait_finished(within=2)


async def test_drop_with_events_lost_while_down(recordings: Path) -> None:
    """The calls end while the link is down; after reconnecting CoreShowChannels lists nothing."""
    probe = scenario(recordings, "a_incoming_answered")
    bridge_enter = [m for m in probe.messages if m.name == "BridgeEnter"][1]
    drop_at = bridge_enter.end  # right after the second BridgeEnter, on a message boundary
    fake = scenario(
        recordings,
        "a_incoming_answered",
        speed=math.inf,
        drop_at=drop_at,
        skip_while_down=probe.stream_end - drop_at,
    )
    async with fake:
        async with connect(fake) as client:
            await client.banner()
            await client.login()
            assert (await client.until_eof()).endswith(bridge_enter.data)
        await fake.wait_finished(within=2)
        async with connect(fake) as client:
            await client.banner()
            await client.login()
            assert (await client.message()).startswith(b"Event: FullyBooted\r\n")
            _, items = await _core_show_channels(client, "r-1")
            assert [fields(m)["Event"] for m in items] == ["CoreShowChannelsComplete"]


async def test_drop_then_calls_still_up_are_listed(recordings: Path) -> None:
    probe = scenario(recordings, "a_incoming_answered")
    bridge_enter = [m for m in probe.messages if m.name == "BridgeEnter"][1]
    hangup_request = next(m for m in probe.messages if m.name == "HangupRequest")
    fake = scenario(
        recordings,
        "a_incoming_answered",
        speed=math.inf,
        drop_at=bridge_enter.end,
        pause_at=hangup_request.start,
    )
    async with fake:
        async with connect(fake) as client:
            await client.banner()
            await client.login()
            await client.until_eof()
        async with connect(fake) as client:
            await client.banner()
            await client.login()
            await client.message()  # FullyBooted
            await fake.wait_paused(within=2)
            _, items = await _core_show_channels(client, "r-2")
            assert fields(items[-1])["ListItems"] == "4"


async def test_refuse_and_accept_connections(recordings: Path) -> None:
    async with scenario(recordings, "c_incoming_busy", speed=math.inf) as fake:
        port = fake.port
        await fake.refuse_connections("unbind")
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        await fake.refuse_connections("close")
        async with connect(fake) as client:
            assert await client.until_eof() == b""  # accepted, closed before the banner
        assert fake.refused == 1
        await fake.accept_connections()
        assert fake.port == port
        async with connect(fake) as client:
            assert await client.banner() == BANNER
            assert await client.login() == ok_login()


async def test_restart_drops_clients_and_forgets_calls(recordings: Path) -> None:
    probe = scenario(recordings, "a_incoming_answered")
    bridge_enter = [m for m in probe.messages if m.name == "BridgeEnter"][1]
    fake = scenario(recordings, "a_incoming_answered", speed=math.inf, pause_at=bridge_enter.end)
    async with fake:
        async with connect(fake) as client:
            await client.banner()
            await client.login()
            await fake.wait_paused(within=2)
            await fake.restart(down_for=0.05)
            await client.until_eof()
        assert fake.restarts == 1 and fake.finished.is_set()
        async with connect(fake) as client:
            assert await client.banner() == BANNER
            await client.login(action_id="L9")
            assert (await client.message()).startswith(b"Event: FullyBooted\r\n")
            _, items = await _core_show_channels(client, "r-3")
            assert fields(items[-1])["ListItems"] == "0"


async def test_two_clients_both_get_the_stream(recordings: Path) -> None:
    fake = scenario(recordings, "c_incoming_busy", speed=math.inf, pause_at=0)
    async with fake, connect(fake) as one, connect(fake) as two:
        for client in (one, two):
            await client.banner()
            await client.login()
        await fake.wait_logins(2, within=2)
        await fake.wait_paused(within=2)
        fake.unpause()
        assert await one.exactly(len(fake.stream_bytes)) == fake.stream_bytes
        assert await two.exactly(len(fake.stream_bytes)) == fake.stream_bytes


async def test_chunk_size_splits_the_bytes_on_the_wire(recordings: Path) -> None:
    fake = scenario(recordings, "c_incoming_busy", speed=math.inf, chunk_size=10, chunk_delay=0.002)
    async with fake, connect(fake) as client:
        await client.banner()
        await client.send("Login", ActionID="L1", Username="agent", Secret="secret")
        reads: list[bytes] = []
        async with asyncio.timeout(3):
            while sum(map(len, reads)) < 400:
                reads.append(await client.reader.read(4096))
        assert b"".join(reads).startswith(ok_login() + b"Event: FullyBooted\r\n")
        assert len(reads) >= 10
        assert max(map(len, reads)) <= 30


async def test_custom_responders_and_inject(recordings: Path) -> None:
    responders = {
        "Status": lambda f: f"Response: Success\r\nActionID: {f['ActionID']}\r\nX: 1\r\n\r\n".encode(),
        "Hangup": lambda f: f"Hung up {f['Channel']}",
    }
    fake = scenario(recordings, "c_incoming_busy", speed=math.inf, responders=responders)
    async with fake, connect(fake) as client:
        await client.banner()
        await client.login()
        await client.exactly(len(fake.stream_bytes))
        await client.send("status", ActionID="s-1")
        assert await client.message() == b"Response: Success\r\nActionID: s-1\r\nX: 1\r\n\r\n"
        await client.send("Hangup", ActionID="h-1", Channel="PJSIP/150-00000001")
        assert await client.message() == (
            b"Response: Success\r\nActionID: h-1\r\nMessage: Hung up PJSIP/150-00000001\r\n\r\n"
        )
        await fake.inject(b"Event: UserEvent\r\nUserEvent: hello\r\n\r\n")
        assert await client.message() == b"Event: UserEvent\r\nUserEvent: hello\r\n\r\n"
