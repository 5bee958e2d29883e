"""`pbx-agent run`: bring the parts up in order, report READY, and take them down in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from admin import api_app, retailcrm_api
from admin import site as admin_site
from agent.config.load import load
from agent.config.sections import Config, ConfigError
from agent.delivery.dispatch import CrmDispatcher
from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox, OutboxPolicy, policy_from
from agent.delivery.outbox_health import outbox_probe
from agent.delivery.planner import Planner
from agent.ingest.links import PbxManager
from agent.ingest.originate import Originator
from agent.ingest.pipeline import PbxPipeline
from agent.life.logs import register_secret
from agent.life.sdnotify import Notifier
from agent.life.statelock import StateDirBusy, StateLock
from agent.life.supervisor import Supervisor
from agent.redirect.router import Router
from agent.redirect.server import AgiServer, hosts_of
from agent.repair.catchup import CatchUpStore, follower_of
from agent.store import database, enterprises, peers
from agent.store import routing_rules as routing_store
from agent.store.calls import count_ended
from agent.store.retention import Pruner
from agent.store.secretbox import SecretBox, derive_key, load_or_create_secret
from agent.tracking.event import CallEvent
from agent.web import keys
from agent.web import recording_http as records_http
from agent.web import recordings as records
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from agent.web.recordings import RecordLinks
from agent.web.server import create_app
from agent.web.tokens import TokenSigner
from agent.wiring import AmoCrmSetup, OriginatorCalls
from connectors.amocrm import routes as amocrm_routes
from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.oauth import STATE_PURPOSE, StateSigner
from connectors.http import make_client
from connectors.registry import connectors, secret_fields
from connectors.retailcrm import routes as retailcrm_routes

log = logging.getLogger(__name__)

HTTP_SHUTDOWN_S = 3.0
STATUS_INTERVAL_S = 10.0
STATUS_CHECK_S = 1.0


class StartupError(Exception):
    """A part could not start; the message says which and why."""


class ConflictError(StartupError):
    """Something else already holds what the agent needs (its state_dir, a port): exit code 2."""


@dataclass
class Agent:
    """The running parts, for tests and for the components that need each other."""

    config: Config
    health: HealthRegistry = field(default_factory=HealthRegistry)
    metrics: Metrics = field(default_factory=Metrics)
    notifier: Notifier = field(default_factory=Notifier)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pool: database.Pool | None = None
    http_port: int | None = None
    planner: Planner | None = None
    outbox: Outbox | None = None
    integrations: Integrations | None = None
    pbxs: PbxManager | None = None
    lock_interval: float = 2.0
    records: RecordLinks | None = None  # record_url() for CRM clients' recordUrl
    originator: Originator | None = None
    router: Router | None = None
    agi: AgiServer | None = None
    outbox_policy: OutboxPolicy | None = None  # tests pass one; else from [outbox]
    name: str = field(default_factory=peers.agent_name)  # application_name of its connections (agent.store.peers)
    agent_count: peers.AgentCount | None = None  # agents on the database: each takes its share of the rate limits
    outbox_started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pipelines(self) -> dict[str, PbxPipeline]:
        return self.pbxs.pipelines if self.pbxs is not None else {}

    def on_call_event(self, event: CallEvent) -> None:
        """Every CallEvent of every PBX passes here, on the AMI reader's path: enqueue only."""
        count_ended(self.metrics, event)
        if self.router is not None:
            self.router.note_answered(event)  # routing rules' caller history, at once
        if self.planner is not None:
            self.planner.put(event)

    async def run(self) -> None:
        cfg = self.config
        for pbx in cfg.pbx:
            register_secret(pbx.secret)
        if cfg.database.dsn and urlsplit(cfg.database.dsn).password:
            register_secret(str(urlsplit(cfg.database.dsn).password))
        supervisor = Supervisor(lambda name: self.metrics.component_restarts.labels(name).inc())
        async with AsyncExitStack() as stack:
            state_lock = StateLock(cfg.agent.state_dir)
            try:
                state_lock.acquire()
            except StateDirBusy as exc:
                raise ConflictError(str(exc)) from None
            stack.callback(state_lock.release)
            secret = await asyncio.to_thread(load_or_create_secret, cfg.agent.state_dir)
            dsn = await stack.enter_async_context(database.embedded_or_external(cfg.database.dsn, cfg.agent.state_dir))
            try:
                self.pool = await database.create_pool(dsn, cfg.database.pool_size, name=self.name)
            except (OSError, asyncpg.PostgresError) as exc:
                raise StartupError(f"cannot connect to the database: {exc}") from exc
            stack.push_async_callback(self._close_pool)
            await database.migrate(self.pool)
            pool = self.pool
            self.health.register_probe("database", lambda: database.probe(pool), critical=True)

            box = SecretBox(secret, secret_fields())
            self.records = records.from_config(cfg, secret, self.health)
            stack.push_async_callback(self.records.close)
            await self.records.mp3.sweep()  # [agent] mp3_cache_mb may have shrunk since the last run
            http = make_client()
            stack.push_async_callback(http.aclose)
            self.integrations = Integrations(pool, box, connectors(), http)
            amocrm = attach_amocrm(self.integrations, secret, cfg.agent.public_url)
            if amocrm is not None:
                stack.push_async_callback(amocrm.aclose)
            policy = self.outbox_policy or policy_from(cfg.outbox)
            dispatcher = CrmDispatcher(
                self.integrations,
                concurrency=policy.account_concurrency,
                breaker_threshold=policy.breaker_threshold,
                breaker_cooldown=policy.breaker_cooldown,
                recordings=self.records,
                recording_wait=cfg.outbox.recording_wait,
            )
            self.outbox = Outbox(pool, dispatcher, self.metrics, policy)
            self.agent_count = peers.AgentCount(lambda: peers.count_agents(pool), interval=cfg.outbox.agents_refresh)
            await self.agent_count.refresh()
            self.agent_count.on_change(self.metrics.agents_sharing_limits.set)
            self.agent_count.on_change(dispatcher.share_limits)
            if amocrm is not None:
                self.agent_count.on_change(amocrm.guard.share)
            rules_cache = routing_store.RulesCache(pool)
            self.integrations.on_change(rules_cache.invalidate)
            self.planner = Planner(self.integrations, self.outbox, rules=rules_cache.get)
            outbox, agent_count = self.outbox, self.agent_count
            self.health.register_probe(
                "outbox", lambda: outbox_probe(outbox, self.metrics, agents=agent_count.agents), critical=False
            )

            self.pbxs = PbxManager(
                supervisor,
                self.health,
                self.metrics,
                cfg.agent.default_region,
                self.on_call_event,
                dsn,
                lock_interval=self.lock_interval,
                follower=follower_of(
                    CatchUpStore(pool, self.planner), cfg.agent.default_region, self.metrics.calls_backfilled
                ),
                name=self.name,
            )
            self.metrics.watch_pbxs(self.pbxs.snapshot)
            self.router = Router(
                self.integrations.lookups,
                states=self.pbxs.states,
                busy_policy=lambda number: enterprises.redirect_when_busy(pool, number),
                regions={p.enterprise: p.region for p in cfg.pbx},
                default_region=cfg.agent.default_region,
                rules=lambda number: routing_store.get(pool, number),
                away=lambda number: routing_store.away_statuses(pool, number),
                history=lambda number, phone, since: routing_store.last_answered(pool, number, phone, since),
            )
            stack.push_async_callback(self.router.close)
            self.integrations.on_change(self.router.invalidate)
            if amocrm is not None:  # a contact's responsible manager changed in amoCRM (webhook)
                router = self.router
                amocrm.on_responsible_change(lambda enterprise, _phones: router.invalidate(enterprise))
            self.agi = AgiServer(cfg.agi, self.router, self.health, hosts_of(cfg.pbx), registry=self.metrics.registry)
            try:
                await self.agi.start()
            except OSError as exc:
                raise ConflictError(f"cannot listen on [agi] listen {cfg.agi.listen}: {_why(exc)}") from exc
            stack.push_async_callback(self.agi.stop)

            runner = await self._start_http(secret)
            stack.push_async_callback(runner.cleanup)
            stack.push_async_callback(supervisor.stop)

            supervisor.start("config-listener", self.integrations.listen)
            hold = peers.join_hold(self.agent_count.agents, cfg.outbox.agents_refresh)
            supervisor.start("outbox", lambda: self._run_outbox(hold))
            supervisor.start("agent-count", self.agent_count.run)
            supervisor.start("planner", self.planner.run)
            pruner = Pruner(pool, cfg.retention, self.metrics, self.health.register("retention", critical=False))
            supervisor.start("retention", pruner.run)
            self.pbxs.start(cfg.pbx)

            interval = self.notifier.watchdog_interval()
            if interval:
                supervisor.start("watchdog", lambda: self._watchdog(interval))
            if self.notifier.enabled:
                supervisor.start("status", self._status)
            self.metrics.up.set(1)
            self.notifier.notify("READY=1", f"STATUS={await self.status_line()}")
            self.ready.set()
            log.info("pbx-agent ready: http %s, %d PBX configured", cfg.http.listen, len(cfg.pbx))
            await self.stopping.wait()
            log.info("stopping")
            self.notifier.notify("STOPPING=1")
            self.metrics.up.set(0)
        log.info("stopped")

    async def _start_http(self, secret: bytes) -> web.AppRunner:
        app = create_app()
        app[keys.CONFIG] = self.config
        app[keys.HEALTH] = self.health
        app[keys.METRICS] = self.metrics
        assert self.pool is not None
        app[keys.POOL] = self.pool
        box = app[keys.SECRETS] = SecretBox(secret, secret_fields())
        app[keys.SIGNER] = TokenSigner(secret)
        assert self.integrations is not None and self.outbox is not None
        app[keys.INTEGRATIONS] = self.integrations
        app[keys.OUTBOX] = self.outbox
        assert self.pbxs is not None
        self.originator = Originator(self.config.pbx, self.pbxs.pipelines)
        app[keys.ORIGINATOR] = self.originator
        assert self.records is not None
        app[keys.RECORDS] = self.records
        app.add_subapp(api_app.PREFIX, api_app.create_app())  # each with its own middlewares
        app.add_subapp(admin_site.PREFIX, admin_site.create_app(secret))
        retailcrm_api.add_logo(app)
        # the CRMs' callbacks, handed what they need of the agent (agent.wiring adapts it to their protocols)
        retailcrm_routes.add_routes(app, retailcrm_routes.Deps(self.pool, box, OriginatorCalls(self.originator)))
        amocrm_routes.add_routes(app, AmoCrmSetup(app))
        records_http.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S)
        await runner.setup()
        listen = self.config.http.listen
        site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConflictError(f"cannot listen on [http] listen {listen}: {_why(exc)}") from exc
        self.http_port = runner.addresses[0][1]  # the real port when [http] listen asks for port 0
        return runner

    async def _run_outbox(self, hold: float) -> None:
        """The outbox, after `hold` seconds the first time (agent.store.peers.join_hold)."""
        assert self.outbox is not None
        if hold > 0 and not self.outbox_started.is_set():
            log.info(
                "other agents send from this database; this one starts sending in %.0f s, once they have "
                "counted it and lowered their share of the CRMs' rate limits",
                hold,
            )
            await asyncio.sleep(hold)
        self.outbox_started.set()
        await self.outbox.run()

    async def _close_pool(self) -> None:
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), timeout=3)
            except TimeoutError:
                self.pool.terminate()

    async def _watchdog(self, interval: float) -> None:
        """Pings from the event loop itself: a blocked loop stops them and systemd restarts the agent."""
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def status_line(self) -> str:
        """What `systemctl status` shows: e.g. `3 PBX connected of 3, 0 due`."""
        connected = self._connected_count()
        try:
            due = await self.outbox.due_count() if self.outbox is not None else 0
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
            changes = await self.pbxs.apply(new.pbx) if self.pbxs is not None else []
            if self.records is not None:
                await self.records.apply(new.pbx)
            for section in ("agent", "database", "http", "agi", "outbox", "retention"):
                if getattr(new, section) != getattr(self.config, section):
                    log.warning("reload: [%s] changed; it takes effect when the agent restarts", section)
            self.config = replace(self.config, pbx=new.pbx)
            if self.originator is not None:
                self.originator.pbx = new.pbx
            log.info("reloaded %s: %s", self.config.path, ", ".join(changes) or "no PBX changes")
        finally:
            self.notifier.notify("READY=1", f"STATUS={await self.status_line()}")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


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
            await asyncio.wait_for(asyncio.shield(main), timeout=config.agent.shutdown_timeout)
        except TimeoutError:
            log.error("shutdown took longer than %.0f s; exiting anyway", config.agent.shutdown_timeout)
            main.cancel()
            os._exit(1)
    stopping.cancel()
    main.result()  # re-raise a start-up failure
    return 0


def attach_amocrm(integrations: Integrations, secret: bytes, public_url: str) -> AmoCrmConnector | None:
    """Bind the amoCRM connector to the database and make config NOTIFYs drop its cached tokens; OAuth
    `state` values are signed with a key derived from the state secret."""
    connector = integrations.connectors.get(AmoCrmConnector.name)
    if not isinstance(connector, AmoCrmConnector):
        return None
    tokens = connector.bind(integrations.pool, integrations.box, public_url)
    connector.state_signer = StateSigner(derive_key(secret, STATE_PURPOSE))
    integrations.on_change(tokens.forget)
    return connector
