"""The enterprise's extensions as the PBX knows them: hints (`ExtensionStateList`) and PJSIP endpoints
(`PJSIPShowEndpoints`), filtered by the PBX's internal-number rule, merged into `user_internal_phones`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from agent.ingest.link import AmiLink, AmiNotConnected
from agent.store.extensions import Extension
from agent.tracking.channels import ChannelRules

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
