"""A manager ↔ extension change checked against what exists: the CRM's users and the enterprise's extensions.

Pure: every problem at once, `{user id: (message key, values)}`, so a form can show each beside its field."""

from __future__ import annotations

from collections.abc import Collection, Mapping

Problems = dict[str, tuple[str, dict[str, str]]]


def check(changes: Mapping[str, str | None], users: Mapping[str, str] | None, known: Collection[str]) -> Problems:
    """`changes` {user id: extension or None}; `users` {id: name} the CRM listed (None: not checked); `known`
    the enterprise's extensions (empty: any extension will do, the list is not kept here)."""
    problems: Problems = {}
    holder: dict[str, str] = {}
    for uid, ext in changes.items():
        if users is not None and uid not in users:
            problems[uid] = ("mgr.error.unknown_user", {"user": uid})
        elif ext and known and ext not in known:
            problems[uid] = ("mgr.error.unknown_extension", {"extension": ext})
        elif ext and ext in holder:
            other = holder[ext]
            name = (users or {}).get(other) or other
            problems[uid] = ("mgr.error.twice", {"extension": ext, "name": name})
        elif ext:
            holder[ext] = uid
    return problems
