"""Written Vietnamese -> what should be said: the text normaliser in front of every TTS engine.

gTTS, espeak-ng and Piper misread dates, times, Vietnamese number separators and
abbreviations. `normalize` rewrites them as Vietnamese words and leaves everything else
(words, punctuation that makes pauses, line breaks) alone. It is pure and never raises.
Number words are in audio.vi_numbers, the dictionaries in audio.abbreviations; the golden
table in tests/test_normalize.py is the spec. Dates, fractions and other numbers around a
slash are in audio.normalize_dates, document numbers in audio.normalize_documents (each
explains its choices). Choices made here:
- Dotted numbers that do not group thousands ("3.5", "4.0") are sections, read with "chấm".
- Phone numbers are read digit by digit with a pause between groups, and so are the emergency
  lines 111-115 after a word that calls or names them ("gọi 114" is "gọi một một bốn").
- Roman numerals (I, V, X only) only after a heading word (Quý, Chương, Đại hội, thế kỷ,
  ...) or at the start of a heading line ("II. "): "hạng C" or "Văn X" stay letters, and so
  does an initial before a name ("V. Lênin"; but "V. NỘI DUNG", "V. Tổ chức thực hiện").
- A dash glued to a number is a minus ("-3" is "âm ba"); a dash and a space is a bullet.
- "1m70" is "một mét bảy mươi" and "1m5" "một mét năm", as written ("1m2", "1m3" stay
  square and cubic metres).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

from audio.abbreviations import (
    DEFAULT_ABBREVIATIONS,
    DOCUMENT_CODES,
    GLUED_UNIT_WORDS,
    STANDALONE_UNITS,
    UNIT_WORDS,
)
from audio.normalize_common import Rule, say, sub
from audio.normalize_dates import READ_DATES, READ_MONTH_YEARS, READ_RATIOS
from audio.normalize_documents import document_rule
from audio.vi_numbers import (
    read_clock,
    read_day,
    read_digits,
    read_integer,
    read_month,
    read_number,
    read_ordinal,
    read_phone_number,
    read_written_number,
    roman_value,
)

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
    r"|cấp|học kỳ|học kì|giai đoạn|đợt|phụ lục|thứ)[ \t]+)"
    rf"(?P<roman>{_ROMAN})(?:/(?P<year>[0-9]{{4}}))?(?!\w)"
)
_ROMAN_HEADING = re.compile(
    rf"^(?P<indent>[ \t]*)(?P<roman>{_ROMAN})(?P<sep>[.):]|[ \t]+[-\u2013])(?=[ \t])", re.MULTILINE
)
_NEXT_WORD = re.compile(r"[ \t]+(?P<word>[^\W\d_]+)(?P<dot>\.)?")
# How a heading after "V. " may start when it is not in capitals, and the parts of a text
# that may follow a numbered part ("Chương V. Điều 3").
_HEADING_WORDS = re.compile(
    r"(?i:nội dung|yêu cầu|tổ chức|thời gian|địa điểm|thành phần|kinh phí|kế hoạch|phân công"
    r"|đối tượng|phạm vi|hình thức|trách nhiệm|kết quả|kết luận|đánh giá|phương hướng|nhiệm vụ"
    r"|giải pháp|biện pháp|kiến nghị|đề xuất|tình hình|căn cứ|chế độ|quy định|hiệu lực|tiến độ"
    r"|công tác|danh sách|hồ sơ|thủ tục|lịch|khen thưởng|xử lý|triển khai|báo cáo|phụ lục|lưu ý"
    r"|quyền lợi|nghĩa vụ|những|các|một số|chương|phần|mục|điều|khoản|tiết|bài)(?!\w)"
)


def _is_initial(match: re.Match[str]) -> bool:
    """One letter and a dot before a name is an initial: "V. Lênin", "học tập V. I. Lênin"."""
    text, end = match.string, match.end("roman")
    if len(match["roman"]) != 1 or text[end : end + 1] != ".":
        return False
    following = _NEXT_WORD.match(text, end + 1)
    if following is None:
        return False
    word = following["word"]
    if len(word) == 1 and following["dot"]:
        return word.isupper()
    heading = _HEADING_WORDS.match(text, following.start("word"))
    return word[0].isupper() and not word.isupper() and heading is None


def _roman_in_context(match: re.Match[str]) -> str:
    if _is_initial(match):
        return match.group()
    context, value = match["ctx"], roman_value(match["roman"])
    # "Kỳ họp thứ V" is an ordinal ("thứ năm"), "lần thứ I" is "thứ nhất".
    words = read_ordinal(value) if context.strip().lower() == "thứ" else read_number(value)
    year = f" năm {match['year']}" if match["year"] else ""
    return say(match, f"{context}{words}{year}")


def _roman_heading(match: re.Match[str]) -> str:
    if _is_initial(match):
        return match.group()
    return f"{match['indent']}{read_number(roman_value(match['roman']))}{match['sep']}"


_ROADS = {"QL": "quốc lộ", "ĐT": "đường tỉnh", "TL": "tỉnh lộ", "ĐH": "đường huyện"}
# "ĐT 605" is a provincial road; "ĐT: 0912..." is a phone (a road number never starts with 0).
_ROAD = re.compile(r"(?<!\w)(?P<road>QL|ĐT|TL|ĐH)\.?[ ]?(?P<number>[1-9][0-9]{0,2}[A-Z]?)(?!\w)")


def _road(match: re.Match[str]) -> str:
    return say(match, f"{_ROADS[match['road']]} {match['number']}")


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
        return say(match, words)

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
            return say(match, spoken, tail=written[end:])
    return written


# The emergency lines (111 child protection, 112 rescue, 113 police, 114 fire, 115 ambulance)
# are said digit by digit, "một một bốn", as everyone says them; only after a word that calls
# or names the service, so that "số 113 đường Lê Lợi" stays a house number.
_COUNTED_NOUNS = (
    "người|ca|hộ|cháu|em|tuổi|lần|lượt|xe|chiếc|con|căn|nhà|trường hợp|bệnh nhân|học sinh"
    "|ngày|giờ|phút|km|m|kg|tấn|ha|triệu|nghìn|tỷ|đồng|%"
)
_HOTLINE = re.compile(
    r"(?<!\w)(?P<ctx>(?i:gọi|tổng đài|đường dây nóng|số khẩn cấp|hotline|công an|cảnh sát"
    r"|cứu hỏa|cứu hoả|chữa cháy|cấp cứu|cứu nạn|cứu hộ|trẻ em)[ \t]*[:(]?[ \t]*)"
    r"(?P<list>11[1-5](?:[ \t]*(?:,|/|-|\u2013|và|hoặc)[ \t]*11[1-5])*)(?![\w.,]?[0-9])"
    # ... and not a count: "cấp cứu 115 ca", "cứu hộ 112 người".
    rf"(?![ \t]+(?:{_COUNTED_NOUNS})(?!\w))"
)


def _hotline(match: re.Match[str]) -> str:
    spoken = re.sub(r"[0-9]+", lambda number: read_digits(number.group()), match["list"])
    return say(match, f"{match['ctx']}{spoken}")


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
    return say(match, read_clock(hours, minutes, seconds))


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
    return say(match, f"{match['word']} {spoken}")


def _counted(match: re.Match[str]) -> str:
    word, number = match["word"], int(match["n"])
    kind = word.lower()
    if kind == "ngày" and 1 <= number <= 31:
        spoken = read_day(number)
    elif kind == "tháng" and 1 <= number <= 12:
        spoken = read_month(number)
    else:
        spoken = read_integer(match["n"])
    return say(match, f"{word} {spoken}")


# --- units, money, fractions, plain numbers ---------------------------------------------------


def _alternatives(keys: tuple[str, ...] | list[str]) -> str:
    return "|".join(re.escape(key) for key in sorted(keys, key=len, reverse=True))


_NUMBER = r"[0-9]+(?:[.,][0-9]+)*"
# A minus is a dash glued to the number, not after a word or a number ("X-19", "5-7" are not).
_MINUS = r"(?<![\w.,/\-\u2212])(?P<neg>[-\u2212])"
# Metres and centimetres: "1m70", "1m5". "1m2" and "1m3" are left to the units (m², m³).
_METRES = re.compile(r"(?<![\w.,])(?P<m>[0-9]{1,2})m(?P<cm>[0-9]{2}|[014-9])(?!\w|[.,][0-9])")
_UNIT = re.compile(
    rf"(?<![\w.,])(?:{_MINUS})?(?P<num>{_NUMBER})"
    rf"(?:(?P<glued>{_alternatives(list(GLUED_UNIT_WORDS))})"
    rf"|\s?(?P<unit>{_alternatives(list(UNIT_WORDS))}))(?!\w)"
)
_STANDALONE_UNIT = re.compile(rf"(?<![\w°])(?:{_alternatives(STANDALONE_UNITS)})(?!\w)")
_NUMERAL = re.compile(rf"(?:{_MINUS})?(?<![0-9])(?P<num>{_NUMBER})")


def _unit(match: re.Match[str]) -> str:
    unit = match["unit"]
    words = GLUED_UNIT_WORDS[match["glued"]] if match["glued"] else UNIT_WORDS[unit]
    sign = "âm " if match["neg"] else ""
    return say(match, f"{sign}{read_written_number(match['num'])} {words}")


def _metres(match: re.Match[str]) -> str:
    return say(match, f"{read_integer(match['m'])} mét {read_integer(match['cm'])}")


def _standalone_unit(match: re.Match[str]) -> str:
    return say(match, UNIT_WORDS[match.group()])


def _numeral(match: re.Match[str]) -> str:
    sign = "âm " if match["neg"] else ""
    return say(match, sign + read_written_number(match["num"]))


# Order matters: each rule sees the text its predecessors left. Document numbers go first
# (their codes are not the global abbreviations); abbreviations and phones before dates and
# numbers; dates before fractions and ranges (they own their slashes and dashes); ranges
# before times ("7h-11h") and metres ("1m60-1m70"); the plain-number rule last.
_RULES_BEFORE_ABBREVIATIONS: tuple[Rule, ...] = (
    sub(_ROMAN_HEADING, _roman_heading),
    sub(_ROMAN_CONTEXT, _roman_in_context),
    sub(_ROAD, _road),
)
_RULES_AFTER_ABBREVIATIONS: tuple[Rule, ...] = (
    sub(_PHONE, _phone),
    sub(_HOTLINE, _hotline),
    READ_MONTH_YEARS,
    READ_DATES,
    READ_RATIOS,
    lambda text: _PER.sub(r"\g<left> một \g<per>", text),
    lambda text: _RANGE.sub(" đến ", text),
    sub(_TIME_GLUED, _time),
    sub(_TIME_WORD, _time),
    sub(_TIME_COLON, _time),
    sub(_ORDINALS, _ordinals),
    sub(_COUNTED, _counted),
    sub(_METRES, _metres),
    sub(_UNIT, _unit),
    sub(_STANDALONE_UNIT, _standalone_unit),
    sub(_NUMERAL, _numeral),
)


def normalize(text: str, abbreviations: Mapping[str, str] | None = None) -> str:
    """Written Vietnamese -> what should be said.

    `abbreviations` adds to / overrides the built-in dictionary (DEFAULT_ABBREVIATIONS), and
    the codes of document numbers (DOCUMENT_CODES).
    """
    operator = abbreviations or {}
    merged = {**DEFAULT_ABBREVIATIONS, **operator}
    expand_abbreviations = _abbreviation_rule(tuple(sorted(merged.items())))
    codes = {**DEFAULT_ABBREVIATIONS, **DOCUMENT_CODES, **operator}
    text = document_rule(tuple(sorted(codes.items())))(_prepare(text))
    for rule in _RULES_BEFORE_ABBREVIATIONS:
        text = rule(text)
    text = expand_abbreviations(text)
    for rule in _RULES_AFTER_ABBREVIATIONS:
        text = rule(text)
    return _tidy(text)
