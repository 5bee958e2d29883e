"""FastAGI server for `smart-redirect`: the responsible manager's extension, within [agi] deadline_ms.

The dialplan runs `AGI(agi://HOST:4573/smart-redirect[,ENTERPRISE])`. For each connection:

1. read the request (`agi_<name>: <value>` lines, LF or CRLF, up to an empty line; at most
   `MAX_REQUEST_BYTES`; it must be complete before the deadline), else log and close;
2. pick the enterprise: `agi_arg_1` if given, else the [[pbx]] whose host is the peer's address, else
   the only configured enterprise;
3. ask `Router` (a cache hit is answered synchronously, in the same event-loop turn);
4. send `SET VARIABLE` for REDIRECT_EXTEN, REDIRECT_STATUS, REDIRECT_MANAGER, REDIRECT_CRM, one at a
   time, each after Asterisk's `200 result=1` for the previous one (Asterisk reads the AGI socket
   through a stdio buffer and polls the raw fd, so pipelined commands can sit unread: never pipeline);
5. half-close (`write_eof`) and read until Asterisk closes, swallowing its trailing `HANGUP` line.

The first command leaves within `deadline_ms` of the connection's arrival in every case: a timer armed
at accept time answers `TIMEOUT` (or closes a request that never completed) whatever the router, the
CRMs or the database are doing. Any failure of ours answers the one fixed fallback (`ERROR`, empty
extension), so the dialplan goes to its queue rather than leaving the caller in silence.

Why not panoramisk's FastAGI `Application`: its header loop (`while b'\\n\\n' not in buffer: buffer +=
await reader.read(100)`) spins forever once the peer closes early, reads without any size limit or
time limit, cuts the headers with `buffer[:-2]` (wrong when more than the request arrived), catches
`BaseException` around handlers (swallowing cancellation), wraps plain functions with the removed
`asyncio.coroutine`, and closes without reading Asterisk's `HANGUP`. None of that meets the deadline and
bad-input rules, so this is a thin `asyncio.Protocol` instead (no task, no StreamReader per connection:
a cache hit costs one `data_received` call).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from agent.config.sections import AgiSection, PbxSection, check_enterprise
from agent.redirect import variables as dv
from agent.redirect.answers import Answer
from agent.redirect.router import Router
from agent.redirect.variables import Status
from agent.redirect.wire import AgiRequestError, commands_for, parse_request, peer_ip, request_end, script_of
from agent.web.health import ComponentHealth, HealthRegistry

log = logging.getLogger(__name__)

HEALTH_NAME = "agi"
MAX_REQUEST_BYTES = 16 * 1024  # a real request is about 550 bytes
MAX_LINE_BYTES = 4 * 1024  # one reply line from Asterisk
REPLY_TIMEOUT_S = 5.0  # Asterisk answers a SET VARIABLE in microseconds; give up on a stuck peer
LINGER_S = 2.0  # after our half-close, how long we wait for Asterisk's HANGUP and close
DEADLINE_MARGIN_S = 0.005  # the TIMEOUT answer is sent this much before the deadline
HOST_RESOLVE_TIMEOUT_S = 2.0
FALLBACK = Answer(Status.ERROR)


class _State(Enum):
    REQUEST = 1
    RESOLVING = 2
    SENDING = 3
    DRAINING = 4
    CLOSED = 5


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        requests = Counter("pbx_agent_agi_requests", "smart-redirect answers by status", ["status"], registry=registry)
        self.by_status = {s: requests.labels(s.value) for s in Status}
        self.rejected = Counter(
            "pbx_agent_agi_rejected", "FastAGI connections closed without an answer", ["reason"], registry=registry
        )
        cache = Counter(
            "pbx_agent_routing_cache",
            "smart-redirect answers from the cache (hit) or after asking "
            "the CRMs (miss); hit ratio = hit / (hit + miss)",
            ["result"],
            registry=registry,
        )
        self.cache_hit, self.cache_miss = cache.labels("hit"), cache.labels("miss")
        self.seconds = Histogram(
            "pbx_agent_agi_answer_seconds",
            "From accept to the first SET VARIABLE",
            registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2),
        )


class AgiServer:
    """`start()` listens, `stop()` closes; `run()` serves until cancelled (for the agent's Supervisor)."""

    def __init__(
        self,
        config: AgiSection,
        router: Router,
        health: HealthRegistry | None = None,
        pbx_hosts: Mapping[str, str] | None = None,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`pbx_hosts`: [[pbx]] host -> enterprise (`hosts_of(config.pbx)`); "" marks a host shared by several."""
        self.config = config
        self.router = router
        self.deadline_s = config.deadline_ms / 1000
        self.health: ComponentHealth | None = health.register(HEALTH_NAME, critical=True) if health else None
        self._pbx_hosts = dict(pbx_hosts or {})
        enterprises = set(self._pbx_hosts.values())
        self._only = enterprises.pop() if len(enterprises) == 1 and "" not in enterprises else None
        self._by_ip: dict[str, str] = {}
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._metrics = _Metrics(registry) if registry is not None else None
        self.port: int | None = None
        self.answered = 0  # answers sent since start (tests, bench)

    async def start(self) -> None:
        await self._resolve_hosts()
        listen = self.config.listen
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Session(self), listen.host, listen.port, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            if self.health:
                self.health.set("down", error=f"cannot listen on {listen}: {exc.strerror}")
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        if self.health:
            self.health.set("ok", listen=f"{listen.host}:{self.port}", error=None)
        log.info("FastAGI listening on %s:%d (deadline %d ms)", listen.host, self.port, self.config.deadline_ms)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in list(self._sessions):
                session.abort()
            await self._server.wait_closed()
            self._server = None
        if self.health:
            self.health.set("down", error="stopped")

    async def _resolve_hosts(self) -> None:
        loop = asyncio.get_running_loop()
        by_ip: dict[str, str] = {}
        for host, enterprise in self._pbx_hosts.items():
            ips = {peer_ip(host)} - {None}
            if not ips:
                try:
                    async with asyncio.timeout(HOST_RESOLVE_TIMEOUT_S):
                        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
                    ips = {peer_ip(str(info[4][0])) for info in infos} - {None}
                except (OSError, TimeoutError) as exc:
                    log.warning("FastAGI: cannot resolve [[pbx]] host %s (%s); its requests need agi_arg_1", host, exc)
            for ip in ips:
                assert ip is not None
                by_ip[ip] = "" if by_ip.get(ip, enterprise) != enterprise else enterprise
        self._by_ip = by_ip

    def enterprise_for(self, headers: Mapping[str, str], source_ip: str | None) -> str | None:
        arg = headers.get("agi_arg_1", "").strip()
        if arg:
            return arg if check_enterprise(arg) is None else None
        if source_ip is not None:
            by_host = self._by_ip.get(source_ip)
            if by_host:
                return by_host
        return self._only

    def _count(self, answer: Answer, seconds: float) -> None:
        self.answered += 1
        if self._metrics is not None:
            self._metrics.by_status[answer.status].inc()
            (self._metrics.cache_hit if answer.cached else self._metrics.cache_miss).inc()
            self._metrics.seconds.observe(seconds)

    def _reject(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.rejected.labels(reason).inc()


def hosts_of(pbx: Iterable[PbxSection]) -> dict[str, str]:
    """[[pbx]] sections -> host -> enterprise, "" for a host that serves several enterprises."""
    out: dict[str, str] = {}
    for section in pbx:
        host, enterprise = section.host, section.enterprise
        out[host] = "" if out.get(host, enterprise) != enterprise else enterprise
    return out


class _Session(asyncio.Protocol):
    """One FastAGI connection: request → answer → half-close → Asterisk's HANGUP → closed."""

    def __init__(self, server: AgiServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.state = _State.REQUEST
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
        self.server._sessions.add(self)
        self._arm(self.arrival + max(self.server.deadline_s - DEADLINE_MARGIN_S, 0.0), self._on_deadline)

    def data_received(self, data: bytes) -> None:
        if self.state is _State.REQUEST:
            self._on_request_bytes(data)
        elif self.state is _State.SENDING:
            self._on_reply_bytes(data)
        elif self.state is _State.DRAINING:
            self.buf += data  # Asterisk's HANGUP line; bounded in case of a chatty peer
            if len(self.buf) > MAX_LINE_BYTES:
                self._close()
        # RESOLVING: Asterisk sends nothing before our first command; a HANGUP now means the call is gone,
        # which changes nothing: the answer still goes out (to a closed channel, harmlessly).

    def eof_received(self) -> bool | None:
        if self.state is _State.REQUEST:
            self.server._reject("peer closed")
            log.info("FastAGI %s: peer closed before the request was complete (%d bytes)", self.peer, len(self.buf))
        elif self.state in (_State.RESOLVING, _State.SENDING):
            log.info("FastAGI %s: %s peer closed before the answer was complete", self.peer, self.what)
        self._close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = _State.CLOSED
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()  # only our wait: the lookup itself goes on in the router
        self.server._sessions.discard(self)

    # --- reading the request -----------------------------------------------------------------------

    def _on_request_bytes(self, data: bytes) -> None:
        self.buf += data
        end = request_end(self.buf)
        if end is None:
            if len(self.buf) > MAX_REQUEST_BYTES:
                self.server._reject("oversized")
                log.warning("FastAGI %s: request over %d bytes with no end; closed", self.peer, MAX_REQUEST_BYTES)
                self._close()
            return
        raw, rest = self.buf[: end[0]], self.buf[end[1] :]
        self.buf = rest  # anything after the request would be replies: Asterisk sends none before a command
        if end[0] > MAX_REQUEST_BYTES:
            self.server._reject("oversized")
            log.warning("FastAGI %s: request of %d bytes (over %d); closed", self.peer, end[0], MAX_REQUEST_BYTES)
            self._close()
            return
        try:
            headers = parse_request(raw)
        except AgiRequestError as exc:
            self.server._reject("malformed")
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
        self.state = _State.RESOLVING
        self.task = asyncio.create_task(router.resolve(enterprise, self.caller), name=f"agi:{self.what}")
        self.task.add_done_callback(self._on_resolved)

    def _on_resolved(self, task: asyncio.Task[Answer]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if self.state is not _State.RESOLVING:
            return
        if exc is not None:
            log.error("FastAGI %s: %s smart-redirect failed", self.peer, self.what, exc_info=exc)
            self._send(FALLBACK)
        else:
            self._send(task.result())

    def _on_deadline(self) -> None:
        if self.state is _State.REQUEST:
            self.server._reject("incomplete")
            log.warning(
                "FastAGI %s: no complete request within %d ms (%d bytes); closed",
                self.peer,
                self.server.config.deadline_ms,
                len(self.buf),
            )
            self._close()
        elif self.state is _State.RESOLVING:
            if self.task is not None:
                self.task.cancel()
            self._send(Answer(Status.TIMEOUT))
        elif self.state in (_State.SENDING, _State.DRAINING):
            # One timer per session: the deadline's, moved on here only if the session outlives it.
            limit = self.phase_started + (REPLY_TIMEOUT_S if self.state is _State.SENDING else LINGER_S)
            if self.loop.time() < limit:
                self._arm(limit, self._on_deadline)
            else:  # a peer that stopped answering, or never closed
                self._close()

    # --- answering ---------------------------------------------------------------------------------

    def _send(self, answer: Answer) -> None:
        seconds = self.loop.time() - self.arrival
        self.server._count(answer, seconds)
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
        self.state = _State.SENDING
        self.phase_started = self.loop.time()
        self._next_command()
        if self.buf and self.state is _State.SENDING:
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
        while self.state is _State.SENDING:
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
        self.state = _State.DRAINING
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
        if self.transport is not None and self.state is not _State.CLOSED:
            self.state = _State.CLOSED
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and self.state is not _State.CLOSED:
            self.state = _State.CLOSED
            self.transport.abort()
