"""Message catalogs (admin/i18n/<lang>.json) and the choice of language for a request."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources

from aiohttp import web

LANGS = ("ru", "en")
DEFAULT = "en"
COOKIE = "pbx_lang"

Translate = Callable[..., str]


@cache
def catalog(lang: str) -> dict[str, str]:
    text = (resources.files("admin") / "i18n" / f"{lang}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return {str(k): str(v) for k, v in data.items()}


def translator(lang: str) -> Translate:
    primary, fallback = catalog(lang), catalog(DEFAULT)

    def t(key: str, **values: object) -> str:
        text = primary.get(key) or fallback.get(key) or key
        return text.format(**values) if values else text

    return t


def choose(request: web.Request) -> tuple[str, bool]:
    """The request's language, and whether it was asked for explicitly with ?lang= (then remember it)."""
    asked = request.query.get("lang", "")
    if asked in LANGS:
        return asked, True
    remembered = request.cookies.get(COOKIE, "")
    if remembered in LANGS:
        return remembered, False
    return from_accept_language(request.headers.get("Accept-Language", "")), False


def from_accept_language(header: str) -> str:
    best, best_q = DEFAULT, -1.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        lang = tag.strip().lower().split("-", 1)[0]
        if lang in LANGS and q > best_q:
            best, best_q = lang, q
    return best
