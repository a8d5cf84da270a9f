"""The built-in abbreviation dictionary for announcements of a commune People's Committee.

Keys are matched as whole words. An all-capitals key matches only itself ("TP" but not "Tp");
a key with any lower-case letter matches in any case ("Tp." also matches "tp."). Operators add
to or override these entries from the YAML config (`normalize(text, abbreviations=...)`).

Where an abbreviation has two common readings, the one a commune office means most often is
chosen and the reason noted; an operator who means the other one overrides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DEFAULT_ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {
        # State bodies
        "UBND": "ủy ban nhân dân",
        "HĐND": "hội đồng nhân dân",
        "MTTQ": "mặt trận tổ quốc",
        "UBMTTQ": "ủy ban mặt trận tổ quốc",
        "CAX": "công an xã",
        "CSGT": "cảnh sát giao thông",
        "HTX": "hợp tác xã",
        # "ban chấp hành" (of the Party cell, the Youth Union) is meant more often than
        # "ban chỉ huy"; the military command is usually written out or as BCHQS.
        "BCH": "ban chấp hành",
        "BCHQS": "ban chỉ huy quân sự",
        "CBCC": "cán bộ công chức",
        "CBCCVC": "cán bộ, công chức, viên chức",
        "Đ/c": "đồng chí",
        # Places and roads
        "TP": "thành phố",
        "Tp.": "thành phố",
        "TP.HCM": "thành phố Hồ Chí Minh",
        "TPHCM": "thành phố Hồ Chí Minh",
        "TX": "thị xã",
        "QL": "quốc lộ",
        "VN": "Việt Nam",
        "CHXHCN": "cộng hòa xã hội chủ nghĩa",
        # "ĐT" followed by a road number is "đường tỉnh"; normalize handles that before this.
        "ĐT": "điện thoại",
        "SĐT": "số điện thoại",
        # Services and procedures
        "TTHC": "thủ tục hành chính",
        "BHYT": "bảo hiểm y tế",
        "BHXH": "bảo hiểm xã hội",
        "BHTN": "bảo hiểm thất nghiệp",
        "CCCD": "căn cước công dân",
        "CMND": "chứng minh nhân dân",
        "GCN": "giấy chứng nhận",
        "QSDĐ": "quyền sử dụng đất",
        "GPMB": "giải phóng mặt bằng",
        # Schools and fields of work
        "THCS": "trung học cơ sở",
        "THPT": "trung học phổ thông",
        "GD-ĐT": "giáo dục và đào tạo",
        "GD&ĐT": "giáo dục và đào tạo",
        "KT-XH": "kinh tế xã hội",
        "VH-XH": "văn hóa xã hội",
        "NTM": "nông thôn mới",
        "ANTT": "an ninh trật tự",
        "ATGT": "an toàn giao thông",
        "ATTP": "an toàn thực phẩm",
        "VSATTP": "vệ sinh an toàn thực phẩm",
        "KHHGĐ": "kế hoạch hóa gia đình",
        "LĐ-TB&XH": "lao động thương binh và xã hội",
        "TN&MT": "tài nguyên và môi trường",
        "NN&PTNT": "nông nghiệp và phát triển nông thôn",
        # Emergencies
        "PCCC": "phòng cháy chữa cháy",
        "PCTT": "phòng chống thiên tai",
        "TKCN": "tìm kiếm cứu nạn",
        "PCTT-TKCN": "phòng chống thiên tai và tìm kiếm cứu nạn",
        # Spoken as Vietnamese say the borrowed word, not spelled letter by letter.
        "COVID-19": "cô vít mười chín",
        "Covid-19": "cô vít mười chín",
        "COVID": "cô vít",
        "Covid": "cô vít",
        # Currencies, also when no number stands in front ("Đơn vị tính: VNĐ").
        "VNĐ": "đồng",
        "VND": "đồng",
        "vnđ": "đồng",
        "USD": "đô la Mỹ",
    }
)

# Units after a number, spelled as Vietnamese say the borrowed words; spaces rather than
# hyphens, which some engines read out.
UNIT_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "km/h": "ki lô mét trên giờ",
        "km²": "ki lô mét vuông",
        "km2": "ki lô mét vuông",
        "m²": "mét vuông",
        "m2": "mét vuông",
        "m³": "mét khối",
        "m3": "mét khối",
        "kWh": "ki lô oát giờ",
        "kW": "ki lô oát",
        "km": "ki lô mét",
        "cm": "xăng ti mét",
        "mm": "mi li mét",
        "m": "mét",
        "kg": "ki lô gam",
        "mg": "mi li gam",
        "ml": "mi li lít",
        "ha": "héc ta",
        "°C": "độ xê",
        "\u00baC": "độ xê",  # the masculine ordinal sign, typed for a degree sign
        "độ C": "độ xê",
        "°": "độ",
        "%": "phần trăm",
        "đ": "đồng",
    }
)
# Too short to be trusted after a space: "500g", "1,5l", "50k" (money), "5tr", "30p".
GLUED_UNIT_WORDS: Mapping[str, str] = MappingProxyType(
    {"k": "nghìn", "tr": "triệu", "g": "gam", "l": "lít", "ph": "phút", "p": "phút"}
)
# Units that TTS engines mangle even without a number in front ("giá đất theo m²").
STANDALONE_UNITS = ("km/h", "km²", "m²", "m³", "km", "kg", "cm", "mm", "°C")

# Codes in the number of an official document ("123/QĐ-UBND", "100/2019/NĐ-CP"), expanded
# only there: outside a document number "TT", "CT" or "TB" mean too many other things.
DOCUMENT_CODES: Mapping[str, str] = MappingProxyType(
    {
        # Kinds of document
        "QĐ": "quyết định",
        "NĐ": "nghị định",
        "NQ": "nghị quyết",
        "TT": "thông tư",
        "CT": "chỉ thị",
        "KH": "kế hoạch",
        "TB": "thông báo",
        "CV": "công văn",
        "HD": "hướng dẫn",
        "BC": "báo cáo",
        "TTr": "tờ trình",
        "GM": "giấy mời",
        # Who issues it
        "CP": "chính phủ",
        "TTg": "thủ tướng",
        "QH": "quốc hội",
        "UBTVQH": "ủy ban thường vụ quốc hội",
        "VP": "văn phòng",
        "UBND": "ủy ban nhân dân",
        "HĐND": "hội đồng nhân dân",
        "TU": "tỉnh ủy",
        "HU": "huyện ủy",
        "ĐU": "đảng ủy",
        "BTV": "ban thường vụ",
        "BTTTT": "bộ thông tin và truyền thông",
        "BTC": "bộ tài chính",
        "BYT": "bộ y tế",
        "BCA": "bộ công an",
        "BQP": "bộ quốc phòng",
        "BNV": "bộ nội vụ",
        "BTP": "bộ tư pháp",
        "BXD": "bộ xây dựng",
        "BGDĐT": "bộ giáo dục và đào tạo",
        "BTNMT": "bộ tài nguyên và môi trường",
        "BNNPTNT": "bộ nông nghiệp và phát triển nông thôn",
        "BLĐTBXH": "bộ lao động thương binh và xã hội",
    }
)
