"""Every CRM the agent knows, behind one small interface the outbox, planner and config API use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Protocol

import httpx

from agent.tracking.event import CallEvent
from connectors.base import Delivery, RecordUrl, ResponsibleLookup, SendOutcome


class CrmClient(Protocol):
    async def send(self, deliveries: Sequence[Delivery], *, record_url: RecordUrl | None = None) -> SendOutcome: ...


class Connector(Protocol):
    name: str
    secret_fields: tuple[str, ...]

    def parse_settings(self, raw: Mapping[str, Any]) -> Any:
        """Validated settings; raises a ValueError with `.field` naming the bad field."""

    def settings_json(self, settings: Any) -> dict[str, Any]: ...

    def enabled(self, settings: Any) -> bool: ...

    def plan(self, event: CallEvent, settings: Any) -> list[Delivery]: ...

    def batch_limit(self, kind: str) -> int: ...

    def account(self, settings: Any) -> str:
        """Names the CRM account: rate limits and circuit breakers are per account."""

    def client(self, settings: Any, http: httpx.AsyncClient) -> CrmClient: ...

    def responsible_lookup(self, settings: Any, client: Any, enterprise: str) -> ResponsibleLookup | None:
        """Smart redirect's question to this CRM (None: the CRM cannot answer it)."""


def connectors() -> dict[str, Connector]:
    from connectors.amocrm.connector import AmoCrmConnector
    from connectors.retailcrm.connector import RetailCrmConnector

    found: list[Connector] = [RetailCrmConnector(), AmoCrmConnector()]
    return {c.name: c for c in found}


@cache
def names() -> tuple[str, ...]:
    """The CRMs the agent knows, in the order pages list them."""
    return tuple(connectors())


@cache
def secret_fields() -> dict[str, tuple[str, ...]]:
    """Per CRM, the settings keys whose values are secrets (encrypted at rest, masked on pages)."""
    return {name: connector.secret_fields for name, connector in connectors().items()}
