"""Vietnamese number words, as a northern (Hà Nội) announcer reads them.

Choices, held to everywhere:
- "nghìn" (northern), never "ngàn"; "tỷ", and "nghìn tỷ" above it.
- A zero in the tens place is "linh" (105 "một trăm linh năm"), never "lẻ".
- A group of three after a bigger unit is read in full, so 2025 is "hai nghìn không trăm hai
  mươi lăm" and 1.000.005 "một triệu không trăm linh năm"; empty groups are skipped.
- After "mươi" (20 and up): 1 is "mốt", 4 is "tư", 5 is "lăm". After "mười" only 5 changes
  ("mười lăm"): "mười một", "mười bốn" are what people say. After "linh" nothing changes.
- Phone numbers and codes are read digit by digit with the plain digit names ("bốn", "năm").
- Written numbers use the dot for thousands and the comma for decimals: "1.000.000" is a
  million and "3,5" is "ba phẩy năm".
"""

from __future__ import annotations

import re

DIGIT_WORDS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")

_THOUSAND = 1_000
_MILLION = 1_000_000
_BILLION = 1_000_000_000
# Amounts from a billion up are written with dot groups ("1.000.000.000"), so a longer run
# of bare digits is an identifier (an account, a tax code) and is read digit by digit.
_MAX_BARE_DIGITS = 9
# Past this, even a grouped number is no amount anyone says (and int() of a huge string is
# slow, or refused).
_MAX_GROUPED_DIGITS = 18


def read_digits(digits: str) -> str:
    """'0912' -> 'không chín một hai': one word per ASCII digit, other characters dropped."""
    return " ".join(DIGIT_WORDS[int(c)] for c in digits if "0" <= c <= "9")


def _read_units_after_tens(tens: int, units: int) -> str:
    # Five after a tens word is "lăm": "hai mươi năm" would be "twenty years". "mốt" and "tư"
    # are what everyone says after "mươi" (but "mười một", "mười bốn").
    if units == 5:
        return "lăm"
    if tens >= 2 and units == 1:
        return "mốt"
    if tens >= 2 and units == 4:
        return "tư"
    return DIGIT_WORDS[units]


def _read_triple(n: int, *, full: bool) -> str:
    """0 < n < 1000. `full`: this group follows a bigger unit, so say "không trăm" / "linh"."""
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if hundreds or full:
        words.append(f"{DIGIT_WORDS[hundreds]} trăm")
    if tens == 0:
        if units and words:
            words.append("linh")
        if units:
            words.append(DIGIT_WORDS[units])
        return " ".join(words)
    words.append("mười" if tens == 1 else f"{DIGIT_WORDS[tens]} mươi")
    if units:
        words.append(_read_units_after_tens(tens, units))
    return " ".join(words)


