"""`[http] public_listen`: a listener with only what the CRMs' servers must reach. /health and /metrics (PBX
addresses, paths, error texts), the admin site and the API answer only on the private `listen`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

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
