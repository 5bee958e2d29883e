"""Pages a browser gets from the agent outside the admin site, in the admin site's language and look (its
catalogue, its stylesheet, served on the public listener too: nothing secret in it): amoCRM's OAuth result
(agent.parts.adapters) and, on the public listener (`[http] public_listen`), the notice at /admin/….

RetailCRM's "settings" link (the module's accountUrl) and bookmarks lead a browser to public_url + /admin/…; a bare
404 there would look like a broken agent, so the page says where the admin site is instead.
"""

from __future__ import annotations

import html

from aiohttp import web

from admin import i18n
from admin.site import PREFIX, STATIC, static_dir


def plain_page(lang: str, status: int, title: str, body: str) -> web.Response:
    """A page with a title and `body` (HTML, escaped by the caller)."""
    page = (
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<link rel='stylesheet' href='{STATIC}admin.css'></head><body><main><h1>{html.escape(title)}</h1>"
        f"{body}</main></body></html>"
    )
    return web.Response(
        status=status,
        text=page,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def admin_not_here(request: web.Request) -> web.Response:
    lang = i18n.choose(request)[0]
    t = i18n.translator(lang)
    text = html.escape(t("public.admin_private.text"))
    return plain_page(lang, 404, t("public.admin_private.title"), f"<p id='admin-private'>{text}</p>")


def add_routes(app: web.Application) -> None:
    app.router.add_static(STATIC, static_dir())
    app.router.add_route("*", PREFIX, admin_not_here)
    app.router.add_route("*", PREFIX + "/{tail:.*}", admin_not_here)
