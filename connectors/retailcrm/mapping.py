"""CRM user <-> extension mapping: reassigning extensions, and merging ours with the module's codes.

Pure functions. The local mapping (`user_extensions` in settings) is the truth; the module's
`additionalCodes` in RetailCRM is a copy we sync, so a difference is reported, and ours wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.retailcrm.models import CrmUser
from connectors.settings_rules import EXTENSION


class MappingError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Move:
    extension: str
    from_user: str
    to_user: str


def reassign(
    current: Mapping[str, str], changes: Mapping[str, str | None], *, replace: bool = False
) -> tuple[dict[str, str], list[Move]]:
    """Apply `{user_id: extension | None}` to `current` (or to nothing when `replace`).

    An extension belongs to one user: giving it to another takes it from the previous one (reported
    as a Move). None or "" removes the user's extension. The same extension twice in `changes` is an error.
    """
    wanted: dict[str, str] = {}
    for user_id, ext in changes.items():
        if ext:
            if ext in wanted:
                raise MappingError(f"user_extensions.{user_id}", f"extension {ext} is also given to user {wanted[ext]}")
            wanted[ext] = user_id
    base = {} if replace else {uid: ext for uid, ext in current.items() if uid not in changes}
    result = {uid: ext for uid, ext in base.items() if ext not in wanted}
    result.update({uid: ext for ext, uid in wanted.items()})
    moves = [Move(ext, uid, wanted[ext]) for uid, ext in current.items() if ext in wanted and wanted[ext] != uid]
    return result, moves


def module_codes(module: Mapping[str, Any] | None) -> dict[str, str]:
    """`integrations.telephony.additionalCodes` of a module as {user_id: code} (ids as int or string)."""
    if not module:
        return {}
    telephony = (module.get("integrations") or {}).get("telephony") or {}
    codes: dict[str, str] = {}
    for item in telephony.get("additionalCodes") or ():
        if isinstance(item, dict) and item.get("userId") not in (None, "") and item.get("code") not in (None, ""):
            codes[str(item["userId"])] = str(item["code"])
    return codes


def import_codes(
    local: Mapping[str, str], crm: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str], list[dict[str, str | None]]]:
    """An adopted module's codes taken into the local mapping: (merged, imported, conflicts).

    Local data wins (seed 001): a user mapped here keeps the local extension, and a code an other user holds here
    stays that user's; each such difference is a conflict `{user_id, local, crm, held_by}`, listed, not applied.
    A code that is no extension the agent accepts is a conflict too (`local` None, `held_by` None)."""
    merged = dict(local)
    holder = {ext: uid for uid, ext in local.items()}
    imported: dict[str, str] = {}
    conflicts: list[dict[str, str | None]] = []
    for uid in sorted(crm, key=_numeric):
        code, mine = crm[uid], local.get(uid)
        if mine == code:
            continue
        if mine is not None or code in holder or not EXTENSION.fullmatch(code):
            conflicts.append({"user_id": uid, "local": mine, "crm": code, "held_by": holder.get(code)})
            continue
        merged[uid] = imported[uid] = code
        holder[code] = uid
    return merged, imported, conflicts


@dataclass(frozen=True, slots=True)
class Manager:
    user: CrmUser
    extension: str | None  # what is in force: ours, else RetailCRM's
    source: str | None  # "local", "crm" or None
    crm_extension: str | None

    @property
    def differs(self) -> bool:
        return self.source == "local" and self.crm_extension != self.extension


@dataclass(frozen=True, slots=True)
class Merged:
    managers: list[Manager]
    differences: list[dict[str, str | None]]  # {user_id, local, crm} where the two disagree
    unknown_users: list[str]  # mapped user ids RetailCRM did not list


def merge(users: Iterable[CrmUser], local: Mapping[str, str], crm: Mapping[str, str]) -> Merged:
    users = list(users)
    managers = []
    for user in users:
        mine, theirs = local.get(user.id), crm.get(user.id)
        source = "local" if mine is not None else "crm" if theirs is not None else None
        managers.append(Manager(user, mine if mine is not None else theirs, source, theirs))
    differences: list[dict[str, str | None]] = [
        {"user_id": uid, "local": local.get(uid), "crm": crm.get(uid)}
        for uid in sorted(set(local) | set(crm), key=_numeric)
        if local.get(uid) != crm.get(uid)
    ]
    listed = {u.id for u in users}
    unknown = sorted((uid for uid in local if uid not in listed), key=_numeric)
    return Merged(managers, differences, unknown)


def _numeric(user_id: str) -> tuple[int, str]:
    return (int(user_id), "") if user_id.isdigit() else (0, user_id)
