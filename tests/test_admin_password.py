"""The password way into the admin pages: `pbx-agent admin-password` and the form at /admin/login."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import aiohttp
import pytest
from argon2 import PasswordHasher

from admin import passwords
from admin.i18n import translator
from agent.app import Agent
from agent.store import database, enterprises
from tests.admin_client import base
from tests.browser import Browser, expect, seed

PASSWORD = "correct horse battery"
FORM_TOKEN_RE = re.compile(r'name="form_token" value="([0-9a-f]+)"')


async def setup(agent: Agent, role: str = "admin") -> None:
    await enterprises.put(agent.parts.pool, "100", "Shop")
    await enterprises.put(agent.parts.pool, "200", "Other")
    await passwords.set_password(agent.parts.pool, "100", role, PASSWORD)


def new_client(lang: str = "en") -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": lang})


async def sign_in(agent: Agent, http: aiohttp.ClientSession, number: str, password: str) -> tuple[int, str, str]:
    """Open the form, post it; (status, final URL, page)."""
    async with http.get(f"{base(agent)}/admin/login") as resp:
        assert resp.status == 200
        found = FORM_TOKEN_RE.search(await resp.text())
        assert found, "no form token on the sign-in page"
    form = {"form_token": found.group(1), "enterprise": number, "password": password}
    async with http.post(f"{base(agent)}/admin/login", data=form) as resp:
        return resp.status, str(resp.url), await resp.text()


def test_admin_password_cli(tmp_path: Any, capsys: Any, db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli import main

    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[database]\ndsn = "{db_dsn}"\n'
        '[[pbx]]\nname = "office"\nenterprise = "100"\nusername = "agent"\nsecret = "s"\n'
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["admin-password", "-c", str(config), "--enterprise", "100", "--role", "viewer"]) == 0
    assert "set" in capsys.readouterr().out

    async def stored() -> list[Any]:
        pool = await database.create_pool(db_dsn, 1, name="test")
        try:
            return list(await pool.fetch("SELECT enterprise_number, role, hash FROM admin_passwords"))
        finally:
            await pool.close()

    rows = asyncio.run(stored())
    assert [(r["enterprise_number"], r["role"]) for r in rows] == [("100", "viewer")]
    hashed = rows[0]["hash"]
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert PasswordHasher().verify(hashed, PASSWORD)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["admin-password", "-c", str(config), "--enterprise", "100"]) == 2  # too short: nothing changes
    assert "at least" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["admin-password", "-c", str(config), "--enterprise", "9999"]) == 2
    assert "no enterprise 9999" in capsys.readouterr().err
    assert asyncio.run(stored())[0]["hash"] == hashed
    assert main(["admin-password", "-c", str(config), "--enterprise", "100", "--remove"]) == 0
    assert "removed" in capsys.readouterr().out
    assert asyncio.run(stored()) == []
    assert main(["admin-password", "-c", str(config), "--enterprise", "100", "--remove"]) == 0
    assert "had none" in capsys.readouterr().out


async def test_the_password_signs_in_with_its_role_to_its_enterprise_only(running_agent: Agent) -> None:
    await setup(running_agent, "viewer")
    b = base(running_agent)
    async with new_client() as http:
        status, url, _ = await sign_in(running_agent, http, "100", PASSWORD)
        assert status == 200 and url.endswith("/admin/100/overview")
        async with http.get(f"{b}/admin/100/overview.json") as resp:
            assert resp.status == 200
        async with http.get(f"{b}/admin/200/overview") as resp:
            assert resp.status == 403
    row = await running_agent.parts.pool.fetchrow("SELECT enterprise_number, role, source FROM admin_sessions")
    assert row is not None and tuple(row) == ("100", "viewer", "password")
    async with new_client() as http:  # the password of 100 is not one of 200
        status, _, page = await sign_in(running_agent, http, "200", PASSWORD)
        assert status == 401 and "Wrong enterprise number or password" in page


async def test_the_form_needs_its_own_token(running_agent: Agent) -> None:
    await setup(running_agent)
    url = f"{base(running_agent)}/admin/login"
    async with new_client() as http:
        form = {"enterprise": "100", "password": PASSWORD}
        async with http.post(url, data=form) as resp:
            assert resp.status == 403
        async with http.get(url) as resp:
            found = FORM_TOKEN_RE.search(await resp.text())
            assert found
        # another browser's token is not this one's (login CSRF)
        async with new_client() as other, other.post(url, data={**form, "form_token": found.group(1)}) as resp:
            assert resp.status == 403
        async with http.post(url, data={**form, "form_token": found.group(1)}) as resp:
            assert resp.status == 200 and str(resp.url).endswith("/admin/100/overview")


async def test_wrong_passwords_are_refused_then_locked_out(running_agent: Agent, monkeypatch: Any) -> None:
    await setup(running_agent)
    await passwords.set_password(running_agent.parts.pool, "200", "admin", PASSWORD + "2")
    verified: list[str] = []
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hashed: str, password: str) -> bool:
        verified.append(hashed)
        return real(self, hashed, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    async with new_client() as http:
        status, _, unknown = await sign_in(running_agent, http, "777", PASSWORD)  # no such enterprise
        assert status == 401 and len(verified) == 1  # a dummy hash spent the same time
        for _ in range(passwords.FAILURES_MAX - 2):
            status, _, wrong = await sign_in(running_agent, http, "100", "not the password")
            assert status == 401
        assert wrong == unknown.replace('value="777"', 'value="100"')  # the same answer either way
        status, _, page = await sign_in(running_agent, http, "100", "still not it")
        assert status == 401
        status, _, page = await sign_in(running_agent, http, "100", "nor this")
        assert status == 429 and "Too many failed tries" in page
        verified.clear()
        status, _, page = await sign_in(running_agent, http, "100", PASSWORD)  # locked: even the right one
        assert status == 429 and not verified
        status, url, _ = await sign_in(running_agent, http, "200", PASSWORD + "2")  # another enterprise is not
        assert status == 200 and url.endswith("/admin/200/overview")
    await running_agent.parts.pool.execute(
        "UPDATE admin_password_failures SET failed_at = failed_at - make_interval(mins => $1)",
        passwords.LOCKOUT_MINUTES + 1,
    )
    async with new_client() as http:
        status, url, _ = await sign_in(running_agent, http, "100", PASSWORD)
        assert status == 200 and url.endswith("/admin/100/overview")
    assert await running_agent.parts.pool.fetchval("SELECT count(*) FROM admin_password_failures") == 0


async def test_a_removed_password_no_longer_signs_in(running_agent: Agent) -> None:
    await setup(running_agent)
    # a page that needs signing in leads to the form
    async with new_client() as http, http.get(f"{base(running_agent)}/admin/100/overview") as resp:
        assert resp.status == 401 and 'href="../login"' in await resp.text()
    assert await passwords.remove_password(running_agent.parts.pool, "100")
    async with new_client() as http:
        status, _, page = await sign_in(running_agent, http, "100", PASSWORD)
        assert status == 401 and "Wrong enterprise number or password" in page


async def test_the_form_in_russian_and_english(running_agent: Agent) -> None:
    url = f"{base(running_agent)}/admin/login"
    async with new_client("ru-RU,ru;q=0.9") as http:
        async with http.get(url) as resp:
            page = await resp.text()
            assert resp.status == 200 and "Номер предприятия" in page and "Пароль" in page
            assert 'name="password" type="password"' in page
        async with http.get(url + "?lang=en") as resp:
            page = await resp.text()
            assert "Enterprise number" in page and "Password" in page and "Номер" not in page
    async with new_client("ru") as http:
        status, _, page = await sign_in(running_agent, http, "100", "whatever it is")
        assert status == 401 and "Неверный номер предприятия или пароль" in page


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_sign_in_with_the_password_in_a_browser(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    await seed(running_agent.parts.pool)
    await passwords.set_password(running_agent.parts.pool, "100", "admin", PASSWORD)
    url = f"{base(running_agent)}/admin/login?lang={lang}"
    t = translator(lang)

    def steps() -> None:
        page.goto(url)
        expect(page.locator("h1")).to_have_text(t("login.title"))
        page.get_by_label(t("login.enterprise")).fill("100")
        page.get_by_label(t("login.password")).fill("wrong password here")
        page.get_by_role("button", name=t("login.submit")).click()
        expect(page.locator("#login-error")).to_have_text(t("error.password"))
        expect(page.get_by_label(t("login.enterprise"))).to_have_value("100")  # what was typed is kept
        page.get_by_label(t("login.password")).fill(PASSWORD)
        page.get_by_role("button", name=t("login.submit")).click()
        page.wait_for_url("**/admin/100/overview")
        expect(page.locator("nav.sections a.active")).to_have_text(t("nav.overview"))

    await chromium.run(steps)
