"""Finding a caller among amoCRM contacts (crm-api.md §B4): search by the last 10 digits, then confirm."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from connectors.amocrm.session import Session

_NON_DIGITS = re.compile(r"\D")
MATCH_DIGITS = 10  # amoCRM matches calls to cards by the last 10 digits (§B5)


def digits(phone: str) -> str:
    return _NON_DIGITS.sub("", phone)


def same_number(a: str, b: str) -> bool:
    da, db = digits(a), digits(b)
    if not da or not db:
        return False
    n = min(MATCH_DIGITS, len(da), len(db))
    return n >= 5 and da[-n:] == db[-n:]


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    name: str
    responsible_user_id: int | None
    phones: tuple[str, ...]
    lead_ids: tuple[int, ...] = ()


def phones_of(entity: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for field in entity.get("custom_fields_values") or []:
        if not isinstance(field, dict) or field.get("field_code") != "PHONE":
            continue
        for value in field.get("values") or []:
            if isinstance(value, dict) and value.get("value"):
                out.append(str(value["value"]))
    return tuple(out)


def parse_contact(entity: dict[str, Any]) -> Contact | None:
    cid = entity.get("id")
    if not isinstance(cid, int):
        return None
    responsible = entity.get("responsible_user_id")
    leads = ((entity.get("_embedded") or {}).get("leads")) or []
    return Contact(
        id=cid,
        name=str(entity.get("name") or ""),
        responsible_user_id=responsible if isinstance(responsible, int) and responsible > 0 else None,
        phones=phones_of(entity),
        lead_ids=tuple(lead["id"] for lead in leads if isinstance(lead, dict) and isinstance(lead.get("id"), int)),
    )


async def find_contact(session: Session, phone: str) -> Contact | None:
    """The contact whose phone is `phone` (the oldest, when several are); None on 204 / no real match."""
    query = digits(phone)[-MATCH_DIGITS:]
    if not query:
        return None
    exchange = await session.checked("GET", "/api/v4/contacts", params={"query": query, "with": "leads", "limit": "50"})
    if exchange.http_status == 204 or not isinstance(exchange.body, dict):
        return None
    found: list[Contact] = []
    for entity in (exchange.body.get("_embedded") or {}).get("contacts") or []:
        contact = parse_contact(entity) if isinstance(entity, dict) else None
        # the query matches any field; only a phone that is really this number counts
        if contact is not None and any(same_number(p, phone) for p in contact.phones):
            found.append(contact)
    return min(found, key=lambda c: c.id) if found else None


def phone_field(phone: str) -> list[dict[str, Any]]:
    return [{"field_code": "PHONE", "values": [{"value": phone, "enum_code": "WORK"}]}]
