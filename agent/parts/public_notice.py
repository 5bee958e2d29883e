"""What the public listener (`[http] public_listen`) says at /admin/…: the admin site is not published there.

RetailCRM's "settings" link (the module's accountUrl) and bookmarks lead a browser to public_url + /admin/…; a bare
404 would look like a broken agent, so the page says where the admin site is instead, in the browser's language
and the admin site's look (its stylesheet is served on the public listener too: nothing secret in it).
"""

from __future__ import annotations

import html

from aiohttp import web

from admin import i18n
from admin.site import PREFIX, STATIC, static_dir


async def admin_not_here(request: web.Request) -> web.Response:
    lang = i18n.choose(request)[0]
    t = i18n.translator(lang)
    title, text = t("public.admin_private.title"), t("public.admin_private.text")
    body = (
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<link rel='stylesheet' href='{STATIC}admin.css'></head><body><main><h1>{html.escape(title)}</h1>"
        f"<p id='admin-private'>{html.escape(text)}</p></main></body></html>"
    )
    return web.Response(
        status=404,
        text=body,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_static(STATIC, static_dir())
    app.router.add_route("*", PREFIX, admin_not_here)
    app.router.add_route("*", PREFIX + "/{tail:.*}", admin_not_here)
