"""One language per page (issue 19 item 3): every admin page, rendered in Russian in states where every kind of
message shows (a failed connection test, a refused registration, deliveries failed for different reasons, form
errors, refusals, empty states), carries no English message; rendered in English, no Russian one.

The pages are every GET route of the admin application (taken from its router, so a new page is covered without
touching this test) plus the answers to the forms' POSTs. What is scanned is the text a person reads: element text
and the attributes a browser shows (title, placeholder, aria-label, alt, data-confirm), without `<script>`,
`<style>`, `<code>`, `<pre>` (data), the values of inputs, and elements marked with another language (`lang="und"`
for a CRM's own words, `lang="en"` for a library's, admin/said.py). English is a run of two Latin-alphabet words
that are not proper names (a URL, a path, an id or a number breaks a run), or one of a few words that are never a
name; Russian is any Cyrillic letter.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import aiohttp
import httpx
import pytest

from admin import said, site
from agent.app import Agent
from agent.store import enterprises
from connectors.amocrm.problem import problem_text
from connectors.http import Exchange, classify_exception
from connectors.retailcrm.envelope import error_message
from tests.admin_client import add_calls, base, client, csrf
from tests.amocrm_setup import configure_amocrm
from tests.crm_setup import API_KEY, configure_retailcrm
from tests.fakes.amocrm import FakeAmoCrm
from tests.fakes.retailcrm import FakeRetailCrm

NAMES = {  # proper names and abbreviations that are the same in either language
    *("RetailCRM", "amoCRM", "Kommo", "CRM", "Asterisk", "AMI", "AGI", "FastAGI", "API", "URL", "SIP", "PJSIP"),
    *("CSV", "JSON", "HTTP", "HTTPS", "MP3", "WAV", "Chromium", "systemd", "PostgreSQL", "nginx", "Caddy"),
    *("OAuth", "IANA", "CDR", "CEL", "SSH", "SFTP", "TLS", "UUID", "ID", "CSRF", "HTML", "PBX", "DID", "E.164"),
    *("ms", "s", "ru", "en", "refresh", "additionalCodes", "webhook", "pbx-agent"),
}
NEVER_A_NAME = {"the", "and", "not", "is", "of", "to", "no", "error", "failed", "success", "save", "test", "none"}
SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt", "data-confirm")
SKIPPED = {"script", "style", "code", "pre", "textarea"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")
EDGES = ".,;:!?()[]{}«»\"'“”„—–…·→←#*|"
CYRILLIC = re.compile(r"[А-Яа-яЁё]")

# what the test puts in, or the fakes answer with: user data, shown as it is in any language
USER_DATA = ("User7 Test", "User8 Test", "User9 Test", "Test account", "First contact", "Unsorted", "Sales", "Admin")
USER_DATA += ("Won", "Lost", "Shop")  # type: ignore[assignment]
# the CRMs' own words this test makes them say (shown quoted, lang="und")
CRM_WORDS = ("Errors in the entity format", "Invalid URL", "Bad Request", "The lead is gone")


class Visible(HTMLParser):
    """The text of a page a person reads, in pieces (one per text node or shown attribute)."""

    def __init__(self, page_lang: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_lang = page_lang
        self.stack: list[tuple[str, bool]] = []
        self.pieces: list[str] = []
        self.raw: list[str] = []  # texts admin/said.py did not recognise (class said-raw)
        self._raw_depth: int | None = None

    @property
    def hidden(self) -> bool:
        return any(skip for _, skip in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        lang = a.get("lang")
        skip = tag in SKIPPED or (lang is not None and tag != "html" and lang != self.page_lang)
        if not self.hidden and not skip:
            self.pieces.extend(v for k, v in attrs if k in SHOWN_ATTRIBUTES and v)
            if tag == "input" and a.get("type") in ("submit", "button") and a.get("value"):
                self.pieces.append(a["value"] or "")
        if "said-raw" in (a.get("class") or "").split() and self._raw_depth is None:
            self._raw_depth = len(self.stack)
            self.raw.append("")
        if tag not in VOID:
            self.stack.append((tag, skip))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        if self._raw_depth is not None and len(self.stack) <= self._raw_depth:
            self._raw_depth = None

    def handle_data(self, data: str) -> None:
        if self._raw_depth is not None:
            self.raw[-1] += data
        if not self.hidden and data.strip():
            self.pieces.append(data)


def english(text: str) -> list[str]:
    """Runs of two or more English words, and single words that are never a name, in `text`."""
    for data in USER_DATA:
        text = text.replace(data, " ")
    found: list[str] = []
    run: list[str] = []

    def close() -> None:
        if len(run) >= 2:
            found.append(" ".join(run))
        run.clear()

    for token in text.split():
        word = token.strip(EDGES)
        if word in NAMES:
            close()
        elif WORD.fullmatch(word):
            run.append(word)
            if word.lower() in NEVER_A_NAME:
                found.append(word)
        else:
            close()  # Cyrillic, a number, a URL, a path, an id: not an English word
    close()
    return found


def foreign(html: str, lang: str) -> tuple[list[str], list[str]]:
    """(what is not in `lang` on the page, the texts shown as stored because nothing recognised them)."""
    parser = Visible(lang)
    parser.feed(html)
    bad: list[str] = []
    for piece in parser.pieces:
        if lang == "ru":
            bad.extend(english(piece))
        elif CYRILLIC.search(piece):
            bad.append(piece.strip())
    return bad, parser.raw


def get_routes() -> list[str]:
    """Every GET page of the admin application, with its path parameters filled in for enterprise 100."""
    app = site.create_app(b"k" * 32)
    values = {"number": "100", "ext": "", "call_id": "c0"}
    paths: list[str] = []
    for resource in app.router.resources():
        info = resource.get_info()
        if "directory" in info:  # the static files
            continue
        methods = {route.method for route in resource}
        if not methods & {"GET", "*"}:
            continue
        path = info["path"] if "path" in info else info["formatter"].format_map(values)
        paths.append(site.PREFIX + path)
    return paths


class Scan:
    def __init__(self, agent: Agent, lang: str) -> None:
        self.agent, self.lang = agent, lang
        self.problems: dict[str, list[str]] = {}
        self.raw: dict[str, list[str]] = {}
        self.seen = 0

    def page(self, where: str, html: str) -> None:
        bad, raw = foreign(html, self.lang)
        self.seen += 1
        if bad:
            self.problems.setdefault(where, []).extend(bad)
        if raw:
            self.raw.setdefault(where, []).extend(raw)

    async def get(self, http: aiohttp.ClientSession, path: str, who: str) -> None:
        async with http.get(base(self.agent) + path, allow_redirects=False) as resp:
            if resp.content_type == "text/html":
                self.page(f"{who} GET {path} ({resp.status})", await resp.text())

    async def post(self, http: aiohttp.ClientSession, path: str, who: str, **fields: str) -> str:
        url = base(self.agent) + path
        token = await csrf(http, url.split("?")[0])
        async with http.post(url, data={"csrf_token": token, **fields}) as resp:
            assert resp.content_type == "text/html", (path, fields, resp.status)
            html = await resp.text()
            self.page(f"{who} POST {path} {fields} ({resp.status})", html)
            return html


def crm_texts() -> list[str]:
    """Stored error texts as their producers make them: transport, each CRM's refusal, the outbox's own."""
    rc = Exchange({}, {}, 1.0, http_status=400, body={"success": False, "errorMsg": CRM_WORDS[0]}, text="{}")
    amo_body = {"title": CRM_WORDS[2], "status": 400, "detail": CRM_WORDS[3]}
    amo = Exchange({}, {}, 1.0, http_status=400, body=amo_body, text="{}")
    return [
        classify_exception(httpx.ConnectTimeout("timed out"))[1],
        classify_exception(httpx.ConnectError("[Errno 111] Connection refused"))[1],
        error_message(rc),
        problem_text(amo),
        "the amoCRM account is not paid (402): " + problem_text(amo),
        "no complete answer within 30 s",
        "retailcrm account paused for 30 s after repeated failures",
        "rejected by the CRM",
        "RuntimeError: the fake broke",
    ]


async def failed_deliveries(agent: Agent) -> None:
    pool = agent.parts.pool
    for i, text in enumerate(crm_texts()):
        crm = "amocrm" if "amoCRM" in text or "title" in text else "retailcrm"
        delivery = await pool.fetchval(
            "INSERT INTO deliveries (idempotency_key, enterprise_number, integration_type, kind, payload, status,"
            " attempts, last_error, next_attempt_at) VALUES ($1, '100', $2, 'calls_upload', '{}', $3, 3, $4,"
            " now() + interval '1 hour') RETURNING id",
            f"{crm}:c0:upload{i}",
            crm,
            ("failed", "dead", "expired")[i % 3],
            text,
        )
        await pool.execute(
            "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data,"
            " response_data, status, error_message, http_status, duration_ms, delivery_id)"
            " VALUES ('100', $1, 'calls_upload', '{}', '{}', 'error', $2, $3, 12, $4)",
            crm,
            text,
            400 if "(40" in text or "entity" in text else None,
            delivery,
        )


@pytest.fixture
async def fake_rc() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.add_users(3, start_id=7)
        yield fake


async def states(agent: Agent, fake_rc: FakeRetailCrm, fake_amo: FakeAmoCrm) -> None:
    pool, state_dir = agent.parts.pool, agent.config.agent.state_dir
    await configure_retailcrm(pool, state_dir, fake_rc)
    await configure_amocrm(pool, state_dir, fake_amo)
    await enterprises.put(pool, "100", "Shop")
    await enterprises.put(pool, "200", "Shop")  # another enterprise: nothing configured (empty states)
    await add_calls(pool, "100", 3)
    await failed_deliveries(agent)


async def scan_site(agent: Agent, fake_rc: FakeRetailCrm, lang: str) -> Scan:
    scan = Scan(agent, lang)
    routes = get_routes()
    assert any(r.endswith("/retailcrm") for r in routes) and len(routes) > 15, routes
    headers = {"Accept-Language": lang}
    b = "/admin/100"
    async with client(agent, None, headers=headers) as http:  # the instance's admin: every page
        for path in routes:
            await scan.get(http, path, "admin")
            await scan.get(http, path.replace("/100/", "/200/"), "admin")
        for path in (f"{b}/calls?date=yesterday&direction=sideways", f"{b}/log?crm=x&status=y&since=z"):
            await scan.get(http, path, "admin")
        await scan.get(http, "/admin/100/calls/no-such-call", "admin")
        await scan.get(http, "/admin/go?enterprise=%20", "admin")
        await scan.get(http, "/admin/no/such/page", "admin")
        # RetailCRM: a wrong key, a refused registration, a refused setting, registration while switched off
        await scan.post(http, f"{b}/retailcrm", "admin", action="test", domain=fake_rc.url, api_key="Wr0ngKey")
        fake_rc.fail_next(
            2, status=400, body={"success": False, "errorMsg": CRM_WORDS[0], "errors": {"baseUrl": CRM_WORDS[1]}}
        )
        await scan.post(http, f"{b}/retailcrm", "admin", action="register")
        await scan.post(http, f"{b}/retailcrm", "admin", action="save", domain="ftp://x/y", task_due_minutes="0")
        await scan.post(http, f"{b}/retailcrm", "admin", action="save", order_method="Not A Code")
        await scan.post(http, f"{b}/retailcrm", "admin", action="save", enabled="false")
        await scan.post(http, f"{b}/retailcrm", "admin", action="register")
        await scan.post(http, f"{b}/retailcrm", "admin", action="save", enabled="true")
        registered = await scan.post(http, f"{b}/retailcrm", "admin", action="register")
        assert 'id="result-error"' not in registered and 'class="result ok"' in registered
        await scan.post(http, f"{b}/retailcrm", "admin", action="test")
        # amoCRM: a refused code and token, refused settings
        await scan.post(http, f"{b}/amocrm", "admin", action="code", code="not-a-code")
        await scan.post(http, f"{b}/amocrm", "admin", action="token", token="garbage")
        await scan.post(http, f"{b}/amocrm", "admin", action="save", host="http://x", task_due_minutes="0")
        await scan.post(http, f"{b}/amocrm", "admin", action="save", proxy="ftp://nope", lead_tags=",".join("x" * 30))
        # the Managers page when RetailCRM does not answer, and a mapping it does not take
        fake_rc.fail_next(20, status=503, body={"success": False, "errorMsg": CRM_WORDS[0]})
        await scan.get(http, f"{b}/managers?crm=retailcrm", "admin")
        await scan.post(http, f"{b}/managers", "admin", crm="retailcrm", **{"user.7": "151"})
        fake_rc.normal()  # the failures left over (retries take an unknown share)
        # the other forms' refusals
        await scan.post(http, f"{b}/extensions", "admin", action="add", phone_number="12a", display_name="")
        await scan.post(http, f"{b}/routing", "admin", action="save", fallback_extension="abc")
        await scan.post(http, f"{b}/log", "admin", delivery="999999")
        await scan.post(http, f"{b}/calls/c0", "admin", delivery="x")
        await scan.post(http, "/admin/instance", "admin", action="add", number="bad number!", name="")
        await scan.post(http, "/admin/tokens", "admin", action="nothing")
    async with client(agent, "100", role="viewer", headers=headers) as http:  # refusals of a read-only role
        for path in routes:
            await scan.get(http, path, "viewer")
    async with client(agent, "-", headers=headers) as http:  # not signed in: the sign-in form and its refusals
        for path in routes:
            await scan.get(http, path, "anonymous")
        async with http.get(base(agent) + "/admin/login") as resp:
            token = re.search(r'name="form_token" value="([^"]+)"', await resp.text())
        form = {"enterprise": "100", "password": "wrong"}
        if token:
            form["form_token"] = token.group(1)
        async with http.post(base(agent) + "/admin/login", data=form) as resp:
            scan.page(f"anonymous POST /admin/login ({resp.status})", await resp.text())
        async with http.get(base(agent) + "/admin/login?token=forged") as resp:
            scan.page(f"anonymous GET forged link ({resp.status})", await resp.text())
    return scan


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_every_page_speaks_one_language(running_agent: Agent, fake_rc: FakeRetailCrm, lang: str) -> None:
    async with FakeAmoCrm() as fake_amo:
        await states(running_agent, fake_rc, fake_amo)
        scan = await scan_site(running_agent, fake_rc, lang)
    assert scan.seen > 60
    assert not scan.problems, "\n".join(f"{where}: {found}" for where, found in scan.problems.items())
    # shown as stored only where a CRM's own words are: nothing of the agent's own goes untranslated
    unknown = {text for found in scan.raw.values() for text in found if not any(w in text for w in CRM_WORDS)}
    assert not unknown, unknown


def test_the_pattern_reader_knows_every_stored_producer() -> None:
    for text in crm_texts():
        found = said.said(text)
        assert found is not None
        assert not found.raw or any(w in text for w in CRM_WORDS), text


def test_the_scanner_sees_english() -> None:
    html = (
        '<html lang="ru"><body><p>Ошибка: <q lang="und">Bad things</q></p><p title="Save the settings">ок</p>'
        "<code>not shown here</code><p>Тест подключения: failed</p><p>The CRM did not answer</p></body></html>"
    )
    bad, _ = foreign(html, "ru")
    assert "Save the settings" in bad and "failed" in bad and "did not answer" in bad
    assert not any("Bad" in b or "shown" in b for b in bad)
    assert english("Ключ https://shop.retailcrm.ru/api/v5 — RetailCRM API, amoCRM OAuth") == []
    assert foreign('<html lang="en"><body><p>Test ок</p></body></html>', "en")[0] == ["Test ок"]
