"""What smart redirect answers for what its cache holds (pure: the entry, the enterprise's plan, the phones'
states and the wall clock in; an Answer out). Statuses: agent.redirect.answers.

Routing rules (`agent.redirect.rules`, loaded with the enterprise's plan and dropped with it by `Router.invalidate`)
come first, evaluated against the wall clock (`clock`): a blocked caller is `BLOCKED` and outside the
enterprise's hours or on a holiday is `CLOSED`, both without asking any CRM. A manager outside their own
hours, or away by their CRM status, is `UNAVAILABLE` with a `reason` (`off_hours`, `away`, `busy`). With no
manager from any CRM, the extension that answered the caller's most recent call within `history_days`
(`HistoryLookup`, cached beside the CRM answer, updated at once by `note_answered`) is `FOUND` with
`source="history"`. Every answer made from a CRM's entry carries the caller's name the CRMs gave (`caller_name`).
"""

from __future__ import annotations

from datetime import datetime

from agent.redirect.answers import Answer
from agent.redirect.entries import Entry, Plan
from agent.redirect.rules import NO_RULES
from agent.redirect.variables import Reason, Source, Status
from agent.tracking.extstates import ExtensionStates


def answer_for(
    entry: Entry,
    plan: Plan | None,
    wall: datetime,
    *,
    states: ExtensionStates | None,
    recent: tuple[str, datetime] | None,
    cached: bool,
) -> Answer:
    """What the router answers for a cached or fetched `entry`, at wall-clock time `wall`. `states`: the
    enterprise's phones; `recent`: the extension that last answered this caller, as the live calls say."""
    m, name = entry.manager, entry.caller_name
    rules = plan.rules if plan is not None else NO_RULES
    if m is None:
        if rules.history_days:
            found = from_history(entry, plan, wall, states=states, recent=recent, cached=cached)
            if found is not None:
                return found
        if entry.kind == "failed":
            return Answer(Status.UNAVAILABLE, crm=entry.crm, cached=cached, caller_name=name)
        if plan is not None and not plan.lookups:
            return Answer(Status.DISABLED, cached=cached)
        return Answer(Status.NOT_FOUND, cached=cached, caller_name=name)
    if not m.extension:
        return Answer(Status.NOT_FOUND, manager=m.name, crm=m.crm, cached=cached, caller_name=name)
    reason = unavailable(m.extension, plan, wall, states)
    if not reason and plan is not None and plan.away:
        reason = plan.away.get((m.crm, m.user_id), "")
    if reason:
        return Answer(Status.UNAVAILABLE, manager=m.name, crm=m.crm, cached=cached, reason=reason, caller_name=name)
    return Answer(
        Status.FOUND,
        extension=m.extension,
        manager=m.name,
        crm=m.crm,
        cached=cached,
        source=Source.CRM,
        caller_name=name,
    )


def unavailable(extension: str, plan: Plan | None, wall: datetime, states: ExtensionStates | None) -> str:
    """Why `extension` cannot take a call now (off_hours, busy), or ""."""
    if plan is not None and plan.rules.managers and not plan.rules.manager_on_duty(extension, wall):
        return Reason.OFF_HOURS
    if states is not None and not states.available(extension) and not (plan and plan.redirect_when_busy):
        return Reason.BUSY
    return ""


def from_history(
    entry: Entry,
    plan: Plan | None,
    wall: datetime,
    *,
    states: ExtensionStates | None,
    recent: tuple[str, datetime] | None,
    cached: bool,
) -> Answer | None:
    """FOUND by the caller's history: the extension that answered their most recent call within
    `history_days`, if it can take a call now."""
    assert plan is not None
    last = entry.history
    if recent is not None and (last is None or recent[1] >= last[1]):
        last = recent
    if last is None or (wall - last[1]).total_seconds() > plan.rules.history_days * 86_400:
        return None
    if unavailable(last[0], plan, wall, states):
        return None  # the one who spoke to them last is not there: the usual route
    return Answer(Status.FOUND, extension=last[0], cached=cached, source=Source.HISTORY, caller_name=entry.caller_name)
