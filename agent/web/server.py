"""The agent's HTTP server as its root application: /health, /metrics, and the middleware that measures every
request (sub-applications' included, by full route path). The composition root mounts the admin site and the
JSON API on it as sub-applications and adds the CRMs' callback routes and the recording links."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.delivery.outbox_health import outbox_probe
from agent.web import keys
from agent.web.client_address import client_address

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def health(request: web.Request) -> web.Response:
    report = await request.app[keys.HEALTH].report()
    status = 503 if report["status"] == "failed" else 200
    return web.json_response(report, status=status, headers={"Cache-Control": "no-store"})


async def metrics(request: web.Request) -> web.Response:
    outbox = request.app.get(keys.OUTBOX)
    if outbox is not None:  # the outbox's row counts are read at scrape time
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await outbox_probe(outbox, request.app[keys.METRICS])
    body = generate_latest(request.app[keys.METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def real_client(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`request.remote` is the client behind a trusted reverse proxy (`[http] trusted_proxies`), for everything
    downstream: the password lockout's key, the log lines that name who asked."""
    config = request.config_dict.get(keys.CONFIG)
    if config is None or "X-Forwarded-For" not in request.headers:
        return await handler(request)
    forwarded = request.headers.getall("X-Forwarded-For")
    remote = client_address(request.remote, forwarded, config.http.trusted_proxies)
    if remote is None or remote == request.remote:
        return await handler(request)
    return await handler(request.clone(remote=remote))


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        m = request.app[keys.METRICS]
        m.http_requests.labels(route, str(status)).inc()
        m.http_latency.labels(route).observe(time.perf_counter() - started)


def create_app() -> web.Application:
    app = web.Application(middlewares=[real_client, measure], client_max_size=1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app
