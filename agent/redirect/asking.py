"""Asking one CRM who is responsible for a number: bounded, timed, failures reported as data. The answer
comes back as a `Caller` whose name is already fit for a caller ID (made so once, when it is cached).

At most `max_lookups` requests are in flight at once, all CRMs and enterprises together: a burst of new
callers (hundreds at once) must not open hundreds of connections nor crowd the event loop the AGI answers
need; the Router answers the callers it cannot look up in time at once (agent.redirect.router).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from agent.redirect.answers import CacheSettings
from agent.redirect.entries import EXTENSION, Failure
from agent.redirect.variables import caller_name
from connectors.base import Caller, Manager, ResponsibleLookup

log = logging.getLogger(__name__)


class CrmAsker:
    def __init__(self, settings: CacheSettings, failing: set[tuple[str, str]]) -> None:
        self.settings = settings
        self.failing = failing  # (enterprise, crm) now failing: the state change is logged, not each call
        self._slots = asyncio.Semaphore(settings.max_lookups)

    async def ask(self, enterprise: str, lookup: ResponsibleLookup, phone: str) -> Caller | Failure | None:
        crm = getattr(lookup, "crm", type(lookup).__name__)
        try:
            async with self._slots, asyncio.timeout(self.settings.fetch_timeout_s):
                found = await lookup.find_responsible(phone)
        except Exception as exc:  # the CRM failed: reported as data, logged once per state change
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if (enterprise, crm) not in self.failing:
                self.failing.add((enterprise, crm))
                log.warning("smart-redirect: %s lookups for enterprise %s are failing: %s", crm, enterprise, error)
            return Failure(crm, error)
        if (enterprise, crm) in self.failing:
            self.failing.discard((enterprise, crm))
            log.info("smart-redirect: %s lookups for enterprise %s work again", crm, enterprise)
        if found is None:
            return None
        if isinstance(found, Manager):
            found = Caller(found.crm, "", found)
        manager = found.manager
        if manager is not None and manager.extension is not None and not EXTENSION.fullmatch(manager.extension):
            log.warning(
                "smart-redirect: %s gave extension %r for user %s, not a dialable extension; ignored",
                crm,
                manager.extension,
                manager.user_id,
            )
            manager = replace(manager, extension=None)
        return Caller(found.crm, caller_name(found.name), manager)
