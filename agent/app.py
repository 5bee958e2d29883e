"""`pbx-agent run`: bring the parts up in order, report READY, and take them down in reverse.

`Agent.run` reads as the architecture: each part (agent.parts) is an async context manager built from what
the ones before it hand over; they stop in reverse order as the block ends."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from agent.config.load import load
from agent.config.sections import Config, ConfigError
from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox, OutboxPolicy
from agent.delivery.planner import Planner
from agent.ingest.links import PbxManager
from agent.ingest.originate import Originator
from agent.ingest.pipeline import CallEventSink, PbxPipeline
from agent.life.logs import register_secret
from agent.life.sdnotify import Notifier
from agent.life.supervisor import Supervisor
from agent.parts.delivery import delivery_part, run_outbox
from agent.parts.pbx import pbx_part
from agent.parts.redirect import redirect_part
from agent.parts.store import database_part, state_part
from agent.parts.web import http_part, records_part
from agent.redirect.router import Router
from agent.redirect.server import AgiServer
from agent.store import database, peers
from agent.store.retention import Pruner
from agent.tracking.extstates import ExtensionStates
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from agent.web.recordings import RecordLinks

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 10.0
STATUS_CHECK_S = 1.0


@dataclass(frozen=True)
class RunningParts:
    """Every part of a running agent, all up: `Agent.parts` from just before the background work starts."""

    pool: database.Pool
    records: RecordLinks  # record_url() for CRM clients' recordUrl
    integrations: Integrations
    outbox: Outbox
    agent_count: peers.AgentCount
    planner: Planner
    router: Router
    agi: AgiServer
    pbxs: PbxManager
    originator: Originator
    http_port: int
    on_call_event: CallEventSink  # where every PBX's CallEvents go (agent.parts.pbx.call_events)
    public_http_port: int | None = None  # [http] public_listen's real port, when there is one


@dataclass
class Agent:
    """One agent process: its settings and its notifications, and (`parts`) the parts while it runs."""

    config: Config
    health: HealthRegistry = field(default_factory=HealthRegistry)
    metrics: Metrics = field(default_factory=Metrics)
    notifier: Notifier = field(default_factory=Notifier)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lock_interval: float = 2.0
    outbox_policy: OutboxPolicy | None = None  # tests pass one; else from [outbox]
    name: str = field(default_factory=peers.agent_name)  # application_name of its connections (agent.store.peers)
    outbox_started: asyncio.Event = field(default_factory=asyncio.Event)
    _parts: RunningParts | None = field(default=None, init=False, repr=False)

    @property
    def parts(self) -> RunningParts:
        """The running parts; before they are all up, RuntimeError."""
        if self._parts is None:
            raise RuntimeError("the agent's parts are not up yet")
        return self._parts

    @property
    def pipelines(self) -> dict[str, PbxPipeline]:
        return self._parts.pbxs.pipelines if self._parts is not None else {}

    async def run(self) -> None:
        cfg = self.config
        for pbx in cfg.pbx:
            register_secret(pbx.secret)
            if pbx.cdr_db and urlsplit(pbx.cdr_db).password:
                register_secret(str(urlsplit(pbx.cdr_db).password))
        if cfg.database.dsn and urlsplit(cfg.database.dsn).password:
            register_secret(str(urlsplit(cfg.database.dsn).password))
        restarted = self.metrics.component_restarts.labels
        supervisor = Supervisor(lambda name: restarted(name).inc())
        states: dict[str, ExtensionStates] = {}  # per enterprise: kept by the PBX links, read by the router
        async with (
            state_part(cfg) as secret,
            database_part(cfg, self.name, self.health, lambda name: restarted(name).inc()) as db,
            records_part(cfg, secret, self.health) as records,
            delivery_part(cfg, db.pool, secret, records, self.health, self.metrics, self.outbox_policy) as delivery,
            redirect_part(cfg, db.pool, delivery, states, self.health, self.metrics) as redirect,
        ):
            pbxs = pbx_part(
                cfg,
                supervisor,
                db,
                delivery.planner,
                redirect.router,
                states,
                self.health,
                self.metrics,
                lock_interval=self.lock_interval,
                name=self.name,
            )
            async with (
                http_part(
                    cfg,
                    secret,
                    health=self.health,
                    metrics=self.metrics,
                    pool=db.pool,
                    integrations=delivery.integrations,
                    outbox=delivery.outbox,
                    pbxs=pbxs,
                    records=records,
                ) as http,
                supervisor,  # the background work stops first
            ):
                self._parts = RunningParts(
                    db.pool,
                    records,
                    delivery.integrations,
                    delivery.outbox,
                    delivery.agent_count,
                    delivery.planner,
                    redirect.router,
                    redirect.agi,
                    pbxs,
                    http.originator,
                    http.port,
                    pbxs.sink,
                    http.public_port,
                )
                self._start_work(supervisor, self._parts)
                self.metrics.up.set(1)
                self.notifier.notify("READY=1", f"STATUS={await self.status_line()}")
                self.ready.set()
                log.info("pbx-agent ready: http %s, %d PBX configured", cfg.http.listen, len(cfg.pbx))
                await self.stopping.wait()
                log.info("stopping")
                self.notifier.notify("STOPPING=1")
                self.metrics.up.set(0)
        log.info("stopped")

    def _start_work(self, supervisor: Supervisor, parts: RunningParts) -> None:
        """The background work, under `supervisor`: config NOTIFYs, the outbox, the agent count, the planner,
        retention, the PBX links; the watchdog pings and STATUS lines when systemd asks for them."""
        cfg = self.config
        supervisor.start("config-listener", parts.integrations.listen)
        hold = peers.join_hold(parts.agent_count.agents, cfg.outbox.agents_refresh)
        supervisor.start("outbox", lambda: run_outbox(parts.outbox, hold, self.outbox_started))
        supervisor.start("agent-count", parts.agent_count.run)
        supervisor.start("planner", parts.planner.run)
        pruner = Pruner(parts.pool, cfg.retention, self.metrics, self.health.register("retention", critical=False))
        supervisor.start("retention", pruner.run)
        parts.pbxs.start(cfg.pbx)
        interval = self.notifier.watchdog_interval()
        if interval:
            supervisor.start("watchdog", lambda: self._watchdog(interval))
        if self.notifier.enabled:
            supervisor.start("status", self._status)

    async def _watchdog(self, interval: float) -> None:
        """Pings from the event loop itself: a blocked loop stops them and systemd restarts the agent."""
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def status_line(self) -> str:
        """What `systemctl status` shows: e.g. `3 PBX connected of 3, 0 due`."""
        connected = self._connected_count()
        try:
            due = await self._parts.outbox.due_count() if self._parts is not None else 0
            due_text = f"{due} due"
        except Exception:
            due_text = "database unavailable"
        return f"{connected} PBX connected of {len(self.config.pbx)}, {due_text}"

    async def _status(self) -> None:
        """STATUS= every STATUS_INTERVAL_S, and within a second of a PBX link going up or down."""
        loop = asyncio.get_running_loop()
        connected, sent_at = self._connected_count(), loop.time()
        while True:
            await asyncio.sleep(STATUS_CHECK_S)
            now_connected = self._connected_count()
            if now_connected != connected or loop.time() - sent_at >= STATUS_INTERVAL_S:
                connected, sent_at = now_connected, loop.time()
                self.notifier.notify(f"STATUS={await self.status_line()}")

    def _connected_count(self) -> int:
        return sum(p.link.connected.is_set() for p in self.pipelines.values())

    async def reload(self) -> None:
        """SIGHUP: re-read agent.toml; PBX links that were added, removed or changed are (re)connected,
        the others untouched, and likewise their recordings sources (agent.web.recording_sourceset). A broken file is
        refused with check-config's messages; the running configuration stays. Other tables take effect at
        the next restart (said in the log)."""
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        try:
            try:
                new = load(self.config.path)
            except ConfigError as exc:
                for line in exc.problems:
                    log.error("reload refused: %s", line)
                return
            for pbx in new.pbx:
                register_secret(pbx.secret)
            parts = self._parts
            changes = await parts.pbxs.apply(new.pbx) if parts is not None else []
            if parts is not None:
                await parts.records.apply(new.pbx)
            for section in ("agent", "database", "http", "agi", "outbox", "retention"):
                if getattr(new, section) != getattr(self.config, section):
                    log.warning("reload: [%s] changed; it takes effect when the agent restarts", section)
            self.config = replace(self.config, pbx=new.pbx)
            if parts is not None:
                parts.originator.apply(new.pbx)
            log.info("reloaded %s: %s", self.config.path, ", ".join(changes) or "no PBX changes")
        finally:
            self.notifier.notify("READY=1", f"STATUS={await self.status_line()}")


async def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stopping.set)
    reloads: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        if agent.ready.is_set() and not reloads:  # one reload at a time; a HUP during one is dropped
            task = asyncio.create_task(agent.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    main = asyncio.create_task(agent.run())
    stopping = asyncio.create_task(agent.stopping.wait())
    await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not main.done():
        try:
            async with asyncio.timeout(config.agent.shutdown_timeout):
                await asyncio.shield(main)
        except TimeoutError:
            log.error("shutdown took longer than %.0f s; exiting anyway", config.agent.shutdown_timeout)
            main.cancel()
            os._exit(1)
    stopping.cancel()
    main.result()  # re-raise a start-up failure
    return 0
