"""Where each part of the HTTP server begins and ends: the admin pages (/admin/) and the JSON API (/api/) each
answer everything under their prefix with their own middleware, and nothing outside it; the CRM callbacks,
/health, /metrics and the logo stay on the root application. Pinned at the edges a prefix test could get
wrong (the bare prefix, unknown paths, a wrong method, static files)."""

from __future__ import annotations

import aiohttp

from agent.app import Agent
from agent.store.secretbox import load_or_create_secret
from agent.web.tokens import TokenSigner
from tests.admin_client import base


def admin_token(agent: Agent) -> str:
    return TokenSigner(load_or_create_secret(agent.config.agent.state_dir)).issue(None, 1)


async def test_the_admin_site_answers_all_of_its_prefix_and_nothing_else(running_agent: Agent) -> None:
    url = base(running_agent)
    async with aiohttp.ClientSession(headers={"Accept-Language": "en"}) as http:
        async with http.get(url + "/admin", allow_redirects=False) as resp:
            assert resp.status == 301 and resp.headers["Location"] == "admin/"
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert resp.headers["Cache-Control"] == "no-store"
        async with http.get(url + "/admin/no-such-page") as resp:
            assert resp.status == 404 and resp.content_type == "text/html"
            assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"
        async with http.post(url + "/admin/instance") as resp:  # a POST needs a session before its route is asked
            assert resp.status == 401 and resp.content_type == "text/html"
            assert "Content-Security-Policy" in resp.headers
        async with http.post(url + "/admin/login") as resp:  # the password form: refused without its form token
            assert resp.status == 403 and resp.content_type == "text/html"
            assert "Content-Security-Policy" in resp.headers
        async with http.get(url + "/admin/static/admin.css") as resp:
            assert resp.status == 200
            assert "Content-Security-Policy" in resp.headers and "Cache-Control" not in resp.headers
        async with http.get(url + "/admin/static/none.css") as resp:
            assert resp.status == 404 and "Content-Security-Policy" in resp.headers
        for outside in ("/adminx", "/health", "/static/retailcrm-logo.svg"):
            async with http.get(url + outside) as resp:
                assert "Content-Security-Policy" not in resp.headers, outside
        async with http.post(url + "/retailcrm/make-call", data={"clientId": "x"}) as resp:
            assert resp.status == 403  # no CSRF check outside /admin/: the unknown clientId is what refuses it
            assert await resp.json() == {"success": False, "errorMsg": "unknown clientId"}


async def test_the_api_guards_all_of_its_prefix_and_nothing_else(running_agent: Agent) -> None:
    url = base(running_agent)
    bearer = {"Authorization": f"Bearer {admin_token(running_agent)}"}
    async with aiohttp.ClientSession() as http:
        for guarded in ("/api/", "/api/no-such-thing", "/api/enterprises/100"):
            async with http.get(url + guarded) as resp:
                assert resp.status == 401, guarded
        async with http.get(url + "/api") as resp:
            assert resp.status == 404  # the bare prefix is no API URL
        async with http.get(url + "/api/no-such-thing", headers=bearer) as resp:
            assert resp.status == 404
        async with http.post(url + "/api/deliveries", headers=bearer) as resp:
            assert resp.status == 405
        async with http.get(url + "/api/enterprises/100", headers=bearer) as resp:
            assert resp.status == 404 and await resp.json() == {"error": "no enterprise 100"}
        for outside in ("/health", "/amocrm/oauth/callback", "/static/retailcrm-logo.svg"):
            async with http.get(url + outside) as resp:
                assert resp.status != 401, outside


async def test_metrics_name_each_route_by_its_full_path(running_agent: Agent) -> None:
    url = base(running_agent)
    bearer = {"Authorization": f"Bearer {admin_token(running_agent)}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/api/enterprises/100", headers=bearer):
            pass
        async with http.get(url + "/admin/login"):
            pass
        async with http.get(url + "/admin/no-such-page"):
            pass
        async with http.get(url + "/metrics") as resp:
            text = await resp.text()
    assert 'pbx_agent_http_requests_total{route="/api/enterprises/{number}",status="404"}' in text
    assert 'pbx_agent_http_requests_total{route="/admin/login",status="200"}' in text  # the password form
    assert 'pbx_agent_http_requests_total{route="unmatched",status="404"}' in text
