"""Every CRM the agent knows, each a `connectors.base.Connector`."""

from __future__ import annotations

from functools import cache

from connectors.base import AnyConnector


def connectors() -> dict[str, AnyConnector]:
    from connectors.amocrm.connector import AmoCrmConnector
    from connectors.retailcrm.connector import RetailCrmConnector

    found: list[AnyConnector] = [RetailCrmConnector(), AmoCrmConnector()]
    return {c.name: c for c in found}


@cache
def names() -> tuple[str, ...]:
    """The CRMs the agent knows, in the order pages list them."""
    return tuple(connectors())


@cache
def secret_fields() -> dict[str, tuple[str, ...]]:
    """Per CRM, the settings keys whose values are secrets (encrypted at rest, masked on pages)."""
    return {name: connector.secret_fields for name, connector in connectors().items()}
