"""What the responsible-manager cache holds: per number an `Entry`, per enterprise a `Plan`, and the
caller as the CRMs are asked about it (`normalised`). Pure data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Literal

from agent.redirect.rules import NO_RULES, Rules
from agent.tracking.phones import normalise
from connectors.base import Manager, ResponsibleLookup

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
