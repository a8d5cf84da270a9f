"""The day of broadcasts `loacam demo` ships, in one readable place.

So that a new user sees the schedule working, the demo starts with what a commune radio
station (đài truyền thanh xã) really airs: a morning and an evening programme every day,
a weekly notice for the village of the commune office, a reminder on the 1st and the 15th
of every lunar month, the chairman's greeting at Tết, and one short bulletin two minutes
after start, so that something airs during a first look. Times are Vietnam's wall-clock
times (Asia/Ho_Chi_Minh); the store keeps UTC. The texts are written as an operator
writes them (dates, 7h30, 200.000 đồng, UBND): the normaliser reads them out, and with no
internet espeak-ng speaks them (the TTS chain falls back to it by itself).

Seeding adds only what is missing: a programme's id is derived from its key (a UUID-5,
32 hex digits like every broadcast id), so a second seed of the same database adds
nothing. (`loacam demo` starts on a new temporary directory every time, so in practice
each start seeds a fresh database once.)

The first-look bulletin is a normal item. It is left out when its air time falls inside
quiet hours (by default 21:00 to 05:30): the engine would hold it back and the new user
would see a refusal instead of a broadcast. It is not made an emergency to get past them:
the demo shows the rules being kept, and the morning programme at 06:00 is then the first
thing that airs.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from daemon.broadcasts.store import (
    BroadcastRecord,
    Kind,
    Targets,
    get_broadcast,
    insert_broadcast,
)
from daemon.schedule.recurrence import LOCAL, Lunar, Schedule, occurrences
from daemon.schedule.rules import Rules, held_back
from daemon.store import Store

OWNER = "demo"  # `created_by` of the seeded broadcasts: no account, the demo wrote them
OFFICE_ZONE = "thon-trung"  # the village of the commune office, a zone of daemon.demo
FIRST_LOOK_DELAY = timedelta(minutes=2)
_NAMESPACE = uuid.UUID("6f1d5a52-3c1e-4f0e-9a57-2b8d0c7e4a10")


@dataclass(frozen=True)
class Programme:
    """One item of the demo day (a one-off if it has no rrule and no lunar date).

    `text` may name {hop_dan}, {luc} and {ngay}: dates filled in when seeding (`_fields`).
    """

    key: str
    title: str
    at: time  # Vietnam's time of day
    text: str
    rrule: str | None = None
    lunar: Lunar | None = None
    zones: tuple[str, ...] = ()  # none: every speaker
    priority: str = "normal"


MORNING = Programme(
    key="morning",
    title="Bản tin buổi sáng",
    at=time(6, 0),
    rrule="FREQ=DAILY;BYHOUR=6;BYMINUTE=0",
    text=(
        "Đài truyền thanh xã Phúc Hòa kính chào bà con. Mời bà con nghe bản tin buổi sáng.\n"
        "Thời tiết hôm nay: trời nhiều mây, chiều tối có mưa rào và dông rải rác, nhiệt độ "
        "từ 24 đến 31°C. Bà con ra đồng nhớ mang theo áo mưa, khi có dông không trú dưới "
        "gốc cây to.\n"
        "Lịch thời vụ: HTX nông nghiệp khuyến cáo bà con bón thúc cho lúa trong tuần này, "
        "mỗi sào bón 5kg đạm và 3kg kali; thăm đồng thường xuyên để phát hiện sớm rầy nâu.\n"
        "Thông báo: UBND xã tổ chức họp dân bàn việc làm đường giao thông nông thôn vào lúc "
        "19h30 ngày {hop_dan} tại nhà văn hóa các thôn. Mức đóng góp tự nguyện là "
        "200.000 đồng/hộ; hộ nghèo và gia đình chính sách được miễn. Đề nghị mỗi hộ cử một "
        "người đi họp đúng giờ.\n"
        "Bản tin sáng đến đây là hết. Chúc bà con một ngày làm việc vui vẻ."
    ),
)
EVENING = Programme(
    key="evening",
    title="Chương trình phát thanh buổi chiều",
    at=time(17, 30),
    rrule="FREQ=DAILY;BYHOUR=17;BYMINUTE=30",
    text=(
        "Đài truyền thanh xã Phúc Hòa xin kính chào bà con. Sau đây là chương trình phát "
        "thanh buổi chiều.\n"
        "Tin y tế: trạm y tế xã tiêm vắc xin sởi cho trẻ từ 9 tháng đến 2 tuổi, từ 7h30 đến "
        "11h00 sáng thứ Bảy tuần này. Bà con nhớ mang theo sổ tiêm chủng và thẻ BHYT của "
        "các cháu.\n"
        "Mùa mưa lũ, đề nghị các gia đình trông giữ con em, không để các cháu tắm sông, tắm "
        "ao một mình. Bà con tham gia giao thông nhớ đội mũ bảo hiểm, đã uống rượu bia thì "
        "không lái xe.\n"
        "Chương trình phát thanh buổi chiều đến đây là kết thúc. Cảm ơn bà con đã lắng nghe."
    ),
)
CITIZEN_RECEPTION = Programme(
    key="citizen-reception",
    title="Lịch tiếp công dân",
    at=time(7, 0),
    rrule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=7;BYMINUTE=0",
    zones=(OFFICE_ZONE,),
    text=(
        "UBND xã Phúc Hòa thông báo lịch tiếp công dân: sáng thứ Hai hằng tuần, từ 7h30 đến "
        "11h00, đồng chí Chủ tịch UBND xã trực tiếp tiếp công dân tại trụ sở UBND xã. Bà con "
        "có kiến nghị, phản ánh về đất đai, chính sách, TTHC xin mang theo CCCD và giấy tờ "
        "liên quan. Bộ phận một cửa làm việc cả sáng thứ Bảy, từ 7h30 đến 11h30."
    ),
)
LUNAR_FIRST = Programme(
    key="lunar-1",
    title="Nhắc việc ngày mùng Một",
    at=time(6, 30),
    lunar=Lunar(1),
    text=(
        "Hôm nay là ngày mùng Một âm lịch. Đài truyền thanh xã nhắc bà con: khi thắp hương, "
        "đốt vàng mã phải có người trông coi, để xa vật dễ cháy và dập tắt hẳn lửa trước khi "
        "ra khỏi nhà; không đốt vàng mã trên vỉa hè, lòng đường. Khi có cháy, hô hoán và báo "
        "ngay cho công an xã. Chúc bà con một tháng mới bình an, mạnh khỏe."
    ),
)
LUNAR_FULL_MOON = Programme(
    key="lunar-15",
    title="Nhắc việc ngày Rằm",
    at=time(6, 30),
    lunar=Lunar(15),
    text=(
        "Hôm nay là ngày Rằm. UBND xã đề nghị bà con đi lễ đình, chùa ăn mặc lịch sự, giữ "
        "trật tự, giữ vệ sinh chung, không đặt tiền lẻ lên tượng và chỉ thắp hương ở nơi quy "
        "định. Các gia đình chú ý phòng chống cháy nổ khi đun nấu, thắp hương. Chúc bà con "
        "và gia đình mạnh khỏe, bình an."
    ),
)
TET = Programme(
    key="tet",
    title="Thư chúc Tết của Chủ tịch UBND xã",
    at=time(7, 0),
    lunar=Lunar(1, 1),
    priority="priority",
    text=(
        "Kính thưa toàn thể bà con nhân dân xã Phúc Hòa!\n"
        "Trong giờ phút thiêng liêng chào đón năm mới, thay mặt Đảng ủy, HĐND, UBND, "
        "UBMTTQ xã, tôi xin gửi tới bà con, tới các gia đình chính sách, người cao tuổi và "
        "các cháu thiếu niên, nhi đồng lời chúc mừng năm mới tốt đẹp nhất.\n"
        "Năm qua, nhờ sự đồng lòng của bà con, xã ta đã giữ vững danh hiệu xã NTM, đời sống "
        "bà con ngày càng khấm khá. Năm mới, mong bà con tiếp tục chung sức xây dựng quê "
        "hương giàu đẹp, văn minh.\n"
        "Chúc bà con đón Tết vui tươi, lành mạnh, an toàn; chúc một năm mới an khang, thịnh "
        "vượng, vạn sự như ý!\n"
        "Chủ tịch UBND xã Phúc Hòa."
    ),
)
PROGRAMMES = (MORNING, EVENING, CITIZEN_RECEPTION, LUNAR_FIRST, LUNAR_FULL_MOON, TET)

# A one-off: it airs once, FIRST_LOOK_DELAY after the seed (`at` is not used).
FIRST_LOOK = Programme(
    key="first-look",
    title="Bản tin thử hệ thống",
    at=time(0, 0),
    text=(
        "Đây là bản tin thử của hệ thống truyền thanh thông minh xã Phúc Hòa, hẹn phát lúc "
        "{luc} ngày {ngay}. Lịch phát hằng ngày gồm bản tin buổi sáng lúc 6h00 và chương "
        "trình buổi chiều lúc 17h30. Xin cảm ơn bà con."
    ),
)


@dataclass(frozen=True)
class DemoDay:
    """The demo day's broadcasts (planned, or added by a seed); when the first look airs."""

    broadcasts: tuple[BroadcastRecord, ...]
    first_look_at: datetime | None  # when the first-look bulletin airs; None: not added
    quiet: str | None = None  # why it was left out (held_back's words), if for quiet hours


