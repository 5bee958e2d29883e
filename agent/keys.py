"""Typed aiohttp application keys: what the agent's components share with its HTTP handlers."""

from __future__ import annotations

from aiohttp import web

from agent.config import Config
from agent.database import Pool
from agent.health import HealthRegistry
from agent.integrations import Integrations
from agent.metrics import Metrics
from agent.originate import Originator
from agent.outbox import Outbox
from agent.records import RecordLinks
from agent.secretbox import SecretBox
from agent.tokens import TokenSigner

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
