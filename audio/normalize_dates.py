"""Numbers around a slash: dates, month/year, fractions and "out of" counts.

"2/3" alone may be the second of March, two thirds, or two out of three; the words around it
decide. A date keeps the last word: a day/month is a date after a date word ("ngày", "từ",
"hạn", ...) or with a year, and also when nothing around it says otherwise ("Quốc khánh 2/9",
"30/4 và 1/5"), because bare holiday dates are common in notices. It is a quantity when:
- a quantity word comes before it (hơn, gần, khoảng, chiếm, đạt, trên, dưới, còn, ...) or a
  whole comes after it (số hộ, dân số, diện tích, ...): a part of a whole, said with "phần"
  ("hơn hai phần ba số hộ"), and "một nửa" for 1/2;
- a counted noun comes after it (thôn, hộ, người, tiêu chí, ...) or "điểm" before it: a count
  out of a total or a score, said with "trên" as people say them ("ba trên năm thôn",
  "điểm chín trên mười");
- it is 1/2 before a unit of time: "nửa ngày", "nửa tháng".
"phần" is only for small proper fractions (up to tenths); anything else is said with "trên".
Days 1-10 of a date take "mùng" ("ngày mùng hai tháng chín"); a month and a year without a
day are a date even without "tháng" ("11/2024"), unless a quantity word comes before.
"""

from __future__ import annotations

import calendar
import re

from audio.normalize_common import Rule, say, sub
from audio.vi_numbers import read_date, read_day, read_integer, read_month, read_number

_DATE_CONTEXT = r"(?i:ngày|mùng|mồng|từ|đến|tới|hôm|sáng|trưa|chiều|tối|đêm|trước|sau|hạn)"
_DATE = re.compile(
    rf"(?<!\w)(?:(?P<ctx>{_DATE_CONTEXT})\s+)?"
    r"(?:(?P<d0>[0-9]{1,2})\s*[-\u2013]\s*)?"
    r"(?P<d1>[0-9]{1,2})(?P<s1>[/.-])(?P<m1>[0-9]{1,2})(?:(?P=s1)(?P<y1>[0-9]{4}))?"
    r"(?:\s*[-\u2013]\s*"
    r"(?P<d2>[0-9]{1,2})(?P<s2>[/.-])(?P<m2>[0-9]{1,2})(?:(?P=s2)(?P<y2>[0-9]{4}))?)?"
    r"(?![0-9]|[/.,-][0-9])"
)
# "tháng 3/2025", "Quý 2/2025", and "11/2024" alone: a month 1-12 then a year 1900-2100.
_MONTH_YEAR = re.compile(
    r"(?<![\w/.,-])(?:(?P<ctx>(?i:tháng|quý)\s+)(?P<n>[0-9]{1,2})[/-]|(?P<bare>[0-9]{1,2})/)"
    r"(?P<year>[0-9]{4})(?![0-9/])"
)
_RATIO = re.compile(
    r"(?<![\w.,/])(?P<a>[0-9]{1,9})(?P<ha>h(?=/[0-9]))?/(?P<b>[0-9]{1,9})(?P<h>h)?"
    r"(?![\w/]|[.,][0-9])"
)

# The words just before the number (searched in a short window ending at it).
_ADDRESS_WORD = re.compile(r"(?<!\w)(?i:nhà|số|ngõ|ngách|hẻm|kiệt)\s+$")
_QUANTITY_WORD = re.compile(
    r"(?<!\w)(?i:hơn|gần|khoảng|chừng|chiếm|đạt|trên|dưới|còn|bằng|tăng|giảm|tỷ lệ|tỉ lệ)\s+$"
)
_SCORE_WORD = re.compile(r"(?<!\w)(?i:điểm)\s+$")
_WINDOW = 12
# The words just after it.
_WHOLE_NOUN = re.compile(
    r"\s+(?i:số|dân số|diện tích|tổng|của|phần|khối lượng|sản lượng|kinh phí|ngân sách"
    r"|thời gian|quãng đường|chiều dài|giá trị)(?!\w)"
)
_COUNTED_NOUN = re.compile(
    r"\s+(?i:thôn|xóm|bản|tổ|xã|phường|hộ|khẩu|người|học sinh|trường|lớp|đơn vị|tiêu chí"
    r"|chỉ tiêu|câu|phiếu|đại biểu|thành viên|đội|điểm)(?!\w)"
)
# "1/2 ngày" is half a day, but "1/2 năm nay" the first of February.
_TIME_UNIT = re.compile(
    r"\s+(?i:ngày|buổi|tuần|tháng|năm|giờ|tiếng|phút)(?!\w)"
    r"(?!\s+(?:(?i:nay|này|tới|qua|sau|trước)(?!\w)|[0-9]))"
)


