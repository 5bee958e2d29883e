"""Helpers for tests against the fake amoCRM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.store import enterprises
from agent.store.database import Pool
from agent.store.secretbox import SecretBox, load_or_create_secret
from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.settings import AmoCrmSettings, parse
from connectors.amocrm.stored_tokens import Tokens
from connectors.http import make_client
from connectors.registry import secret_fields
from tests.fakes.amocrm import FakeAmoCrm

ENTERPRISE = "100"
MAPPING = {"7": "150", "8": "151", "9": "152"}
PUBLIC_URL = "http://127.0.0.1:8019"


async def configure_amocrm(pool: Pool, state_dir: Path, fake: FakeAmoCrm, **over: Any) -> AmoCrmSettings:
    box = SecretBox(load_or_create_secret(state_dir), secret_fields())
    await enterprises.put(pool, ENTERPRISE, "Shop")
    raw = {
        "host": fake.url,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "user_extensions": MAPPING,
        **over,
    }
    settings = parse(raw)
    await enterprises.put_integration(pool, box, ENTERPRISE, "amocrm", settings.to_json())
    return settings


async def connect_tokens(connector: AmoCrmConnector, fake: FakeAmoCrm, *, expires_in: float = 86400) -> Tokens:
    """What the OAuth callback stores, without the dance: a fresh pair straight from the fake."""
    assert connector.tokens is not None
    pair = fake.issue_tokens()
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    return await connector.tokens.connect(
        ENTERPRISE, fake.url, "oauth", pair["access_token"], pair["refresh_token"], expires
    )


def bound(pool: Pool, state_dir: Path, public_url: str = PUBLIC_URL, **token_options: Any) -> AmoCrmConnector:
    connector = AmoCrmConnector()
    connector.bind(pool, SecretBox(load_or_create_secret(state_dir), secret_fields()), public_url, **token_options)
    return connector


__all__ = ["ENTERPRISE", "MAPPING", "bound", "configure_amocrm", "connect_tokens", "make_client"]
