"""Per-PBX rules that say which channels are internal phones and which numbers are extensions.

All fields are plain strings / tuples of strings so that a `[[pbx]]` config section maps onto
them one to one. Defaults live here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from agent.tracking.endpoints import (
    DEFAULT_TRUNK_CONTEXTS,
    NO_ENDPOINTS,
    PHONE,
    TRUNK,
    Endpoints,
    context_matches,
)

DEFAULT_PHONE_CHANNELS: tuple[str, ...] = (
    r"^(?:PJSIP|SIP|IAX2)/(?P<ext>[^/@;-]+)-[0-9a-fA-F]+$",
    r"^Local/(?P<ext>[^/@;]+)@[^/;]+-[0-9a-fA-F]+;[12]$",
)
DEFAULT_INTERNAL_NUMBER = r"^\d{2,5}$"


@dataclass(frozen=True)
class ChannelRules:
    """How to read channel names and numbers of one PBX.

    - `phone_channels`: regexes for channels of internal phones; the named group `ext` is the
      extension. A match only counts when `ext` also matches `internal_number`, so
      `PJSIP/provider-…` or `Local/+375…@from-trunk-…` are not phones.
    - `internal_number`: what an extension looks like (caller IDs are checked against it).
    - `trunk_contexts`: dialplan contexts whose channels are always external parties, whatever
      their endpoint or caller ID says (the operator's override; exact names).
    - `recording_variables`: dialplan variables whose value is the path of the call's recording
      (besides MIXMONITOR_FILENAME and FreePBX's, agent.tracking.recording).
    - `endpoints`: the PBX's trunks and phones as learned over AMI (agent.tracking.endpoints).
    - `region`: ISO country code used to normalise external numbers to E.164 (None: only
      numbers already in international form are normalised).
    """

    phone_channels: tuple[str, ...] = DEFAULT_PHONE_CHANNELS
    internal_number: str = DEFAULT_INTERNAL_NUMBER
    trunk_contexts: tuple[str, ...] = ()
    region: str | None = None
    recording_variables: tuple[str, ...] = ()
    endpoints: Endpoints = NO_ENDPOINTS
    _cache: dict[str, str | None] = field(default_factory=dict, init=False, repr=False, compare=False)
    _contexts: dict[str, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def _phone_res(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p) for p in self.phone_channels)

    @cached_property
    def _internal_re(self) -> re.Pattern[str]:
        return re.compile(self.internal_number)

    def is_internal_number(self, number: str | None) -> bool:
        return bool(number) and self._internal_re.match(number or "") is not None

    def phone_extension(self, channel: str | None) -> str | None:
        """The extension of an internal phone channel, or None for anything else (a learned trunk too)."""
        if not channel:
            return None
        if self.endpoints.kind_of(channel) == TRUNK:
            return None
        cache = self._cache
        if channel in cache:
            return cache[channel]
        ext: str | None = None
        for rx in self._phone_res:
            m = rx.match(channel)
            if m is not None:
                candidate = m.group("ext")
                if self.is_internal_number(candidate):
                    ext = candidate
                    break
        if len(cache) > 4096:
            cache.clear()
        cache[channel] = ext
        return ext

    def is_trunk_context(self, context: str | None) -> bool:
        """The operator's `trunk_contexts` (exact names)."""
        return bool(context) and context in self.trunk_contexts

    def _trunk_context(self, context: str | None) -> bool:
        """The operator's `trunk_contexts` or one a distribution generates for trunks (`from-pstn`, …)."""
        if not context:
            return False
        cache = self._contexts
        trunk = cache.get(context)
        if trunk is None:
            trunk = context in self.trunk_contexts or context_matches(context, DEFAULT_TRUNK_CONTEXTS)
            if len(cache) > 1024:
                cache.clear()
            cache[context] = trunk
        return trunk

    def dialled_extension(self, channel: str | None, context: str | None) -> str | None:
        """The extension of a *dialled* channel (`DestChannel`, with `DestContext`): a channel that Asterisk
        made for an endpoint carries the endpoint's context, so one in a trunk context (`PJSIP/7001-…` in
        `from-pstn`) is a trunk however it is named, unless the PBX said it is a phone. A Local channel's
        context is its target's, which says nothing about the endpoint."""
        ext = self.phone_extension(channel)
        if ext is None or channel is None or channel.startswith("Local/") or not self._trunk_context(context):
            return ext
        return ext if self.endpoints.kind_of(channel) == PHONE else None

    def identity(self, channel: str, cid: str | None, context: str | None) -> str | None:
        """The extension behind a *calling* channel, or None for an external party.

        The endpoint decides, the caller ID only when the endpoint cannot:
        1. the operator's `trunk_contexts`, then what the PBX said about the endpoint (a learned trunk);
        2. a Local channel's name names its target, not its source (`Local/151@from-internal` is 150
           calling 151), so there the caller ID comes first, unless the context is a trunk's;
        3. a trunk context a distribution generates (`from-trunk`, `from-pstn`) is a trunk, even when the
           endpoint is named like an extension (`PJSIP/7001-…`: a provider's account number), unless the PBX
           said it is a phone: an endpoint's channel starts in the endpoint's context;
        4. a channel named after an extension (`PJSIP/150-…`) is that phone;
        5. otherwise (`PJSIP/alice-…`, a learned phone or an endpoint nothing is known of): its caller
           ID, when that looks like an extension.
        """
        if self.is_trunk_context(context):
            return None
        kind = self.endpoints.kind_of(channel)
        if kind == TRUNK:
            return None
        trunk_context = context_matches(context, DEFAULT_TRUNK_CONTEXTS)
        if channel.startswith("Local/"):
            if trunk_context:
                return None
            return cid if cid and self.is_internal_number(cid) else self.phone_extension(channel)
        if trunk_context and kind != PHONE:
            return None
        ext = self.phone_extension(channel)
        if ext is not None:
            return ext
        return cid if cid and self.is_internal_number(cid) else None
