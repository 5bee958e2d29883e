"""How the agent plugs amoCRM in at start-up (one call from agent.app)."""

from __future__ import annotations

from typing import Any

from agent.delivery.integrations import Integrations
from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.oauth import StateSigner
from connectors.amocrm.plan import CRM


def attach(integrations: Integrations, secret: bytes, public_url: str, **token_options: Any) -> AmoCrmConnector | None:
    """Bind the amoCRM connector to the database and make config NOTIFYs drop its cached tokens.
    `secret` is the state secret (OAuth `state` values are signed with a key derived from it)."""
    connector = integrations.connectors.get(CRM)
    if not isinstance(connector, AmoCrmConnector):
        return None
    tokens = connector.bind(integrations.pool, integrations.box, public_url, **token_options)
    connector.state_signer = StateSigner(secret)
    integrations.on_change(tokens.forget)
    return connector


def connector_of(integrations: Integrations) -> AmoCrmConnector:
    connector = integrations.connectors.get(CRM)
    if not isinstance(connector, AmoCrmConnector) or connector.tokens is None:
        raise RuntimeError("amoCRM is not attached")
    return connector
