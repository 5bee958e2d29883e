"""The names of an amoCRM account's users, for the manager's name smart redirect sends (REDIRECT_MANAGER).

amoCRM has no user name on a contact or a lead, only `responsible_user_id`; the names come from
`GET /api/v4/users`, which needs an admin's token and answers 403 to anyone else (crm-api.md §B4). So the list
is read once per account and kept for `fresh_s`; a lookup that finds it missing or old reads it again, beside
its contact search (not after it), and lookups at the same moment share that one read. A token that may not
read users (a JSON 403) is not asked again for `refused_s`: the manager's name is then empty, the routing the
same. Other failures are retried after `failed_s`; the last names read are kept meanwhile. Each change between
working and failing is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from connectors.base import CrmError

log = logging.getLogger(__name__)

FRESH_S = 600.0  # as long as smart redirect keeps a found manager (agent.redirect.answers.CacheSettings)
REFUSED_S = 3600.0
FAILED_S = 60.0

Fetch = Callable[[], Awaitable[list[dict[str, Any]]]]


class UserNames:
    """Per process: account -> {user id: name}; shared by every enterprise on the account."""

    def __init__(
        self,
        *,
        fresh_s: float = FRESH_S,
        refused_s: float = REFUSED_S,
        failed_s: float = FAILED_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh_s, self.refused_s, self.failed_s = fresh_s, refused_s, failed_s
        self._clock = clock
        self._names: dict[str, dict[str, str]] = {}
        self._until: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failing: set[str] = set()

    def cached(self, account: str) -> Mapping[str, str] | None:
        """The names when they need no reading, else None."""
        if self._until.get(account, 0.0) > self._clock():
            return self._names.get(account, {})
        return None

    async def of(self, account: str, fetch: Fetch) -> Mapping[str, str]:
        """The account's user names, read with `fetch` (raising CrmError) when missing or old. Never raises a
        CRM failure: the names then are the last ones read, or none."""
        names = self.cached(account)
        if names is not None:
            return names
        async with self._locks.setdefault(account, asyncio.Lock()):
            names = self.cached(account)  # read by the lookup this one waited for
            if names is not None:
                return names
            try:
                users = await fetch()
            except CrmError as exc:
                refused = exc.outcome.http_status == 403
                self._until[account] = self._clock() + (self.refused_s if refused else self.failed_s)
                if account not in self._failing:
                    self._failing.add(account)
                    log.warning(
                        "amoCRM %s: cannot read the users' names for smart redirect (%s); managers go unnamed%s",
                        account,
                        exc,
                        " (the token is not an admin's)" if refused else "",
                    )
                return self._names.get(account, {})
            self._names[account] = {str(u["id"]): str(u["name"]) for u in users if u.get("id") and u.get("name")}
            self._until[account] = self._clock() + self.fresh_s
            if account in self._failing:
                self._failing.discard(account)
                log.info("amoCRM %s: the users' names can be read again", account)
            return self._names[account]
