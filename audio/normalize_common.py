"""What the normaliser's rule modules share: the rule type and how a reading is spliced in."""

from __future__ import annotations

import re
from collections.abc import Callable

Rule = Callable[[str], str]


def say(match: re.Match[str], words: str, tail: str = "") -> str:
    """`words` (then `tail`) for `match`, spaced where they would touch a letter or digit."""
    text, start, end = match.string, match.start(), match.end()
    before = " " if start > 0 and text[start - 1].isalnum() else ""
    after = " " if end < len(text) and text[end].isalnum() else ""
    return f"{before}{words}{tail}{after}"


def sub(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]) -> Rule:
    return lambda text: pattern.sub(replace, text)
