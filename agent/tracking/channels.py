"""Per-PBX rules that say which channels are internal phones and which numbers are extensions.

All fields are plain strings / tuples of strings so that a `[[pbx]]` config section maps onto
them one to one. Defaults live here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

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
      their caller ID says (protects against a provider sending a short caller ID).
    - `region`: ISO country code used to normalise external numbers to E.164 (None: only
      numbers already in international form are normalised).
    """

    phone_channels: tuple[str, ...] = DEFAULT_PHONE_CHANNELS
    internal_number: str = DEFAULT_INTERNAL_NUMBER
    trunk_contexts: tuple[str, ...] = ()
    region: str | None = None
    _cache: dict[str, str | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def _phone_res(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p) for p in self.phone_channels)

    @cached_property
    def _internal_re(self) -> re.Pattern[str]:
        return re.compile(self.internal_number)

    def is_internal_number(self, number: str | None) -> bool:
        return bool(number) and self._internal_re.match(number or "") is not None

    def phone_extension(self, channel: str | None) -> str | None:
        """The extension of an internal phone channel, or None for anything else."""
        if not channel:
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
        return bool(context) and context in self.trunk_contexts
