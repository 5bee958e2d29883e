"""States are drawn with CSS and inline SVG, never emoji: a stock Debian Chromium (no colour emoji font) shows
those as empty boxes. Every template and both catalogues are checked, so a new emoji fails here."""

from __future__ import annotations

import re
from pathlib import Path

import admin

EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")
ROOT = Path(admin.__file__).parent


def test_no_emoji_in_templates_catalogues_or_scripts() -> None:
    files = [*ROOT.glob("templates/*.html"), *ROOT.glob("i18n/*.json"), *ROOT.glob("static/*.js"), *ROOT.glob("*.py")]
    assert len(files) > 20
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if EMOJI.search(line)
    ]
    assert found == []
