"""Requests RetailCRM sends to us (crm-api.md §A8), parsed and validated. No HTTP here: the caller
merges the GET query and the POST form into one mapping and finds the account by `client_id`."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

_PHONE_CHARS = re.compile(r"[\s()\-.]")
_PHONE = re.compile(r"^\+?[0-9]{2,20}$")
_CODE = re.compile(r"^[0-9A-Za-z_*#+-]{1,32}$")
_USER_ID = re.compile(r"^[0-9]{1,18}$")
USER_STATUSES = frozenset({"free", "busy", "dinner", "break"})


class CallbackError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class MakeCall:
    """Click-to-call: ring extension `code`, then dial `phone` (presenting `external_phone` if given)."""

    client_id: str
    code: str
    phone: str
    user_id: str | None
    external_phone: str | None


@dataclass(frozen=True, slots=True)
class UserStatusChange:
    client_id: str
    user_id: str
    code: str | None
    status: str


@dataclass(frozen=True, slots=True)
class Activity:
    client_id: str
    active: bool
    freeze: bool
    system_url: str | None

    @property
    def live(self) -> bool:
        return self.active and not self.freeze


def client_id_matches(received: str, expected: str) -> bool:
    return hmac.compare_digest(received.encode(), expected.encode())


def _required(params: Mapping[str, str], name: str) -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise CallbackError(name, "missing")
    return value


def _optional(params: Mapping[str, str], name: str) -> str | None:
    value = (params.get(name) or "").strip()
    return value or None


def _client_id(params: Mapping[str, str]) -> str:
    value = _required(params, "clientId")
    if len(value) > 128:
        raise CallbackError("clientId", "too long")
    return value


def normalise_phone(raw: str, field: str = "phone") -> str:
    phone = _PHONE_CHARS.sub("", raw)
    if not _PHONE.fullmatch(phone):
        raise CallbackError(field, "not a phone number")
    return phone


def _user_id(params: Mapping[str, str], required: bool) -> str | None:
    value = _required(params, "userId") if required else _optional(params, "userId")
    if value is not None and not _USER_ID.fullmatch(value):
        raise CallbackError("userId", "must be a number")
    return value


def _code(params: Mapping[str, str], required: bool) -> str | None:
    value = _required(params, "code") if required else _optional(params, "code")
    if value is not None and not _CODE.fullmatch(value):
        raise CallbackError("code", "not an extension")
    return value


def parse_make_call(params: Mapping[str, str]) -> MakeCall:
    external = _optional(params, "externalPhone")
    code = _code(params, required=True)
    assert code is not None
    return MakeCall(
        client_id=_client_id(params),
        code=code,
        phone=normalise_phone(_required(params, "phone")),
        user_id=_user_id(params, required=False),
        external_phone=normalise_phone(external, "externalPhone") if external else None,
    )


def parse_user_status(params: Mapping[str, str]) -> UserStatusChange:
    status = _required(params, "status")
    if status not in USER_STATUSES:
        raise CallbackError("status", f"expected one of {', '.join(sorted(USER_STATUSES))}")
    user_id = _user_id(params, required=True)
    assert user_id is not None
    return UserStatusChange(_client_id(params), user_id, _code(params, required=False), status)


def parse_activity(params: Mapping[str, str]) -> Activity:
    raw = _required(params, "activity")
    try:
        activity = json.loads(raw)
    except ValueError as exc:
        raise CallbackError("activity", "not JSON") from exc
    if not isinstance(activity, dict):
        raise CallbackError("activity", "must be a JSON object")
    active, freeze = activity.get("active"), activity.get("freeze", False)
    if not isinstance(active, bool) or not isinstance(freeze, bool):
        raise CallbackError("activity", "active and freeze must be true or false")
    return Activity(_client_id(params), active, freeze, _optional(params, "systemUrl"))
