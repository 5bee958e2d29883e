"""`[http] public_listen`: a listener with only what the CRMs' servers must reach. /health and /metrics (PBX
addresses, paths, error texts), the admin site and the API answer only on the private `listen`."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from admin import i18n
from agent.config.checks import Address
from agent.config.load import load
from agent.config.sections import Config, ConfigError
from tests.crm_setup import running


async def test_the_public_listener_serves_only_the_crms_routes(db_dsn: str, make_config: Callable[..., Config]) -> None:
    config = make_config(db_dsn)
    config = replace(config, http=replace(config.http, public_listen=Address("127.0.0.1", 0)))
    async with running(config) as agent, aiohttp.ClientSession() as http:
        private = f"http://127.0.0.1:{agent.parts.http_port}"
        assert agent.parts.public_http_port is not None
        public = f"http://127.0.0.1:{agent.parts.public_http_port}"
        for path in ("/health", "/metrics", "/admin/", "/api/deliveries?status=failed"):
            async with http.get(public + path, allow_redirects=False) as resp:
                assert resp.status == 404, path
        # RetailCRM's settings link (accountUrl) on the public name: a page that says where the admin site is
        for lang in i18n.LANGS:
            page = f"{public}/admin/retailcrm?enterprise_number=100&token=x"
            async with http.get(page, headers={"Accept-Language": lang}, allow_redirects=False) as resp:
                text = await resp.text()
                assert resp.status == 404 and "Set-Cookie" not in resp.headers
                assert html.escape(i18n.translator(lang)("public.admin_private.text"), quote=True) in text
        async with http.get(public + "/admin/static/admin.css") as resp:
            assert resp.status == 200  # the notice in the admin site's look
        async with http.get(private + "/health") as resp:
            assert resp.status in (200, 503)
        for path, wanted in (
            ("/retailcrm/make-call", 403),  # the callback answers: without the module's clientId, refused
            ("/records/not-a-token", 403),  # a recording link is checked
            ("/amocrm/oauth/callback", 400),  # amoCRM's redirect, without its parameters
            ("/static/retailcrm-logo.svg", 200),  # the module's logo
        ):
            async with http.get(public + path) as resp:
                assert resp.status == wanted, (path, resp.status)


def test_public_listen_in_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[http]\nlisten = "127.0.0.1:8019"\npublic_listen = "0.0.0.0:8443"\n')
    assert load(cfg).http.public_listen == Address("0.0.0.0", 8443)
    cfg.write_text('[http]\nlisten = "127.0.0.1:8019"\npublic_listen = "127.0.0.1:8019"\n')
    with pytest.raises(ConfigError, match="public_listen"):
        load(cfg)
