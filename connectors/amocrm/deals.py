"""Whose is the caller's open deal (crm-api.md §B4): the responsible user of the newest open lead of a contact.

A contact found `with=leads` lists its leads' ids only, so their statuses take one more request,
`GET /api/v4/leads?filter[id][0]=…&filter[id][1]=…` (the PHP-bracket list form the vendor's SDK sends). A lead
is open unless its status is one of the two closed statuses every pipeline has, 142 (won) and 143 (lost); the
newest is the one created last (`created_at`, then the larger id). An answer without the fields counts as
no open lead, so the contact's responsible user stays the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.amocrm.session import Session

CLOSED_STATUSES = frozenset({142, 143})  # won, lost: in every pipeline (§B4)
MAX_LEADS = 50  # the newest (largest) ids asked about; a contact's open deals are among its recent ones


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def newest_open_owner(leads: Iterable[Any]) -> int | None:
    """The responsible user of the newest lead that is open and has one, or None."""
    best: tuple[int, int] | None = None
    owner: int | None = None
    for lead in leads:
        if not isinstance(lead, dict) or lead.get("is_deleted"):
            continue
        status, user = _int(lead.get("status_id")), _int(lead.get("responsible_user_id"))
        if status is None or status in CLOSED_STATUSES or user is None or user <= 0:
            continue
        key = (_int(lead.get("created_at")) or 0, _int(lead.get("id")) or 0)
        if best is None or key > best:
            best, owner = key, user
    return owner


async def open_deal_owner(session: Session, lead_ids: Iterable[int]) -> int | None:
    """The responsible user of the newest open lead among `lead_ids`, or None (no such lead, 204)."""
    ids = sorted(set(lead_ids), reverse=True)[:MAX_LEADS]
    if not ids:
        return None
    params = {f"filter[id][{i}]": str(lead) for i, lead in enumerate(ids)}
    params["limit"] = str(MAX_LEADS)
    exchange = await session.checked("GET", "/api/v4/leads", params=params)
    if exchange.http_status == 204 or not isinstance(exchange.body, dict):
        return None
    return newest_open_owner((exchange.body.get("_embedded") or {}).get("leads") or ())