def broadcast_id(key: str) -> str:
    return uuid.uuid5(_NAMESPACE, f"loacam-demo/{key}").hex


def _written(day: date) -> str:
    return f"{day.day}/{day.month}/{day.year}"  # as an operator writes it: 15/3/2025


def _fields(now: datetime, first_look_at: datetime) -> dict[str, str]:
    # A date written into a daily programme goes stale: the meeting is a week after the seed.
    today = now.astimezone(LOCAL).date()
    air = first_look_at.astimezone(LOCAL)
    return {
        "hop_dan": _written(today + timedelta(days=7)),
        "luc": f"{air.hour}h{air.minute:02d}",
        "ngay": _written(air.date()),
    }


def first_air_blocking(programme: Programme, now: datetime) -> datetime:
    """The programme's first air time after `now`, in UTC (CPU work: lunar calendars)."""
    local_now = now.astimezone(LOCAL)
    anchor = datetime.combine(local_now.date(), programme.at, LOCAL)
    if anchor <= local_now:
        anchor += timedelta(days=1)  # Vietnam has no daylight saving: a day is 24 h
    schedule = Schedule(anchor, rrule=programme.rrule, lunar=programme.lunar)
    (first,) = occurrences(schedule, now, 1)
    return first


def _record(programme: Programme, text: str, start: datetime, now: datetime) -> BroadcastRecord:
    lunar = programme.lunar
    return BroadcastRecord(
        id=broadcast_id(programme.key),
        title=programme.title,
        kind=Kind.TEXT,
        targets=Targets(all=not programme.zones, zones=programme.zones),
        priority=programme.priority,
        start_at=start.astimezone(UTC),
        created_by=OWNER,
        created_at=now,
        updated_at=now,
        text=text,
        rrule=programme.rrule,
        lunar_day=lunar.day if lunar is not None else None,
        lunar_month=lunar.month if lunar is not None else None,
    )


