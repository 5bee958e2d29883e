"""Smart redirect's view of the CRMs: each enabled CRM of an enterprise as a ResponsibleLookup."""

from __future__ import annotations

from agent.delivery.integrations import Integrations
from agent.redirect.router import LookupSource, ResponsibleLookup


def lookup_source(integrations: Integrations) -> LookupSource:
    async def source(enterprise: str) -> list[ResponsibleLookup]:
        enabled = await integrations.enabled(enterprise)
        lookups: list[ResponsibleLookup] = []
        for item in enabled.values():
            lookup = item.connector.responsible_lookup(item.settings, integrations.client(item), enterprise)
            if lookup is not None:
                lookups.append(lookup)
        return lookups

    return source
