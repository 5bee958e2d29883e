"""What the composition root hands across the import contracts: the agent's parts adapted to the protocols
the CRM callback routes declare (connectors.base, connectors/<crm>/routes.py).

Part of the composition root: like agent.app and the other parts, which alone import it, it may import any
part (here the originator, the API token signer and the admin's amoCRM setup); nothing here decides anything,
it translates.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from aiohttp import web

from admin import amocrm_api, i18n, said
from agent.ingest.link import AmiNotConnected
from agent.ingest.originate import NoPbx, OriginateRefused, Originator
from agent.parts.public_pages import plain_page
from agent.web import keys
from agent.web.tokens import TokenError
from connectors.amocrm.client import AmoCrmClient
from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.settings import AmoCrmSettings
from connectors.base import CallNotPlaced, Grant, TokenRefused


@dataclass(frozen=True, slots=True)
class OriginatorCalls:
    """connectors.base.ClickToCall: the agent's originator, its failures as CallNotPlaced."""

    originator: Originator

    async def __call__(self, enterprise: str, extension: str, phone: str, caller_id: str | None) -> None:
        try:
            await self.originator.click_to_call(enterprise, extension, phone, caller_id)
        except NoPbx as exc:
            raise CallNotPlaced("no_pbx", str(exc)) from exc
        except AmiNotConnected as exc:
            raise CallNotPlaced("pbx_down", str(exc)) from exc
        except OriginateRefused as exc:
            raise CallNotPlaced("refused", str(exc)) from exc


@dataclass(frozen=True, slots=True)
class AmoCrmSetup:
    """connectors.amocrm.routes.Setup: admin.amocrm_api's helpers and the API token signer, on the root app."""

    app: web.Application

    def verify(self, token: str) -> Grant:
        try:
            return self.app[keys.SIGNER].verify(token)
        except TokenError as exc:
            raise TokenRefused(str(exc)) from None

    def connector(self) -> AmoCrmConnector:
        return amocrm_api.connector(self.app)

    async def settings_of(self, number: str) -> AmoCrmSettings | None:
        return await amocrm_api.settings_of(self.app, number)

    def client_for(self, settings: AmoCrmSettings) -> AmoCrmClient:
        return amocrm_api.client_for(self.app, settings)

    def consent_link(self, number: str, settings: AmoCrmSettings) -> str:
        return amocrm_api.consent_link(self.app, number, settings)

    async def connect_with(self, number: str, settings: AmoCrmSettings, host: str, code: str) -> web.Response | None:
        return await amocrm_api.connect_with(self.app, number, settings, host, code)

    def page(
        self,
        request: web.Request,
        status: int,
        key: str,
        back: str | None = None,
        refusal: web.Response | None = None,
        **values: str,
    ) -> web.Response:
        detail = amocrm_api.refusal(refusal) if refusal is not None else ""
        return result_page(request, status, key, back, detail, **values)


def result_page(
    request: web.Request, status: int, key: str, back: str | None, detail: str, **values: str
) -> web.Response:
    """amoCRM's OAuth result page, in the admin site's language and look (its catalogue, its stylesheet)."""
    lang = i18n.choose(request)[0]
    t = i18n.translator(lang)
    title, text = t(f"amo.cb.{key}.title"), t(f"amo.cb.{key}.text", **values)
    more = f"<p class='error-text'>{said.as_html(t, detail)}</p>" if detail else ""
    link = f"<p><a id='back' href='{html.escape(back)}'>{html.escape(t('amo.cb.back'))}</a></p>" if back else ""
    return plain_page(lang, status, title, f"<p>{html.escape(text)}</p>{more}{link}")
