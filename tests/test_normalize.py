"""The Vietnamese text normaliser: a golden table of what a speaker says, and robustness.

The expected strings are the spec. They follow a northern announcer: "nghìn", "linh",
"mùng" for days 1-10, "tháng tư", "hai mươi mốt / tư / lăm", a decimal comma said "phẩy".
"""

from __future__ import annotations

import random
import unicodedata

import pytest

from audio.abbreviations import DEFAULT_ABBREVIATIONS
from audio.normalize import normalize
from audio.vi_numbers import (
    read_clock,
    read_day,
    read_decimal,
    read_digits,
    read_month,
    read_number,
    read_ordinal,
    read_phone_number,
    read_written_number,
    roman_value,
)

_2025 = "hai nghìn không trăm hai mươi lăm"
_2024 = "hai nghìn không trăm hai mươi tư"

GOLDEN: list[tuple[str, str]] = [
    # --- numbers: mười / mươi, mốt, tư, lăm, linh, không trăm, nghìn, triệu, tỷ
    ("0", "không"),
    ("5 người", "năm người"),
    ("10 hộ", "mười hộ"),
    ("11 hộ", "mười một hộ"),
    ("14 hộ", "mười bốn hộ"),
    ("15 hộ", "mười lăm hộ"),
    ("21 thôn", "hai mươi mốt thôn"),
    ("24 thôn", "hai mươi tư thôn"),
    ("25 người", "hai mươi lăm người"),
    ("105 hộ", "một trăm linh năm hộ"),
    ("110 hộ", "một trăm mười hộ"),
    ("1.000 người", "một nghìn người"),
    ("2025", _2025),
    ("năm 1945", "năm một nghìn chín trăm bốn mươi lăm"),
    ("1.000.000", "một triệu"),
    ("1.250.000 đồng", "một triệu hai trăm năm mươi nghìn đồng"),
    ("2.000.005", "hai triệu không trăm linh năm"),
    ("1.000.000.000 đồng", "một tỷ đồng"),
    ("1.000.000.000.000 đồng", "một nghìn tỷ đồng"),
    ("1,000,000 người", "một triệu người"),
    # --- decimals, dotted section numbers, codes
    ("3,5", "ba phẩy năm"),
    ("0,25", "không phẩy hai mươi lăm"),
    ("3,05 ha", "ba phẩy không năm héc ta"),
    ("12,5 triệu", "mười hai phẩy năm triệu"),
    ("3.5", "ba chấm năm"),
    ("cách mạng công nghiệp 4.0", "cách mạng công nghiệp bốn chấm không"),
    ("Chương IV. Điều 3.5", "Chương bốn. Điều ba chấm năm"),
    ("Khoản 2, Điều 5", "Khoản hai, Điều năm"),
    ("các thôn 1,2,3", "các thôn một, hai, ba"),
    ("số 05", "số không năm"),
    ("mã số thuế 0101234567", "mã số thuế không một không một hai ba bốn năm sáu bảy"),
    (
        "tài khoản 1234567890123",
        "tài khoản một hai ba bốn năm sáu bảy tám chín không một hai ba",
    ),
    ("Thôn 3 và thôn 12A", "Thôn ba và thôn mười hai A"),
    # the emergency lines are said digit by digit after a word that calls or names them
    ("gọi 114 khi có cháy", "gọi một một bốn khi có cháy"),
    (
        "Gọi ngay Cảnh sát 113 hoặc cấp cứu 115.",
        "Gọi ngay Cảnh sát một một ba hoặc cấp cứu một một năm.",
    ),
    ("Tổng đài 111, 112", "Tổng đài một một một, một một hai"),
    ("báo PCCC (114)", "báo phòng cháy chữa cháy (một một bốn)"),
    ("số 113 đường Lê Lợi", "số một trăm mười ba đường Lê Lợi"),
    ("gọi 1150 lần", "gọi một nghìn một trăm năm mươi lần"),
    ("gọi 114 - 115", "gọi một một bốn - một một năm"),
    ("tiếp nhận cấp cứu 115 ca", "tiếp nhận cấp cứu một trăm mười lăm ca"),
    ("cứu hộ 112 người", "cứu hộ một trăm mười hai người"),
    ("25%", "hai mươi lăm phần trăm"),
    ("tăng 3,5%", "tăng ba phẩy năm phần trăm"),
    # --- ordinals
    ("họp vào thứ 2 và thứ 4", "họp vào thứ hai và thứ tư"),
    ("lần thứ 1", "lần thứ nhất"),
    ("thứ 2, 4, 6", "thứ hai, tư, sáu"),
    ("Thứ 7, ngày 5/4/2025", f"Thứ bảy, ngày mùng năm tháng tư năm {_2025}"),
    # --- dates
    ("15/3/2025", f"ngày mười lăm tháng ba năm {_2025}"),
    ("15-3-2025", f"ngày mười lăm tháng ba năm {_2025}"),
    ("ngày 15/3", "ngày mười lăm tháng ba"),
    ("ngày 01/04/2025", f"ngày mùng một tháng tư năm {_2025}"),
    ("ngày 10.3.2025", f"ngày mùng mười tháng ba năm {_2025}"),
    ("Lễ Quốc khánh 2/9", "Lễ Quốc khánh ngày mùng hai tháng chín"),
    ("30/4 và 1/5", "ngày ba mươi tháng tư và ngày mùng một tháng năm"),
    ("mùng 10/3 âm lịch", "mùng mười tháng ba âm lịch"),
    ("từ 15/3 đến 20/3", "từ ngày mười lăm tháng ba đến ngày hai mươi tháng ba"),
    ("15/3-20/3/2025", f"ngày mười lăm tháng ba đến ngày hai mươi tháng ba năm {_2025}"),
    ("từ ngày 5-7/3", "từ ngày mùng năm đến mùng bảy tháng ba"),
    ("ngày 5 tháng 4 năm 2025", f"ngày mùng năm tháng tư năm {_2025}"),
    ("tháng 3/2025", f"tháng ba năm {_2025}"),
    ("29/2/2024", "ngày hai mươi chín tháng hai năm hai nghìn không trăm hai mươi tư"),
    ("11/2024", f"tháng mười một năm {_2024}"),
    ("tháng 11/2024", f"tháng mười một năm {_2024}"),
    ("từ 01/2025", f"từ tháng một năm {_2025}"),
    ("Báo cáo 11/2024", f"Báo cáo tháng mười một năm {_2024}"),
    # a bare day/month with nothing around it that makes it a quantity stays a date
    ("Quốc khánh 2/9.", "Quốc khánh ngày mùng hai tháng chín."),
    ("Hạn cuối là 2/3.", "Hạn cuối là ngày mùng hai tháng ba."),
    ("ngày 15/3 người dân", "ngày mười lăm tháng ba người dân"),
    ("1/2 năm nay", "ngày mùng một tháng hai năm nay"),
    # not dates: an impossible month, a fraction, an address, around the clock
    ("32/13", "ba mươi hai trên mười ba"),
    ("2/3 số hộ", "hai phần ba số hộ"),
    ("số nhà 15/7", "số nhà mười lăm trên bảy"),
    ("trực 24/7", "trực hai mươi tư trên bảy"),
    ("hoạt động 24/24h", "hoạt động hai mươi tư trên hai mươi tư giờ"),
    ("13/2024", f"mười ba trên {_2024}"),
    ("24h/24h", "hai mươi tư trên hai mươi tư giờ"),
    ("phục vụ 24h/24.", "phục vụ hai mươi tư trên hai mươi tư giờ."),
    ("24/7", "hai mươi tư trên bảy"),
    # --- fractions: a part of a whole with "phần" (1/2 "một nửa"), after a quantity word or
    # before a whole; a count out of a total or a score with "trên"; 1/2 of a time "nửa"
    ("hơn 2/3 số hộ", "hơn hai phần ba số hộ"),
    ("hơn 2/3", "hơn hai phần ba"),
    ("gần 3/4 diện tích", "gần ba phần tư diện tích"),
    ("chiếm 1/3 dân số", "chiếm một phần ba dân số"),
    ("trên 4/5 số hộ", "trên bốn phần năm số hộ"),
    ("dưới 1/10", "dưới một phần mười"),
    ("khoảng 1/2 số hộ", "khoảng một nửa số hộ"),
    ("hơn 7/12 số hộ", "hơn bảy trên mười hai số hộ"),
    ("Số hộ tham gia đạt 2/3.", "Số hộ tham gia đạt hai phần ba."),
    ("Tỷ lệ hộ nghèo giảm còn 1/5.", "Tỷ lệ hộ nghèo giảm còn một phần năm."),
    ("có 3/5 thôn", "có ba trên năm thôn"),
    ("3/5 thôn đạt chuẩn", "ba trên năm thôn đạt chuẩn"),
    ("8/12 hộ đã nộp", "tám trên mười hai hộ đã nộp"),
    ("đạt 9/10 tiêu chí", "đạt chín trên mười tiêu chí"),
    ("điểm 9/10", "điểm chín trên mười"),
    ("đạt điểm 8/10", "đạt điểm tám trên mười"),
    ("1/2 ngày", "nửa ngày"),
    ("nghỉ 1/2 buổi", "nghỉ nửa buổi"),
    ("bản đồ tỷ lệ 1/2000", "bản đồ tỷ lệ một trên hai nghìn"),
    # --- times
    ("7h30", "bảy giờ ba mươi phút"),
    ("07:30", "bảy giờ ba mươi phút"),
    ("17 giờ", "mười bảy giờ"),
    ("7h", "bảy giờ"),
    ("7 giờ 30", "bảy giờ ba mươi phút"),
    ("7 giờ 5 phút", "bảy giờ năm phút"),
    ("17h00", "mười bảy giờ"),
    ("7h05", "bảy giờ năm phút"),
    ("7g30", "bảy giờ ba mươi phút"),
    ("5h30 sáng", "năm giờ ba mươi phút sáng"),
    ("lúc 14:15:30", "lúc mười bốn giờ mười lăm phút ba mươi giây"),
    ("trong vòng 48h", "trong vòng bốn mươi tám giờ"),
    ("từ 7 giờ đến 17 giờ 30", "từ bảy giờ đến mười bảy giờ ba mươi phút"),
    # --- ranges
    ("5-7 ngày", "năm đến bảy ngày"),
    ("từ 7h-11h", "từ bảy giờ đến mười một giờ"),
    ("7h30-11h30", "bảy giờ ba mươi phút đến mười một giờ ba mươi phút"),
    ("ngày 20-25", "ngày hai mươi đến hai mươi lăm"),
    (
        "giai đoạn 2021-2025",
        f"giai đoạn hai nghìn không trăm hai mươi mốt đến {_2025}",
    ),
    ("nhiệt độ 25-30°C", "nhiệt độ hai mươi lăm đến ba mươi độ xê"),
    # --- phone numbers, digit by digit with a pause between groups
    ("0912 345 678", "không chín một hai, ba bốn năm, sáu bảy tám"),
    ("0912345678", "không chín một hai, ba bốn năm, sáu bảy tám"),
    ("0912.345.678", "không chín một hai, ba bốn năm, sáu bảy tám"),
    ("0912-345-678", "không chín một hai, ba bốn năm, sáu bảy tám"),
    ("+84 912 345 678", "cộng tám bốn, chín một hai, ba bốn năm, sáu bảy tám"),
    ("+84912345678", "cộng tám bốn, chín một hai, ba bốn năm, sáu bảy tám"),
    ("hotline 1900 1234", "hotline một chín không không, một hai ba bốn"),
    ("1900.1234", "một chín không không, một hai ba bốn"),
    ("ĐT: 0235.3812.345", "điện thoại: không hai ba năm, ba tám một hai, ba bốn năm"),
    ("(024) 3825 1234", "không hai bốn, ba tám hai năm, một hai ba bốn"),
    ("0912345678 20 lần", "không chín một hai, ba bốn năm, sáu bảy tám hai mươi lần"),
    # --- document numbers: the number, "/" said "trên", a year as a number, codes expanded
    (
        "Quyết định số 123/QĐ-UBND",
        "Quyết định số một trăm hai mươi ba trên quyết định ủy ban nhân dân",
    ),
    (
        "Nghị định 100/2019/NĐ-CP",
        "Nghị định một trăm trên hai nghìn không trăm mười chín trên nghị định chính phủ",
    ),
    (
        "Thông tư 39/2020/TT-BTTTT",
        "Thông tư ba mươi chín trên hai nghìn không trăm hai mươi trên thông tư bộ thông tin "
        "và truyền thông",
    ),
    ("Công văn số 45/UBND-VP", "Công văn số bốn mươi lăm trên ủy ban nhân dân văn phòng"),
    ("số 5/2024/TT-BTC", f"số năm trên {_2024} trên thông tư bộ tài chính"),
    (
        "Nghị quyết số 01/2024/NQ-HĐND",
        f"Nghị quyết số một trên {_2024} trên nghị quyết hội đồng nhân dân",
    ),
    ("Kế hoạch số 25/KH-UBND.", "Kế hoạch số hai mươi lăm trên kế hoạch ủy ban nhân dân."),
    ("Chỉ thị 15/CT-TTg", "Chỉ thị mười lăm trên chỉ thị thủ tướng"),
    (
        "Luật số 45/2019/QH14",
        "Luật số bốn mươi lăm trên hai nghìn không trăm mười chín trên quốc hội khóa mười bốn",
    ),
    ("Nghị định 12/2024", f"Nghị định mười hai trên {_2024}"),
    (
        "Quyết định 1234/QĐ-TTg ngày 15/3/2025",
        "Quyết định một nghìn hai trăm ba mươi tư trên quyết định thủ tướng "
        f"ngày mười lăm tháng ba năm {_2025}",
    ),
    # --- money and units
    ("500.000đ", "năm trăm nghìn đồng"),
    ("500.000 VNĐ", "năm trăm nghìn đồng"),
    ("25.000đ/người", "hai mươi lăm nghìn đồng một người"),
    ("50k", "năm mươi nghìn"),
    ("5tr", "năm triệu"),
    ("100 USD", "một trăm đô la Mỹ"),
    ("Đơn vị tính: VNĐ", "Đơn vị tính: đồng"),
    ("2 km", "hai ki lô mét"),
    ("5kg", "năm ki lô gam"),
    ("120 m2", "một trăm hai mươi mét vuông"),
    ("120m²", "một trăm hai mươi mét vuông"),
    ("3 ha", "ba héc ta"),
    ("15 cm", "mười lăm xăng ti mét"),
    ("lượng mưa 150mm", "lượng mưa một trăm năm mươi mi li mét"),
    ("500ml", "năm trăm mi li lít"),
    ("1,5l nước", "một phẩy năm lít nước"),
    ("tốc độ 50 km/h", "tốc độ năm mươi ki lô mét trên giờ"),
    ("60km/h", "sáu mươi ki lô mét trên giờ"),
    ("-5°C", "âm năm độ xê"),
    # a dash glued to a number is a minus; a dash then a space is a bullet
    ("-3", "âm ba"),
    ("nhiệt độ -3°C", "nhiệt độ âm ba độ xê"),
    ("giảm -5%", "giảm âm năm phần trăm"),
    ("(-3,5)", "(âm ba phẩy năm)"),
    ("\u22127", "âm bảy"),
    ("từ -2 đến 3°C", "từ âm hai đến ba độ xê"),
    ("- Thôn 1", "- Thôn một"),
    ("- 5 hộ nghèo", "- năm hộ nghèo"),
    # metres and centimetres, read as written; "1m2" is a square metre
    ("cao 1m70", "cao một mét bảy mươi"),
    ("1m5", "một mét năm"),
    ("rộng 2m5", "rộng hai mét năm"),
    ("từ 1m60-1m70", "từ một mét sáu mươi đến một mét bảy mươi"),
    ("1m2", "một mét vuông"),
    ("30 độ C", "ba mươi độ xê"),
    ("lãi suất 5%/năm", "lãi suất năm phần trăm một năm"),
    ("giá đất theo m²", "giá đất theo mét vuông"),
    # --- Roman numerals, only after a heading word or at the start of a heading line
    ("Quý II", "Quý hai"),
    ("Quý 4", "Quý bốn"),
    ("Chương IV", "Chương bốn"),
    ("Phần III", "Phần ba"),
    ("Đại hội XIII", "Đại hội mười ba"),
    ("thế kỷ XXI", "thế kỷ hai mươi mốt"),
    ("Quốc hội khóa XV", "Quốc hội khóa mười lăm"),
    ("Kỳ họp thứ IV", "Kỳ họp thứ tư"),
    ("Quý I/2025", f"Quý một năm {_2025}"),
    ("II. NỘI DUNG", "hai. NỘI DUNG"),
    ("V. NỘI DUNG", "năm. NỘI DUNG"),
    ("V. Tổ chức thực hiện", "năm. Tổ chức thực hiện"),
    ("I. Mục đích, yêu cầu", "một. Mục đích, yêu cầu"),
    ("Chương V. Điều 3", "Chương năm. Điều ba"),
    # one letter and a dot before a name is an initial
    ("V. Lênin", "V. Lênin"),
    ("X. Nguyễn", "X. Nguyễn"),
    ("Học tập tư tưởng của\nV. I. Lênin", "Học tập tư tưởng của\nV. I. Lênin"),
    (
        "Vitamin C và X-quang, ông Nguyễn Văn X, bằng lái hạng C",
        "Vitamin C và X-quang, ông Nguyễn Văn X, bằng lái hạng C",
    ),
    # --- abbreviations: whole words, all-caps keys case-sensitive
    ("UBND xã", "ủy ban nhân dân xã"),
    ("HĐND và UBMTTQ", "hội đồng nhân dân và ủy ban mặt trận tổ quốc"),
    ("MTTQ, CAX, CSGT", "mặt trận tổ quốc, công an xã, cảnh sát giao thông"),
    (
        "làm CCCD, CMND, BHYT, BHXH",
        "làm căn cước công dân, chứng minh nhân dân, bảo hiểm y tế, bảo hiểm xã hội",
    ),
    ("giải quyết TTHC", "giải quyết thủ tục hành chính"),
    ("trường THCS và THPT", "trường trung học cơ sở và trung học phổ thông"),
    (
        "công tác PCCC và PCTT-TKCN",
        "công tác phòng cháy chữa cháy và phòng chống thiên tai và tìm kiếm cứu nạn",
    ),
    ("phát triển KT-XH, VH-XH", "phát triển kinh tế xã hội, văn hóa xã hội"),
    ("Phòng GD-ĐT", "Phòng giáo dục và đào tạo"),
    ("xây dựng NTM", "xây dựng nông thôn mới"),
    ("HTX, GPMB, BCH", "hợp tác xã, giải phóng mặt bằng, ban chấp hành"),
    ("TP. Huế, TX Sơn Tây", "thành phố Huế, thị xã Sơn Tây"),
    ("QL1A", "quốc lộ một A"),
    ("ĐT 605", "đường tỉnh sáu trăm linh năm"),
    ("Đ/c Nguyễn Văn A", "đồng chí Nguyễn Văn A"),
    ("phòng chống COVID-19", "phòng chống cô vít mười chín"),
    ("Ubnd UBNDX", "Ubnd UBNDX"),
    # --- whole announcements
    (
        "UBND xã thông báo: từ 7h30 ngày 15/3/2025, thu phí 25.000đ/người, liên hệ 0912 345 678.",
        "ủy ban nhân dân xã thông báo: từ bảy giờ ba mươi phút ngày mười lăm tháng ba năm "
        f"{_2025}, thu phí hai mươi lăm nghìn đồng một người, liên hệ không chín một hai, "
        "ba bốn năm, sáu bảy tám.",
    ),
    (
        "Thông báo: Từ 7h00 đến 11h00 thứ 2 ngày 17/3/2025, UBND xã tổ chức tiêm chủng.",
        "Thông báo: Từ bảy giờ đến mười một giờ thứ hai ngày mười bảy tháng ba năm "
        f"{_2025}, ủy ban nhân dân xã tổ chức tiêm chủng.",
    ),
    (
        "Dự báo: mưa 50-100mm, gió cấp 6, nhiệt độ 18-20°C.",
        "Dự báo: mưa năm mươi đến một trăm mi li mét, gió cấp sáu, "
        "nhiệt độ mười tám đến hai mươi độ xê.",
    ),
    (
        "Hỗ trợ 1.500.000 đồng/hộ cho 25 hộ nghèo (2/3 số hộ đăng ký).",
        "Hỗ trợ một triệu năm trăm nghìn đồng một hộ cho hai mươi lăm hộ nghèo "
        "(hai phần ba số hộ đăng ký).",
    ),
    (
        "I. THỜI GIAN\n- Từ 7h30 ngày 2/9.\n\nII. ĐỊA ĐIỂM: Hội trường UBND xã",
        "một. THỜI GIAN\n- Từ bảy giờ ba mươi phút ngày mùng hai tháng chín.\n"
        "hai. ĐỊA ĐIỂM: Hội trường ủy ban nhân dân xã",
    ),
    (
        "Thực hiện Quyết định số 123/QĐ-UBND, đến 11/2024 đã có hơn 2/3 số hộ của 3/5 thôn "
        "nộp đủ; trực 24h/24h, nhiệt độ -3°C.",
        "Thực hiện Quyết định số một trăm hai mươi ba trên quyết định ủy ban nhân dân, đến "
        f"tháng mười một năm {_2024} đã có hơn hai phần ba số hộ của ba trên năm thôn nộp đủ; "
        "trực hai mươi tư trên hai mươi tư giờ, nhiệt độ âm ba độ xê.",
    ),
    # --- whitespace collapses; plain Vietnamese passes through
    ("  UBND   xã \t thông báo  ", "ủy ban nhân dân xã thông báo"),
    (
        "Chúng ta cùng nhau xây dựng quê hương giàu đẹp, văn minh!",
        "Chúng ta cùng nhau xây dựng quê hương giàu đẹp, văn minh!",
    ),
]


