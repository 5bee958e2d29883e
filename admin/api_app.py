"""The JSON config API as one aiohttp sub-application, which agent.app mounts at /api/.

It owns what is common to every API route: the bearer-token middleware (admin/api.py), which therefore guards
each of them and nothing else, and the list of the modules whose routes make up the API. It imports those
modules and nothing of the agent; only the composition root imports it.
"""

from __future__ import annotations

from aiohttp import web

from admin import (
    amocrm_api,
    api,
    deliveries_api,
    extensions_api,
    legacy_api,
    retailcrm_api,
    retailcrm_managers,
    routing_api,
)

PREFIX = api.PREFIX


def create_app() -> web.Application:
    """The sub-application; its routes are relative to PREFIX (/enterprises/{number}, /deliveries, ...)."""
    app = web.Application(middlewares=[api.bearer_auth])
    for module in (
        api,
        routing_api,
        deliveries_api,
        extensions_api,
        retailcrm_api,
        retailcrm_managers,
        amocrm_api,
        legacy_api,
    ):
        module.add_routes(app)
    return app
