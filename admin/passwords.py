"""A password per enterprise for the admin sign-in form: argon2id hashes, and throttling of failed tries.

`pbx-agent admin-password --enterprise N` sets one (with the role it signs in as) or removes it. The form at
/admin/login checks a password with one argon2 verification whatever happens (no such enterprise, no password
set, a wrong one: a dummy hash stands in), so its timing does not tell which enterprises have a password.
Failures are counted in the database per enterprise and client address: FAILURES_MAX of them within
LOCKOUT_MINUTES lock that pair out until the oldest of them is LOCKOUT_MINUTES old; a success clears them.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from agent.store.database import Pool
from agent.store.enterprises import NOT_REMOVED

ROLES = ("admin", "viewer")
PASSWORD_MIN = 10
PASSWORD_MAX = 1024
FAILURES_MAX = 5
LOCKOUT_MINUTES = 15


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's RFC 9106 low-memory parameters


@cache
def _dummy_hash() -> str:
    return _hasher().hash("no password is set: this hash only spends the same time")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def problem(password: str) -> str | None:
    """Why this password is not accepted by `admin-password`, or None."""
    if len(password) < PASSWORD_MIN:
        return f"at least {PASSWORD_MIN} characters, please"
    if len(password) > PASSWORD_MAX:
        return f"at most {PASSWORD_MAX} characters"
    return None


def read_password() -> str:
    """From a terminal: asked twice, unseen. Otherwise: stdin's first line (never argv, which `ps` shows)."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        return first if getpass.getpass("Again: ") == first else ""
    return sys.stdin.readline().rstrip("\r\n")


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def set_password(pool: Pool, enterprise: str, role: str, password: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    hashed = await asyncio.to_thread(hash_password, password)
    await pool.execute(
        "INSERT INTO admin_passwords (enterprise_number, role, hash) VALUES ($1, $2, $3)"
        " ON CONFLICT (enterprise_number) DO UPDATE SET role = $2, hash = $3, set_at = now()",
        enterprise,
        role,
        hashed,
    )
    await pool.execute("DELETE FROM admin_password_failures WHERE enterprise_number = $1", enterprise)


async def remove_password(pool: Pool, enterprise: str) -> bool:
    """Remove the password; its sessions stay until they expire or sign out. False: there was none."""
    status = await pool.execute("DELETE FROM admin_passwords WHERE enterprise_number = $1", enterprise)
    return str(status).endswith(" 1")


@dataclass(frozen=True, slots=True)
class Outcome:
    role: str | None  # the role to sign in with; None: refused
    locked: bool = False  # refused without checking: too many failures from this client


async def check(pool: Pool, enterprise: str, client: str, password: str) -> Outcome:
    """Check a sign-in try; count a failure, or clear the failures on success."""
    await pool.execute(
        "DELETE FROM admin_password_failures WHERE failed_at < now() - make_interval(mins => $1)", LOCKOUT_MINUTES
    )
    failures = await pool.fetchval(
        "SELECT count(*) FROM admin_password_failures WHERE enterprise_number = $1 AND client = $2",
        enterprise,
        client,
    )
    if failures >= FAILURES_MAX:
        return Outcome(None, locked=True)
    row = await pool.fetchrow(
        "SELECT p.role, p.hash FROM admin_passwords p LEFT JOIN enterprises e ON e.number = p.enterprise_number"
        f" WHERE p.enterprise_number = $1 AND {NOT_REMOVED}",  # a removed enterprise's password opens nothing
        enterprise,
    )
    stored = row["hash"] if row is not None else None
    if await asyncio.to_thread(_verify, stored, password) and row is not None:
        await pool.execute(
            "DELETE FROM admin_password_failures WHERE enterprise_number = $1 AND client = $2", enterprise, client
        )
        return Outcome(str(row["role"]))
    await pool.execute(
        "INSERT INTO admin_password_failures (enterprise_number, client) VALUES ($1, $2)", enterprise, client
    )
    return Outcome(None, locked=failures + 1 >= FAILURES_MAX)
