"""What the PBX says about its phones and trunks.

- The enterprise's extensions as the PBX knows them: hints (`ExtensionStateList`) and PJSIP endpoints
  (`PJSIPShowEndpoints`), filtered by the PBX's internal-number rule, merged into `user_internal_phones`.
- Which endpoints are trunks and which are phones (`learn_endpoints`), for the call tracker, asked at connect
  and after every `Reload`: PJSIP endpoints (`PJSIPShowEndpoints`, `PJSIPShowEndpoint` for those not named
  like an extension, `PJSIPShowRegistrationsOutbound`), chan_sip `SIPpeers`, chan_iax2 `IAXpeerlist`. All
  need the `system` class in the AMI user's `write` (res_pjsip registers the endpoint actions with
  EVENT_FLAG_SYSTEM; the others accept system or reporting); a refusal is reported, never silent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.ingest.link import AmiLink, AmiNotConnected
from agent.store.extensions import Extension
from agent.tracking.channels import ChannelRules
from agent.tracking.endpoints import (
    DEFAULT_PHONE_CONTEXTS,
    DEFAULT_TRUNK_CONTEXTS,
    PHONE,
    TRUNK,
    Endpoints,
    Kind,
    context_matches,
)

log = logging.getLogger(__name__)

ACTIONS = (("ExtensionStateList", "ExtensionStatus", "Exten"), ("PJSIPShowEndpoints", "EndpointList", "ObjectName"))


def found_in(messages: Iterable[Mapping[str, str]], event: str, key: str, rules: ChannelRules) -> list[str]:
    """The internal numbers named by `event` messages (pure)."""
    out: list[str] = []
    for msg in messages:
        if msg.get("Event") == event:
            number = msg.get(key, "").strip()
            if rules.is_internal_number(number) and number not in out:
                out.append(number)
    return out


def merged(current: list[Extension], found: Iterable[str]) -> tuple[list[Extension], list[str]]:
    """Add what the PBX has that the list lacks; names and manual entries stay. (list, added)."""
    known = {e.extension for e in current}
    added = [number for number in found if number not in known]
    return current + [Extension(number) for number in added], added


async def discover(link: AmiLink, rules: ChannelRules) -> list[str]:
    """Ask one PBX; an action the PBX does not support (no chan_pjsip, say) is skipped with a log line."""
    numbers: list[str] = []
    for action, event, key in ACTIONS:
        try:
            answer: Any = await link.send_action({"Action": action}, within=10)
        except AmiNotConnected:
            raise
        except TimeoutError:
            log.warning("PBX %s: no answer to %s within 10 s", link.pbx.name, action)
            continue
        messages = answer if isinstance(answer, list) else [answer]
        if messages and messages[0].get("Response") == "Error":
            log.info("PBX %s: %s refused (%s)", link.pbx.name, action, messages[0].get("Message", ""))
            continue
        for number in found_in(messages, event, key, rules):
            if number not in numbers:
                numbers.append(number)
    return sorted(numbers, key=lambda n: (len(n), n))


# --- trunks and phones: what the tracker needs to tell a provider's channel from a phone's ---------------------

PERMISSION_DENIED = "Permission denied"
DETAIL_MAX = 200  # PJSIPShowEndpoint asked per endpoint whose name is no extension, at most this many


@dataclass(frozen=True)
class Learned:
    """What one round of asking gave: the endpoints, and the actions the PBX refused or does not have."""

    endpoints: Endpoints
    refused: tuple[str, ...] = ()  # "PJSIPShowEndpoints" (Permission denied: a manager.conf class is missing)
    missing: tuple[str, ...] = ()  # the module is not loaded (chan_sip on Asterisk 21+, say): nothing to learn


class _Asker:
    def __init__(self, link: AmiLink) -> None:
        self.link = link
        self.refused: list[str] = []
        self.missing: list[str] = []

    async def ask(self, fields: Mapping[str, str]) -> list[Mapping[str, str]] | None:
        """The answer's messages, or None (refused, unknown, no answer: noted)."""
        action = fields["Action"]
        try:
            answer: Any = await self.link.send_action(dict(fields), within=10)
        except TimeoutError:
            log.warning("PBX %s: no answer to %s within 10 s", self.link.pbx.name, action)
            return None
        messages: list[Mapping[str, str]] = answer if isinstance(answer, list) else [answer]
        if messages and messages[0].get("Response") == "Error":
            message = messages[0].get("Message", "")
            noted = self.missing if message.startswith("Invalid/unknown command") else None
            if message == PERMISSION_DENIED:
                noted = self.refused
            if noted is not None and action not in noted:
                noted.append(action)
            return None
        return messages