@pytest.mark.parametrize(("written", "spoken"), GOLDEN)
def test_golden(written: str, spoken: str) -> None:
    assert normalize(written) == spoken


def test_golden_table_is_big_enough_and_unique() -> None:
    inputs = [written for written, _ in GOLDEN]
    assert len(inputs) >= 80
    assert len(set(inputs)) == len(inputs)


@pytest.mark.parametrize(("written", "spoken"), GOLDEN)
def test_normalising_twice_changes_nothing(written: str, spoken: str) -> None:
    # Every golden output is already plain words: no digits, no abbreviation keys.
    assert normalize(spoken) == spoken


def test_no_digits_left_in_golden_outputs() -> None:
    leftovers = [spoken for _, spoken in GOLDEN if any(c.isdigit() for c in spoken)]
    assert leftovers == []


def test_abbreviations_argument_overrides_and_adds() -> None:
    operator = {"BCH": "ban chỉ huy", "XYZ": "xã Yên Zên", "Tt.": "thị trấn"}
    spoken = normalize("BCH quân sự XYZ, Tt. Phố Mới, UBND", abbreviations=operator)
    assert spoken == "ban chỉ huy quân sự xã Yên Zên, thị trấn Phố Mới, ủy ban nhân dân"
    # The built-in dictionary itself is untouched by an override.
    assert normalize("BCH") == "ban chấp hành"
    assert DEFAULT_ABBREVIATIONS["BCH"] == "ban chấp hành"


