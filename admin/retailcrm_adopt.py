"""Adopting the telephony module an account already has (the replaced service's `vochi-telephony`, or the code an
old record names), at the agent's first registration for the enterprise, instead of registering a second one.

The candidates, in order: the record's code (an old record's `client_id`, else `pbx-agent`), then
`vochi-telephony`. The first the account has becomes the enterprise's code (stored, so later registrations and
syncs edit that module in place), and its `additionalCodes` are imported into the local mapping: local data
wins, and what was not taken is listed as a conflict. After the first registration nothing is looked up again:
the agent's own module is the one in force.
"""

from __future__ import annotations

from typing import Any

from agent.store import enterprises
from agent.store.database import Pool
from agent.store.secretbox import SecretBox
from connectors.base import CrmError
from connectors.retailcrm import store as retailcrm_store
from connectors.retailcrm.client import RetailCrmClient
from connectors.retailcrm.legacy import OLD_MODULE_CODE
from connectors.retailcrm.mapping import import_codes, module_codes
from connectors.retailcrm.settings import RetailCrmSettings, parse

CRM = retailcrm_store.CRM


async def adopt(
    client: RetailCrmClient, pool: Pool, box: SecretBox, number: str, settings: RetailCrmSettings
) -> tuple[RetailCrmSettings, dict[str, Any] | None]:
    """(the settings to register with, what was adopted or None). A module RetailCRM will not show us (the key
    may not read modules) is no reason to refuse the registration: it goes on under the record's code."""
    if await retailcrm_store.registered_by_agent(pool, number):
        return settings, None
    found: tuple[str, dict[str, Any]] | None = None
    try:
        for code in dict.fromkeys((settings.code, OLD_MODULE_CODE)):
            module = await client.get_module(code)
            if module is not None:
                found = code, module
                break
    except CrmError as exc:
        error = exc.outcome.error or exc.outcome.status
        return settings, {"code": settings.code, "error": error, "http_status": exc.outcome.http_status}
    if found is None:
        return settings, None
    code, module = found
    merged, imported, conflicts = import_codes(settings.user_extensions, module_codes(module))
    adopted = parse({**settings.to_json(), "code": code, "user_extensions": merged})
    if adopted != settings:
        await enterprises.put_integration(pool, box, number, CRM, adopted.to_json())
    return adopted, {"code": code, "imported": imported, "conflicts": conflicts}
