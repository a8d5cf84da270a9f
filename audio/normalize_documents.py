"""Numbers of official documents: "Nghị định 100/2019/NĐ-CP", "Quyết định số 123/QĐ-UBND".

Read as a commune announcer reads them out in full: the number as a number (leading zeros
dropped: "số 01" is "số một"), the year as a number, each "/" as "trên", and the codes after
the last slash expanded one by one (the operator's abbreviations, then DOCUMENT_CODES, then
the built-in abbreviations; an unknown code is left for the engine to spell), their dashes
becoming spaces:
"một trăm trên hai nghìn không trăm mười chín trên nghị định chính phủ".
A number with codes is a document number wherever it stands; "12/2024" is one only after a
document word ("Nghị định 12/2024"), else it is a month and a year.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from audio.normalize_common import Rule, say
from audio.vi_numbers import read_number

# After a legal instrument "12/2024" is its number; after a plainer document word only with
# "số" ("Báo cáo 11/2024" may be the report for November).
_LEGAL_WORD = r"(?i:quyết định|nghị định|nghị quyết|thông tư|chỉ thị|luật|pháp lệnh)"
_DOCUMENT_WORD = r"(?i:kế hoạch|thông báo|công văn|hướng dẫn|tờ trình|báo cáo|văn bản)"
# A code is capitals (Đ included), "TTg" (the Prime Minister) or "TTr" (a submission), and may
# end in digits ("QH14").
_CODE = r"(?:TTg|TTr|[A-ZĐ]{1,10})[0-9]{0,3}"
_DOCUMENT = re.compile(
    rf"(?<![\w/.,-])(?P<kind>{_LEGAL_WORD}\s+(?:(?i:số)\s+)?|{_DOCUMENT_WORD}\s+(?i:số)\s+)?"
    r"(?P<number>[0-9]{1,6})(?:/(?P<year>(?:19|20)[0-9]{2}))?"
    rf"(?:/(?P<codes>{_CODE}(?:[-\u2013]{_CODE})*))?(?![\w/-])"
)
_CODE_PARTS = re.compile(r"(?P<letters>[^\W\d_]+)(?P<digits>[0-9]*)")


def _read_code(code: str, codes: Mapping[str, str]) -> str:
    parts = _CODE_PARTS.fullmatch(code)
    if parts is None:  # the pattern only lets letters-then-digits through
        return code
    letters, digits = parts["letters"], parts["digits"]
    words = codes.get(letters, letters)
    if not digits:
        return words
    # "QH14": the number after the National Assembly is its term ("khóa").
    term = " khóa" if letters == "QH" else ""
    return f"{words}{term} {read_number(int(digits))}"


@lru_cache(maxsize=16)
def document_rule(items: tuple[tuple[str, str], ...]) -> Rule:
    """The rule reading document numbers, with `items` as the code dictionary."""
    codes = dict(items)

    def read(match: re.Match[str]) -> str:
        kind, year, written_codes = match["kind"], match["year"], match["codes"]
        if written_codes is None and (kind is None or year is None):
            return match.group()
        words = [read_number(int(match["number"]))]
        if year:
            words.append(read_number(int(year)))
        if written_codes:
            spoken = (_read_code(code, codes) for code in re.split(r"[-\u2013]", written_codes))
            words.append(" ".join(spoken))
        return say(match, f"{kind or ''}{' trên '.join(words)}")

    return lambda text: _DOCUMENT.sub(read, text)