def _events(messages: Iterable[Mapping[str, str]] | None, event: str) -> list[Mapping[str, str]]:
    return [m for m in messages or () if m.get("Event") == event]


def pjsip_kind(
    listed: Mapping[str, str], details: list[Mapping[str, str]] | None, registered: set[str], rules: ChannelRules
) -> Kind | None:
    """One PJSIP endpoint: `EndpointList` (and its `PJSIPShowEndpoint` events when asked); None: cannot tell."""
    name = listed.get("ObjectName", "")
    if name in registered:  # an outbound registration names it: a provider
        return TRUNK
    detail = next(iter(_events(details, "EndpointDetail")), None)
    context = detail.get("Context", "") if detail is not None else ""
    if rules.is_trunk_context(context) or context_matches(context, DEFAULT_TRUNK_CONTEXTS):
        return TRUNK
    if context_matches(context, DEFAULT_PHONE_CONTEXTS) or rules.is_internal_number(name):
        return PHONE
    if listed.get("OutboundAuths") and not listed.get("Auths"):  # authenticates to the far end only
        return TRUNK
    if detail is None:
        return None
    if _events(details, "IdentifyDetail") or detail.get("FromDomain"):  # matched by address, or a provider's domain
        return TRUNK
    return PHONE


def peer_kind(peer: Mapping[str, str], rules: ChannelRules) -> Kind:
    """A chan_sip `SIPpeers` or chan_iax2 `IAXpeerlist` `PeerEntry`: a static host (or an IAX2 trunk) is a provider."""
    if peer.get("Trunk", "").lower() == "yes":
        return TRUNK
    if rules.is_internal_number(peer.get("ObjectName", "")):
        return PHONE
    return TRUNK if peer.get("Dynamic", "").lower() == "no" else PHONE


async def learn_endpoints(link: AmiLink, rules: ChannelRules) -> Learned:
    """Ask the PBX which of its endpoints are trunks and which are phones (at connect and after a `Reload`)."""
    asker = _Asker(link)
    kinds: dict[str, Kind] = {}
    listing = _events(await asker.ask({"Action": "PJSIPShowEndpoints"}), "EndpointList")
    if listing:
        registrations = await asker.ask({"Action": "PJSIPShowRegistrationsOutbound"})
        registered = {m.get("Endpoint", "") for m in _events(registrations, "OutboundRegistrationDetail")} - {""}
        asked = 0
        for listed in listing:
            name = listed.get("ObjectName", "")
            details = None
            wanted = name and name not in registered and not rules.is_internal_number(name)
            if wanted and asked < DETAIL_MAX and "PJSIPShowEndpoint" not in asker.refused:
                asked += 1
                details = await asker.ask({"Action": "PJSIPShowEndpoint", "Endpoint": name})
            kind = pjsip_kind(listed, details, registered, rules)
            if name and kind is not None:
                kinds[f"PJSIP/{name}"] = kind
    for action, tech in (("SIPpeers", "SIP"), ("IAXpeerlist", "IAX2")):
        for peer in _events(await asker.ask({"Action": action}), "PeerEntry"):
            if peer.get("ObjectName"):
                kinds[f"{tech}/{peer['ObjectName']}"] = peer_kind(peer, rules)
    return Learned(Endpoints(kinds), tuple(asker.refused), tuple(asker.missing))
