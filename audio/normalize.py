"""Written Vietnamese -> what should be said: the text normaliser in front of every TTS engine.

gTTS, espeak-ng and Piper misread dates, times, Vietnamese number separators and
abbreviations. `normalize` rewrites them as Vietnamese words and leaves everything else
(words, punctuation that makes pauses, line breaks) alone. It is pure and never raises.
Number words are in audio.vi_numbers, the dictionaries in audio.abbreviations; the golden
table in tests/test_normalize.py is the spec. Choices made here:
- Days 1-10 take "mùng" ("ngày mùng hai tháng chín"). A day/month without a year is a date
  only with a slash ("30/4"), and not in "2/3 số hộ" (a fraction) or "số nhà 15/7".
- Dotted numbers that do not group thousands ("3.5", "4.0") are sections, read with "chấm".
- Phone numbers are read digit by digit with a pause between groups.
- Roman numerals (I, V, X only) only after a heading word (Quý, Chương, Đại hội, thế kỷ,
  ...) or at the start of a heading line ("II. "): "hạng C" or "Văn X" stay letters.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache

from audio.abbreviations import (
    DEFAULT_ABBREVIATIONS,
    GLUED_UNIT_WORDS,
    STANDALONE_UNITS,
    UNIT_WORDS,
)
from audio.vi_numbers import (
    read_clock,
    read_date,
    read_day,
    read_integer,
    read_month,
    read_number,
    read_ordinal,
    read_phone_number,
    read_written_number,
    roman_value,
)

Rule = Callable[[str], str]


def _say(match: re.Match[str], words: str, tail: str = "") -> str:
    """`words` (then `tail`) for `match`, spaced where they would touch a letter or digit."""
    text, start, end = match.string, match.start(), match.end()
    before = " " if start > 0 and text[start - 1].isalnum() else ""
    after = " " if end < len(text) and text[end].isalnum() else ""
    return f"{before}{words}{tail}{after}"


# --- text hygiene -------------------------------------------------------------------------

_DROPPED_CATEGORIES = frozenset({"Cf", "Cs"})  # soft hyphens, zero-width joiners, lone surrogates


def _clean_char(char: str) -> str:
    if char == "\n":
        return char
    category = unicodedata.category(char)
    if category in _DROPPED_CATEGORIES:
        return ""
    if category in {"Zl", "Zp"}:
        return "\n"
    # Control characters (NUL, tab, ...) and exotic spaces become plain spaces.
    return " " if category in {"Cc", "Zs"} else char


def _prepare(text: str) -> str:
    # Some keyboards send NFD (base letter + combining marks); every pattern here is NFC.
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n")
    return "".join(_clean_char(char) for char in text.replace("\r", "\n"))


def _tidy(text: str) -> str:
    # Runs of spaces become one; blank lines go (a line break already makes the pause).
    lines = (line.split() for line in text.split("\n"))
    return "\n".join(" ".join(words) for words in lines if words)


# --- Roman numerals, roads, abbreviations ---------------------------------------------------

# Only I, V and X: Roman numerals in announcements are small (Quý IV, Đại hội XIII, thế kỷ
# XXI), and C, D, L, M are too often letters ("hạng C", "loại D").
_ROMAN = r"(?=[IVX])X{0,3}(?:IX|IV|V?I{0,3})"
_ROMAN_CONTEXT = re.compile(
    r"(?<!\w)(?P<ctx>(?i:quý|chương|phần|mục|đại hội|thế kỷ|thế kỉ|khóa|khoá|tập|bài|hạng|loại"
    r"|cấp|học kỳ|học kì|giai đoạn|đợt|phụ lục|thứ)\s+)"
    rf"(?P<roman>{_ROMAN})(?:/(?P<year>[0-9]{{4}}))?(?!\w)"
)
_ROMAN_HEADING = re.compile(
    rf"^(?P<indent>[ \t]*)(?P<roman>{_ROMAN})(?P<sep>[.):]|[ \t]+[-\u2013])(?=[ \t])", re.MULTILINE
)


def _roman_in_context(match: re.Match[str]) -> str:
    context, value = match["ctx"], roman_value(match["roman"])
    # "Kỳ họp thứ V" is an ordinal ("thứ năm"), "lần thứ I" is "thứ nhất".
    words = read_ordinal(value) if context.strip().lower() == "thứ" else read_number(value)
    year = f" năm {match['year']}" if match["year"] else ""
    return _say(match, f"{context}{words}{year}")


def _roman_heading(match: re.Match[str]) -> str:
    return f"{match['indent']}{read_number(roman_value(match['roman']))}{match['sep']}"


_ROADS = {"QL": "quốc lộ", "ĐT": "đường tỉnh", "TL": "tỉnh lộ", "ĐH": "đường huyện"}
# "ĐT 605" is a provincial road; "ĐT: 0912..." is a phone (a road number never starts with 0).
_ROAD = re.compile(r"(?<!\w)(?P<road>QL|ĐT|TL|ĐH)\.?[ ]?(?P<number>[1-9][0-9]{0,2}[A-Z]?)(?!\w)")


def _road(match: re.Match[str]) -> str:
    return _say(match, f"{_ROADS[match['road']]} {match['number']}")


def _is_all_caps(key: str) -> bool:
    return key == key.upper()


@lru_cache(maxsize=16)
def _abbreviation_rule(items: tuple[tuple[str, str], ...]) -> Rule:
    exact = {key: words for key, words in items if _is_all_caps(key)}
    folded = {key.casefold(): words for key, words in items if not _is_all_caps(key)}
    # Longest first, so that "PCTT-TKCN" wins over "PCTT" and "GD-ĐT" over "ĐT".
    keys = sorted((key for key, _ in items if key), key=len, reverse=True)
    if not keys:
        return lambda text: text
    alternatives = (re.escape(k) if _is_all_caps(k) else f"(?i:{re.escape(k)})" for k in keys)
    pattern = re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)")

    def expand(match: re.Match[str]) -> str:
        written = match.group()
        words = exact.get(written, folded.get(written.casefold(), written))
        return _say(match, words)

    return lambda text: pattern.sub(expand, text)


# --- phone numbers ----------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w+.,/-])(?:"
    r"\+84[ .-]?[1-9][0-9]{1,3}(?:[ .-]?[0-9]{2,4}){1,3}"
    r"|\(0[0-9]{2,3}\)[ ]?[0-9]{2,4}(?:[ .-]?[0-9]{2,4}){1,2}"
    r"|0[1-9][0-9]{1,3}(?:[ .-]?[0-9]{2,4}){1,3}"
    r"|1[89]00[ .-]?[0-9]{2,4}(?:[ .-]?[0-9]{2,4})?"
    r")(?![\w]|[.,-][0-9])"
)


def _phone(match: re.Match[str]) -> str:
    written = match.group()
    # The pattern may have swallowed a following number ("0912345678 20 lần"): drop
    # written groups from the end until what is left is a phone number.
    ends = [group.end() for group in re.finditer(r"[0-9]+", written)]
    for end in reversed(ends):
        spoken = read_phone_number(written[:end])
        if spoken is not None:
            return _say(match, spoken, tail=written[end:])
    return written


# --- dates ------------------------------------------------------------------------------------

_DATE_CONTEXT = r"(?i:ngày|mùng|mồng|từ|đến|tới|hôm|sáng|trưa|chiều|tối|đêm|trước|sau|hạn)"
_DATE = re.compile(
    rf"(?<!\w)(?:(?P<ctx>{_DATE_CONTEXT})\s+)?"
    r"(?:(?P<d0>[0-9]{1,2})\s*[-\u2013]\s*)?"
    r"(?P<d1>[0-9]{1,2})(?P<s1>[/.-])(?P<m1>[0-9]{1,2})(?:(?P=s1)(?P<y1>[0-9]{4}))?"
    r"(?:\s*[-\u2013]\s*"
    r"(?P<d2>[0-9]{1,2})(?P<s2>[/.-])(?P<m2>[0-9]{1,2})(?:(?P=s2)(?P<y2>[0-9]{4}))?)?"
    r"(?![0-9]|[/.,-][0-9])"
)
# "2/3 số hộ" is two thirds, not the second of March; "số nhà 15/7" is an address.
_FRACTION_NOUN = re.compile(r"\s+(?:số|diện tích|dân số|tổng|của)(?!\w)")
_ADDRESS_WORD = re.compile(r"(?<!\w)(?i:nhà|số|ngõ|ngách|hẻm|kiệt)\s+$")
_MONTH_YEAR = re.compile(
    r"(?<!\w)(?P<ctx>(?i:tháng|quý)\s+)(?P<n>[0-9]{1,2})[/-](?P<year>[0-9]{4})(?![0-9])"
)


def _valid_date(day: int, month: int, year: str | None) -> bool:
    if not 1 <= month <= 12:
        return False
    # Without a year, 29/2 is allowed (2000 is a leap year): it exists in some year.
    return 1 <= day <= calendar.monthrange(int(year) if year else 2000, month)[1]


def _date_is_valid(match: re.Match[str], which: str) -> bool:
    day, sep, month, year = (match[f"{part}{which}"] for part in ("d", "s", "m", "y"))
    # Without a year only the slash makes a date: "3.5" is a section, "5-7" a range.
    return (year is not None or sep == "/") and _valid_date(int(day), int(month), year)


def _date_is_meant(match: re.Match[str]) -> bool:
    d0, d1 = match["d0"], match["d1"]
    if not _date_is_valid(match, "1") or (d0 and not 1 <= int(d0) < int(d1)):
        return False
    if match["ctx"] or d0 or match["y1"] or match["d2"]:
        return True
    if _FRACTION_NOUN.match(match.string, match.end()):
        return False
    if _ADDRESS_WORD.search(match.string, max(0, match.start() - 8), match.start()):
        return False
    # "trực 24/7" is around the clock, left to the ratio rule.
    return (d1, match["m1"]) != ("24", "7")


def _first_date(match: re.Match[str]) -> str:
    ctx = match["ctx"]
    said_mung = ctx is not None and ctx.lower() in {"mùng", "mồng"}
    read = read_number if said_mung else read_day
    lead = f"{ctx} " if ctx else ""
    if not said_mung and (ctx is None or ctx.lower() != "ngày"):
        lead += "ngày "
    days = read(int(match["d1"]))
    if match["d0"]:
        days = f"{read(int(match['d0']))} đến {days}"
    return lead + read_date(days, int(match["m1"]), match["y1"])


def _date(match: re.Match[str]) -> str:
    if not _date_is_meant(match):
        return match.group()
    words = _first_date(match)
    if match["d2"] is None:
        return _say(match, words)
    if not _date_is_valid(match, "2"):
        # Keep a malformed second half as written; the number rules read it later.
        end = match.end("y1") if match["y1"] else match.end("m1")
        return _say(match, words, tail=match.string[end : match.end()])
    second = read_date(read_day(int(match["d2"])), int(match["m2"]), match["y2"])
    return _say(match, f"{words} đến ngày {second}")


def _month_year(match: re.Match[str]) -> str:
    ctx, number = match["ctx"], int(match["n"])
    is_month = ctx.strip().lower() == "tháng"
    if not 1 <= number <= (12 if is_month else 4):
        return match.group()
    words = read_month(number) if is_month else read_number(number)
    return _say(match, f"{ctx}{words} năm {read_integer(match['year'])}")


# --- "per", ranges, times -------------------------------------------------------------------

# "25.000đ/người" is "hai mươi lăm nghìn đồng một người": after a quantity, a slash before a
# counted thing means "per", said "một". "ngày/tháng/năm sinh" (no number) is left alone.
_PER = re.compile(
    r"(?P<left>(?<![\w.,])[0-9][0-9.,]*\s*(?:[^\W\d_]+|%)(?:\s[^\W\d_]+)?)/"
    r"(?P<per>người|hộ|khẩu|suất|lượt|lần|con|chiếc|xe|ngày|tuần|tháng|năm|giờ|buổi|ca"
    r"|kg|tấn|ha|sào|lít)(?!\w)"
)
# A dash between two quantities is "đến": "5-7 ngày", "7h-11h", "25-30°C", "2021-2025".
_RANGE = re.compile(
    r"(?:(?<=[0-9])|(?<=[0-9][h%'đgm])|(?<=[0-9](?:km|kg|ha|°C)))\s*[-\u2013]\s*(?=[0-9])"
)
_TIME_GLUED = re.compile(
    r"(?<![\w.,:/])(?P<h>[0-9]{1,3})(?:h|g(?=[0-9]))(?P<m>[0-9]{1,2})?(?:\s?phút|ph|p|')?(?!\w)"
)
# After "giờ", one digit is minutes only with "phút": "24 giờ 2 lần" has no minutes.
_TIME_WORD = re.compile(
    r"(?<![\w.,:])(?P<h>[0-9]{1,3})\s*giờ"
    r"(?:\s*(?:(?P<m>[0-9]{1,2})\s*phút|(?P<mm>[0-9]{2}))(?!\w))?(?!\w)"
)
_TIME_COLON = re.compile(
    r"(?<![\w.,:])(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})(?::(?P<s>[0-9]{2}))?(?![\w:]|[.,][0-9])"
)


def _time(match: re.Match[str]) -> str:
    groups = match.groupdict()
    minutes = int(groups.get("m") or groups.get("mm") or 0)
    seconds = int(groups.get("s") or 0)
    hours = int(match["h"])
    # Durations may pass 24 ("48h"); a clock written with a colon may not.
    if minutes > 59 or seconds > 59 or (match.re is _TIME_COLON and hours > 24):
        return match.group()
    return _say(match, read_clock(hours, minutes, seconds))


# --- ordinals, day and month words ----------------------------------------------------------

_COUNTED = re.compile(r"(?<!\w)(?P<word>(?i:ngày|tháng))\s+(?P<n>[0-9]{1,3})(?!\w|[.,:/-]?[0-9])")
# "thứ 2, 4, 6" is "thứ hai, tư, sáu": every number of the list is an ordinal.
_ORDINALS = re.compile(
    r"(?<!\w)(?P<word>(?i:thứ))\s+"
    r"(?P<list>[0-9]{1,3}(?:\s*(?:,|và|hoặc|đến)\s*[0-9]{1,3})*)(?!\w|[.,:/-]?[0-9])"
)


def _ordinals(match: re.Match[str]) -> str:
    # "thứ 2" is "thứ hai", "thứ 1" "thứ nhất", "thứ 4" "thứ tư".
    spoken = re.sub(r"[0-9]+", lambda number: read_ordinal(int(number.group())), match["list"])
    return _say(match, f"{match['word']} {spoken}")


def _counted(match: re.Match[str]) -> str:
    word, number = match["word"], int(match["n"])
    kind = word.lower()
    if kind == "ngày" and 1 <= number <= 31:
        spoken = read_day(number)
    elif kind == "tháng" and 1 <= number <= 12:
        spoken = read_month(number)
    else:
        spoken = read_integer(match["n"])
    return _say(match, f"{word} {spoken}")


# --- units, money, fractions, plain numbers ---------------------------------------------------


def _alternatives(keys: tuple[str, ...] | list[str]) -> str:
    return "|".join(re.escape(key) for key in sorted(keys, key=len, reverse=True))


_NUMBER = r"[0-9]+(?:[.,][0-9]+)*"
_UNIT = re.compile(
    rf"(?<![\w.,])(?P<neg>-)?(?P<num>{_NUMBER})"
    rf"(?:(?P<glued>{_alternatives(list(GLUED_UNIT_WORDS))})"
    rf"|\s?(?P<unit>{_alternatives(list(UNIT_WORDS))}))(?!\w)"
)
_STANDALONE_UNIT = re.compile(rf"(?<![\w°])(?:{_alternatives(STANDALONE_UNITS)})(?!\w)")
_RATIO = re.compile(r"(?<![\w.,/])(?P<a>[0-9]{1,9})/(?P<b>[0-9]{1,9})(?P<h>h)?(?![\w/]|[.,][0-9])")
_NUMERAL = re.compile(rf"(?<![0-9]){_NUMBER}")


def _unit(match: re.Match[str]) -> str:
    unit = match["unit"]
    words = GLUED_UNIT_WORDS[match["glued"]] if match["glued"] else UNIT_WORDS[unit]
    sign = ""
    if match["neg"]:
        # Only a temperature is read as negative; elsewhere the dash is a bullet or a pause.
        sign = "âm " if unit in {"°C", "\u00baC", "độ C", "°"} else "-"
    return _say(match, f"{sign}{read_written_number(match['num'])} {words}")


def _standalone_unit(match: re.Match[str]) -> str:
    return _say(match, UNIT_WORDS[match.group()])


def _ratio(match: re.Match[str]) -> str:
    a, b = int(match["a"]), int(match["b"])
    # Small proper fractions are said with "phần" ("ba phần tư"); the rest, and addresses
    # ("ngõ 3/4"), with "trên".
    address = _ADDRESS_WORD.search(match.string, max(0, match.start() - 8), match.start())
    if match["h"] is None and 1 <= a < b <= 10 and not address:
        words = f"{read_number(a)} phần {read_month(b)}"
    else:
        words = f"{read_integer(match['a'])} trên {read_integer(match['b'])}"
    return _say(match, f"{words} giờ" if match["h"] else words)


def _numeral(match: re.Match[str]) -> str:
    return _say(match, read_written_number(match.group()))


def _sub(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]) -> Rule:
    return lambda text: pattern.sub(replace, text)


# Order matters: each rule sees the text its predecessors left. Abbreviations and phones
# go before dates and numbers; dates before ranges (they own their dashes); ranges before
# times ("7h-11h"); the plain-number rule last, for whatever digits are left.
_RULES_BEFORE_ABBREVIATIONS: tuple[Rule, ...] = (
    _sub(_ROMAN_HEADING, _roman_heading),
    _sub(_ROMAN_CONTEXT, _roman_in_context),
    _sub(_ROAD, _road),
)
_RULES_AFTER_ABBREVIATIONS: tuple[Rule, ...] = (
    _sub(_PHONE, _phone),
    _sub(_MONTH_YEAR, _month_year),
    _sub(_DATE, _date),
    lambda text: _PER.sub(r"\g<left> một \g<per>", text),
    lambda text: _RANGE.sub(" đến ", text),
    _sub(_TIME_GLUED, _time),
    _sub(_TIME_WORD, _time),
    _sub(_TIME_COLON, _time),
    _sub(_ORDINALS, _ordinals),
    _sub(_COUNTED, _counted),
    _sub(_UNIT, _unit),
    _sub(_STANDALONE_UNIT, _standalone_unit),
    _sub(_RATIO, _ratio),
    _sub(_NUMERAL, _numeral),
)


def normalize(text: str, abbreviations: Mapping[str, str] | None = None) -> str:
    """Written Vietnamese -> what should be said.

    `abbreviations` adds to / overrides the built-in dictionary (DEFAULT_ABBREVIATIONS).
    """
    merged = {**DEFAULT_ABBREVIATIONS, **(abbreviations or {})}
    expand_abbreviations = _abbreviation_rule(tuple(sorted(merged.items())))
    text = _prepare(text)
    for rule in _RULES_BEFORE_ABBREVIATIONS:
        text = rule(text)
    text = expand_abbreviations(text)
    for rule in _RULES_AFTER_ABBREVIATIONS:
        text = rule(text)
    return _tidy(text)
