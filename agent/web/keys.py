"""Typed aiohttp application keys: what the agent's components share with its HTTP handlers.

The composition root sets them on the root application. A handler of a sub-application (the admin pages under
/admin/, the JSON API under /api/) reads them through `request.config_dict`, which chains its own application
to the root; `Parts` is the type of either.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from aiohttp import web

from agent.config.sections import Config
from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox
from agent.ingest.originate import Originator
from agent.store.database import Pool
from agent.store.secretbox import SecretBox
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from agent.web.recordings import RecordLinks
from agent.web.tokens import TokenSigner

_T = TypeVar("_T")


class Parts(Protocol):
    """Where the parts are read by key: the root application, or a request's `config_dict`."""

    def __getitem__(self, key: web.AppKey[_T], /) -> _T: ...


CONFIG = web.AppKey("config", Config)
HEALTH = web.AppKey("health", HealthRegistry)
METRICS = web.AppKey("metrics", Metrics)
POOL = web.AppKey("pool", Pool)
SECRETS = web.AppKey("secrets", SecretBox)
SIGNER = web.AppKey("signer", TokenSigner)
INTEGRATIONS = web.AppKey("integrations", Integrations)
OUTBOX = web.AppKey("outbox", Outbox)
ORIGINATOR = web.AppKey("originator", Originator)
RECORDS = web.AppKey("records", RecordLinks)
