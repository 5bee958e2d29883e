"""The recording links (for the CRMs' recordUrl and the downloads) and the HTTP site: admin pages, the JSON
API, the CRMs' callbacks, recordings, /health and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from admin import api_app, legacy_api, retailcrm_api
from admin import site as admin_site
from agent.config.sections import Config
from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox
from agent.ingest.links import PbxManager
from agent.ingest.originate import Originator
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
from agent.web.server import create_app
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
    app[keys.CONFIG] = cfg
    app[keys.HEALTH] = health
    app[keys.METRICS] = metrics
    app[keys.POOL] = pool
    box = app[keys.SECRETS] = SecretBox(secret, secret_fields())
    app[keys.SIGNER] = TokenSigner(secret)
    app[keys.INTEGRATIONS] = integrations
    app[keys.OUTBOX] = outbox
    originator = Originator(cfg.pbx, pbxs.pipelines)
    app[keys.ORIGINATOR] = originator
    app[keys.RECORDS] = records
    app.add_subapp(api_app.PREFIX, api_app.create_app())  # each with its own middlewares
    app.add_subapp(admin_site.PREFIX, admin_site.create_app(secret))
    retailcrm_api.add_logo(app)
    legacy_api.add_entry(app)  # the replaced RetailCRM service's URLs: /retailcrm-admin/, /retailcrm/api/, ...
    # the CRMs' callbacks, handed what they need of the agent (agent.parts.adapters fits it to their protocols)
    retailcrm_routes.add_routes(app, retailcrm_routes.Deps(pool, box, OriginatorCalls(originator)))
    amocrm_routes.add_routes(app, AmoCrmSetup(app))
    records_http.add_routes(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S)
    await runner.setup()
    try:
        listen = cfg.http.listen
        site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ConflictError(f"cannot listen on [http] listen {listen}: {why(exc)}") from exc
        yield Http(originator, runner.addresses[0][1])
    finally:
        await runner.cleanup()
