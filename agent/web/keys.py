"""Typed aiohttp application keys: what the agent's components share with its HTTP handlers."""

from __future__ import annotations

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