def plan_blocking(now: datetime, rules: Rules) -> DemoDay:
    """The demo day as of `now` (aware): every broadcast a seed of an empty store adds."""
    first_look_at = (now + FIRST_LOOK_DELAY).replace(microsecond=0)
    fields = _fields(now, first_look_at)
    records = [
        _record(p, p.text.format(**fields), first_air_blocking(p, now), now) for p in PROGRAMMES
    ]
    quiet = held_back(rules, "normal", first_look_at)
    if quiet is not None:
        return DemoDay(tuple(records), None, quiet)
    text = FIRST_LOOK.text.format(**fields)
    records.append(_record(FIRST_LOOK, text, first_look_at, now))
    return DemoDay(tuple(records), first_look_at)


async def seed_demo_day(store: Store, now: datetime, rules: Rules) -> DemoDay:
    """Add the demo day's broadcasts that `store` does not have yet."""
    # Walking lunar calendars is CPU work: off the event loop, as the API does.
    planned = await asyncio.to_thread(plan_blocking, now, rules)
    added = []
    for record in planned.broadcasts:
        if await get_broadcast(store, record.id) is None:
            await insert_broadcast(store, record)
            added.append(record)
    # A first-look bulletin seeded before (the same database again) is not announced anew.
    first_look = broadcast_id(FIRST_LOOK.key) in {record.id for record in added}
    return DemoDay(tuple(added), planned.first_look_at if first_look else None, planned.quiet)
