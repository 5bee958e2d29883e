"""What the responsible-manager cache holds: per number an `Entry` (made from the CRMs' answers by `entry_for`),
per enterprise a `Plan`, and the caller as the CRMs are asked about it (`normalised`). Pure data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Literal

from agent.redirect.answers import CacheSettings
from agent.redirect.rules import NO_RULES, Rules
from agent.tracking.phones import normalise
from connectors.base import Caller, Manager, ResponsibleLookup

Kind = Literal["found", "none", "failed"]


@dataclass(frozen=True, slots=True)
class Entry:
    """What is cached for one (enterprise, number): a CRM's answer, or its failure."""

    kind: Kind
    manager: Manager | None
    crm: str  # the CRM that answered, or that failed
    fresh_until: float
    keep_until: float
    history: tuple[str, datetime] | None = None  # the last answered call from the number, when asked
    caller_name: str = ""  # the caller's name as a CRM knows it (made fit for a caller ID), cached with the manager


@dataclass(frozen=True, slots=True)
class Plan:
    """An enterprise's lookups and settings, its routing rules and its managers' CRM statuses."""

    lookups: tuple[ResponsibleLookup, ...]
    redirect_when_busy: bool
    fresh_until: float
    rules: Rules = NO_RULES
    away: Mapping[tuple[str, str], str] = field(default_factory=dict)
    away_until: float = float("inf")


@dataclass(frozen=True, slots=True)
class Failure:
    """One CRM that could not answer."""

    crm: str
    error: str


EXTENSION = re.compile(r"[\w*#+-]{1,32}")  # what a CRM's mapped extension may look like
MAX_NUMBER = 20


@lru_cache(maxsize=65_536)
def normalised(caller: str, region: str | None) -> str:
    phone = normalise(caller, region)
    if len(phone) > MAX_NUMBER or not any(ch.isdigit() for ch in phone):
        return ""
    return phone


def entry_for(results: list[Caller | Failure | None], old: Entry | None, s: CacheSettings, now: float) -> Entry:
    """What to cache for the CRMs' answers about one number (`old`: what is cached now). The manager with an
    extension wins; the caller's name is the one the winning manager's CRM gives, else any CRM's."""
    callers = [r for r in results if isinstance(r, Caller)]
    failures = [r for r in results if isinstance(r, Failure)]
    managers = [c.manager for c in callers if c.manager is not None]
    names = [c.name for c in callers if c.name]
    if managers:
        best = next((m for m in managers if m.extension), managers[0])
        name = next((c.name for c in callers if c.manager is best and c.name), names[0] if names else "")
        fresh = now + s.found_ttl_s
        return Entry("found", best, best.crm, fresh, fresh + s.stale_s, caller_name=name)
    name = names[0] if names else ""
    if not failures:
        fresh = now + s.not_found_ttl_s
        return Entry("none", None, "", fresh, fresh + s.stale_s, caller_name=name)
    if old is not None and old.kind != "failed":  # serve the last good value; ask again later
        retry = now + s.failure_ttl_s
        return replace(old, fresh_until=retry, keep_until=max(old.keep_until, retry))
    fresh = now + s.failure_ttl_s
    return Entry("failed", None, failures[0].crm, fresh, fresh, caller_name=name)
