"""Call recordings at signed, expiring URLs: `GET {public_url}/records/{token}` serves one file.

The token is an HS256 JWT (key derived from the state secret for this purpose only) holding the file's
path relative to `[agent] recordings_dir` and an expiry. Only regular files inside that directory are
served (after resolving symlinks); a forged or expired token gets 403, anything else 404. aiohttp's
FileResponse answers Range requests, so players can seek.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import jwt
from aiohttp import web

from agent import keys
from agent.secretbox import derive_key

log = logging.getLogger(__name__)

KEY_PURPOSE = "records"
AUDIENCE = "pbx-agent-records"
# RetailCRM keeps recordUrl with the call for good and fetches it when someone presses play.
DEFAULT_TTL_S = 365 * 86400.0
ROUTE = "/records/{token}"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


class RecordDenied(Exception):
    """The token is forged, malformed or expired (403)."""


class RecordMissing(Exception):
    """The token is fine but there is nothing to serve at its path (404)."""


class RecordLinks:
    def __init__(self, public_url: str, secret: bytes, recordings_dir: Path, *, ttl: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.public_url = public_url.rstrip("/")
        self.recordings_dir = Path(os.path.abspath(recordings_dir))
        self.ttl = ttl
        self._key = derive_key(secret, KEY_PURPOSE)
        self._clock = clock

    def relative(self, path: str) -> str | None:
        """`path` (absolute, or relative to recordings_dir) as a clean relative path inside it, or None."""
        if not path or "\x00" in path:
            return None
        full = os.path.normpath(os.path.join(self.recordings_dir, path))
        rel = os.path.relpath(full, self.recordings_dir)
        if rel == "." or rel.startswith(".." + os.sep) or rel == ".." or os.path.isabs(rel):
            return None
        return PurePosixPath(*Path(rel).parts).as_posix()

    def token(self, relative: str, *, expires_at: float) -> str:
        """A token for `relative` (not checked: use `record_url`, which checks)."""
        claims = {"aud": AUDIENCE, "p": relative, "exp": int(expires_at)}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def record_url(self, path: str) -> str | None:
        """The URL to hand a CRM for a call's `recording`, or None when it is outside recordings_dir."""
        relative = self.relative(path)
        if relative is None:
            log.warning("recording %r is outside [agent] recordings_dir %s; not offered", path, self.recordings_dir)
            return None
        return f"{self.public_url}/records/{self.token(relative, expires_at=self._clock() + self.ttl)}"

    def resolve(self, token: str) -> Path:
        """The file a token names. RecordDenied for a bad token, RecordMissing when not servable."""
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"], audience=AUDIENCE,
                                options={"require": ["exp", "aud", "p"]},
                                leeway=0)
        except jwt.ExpiredSignatureError:
            raise RecordDenied("link expired") from None
        except jwt.InvalidTokenError:
            raise RecordDenied("invalid link") from None
        relative = claims.get("p")
        if not isinstance(relative, str) or self.relative(relative) != relative:
            raise RecordMissing(str(relative))
        root = self.recordings_dir.resolve()
        target = (root / relative).resolve()  # symlinks followed: the real file must be inside too
        if not target.is_relative_to(root) or not target.is_file():
            raise RecordMissing(relative)
        return target


async def serve_record(request: web.Request) -> web.StreamResponse:
    links = request.app[keys.RECORDS]
    try:
        path = await asyncio.to_thread(links.resolve, request.match_info["token"])
    except RecordDenied as exc:
        return web.json_response({"error": str(exc)}, status=403)
    except RecordMissing:
        return web.json_response({"error": "no such recording"}, status=404)
    name = _UNSAFE_NAME.sub("_", path.name)
    return web.FileResponse(path, headers={
        "Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "private, max-age=3600"})


def add_routes(app: web.Application) -> None:
    app.router.add_get(ROUTE, serve_record)
