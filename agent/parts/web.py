"""The recording links (for the CRMs' recordUrl and the downloads) and the HTTP site: admin pages, the JSON
API, the CRMs' callbacks, recordings, /health and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from admin import api_app, legacy_api, retailcrm_api
from admin import site as admin_site
from agent.config.checks import Address
from agent.config.sections import Config
from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox
from agent.ingest.links import PbxManager
from agent.ingest.originate import Originator
from agent.parts import public_pages
from agent.parts.adapters import AmoCrmSetup, OriginatorCalls
from agent.parts.errors import ConflictError, why
from agent.store import database
from agent.store.secretbox import SecretBox
from agent.web import keys
from agent.web import recording_http as records_http
from agent.web import recordings as records
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from agent.web.recordings import RecordLinks
from agent.web.server import create_app, real_client
from agent.web.tokens import TokenSigner
from connectors.amocrm import routes as amocrm_routes
from connectors.registry import secret_fields
from connectors.retailcrm import routes as retailcrm_routes

HTTP_SHUTDOWN_S = 3.0


@asynccontextmanager
async def records_part(cfg: Config, secret: bytes, health: HealthRegistry) -> AsyncIterator[RecordLinks]:
    """A source per `[[pbx]] recordings`; the mp3 cache trimmed first (`mp3_cache_mb` may have shrunk)."""
    links = records.from_config(cfg, secret, health)
    try:
        await links.mp3.sweep()
        yield links
    finally:
        await links.close()


@dataclass(frozen=True)
class Http:
    originator: Originator  # click-to-call on the PBX links
    port: int  # the real port when [http] listen asks for port 0
    public_port: int | None = None  # [http] public_listen's, when there is one


@asynccontextmanager
async def http_part(
    cfg: Config,
    secret: bytes,
    *,
    health: HealthRegistry,
    metrics: Metrics,
    pool: database.Pool,
    integrations: Integrations,
    outbox: Outbox,
    pbxs: PbxManager,
    records: RecordLinks,
) -> AsyncIterator[Http]:
    """Listening on `[http] listen` (taken: ConflictError) until the block ends."""
    app = create_app()
    originator = Originator(cfg.pbx, pbxs.pipelines)
    box, signer = SecretBox(secret, secret_fields()), TokenSigner(secret)

    def fill(target: web.Application) -> None:
        """What the handlers find in `request.config_dict`: the same parts on every listener."""
        target[keys.CONFIG] = cfg
        target[keys.HEALTH] = health
        target[keys.METRICS] = metrics
        target[keys.POOL] = pool
        target[keys.SECRETS] = box
        target[keys.SIGNER] = signer
        target[keys.INTEGRATIONS] = integrations
        target[keys.OUTBOX] = outbox
        target[keys.ORIGINATOR] = originator
        target[keys.RECORDS] = records

    fill(app)
    app.add_subapp(api_app.PREFIX, api_app.create_app())  # each with its own middlewares
    app.add_subapp(admin_site.PREFIX, admin_site.create_app(secret))
    legacy_api.add_entry(app)  # the replaced RetailCRM service's URLs: /retailcrm-admin/, /retailcrm/api/, ...
    add_public_routes(app, pool, originator)
    runners = [web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S)]
    if cfg.http.public_listen is not None:
        # no /health, /metrics, admin or API: only what the CRMs' servers call
        public = web.Application(middlewares=[real_client])
        fill(public)
        add_public_routes(public, pool, originator)
        public_pages.add_routes(public)  # /admin/… there says where the admin site is
        runners.append(web.AppRunner(public, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S))
    try:
        ports = []
        for runner, (name, listen) in zip(runners, listeners(cfg), strict=False):
            await runner.setup()
            site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise ConflictError(f"cannot listen on [http] {name} {listen}: {why(exc)}") from exc
            ports.append(runner.addresses[0][1])
        yield Http(originator, ports[0], ports[1] if len(ports) > 1 else None)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def listeners(cfg: Config) -> list[tuple[str, Address]]:
    public = [("public_listen", cfg.http.public_listen)] if cfg.http.public_listen is not None else []
    return [("listen", cfg.http.listen), *public]


def add_public_routes(app: web.Application, pool: database.Pool, originator: Originator) -> None:
    """What the CRMs' servers call: the RetailCRM module's logo and callbacks, amoCRM's OAuth redirect and
    webhooks, the recording links (handed what they need of the agent: agent.parts.adapters)."""
    retailcrm_api.add_logo(app)
    retailcrm_routes.add_routes(app, retailcrm_routes.Deps(pool, app[keys.SECRETS], OriginatorCalls(originator)))
    amocrm_routes.add_routes(app, AmoCrmSetup(app))
    records_http.add_routes(app)
