"""One FastAGI connection, as an `asyncio.Protocol` (no task, no StreamReader: a cache hit costs one
`data_received` call): request → answer → half-close → Asterisk's HANGUP → closed, every step bounded in
size and time, and the first command sent within the server's deadline whatever happens (see
agent.redirect.server for the whole protocol and why not panoramisk's)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from enum import Enum
from typing import Any, Protocol

from agent.config.sections import AgiSection
from agent.redirect import variables as dv
from agent.redirect.answers import Answer
from agent.redirect.router import Router
from agent.redirect.variables import Status
from agent.redirect.wire import AgiRequestError, commands_for, parse_request, peer_ip, request_end, script_of

log = logging.getLogger("agent.redirect.server")  # one log for the FastAGI server and its connections

MAX_REQUEST_BYTES = 16 * 1024  # a real request is about 550 bytes
MAX_LINE_BYTES = 4 * 1024  # one reply line from Asterisk
REPLY_TIMEOUT_S = 5.0  # Asterisk answers a SET VARIABLE in microseconds; give up on a stuck peer
LINGER_S = 2.0  # after our half-close, how long we wait for Asterisk's HANGUP and close
DEADLINE_MARGIN_S = 0.005  # the TIMEOUT answer is sent this much before the deadline
FALLBACK = Answer(Status.ERROR)


class State(Enum):
    REQUEST = 1
    RESOLVING = 2
    SENDING = 3
    DRAINING = 4
    CLOSED = 5


class SessionHost(Protocol):
    """What a connection needs of its server (agent.redirect.server.AgiServer)."""

    config: AgiSection
    router: Router
    deadline_s: float
    sessions: set[AgiSession]

    def enterprise_for(self, headers: Mapping[str, str], source_ip: str | None) -> str | None: ...

    def count(self, answer: Answer, seconds: float) -> None: ...

    def reject(self, reason: str) -> None: ...


class AgiSession(asyncio.Protocol):
    """One FastAGI connection: request → answer → half-close → Asterisk's HANGUP → closed."""

    def __init__(self, server: SessionHost) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.state = State.REQUEST
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[Answer] | None = None
        self.commands: list[bytes] = []
        self.arrival = 0.0
        self.peer = "?"
        self.peer_ip: str | None = None
        self.what = "?"  # how the log names this request: its channel Uniqueid
        self.enterprise = ""
        self.caller = ""
        self.failed_replies = 0
        self.phase_started = 0.0

    # --- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.arrival = self.loop.time()
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = f"{peer[0]}:{peer[1]}"
            self.peer_ip = peer_ip(str(peer[0]))
        self.server.sessions.add(self)
        self._arm(self.arrival + max(self.server.deadline_s - DEADLINE_MARGIN_S, 0.0), self._on_deadline)

    def data_received(self, data: bytes) -> None:
        if self.state is State.REQUEST:
            self._on_request_bytes(data)
        elif self.state is State.SENDING:
            self._on_reply_bytes(data)
        elif self.state is State.DRAINING:
            self.buf += data  # Asterisk's HANGUP line; bounded in case of a chatty peer
            if len(self.buf) > MAX_LINE_BYTES:
                self._close()
        # RESOLVING: Asterisk sends nothing before our first command; a HANGUP now means the call is gone,
        # which changes nothing: the answer still goes out (to a closed channel, harmlessly).

    def eof_received(self) -> bool | None:
        if self.state is State.REQUEST:
            self.server.reject("peer closed")
            log.info("FastAGI %s: peer closed before the request was complete (%d bytes)", self.peer, len(self.buf))
        elif self.state in (State.RESOLVING, State.SENDING):
            log.info("FastAGI %s: %s peer closed before the answer was complete", self.peer, self.what)
        self._close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = State.CLOSED
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()  # only our wait: the lookup itself goes on in the router
        self.server.sessions.discard(self)

    # --- reading the request -----------------------------------------------------------------------

    def _on_request_bytes(self, data: bytes) -> None:
        self.buf += data
        end = request_end(self.buf)
        if end is None:
            if len(self.buf) > MAX_REQUEST_BYTES:
                self.server.reject("oversized")
                log.warning("FastAGI %s: request over %d bytes with no end; closed", self.peer, MAX_REQUEST_BYTES)
                self._close()
            return
        raw, rest = self.buf[: end[0]], self.buf[end[1] :]
        self.buf = rest  # anything after the request would be replies: Asterisk sends none before a command
        if end[0] > MAX_REQUEST_BYTES:
            self.server.reject("oversized")
            log.warning("FastAGI %s: request of %d bytes (over %d); closed", self.peer, end[0], MAX_REQUEST_BYTES)
            self._close()
            return
        try:
            headers = parse_request(raw)
        except AgiRequestError as exc:
            self.server.reject("malformed")
            log.warning("FastAGI %s: malformed request (%s); closed", self.peer, exc)
            self._close()
            return
        self._on_request(headers)

    def _on_request(self, headers: dict[str, str]) -> None:
        self.what = headers.get("agi_uniqueid", "").strip() or "?"
        script = script_of(headers)
        if script != dv.SCRIPT:
            log.warning("FastAGI %s: %s unknown script %r; answering %s", self.peer, self.what, script, FALLBACK.status)
            self._send(FALLBACK)
            return
        enterprise = self.server.enterprise_for(headers, self.peer_ip)
        self.caller = headers.get("agi_callerid", "").strip()
        if enterprise is None:
            log.warning(
                "FastAGI %s: %s no enterprise (no valid agi_arg_1, no [[pbx]] on this host, and not "
                "exactly one enterprise configured); answering %s",
                self.peer,
                self.what,
                FALLBACK.status,
            )
            self._send(FALLBACK)
            return
        self.enterprise = enterprise
        router = self.server.router
        try:
            answer = router.cached(enterprise, self.caller)
        except Exception:
            log.exception("FastAGI %s: %s smart-redirect failed", self.peer, self.what)
            answer = FALLBACK
        if answer is not None:
            self._send(answer)
            return
        self.state = State.RESOLVING
        self.task = asyncio.create_task(router.resolve(enterprise, self.caller), name=f"agi:{self.what}")
        self.task.add_done_callback(self._on_resolved)

    def _on_resolved(self, task: asyncio.Task[Answer]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if self.state is not State.RESOLVING:
            return
        if exc is not None:
            log.error("FastAGI %s: %s smart-redirect failed", self.peer, self.what, exc_info=exc)
            self._send(FALLBACK)
        else:
            self._send(task.result())

    def _on_deadline(self) -> None:
        if self.state is State.REQUEST:
            self.server.reject("incomplete")
            log.warning(
                "FastAGI %s: no complete request within %d ms (%d bytes); closed",
                self.peer,
                self.server.config.deadline_ms,
                len(self.buf),
            )
            self._close()
        elif self.state is State.RESOLVING:
            if self.task is not None:
                self.task.cancel()
            self._send(Answer(Status.TIMEOUT))
        elif self.state in (State.SENDING, State.DRAINING):
            # One timer per session: the deadline's, moved on here only if the session outlives it.
            limit = self.phase_started + (REPLY_TIMEOUT_S if self.state is State.SENDING else LINGER_S)
            if self.loop.time() < limit:
                self._arm(limit, self._on_deadline)
            else:  # a peer that stopped answering, or never closed
                self._close()

    # --- answering ---------------------------------------------------------------------------------

    def _send(self, answer: Answer) -> None:
        seconds = self.loop.time() - self.arrival
        self.server.count(answer, seconds)
        log.info(
            "smart-redirect %s enterprise=%s caller=%s status=%s exten=%s crm=%s reason=%s source=%s cached=%s ms=%.1f",
            self.what,
            self.enterprise or "-",
            self.caller or "-",
            answer.status.value,
            answer.extension or "-",
            answer.crm or "-",
            answer.reason or "-",
            answer.source or "-",
            "yes" if answer.cached else "no",
            seconds * 1000,
        )
        self.commands = list(commands_for(answer))
        self.state = State.SENDING
        self.phase_started = self.loop.time()
        self._next_command()
        if self.buf and self.state is State.SENDING:
            data, self.buf = self.buf, b""
            self._on_reply_bytes(data)

    def _next_command(self) -> None:
        assert self.transport is not None
        if self.commands:
            self.transport.write(self.commands.pop())
            return
        self._finish()

    def _on_reply_bytes(self, data: bytes) -> None:
        self.buf += data
        while self.state is State.SENDING:
            nl = self.buf.find(b"\n")
            if nl < 0:
                if len(self.buf) > MAX_LINE_BYTES:
                    log.warning("FastAGI %s: %s reply line over %d bytes; closed", self.peer, self.what, MAX_LINE_BYTES)
                    self._close()
                return
            line, self.buf = self.buf[:nl].rstrip(b"\r"), self.buf[nl + 1 :]
            if line.startswith(b"200 "):
                self._next_command()
            elif line == b"HANGUP":  # the caller hung up: nobody will read the rest
                self._finish()
            elif line.startswith(b"100 ") or line[3:4] == b"-" or not line:  # "100 Trying", usage lines
                continue
            else:
                self.failed_replies += 1
                if self.failed_replies == 1:
                    log.warning(
                        "FastAGI %s: %s Asterisk answered %r",
                        self.peer,
                        self.what,
                        line[:80].decode("utf-8", "replace"),
                    )
                self._next_command()

    def _finish(self) -> None:
        """Half-close and wait for Asterisk's HANGUP and close, bounded by LINGER_S."""
        assert self.transport is not None
        self.state = State.DRAINING
        self.buf = b""
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.phase_started = self.loop.time()
        else:
            self._close()

    def _arm(self, when: float, callback: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(when, callback)

    def _close(self) -> None:
        if self.transport is not None and self.state is not State.CLOSED:
            self.state = State.CLOSED
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and self.state is not State.CLOSED:
            self.state = State.CLOSED
            self.transport.abort()
