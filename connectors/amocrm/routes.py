"""The URLs amoCRM (and the admin's browser) call: OAuth connect and callback, account webhooks.

GET  /amocrm/{enterprise}/connect?token=<API token>   -> 302 to the account's consent page
GET  /amocrm/oauth/callback?code&referer&state         <- amoCRM after the admin allowed access
POST /amocrm/webhook/{enterprise}/{secret}             <- account webhooks (form-encoded, unsigned)

They live on the agent's root application. What they need beyond the connector (the check of an API token,
and the settings, client, consent link and code exchange the admin's amoCRM setup also uses) is handed in as a
`Setup` by the composition root when it mounts them, typed by connectors.base; like the rest of the
connector, this module imports of the agent only its log masking.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Protocol

from aiohttp import web

from agent.life.masking import mask_data
from connectors.amocrm import oauth
from connectors.amocrm.client import AmoCrmClient
from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.settings import AmoCrmSettings
from connectors.amocrm.webhooks import parse_brackets, responsible_changes
from connectors.base import ENTERPRISE_NUMBER, CrmError, Grant, SendOutcome

log = logging.getLogger(__name__)

WEBHOOK_LOOKUP_S = 3.0


class Setup(Protocol):
    """What the routes need of the agent (agent.parts.adapters.AmoCrmSetup: admin.amocrm_api's helpers and the API
    token signer, bound to the agent's parts)."""

    def verify(self, token: str) -> Grant:
        """Whom an API token speaks for; raises TokenRefused."""
        ...

    def connector(self) -> AmoCrmConnector:
        """The agent's connector, bound to the database (its tokens and state signer set)."""
        ...

    async def settings_of(self, number: str) -> AmoCrmSettings | None:
        """The enterprise's stored settings (enabled or not); None when unset or unreadable."""
        ...

    def client_for(self, settings: AmoCrmSettings) -> AmoCrmClient: ...

    def consent_link(self, number: str, settings: AmoCrmSettings) -> str:
        """The account's consent page, with a signed single-use state naming the enterprise."""
        ...

    def page(
        self,
        request: web.Request,
        status: int,
        key: str,
        back: str | None = None,
        refusal: web.Response | None = None,
        **values: str,
    ) -> web.Response:
        """The result page a person sees, in their language: `key` names its title and text in the catalogues
        (`amo.cb.<key>.title`, `.text`); `refusal` is connect_with's answer when it refused, its words read in the
        page's language as far as they can be (amoCRM's own quoted)."""
        ...

    async def connect_with(self, number: str, settings: AmoCrmSettings, host: str, code: str) -> web.Response | None:
        """Exchange an authorization code and store the tokens; None when stored, else the API's error answer."""
        ...


SETUP = web.AppKey("amocrm_setup", Setup)


async def connect(request: web.Request) -> web.StreamResponse:
    """Gone: it took an API token in its URL (kept in browser history, proxy logs and Referer headers). The
    admin page's «Connect amoCRM» (a session) and the API's connect-url (a bearer header) do the same."""
    number = request.match_info["enterprise"]
    shown = number if number.isdigit() and len(number) <= 20 else "N"  # only echoed into a path in the text
    return request.config_dict[SETUP].page(request, 410, "gone", n=shown)


async def callback(request: web.Request) -> web.Response:
    q = request.query
    state, code, referer = q.get("state"), q.get("code"), q.get("referer")
    setup = request.config_dict[SETUP]
    if not state:
        return setup.page(request, 400, "widget" if "from_widget" in q else "no_state")
    amo = setup.connector()
    assert amo.state_signer is not None and amo.tokens is not None
    try:
        number, nonce, expires = amo.state_signer.verify(state)
    except oauth.StateError as exc:
        log.info("amoCRM callback refused: %s", exc)
        return setup.page(request, 400, "bad_state")
    back = f"/admin/{number}/amocrm"  # the state was signed by this agent: the number is one of ours
    if not code or not referer:
        return setup.page(request, 400, "denied", back)
    settings = await setup.settings_of(number)
    if settings is None:
        return setup.page(request, 400, "no_settings", back, number=number)
    try:
        host = oauth.host_from_referer(referer, settings.host)
    except ValueError as exc:
        log.info("amoCRM callback for enterprise %s refused: %s", number, exc)
        return setup.page(request, 400, "wrong_account", back)
    if not await amo.tokens.use_state(nonce, number, expires):
        return setup.page(request, 400, "used", back)
    failed = await setup.connect_with(number, settings, host, code)
    if failed is not None:
        return setup.page(request, failed.status, "refused", back, refusal=failed)
    log.info("amoCRM connected for enterprise %s (%s)", number, host)
    return setup.page(request, 200, "connected", back, number=number, host=host)


async def webhook(request: web.Request) -> web.Response:
    number, secret = request.match_info["enterprise"], request.match_info["secret"]
    setup = request.config_dict[SETUP]
    settings = await setup.settings_of(number) if ENTERPRISE_NUMBER.fullmatch(number) else None
    expected = settings.webhook_secret if settings is not None else "x" * 43
    if not hmac.compare_digest(secret.encode(), expected.encode()) or settings is None:
        raise web.HTTPNotFound()
    amo = setup.connector()
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        changes = responsible_changes(parse_brackets(form))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    phones: list[str] = []
    errors: list[str] = []
    client = setup.client_for(settings)
    for change in changes:
        if change.phones:
            phones += change.phones
            continue
        try:  # nothing in the body: ask amoCRM, briefly (a webhook is answered fast)
            async with asyncio.timeout(WEBHOOK_LOOKUP_S):
                phones += await client.contact_phones(number, change.entity, change.id)
        except CrmError as exc:
            errors.append(f"{change.entity} {change.id}: {exc.outcome.error}")
        except TimeoutError:
            errors.append(f"{change.entity} {change.id}: amoCRM did not answer within {WEBHOOK_LOOKUP_S:.0f} s")
    phones = list(dict.fromkeys(phones))
    if changes:
        amo.responsible_changed(number, phones)
    outcome = SendOutcome(
        "success" if not errors else "permanent",
        http_status=200,
        error="; ".join(errors) or None,
        request={"method": "POST", "path": "/amocrm/webhook/{enterprise}/…", "form": mask_data(form)},
        response={"changes": [f"{c.entity}:{c.id}" for c in changes], "phones": phones},
    )
    await amo.log_outcome(number, "webhook", outcome)
    return web.json_response({"ok": True, "changes": len(changes)})


def add_routes(app: web.Application, setup: Setup) -> None:
    """Mount the routes on the agent's root application (agent.app._start_http), with what they need."""
    app[SETUP] = setup
    app.router.add_get("/amocrm/oauth/callback", callback)
    app.router.add_get("/amocrm/{enterprise}/connect", connect)
    app.router.add_post("/amocrm/webhook/{enterprise}/{secret}", webhook)
