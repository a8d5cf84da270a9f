"""Speaker dispatch benchmark: one broadcast to N simulated speakers; acks, starts, CPU, RSS.

    .venv/bin/python bench/dispatch.py                    # 1,000 speakers
    .venv/bin/python bench/dispatch.py --matrix           # 100, 1,000 and 10,000
    .venv/bin/python bench/dispatch.py --speakers 1000 --profile /tmp/prof

Everything runs on 127.0.0.1, each part in its own process: a private mosquitto, the
daemon (`loacam run`, N native speakers declared), the simulated speakers
(`python -m drivers.sim.speaker`, spread over --processes), and this process, which
sends `POST /api/v1/speakers/test-tone` to all and watches the commands, acks and
`started` events on MQTT with a client of its own. Prints its figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import os
import pstats
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import httpx
from dispatch_daemon import SITE, SpeakerDaemon
from dispatch_fleet import SpeakerProcesses, shares
from dispatch_observer import Observer, ObserverError
from dispatch_report import DaemonSide, SizeResult, Spread, Timings, describe, table, targets
from loacam_server import add_daemon_options
from procs import ServerError
from procstat import WindowSampler, cpu_times, machine_info, rss_mb, threads

from drivers.sim.broker import BrokerError, PrivateBroker
from drivers.sim.speaker_cli import raise_fd_limit

MATRIX = (100, 1000, 10000)
# config/mosquitto/loacam.conf's: the production broker's queue per client.
MAX_QUEUED_MESSAGES = 100_000
DROPPED = re.compile(r"Outgoing messages are being dropped for client (\S+?)\.?$", re.MULTILINE)
OUTBOX_WAIT_S = 30.0  # after the window, for the daemon to record every ack and start
SETTLE_S = 1.0  # before an RSS reading: let the last request's work finish
API_TIMEOUT_S = 300.0
FDS_SPARE = 500  # the broker's descriptors beyond one per speaker


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speakers", type=int, default=1000, help="simulated speakers (N)")
    parser.add_argument("--matrix", action="store_true", help="run 100, 1,000 and 10,000")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each size (default 1)")
    _setup_options(parser)
    add_daemon_options(parser, profile_file="loacam-N-R.prof")
    args = parser.parse_args(argv)
    if min(args.speakers, args.processes, args.repeat) < 1 or args.speed <= 0:
        parser.error("speakers, processes and repeat ≥ 1, speed > 0")
    return args


def _setup_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--processes",
        type=int,
        default=4,
        help="simulator processes the speakers are spread over (default 4: one process "
        "of 1,000 speakers is slower to answer than the daemon is to send)",
    )
    parser.add_argument(
        "--speed", type=float, default=10.0, help="simulated playback runs this much faster"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds after the dispatch to wait for every ack and start "
        "(default 60, or N/100 if more)",
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=300.0, help="seconds for speakers to come online"
    )
    parser.add_argument(
        "--mqtt-protocol",
        choices=("5", "3.1.1"),
        default="5",
        help="the daemon's MQTT link (its `mqtt.protocol`; default 5, as in production)",
    )
    parser.add_argument(
        "--max-queued",
        type=int,
        default=MAX_QUEUED_MESSAGES,
        help="mosquitto's max_queued_messages (default 100000, the production config's; "
        "0: no limit)",
    )


class SizeRun:
    """One size: broker, daemon, speakers, the broadcast, the figures; then all stopped."""

    def __init__(self, args: argparse.Namespace, count: int, run: int, tmp: Path) -> None:
        self.args = args
        self.count = count
        self.tmp = tmp / f"n{count}-{run}"
        self.shares = shares(count, args.processes)
        self.result = SizeResult(speakers=count, processes=len(self.shares), run=run)
        self.stage = "setup"
        self.broker: PrivateBroker | None = None
        self.profile: Path | None = None
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            self.profile = (args.profile / f"loacam-{count}-{run}.prof").resolve()

    async def run(self) -> SizeResult:
        with contextlib.ExitStack() as stack:
            try:
                await self._run(stack)
            except (BrokerError, ServerError, ObserverError, httpx.HTTPError, OSError) as exc:
                self.result.failure = f"{self.stage}: {exc}"
            if self.broker is not None:
                self.result.broker_drops = broker_drops(self.broker)
        if self.profile is not None and self.profile.exists():
            print(hot_spots(self.profile))
        return self.result

    async def _run(self, stack: contextlib.ExitStack) -> None:
        r = self.result
        self.stage = "descriptors"
        _check_fd_limit(self.count + FDS_SPARE)
        self.stage = "broker"
        # Started here, in the main thread: their parent-death signal follows it.
        broker = PrivateBroker(self.tmp / "mosquitto", max_queued_messages=self.args.max_queued)
        stack.enter_context(broker)
        self.broker = broker
        self.stage = "daemon"
        specs = [spec for share in self.shares for spec in share.specs]
        daemon = SpeakerDaemon(
            self.tmp / "loacam",
            broker.port,
            specs,
            profile=self.profile,
            tree=self.args.daemon_tree.resolve(),
            mqtt_protocol=self.args.mqtt_protocol,
        )
        stack.callback(daemon.stop_blocking)
        daemon.start_blocking()
        async with httpx.AsyncClient(
            base_url=daemon.base, headers=daemon.headers(), timeout=API_TIMEOUT_S
        ) as api:
            await daemon.wait_ready(api, 60 + self.count / 100)
            r.rss_baseline_mb = await _settled_rss(daemon.pid)
            r.threads_baseline = threads(daemon.pid) or 0
            self.stage = "speakers"
            fleet = SpeakerProcesses(
                self.tmp / "speakers", broker.port, SITE, self.shares, self.args.speed
            )
            stack.callback(fleet.stop_blocking)
            started = time.monotonic()
            fleet.start_blocking()
            r.connect_s = await fleet.wait_ready(self.args.connect_timeout)
            r.online = await daemon.wait_online(api, self.args.connect_timeout)
            r.online_s = time.monotonic() - started
            r.rss_online_mb = await _settled_rss(daemon.pid)
            if r.online < self.count:
                raise ServerError(
                    f"only {r.online} of {self.count} speakers online in the API"
                    + (f"; {_drops(broker)}" if broker_drops(broker) else "")
                )
            self.stage = "dispatch"
            await self._dispatch(api, broker, daemon, fleet)

    async def _dispatch(
        self,
        api: httpx.AsyncClient,
        broker: PrivateBroker,
        daemon: SpeakerDaemon,
        fleet: SpeakerProcesses,
    ) -> None:
        r = self.result
        timeout = self.args.timeout or max(60.0, self.count / 100)
        others = {"broker": [broker.pid or 0], "speakers": fleet.pids, "bench": [os.getpid()]}
        async with Observer("127.0.0.1", broker.port, SITE, expected=self.count) as observer:
            sampler = WindowSampler(daemon.pid, others=others, every_s=0.1)
            sampler.start()
            cpu_start = cpu_times(daemon.pid) or (0.0, 0.0)
            t0_wall, t0 = time.time(), time.monotonic()
            response = await api.post("/api/v1/speakers/test-tone", json={"targets": {"all": True}})
            r.api_ms = 1000 * (time.monotonic() - t0)
            if response.status_code != 202:
                raise ServerError(f"broadcast refused: {response.status_code} {response.text}")
            records = response.json()
            commands = {record["speaker_id"]: record["cmd_id"] for record in records}
            r.daemon_side = DaemonSide.of(records, t0_wall)
            r.commands = len(commands)
            await observer.wait_complete(max(1.0, t0 + timeout - time.monotonic()))
            r.window_s = time.monotonic() - t0
            cpu_end = cpu_times(daemon.pid) or cpu_start
            usage, r.others_cpu_percent, r.machine_percent = sampler.stop()
            r.daemon_cpu_s = sum(cpu_end) - sum(cpu_start)
            r.rss_after_mb = rss_mb(daemon.pid) or 0.0
            r.threads_after = threads(daemon.pid) or 0
            r.rss_peak_mb = usage.rss_peak_mb
            r.timings = Timings.of(observer.seen(commands, t0))
        await self._read_outbox(daemon, t0_wall, t0)

    async def _read_outbox(self, daemon: SpeakerDaemon, t0_wall: float, t0: float) -> None:
        """What the daemon itself recorded, once it has caught up (or OUTBOX_WAIT_S)."""
        deadline = time.monotonic() + OUTBOX_WAIT_S
        while True:
            outbox = await asyncio.to_thread(daemon.outbox_blocking, t0_wall)
            if outbox.complete or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        side = self.result.daemon_side or DaemonSide()
        side.acked = Spread.of(outbox.acked_s)
        side.started = Spread.of(outbox.started_s)
        side.resent = outbox.resent
        side.read_at_ms = 1000 * (time.monotonic() - t0)
        self.result.daemon_side = side
        self.result.rss_caught_up_mb = rss_mb(daemon.pid) or 0.0


def broker_drops(broker: PrivateBroker) -> list[str]:
    """Clients mosquitto dropped messages for: their queue (max_queued_messages) was full."""
    try:
        log = broker.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return sorted(set(DROPPED.findall(log)))


def _drops(broker: PrivateBroker) -> str:
    return "mosquitto dropped messages for " + ", ".join(broker_drops(broker))


async def _settled_rss(pid: int) -> float:
    await asyncio.sleep(SETTLE_S)
    return rss_mb(pid) or 0.0


def _check_fd_limit(needed: int) -> None:
    """The broker inherits this process's limit: one descriptor per speaker."""
    raise_fd_limit(needed)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise ServerError(f"open-file limit {soft} < {needed} needed (raise `ulimit -n`)")


