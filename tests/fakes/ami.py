"""A fake Asterisk Manager Interface (AMI) server that replays a recording over real TCP.

The recordings in ``shared/asterisk-recordings`` hold every byte a real Asterisk 22 sent on one
AMI connection (``.ami``), plus per-message arrival times (``.timing``). :class:`FakeAmi` listens
on loopback and plays such a recording to whatever client logs in, the way Asterisk would:

* banner on connect (taken from the recording's first line);
* ``Login`` with the configured Username/Secret gets ``Authentication accepted``, then the
  recording's messages that followed *its own* Login response (``FullyBooted`` first, then the
  scenario). A wrong secret gets ``Authentication failed`` and the connection is closed;
* events are never sent before a successful login (nor to a session that logged in with
  ``Events: off``);
* the recording's final ``Response: Goodbye`` (the answer to the recorder's own ``Logoff``) is not
  replayed; the connection stays open and idle after the last event;
* ``Ping``, ``Logoff``, ``CoreShowChannels`` and a few call-control actions are answered at any
  time while the stream runs, with the exact wording of Asterisk 22's ``main/manager.c``;
* faults: drop the link at a byte offset, refuse connections, simulate an Asterisk restart.

Byte offsets (``drop_at``, ``pause_at``, :attr:`FakeAmi.position`) are offsets into the
``.ami`` file, the same coordinates as the ``.timing`` file.

The stream is a single cursor shared by all connections: it advances only while at least one
logged-in client with events on is connected, so a client that reconnects continues where the
previous connection stopped (unless told to skip what "happened while down").
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "FakeAmi",
    "RecordedMessage",
    "find_recordings_dir",
    "load_recording",
    "parse_headers",
]

CRLF = b"\r\n"
MESSAGE_END = b"\r\n\r\n"

# The channel-state block Asterisk builds for every channel snapshot
# (ast_manager_build_channel_state_string_prefix), in Asterisk's order.
SNAPSHOT_FIELDS: tuple[str, ...] = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)

# Success messages of call-control actions, as real Asterisk 22 words them (seen in the
# recordings, or in main/manager.c). Anything not here and not handled explicitly gets
# "Invalid/unknown command".
DEFAULT_ACK_MESSAGES: dict[str, str] = {
    "originate": "Originate successfully queued",
    "blindtransfer": "Transfer succeeded",
    "atxfer": "Atxfer successfully queued",
    "hangup": "Channel Hungup",
    "redirect": "Redirect successful",
    "setvar": "Variable Set",
}

ActionResponder = Callable[[dict[str, str]], bytes | str]
"""A custom action handler: gets the action's headers, returns either a full raw response
(bytes, sent as is) or a message text (str) sent as ``Response: Success`` + ``Message:``."""


# --------------------------------------------------------------------------------------------
# Recording parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One message of a recording: its exact bytes and where they sit in the ``.ami`` file."""

    index: int
    start: int
    end: int
    t: float
    name: str
    data: bytes

    def headers(self) -> list[tuple[str, str]]:
        return parse_headers(self.data)

    def get(self, key: str, default: str = "") -> str:
        """First value of ``key`` (case-insensitive, like Asterisk's astman_get_header)."""
        wanted = key.lower()
        for k, v in self.headers():
            if k.lower() == wanted:
                return v
        return default


def parse_headers(data: bytes) -> list[tuple[str, str]]:
    """Split an AMI message into (key, value) pairs, keeping order and repeated keys.

    Lines may end in CRLF or LF. The value keeps everything after ``": "`` (an empty value sent
    as ``"Key: "`` becomes ``""``).
    """
    out: list[tuple[str, str]] = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        if not raw:
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            out.append((raw, ""))
            continue
        if value.startswith(" "):
            value = value[1:]
        out.append((key.strip(), value))
    return out


def _message_name(data: bytes) -> str:
    for key, value in parse_headers(data):
        if key.lower() in ("event", "response"):
            return value
        break
    return ""


