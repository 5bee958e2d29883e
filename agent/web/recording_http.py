"""`GET /records/{token}`: a recording a signed link names, streamed with range requests (MP3 on demand)."""

from __future__ import annotations

import logging
import mimetypes
import re

from aiohttp import web

from agent.web import keys
from agent.web.recording_sources import RecordingFile, RecordMissing, RecordOutside, RecordUnavailable, Source
from agent.web.recordings import Claim, RecordDenied, RecordLinks
from agent.web.transcode import wants_mp3

log = logging.getLogger(__name__)

ROUTE = "/records/{token}"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


async def serve_record(request: web.Request) -> web.StreamResponse:
    links = request.app[keys.RECORDS]
    try:
        claim = links.claim(request.match_info["token"])
    except RecordDenied as exc:
        return web.json_response({"error": str(exc)}, status=403)
    try:
        async with links.opened(claim) as (source, file):
            return await _respond(request, links, claim, source, file)
    except RecordOutside as exc:
        log.warning("records: refused %r from %s: %s", claim.relative, claim.source or "recordings_dir", exc)
        return web.json_response({"error": "no such recording"}, status=404)
    except RecordMissing:
        return web.json_response({"error": "no such recording"}, status=404)
    except RecordUnavailable as exc:
        log.warning("records: %s", exc)
        return web.json_response({"error": "recordings source unavailable"}, status=503, headers={"Retry-After": "30"})


async def _respond(
    request: web.Request, links: RecordLinks, claim: Claim, source: Source, file: RecordingFile
) -> web.StreamResponse:
    name = _UNSAFE_NAME.sub("_", file.name)
    headers = {"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "private, max-age=3600"}
    if wants_mp3(claim.fmt, file):
        mp3 = await links.mp3.mp3(source, file)
        if mp3 is not None:
            headers["Content-Disposition"] = f'inline; filename="{name.rsplit(".", 1)[0]}.mp3"'
            return web.FileResponse(mp3, headers={**headers, "Content-Type": "audio/mpeg"})
    if file.local_path is not None:
        return web.FileResponse(file.local_path, headers=headers)
    return await _stream(request, source, file, headers)


async def _stream(
    request: web.Request, source: Source, file: RecordingFile, headers: dict[str, str]
) -> web.StreamResponse:
    """A remote file in chunks, honouring one Range (`bytes=a-b`, `a-`, `-n`) like FileResponse does."""
    size = file.size
    try:
        rng = request.http_range
    except ValueError:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    start, stop, status = 0, size, 200
    if request.headers.get("Range") is not None:
        start = rng.start if rng.start is not None else 0
        stop = min(rng.stop, size) if rng.stop is not None else size
        if start < 0:
            start = max(0, size + start)
        if start >= stop:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    response = web.StreamResponse(
        status=status, headers={**headers, "Accept-Ranges": "bytes", "Content-Type": content_type}
    )
    response.content_length = stop - start
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    try:
        async for chunk in source.read(file, start, stop):
            await response.write(chunk)
    except (RecordUnavailable, OSError, ConnectionError) as exc:
        log.warning("records: %s from %s cut short: %s", file.relative, source.spec, exc)
        response.force_close()
        return response
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(ROUTE, serve_record)
