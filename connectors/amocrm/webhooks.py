"""amoCRM account webhooks (crm-api.md §B9): PHP-bracket form bodies, and who they say changed hands."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
MAX_FIELDS = 5000


def parse_brackets(form: Mapping[str, str]) -> dict[str, Any]:
    """`contacts[update][0][id]=5` -> {"contacts": {"update": {"0": {"id": "5"}}}}. Lists stay dicts keyed
    by index (as amoCRM sends them); a key that is not bracket syntax is kept as it is."""
    if len(form) > MAX_FIELDS:
        raise ValueError("too many fields")
    out: dict[str, Any] = {}
    for key, value in form.items():
        m = _KEY.match(key)
        parts = [m.group(1), *_PART.findall(m.group(2))] if m else [key]
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out


@dataclass(frozen=True, slots=True)
class Change:
    """An entity whose responsible user may have changed; `phones` when the body carried them."""

    entity: str  # "contacts" | "leads"
    id: int
    phones: tuple[str, ...]


# add: a new contact may replace a cached "not found"; delete: a cached manager is wrong now
_CONTACT_ACTIONS = ("add", "update", "responsible", "delete", "restore")
# status: a deal won or lost no longer routes its caller (route_by_deal)
_LEAD_ACTIONS = ("add", "responsible", "update", "restore", "status")


def responsible_changes(body: Mapping[str, Any]) -> list[Change]:
    out: list[Change] = []
    for entity, actions in (("contacts", _CONTACT_ACTIONS), ("leads", _LEAD_ACTIONS)):
        block = body.get(entity)
        if not isinstance(block, dict):
            continue
        for action in actions:
            for item in _items(block.get(action)):
                if action == "update" and not _responsible_may_differ(item):
                    continue
                ident = str(item.get("id", ""))
                if ident.isdigit():
                    out.append(Change(entity, int(ident), _phones(item) if entity == "contacts" else ()))
    return out


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [v for _, v in sorted(value.items(), key=lambda kv: str(kv[0])) if isinstance(v, dict)]
    return []


def _responsible_may_differ(item: Mapping[str, Any]) -> bool:
    new, old = item.get("responsible_user_id"), item.get("old_responsible_user_id")
    if new is None:
        return False
    return old is None or str(old) != str(new)


def _phones(item: Mapping[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for field in _items(item.get("custom_fields")):
        if str(field.get("code", "")).upper() != "PHONE":
            continue
        for value in _items(field.get("values")):
            if value.get("value"):
                out.append(str(value["value"]))
    return tuple(out)
