"""Simulated native speakers (docs/mqtt-speakers.md), many in one asyncio process.

    spec = SimSpeakerSpec("loa-1", zone="thon-1")
    async with SpeakerFleet(host=..., port=..., site="test", speakers=[spec]) as fleet:
        await fleet["loa-1"].wait_for(lambda s: len(s.plays) == 1)

Each speaker is a real MQTT client of the broker and downloads its audio over HTTP like
a device would; `speed` divides the playback time so tests need not wait for it.
For benchmarks: `python -m drivers.sim.speaker --help` (see `speaker_cli.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from drivers.sim.speaker_device import SimulatedSpeaker
from drivers.sim.speaker_link import SpeakerLink
from drivers.sim.speaker_media import MediaLibrary
from drivers.sim.speaker_protocol import PlayRecord, SimSpeakerSpec, SpeakerFaults

__all__ = [
    "PlayRecord",
    "SimSpeakerSpec",
    "SimulatedSpeaker",
    "SpeakerFaults",
    "SpeakerFleet",
]

CONNECTS_IN_FLIGHT = 50


class SpeakerFleet:
    """Speakers of one site; `async with` returns once every one is connected and announced."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        site: str,
        speakers: Sequence[SimSpeakerSpec],
        speed: float = 1.0,
        protocol: Literal["5", "3.1.1"] = "5",
        password: Callable[[str], str | None] | None = None,
        tls_ca_file: Path | None = None,
        concurrent_downloads: int = 100,
        ready_timeout_s: float = 60.0,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        ids = [spec.id for spec in speakers]
        if len(set(ids)) != len(ids):
            raise ValueError("speaker ids must be unique")
        self.site = site
        self._link = SpeakerLink(host, port, site, speed, protocol, password)
        self._specs = list(speakers)
        self._tls_ca_file = tls_ca_file
        self._ready_timeout_s = ready_timeout_s
        self.media = MediaLibrary(concurrent_downloads=concurrent_downloads)
        self._speakers: dict[str, SimulatedSpeaker] = {}

    def __getitem__(self, speaker_id: str) -> SimulatedSpeaker:
        return self._speakers[speaker_id]

    def __iter__(self) -> Iterator[SimulatedSpeaker]:
        return iter(self._speakers.values())

    def __len__(self) -> int:
        return len(self._speakers)

    async def __aenter__(self) -> SpeakerFleet:
        link = self._link
        if self._tls_ca_file is not None:
            # reads the CA file: in a thread, like any file I/O under the event loop
            context = await asyncio.to_thread(
                ssl.create_default_context, cafile=str(self._tls_ca_file)
            )
            link = dataclasses.replace(link, tls_context=context)
        await self.media.__aenter__()
        slots = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        for spec in self._specs:
            speaker = SimulatedSpeaker(spec, link=link, media=self.media, connect_slots=slots)
            self._speakers[spec.id] = speaker
            speaker.start()
        try:
            async with asyncio.timeout(self._ready_timeout_s):
                for speaker in self._speakers.values():
                    await speaker.wait_ready()
        except TimeoutError:
            await self._stop_all()
            missing = [s.spec.id for s in self._speakers.values() if s.connects == 0]
            raise TimeoutError(
                f"{len(missing)} speakers not connected to {link.host}:{link.port} within "
                f"{self._ready_timeout_s} s (first: {', '.join(missing[:5])}); see the log"
            ) from None
        except BaseException:
            await self._stop_all()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop_all()

    async def _stop_all(self) -> None:
        try:
            await asyncio.gather(*(speaker.stop() for speaker in self._speakers.values()))
        finally:
            await self.media.__aexit__()


if __name__ == "__main__":
    from drivers.sim.speaker_cli import main

    sys.exit(main())
