"""When amoCRM's answer was lost (a timeout after the request was sent, a cut connection, a stop), the request
may have been processed. Before the next try creates the same thing again it asks whether it exists:

- a call (`POST /api/v4/calls`) is a `call_in`/`call_out` note carrying our `uniq` in its params, on whichever
  card amoCRM attached it to (a contact, its only active lead, or a company): the notes of each entity type
  changed since the first try are searched (`GET /api/v4/{entity}/notes`, crm-api.md §B8; RECALLED, so any
  answer other than a list is "not found", and the call is sent again: a duplicate rather than a loss);
- an unsorted item: amoCRM refuses a second one with the same `uniq` ("This unsorted already exists"),
  which means the first one was made;
- a contact and lead (`leads/complex`): the contact is looked up by the caller's number (calls.py);
- a call-back task: an open task with the same text on the same card, or for the same manager
  (`GET /api/v4/tasks` with filters, crm-api.md §B8; RECALLED, so anything but a list is "not found").
"""

from __future__ import annotations

from typing import Any

from connectors.amocrm.session import Session
from connectors.base import answer_id
from connectors.http import Exchange

CLOCK_SLACK_S = 120  # our clock against amoCRM's, and the time the first try took
NOTE_ENTITIES = ("contacts", "leads", "companies")
PAGE = "250"


async def call_note_exists(session: Session, call: dict[str, Any], *, since: int) -> bool:
    """Is there a call note with this call's `uniq`, changed since `since` (unix seconds)?"""
    uniq = call.get("uniq")
    if not uniq:
        return False
    note_type = "call_in" if call.get("direction") == "inbound" else "call_out"
    for entity in NOTE_ENTITIES:
        exchange = await session.request(
            "GET",
            f"/api/v4/{entity}/notes",
            params={"filter[note_type]": note_type, "filter[updated_at][from]": str(since), "limit": PAGE},
        )
        if any(_uniq_of(note) == uniq for note in _notes(exchange)):
            return True
    return False


def already_exists(exchange: Exchange) -> bool:
    """A 400 whose validation errors say the item exists already (amoCRM's duplicate `uniq` of unsorted)."""
    if exchange.http_status != 400 or not isinstance(exchange.body, dict):
        return False
    for entry in exchange.body.get("validation-errors") or []:
        for err in (entry.get("errors") if isinstance(entry, dict) else None) or []:
            if isinstance(err, dict) and "already exists" in str(err.get("detail", "")).lower():
                return True
    return False


def _notes(exchange: Exchange) -> list[dict[str, Any]]:
    body = exchange.body
    if exchange.http_status != 200 or not isinstance(body, dict):
        return []
    notes = (body.get("_embedded") or {}).get("notes")
    return [n for n in notes if isinstance(n, dict)] if isinstance(notes, list) else []


def _uniq_of(note: dict[str, Any]) -> Any:
    params = note.get("params")
    return params.get("uniq") if isinstance(params, dict) else None


async def open_task_like(session: Session, task: dict[str, Any]) -> int | None:
    """The id of an open task with this task's text on the same card (or for the same manager), if any."""
    params = {"filter[is_completed]": "0", "limit": PAGE}
    if task.get("entity_id") is not None:
        params["filter[entity_type]"] = str(task.get("entity_type"))
        params["filter[entity_id]"] = str(task["entity_id"])
    elif task.get("responsible_user_id") is not None:
        params["filter[responsible_user_id]"] = str(task["responsible_user_id"])
    exchange = await session.request("GET", "/api/v4/tasks", params=params)
    body = exchange.body
    if exchange.http_status != 200 or not isinstance(body, dict):
        return None
    for found in (body.get("_embedded") or {}).get("tasks") or []:
        made = answer_id(found.get("id")) if isinstance(found, dict) else None
        if made is not None and found.get("text") == task.get("text"):
            return made
    return None
