"""What the fake amoCRM accepts: pure validators for the request shapes of crm-api.md Part B.

Each check returns a list of (path, detail) for one batch item (empty: valid); the fake answers them as one
400 problem with `validation-errors` keyed by `request_id` (§B2). Strict where the contract has vendor
documentation or the vendor's SDK; an optional field is checked only for its documented type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LIST_LIMIT = 250  # §B1: `limit` <= 250 on every list
JSON_TYPE = "application/json"  # §B1: bodies are JSON, Content-Type application/json
TASK_ENTITIES = frozenset({"leads", "contacts", "companies", "customers"})
MAX_CUSTOM_FIELDS = 40  # §B8 leads/complex: <= 40 custom-field values per entity

Problems = list[tuple[str, str]]
BLANK = "This value should not be blank."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _typed(item: Mapping[str, Any], ints: tuple[str, ...] = (), strs: tuple[str, ...] = (), at: str = "") -> Problems:
    """Optional fields: when present, of the documented type (an int sent as "7" or a bool is refused)."""
    out: Problems = [(at + n, "This value should be of type int.") for n in ints if n in item and not _is_int(item[n])]
    out += [
        (at + n, "This value should be of type string.") for n in strs if n in item and not isinstance(item[n], str)
    ]
    return out


def list_query(query: Mapping[str, str]) -> Problems:
    """§B1 lists: `limit` 1..250 and `page` from 1, when given."""
    out: Problems = []
    limit, page = query.get("limit"), query.get("page")
    if limit is not None and not (limit.isdigit() and 1 <= int(limit) <= LIST_LIMIT):
        out.append(("limit", f"This value should be between 1 and {LIST_LIMIT}."))
    if page is not None and not (page.isdigit() and int(page) >= 1):
        out.append(("page", "This value should be greater than or equal to 1."))
    return out


def check_call(call: Mapping[str, Any]) -> Problems:
    """§B5 POST /api/v4/calls: direction, duration, source, phone required; call_status 1..7; the rest typed."""
    out: Problems = []
    if call.get("direction") not in ("inbound", "outbound"):
        out.append(("direction", "The value you selected is not a valid choice."))
    if not _is_int(call.get("duration")) or call["duration"] < 0:
        out.append(("duration", BLANK))
    for name in ("source", "phone"):
        if not isinstance(call.get(name), str) or not call[name]:
            out.append((name, BLANK))
    status = call.get("call_status")
    if status is not None and (not _is_int(status) or status not in range(1, 8)):
        out.append(("call_status", "The value you selected is not a valid choice."))
    responsible = call.get("call_responsible")
    if responsible is not None and not (_is_int(responsible) or isinstance(responsible, str)):
        out.append(("call_responsible", "This value should be of type int or string."))
    ints = ("responsible_user_id", "created_by", "updated_by", "created_at", "updated_at")
    return out + _typed(call, ints, ("uniq", "link", "call_result", "request_id"))


def check_unsorted(item: Mapping[str, Any]) -> Problems:
    """§B7 POST /api/v4/leads/unsorted/sip: source_uid, source_name, metadata (always sent, §B7) and their types."""
    out: Problems = []
    for name in ("source_uid", "source_name"):
        if not isinstance(item.get(name), str) or not item[name]:
            out.append((name, BLANK))
    out += _typed(item, ("pipeline_id", "created_at"), ("request_id",))
    meta = item.get("metadata")
    if not isinstance(meta, dict):
        out.append(("metadata", BLANK))
    else:
        strs = ("from", "phone", "link", "service_code", "uniq")
        out += _typed(meta, ("called_at", "duration"), strs, "metadata.")
        if "is_call_event_needed" in meta and not isinstance(meta["is_call_event_needed"], bool):
            out.append(("metadata.is_call_event_needed", "This value should be of type bool."))
    embedded = item.get("_embedded")
    if embedded is not None and not isinstance(embedded, dict):
        out.append(("_embedded", "This value should be of type object."))
    elif embedded:
        for name in ("leads", "contacts", "companies"):  # §B7: array(1) each
            value = embedded.get(name)
            if value is not None and not (isinstance(value, list) and len(value) <= 1):
                out.append((f"_embedded.{name}", "At most one item."))
    return out


def check_complex(lead: Mapping[str, Any]) -> Problems:
    """§B8 POST /api/v4/leads/complex: one contact and one company per lead, <= 40 custom-field values each."""
    out: Problems = _typed(lead, ("price", "status_id", "pipeline_id", "responsible_user_id"), ("name",))
    embedded = lead.get("_embedded") or {}
    entities: list[tuple[str, Any]] = [("", lead)]
    for name in ("contacts", "companies"):
        items = embedded.get(name) or []
        if not isinstance(items, list) or len(items) > 1:
            out.append((f"_embedded.{name}", f"Only one {name[:-1] if name == 'contacts' else 'company'} per lead"))
            continue
        entities += [(f"_embedded.{name}.0.", e) for e in items]
    for at, entity in entities:
        fields = entity.get("custom_fields_values") if isinstance(entity, dict) else None
        if isinstance(fields, list) and len(fields) > MAX_CUSTOM_FIELDS:
            out.append((at + "custom_fields_values", f"At most {MAX_CUSTOM_FIELDS} custom field values."))
    return out


def check_task(task: Mapping[str, Any]) -> Problems:
    """§B8 POST /api/v4/tasks: text and complete_till (the due time) required; entity_type with entity_id;
    the rest typed (TaskModel)."""
    out: Problems = []
    if not _is_int(task.get("complete_till")):
        out.append(("complete_till", BLANK))
    if not isinstance(task.get("text"), str) or not task["text"]:
        out.append(("text", BLANK))
    if task.get("entity_type") not in (None, *TASK_ENTITIES):
        out.append(("entity_type", "The value you selected is not a valid choice."))
    if ("entity_type" in task) != ("entity_id" in task):
        out.append(("entity_id", "entity_id and entity_type go together."))
    ints = ("entity_id", "task_type_id", "responsible_user_id", "created_by", "duration")
    return out + _typed(task, ints, ("request_id",))
