"""Click-to-call: one AMI `Originate` that rings the manager's extension, then dials the number.

The action goes out once on the enterprise's PBX link with `Async: true`, so Asterisk answers at once
("Originate successfully queued") and the call proceeds on its own. A link that is down fails at once
with `AmiNotConnected`; nothing is queued for later, and the link never re-sends an action.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agent.config.sections import PbxSection
from agent.ingest.link import AmiNotConnected
from agent.ingest.pipeline import PbxPipeline

log = logging.getLogger(__name__)

RING_TIMEOUT_MS = 30_000  # how long the manager's phone rings before Asterisk gives up
ANSWER_WITHIN_S = 5.0  # Asterisk answers an Async Originate at once; this only bounds a stuck link


class NoPbx(LookupError):
    """No [[pbx]] in agent.toml serves this enterprise."""


class OriginateRefused(Exception):
    """Asterisk answered the action with an error (e.g. the AMI user lacks the `originate` right)."""


def originate_fields(pbx: PbxSection, extension: str, phone: str, caller_id: str | None) -> dict[str, str]:
    """The action: `Channel` is the manager's phone, then `phone` is dialled in the outbound context.

    The manager's phone shows the number being called as the caller name; the number presented is
    `caller_id` (the CRM's externalPhone) when given, else the extension (the dialplan's outbound route
    then picks the trunk caller ID as for any call from that extension).
    """
    return {
        "Action": "Originate",
        "Channel": pbx.originate_channel.replace("{extension}", extension),
        "Context": pbx.originate_context,
        "Exten": phone,
        "Priority": "1",
        "CallerID": f'"{phone}" <{caller_id or extension}>',
        "Timeout": str(RING_TIMEOUT_MS),
        "Async": "true",
    }


class Originator:
    """Holds the agent's PBX pipelines (filled as they start) and originates on the right one."""

    def __init__(self, pbx: tuple[PbxSection, ...], pipelines: Mapping[str, PbxPipeline]) -> None:
        self.pbx = pbx
        self.pipelines = pipelines

    def apply(self, pbx: tuple[PbxSection, ...]) -> None:
        """Reload: originate by the new `[[pbx]]` tables (the pipelines follow through the same mapping)."""
        self.pbx = pbx

    def _pipelines_for(self, enterprise: str) -> list[PbxPipeline]:
        names = [p.name for p in self.pbx if p.enterprise == enterprise]
        if not names:
            raise NoPbx(f"no PBX is configured for enterprise {enterprise}")
        return [self.pipelines[n] for n in names if n in self.pipelines]

    async def click_to_call(self, enterprise: str, extension: str, phone: str, caller_id: str | None = None) -> str:
        """Send the Originate once; return Asterisk's message. Raises NoPbx, AmiNotConnected, OriginateRefused."""
        pipelines = self._pipelines_for(enterprise)
        # several PBXes of one enterprise: the first whose link is up
        live = next((p for p in pipelines if p.link.connected.is_set()), None)
        if live is None:
            raise AmiNotConnected(f"the PBX link of enterprise {enterprise} is down")
        fields = originate_fields(live.pbx, extension, phone, caller_id)
        answer: Any = await live.link.send_action(fields, within=ANSWER_WITHIN_S)
        message = str(answer.get("Message") or "") if hasattr(answer, "get") else ""
        if not hasattr(answer, "get") or answer.get("Response") != "Success":
            raise OriginateRefused(message or "Asterisk refused the Originate")
        log.info("click-to-call on %s: %s -> %s (%s)", live.pbx.name, fields["Channel"], phone, message)
        return message