def _read_below_billion(n: int, *, leading: bool) -> str:
    """0 < n < 10**9; `leading` is False when a "tỷ" was already said before it."""
    groups = ((n // _MILLION, "triệu"), (n // _THOUSAND % _THOUSAND, "nghìn"), (n % _THOUSAND, ""))
    words: list[str] = []
    for value, unit in groups:
        if value == 0:
            continue
        triple = _read_triple(value, full=bool(words) or not leading)
        words.append(f"{triple} {unit}" if unit else triple)
    return " ".join(words)


def _read_positive(n: int, *, leading: bool = True) -> str:
    if n < _BILLION:
        return _read_below_billion(n, leading=leading)
    billions, rest = divmod(n, _BILLION)
    # 10**12 is "một nghìn tỷ": the count of billions is itself read as a number.
    words = f"{_read_positive(billions, leading=leading)} tỷ"
    if rest:
        words += " " + _read_below_billion(rest, leading=False)
    return words


def read_number(n: int) -> str:
    """2025 -> 'hai nghìn không trăm hai mươi lăm'; -5 -> 'âm năm'."""
    if n < 0:
        return f"âm {read_number(-n)}"
    if n == 0:
        return DIGIT_WORDS[0]
    return _read_positive(n)


def read_integer(digits: str) -> str:
    """A written run of ASCII digits: a quantity, or digit by digit when it is a code.

    A leading zero ('05', '0912') or more than nine digits ('0123456789012') make a code.
    """
    if (len(digits) > 1 and digits.startswith("0")) or len(digits) > _MAX_BARE_DIGITS:
        return read_digits(digits)
    return read_number(int(digits))


def read_fraction_digits(digits: str) -> str:
    """The part after the decimal comma: '25' -> 'hai mươi lăm', '05' -> 'không năm'.

    Up to three digits are read as a number, as people say prices and percentages
    ("ba phẩy mười bốn"); leading zeros are said one by one because they change the value.
    Longer fractions are read digit by digit.
    """
    if len(digits) > 3:
        return read_digits(digits)
    significant = digits.lstrip("0")
    zeros = [DIGIT_WORDS[0]] * (len(digits) - len(significant))
    if significant:
        zeros.append(read_number(int(significant)))
    return " ".join(zeros)


def read_decimal(whole: str, fraction: str) -> str:
    """'3', '5' -> 'ba phẩy năm': Vietnamese writes a decimal comma and says "phẩy"."""
    return f"{read_integer(whole)} phẩy {read_fraction_digits(fraction)}"


# How a phone number written without spaces is grouped when read: as Vietnamese write them.
_PHONE_GROUPS = {
    ("0", 10): (4, 3, 3),  # 0912 345 678
    ("0", 11): (3, 4, 4),  # 024 3825 1234 (a landline with its area code)
    ("1", 8): (4, 4),  # 1900 1234
    ("1", 10): (4, 3, 3),  # 1800 599 920
    ("+", 9): (3, 3, 3),  # +84 912 345 678
    ("+", 10): (3, 3, 4),
}
_PHONE_LENGTHS = {"0": (10, 11), "1": (8, 10), "+": (9, 10)}
# The digit after the leading 0 (or +84): mobiles are 03/05/07/08/09 + 8 digits, landlines
# 02x + 8 digits. A 10-digit "0101234567" is a tax code, read without phone pauses.
_PHONE_NETWORKS = {10: "35789", 11: "2"}


def read_phone_number(written: str) -> str | None:
    """'0912 345 678' -> 'không chín một hai, ba bốn năm, sáu bảy tám'; None if not a phone.

    A phone is 10-11 digits from 0, +84 and 9-10 digits, or a 1800/1900 hotline with 4 or
    6 more digits. It is read digit by digit, with a comma (a short pause) between groups:
    the groups as written, or as usually written when there are none.
    """
    groups = re.findall(r"[0-9]+", written)
    kind = "+" if written.startswith("+84") else "".join(groups)[:1]
    if kind == "+":
        groups = [group for group in (groups[0][2:], *groups[1:]) if group]
    digits = "".join(groups)
    if kind not in _PHONE_LENGTHS or len(digits) not in _PHONE_LENGTHS[kind]:
        return None
    if kind == "1" and not digits.startswith(("1800", "1900")):
        return None
    national = digits if kind == "+" else digits[1:]
    if kind != "1" and national[:1] not in _PHONE_NETWORKS[len(national) + 1]:
        return None
    if len(groups) == 1:
        sizes = _PHONE_GROUPS[kind, len(digits)]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        groups = [digits[start : start + size] for start, size in zip(starts, sizes, strict=True)]
    spoken = [read_digits(group) for group in groups]
    return ", ".join(["cộng tám bốn", *spoken] if kind == "+" else spoken)


def read_ordinal(n: int) -> str:
    """After "thứ": 1 -> 'nhất', 4 -> 'tư' (Sino-Vietnamese forms); the rest as cardinals."""
    if n == 1:
        return "nhất"
    if n == 4:
        return "tư"
    return read_number(n)


def read_month(n: int) -> str:
    """After "tháng": 4 -> 'tư' (April is always "tháng tư"); others as cardinals."""
    return "tư" if n == 4 else read_number(n)


def read_day(n: int) -> str:
    """A day of the month after "ngày": 1-10 take "mùng", as said in speech ("mùng hai")."""
    return f"mùng {read_number(n)}" if 1 <= n <= 10 else read_number(n)


def read_date(days: str, month: int, year: str | None) -> str:
    """'mười lăm', 3, '2025' -> 'mười lăm tháng ba năm hai nghìn không trăm hai mươi lăm'."""
    words = f"{days} tháng {read_month(month)}"
    return f"{words} năm {read_integer(year)}" if year else words


def read_clock(hours: int, minutes: int = 0, seconds: int = 0) -> str:
    """7, 30 -> 'bảy giờ ba mươi phút'; 7, 0 -> 'bảy giờ' (nobody says "không phút")."""
    words = f"{read_number(hours)} giờ"
    if minutes:
        words += f" {read_number(minutes)} phút"
    if seconds:
        words += f" {read_number(seconds)} giây"
    return words


_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman_value(numeral: str) -> int:
    """'XIV' -> 14 (a smaller digit before a larger subtracts); the caller checks the form."""
    total = 0
    for char, following in zip(numeral, [*numeral[1:], ""], strict=True):
        value = _ROMAN_VALUES[char]
        total += -value if _ROMAN_VALUES.get(following, 0) > value else value
    return total


_WRITTEN_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)*")
_THOUSANDS = re.compile(r"[1-9][0-9]{0,2}(?:\.[0-9]{3})+(?:,[0-9]+)?")
_COMMA_THOUSANDS = re.compile(r"[1-9][0-9]{0,2}(?:,[0-9]{3}){2,}")


def _read_grouped(digits: str) -> str:
    """The digits of a number written with thousands separators: always an amount."""
    return read_number(int(digits)) if len(digits) <= _MAX_GROUPED_DIGITS else read_digits(digits)


def read_written_number(written: str) -> str:
    """A written number: '1.250.000', '3,5', '1.000,5', '3.5' (section), '1,2,3' (list).

    The dot groups thousands and the comma marks decimals, as Vietnamese write them.
    Anything that is not digits with dots and commas comes back unchanged.
    """
    if not _WRITTEN_NUMBER.fullmatch(written):
        return written
    if _THOUSANDS.fullmatch(written) or written.isdecimal():
        whole, _, fraction = written.partition(",")
        words = _read_grouped(whole.replace(".", "")) if "." in whole else read_integer(whole)
        return f"{words} phẩy {read_fraction_digits(fraction)}" if fraction else words
    if written.count(",") == 1 and "." not in written:
        whole, fraction = written.split(",")
        return f"{read_integer(whole)} phẩy {read_fraction_digits(fraction)}"
    if _COMMA_THOUSANDS.fullmatch(written):  # "1,000,000" pasted from an English text
        return _read_grouped(written.replace(",", ""))
    # Dots that do not group thousands number sections and versions: "3.5" is "ba chấm năm".
    parts = re.split(r"([.,])", written)
    spoken = {".": " chấm ", ",": ", "}
    return "".join(spoken.get(part) or read_integer(part) for part in parts)
