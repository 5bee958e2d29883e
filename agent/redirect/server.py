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

from prometheus_client import CollectorRegistry, Counter, Histogram

from agent.config.checks import check_enterprise
from agent.config.sections import AgiSection, PbxSection
from agent.redirect.answers import Answer
from agent.redirect.router import Router
from agent.redirect.session import AgiSession
from agent.redirect.variables import Status
from agent.redirect.wire import peer_ip
from agent.web.health import ComponentHealth, HealthRegistry

log = logging.getLogger(__name__)

HEALTH_NAME = "agi"
HOST_RESOLVE_TIMEOUT_S = 2.0


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
    """`start()` listens, `stop()` closes (the agent calls both, in its start-up and shut-down order); each
    connection is an agent.redirect.session.AgiSession."""

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
        self.sessions: set[AgiSession] = set()
        self._metrics = _Metrics(registry) if registry is not None else None
        self.port: int | None = None
        self.answered = 0  # answers sent since start (tests, bench)

    async def start(self) -> None:
        await self._resolve_hosts()
        listen = self.config.listen
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: AgiSession(self), listen.host, listen.port, reuse_address=True, backlog=1024
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
            for session in list(self.sessions):
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

    def count(self, answer: Answer, seconds: float) -> None:
        self.answered += 1
        if self._metrics is not None:
            self._metrics.by_status[answer.status].inc()
            (self._metrics.cache_hit if answer.cached else self._metrics.cache_miss).inc()
            self._metrics.seconds.observe(seconds)

    def reject(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.rejected.labels(reason).inc()


def hosts_of(pbx: Iterable[PbxSection]) -> dict[str, str]:
    """[[pbx]] sections -> host -> enterprise, "" for a host that serves several enterprises."""
    out: dict[str, str] = {}
    for section in pbx:
        host, enterprise = section.host, section.enterprise
        out[host] = "" if out.get(host, enterprise) != enterprise else enterprise
    return out
