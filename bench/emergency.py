"""Emergency pre-emption benchmark: how soon an emergency reaches N speakers, cuts the normal item.

    .venv/bin/python bench/emergency.py                          # 100 speakers, 3 runs
    .venv/bin/python bench/emergency.py --speakers 1000 --runs 5
    .venv/bin/python bench/emergency.py --matrix                 # 10, 100 and 1,000

Issue 7: "an emergency sent while a normal item plays reaches every online simulated
speaker within 2 s and pre-empts the normal item". Everything runs on 127.0.0.1, each
part in its own process: a private mosquitto, the daemon (`loacam run`, N native
speakers), the simulated speakers (`python -m drivers.sim.speaker`, spread over
--processes) and this process, which watches every `play` on MQTT with a client of its
own. Per run: a 60 s recording is broadcast to all as a normal item; once every speaker
plays it, `POST /api/v1/broadcasts` with an emergency *text*, spoken by espeak-ng
(never gTTS: the benchmark has no internet), timed from the POST to each speaker's ack,
its `started` of the emergency and its `finished`/`preempted` of the normal item; then
the same again with the same text, now from the render cache (the peer). Prints its
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from dispatch import broker_drops
from dispatch_daemon import SITE
from dispatch_fleet import SpeakerProcesses, shares
from dispatch_observer import ObserverError
from emergency_daemon import DaemonStamps, EmergencyDaemon
from emergency_observer import Play, PlayObserver
from emergency_report import Measurement, describe, summary, table
from loacam_server import add_daemon_options
from procs import ServerError
from procstat import WindowSampler, cpu_times, machine_info, rss_mb

from drivers.sim.broker import BrokerError, PrivateBroker
from drivers.sim.speaker_cli import raise_fd_limit

MATRIX = (10, 100, 1000)
RECORDING_S = 60.0  # the normal item: it must still play when the emergency comes
NEW_TEXT = "Tin khẩn cấp lần {run}: bão số 3 sắp đổ bộ, bà con không ra khơi, ở yên trong nhà."
STAMPS_WAIT_S = 15.0  # after the window, for the daemon to save what it recorded
API_TIMEOUT_S = 120.0
MAX_QUEUED = 100_000  # config/mosquitto/loacam.conf's max_queued_messages
FDS_SPARE = 500
# gTTS (any HTTPS client honouring the proxy variables) is sent to a port that refuses,
# so a wrong turn towards the internet fails at once and shows, instead of hanging.
REFUSING_PROXY = "http://127.0.0.1:9"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speakers", type=int, default=100, help="simulated speakers (N)")
    parser.add_argument("--matrix", action="store_true", help="run 10, 100 and 1,000")
    parser.add_argument("--runs", type=int, default=3, help="emergencies per size and text kind")
    parser.add_argument("--processes", type=int, default=4, help="simulator processes")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per window")
    parser.add_argument(
        "--connect-timeout", type=float, default=300.0, help="seconds for speakers to come online"
    )
    add_daemon_options(parser, profile_file="loacam-N.prof")
    args = parser.parse_args(argv)
    if min(args.speakers, args.processes, args.runs) < 1:
        parser.error("speakers, processes and runs ≥ 1")
    return args


def make_recording(path: Path) -> bytes:
    """RECORDING_S of a quiet tone, as an MP3 (ffmpeg's sine source)."""
    subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", f"sine=frequency=330:duration={RECORDING_S}", str(path)),
        ],
        check=True,
    )
    return path.read_bytes()


