"""What the fake RetailCRM accepts: pure validators for module edits, call events and call uploads.

Strict where crm-api.md has vendor evidence, lenient where it only has recollection (see the notes).
Each returns a dict of field -> message (empty: valid).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

EVENT_TYPES = frozenset({"in", "out", "hangup"})
HANGUP_STATUSES = frozenset({"answered", "busy", "cancel", "failed", "no answered"})
UPLOAD_TYPES = frozenset({"in", "out"})
UPLOAD_RESULTS = frozenset({"answered", "busy", "failed", "no answer", "not allowed", "unknown"})
ACTION_KEYS = frozenset({"activity"})  # third-party report: other keys are refused
MAX_UPLOAD = 50
PAGE_LIMITS = frozenset({20, 50, 100, 250})

Errors = dict[str, str]


def _url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _strings(obj: dict[str, Any], names: tuple[str, ...]) -> Errors:
    """Optional fields typed string by the contract: when sent, a string (a number is refused)."""
    return {n: "This value should be of type string." for n in names if n in obj and not isinstance(obj[n], str)}


def _int_like(value: Any) -> bool:
    # PHP types ids as int, Go as string: accept both.
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())


def check_module(path_code: str, module: Any) -> Errors:
    if not isinstance(module, dict):
        return {"integrationModule": "must be an object"}
    errors: Errors = {}
    code = module.get("code")
    if not isinstance(code, str) or not code:  # §A3: `code` is the module code, equal to {code} in the path
        errors["code"] = "This value should not be blank."
    elif code != path_code:
        errors["code"] = "Code must match the code in the URL"
    integration_code = module.get("integrationCode")
    if integration_code and not path_code.startswith(str(integration_code)):
        errors["code"] = "Code prefix must match integrationCode"
    if not module.get("clientId"):
        errors["clientId"] = "This value should not be blank."
    if not _url(module.get("baseUrl")):
        errors["baseUrl"] = "This value should not be blank."
    logo = module.get("logo")
    if not _url(logo) or not urlsplit(str(logo)).path.lower().endswith(".svg"):
        errors["logo"] = "The logo must be an SVG file URL."
    actions = module.get("actions")
    if actions is not None and (not isinstance(actions, dict) or set(actions) - ACTION_KEYS):
        errors["actions"] = "The value you selected is not a valid choice."
    for name in ("active", "allowEdit"):
        if name in module and not isinstance(module[name], bool):
            errors[name] = "This value should be of type bool."
    errors.update(_strings(module, ("name", "integrationCode")))  # §A3 field types
    if module.get("accountUrl") is not None and not _url(module["accountUrl"]):
        errors["accountUrl"] = "This value is not a valid URL."
    countries = module.get("availableCountries")
    if countries is not None and not (isinstance(countries, list) and all(isinstance(c, str) for c in countries)):
        errors["availableCountries"] = "This value should be of type string[]."
    telephony = (module.get("integrations") or {}).get("telephony")
    if telephony is not None:
        errors.update(_check_telephony(telephony))
    return errors


def _check_telephony(t: Any) -> Errors:
    if not isinstance(t, dict):
        return {"integrations.telephony": "must be an object"}
    errors: Errors = {}
    for name in ("makeCallUrl", "changeUserStatusUrl"):
        if t.get(name) is not None and not _url(t[name]):
            errors[f"integrations.telephony.{name}"] = "This value is not a valid URL."
    for i, item in enumerate(t.get("additionalCodes") or []):
        if not isinstance(item, dict) or not _int_like(item.get("userId")) or not item.get("code"):
            errors[f"integrations.telephony.additionalCodes[{i}]"] = "userId and code are required"
    for i, item in enumerate(t.get("externalPhones") or []):
        if not isinstance(item, dict) or not item.get("siteCode") or not item.get("externalPhone"):
            errors[f"integrations.telephony.externalPhones[{i}]"] = "siteCode and externalPhone are required"
    return errors


def check_event(event: Any) -> Errors:
    if not isinstance(event, dict):
        return {"event": "must be an object"}
    errors: Errors = {}
    if not isinstance(event.get("phone"), str) or not event["phone"]:
        errors["phone"] = "This value should not be blank."
    if event.get("type") not in EVENT_TYPES:
        errors["type"] = "The value you selected is not a valid choice."
    codes, user_ids = event.get("codes"), event.get("userIds")
    codes_ok = isinstance(codes, list) and codes and all(isinstance(c, str) and c for c in codes)
    users_ok = isinstance(user_ids, list) and user_ids and all(_int_like(u) for u in user_ids)
    if not (codes_ok or users_ok):
        errors["codes"] = "codes or userIds must be given"
    # §A4: required on `hangup`; accepted on any type (the .NET client sends it always), validated when present
    if event.get("type") == "hangup" and "hangupStatus" not in event:
        errors["hangupStatus"] = "This value should not be blank."
    elif "hangupStatus" in event and event["hangupStatus"] not in HANGUP_STATUSES:
        errors["hangupStatus"] = "The value you selected is not a valid choice."
    errors.update(_strings(event, ("site", "callExternalId", "externalPhone")))  # §A4 field types
    return errors


def check_calls(calls: Any) -> Errors:
    if not isinstance(calls, list):
        return {"calls": "must be an array"}
    if not 1 <= len(calls) <= MAX_UPLOAD:
        return {"calls": f"1 to {MAX_UPLOAD} calls per request"}
    errors: Errors = {}
    for i, call in enumerate(calls):
        for field, message in _check_call(call).items():
            errors[f"calls[{i}].{field}"] = message
    return errors


def _check_call(call: Any) -> Errors:
    if not isinstance(call, dict):
        return {"": "must be an object"}
    errors: Errors = {}
    if not isinstance(call.get("phone"), str) or not call["phone"]:
        errors["phone"] = "This value should not be blank."
    if call.get("type") not in UPLOAD_TYPES:
        errors["type"] = "The value you selected is not a valid choice."
    if call.get("result") is not None and call["result"] not in UPLOAD_RESULTS:
        errors["result"] = "The value you selected is not a valid choice."
    if "date" in call:
        try:
            datetime.strptime(str(call["date"]), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            errors["date"] = "Y-m-d H:i:s expected"
    for name in ("duration", "durationWaiting"):
        if name in call and not (isinstance(call[name], int) and call[name] >= 0):
            errors[name] = "This value should be a non-negative integer."
    if "userId" in call and not _int_like(call["userId"]):
        errors["userId"] = "This value should be of type int."
    if "recordUrl" in call and not _url(call["recordUrl"]):
        errors["recordUrl"] = "This value is not a valid URL."
    # §A5 field types: `code` (an extension) and the other ids are strings, `source` an object
    errors.update(_strings(call, ("externalId", "code", "externalPhone", "site", "clientId")))
    if "source" in call and not isinstance(call["source"], dict):
        errors["source"] = "This value should be of type object."
    return errors


def phone_digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits[-10:]


def truthy(value: str | None) -> bool:
    """`1`/`0` (PHP client) or `True`/`False`/`true`/`false` (Python client)."""
    return (value or "").strip().lower() in ("1", "true")


TASK_DATETIME = "%Y-%m-%d %H:%M"  # the PHP client's serialisation of Task.datetime
TASK_STATUSES = frozenset({"performing", "completed"})


def check_task(task: Any, users: set[str], customers: set[str], *, creating: bool) -> Errors:
    """tasks/create (`creating`) and tasks/{id}/edit: the PHP client's Task; on create `text` and a
    `performerId` naming an existing user are required (the vendor's example sends both)."""
    if not isinstance(task, dict):
        return {"task": "must be an object"}
    errors: Errors = {}
    text = task.get("text")
    if (creating or "text" in task) and (not isinstance(text, str) or not text.strip()):
        errors["text"] = "This value should not be blank."
    if creating or "performerId" in task:
        performer = task.get("performerId")
        if not _int_like(performer):
            errors["performerId"] = "This value should not be blank."
        elif str(performer) not in users:
            errors["performerId"] = f"User with id {performer} not found"
    if "datetime" in task:
        try:
            datetime.strptime(str(task["datetime"]), TASK_DATETIME)
        except ValueError:
            errors["datetime"] = "This value is not a valid datetime."
    if "complete" in task and not isinstance(task["complete"], bool):
        errors["complete"] = "This value should be of type bool."
    customer = task.get("customer")
    if customer is not None:
        if not isinstance(customer, dict) or not _int_like(customer.get("id")):
            errors["customer"] = "must be an object with an id"
        elif str(customer["id"]) not in customers:
            errors["customer"] = f"Customer with id {customer['id']} not found"
    return errors


def check_customer(customer: Any) -> Errors:
    """customers/create: a customer needs a name or a phone or an email (RECALLED: lenient)."""
    if not isinstance(customer, dict):
        return {"customer": "must be an object"}
    phones = customer.get("phones")
    if phones is not None and (
        not isinstance(phones, list) or not all(isinstance(p, dict) and p.get("number") for p in phones)
    ):
        return {"phones": "a list of {number}"}
    if not (customer.get("firstName") or phones or customer.get("email")):
        return {"customer": "a name, a phone or an e-mail is required"}
    return {}


def check_order(order: Any, customers: set[str], methods: set[str]) -> Errors:
    """orders/create: `orderMethod` must be one of the account's order methods, `customer.id` an existing one."""
    if not isinstance(order, dict):
        return {"order": "must be an object"}
    errors: Errors = {}
    if "orderMethod" in order and order["orderMethod"] not in methods:
        errors["orderMethod"] = f"Order method '{order['orderMethod']}' does not exist"
    customer = order.get("customer")
    if customer is not None and (not isinstance(customer, dict) or str(customer.get("id")) not in customers):
        errors["customer"] = "Customer not found"
    return errors
