"""From a decided slot to speaker commands: audio, rules, targets, the outbox.

The engine decides that a slot airs; this turns it into one `play` command per
speaker (through the speaker outbox, so delivery is tracked per speaker). A relay's
stream is checked first, then passed to the speakers as a live play until its end
(daemon.broadcasts.relay). Every failure becomes DispatchError, whose message
(Vietnamese first) is stored with the execution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from daemon.audio.library import Library
from daemon.audio.service import AudioInputError, AudioService, AudioUnavailableError
from daemon.broadcasts.engine import DispatchError, local_text
from daemon.broadcasts.relay import RelayError, check_stream, relay_end
from daemon.broadcasts.store import BroadcastRecord, ExecutionRecord, Kind
from daemon.schedule.rules import Rules, capped_volume, held_back
from daemon.speakers.alarms import clear_alarm, raise_alarm
from daemon.speakers.dispatcher import DispatcherNotReadyError
from daemon.speakers.outbox import CommandRecord
from daemon.speakers.service import SpeakerService, TargetError, Targets
from daemon.store import Store
from drivers.speaker.model import Priority

log = logging.getLogger(__name__)

PRIORITY = {
    "normal": Priority.NORMAL,
    "priority": Priority.PRIORITY,
    "emergency": Priority.EMERGENCY,
}


def source_of(broadcast_id: str) -> str:
    """The `source` of the speaker commands of a broadcast (how its deliveries are found)."""
    return f"broadcast:{broadcast_id}"


@dataclass
class BroadcastDispatch:
    speakers: SpeakerService
    audio: AudioService
    library: Library
    rules: Rules

    async def __call__(self, broadcast: BroadcastRecord, execution: ExecutionRecord) -> None:
        # The real air time: after downtime a slot may air up to its lateness after it.
        airs_at = execution.fired_at or datetime.now(UTC)
        reason = held_back(self.rules, broadcast.priority, airs_at)
        if reason is not None:
            raise DispatchError(reason)
        try:
            speaker_ids = self.speakers.resolve(
                Targets(broadcast.targets.all, broadcast.targets.zones, broadcast.targets.speakers)
            )
            volume = (
                broadcast.volume
                if broadcast.priority == "emergency"
                else capped_volume(self.rules, broadcast.volume, airs_at)
            )
            if broadcast.kind is Kind.URL:
                records = await self._relay(broadcast, execution, speaker_ids, volume)
            else:
                records = await self.speakers.play(
                    speaker_ids,
                    await self._media(broadcast),
                    source=source_of(broadcast.id),
                    priority=PRIORITY[broadcast.priority],
                    volume=volume,
                    item_id=str(execution.id),
                )
        except (TargetError, AudioInputError, AudioUnavailableError, RelayError) as exc:
            raise DispatchError(str(exc)) from exc
        except DispatcherNotReadyError as exc:
            raise DispatchError(f"Chưa gửi được lệnh tới loa ({exc})") from exc
        except SQLAlchemyError as exc:
            raise DispatchError(f"Lỗi cơ sở dữ liệu (database error: {exc})") from exc
        except OSError as exc:  # a full disk while storing the speech
            raise DispatchError(f"Lỗi lưu tệp âm thanh (storage error: {exc})") from exc
        log.info(
            "broadcast %s: slot %s sent to %d speakers", broadcast.id, execution.slot, len(records)
        )

    async def _relay(
        self,
        broadcast: BroadcastRecord,
        execution: ExecutionRecord,
        speaker_ids: list[str],
        volume: int | None,
    ) -> list[CommandRecord]:
        if broadcast.url is None or broadcast.duration_s is None:
            raise DispatchError(
                "Tiếp sóng thiếu địa chỉ hoặc thời lượng (a relay needs a url and duration_s)"
            )
        ends_at = relay_end(broadcast, execution)
        # Checked at air time, not only at creation: a station is off air at times.
        await check_stream(broadcast.url)
        if ends_at <= datetime.now(UTC):
            raise DispatchError(
                f"Đã quá giờ kết thúc tiếp sóng lúc {local_text(ends_at)} "
                "(the relay's end has passed)"
            )
        return await self.speakers.play_stream(
            speaker_ids,
            broadcast.url,
            ends_at=ends_at,
            source=source_of(broadcast.id),
            item_id=str(execution.id),
            priority=PRIORITY[broadcast.priority],
            volume=volume,
        )

    async def _media(self, broadcast: BroadcastRecord) -> str:
        if broadcast.kind == Kind.TEXT and broadcast.text is not None:
            spoken = await self.audio.speak(
                broadcast.text, broadcast.voice, urgent=broadcast.priority == "emergency"
            )
            return spoken.file
        if broadcast.kind == Kind.MEDIA and broadcast.media_id is not None:
            item = await self.library.get_item(broadcast.media_id)
            if item is None:
                raise DispatchError("Bản ghi đã bị xóa khỏi thư viện (the recording was deleted)")
            return item.file
        raise DispatchError("Bản tin không có nội dung để phát (the broadcast has no content)")


@dataclass
class BroadcastAlarms:
    store: Store

    async def __call__(
        self, kind: str, message: str, *, subject: str = "broadcasts", active: bool = True
    ) -> None:
        now = datetime.now(UTC)
        if not active:
            log.info("broadcast alarm %s cleared: %s", kind, message)
            await clear_alarm(self.store, kind, subject, at=now, message=message)
            return
        log.warning("broadcast alarm %s: %s", kind, message)
        await raise_alarm(self.store, kind, subject, since=now, at=now, message=message)