class Session:
    """One size: broker, daemon and speakers once, then every measurement on them."""

    def __init__(self, args: argparse.Namespace, count: int, tmp: Path, recording: bytes) -> None:
        self.args = args
        self.count = count
        self.tmp = tmp / f"n{count}"
        self.recording = recording
        self.results: list[Measurement] = []

    async def run(self) -> list[Measurement]:
        with contextlib.ExitStack() as stack:
            try:
                # The broker inherits this process's open-file limit: one per speaker.
                raise_fd_limit(self.count + FDS_SPARE)
                broker = PrivateBroker(self.tmp / "mosquitto", max_queued_messages=MAX_QUEUED)
                stack.enter_context(broker)
                await self._run(stack, broker)
            except (BrokerError, ServerError, ObserverError, httpx.HTTPError, OSError) as exc:
                self.results.append(Measurement(self.count, 0, "set-up", failure=str(exc)))
        return self.results

    async def _run(self, stack: contextlib.ExitStack, broker: PrivateBroker) -> None:
        split = shares(self.count, self.args.processes)
        specs = [spec for share in split for spec in share.specs]
        profile = None
        if self.args.profile is not None:
            self.args.profile.mkdir(parents=True, exist_ok=True)
            profile = (self.args.profile / f"loacam-{self.count}.prof").resolve()
        daemon = EmergencyDaemon(
            self.tmp / "loacam", broker.port, specs, profile=profile,
            tree=self.args.daemon_tree.resolve(),
        )  # fmt: skip
        stack.callback(daemon.stop_blocking)
        daemon.start_blocking()
        async with httpx.AsyncClient(
            base_url=daemon.base, headers=daemon.headers(), timeout=API_TIMEOUT_S
        ) as api:
            await daemon.wait_ready(api, 60 + self.count / 100)
            fleet = SpeakerProcesses(self.tmp / "speakers", broker.port, SITE, split, speed=1.0)
            stack.callback(fleet.stop_blocking)
            fleet.start_blocking()
            await fleet.wait_ready(self.args.connect_timeout)
            online = await daemon.wait_online(api, self.args.connect_timeout)
            if online < self.count:
                drops = broker_drops(broker)
                raise ServerError(f"only {online} of {self.count} speakers online; drops: {drops}")
            upload = await api.post(
                "/api/v1/media", params={"filename": "chuong-trinh.mp3"}, content=self.recording
            )
            upload.raise_for_status()
            media_id = upload.json()["id"]
            others = {"broker": [broker.pid or 0], "speakers": fleet.pids, "bench": [os.getpid()]}
            async with PlayObserver("127.0.0.1", broker.port, SITE) as observer:
                for run in range(1, self.args.runs + 1):
                    text = NEW_TEXT.format(run=run)
                    for kind in ("new text", "cached text"):
                        m = Measurement(self.count, run, kind)
                        try:
                            normal = await self._normal_playing(api, observer, media_id)
                            await self._emergency(
                                api=api, observer=observer, daemon=daemon, text=text,
                                normal=normal, m=m, others=others,
                            )  # fmt: skip
                        except (ServerError, httpx.HTTPError) as exc:
                            m.failure = str(exc)
                        print(describe(m), flush=True)
                        self.results.append(m)

    async def _normal_playing(
        self, api: httpx.AsyncClient, observer: PlayObserver, media_id: str
    ) -> dict[str, Play]:
        """Broadcast the recording to all as a normal item; its plays once all started."""
        since = time.monotonic()
        # The last run's items may still count as on air: this one is meant to overlap.
        body = {"media_id": media_id, "targets": {"all": True}, "title": "Chương trình",
                "on_conflict": "allow"}  # fmt: skip
        (await api.post("/api/v1/broadcasts", json=body)).raise_for_status()

        def playing() -> bool:
            plays = observer.plays("normal", since)
            return len(plays) == self.count and all(p.started_at for p in plays.values())

        if not await observer.wait(playing, self.args.timeout + self.count / 20):
            plays = observer.plays("normal", since)
            started = sum(1 for p in plays.values() if p.started_at)
            raise ServerError(f"the normal item started on {started} of {self.count} speakers")
        return observer.plays("normal", since)

    async def _emergency(
        self,
        *,
        api: httpx.AsyncClient,
        observer: PlayObserver,
        daemon: EmergencyDaemon,
        text: str,
        normal: dict[str, Play],
        m: Measurement,
        others: dict[str, list[int]],
    ) -> None:
        sampler = WindowSampler(daemon.pid, others=others, every_s=0.1)
        m.rss_before_mb = rss_mb(daemon.pid) or 0.0
        sampler.start()
        cpu_start = cpu_times(daemon.pid) or (0.0, 0.0)
        t0_wall, t0 = time.time(), time.monotonic()
        body = {"text": text, "targets": {"all": True}, "priority": "emergency", "title": "Bão"}
        answer = await api.post("/api/v1/broadcasts", json=body)
        m.api_ms = 1000 * (time.monotonic() - t0)
        answer.raise_for_status()

        def done() -> bool:
            taken = observer.plays("emergency", t0)
            return len(taken) == self.count and all(
                p.started_at is not None for p in taken.values()
            ) and all(p.finished_at is not None for p in normal.values())  # fmt: skip

        await observer.wait(done, self.args.timeout)
        m.window_s = time.monotonic() - t0
        cpu_end = cpu_times(daemon.pid) or cpu_start
        usage, m.others_cpu_percent, m.machine_percent = sampler.stop()
        m.daemon_cpu_s, m.rss_peak_mb = sum(cpu_end) - sum(cpu_start), usage.rss_peak_mb
        emergency = observer.plays("emergency", t0)
        m.observe(emergency, normal, t0)
        m.daemon = await self._stamps(daemon, answer.json()["id"], t0_wall)
        # The speakers idle again (the emergency spoken to its end) before the next item.
        await observer.wait(
            lambda: all(p.finished_at is not None for p in emergency.values()), self.args.timeout
        )

    async def _stamps(
        self, daemon: EmergencyDaemon, broadcast_id: str, t0_wall: float
    ) -> DaemonStamps:
        deadline = time.monotonic() + STAMPS_WAIT_S
        while True:
            stamps = await asyncio.to_thread(daemon.stamps_blocking, broadcast_id, t0_wall)
            complete = len(stamps.started_s) == self.count and None not in stamps.started_s
            if complete or time.monotonic() > deadline:
                return stamps
            await asyncio.sleep(0.5)


async def run_all(args: argparse.Namespace, tmp: Path) -> list[Measurement]:
    recording = await asyncio.to_thread(make_recording, tmp / "programme.mp3")
    results = []
    for count in MATRIX if args.matrix else (args.speakers,):
        print(f"\n{count:,} speakers", flush=True)
        results += await Session(args, count, tmp, recording).run()
    return results


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    for name in ("HTTPS_PROXY", "https_proxy"):
        os.environ[name] = REFUSING_PROXY  # the daemon inherits it
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"
    info = machine_info()
    print("Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()))
    print(
        f"Normal item: a {RECORDING_S:.0f} s recording; emergency: a text (espeak-ng), then "
        f"the same text cached; speakers at speed 1 over {args.processes} processes"
    )
    with tempfile.TemporaryDirectory(prefix="loacam-emergency-") as tmp:
        results = asyncio.run(run_all(args, Path(tmp)))
    print("\n" + table(results))
    print("\n" + summary(results))
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nLoad average after: {' '.join(load)}")
    if args.json:
        data = {"machine": info, "results": [dataclasses.asdict(r) for r in results]}
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 1 if any(r.failure for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
