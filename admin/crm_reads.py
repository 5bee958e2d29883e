"""What the Managers page knows of a CRM (its users, RetailCRM's module codes), kept per enterprise.

Two kinds of entries:
- reads (`get`): what a page view asks for (the users), kept `TTL` seconds: a view within `TTL` of the last read
  costs no CRM request;
- what the agent's own exchanges showed (`keep`/`kept`): RetailCRM's additionalCodes as a registration, a save's
  sync or an explicit comparison last read or wrote them, kept `KEPT` seconds. A page view never asks for these:
  they change only when the agent writes them or someone edits the module in RetailCRM, and the page says when they
  were read.

Saving a mapping updates or drops the entries (`forget`), so what the page shows after a save is what was saved.
Each agent keeps its own copy: a change made by another agent sharing the database shows here within `TTL`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from cachetools import TTLCache

TTL = 60.0  # seconds
KEPT = 24 * 3600.0  # seconds
MAX_ENTRIES = 1024

V = TypeVar("V")
Key = tuple[str, str, str]


class CrmReads:
    def __init__(self, ttl: float = TTL, kept: float = KEPT) -> None:
        self._entries: TTLCache[Key, Any] = TTLCache(MAX_ENTRIES, ttl)
        self._kept: TTLCache[Key, Any] = TTLCache(MAX_ENTRIES, kept)

    async def get(self, crm: str, number: str, what: str, fetch: Callable[[], Awaitable[V]]) -> V:
        """The cached value of `what` for the enterprise's CRM, else `fetch()`'s (a failed fetch is not kept)."""
        key = (crm, number, what)
        if key in self._entries:
            found: V = self._entries[key]
            return found
        value = await fetch()
        self._entries[key] = value
        return value

    def keep(self, crm: str, number: str, what: str, value: object) -> None:
        """What an exchange the agent made anyway showed of the CRM (no request of its own)."""
        self._kept[(crm, number, what)] = value

    def kept(self, crm: str, number: str, what: str) -> Any:
        """What `keep` was last given for `what`, None when nothing (or it is older than `KEPT`)."""
        return self._kept.get((crm, number, what))

    def forget(self, crm: str, number: str, what: str | None = None) -> None:
        for cache in (self._entries, self._kept):
            for key in [k for k in cache if k[:2] == (crm, number) and what in (None, k[2])]:
                cache.pop(key, None)


CRM_READS = web.AppKey("admin_crm_reads", CrmReads)
