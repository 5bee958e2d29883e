"""What smart redirect answers (`Answer`), how its cache is tuned (`CacheSettings`), and the sources it is
handed: the enterprise's `redirect_when_busy`, routing rules, managers' CRM statuses and caller history.

Statuses (see `agent.redirect.variables.Status`): a manager with a mapped extension is `FOUND`, unless their
phone is occupied or unavailable per `ExtensionStates` and the enterprise's `redirect_when_busy` is off,
which answers `UNAVAILABLE` (manager named, no extension). A manager with no mapped extension, or no
manager, is `NOT_FOUND`. No enabled CRM is `DISABLED`. The `LookupSource` or `BusyPolicy` raising (our
settings unreadable: database down, unknown enterprise) is `ERROR`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.redirect.rules import NO_RULES, Rules
from agent.redirect.variables import Status

# enterprise -> its `redirect_when_busy` setting (default False: a busy manager's calls go to the queue).
BusyPolicy = Callable[[str], Awaitable[bool]]


# enterprise -> its routing rules; (crm, user id) of managers away by their CRM status -> reason.
RulesSource = Callable[[str], Awaitable[Rules]]
AwaySource = Callable[[str], Awaitable[Mapping[tuple[str, str], str]]]
# (enterprise, phone, since) -> (extension that answered the most recent incoming call, when it ended).
HistoryLookup = Callable[[str, str, datetime], Awaitable[tuple[str, datetime] | None]]


async def never_when_busy(enterprise: str) -> bool:
    return False


async def no_rules(enterprise: str) -> Rules:
    return NO_RULES


async def nobody_away(enterprise: str) -> Mapping[tuple[str, str], str]:
    return {}


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Answer:
    status: Status
    extension: str = ""
    manager: str = ""
    crm: str = ""
    cached: bool = False  # answered without waiting for a CRM
    reason: str = ""  # UNAVAILABLE: why (Reason)
    source: str = ""  # FOUND: who named the extension (Source)
    caller_name: str = ""  # the caller's name as a CRM knows it, already fit for a caller ID


@dataclass(frozen=True, slots=True)
class CacheSettings:
    found_ttl_s: float = 600.0
    not_found_ttl_s: float = 60.0
    stale_s: float = 3600.0  # how long past freshness an entry is still served (refreshing, CRM down)
    failure_ttl_s: float = 10.0  # how long a CRM failure is remembered before the CRM is asked again
    enterprise_ttl_s: float = 300.0  # lookups and settings are re-read after this even without a NOTIFY
    away_ttl_s: float = 15.0  # managers' CRM statuses (break, dinner, busy) are re-read this often
    fetch_timeout_s: float = 10.0  # one CRM lookup in the background, at most (once it has a slot)
    max_lookups: int = 64  # CRM lookups in flight at once; a caller who finds none free gets the fallback
    maxsize: int = 100_000  # numbers cached, all enterprises together


def by_rules(rules: Rules, phone: str, wall: datetime) -> Answer | None:
    """BLOCKED or CLOSED when the enterprise's rules say so, before any CRM is asked."""
    if rules.is_blocked(phone):
        return Answer(Status.BLOCKED)
    if not rules.is_open(wall):
        return Answer(Status.CLOSED)
    return None
