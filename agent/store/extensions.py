"""An enterprise's internal extensions (`user_internal_phones`), listed for the mapping pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from agent.store import enterprises
from agent.store.database import Pool

EXTENSION = re.compile(r"^[0-9A-Za-z_*#+-]{1,32}$")  # as connectors.retailcrm.settings accepts
NAME_MAX = 200
MAX_EXTENSIONS = 5000


class InvalidExtensions(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Extension:
    extension: str
    display_name: str = ""

    def to_json(self) -> dict[str, str]:
        return {"extension": self.extension, "display_name": self.display_name}


def parse(items: Any) -> list[Extension]:
    """`[{"extension": "101", "display_name": "Anna"}, ...]`; each extension once."""
    if not isinstance(items, list):
        raise InvalidExtensions("extensions", "must be an array of {extension, display_name}")
    if len(items) > MAX_EXTENSIONS:
        raise InvalidExtensions("extensions", f"at most {MAX_EXTENSIONS}")
    out: list[Extension] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"extensions[{i}]"
        if not isinstance(item, dict) or set(item) - {"extension", "display_name"}:
            raise InvalidExtensions(where, "must be an object with extension and display_name only")
        ext, name = item.get("extension"), item.get("display_name", "")
        if not isinstance(ext, str) or not EXTENSION.fullmatch(ext):
            raise InvalidExtensions(f"{where}.extension", "1-32 characters: digits, letters, * # + - _")
        if ext in seen:
            raise InvalidExtensions(f"{where}.extension", f"extension {ext} is listed twice")
        if not isinstance(name, str) or len(name) > NAME_MAX:
            raise InvalidExtensions(f"{where}.display_name", f"a string of at most {NAME_MAX} characters")
        seen.add(ext)
        out.append(Extension(ext, name.strip()))
    return out


async def list_for(pool: Pool, enterprise: str) -> list[Extension]:
    rows = await pool.fetch(
        "SELECT phone_number, display_name FROM user_internal_phones WHERE enterprise_number = $1"
        " ORDER BY length(phone_number), phone_number",
        enterprise,
    )
    return [Extension(r["phone_number"], r["display_name"]) for r in rows]


@dataclass(frozen=True, slots=True)
class Phone:
    """An extension with its owner as the platform's pages showed it (`users` joined on `user_id`)."""

    extension: str
    display_name: str
    user_id: int | None
    owner: str | None  # the owner's name from `users`, else the agent's display_name, else None


async def with_owners(pool: Pool, enterprise: str) -> list[Phone]:
    """The list with owners' names: on the platform's database its `users` (first and last name) by the phone's
    `user_id`; on the agent's own database (no such table or column) the display name alone."""
    joined = await pool.fetchval(
        "SELECT count(*) = 3 FROM information_schema.columns WHERE table_schema = current_schema() AND"
        " ((table_name = 'user_internal_phones' AND column_name = 'user_id')"
        " OR (table_name = 'users' AND column_name IN ('first_name', 'last_name')))"
    )
    if joined:
        sql = (
            "SELECT p.phone_number, p.display_name, p.user_id,"
            " nullif(concat_ws(' ', nullif(btrim(u.first_name), ''), nullif(btrim(u.last_name), '')), '') AS owner"
            " FROM user_internal_phones p LEFT JOIN users u ON u.id = p.user_id"
        )
    else:
        sql = (
            "SELECT p.phone_number, p.display_name, NULL::integer AS user_id, NULL AS owner FROM user_internal_phones p"
        )
    rows = await pool.fetch(
        sql + " WHERE p.enterprise_number = $1 ORDER BY length(p.phone_number), p.phone_number", enterprise
    )
    return [
        Phone(r["phone_number"], r["display_name"], r["user_id"], r["owner"] or r["display_name"] or None) for r in rows
    ]


async def replace(pool: Pool, enterprise: str, items: list[Extension]) -> None:
    """Make the enterprise's list `items` in one transaction; NOTIFY like any config change.

    Row by row, never delete-all-and-insert: on the platform's shared table a row carries columns other services
    read (`id`, `user_id`, `password`, ...), so a listed extension keeps its row (only `display_name` may change),
    an unlisted one loses its row, and a new one gets a row of its own. A new row the platform's table refuses
    (a NOT NULL column the agent cannot fill, a shorter column) is an InvalidExtensions and changes nothing."""
    wanted = [e.extension for e in items]
    names = [e.display_name for e in items]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM user_internal_phones WHERE enterprise_number = $1 AND NOT (phone_number = ANY($2::text[]))",
            enterprise,
            wanted,
        )
        await conn.execute(
            "UPDATE user_internal_phones u SET display_name = x.name"
            " FROM unnest($2::text[], $3::text[]) AS x(ext, name)"
            " WHERE u.enterprise_number = $1 AND u.phone_number = x.ext AND u.display_name IS DISTINCT FROM x.name",
            enterprise,
            wanted,
            names,
        )
        try:
            await conn.execute(
                "INSERT INTO user_internal_phones (enterprise_number, phone_number, display_name)"
                " SELECT $1::text, x.ext, x.name FROM unnest($2::text[], $3::text[]) AS x(ext, name)"
                " WHERE NOT EXISTS (SELECT 1 FROM user_internal_phones u"
                " WHERE u.enterprise_number = $1::text AND u.phone_number = x.ext)",
                enterprise,
                wanted,
                names,
            )
        except (asyncpg.NotNullViolationError, asyncpg.StringDataRightTruncationError) as exc:
            raise _refused(exc, "extensions") from None
        await conn.execute("SELECT pg_notify($1, $2)", enterprises.NOTIFY_CHANNEL, enterprise)


def _refused(exc: asyncpg.PostgresError, field: str) -> InvalidExtensions:
    column = getattr(exc, "column_name", None) or "phone_number"
    return InvalidExtensions(
        field,
        f"this database's user_internal_phones cannot take a new extension from the agent ({column}:"
        f" {exc.__class__.__name__.removesuffix('Error')}); add it where the platform adds phones",
    )


async def add(pool: Pool, enterprise: str, extension: str, display_name: str) -> bool:
    """One new extension (False: it is already listed); NOTIFY. On the platform's table a row the agent cannot
    fill (a NOT NULL `password`, a shorter column) is an InvalidExtensions, never a database error."""
    async with pool.acquire() as conn, conn.transaction():
        try:
            added = await conn.fetchval(
                "INSERT INTO user_internal_phones (enterprise_number, phone_number, display_name) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING RETURNING phone_number",
                enterprise,
                extension,
                display_name,
            )
        except (asyncpg.NotNullViolationError, asyncpg.StringDataRightTruncationError) as exc:
            raise _refused(exc, "phone_number") from None
        if added:
            await conn.execute("SELECT pg_notify($1, $2)", enterprises.NOTIFY_CHANNEL, enterprise)
    return added is not None
