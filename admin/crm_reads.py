"""What the Managers page reads from a CRM (its users, RetailCRM's module), kept a short while per enterprise.

A page view within `TTL` seconds of the last read costs no CRM request; saving a mapping updates or drops the
entry (`forget`), so what the page shows after a save is what was saved. Each agent keeps its own copy: a
change made by another agent sharing the database shows here within `TTL`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from cachetools import TTLCache

TTL = 60.0  # seconds
MAX_ENTRIES = 1024

V = TypeVar("V")


class CrmReads:
    def __init__(self, ttl: float = TTL) -> None:
        self._entries: TTLCache[tuple[str, str, str], Any] = TTLCache(MAX_ENTRIES, ttl)

    async def get(self, crm: str, number: str, what: str, fetch: Callable[[], Awaitable[V]]) -> V:
        """The cached value of `what` for the enterprise's CRM, else `fetch()`'s (a failed fetch is not kept)."""
        key = (crm, number, what)
        if key in self._entries:
            found: V = self._entries[key]
            return found
        value = await fetch()
        self._entries[key] = value
        return value

    def put(self, crm: str, number: str, what: str, value: object) -> None:
        self._entries[(crm, number, what)] = value

    def forget(self, crm: str, number: str, what: str | None = None) -> None:
        for key in [k for k in self._entries if k[:2] == (crm, number) and what in (None, k[2])]:
            self._entries.pop(key, None)


CRM_READS = web.AppKey("admin_crm_reads", CrmReads)
