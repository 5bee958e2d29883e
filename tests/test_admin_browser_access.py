"""Issue 19, items 6 and 10 in a real browser (tests/browser.py), in English and in Russian: on the Access page
an instance admin issues enterprise sign-in links, sees them listed and revokes one, which then signs no one in;
API tokens that `pbx-agent token` issued are listed and revoked one by one with their button, and /api refuses a
revoked one at once. What the page says is read from the catalogue of the language the browser asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from admin.i18n import translator
from agent.app import Agent
from tests.admin_client import base, link
from tests.browser import Browser, expect, seed
from tests.test_api_tokens import api_status, cli_config, run_cli

LANGS = pytest.mark.parametrize("lang", ["en", "ru"])


@LANGS
async def test_sign_in_links_issued_listed_and_revoked(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    await seed(running_agent.parts.pool)
    t = translator(lang)
    b, public = base(running_agent), running_agent.config.agent.public_url
    given: dict[str, str] = {}

    def issue(role: str, listed: int) -> str:
        form = page.locator("form.issue-link")
        form.locator("select[name=enterprise]").select_option("100")
        form.locator("select[name=role]").select_option(role)
        form.get_by_role("button", name=t("links.issue")).click()
        expect(page.locator("#links tbody tr")).to_have_count(listed)  # the page that answered the click
        shown = page.locator("#issued-link")
        expect(shown).to_contain_text(t("links.issued"))
        return str(shown.locator("code").inner_text()).replace(public, b)  # the page names the agent by public_url

    def row(role: str) -> Any:
        return page.locator("#links tbody tr").filter(
            has=page.get_by_role("cell", name=t(f"links.role_{role}"), exact=True)
        )

    def issue_and_revoke() -> None:
        page.goto(link(running_agent))  # the instance admin
        page.click(f".langs a[hreflang={lang}]")
        page.get_by_role("link", name=t("nav.tokens")).click()
        expect(page.locator("h1")).to_have_text(t("nav.tokens"))
        given["viewer"] = issue("viewer", 1)
        given["admin"] = issue("admin", 2)
        for role in ("viewer", "admin"):
            expect(row(role).locator("td").nth(0)).to_have_text("100")
            expect(row(role).locator("td").nth(4)).to_have_text(t("links.state_open"))
        row("admin").get_by_role("button", name=t("tokens.revoke")).click()
        expect(row("admin")).to_have_attribute("data-state", "revoked")
        expect(row("admin").locator("td").nth(4)).to_have_text(t("links.state_revoked"))
        expect(row("admin").get_by_role("button")).to_have_count(0)  # nothing left to revoke
        expect(row("viewer").locator("td").nth(4)).to_have_text(t("links.state_open"))

    def someone_else_opens(*urls: str) -> list[tuple[int, str, str]]:
        """The links opened in turn in another browser (its own cookies), set to the same language."""
        context = chromium.browser.new_context(locale=lang)
        try:
            other, seen = context.new_page(), []
            for url in urls:
                response = other.goto(url)
                seen.append((response.status, other.url, other.locator("main").inner_text()))
            return seen
        finally:
            context.close()

    await chromium.run(issue_and_revoke)
    revoked, kept = await chromium.run(someone_else_opens, given["admin"], given["viewer"])
    assert revoked[0] == 401 and t("error.link_used") in revoked[2]  # revoked: it signs no one in
    assert kept[0] == 200 and kept[1].endswith("/admin/100/overview")  # the one not revoked still does


@LANGS
async def test_api_tokens_listed_and_revoked_one_by_one(
    running_agent: Agent, db_dsn: str, tmp_path: Path, capsys: Any, chromium: Browser, page: Any, lang: str
) -> None:
    await seed(running_agent.parts.pool)
    t = translator(lang)
    cfg = str(cli_config(running_agent, db_dsn, tmp_path))
    tokens = {}
    for label in ("crm sync", "monitoring"):
        code, tokens[label], _ = await run_cli(capsys, "token", "-c", cfg, "--label", label)
        assert code == 0 and await api_status(running_agent, tokens[label]) == 200

    def row(label: str) -> Any:
        return page.locator("#tokens tbody tr").filter(has=page.get_by_role("cell", name=label, exact=True))

    def revoke() -> None:
        page.goto(link(running_agent))
        page.click(f".langs a[hreflang={lang}]")
        page.get_by_role("link", name=t("nav.tokens")).click()
        expect(page.locator("#tokens tbody tr")).to_have_count(2)
        html = page.content()
        assert tokens["crm sync"] not in html and tokens["monitoring"] not in html  # ids only, never a token
        for label in tokens:
            expect(row(label).locator("td").nth(2)).to_have_text(t("tokens.all"))
            expect(row(label).locator("td").nth(5)).to_have_text(t("tokens.state_valid"))
        row("crm sync").get_by_role("button", name=t("tokens.revoke")).click()
        expect(row("crm sync")).to_have_attribute("data-state", "revoked")
        expect(row("crm sync").locator("td").nth(5)).to_have_text(t("tokens.state_revoked"))
        expect(row("crm sync").get_by_role("button")).to_have_count(0)
        expect(row("monitoring").locator("td").nth(5)).to_have_text(t("tokens.state_valid"))

    await chromium.run(revoke)
    assert await api_status(running_agent, tokens["crm sync"]) == 401
    assert await api_status(running_agent, tokens["monitoring"]) == 200  # one by one