def _before(pattern: re.Pattern[str], match: re.Match[str]) -> bool:
    start = match.start()
    return pattern.search(match.string, max(0, start - _WINDOW), start) is not None


def _over(a: str, b: str) -> str:
    return f"{read_integer(a)} trên {read_integer(b)}"


def _part(a: str, b: str) -> str:
    numerator, denominator = int(a), int(b)
    if (numerator, denominator) == (1, 2):
        return "một nửa"
    if 1 <= numerator < denominator <= 10:
        return f"{read_number(numerator)} phần {read_month(denominator)}"
    return _over(a, b)


def _quantity(match: re.Match[str], a: str, b: str) -> str | None:
    """How `a`/`b` is said when the words around it make it a quantity, else None."""
    text, end = match.string, match.end()
    if (int(a), int(b)) == (1, 2) and _TIME_UNIT.match(text, end):
        return "nửa"
    if _before(_SCORE_WORD, match) or _COUNTED_NOUN.match(text, end):
        return _over(a, b)
    if _before(_QUANTITY_WORD, match) or _WHOLE_NOUN.match(text, end):
        return _part(a, b)
    return None


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
    if _quantity(match, d1, match["m1"]) is not None or _before(_ADDRESS_WORD, match):
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
        return say(match, words)
    if not _date_is_valid(match, "2"):
        # Keep a malformed second half as written; the number rules read it later.
        end = match.end("y1") if match["y1"] else match.end("m1")
        return say(match, words, tail=match.string[end : match.end()])
    second = read_date(read_day(int(match["d2"])), int(match["m2"]), match["y2"])
    return say(match, f"{words} đến ngày {second}")


def _month_year(match: re.Match[str]) -> str:
    ctx, year = match["ctx"], match["year"]
    if ctx is None:
        # Without "tháng" it must look like a month of a recent year, and nothing around may
        # make it a quantity ("tỷ lệ 1/2000" is a map scale).
        month = int(match["bare"])
        if not (1 <= month <= 12 and 1900 <= int(year) <= 2100):
            return match.group()
        if any(_before(word, match) for word in (_QUANTITY_WORD, _SCORE_WORD, _ADDRESS_WORD)):
            return match.group()
        return say(match, f"tháng {read_month(month)} năm {read_integer(year)}")
    number = int(match["n"])
    is_month = ctx.strip().lower() == "tháng"
    if not 1 <= number <= (12 if is_month else 4):
        return match.group()
    words = read_month(number) if is_month else read_number(number)
    return say(match, f"{ctx}{words} năm {read_integer(year)}")


def _ratio(match: re.Match[str]) -> str:
    a, b = match["a"], match["b"]
    # "24/24h" and "24h/24h" are around the clock; "ngõ 3/4" is an address.
    hours = bool(match["h"] or match["ha"])
    if hours or _before(_ADDRESS_WORD, match):
        words = _over(a, b)
    else:
        words = _quantity(match, a, b) or _part(a, b)
    return say(match, f"{words} giờ" if hours else words)


READ_MONTH_YEARS: Rule = sub(_MONTH_YEAR, _month_year)
READ_DATES: Rule = sub(_DATE, _date)
READ_RATIOS: Rule = sub(_RATIO, _ratio)
