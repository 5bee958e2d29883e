"""`pbx-agent run`: bring the parts up in order, report READY, and take them down in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from admin import amocrm_api, amocrm_callbacks, api, deliveries_api
from agent import database, keys
from agent.callevent import CallEvent
from agent.callstore import CallStore
from agent.config import Config
from agent.dispatch import CrmDispatcher
from agent.health import HealthRegistry
from agent.integrations import Integrations
from agent.logs import register_secret
from agent.metrics import Metrics
from agent.outbox import Outbox, OutboxPolicy, outbox_probe, policy_from
from agent.pbx import PbxPipeline
from agent.planner import Planner
from agent.sdnotify import Notifier
from agent.secretbox import SecretBox, load_or_create_secret
from agent.supervisor import Supervisor
from agent.tokens import TokenSigner
from agent.web import create_app
from connectors.amocrm import wiring as amocrm_wiring
from connectors.http import make_client
from connectors.registry import connectors

log = logging.getLogger(__name__)

HTTP_SHUTDOWN_S = 3.0


class StartupError(Exception):
    """A part could not start; the message says which and why."""


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
    calls: CallStore | None = None
    planner: Planner | None = None
    outbox: Outbox | None = None
    integrations: Integrations | None = None
    pipelines: dict[str, PbxPipeline] = field(default_factory=dict)
    outbox_policy: OutboxPolicy | None = None  # tests pass one; else from [outbox]

    def on_call_event(self, event: CallEvent) -> None:
        """Every CallEvent of every PBX passes here, on the AMI reader's path: enqueue only."""
        if self.calls is not None:
            self.calls.put(event)
        if self.planner is not None:
            self.planner.put(event)

    async def run(self) -> None:
        cfg = self.config
        for pbx in cfg.pbx:
            register_secret(pbx.secret)
        if cfg.database.dsn and urlsplit(cfg.database.dsn).password:
            register_secret(str(urlsplit(cfg.database.dsn).password))
        supervisor = Supervisor(self.metrics)
        async with AsyncExitStack() as stack:
            secret = await asyncio.to_thread(load_or_create_secret, cfg.agent.state_dir)
            dsn = await stack.enter_async_context(
                database.embedded_or_external(cfg.database.dsn, cfg.agent.state_dir))
            try:
                self.pool = await database.create_pool(dsn, cfg.database.pool_size)
            except (OSError, asyncpg.PostgresError) as exc:
                raise StartupError(f"cannot connect to the database: {exc}") from exc
            stack.push_async_callback(self._close_pool)
            await database.migrate(self.pool)
            pool = self.pool
            self.health.register_probe("database", lambda: database.probe(pool), critical=True)

            box = SecretBox(secret)
            http = make_client()
            stack.push_async_callback(http.aclose)
            self.integrations = Integrations(pool, box, connectors(), http)
            amocrm = amocrm_wiring.attach(self.integrations, secret, cfg.agent.public_url)
            if amocrm is not None:
                stack.push_async_callback(amocrm.aclose)
            policy = self.outbox_policy or policy_from(cfg.outbox)
            dispatcher = CrmDispatcher(self.integrations, concurrency=policy.account_concurrency,
                                       breaker_threshold=policy.breaker_threshold,
                                       breaker_cooldown=policy.breaker_cooldown)
            self.outbox = Outbox(pool, dispatcher, self.metrics, policy)
            self.planner = Planner(self.integrations, self.outbox)
            self.calls = CallStore(pool, self.metrics)
            outbox = self.outbox
            self.health.register_probe("outbox", lambda: outbox_probe(outbox, self.metrics), critical=False)

            runner = await self._start_http(secret)
            stack.push_async_callback(runner.cleanup)
            stack.push_async_callback(supervisor.stop)

            supervisor.start("config-listener", self.integrations.listen)
            supervisor.start("outbox", self.outbox.run)
            supervisor.start("planner", self.planner.run)
            supervisor.start("calls", self.calls.run)
            for pbx in cfg.pbx:
                pipeline = PbxPipeline(pbx, cfg.agent.default_region, self.health, self.metrics,
                                       self.on_call_event)
                self.pipelines[pbx.name] = pipeline
                supervisor.start(f"pbx:{pbx.name}", pipeline.run)

            interval = self.notifier.watchdog_interval()
            if interval:
                supervisor.start("watchdog", lambda: self._watchdog(interval))
            self.metrics.up.set(1)
            self.notifier.notify("READY=1", "STATUS=running")
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
        app[keys.SECRETS] = SecretBox(secret)
        app[keys.SIGNER] = TokenSigner(secret)
        assert self.integrations is not None and self.outbox is not None
        app[keys.INTEGRATIONS] = self.integrations
        app[keys.OUTBOX] = self.outbox
        api.add_routes(app)
        deliveries_api.add_routes(app)
        amocrm_api.add_routes(app)
        amocrm_callbacks.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S)
        await runner.setup()
        listen = self.config.http.listen
        site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise StartupError(f"cannot listen on [http] listen {listen}: {exc.strerror}") from exc
        self.http_port = runner.addresses[0][1]  # the real port when [http] listen asks for port 0
        return runner

    async def _close_pool(self) -> None:
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), timeout=3)
            except TimeoutError:
                self.pool.terminate()

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


async def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stopping.set)
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
