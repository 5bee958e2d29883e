"""The admin pages over HTTP, against the whole agent on a real PostgreSQL (the browser suite is separate)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp

from agent.app import Agent
from agent.store import enterprises
from agent.web.tokens import TokenSigner
from tests.admin_client import add_calls, base, client, csrf, link, links


async def setup_enterprises(agent: Agent) -> None:
    await enterprises.put(agent.parts.pool, "100", "Shop")
    await enterprises.put(agent.parts.pool, "200", "Other")


async def test_a_link_signs_in_once(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    url = link(running_agent, "100")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(url, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "./"
            cookie = resp.cookies["pbx_admin"]
            assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
        async with http.get(f"{base(running_agent)}/admin/") as resp:
            assert resp.status == 200
            assert str(resp.url).endswith("/admin/100/overview")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(url) as resp:
            assert resp.status == 401
            assert "already been used" in await resp.text()
        async with http.get(f"{base(running_agent)}/admin/100/overview") as resp:
            assert resp.status == 401


async def test_api_tokens_and_forged_links_do_not_sign_in(running_agent: Agent) -> None:
    from agent.store.secretbox import load_or_create_secret

    api_token = TokenSigner(load_or_create_secret(running_agent.config.agent.state_dir)).issue(None, 1)
    expired = links(running_agent).issue(None, "admin", 1, now=0)
    async with client(running_agent, "-") as http:
        for token in (api_token, expired, "x.y.z", ""):
            async with http.get(f"{base(running_agent)}/admin/login?token={token}") as resp:
                assert resp.status == 401
                assert "not valid" in await resp.text()


async def test_pages_render_and_serve_json(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    await add_calls(running_agent.parts.pool, "100", 5)
    async with client(running_agent, "100") as http:
        b = base(running_agent)
        for page in ("overview", "calls", "log", "extensions", "calls/c1"):
            async with http.get(f"{b}/admin/100/{page}") as resp:
                assert resp.status == 200, (page, await resp.text())
                html = await resp.text()
                assert "<html" in html and 'href="' in html
                assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
                assert "frame-ancestors 'self'" in resp.headers["Content-Security-Policy"]
                assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"
            async with http.get(f"{b}/admin/100/{page}.json") as resp:
                assert resp.status == 200
                data = await resp.json()
                assert data["enterprise"] == {"number": "100", "name": "Shop"}
        async with http.get(f"{b}/admin/100/overview.json") as resp:
            today = (await resp.json())["today"]
            assert today["incoming"] + today["outgoing"] + today["internal"] >= 1
        async with http.get(f"{b}/admin/100/calls/c1.json") as resp:
            call = (await resp.json())["call"]
            assert call["call_id"] == "c1" and call["direction"] == "out"


async def test_calls_pages_by_keyset_and_filter(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    ids = await add_calls(running_agent.parts.pool, "100", 120)
    async with client(running_agent, "100") as http:
        seen: list[str] = []
        url = f"{base(running_agent)}/admin/100/calls.json"
        params: dict[str, str] = {}
        while True:
            async with http.get(url, params=params) as resp:
                data = await resp.json()
            seen += [c["call_id"] for c in data["calls"]]
            if not data["next"]:
                break
            params = {"next": data["next"]}
        assert seen == ids  # newest first, every call once
        async with http.get(url, params={"direction": "in", "result": "missed"}) as resp:
            found = [c["call_id"] for c in (await resp.json())["calls"]]
        assert found == [f"c{i}" for i in range(120) if i % 3 == 0 and i % 4 == 0][:50]
        async with http.get(url, params={"number": "+375 29 000-00-07"}) as resp:
            assert [c["call_id"] for c in (await resp.json())["calls"]] == ["c7"]
        async with http.get(url, params={"extension": "151", "direction": "out"}) as resp:
            assert len((await resp.json())["calls"]) == 40
        async with http.get(url.removesuffix(".json"), params={"date": "2024-13-01", "number": "abc"}) as resp:
            assert resp.status == 400
            html = await resp.text()
            assert 'id="error-date"' in html and 'id="error-number"' in html
        async with http.get(url, params={"next": "garbage"}) as resp:
            assert resp.status == 400 and (await resp.json())["errors"] == {"next": "error.next"}


async def test_a_viewer_sees_but_cannot_change(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    await running_agent.parts.pool.execute(
        "INSERT INTO user_internal_phones (enterprise_number, phone_number, display_name) VALUES ('100', '150', 'Ann')"
    )
    async with client(running_agent, "100", role="viewer") as http:
        url = f"{base(running_agent)}/admin/100/extensions"
        async with http.get(url) as resp:
            html = await resp.text()
        assert "Ann" in html and 'name="action"' not in html and "viewer" in html
        token = await csrf(http, url)  # the sign-out form's token: valid, but a viewer may not change things
        async with http.post(url, data={"csrf_token": token, "action": "remove", "phone_number": "150"}) as resp:
            assert resp.status == 403
        async with http.post(
            url, json={"action": "add", "phone_number": "151"}, headers={"X-CSRF-Token": token}
        ) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"].startswith("Your role")
    assert await running_agent.parts.pool.fetchval("SELECT count(*) FROM user_internal_phones") == 1


async def test_csrf_is_required_and_checked(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    async with client(running_agent, "100") as http:
        url = f"{base(running_agent)}/admin/100/extensions"
        for data in (
            {"action": "add", "phone_number": "160"},
            {"action": "add", "phone_number": "160", "csrf_token": "0" * 64},
        ):
            async with http.post(url, data=data) as resp:
                assert resp.status == 403
                assert "CSRF" in await resp.text()
        token = await csrf(http, url)
        async with http.post(
            url, data={"action": "add", "phone_number": "160", "display_name": "Bob", "csrf_token": token}
        ) as resp:
            assert resp.status == 200 and "Bob" in await resp.text()
    # another session's token is not this session's token
    async with (
        client(running_agent, "100") as http,
        http.post(url, data={"action": "remove", "phone_number": "160", "csrf_token": token}) as resp,
    ):
        assert resp.status == 403
    assert await running_agent.parts.pool.fetchval("SELECT display_name FROM user_internal_phones") == "Bob"


async def test_forms_show_errors_beside_fields_and_save_nothing(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    async with client(running_agent, None) as http:
        url = f"{base(running_agent)}/admin/100/extensions"
        token = await csrf(http, url)
        async with http.post(
            url, data={"action": "add", "phone_number": "12a", "display_name": "x" * 300, "csrf_token": token}
        ) as resp:
            assert resp.status == 400
            html = await resp.text()
            assert 'id="error-phone_number"' in html and 'id="error-display_name"' in html
            assert 'value="12a"' in html  # what was typed stays in the field
        async with http.post(url, json={"action": "add", "phone_number": "12a", "csrf_token": token}) as resp:
            assert resp.status == 400
            assert (await resp.json())["field"] == "phone_number"
        inst = f"{base(running_agent)}/admin/instance"
        async with http.post(inst, data={"number": "bad number!", "name": "", "csrf_token": token}) as resp:
            assert resp.status == 400
            html = await resp.text()
            assert 'id="error-number"' in html and 'id="error-name"' in html
        async with http.post(inst, json={"number": "100", "name": "Again"}, headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 409
        async with http.post(inst, json={"number": "300", "name": "New"}, headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 200
    assert await running_agent.parts.pool.fetchval("SELECT count(*) FROM user_internal_phones") == 0
    assert await running_agent.parts.pool.fetchval("SELECT name FROM enterprises WHERE number = '300'") == "New"
    assert await running_agent.parts.pool.fetchval("SELECT name FROM enterprises WHERE number = '100'") == "Shop"


async def test_an_enterprise_session_stays_in_its_enterprise(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    async with client(running_agent, "100") as http:
        b = base(running_agent)
        for path in (
            "/admin/200/overview",
            "/admin/200/calls.json",
            "/admin/200/log",
            "/admin/200/extensions",
            "/admin/instance",
            "/admin/instance.json",
        ):
            async with http.get(b + path) as resp:
                assert resp.status == 403, path
        token = await csrf(http, f"{b}/admin/100/extensions")
        async with http.post(
            f"{b}/admin/200/extensions", data={"csrf_token": token, "action": "add", "phone_number": "1"}
        ) as resp:
            assert resp.status == 403
        async with http.get(f"{b}/admin/100/log") as resp:
            html = await resp.text()
            assert 'value="200"' not in html  # the switcher offers only its own enterprise
    async with client(running_agent, None) as http:
        async with http.get(f"{base(running_agent)}/admin/200/overview") as resp:
            assert resp.status == 200
        async with http.get(f"{base(running_agent)}/admin/999/overview") as resp:
            assert resp.status == 404


async def test_language_from_header_and_switch(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    async with client(running_agent, "100", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}) as http:
        url = f"{base(running_agent)}/admin/100/calls"
        async with http.get(url) as resp:
            assert "Звонки" in await resp.text()
        async with http.get(url + "?lang=en") as resp:
            assert '<html lang="en">' in await resp.text()
        async with http.get(url) as resp:  # remembered in a cookie
            assert "Calls" in await resp.text()


async def test_retailcrm_one_click_link(running_agent: Agent) -> None:
    from agent.store.secretbox import load_or_create_secret
    from agent.web.tokens import TokenSigner
    from connectors.retailcrm import store as retailcrm_store

    await setup_enterprises(running_agent)
    pool = running_agent.parts.pool
    assert pool is not None
    signer = TokenSigner(load_or_create_secret(running_agent.config.agent.state_dir))
    token = signer.issue("100", 365, source="retailcrm")  # what registration puts in the module's accountUrl
    await retailcrm_store.set_account_token(pool, "100", signer.verify(token).token_id)
    b = base(running_agent)
    async with client(running_agent, "-") as http:
        async with http.get(f"{b}/admin/retailcrm", params={"enterprise_number": "200", "token": token}) as resp:
            assert resp.status == 401
        async with http.post(f"{b}/admin/retailcrm", data={"enterprise_number": "100", "token": token}) as resp:
            assert resp.status == 200 and str(resp.url).endswith("/admin/100/overview")
    newer = signer.issue("100", 365, source="retailcrm")  # re-registration revokes the old one
    await retailcrm_store.set_account_token(pool, "100", signer.verify(newer).token_id)
    async with client(running_agent, "-") as http:
        async with http.get(f"{b}/admin/retailcrm", params={"enterprise_number": "100", "token": token}) as resp:
            assert resp.status == 401 and "revoked" in await resp.text()
        async with http.get(f"{b}/admin/retailcrm", params={"enterprise_number": "100", "token": newer}) as resp:
            assert resp.status == 200
        # a one-time sign-in link or a plain API token is not a CRM link
        async with http.get(
            f"{b}/admin/retailcrm", params={"enterprise_number": "100", "token": links(running_agent).issue("100")}
        ) as resp:
            assert resp.status == 401
        async with http.get(
            f"{b}/admin/retailcrm", params={"enterprise_number": "100", "token": signer.issue("100", 1)}
        ) as resp:
            assert resp.status == 401


async def test_sign_out(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    async with client(running_agent, "100") as http:
        url = f"{base(running_agent)}/admin/100/overview"
        token = await csrf(http, url)
        async with http.post(f"{base(running_agent)}/admin/logout", data={"csrf_token": token}) as resp:
            assert resp.status == 200 and "signed out" in await resp.text()
        async with http.get(url) as resp:
            assert resp.status == 401
    assert await running_agent.parts.pool.fetchval("SELECT count(*) FROM admin_sessions") == 0


def test_templates_use_no_inline_script_or_style_and_every_message_exists() -> None:
    from importlib import resources

    from admin.i18n import LANGS, catalog

    folder = resources.files("admin") / "templates"
    used: set[str] = set()
    for f in folder.iterdir():
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f.name
        assert " style=" not in text and "<style" not in text and " on" + "click=" not in text, f.name
        used |= set(re.findall(r"""\bt\(["']([a-z_.]+)["']\)""", text))
    keys: dict[str, Any] = {lang: catalog(lang) for lang in LANGS}
    for lang, messages in keys.items():
        assert not used - set(messages), (lang, used - set(messages))
    assert set(keys["ru"]) == set(keys["en"])
    assert json.dumps(keys)  # both load as JSON


def test_admin_link_cli(tmp_path: Any, capsys: Any, db_dsn: str) -> None:
    from agent.cli import main

    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\npublic_url = "https://pbx.example/p"\n'
        f'[database]\ndsn = "{db_dsn}"\n'
        '[[pbx]]\nname = "office"\nenterprise = "100"\nusername = "agent"\nsecret = "s"\n'
    )
    assert main(["admin-link", "-c", str(config), "--enterprise", "100", "--role", "viewer"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("https://pbx.example/p/admin/login?token=")
    from admin.auth import LinkSigner
    from agent.store.secretbox import load_or_create_secret

    claims = LinkSigner(load_or_create_secret(tmp_path / "state")).verify(url.split("token=")[1])
    assert (claims.enterprise, claims.role) == ("100", "viewer")
    assert main(["admin-link", "-c", str(config), "--enterprise", "no way"]) == 2
    assert main(["admin-link", "-c", str(config), "--enterprise", "9999"]) == 2  # no such enterprise
    assert "no enterprise 9999" in capsys.readouterr().err
    assert main(["admin-link", "-c", str(config), "--role", "admin"]) == 0  # the instance: no enterprise needed


async def test_admin_link_for_an_enterprise_added_in_the_database(tmp_path: Any, capsys: Any, db_dsn: str) -> None:
    """An enterprise added on the Instance page (in the database, not in the config) gets its link."""
    from agent.cli import main
    from agent.store import database, enterprises

    pool = await database.create_pool(db_dsn, 1, name="test")
    try:
        await database.migrate(pool)
        await enterprises.put(pool, "300", "Added")
    finally:
        await pool.close()
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[database]\ndsn = "{db_dsn}"\n')
    assert await asyncio.to_thread(main, ["admin-link", "-c", str(config), "--enterprise", "300"]) == 0
    assert "/admin/login?token=" in capsys.readouterr().out


async def test_retry_by_json_and_by_form(running_agent: Agent) -> None:
    await setup_enterprises(running_agent)
    pool = running_agent.parts.pool
    assert pool is not None
    await add_calls(pool, "100", 1)
    ids = [
        await pool.fetchval(
            "INSERT INTO deliveries (idempotency_key, enterprise_number, integration_type, kind, payload, status,"
            " attempts, last_error, next_attempt_at) VALUES ($1, $2, 'retailcrm', 'calls_upload', '{}', $3, 1,"
            " 'Bad value', now() + interval '1 hour') RETURNING id",
            key,
            enterprise,
            status,
        )
        for key, enterprise, status in (
            ("retailcrm:c0:upload", "100", "failed"),
            ("retailcrm:z:upload", "200", "failed"),
            ("retailcrm:c0:event", "100", "done"),
        )
    ]
    async with client(running_agent, "100") as http:
        b = base(running_agent)
        async with http.get(f"{b}/admin/100/calls/c0.json") as resp:
            found = {d["id"]: d["retryable"] for d in (await resp.json())["deliveries"]}
            assert found == {ids[0]: True, ids[2]: False}
        token = await csrf(http, f"{b}/admin/100/log")
        async with http.post(f"{b}/admin/100/log", json={"delivery": ids[1]}, headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 404  # another enterprise's delivery
        async with http.post(
            f"{b}/admin/100/calls/c0", data={"delivery": ids[0], "csrf_token": token}, allow_redirects=False
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "c0"
        async with http.post(f"{b}/admin/100/log", json={"delivery": ids[2]}, headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 404  # done: nothing to retry
        async with http.post(f"{b}/admin/100/calls/c0", data={"delivery": ids[2], "csrf_token": token}) as resp:
            assert resp.status == 400
            assert f'id="error-delivery-{ids[2]}"' in await resp.text()
    assert await pool.fetchval("SELECT status FROM deliveries WHERE id = $1", ids[1]) == "failed"