def test_abbreviations_argument_also_reads_document_codes() -> None:
    spoken = normalize("Quyết định 5/QĐ-UBND", abbreviations={"UBND": "ủy ban", "QĐ": "quy đê"})
    assert spoken == "Quyết định năm trên quy đê ủy ban"
    # Document codes are expanded only inside a document number.
    assert normalize("TT, CT, TB") == "TT, CT, TB"


def test_lower_case_keys_match_any_case_but_all_caps_keys_only_themselves() -> None:
    assert normalize("tp. Vinh và Tp. Vinh") == "thành phố Vinh và thành phố Vinh"
    assert normalize("Ubmttq") == "Ubmttq"


def test_an_override_may_contain_digits_which_are_then_read() -> None:
    assert normalize("F0 cách ly", abbreviations={"F0": "F 0"}) == "F không cách ly"


def test_nfd_input_is_read_like_nfc() -> None:
    nfc = "Ủy ban thông báo ngày 15/3 tại hội trường thôn Đồng Tiến"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    spoken = normalize(nfd)
    assert spoken == "Ủy ban thông báo ngày mười lăm tháng ba tại hội trường thôn Đồng Tiến"
    assert unicodedata.is_normalized("NFC", spoken)


def test_control_characters_and_invisible_marks_are_cleaned() -> None:
    assert normalize("UBND\x00xã\u200b thông\u00a0báo\r\nngày 2/9") == (
        "ủy ban nhân dân xã thông báo\nngày mùng hai tháng chín"
    )