def load_recording(recording: Path | bytes, timing: Path | None = None) -> tuple[bytes, list[RecordedMessage]]:
    """Read a recording and split it into messages (the first one is the banner).

    With a ``.timing`` file, its byte ranges are used as they are (they must tile the file
    exactly). Without one, the banner is the first CRLF-terminated line and the rest is split
    after every blank line; all times are then 0.
    """
    data = recording.read_bytes() if isinstance(recording, Path) else bytes(recording)
    messages: list[RecordedMessage] = []
    if timing is not None:
        pos = 0
        for lineno, line in enumerate(timing.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 4:
                raise ValueError(f"{timing}:{lineno}: expected 4 tab-separated fields: {line!r}")
            t, start, end = float(parts[0]), int(parts[1]), int(parts[2])
            if start != pos or end <= start or end > len(data):
                raise ValueError(f"{timing}:{lineno}: byte range {start}-{end} does not tile the file")
            messages.append(RecordedMessage(len(messages), start, end, t, parts[3], data[start:end]))
            pos = end
        if pos != len(data):
            raise ValueError(f"{timing}: ranges stop at byte {pos}, the recording has {len(data)}")
        return data, messages

    banner_end = data.find(CRLF)
    if banner_end < 0:
        raise ValueError("recording has no banner line")
    banner_end += len(CRLF)
    messages.append(RecordedMessage(0, 0, banner_end, 0.0, "banner", data[:banner_end]))
    pos = banner_end
    while pos < len(data):
        cut = data.find(MESSAGE_END, pos)
        end = len(data) if cut < 0 else cut + len(MESSAGE_END)
        chunk = data[pos:end]
        messages.append(RecordedMessage(len(messages), pos, end, 0.0, _message_name(chunk), chunk))
        pos = end
    return data, messages


def find_recordings_dir(start: Path | None = None) -> Path:
    """Where the Asterisk recordings live (`$PBX_RECORDINGS`, else `shared/` beside the repo): the one rule
    of tests/recordings.py. `start` is accepted for old callers and ignored."""
    from tests.recordings import recordings_dir

    return recordings_dir()


# --------------------------------------------------------------------------------------------
# Live channel tracking (for CoreShowChannels)
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class LiveChannel:
    snapshot: dict[str, str]
    created_t: float
    application: str = ""
    application_data: str = ""
    bridge_id: str = ""


class ChannelTracker:
    """Which channels exist at a point of the stream, from the events seen so far.

    Every event that carries a channel-state block (``Channel``/``Uniqueid``/``Linkedid``, with
    or without a prefix such as ``Dest``, ``LocalOne``, ``Transferee``) refreshes that channel's
    snapshot; Newchannel creates it and Hangup removes it. Newexten sets the running
    application, BridgeEnter/BridgeLeave the bridge.
    """

    def __init__(self) -> None:
        self.channels: dict[str, LiveChannel] = {}

    def reset(self) -> None:
        self.channels.clear()

    def apply(self, headers: Sequence[tuple[str, str]], t: float) -> None:
        fields: dict[str, str] = {}
        for key, value in headers:
            fields.setdefault(key, value)
        event = fields.get("Event")
        if event is None:
            return
        if event == "Newchannel" and "Uniqueid" in fields:
            snap = {k: fields.get(k, "") for k in SNAPSHOT_FIELDS}
            self.channels[fields["Uniqueid"]] = LiveChannel(snapshot=snap, created_t=t)
        # Refresh every snapshot block the event carries.
        for key in fields:
            if not key.endswith("Uniqueid"):
                continue
            prefix = key[: -len("Uniqueid")]
            if f"{prefix}Channel" not in fields or f"{prefix}Linkedid" not in fields:
                continue
            chan = self.channels.get(fields[key])
            if chan is None:
                continue
            for name in SNAPSHOT_FIELDS:
                if f"{prefix}{name}" in fields:
                    chan.snapshot[name] = fields[f"{prefix}{name}"]
        uid = fields.get("Uniqueid", "")
        chan = self.channels.get(uid)
        if event == "Newexten" and chan is not None:
            chan.application = fields.get("Application", "")
            chan.application_data = fields.get("AppData", "")
        elif event == "DialBegin":
            dest = self.channels.get(fields.get("DestUniqueid", ""))
            if dest is not None and not dest.application:
                # app_dial marks the channels it dials this way.
                dest.application, dest.application_data = "AppDial", "(Outgoing Line)"
        elif event == "OriginateResponse" and chan is not None and fields.get("Application"):
            chan.application = fields["Application"]
            chan.application_data = fields.get("Data", "")
        elif event == "BridgeEnter" and chan is not None:
            chan.bridge_id = fields.get("BridgeUniqueid", "")
        elif event == "BridgeLeave" and chan is not None:
            chan.bridge_id = ""
        elif event == "Rename" and chan is not None and "Newname" in fields:
            chan.snapshot["Channel"] = fields["Newname"]
        elif event == "Hangup":
            self.channels.pop(uid, None)


def _duration(seconds: float) -> str:
    total = max(0, int(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


def _response(
    kind: str, action_id: str | None, message: str | None = None, extra: Iterable[tuple[str, str]] = ()
) -> bytes:
    """``astman_send_response_full``: Response, ActionID, (extra), Message, blank line."""
    lines = [f"Response: {kind}"]
    if action_id:
        lines.append(f"ActionID: {action_id}")
    lines.extend(f"{k}: {v}" for k, v in extra)
    if message is not None:
        lines.append(f"Message: {message}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(eq=False)
class _Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    number: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    logged_in: bool = False
    events: bool = True
    streaming: bool = False  # logged in, events on, login response already written
    closed: bool = False

    def close(self) -> None:
        self.streaming = False
        if not self.closed:
            self.closed = True
            self.writer.close()


class FakeAmi:
    """Replays an AMI recording to clients over loopback TCP. See the module docstring.

    Parameters:
        recording: the ``.ami`` file (or its bytes).
        timing: the ``.timing`` file. Without it, messages go out back to back.
        speed: how much faster than real time the recorded gaps are replayed
            (``math.inf`` = no waiting).
        username, secret: the credentials ``Login`` must present (username case-insensitive,
            secret exact, as in Asterisk).
        chunk_size: if set, every message is written in pieces of this many bytes (with
            ``chunk_delay`` seconds between pieces) to exercise the client's framing.
        drop_at: byte offset(s) in the recording; when the stream reaches one, the bytes up to
            it are sent and every connection is closed abruptly (no Goodbye), possibly in the
            middle of a message. One-shot each.
        resume: after a drop, ``"continue"`` streams on from the message that was cut (sent
            again whole) on the next login; ``"end"`` discards the rest of the recording.
        skip_while_down: with ``resume="continue"``, also skip this many bytes after the drop
            point (rounded up to whole messages): events that "happened while the link was
            down". They still count for CoreShowChannels.
        pause_at: byte offset(s); the stream holds before the message that starts at or after
            each, until :meth:`unpause`. Handy for asserting mid-stream state.
        include_goodbye: replay the recording's final ``Response: Goodbye`` too (default no).
        responders: extra/overriding action handlers keyed by action name (case-insensitive).
        auth_fail_delay: seconds to wait before answering a bad Login (Asterisk sleeps 1 s).
        refuse: action names the AMI user may not run (its ``write`` lacks their class): answered
            ``Response: Error`` / ``Message: Permission denied``, as manager.c does.
        tls: serve over TLS with this server context (manager.conf ``tlsenable``).
    """

    def __init__(
        self,
        recording: Path | bytes,
        timing: Path | None = None,
        *,
        speed: float = 50.0,
        username: str = "agent",
        secret: str = "secret",
        chunk_size: int | None = None,
        chunk_delay: float = 0.0,
        drop_at: int | Sequence[int] | None = None,
        resume: Literal["continue", "end"] = "continue",
        skip_while_down: int = 0,
        pause_at: int | Sequence[int] | None = None,
        include_goodbye: bool = False,
        responders: Mapping[str, ActionResponder] | None = None,
        auth_fail_delay: float = 0.0,
        refuse: Iterable[str] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.recording, self.messages = load_recording(recording, timing)
        self.tls = tls
        self.has_timing = timing is not None
        self.speed = speed
        self.username = username
        self.secret = secret
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.resume = resume
        self.skip_while_down = skip_while_down
        self.include_goodbye = include_goodbye
        self.auth_fail_delay = auth_fail_delay
        self.responders: dict[str, ActionResponder] = {k.lower(): v for k, v in (responders or {}).items()}
        self.refuse = {name.lower() for name in refuse}

        self.banner = self.messages[0].data
        login_idx = next((m.index for m in self.messages[1:] if m.data.startswith(b"Response:")), None)
        if login_idx is None:
            raise ValueError("recording has no Login response")
        self.login_response = self.messages[login_idx]
        self._first = login_idx + 1  # first message to stream
        end = len(self.messages)
        if not include_goodbye and end > self._first and self.messages[-1].name == "Goodbye":
            end -= 1
        self._end = end  # one past the last message to stream
        self.fully_booted: RecordedMessage | None = next(
            (m for m in self.messages[self._first : self._end] if m.name == "FullyBooted"), None
        )

        self._drops: list[int] = sorted(self._as_list(drop_at))
        self._pauses: list[int] = sorted(self._as_list(pause_at))

        # Stream state
        self._next = self._first  # index of the next message to stream
        self._tracker = ChannelTracker()
        self._stream_t = self.messages[self._first - 1].t  # recording clock of the last message passed
        self._paused = False

        # Server state
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._refusing = False
        self._sessions: set[_Session] = set()
        self._handler_tasks: set[asyncio.Task[object]] = set()
        self._player: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # replaced by a fresh one on every state change
        self.finished = asyncio.Event()

        # Counters and records for tests
        self.connections = 0  #: TCP connections accepted (including refused ones)
        self.refused = 0  #: connections closed at once because of refuse_connections()
        self.logins = 0  #: successful logins
        self.failed_logins = 0
        self.drops = 0  #: drop_at faults fired
        self.restarts = 0
        self.actions: list[dict[str, str]] = []  #: every action received; first value per key
        self.raw_actions: list[list[tuple[str, str]]] = []  #: same, with every header line

    @staticmethod
    def _as_list(value: int | Sequence[int] | None) -> list[int]:
        if value is None:
            return []
        if isinstance(value, int):
            return [value]
        return list(value)

    @classmethod
    def from_scenario(cls, name: str, recordings_dir: Path | None = None, **kwargs: Any) -> FakeAmi:
        """``FakeAmi.from_scenario("a_incoming_answered", speed=50)`` (``.ami`` + ``.timing``)."""
        base = recordings_dir or find_recordings_dir()
        timing = base / f"{name}.timing"
        return cls(base / f"{name}.ami", timing if timing.exists() else None, **kwargs)

    # ---------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        await self._bind(host, port)
        self._player = asyncio.create_task(self._play(), name="fake-ami-player")

    async def _bind(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, ssl=self.tls)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._player is not None:
            self._player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._player
            self._player = None
        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new clients
        for session in list(self._sessions):
            session.close()  # before waiting: Server.wait_closed waits for the connections too (3.11.7, 3.12)
        if server is not None:
            with contextlib.suppress(TimeoutError):  # bounded: a connection that will not close must not hang it
                async with asyncio.timeout(5):
                    await server.wait_closed()
        # Closing the transports makes every handler see EOF and finish on its own; cancel
        # only what is still stuck after a grace period.
        tasks = list(self._handler_tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------- state for tests

    @property
    def position(self) -> int:
        """Byte offset in the recording of the next message to stream."""
        return self.messages[self._next].start if self._next < len(self.messages) else len(self.recording)

    @property
    def stream_start(self) -> int:
        """Offset of the first streamed byte (just after the recording's Login response)."""
        return self.login_response.end

    @property
    def stream_end(self) -> int:
        """Offset one past the last streamed byte (the Goodbye is excluded by default)."""
        return self.messages[self._end - 1].end if self._end > self._first else self.stream_start

    @property
    def stream_bytes(self) -> bytes:
        """Everything a single uninterrupted session receives after the Login response."""
        return self.recording[self.stream_start : self.stream_end]

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def clients(self) -> int:
        """Connections currently open."""
        return len(self._sessions)

    def live_channels(self) -> list[dict[str, str]]:
        """The channels CoreShowChannels would list now (snapshot + Application/BridgeId)."""
        return [self._channel_fields(c) for c in self._tracker.channels.values()]

    def _channel_fields(self, chan: LiveChannel) -> dict[str, str]:
        out = dict(chan.snapshot)
        out["Application"] = chan.application
        out["ApplicationData"] = chan.application_data
        out["Duration"] = _duration(self._stream_t - chan.created_t)
        out["BridgeId"] = chan.bridge_id
        return out

    async def _until(self, predicate: Callable[[], bool]) -> None:
        while True:
            changed = self._changed
            if predicate():
                return
            await changed.wait()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (re-checked on every state change)."""
        await asyncio.wait_for(self._until(predicate), within)

    async def wait_finished(self, within: float = 10.0) -> None:
        """Wait until the whole recording has been streamed (or skipped)."""
        await asyncio.wait_for(self.finished.wait(), within)

    async def wait_paused(self, within: float = 5.0) -> None:
        await self.wait_for(lambda: self._paused, within)

    async def wait_logins(self, n: int, within: float = 5.0) -> None:
        await self.wait_for(lambda: self.logins >= n, within)

    async def wait_action(self, name: str, within: float = 5.0) -> dict[str, str]:
        """Wait for an action named ``name`` (case-insensitive); return the first one."""
        wanted = name.lower()

        def found() -> bool:
            return any(a.get("Action", "").lower() == wanted for a in self.actions)

        await self.wait_for(found, within)
        return next(a for a in self.actions if a.get("Action", "").lower() == wanted)

    def unpause(self) -> None:
        self._paused = False
        self._notify()

    def _notify(self) -> None:
        """Wake everything waiting in :meth:`_until`."""
        self._changed.set()
        self._changed = asyncio.Event()

    # ---------------------------------------------------------------- faults

    async def drop_clients(self) -> None:
        """Close every connection abruptly (no Goodbye)."""
        for session in list(self._sessions):
            session.close()
        await self.wait_for(lambda: not self._sessions, within=5.0)

    async def refuse_connections(
        self, mode: Literal["close", "unbind"] = "close", *, drop_existing: bool = True
    ) -> None:
        """Simulate Asterisk being down.

        ``"close"``: keep listening but close each new connection at once, before the banner.
        ``"unbind"``: stop listening, so connecting fails with "connection refused".
        """
        self._refusing = True
        if drop_existing:
            await self.drop_clients()
        if mode == "unbind" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode == "close" and self._server is None:
            await self._bind(self.host, self.port)

    async def accept_connections(self) -> None:
        """Undo :meth:`refuse_connections` (listening again on the same port if unbound)."""
        self._refusing = False
        if self._server is None:
            await self._bind(self.host, self.port)

    async def restart(self, *, resume: Literal["continue", "end"] = "end", down_for: float = 0.0) -> None:
        """Simulate an Asterisk restart: every client is dropped, and reconnecting clients get a
        new banner, login and ``FullyBooted``.

        ``resume="end"`` (default): the calls died with Asterisk; the rest of the recording is
        discarded and CoreShowChannels lists nothing. ``"continue"``: the stream goes on.
        ``down_for``: stop listening for that many seconds first.
        """
        self.restarts += 1
        if down_for > 0:
            await self.refuse_connections("unbind")
        else:
            await self.drop_clients()
        if resume == "end":
            self._next = self._end
            self._tracker.reset()
            self._check_finished()
        if down_for > 0:
            await asyncio.sleep(down_for)
            await self.accept_connections()
        self._notify()

    async def inject(self, data: bytes) -> None:
        """Send raw bytes (e.g. a hand-made event) to every client that receives events."""
        for session in self._streaming_sessions():
            await self._send(session, data)

    # ---------------------------------------------------------------- connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handler_tasks.add(task)
        self.connections += 1
        session = _Session(reader, writer, self.connections)
        try:
            if self._refusing:
                self.refused += 1
                return
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sessions.add(session)
            self._notify()
            await self._send(session, self.banner)
            while not session.closed:
                action = await self._read_action(reader)
                if action is None:
                    break
                if not await self._dispatch(session, action):
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels a handler, and only one that did not end by itself. This is
            # the top of the connection's task (nobody else awaits it): end quietly, or
            # asyncio's stream callback logs the cancellation as an error.
            pass
        finally:
            self._sessions.discard(session)
            session.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._notify()
            if task is not None:
                self._handler_tasks.discard(task)

    @staticmethod
    async def _read_action(reader: asyncio.StreamReader) -> list[tuple[str, str]] | None:
        headers: list[tuple[str, str]] = []
        while True:
            line = await reader.readline()
            if not line:
                return None  # EOF (a partial action at EOF is discarded, as Asterisk does)
            text = line.rstrip(b"\r\n")
            if not text:
                if headers:
                    return headers
                continue
            key, sep, value = text.decode("utf-8", errors="replace").partition(":")
            headers.append((key.strip(), value.strip() if sep else ""))

    async def _send(self, session: _Session, data: bytes) -> None:
        """Write one whole message to one session (never interleaved with another message)."""
        if session.closed:
            return
        async with session.lock:
            await self._write_locked(session, data)

    async def _write_locked(self, session: _Session, data: bytes) -> None:
        """Write ``data`` (caller holds ``session.lock``), split by ``chunk_size`` if set."""
        if session.closed:
            return
        try:
            if self.chunk_size is None:
                session.writer.write(data)
                await session.writer.drain()
                return
            for i in range(0, len(data), self.chunk_size):
                session.writer.write(data[i : i + self.chunk_size])
                await session.writer.drain()
                # Yield (or wait) so the client gets a chance to read each piece on its own.
                await asyncio.sleep(self.chunk_delay)
                if session.closed:
                    return
        except (ConnectionError, OSError):
            session.close()

    async def _dispatch(self, session: _Session, headers: list[tuple[str, str]]) -> bool:
        """Answer one action. Returns False when the connection must be closed."""
        fields: dict[str, str] = {}
        for key, value in headers:
            fields.setdefault(key, value)
        self.raw_actions.append(list(headers))
        self.actions.append(fields)
        self._notify()
        lower = {k.lower(): v for k, v in reversed(headers)}  # first value wins
        action = lower.get("action", "")
        aid = lower.get("actionid")
        name = action.lower()

        if not action:
            await self._send(session, _response("Error", aid, "Missing action in request"))
            return True
        if not session.logged_in and name not in ("login", "logoff", "challenge"):
            await self._send(session, _response("Error", aid, "Permission denied"))
            return True

        if name in self.refuse:
            await self._send(session, _response("Error", aid, "Permission denied"))
            return True
        if name in self.responders:
            result = self.responders[name](fields)
            raw = result if isinstance(result, bytes) else _response("Success", aid, result)
            await self._send(session, raw)
            return True
        if name == "login":
            return await self._login(session, lower, aid)
        if name == "logoff":
            await self._send(session, _response("Goodbye", aid, "Thanks for all the fish."))
            return False
        if name == "ping":
            # manager.c action_ping: Response, ActionID, Ping: Pong, Timestamp: <sec>.<usec>
            now = time.time()
            sec, usec = int(now), int((now - int(now)) * 1_000_000)
            await self._send(
                session,
                _response("Success", aid, None, [("Ping", "Pong"), ("Timestamp", f"{sec}.{usec:06d}")]),
            )
            return True
        if name == "coreshowchannels":
            await self._core_show_channels(session, aid)
            return True
        if name in DEFAULT_ACK_MESSAGES:
            await self._send(session, _response("Success", aid, DEFAULT_ACK_MESSAGES[name]))
            return True
        await self._send(
            session,
            _response(
                "Error",
                aid,
                f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands.",
            ),
        )
        return True

    async def _login(self, session: _Session, lower: dict[str, str], aid: str | None) -> bool:
        if session.logged_in:
            await self._send(session, _response("Success", aid, "Already authenticated"))
            return True
        user_ok = lower.get("username", "").lower() == self.username.lower()
        if not user_ok or lower.get("secret", "") != self.secret:
            self.failed_logins += 1
            if self.auth_fail_delay > 0:
                await asyncio.sleep(self.auth_fail_delay)
            await self._send(session, _response("Error", aid, "Authentication failed"))
            return False
        session.logged_in = True
        session.events = lower.get("events", "on").strip().lower() not in ("off", "no", "false", "0")
        await self._send(session, _response("Success", aid, "Authentication accepted"))
        # A real Asterisk sends FullyBooted to every session that logs in with events on. The
        # first session gets the recording's own (it is the first streamed message); sessions
        # that log in later get a copy of it.
        fb = self.fully_booted
        if session.events and fb is not None and self._next > fb.index:
            await self._send(session, fb.data)
        self.logins += 1
        session.streaming = session.events and not session.closed
        self._notify()
        return True

    async def _core_show_channels(self, session: _Session, aid: str | None) -> None:
        # manager.c action_coreshowchannels (Asterisk 13+): listack, one CoreShowChannel per
        # channel (ActionID, the channel-state block, Application, ApplicationData, Duration,
        # BridgeId), then CoreShowChannelsComplete (ActionID, EventList, ListItems).
        # Built and written under the session lock, so it reflects exactly the stream messages
        # this session has been sent before it.
        async with session.lock:
            if session.closed:
                return
            id_line = f"ActionID: {aid}\r\n" if aid else ""
            parts = [_response("Success", aid, "Channels will follow", [("EventList", "start")])]
            chans = list(self._tracker.channels.values())
            for chan in chans:
                block = "".join(f"{k}: {chan.snapshot.get(k, '')}\r\n" for k in SNAPSHOT_FIELDS)
                parts.append(
                    (
                        "Event: CoreShowChannel\r\n"
                        f"{id_line}"
                        f"{block}"
                        f"Application: {chan.application}\r\n"
                        f"ApplicationData: {chan.application_data}\r\n"
                        f"Duration: {_duration(self._stream_t - chan.created_t)}\r\n"
                        f"BridgeId: {chan.bridge_id}\r\n"
                        "\r\n"
                    ).encode()
                )
            parts.append(
                (
                    "Event: CoreShowChannelsComplete\r\n"
                    f"{id_line}"
                    "EventList: Complete\r\n"
                    f"ListItems: {len(chans)}\r\n"
                    "\r\n"
                ).encode()
            )
            for part in parts:
                await self._write_locked(session, part)

    # ---------------------------------------------------------------- the player

    def _streaming_sessions(self) -> list[_Session]:
        return [s for s in self._sessions if s.streaming and not s.closed]

    def _check_finished(self) -> None:
        if self._next >= self._end and not self.finished.is_set():
            self.finished.set()
            self._notify()

    def _pass(self, msg: RecordedMessage) -> None:
        """The PBX state moves past ``msg`` (sent or skipped)."""
        self._tracker.apply(msg.headers(), msg.t)
        self._stream_t = msg.t
        self._next = msg.index + 1

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        base_clock: float | None = None  # loop time matching base_t
        base_t = self._stream_t
        while True:
            self._check_finished()
            if self._next >= self._end:
                return
            msg = self.messages[self._next]
            if self._pauses and msg.start >= self._pauses[0]:
                self._pauses.pop(0)
                self._paused = True
                self._notify()

            def ready(msg: RecordedMessage = msg) -> bool:
                moved = self._next >= self._end or self.messages[self._next] is not msg
                return moved or (bool(self._streaming_sessions()) and not self._paused)

            if not ready():
                base_clock = None  # we are about to wait: restart the clock afterwards
                await self._until(ready)
            if self._next >= self._end or self.messages[self._next] is not msg:
                continue  # the stream moved (restart/skip) while we waited
            if base_clock is None:
                base_clock, base_t = loop.time(), self._stream_t
            if self.has_timing and not math.isinf(self.speed):
                delay = base_clock + (msg.t - base_t) / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self._next >= self._end or self.messages[self._next] is not msg:
                continue
            sessions = self._streaming_sessions()
            if not sessions:
                base_clock = None  # link down: restart the clock when someone is back
                continue

            drop = next((d for d in self._drops if msg.start < d <= msg.end), None)
            if drop is None:
                # The PBX state moves past msg only together with its bytes on every wire: a
                # CoreShowChannels answer (built under the same lock) never lists a channel whose
                # Newchannel the client has not been sent yet.
                async with contextlib.AsyncExitStack() as locks:
                    for session in sessions:
                        await locks.enter_async_context(session.lock)
                    self._pass(msg)
                    for session in sessions:
                        await self._write_locked(session, msg.data)
                continue

            # Fault: send up to the drop point, then cut every connection.
            self._drops.remove(drop)
            self.drops += 1
            if drop == msg.end:
                self._pass(msg)
                resume_pos = msg.end
            else:
                resume_pos = msg.start
            for session in sessions:
                await self._send(session, self.recording[msg.start : drop])
            for session in list(self._sessions):
                session.close()
            base_clock = None
            if self.resume == "end":
                while self._next < self._end:
                    self._pass(self.messages[self._next])
            else:
                limit = resume_pos + self.skip_while_down
                while self._next < self._end and self.messages[self._next].start < limit:
                    self._pass(self.messages[self._next])
            self._notify()
