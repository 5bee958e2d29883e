"""One AMI link per [[pbx]]: login, ping, reconnect forever, reconcile after every (re)connect.

Built on panoramisk's action/response handling (`Action` futures keyed by ActionID, EventList
completion) behind a thin layer of ours that fixes what its users tripped over:
- framing happens on bytes (our `AmiFrameParser`) before decoding, so a UTF-8 name split across two
  TCP reads is whole;
- a Ping whose reply does not come within `ping_timeout` drops the connection;
- actions still pending when the connection drops fail with `AmiNotConnected`; they are never
  re-sent (an Originate must not ring twice);
- an `Async: true` action (Originate) completes with Asterisk's immediate answer, not with the
  OriginateResponse event that comes when the call is answered or fails (that event goes to the tracker);
- reconnection backs off exponentially up to 5 s; a refused login is its own state, reported in
  /health and retried slowly, never a crash loop.
The bytes come from a connector (agent.ingest.transport): plain TCP, or a channel through SSH to a remote PBX,
whose refusals (host key not trusted, SSH login refused) are retried slowly like a refused AMI login.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from panoramisk.actions import Action
from panoramisk.message import Message

from agent.config.checks import Address
from agent.config.sections import PbxSection
from agent.ingest.frame import AmiFrameParser, AmiMessage
from agent.ingest.ssh import SshRefused
from agent.ingest.transport import Connector, connector_for
from agent.web.health import ComponentHealth

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 5.0
AUTH_RETRY_S = 30.0
LOGIN_TIMEOUT_S = 5.0
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 5.0
RECONCILE_TIMEOUT_S = 10.0
# The event classes call tracking needs: call (channels, dials, bridges, transfers, hangups),
# agent (queue members), dialplan (VarSet MIXMONITOR_FILENAME), system (FullyBooted).
EVENT_CLASSES = "call,agent,dialplan,system"

EventHandler = Callable[[list[AmiMessage], datetime], None]
ReconcileHandler = Callable[[list[AmiMessage], datetime], None]


class AmiNotConnected(ConnectionError):
    """The action was not sent, or its answer cannot come: the link is down."""


class AmiLoginFailed(Exception):
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Protocol(asyncio.Protocol):
    def __init__(self, link: AmiLink) -> None:
        self.link = link
        self.parser = AmiFrameParser()
        self.pending: dict[str, Action] = {}
        loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[str] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        # Events that follow the CoreShowChannels snapshot wait until the snapshot is applied, so
        # the tracker sees: events before the snapshot, the snapshot, events after it.
        self.snapshot_id: str | None = None
        self.last_action_id: str | None = None
        self.held: list[tuple[list[AmiMessage], datetime]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = self.link.clock()
        events: list[AmiMessage] = []
        for msg in self.parser.feed(data):
            if msg.is_banner:
                if self.banner.done():  # a second banner: whatever is behind this socket restarted
                    self.close()
                    break
                self.banner.set_result(msg["Banner"])
                continue
            action_id = msg.get("ActionID")
            if action_id is not None:
                action = self.pending.get(action_id)
                if action is not None:
                    if action_id == self.snapshot_id and self.held is None:
                        self._deliver(events, now)
                        events = []
                        self.held = []
                    if action.add_message(Message(msg)):
                        self.pending.pop(action_id, None)
                    continue
            if "Event" in msg:
                events.append(msg)
        self._deliver(events, now)

    def _deliver(self, events: list[AmiMessage], now: datetime) -> None:
        if not events:
            return
        if self.held is not None:
            self.held.append((events, now))
        else:
            self.link._on_events(events, now)

    def release_held(self) -> None:
        held, self.held, self.snapshot_id = self.held or [], None, None
        for events, at in held:
            self.link._on_events(events, at)

    def connection_lost(self, exc: Exception | None) -> None:
        for action in self.pending.values():
            if not action.future.done():
                action.future.set_exception(AmiNotConnected("AMI connection lost before the answer came"))
        self.pending.clear()
        if not self.banner.done():
            self.banner.set_exception(AmiNotConnected("AMI connection closed before the banner"))
        if not self.lost.done():
            self.lost.set_result(None)

    def send(self, fields: Mapping[str, Any]) -> asyncio.Future[Any]:
        if self.transport is None or self.transport.is_closing():
            raise AmiNotConnected("AMI link is down")
        # panoramisk would hold an `Async: true` action open until its OriginateResponse event, i.e.
        # until the call is answered or fails; its answer is the "successfully queued" response.
        action = Action(dict(fields), as_list=False if _is_async(fields) else None)
        self.pending[action.action_id] = action
        self.last_action_id = action.action_id
        self.transport.write(str(action).encode("utf-8"))
        future: asyncio.Future[Any] = action.future
        return future

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _is_async(fields: Mapping[str, Any]) -> bool:
    return any(k.lower() == "async" and str(v).lower() in ("true", "yes", "1") for k, v in fields.items())


def why(exc: BaseException) -> str:
    """What a failed connection says in /health and the log."""
    if isinstance(exc, AmiLoginFailed):
        return f"login refused: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the PBX's TLS certificate was not accepted: {exc.verify_message or exc.reason}"
    return str(exc) or type(exc).__name__


class AmiLink:
    """Keeps one AMI connection alive and hands the events of each read to `on_event` (never awaited)."""

    def __init__(
        self,
        pbx: PbxSection,
        on_event: EventHandler,
        on_reconcile: ReconcileHandler,
        health: ComponentHealth,
        *,
        on_reconnect: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        ping_interval: float = PING_INTERVAL_S,
        ping_timeout: float = PING_TIMEOUT_S,
        auth_retry: float = AUTH_RETRY_S,
        connector: Connector | None = None,
    ) -> None:
        self.pbx = pbx
        self.on_event = on_event
        self.on_reconcile = on_reconcile
        self.on_reconnect = on_reconnect
        self.health = health
        self.clock = clock
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.auth_retry = auth_retry
        self.reconnects = 0
        self.connected = asyncio.Event()
        self.lost_at: datetime | None = None  # when the last connection of this process went down
        self._protocol: _Protocol | None = None
        self._connections = 0
        self.connector = connector or connector_for(pbx)
        health.set(
            "down", connected=False, since=None, last_event_at=None, reconnects=0, address=f"{pbx.host}:{pbx.port}"
        )
        if pbx.tls is not None:
            health.details["tls"] = True
        if self.connector.via is not None:
            health.details.update(via=self.connector.via, ssh_refused=False)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self.connector.close()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
                failures = 0
            except AmiLoginFailed as exc:
                self._down(why(exc), auth_failed=True)
                log.error(
                    "AMI %s: login refused (%s); check username/secret; retrying in %.0f s",
                    self.pbx.name,
                    exc,
                    self.auth_retry,
                )
                await asyncio.sleep(self.auth_retry)
                continue
            except SshRefused as exc:
                self._down(str(exc), ssh_refused=True)
                log.error("AMI %s: %s; retrying in %.0f s", self.pbx.name, exc, self.auth_retry)
                await asyncio.sleep(self.auth_retry)
                continue
            except ssl.SSLCertVerificationError as exc:  # a setting to fix, like a refused login: said loudly
                reason = why(exc)
                self._down(reason)
                log.error("AMI %s: %s; check [[pbx]] tls; retrying in %.0f s", self.pbx.name, reason, self.auth_retry)
                await asyncio.sleep(self.auth_retry)
                continue
            except (OSError, TimeoutError, AmiNotConnected) as exc:
                failures += 1
                reason = why(exc)
                if failures == 1:
                    log.warning("AMI %s: %s", self.pbx.name, reason)
                self._down(reason)
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, failures - 1))
            await asyncio.sleep(delay)

    async def session(self) -> None:
        """One connection and no retry (`run` retries it; `pbx-agent check-pbx` does not): logs in, reconciles
        and keeps the connection until it drops; raises what kept it from being made (`why` words it)."""
        await self._session()

    async def send_action(self, fields: Mapping[str, Any], within: float = 10.0) -> Any:
        """Send one action and wait for its answer; AmiNotConnected when the link is down."""
        protocol = self._protocol
        if protocol is None or not self.connected.is_set():
            raise AmiNotConnected(f"AMI link {self.pbx.name} is down")
        async with asyncio.timeout(within):
            return await protocol.send(fields)

    # -- one connection -------------------------------------------------------------------------

    async def _session(self) -> None:
        where = Address(self.pbx.host, self.pbx.port)
        try:
            async with asyncio.timeout(self.connector.timeout):
                protocol = await self.connector.connect(lambda: _Protocol(self))
        except TimeoutError as exc:
            raise TimeoutError(str(exc) or f"no connection to {where} within {self.connector.timeout:g} s") from None
        except ConnectionRefusedError:
            raise ConnectionRefusedError(
                f"{where} refused the connection: is AMI on there (manager.conf [general] enabled, bindaddr, port)?"
            ) from None
        except ssl.SSLCertVerificationError:
            raise
        except ssl.SSLError as exc:  # the port speaks no TLS (plain AMI answers with its greeting)
            raise ConnectionError(
                f"TLS with {where} failed ({exc.reason or exc}): is it AMI over TLS (manager.conf tlsenable)?"
            ) from None
        self._protocol = protocol
        step = "greeting"
        try:
            try:
                async with asyncio.timeout(LOGIN_TIMEOUT_S):
                    banner = await protocol.banner
                    step = "answer to Login"
                    answer = await protocol.send(
                        {
                            "Action": "Login",
                            "Username": self.pbx.username,
                            "Secret": self.pbx.secret,
                            "Events": EVENT_CLASSES,
                        }
                    )
            except TimeoutError:
                hint = ""
                if step == "greeting":
                    hint = ": is it Asterisk's AMI port" + (
                        " (a TLS one needs [[pbx]] tls)?" if not self.pbx.tls else "?"
                    )
                raise TimeoutError(f"no AMI {step} from {where} within {LOGIN_TIMEOUT_S:g} s{hint}") from None
            if answer.get("Response") != "Success":
                raise AmiLoginFailed(answer.get("Message") or "authentication failed")
            self._connections += 1
            if self._connections > 1:
                self.reconnects += 1
                if self.on_reconnect is not None:
                    self.on_reconnect()
            now = time.time()
            self.health.set("ok", connected=True, since=now, reconnects=self.reconnects, error=None, banner=banner)
            self.connected.set()
            via = f" via {self.connector.via}" if self.connector.via else " over TLS" if self.pbx.tls else ""
            log.info("AMI %s: connected to %s:%d%s (%s)", self.pbx.name, self.pbx.host, self.pbx.port, via, banner)
            await self._reconcile(protocol)
            await self._keepalive(protocol)
        finally:
            if self.connected.is_set():
                self.lost_at = self.clock()
            self.connected.clear()
            self._protocol = None
            protocol.close()

    async def _reconcile(self, protocol: _Protocol) -> None:
        future = protocol.send({"Action": "CoreShowChannels"})
        protocol.snapshot_id = protocol.last_action_id
        try:
            async with asyncio.timeout(RECONCILE_TIMEOUT_S):
                answer = await future
            messages = answer if isinstance(answer, list) else [answer]
            channels = [AmiMessage(m) for m in messages if m.get("Event") == "CoreShowChannel"]
            self.on_reconcile(channels, self.clock())
        finally:
            protocol.release_held()

    async def _keepalive(self, protocol: _Protocol) -> None:
        while not protocol.lost.done():
            done, _ = await asyncio.wait({protocol.lost}, timeout=self.ping_interval)
            if done:
                break
            try:
                async with asyncio.timeout(self.ping_timeout):
                    answer = await protocol.send({"Action": "Ping"})
            except TimeoutError:
                raise AmiNotConnected(f"no answer to Ping within {self.ping_timeout:g} s") from None
            if answer.get("Response") != "Success":
                raise AmiNotConnected(f"Ping refused: {answer.get('Message', '')}")
        raise AmiNotConnected("AMI connection closed by the peer")

    def _on_events(self, events: list[AmiMessage], at: datetime) -> None:
        self.health.details["last_event_at"] = at.timestamp()
        self.on_event(events, at)

    def _down(self, reason: str, auth_failed: bool = False, ssh_refused: bool = False) -> None:
        self.health.set("down", connected=False, error=reason, auth_failed=auth_failed, reconnects=self.reconnects)
        if self.connector.via is not None:
            self.health.details["ssh_refused"] = ssh_refused
