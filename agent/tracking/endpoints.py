"""Trunk or phone: what the PBX says about its endpoints, and the contexts distributions generate.

A channel's endpoint decides whether it is a trunk or a phone; the caller ID only when the endpoint
cannot (see `ChannelRules.identity`). What the agent learns over AMI at connect and after a `Reload`
(agent.ingest.discovery) arrives here as an `Endpoints` value: `"PJSIP/provider"` → `trunk`, and so on.

Without it, the contexts the common distributions generate with no configuration still tell:

- FreePBX and Issabel put trunks in `from-trunk` or `from-pstn` (and `from-trunk-<tech>-<name>`,
  `from-pstn-…` variants; DAHDI spans in `from-digital`, analogue FXO ports in `from-analog`: a DAHDI
  channel's name, `DAHDI/i1/<number>-1` or `DAHDI/1-1`, names no endpoint), phones in `from-internal`;
  their ring groups, queues and follow-me dial members through Local channels in `from-internal`,
  `macro-dial-one`, `macro-dial` and `from-queue`.
- A plain Asterisk set up after the sample configuration uses `from-internal` for phones too.

The operator's `trunk_contexts` in agent.toml come first and override all of this.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["trunk", "phone"]
TRUNK: Kind = "trunk"
PHONE: Kind = "phone"

# fnmatch patterns, matched against a channel's dialplan context
DEFAULT_TRUNK_CONTEXTS: tuple[str, ...] = (
    "from-trunk",
    "from-trunk-*",
    "from-pstn",
    "from-pstn-*",
    "from-digital",
    "from-analog",
)
DEFAULT_PHONE_CONTEXTS: tuple[str, ...] = (
    "from-internal",
    "from-internal-*",
    "macro-dial-one",
    "macro-dial",
    "from-queue",
    "from-queue-*",
)
# channel technologies whose channel name is `<tech>/<endpoint>-<sequence>`
ENDPOINT_TECHS: frozenset[str] = frozenset({"PJSIP", "SIP", "IAX2"})


def endpoint_of(channel: str | None) -> str | None:
    """`PJSIP/provider-0000002a` → `PJSIP/provider`; None for Local and other channels."""
    if not channel:
        return None
    tech, sep, rest = channel.partition("/")
    if not sep or tech not in ENDPOINT_TECHS:
        return None
    name, dash, _ = rest.rpartition("-")
    return f"{tech}/{name}" if dash and name else None


def context_matches(context: str | None, patterns: tuple[str, ...]) -> bool:
    return bool(context) and any(fnmatch.fnmatchcase(context or "", p) for p in patterns)


@dataclass(frozen=True)
class Endpoints:
    """The PBX's endpoints by `<tech>/<name>`, as learned over AMI (empty until then)."""

    kinds: Mapping[str, Kind] = field(default_factory=dict)

    def kind_of(self, channel: str | None) -> Kind | None:
        endpoint = endpoint_of(channel)
        return self.kinds.get(endpoint) if endpoint is not None else None

    def trunks(self) -> list[str]:
        return sorted(name for name, kind in self.kinds.items() if kind == TRUNK)

    def phones(self) -> list[str]:
        return sorted(name for name, kind in self.kinds.items() if kind == PHONE)


NO_ENDPOINTS = Endpoints()
