"""A text-to-speech preview with no network at all, for tests/test_audio_api.py.

Run as `unshare --net -- python -m tests.netns_tts NETNS OUT_DIR`, NETNS being the
starter's own `network_namespace()`: the namespace has a loopback interface only, so
gTTS really tries to reach Google and finds no network (no proxy stands in for it).
The daemon runs with its default engine chain (gTTS, then espeak-ng) and a private
broker; the preview's JSON answer is printed and the audio it links to is saved in
OUT_DIR/preview.<ext>.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from daemon.auth import Role
from drivers.sim.broker import PrivateBroker
from tests.netns_discovery import require_private_namespace
from tests.speaker_rig import bearer, running_daemon, speaker_config

# About 500 characters, with a date, a time, an amount and "UBND".
ANNOUNCEMENT = (
    "UBND xã Phúc Hòa thông báo: từ 7h30 ngày 15/3/2025, xã tổ chức tiêm chủng mở rộng "
    "cho trẻ em dưới 5 tuổi tại trạm y tế xã. Phụ huynh mang theo sổ tiêm chủng và thẻ "
    "BHYT của trẻ. Mỗi hộ gia đình đóng góp 25.000 đồng cho quỹ phòng chống thiên tai "
    "năm 2025, nộp cho trưởng thôn trước ngày 30/4. Mọi thắc mắc xin liên hệ cán bộ văn "
    "hóa xã qua số điện thoại 0912 345 678 trong giờ hành chính. Đề nghị bà con nhân dân "
    "các thôn chú ý lắng nghe, theo dõi loa truyền thanh và thực hiện nghiêm túc. Xin trân "
    "trọng cảm ơn."
)


async def scene(out_dir: Path) -> dict[str, object]:
    with PrivateBroker(out_dir / "mosquitto") as broker:
        data = speaker_config(out_dir, broker.port, site="offline", speakers=[])
        async with running_daemon(data) as (_, api):
            answer = await api.post(
                "/api/v1/tts/preview",
                json={"text": ANNOUNCEMENT},
                headers=bearer(Role.RADIO, "radio"),
                timeout=120,
            )
            body = answer.json()
            result: dict[str, object] = {"status": answer.status_code, "body": body}
            if answer.status_code == 200:
                async with httpx.AsyncClient() as anyone:  # a signed link needs no login
                    audio = await anyone.get(body["url"])
                result["audio_status"] = audio.status_code
                result["audio_type"] = audio.headers.get("content-type", "")
                saved = out_dir / f"preview.{body['url'].split('?')[0].rsplit('.', 1)[1]}"
                saved.write_bytes(audio.content)
                result["audio_path"] = str(saved)
    return result


def main() -> None:
    starter_namespace, out_dir = int(sys.argv[1]), Path(sys.argv[2])
    require_private_namespace(starter_namespace)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        os.environ.pop(name, None)  # nothing between gTTS and the (absent) network
    sys.stdout.write(json.dumps(asyncio.run(scene(out_dir)), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
