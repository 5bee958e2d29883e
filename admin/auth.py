"""Admin sign-in: one-time links, CRM one-click links, sessions (a table) and their CSRF tokens.

A sign-in link is an HS256 JWT with its own audience and a key derived for this purpose only, so an
API token (`pbx-agent token`) is never accepted as a link and a link never works on /api. Opening a
link records its `jti` in `admin_links_used`: a second use is refused. The session cookie holds 32
random bytes; the database keeps only their SHA-256, so a leaked table opens nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from agent.store.database import Pool
from agent.store.secretbox import derive_key
from agent.web.tokens import ISSUER, TokenError

LINK_AUDIENCE = "pbx-agent-admin-link"
ROLES = ("admin", "viewer")
SESSION_HOURS = 12.0
LINK_MINUTES_DEFAULT = 15.0
LINK_MINUTES_MAX = 24 * 60.0
# The old RetailCRM service's JWT secret (its JWT_SECRET_KEY), copied under state_dir at the cut-over: with it the
# accountUrl that service registered keeps signing in until the agent registers the module (docs/cutover.md).
LEGACY_SECRET_FILE = "legacy-jwt.secret"


@dataclass(frozen=True, slots=True)
class LinkClaims:
    jti: str
    enterprise: str | None
    role: str
    source: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in. `enterprise` None: the whole instance."""

    id_hash: bytes
    enterprise: str | None
    role: str
    source: str
    expires_at: datetime

    @property
    def is_instance(self) -> bool:
        return self.enterprise is None

    @property
    def can_edit(self) -> bool:
        return self.role == "admin"

    def may_access(self, enterprise: str) -> bool:
        return self.enterprise is None or self.enterprise == enterprise


class LinkSigner:
    """Issues and checks sign-in links; derives the CSRF token of a session."""

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, "pbx-agent admin links")
        self._csrf_key = derive_key(secret, "pbx-agent admin csrf")

    def issue(
        self,
        enterprise: str | None,
        role: str = "admin",
        minutes: float = LINK_MINUTES_DEFAULT,
        *,
        now: float | None = None,
    ) -> str:
        """A one-time sign-in link token (`pbx-agent admin-link`)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        return self._encode(LINK_AUDIENCE, enterprise, role, "link", minutes * 60, now)

    def _encode(
        self, audience: str, enterprise: str | None, role: str, source: str, seconds: float, now: float | None
    ) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, object] = {
            "iss": ISSUER,
            "aud": audience,
            "iat": issued,
            "exp": issued + int(seconds),
            "jti": uuid.uuid4().hex,
            "role": role,
            "source": source,
        }
        if enterprise is not None:
            claims["enterprise"] = enterprise
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, audience: str = LINK_AUDIENCE) -> LinkClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=audience,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("link expired") from None
        except jwt.InvalidTokenError:
            raise TokenError("invalid link") from None
        role, enterprise, source = claims.get("role"), claims.get("enterprise"), claims.get("source", "link")
        if role not in ROLES or not (enterprise is None or isinstance(enterprise, str)) or not isinstance(source, str):
            raise TokenError("invalid link")
        return LinkClaims(
            jti=str(claims["jti"]),
            enterprise=enterprise,
            role=str(role),
            source=source,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )

    def csrf(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.id_hash, hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, submitted: str) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf(session), submitted)

    def login_form_token(self, nonce: str) -> str:
        """The sign-in form's token, bound to the random `nonce` of its browser's cookie (no session yet)."""
        return hmac.new(self._csrf_key, b"login form:" + nonce.encode(), hashlib.sha256).hexdigest()

    def login_form_ok(self, nonce: str, submitted: str) -> bool:
        return bool(nonce) and bool(submitted) and hmac.compare_digest(self.login_form_token(nonce), submitted)


def legacy_account_token_ok(secret: bytes, token: str, enterprise: str) -> bool:
    """A token of the old service's accountUrl (seed 001: HS256 with its JWT_SECRET_KEY; `enterprise_number`,
    `source: "retailcrm"`, `exp` a year ahead) for this enterprise, signed with `secret` and not expired."""
    if not secret or not token:
        return False
    try:
        with warnings.catch_warnings():  # the old secret is whatever that service was given, short or not
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.InvalidTokenError:
        return False
    number = claims.get("enterprise_number")
    return claims.get("source") == "retailcrm" and isinstance(number, str) and hmac.compare_digest(number, enterprise)


def _hash(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode()).digest()


async def use_link(pool: Pool, claims: LinkClaims) -> bool:
    """Record a link as used; False when it was used before."""
    await pool.execute("DELETE FROM admin_links_used WHERE expires_at < now() - interval '1 day'")
    used = await pool.fetchval(
        "INSERT INTO admin_links_used (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING jti",
        claims.jti,
        claims.expires_at,
    )
    return used is not None


async def open_session(pool: Pool, enterprise: str | None, role: str, source: str, hours: float = SESSION_HOURS) -> str:
    """Store a new session; return the cookie value."""
    cookie = secrets.token_urlsafe(32)
    await pool.execute("DELETE FROM admin_sessions WHERE expires_at < now()")
    await pool.execute(
        "INSERT INTO admin_sessions (id_hash, enterprise_number, role, source, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        _hash(cookie),
        enterprise,
        role,
        source,
        hours * 3600,
    )
    return cookie


async def load_session(pool: Pool, cookie: str) -> Session | None:
    if not cookie or len(cookie) > 100:
        return None
    row = await pool.fetchrow(
        "SELECT id_hash, enterprise_number, role, source, expires_at FROM admin_sessions"
        " WHERE id_hash = $1 AND expires_at > now()",
        _hash(cookie),
    )
    if row is None:
        return None
    return Session(
        id_hash=row["id_hash"],
        enterprise=row["enterprise_number"],
        role=row["role"],
        source=row["source"],
        expires_at=row["expires_at"],
    )


async def close_session(pool: Pool, session: Session) -> None:
    await pool.execute("DELETE FROM admin_sessions WHERE id_hash = $1", session.id_hash)