_UGLY = (
    "0123456789" * 3
    + ".,.,//--::%%hHgGkKmMđĐ°²³º+()[]'\"!?;…\u2013\u2014  \n\t\x00\x07\u200b\u00a0\ud800"
    + "IVXLCDM IVX"
    + "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
    + "ngàythángthứquýchươngphầnkmkghahmlUBNDĐTQLTP"
)
# Whole pieces too, so that the rules meet each other in odd company.
_PIECE_TEXT = (
    "15/3/2025 7h30 07:30:00 0912.345.678 +84 1900 1.000.000 3,5 25% 5-7 -5°C km/h m² "
    "Quý Chương thứ ngày tháng mùng II. XIII 24/7 2/3 số nhà ĐT QL1A Đ/c 48h 7g "
    "1m70 -3 \u2212 24h/24h 11/2024 123/QĐ-UBND 100/2019/NĐ-CP V. Lênin hơn điểm thôn nửa"
)
_PIECES = [*_UGLY, *_PIECE_TEXT.split(" ")]
_WORD_TEXT = (
    "xã thôn bản làng người dân bà con cán bộ hội trường họp mặt chúc mừng năm mới "
    "ngày tháng năm giờ phút thứ hai ba tư chủ nhật sáng chiều tối mưa bão lũ "
    "Việt Nam Hà Nội quê hương đất nước hòa bình Ủy ban Hội đồng xin cảm ơn mời "
    "Xuân Tết thu hoạch lúa ngô khoai sắn trâu bò lợn gà Vinh Huế Phú Thọ"
)
_WORDS = _WORD_TEXT.split()