def hot_spots(profile: Path, count: int = 15) -> str:
    """The daemon's main thread (the event loop): most own time, then the speaker path."""
    out = io.StringIO()
    stats = pstats.Stats(str(profile), stream=out)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(count)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(
        r"daemon/speakers|daemon/api/speakers|drivers/mqtt|drivers/speaker|aiomqtt", 25
    )
    return out.getvalue()


async def run_all(args: argparse.Namespace, tmp: Path) -> list[SizeResult]:
    results = []
    for count in MATRIX if args.matrix else (args.speakers,):
        for run in range(1, args.repeat + 1):
            print(f"\n{count:,} speakers, run {run}", flush=True)
            result = await SizeRun(args, count, run, tmp).run()
            print(describe(result), flush=True)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    info = machine_info()
    print("Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()))
    print(
        f"Broadcast: test tone (3 s WAV) to all, speakers at speed {args.speed:g}, "
        f"spread over {args.processes} processes; mosquitto max_queued_messages "
        f"{args.max_queued}; daemon's MQTT {args.mqtt_protocol}"
    )
    with tempfile.TemporaryDirectory(prefix="loacam-dispatch-") as tmp:
        results = asyncio.run(run_all(args, Path(tmp)))
    print("\n" + table(results))
    verdicts = targets(results)
    if verdicts:
        print("\nTargets (issue 5 point 8):")
        print("\n".join(verdicts))
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nLoad average after: {' '.join(load)}")
    if args.json:
        summary = {"machine": info, "results": [dataclasses.asdict(r) for r in results]}
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 1 if any(r.failure for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
