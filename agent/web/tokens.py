"""API tokens: HS256 JWTs signed with a key derived from the state secret."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from agent.store.secretbox import derive_key

ISSUER = "pbx-agent"
AUDIENCE_API = "pbx-agent-api"


class TokenError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for: the whole instance, or one enterprise."""

    enterprise: str | None
    token_id: str
    source: str | None = None  # who the token was issued for, e.g. "retailcrm" (the module's accountUrl)

    @property
    def is_admin(self) -> bool:
        return self.enterprise is None

    def may_access(self, enterprise: str) -> bool:
        return self.enterprise is None or self.enterprise == enterprise


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, "pbx-agent jwt")

    def issue(self, enterprise: str | None, days: float, *, now: float | None = None, source: str | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, object] = {
            "iss": ISSUER,
            "aud": AUDIENCE_API,
            "iat": issued,
            "exp": issued + int(days * 86400),
            "jti": uuid.uuid4().hex,
            "scope": "enterprise" if enterprise else "admin",
        }
        if enterprise:
            claims["enterprise"] = enterprise
        if source:
            claims["source"] = source
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE_API,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "jti", "scope"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidTokenError:
            raise TokenError("invalid token") from None
        scope = claims.get("scope")
        source = claims.get("source")
        source = source if isinstance(source, str) and source else None
        if scope == "admin":
            return Principal(enterprise=None, token_id=str(claims["jti"]), source=source)
        enterprise = claims.get("enterprise")
        if scope == "enterprise" and isinstance(enterprise, str) and enterprise:
            return Principal(enterprise=enterprise, token_id=str(claims["jti"]), source=source)
        raise TokenError("invalid token scope")