def test_no_crash_on_random_ugly_strings() -> None:
    rng = random.Random(20250315)
    for _ in range(3000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 40)))
        spoken = normalize(text)
        assert isinstance(spoken, str)
        assert "\x00" not in spoken


def test_no_crash_on_long_digit_runs_and_deep_groups() -> None:
    for text in ("9" * 5000, "1" + ".000" * 2000, "1,5" * 1000, "0" * 5000 + "/" + "1" * 5000):
        spoken = normalize(text)
        assert spoken
        assert not any(c.isdigit() for c in spoken)


def test_plain_vietnamese_passes_through_unchanged() -> None:
    rng = random.Random(7)
    for _ in range(500):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(1, 15))]
        sentence = " ".join(words) + rng.choice(("", ".", "!", "?", ","))
        assert normalize(sentence) == sentence


# --- the number-word helpers, directly ------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "không"),
        (4, "bốn"),
        (5, "năm"),
        (20, "hai mươi"),
        (31, "ba mươi mốt"),
        (44, "bốn mươi tư"),
        (55, "năm mươi lăm"),
        (101, "một trăm linh một"),
        (104, "một trăm linh bốn"),
        (1001, "một nghìn không trăm linh một"),
        (10_000, "mười nghìn"),
        (1_005_000, "một triệu không trăm linh năm nghìn"),
        (1_000_000_005, "một tỷ không trăm linh năm"),
        (2_500_000_000, "hai tỷ năm trăm triệu"),
        (-7, "âm bảy"),
    ],
)
def test_read_number(number: int, words: str) -> None:
    assert read_number(number) == words


def test_small_readers() -> None:
    assert read_digits("0912") == "không chín một hai"
    assert read_decimal("0", "05") == "không phẩy không năm"
    assert read_decimal("3", "14159") == "ba phẩy một bốn một năm chín"
    assert [read_ordinal(n) for n in (1, 2, 4, 5)] == ["nhất", "hai", "tư", "năm"]
    assert [read_month(n) for n in (1, 4, 12)] == ["một", "tư", "mười hai"]
    assert [read_day(n) for n in (1, 10, 11)] == ["mùng một", "mùng mười", "mười một"]
    assert read_written_number("1.000,5") == "một nghìn phẩy năm"
    assert read_written_number("abc") == "abc"
    assert read_clock(7) == "bảy giờ"
    assert read_clock(0, 5, 9) == "không giờ năm phút chín giây"
    assert [roman_value(r) for r in ("I", "IV", "IX", "XIV", "XXI")] == [1, 4, 9, 14, 21]
    assert roman_value("MCMXLV") == 1945


def test_read_phone_number_refuses_what_is_not_a_phone() -> None:
    assert read_phone_number("1800 599 920") == "một tám không không, năm chín chín, chín hai không"
    assert read_phone_number("0101234567") is None  # a tax code: 01 is no network
    assert read_phone_number("1234 5678") is None
    assert read_phone_number("091234") is None
