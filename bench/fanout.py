"""Live-view fan-out benchmark: M simulated cameras, N MJPEG viewers, loacam vs motion.

    .venv/bin/python bench/fanout.py --cameras 1 --viewers 10 --seconds 20
    .venv/bin/python bench/fanout.py --matrix          # the four configurations of issue 4

Everything runs on 127.0.0.1, each part in its own process: the RTSP simulators
(GStreamer, 720p 15 fps H.264), the ONVIF simulators (`sims.py`), a private mosquitto,
the viewers (`viewers.py`), and the server measured: `loacam run`, then Debian's
`motion` on the same RTSP sources with the same viewers, one after the other, never at
the same time. CPU and RSS are the measured server's own (/proc), over the measurement
window only, after a warm-up. Prints its figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pstats
import secrets
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loacam_server import REPO, LoacamServer, add_daemon_options
from measure import Measurement, NoFramesError, Scenario, measure, wait_for_frames
from motion_peer import MotionPeer
from procs import ServerError, spawn, stop
from procstat import machine_info
from report import compare, describe, table, targets

from drivers.sim.broker import BrokerError, PrivateBroker
from drivers.sim.rtsp import SimulatedRtsp, SimulatorError

MATRIX = (Scenario(1, 1), Scenario(1, 10), Scenario(1, 50), Scenario(4, 20))
SIZES = {"main": (1280, 720), "sub": (640, 360)}
FIRST_FRAME_TIMEOUT_S = 45.0  # motion opens a camera in ~4 s and streams it ~2 s later
JPEG_QUALITY = 80  # loacam's default; motion is set to the same


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=1, help="simulated cameras (M)")
    parser.add_argument("--viewers", type=int, default=10, help="MJPEG viewers in all (N)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window (T)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--stream", choices=sorted(SIZES), default="main")
    parser.add_argument(
        "--sources",
        choices=("shared", "per-camera"),
        default="shared",
        help="one RTSP simulator (one H.264 encoder) feeding every camera, or one per "
        "camera (four 720p encoders fill this 2-core machine by themselves)",
    )
    parser.add_argument("--fps", type=float, help="viewers ask loacam for at most this rate")
    parser.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure Debian's motion (default: yes)",
    )
    parser.add_argument("--matrix", action="store_true", help="run 1x1, 1x10, 1x50 and 4x20 (MxN)")
    parser.add_argument(
        "--viewer-processes", type=int, default=2, help="worker processes for the viewers"
    )
    add_daemon_options(parser, profile_file="loacam-MxN.prof")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.viewers < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("cameras and viewers ≥ 1, seconds > 0, warm-up ≥ 0")
    return args


@contextlib.contextmanager
def onvif_simulators(rtsp: list[SimulatedRtsp], password: str) -> Iterator[list[int]]:
    """`sims.py` in a child process; yields the ONVIF ports in camera order."""
    command = [sys.executable, str(Path(__file__).with_name("sims.py"))]
    command += [arg for server in rtsp for arg in ("--rtsp-port", str(server.port))]
    env = dict(os.environ, BENCH_CAMERA_PASSWORD=password, PYTHONPATH=str(REPO))
    process = spawn(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else b""
        if not line:
            raise ServerError("the ONVIF simulators did not start")
        yield [int(port) for port in json.loads(line)]
    finally:
        stop(process)


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.tmp = tmp
        cameras = max(s.cameras for s in self.scenarios())
        # Started here, in the main thread: their parent-death signal follows it.
        self.broker = stack.enter_context(PrivateBroker(tmp / "mosquitto"))
        servers = [
            stack.enter_context(SimulatedRtsp(label=f"cam{i}", fps=15, log_dir=tmp))
            for i in range(1, (1 if args.sources == "shared" else cameras) + 1)
        ]
        # Camera i's RTSP service. Shared: one server, so one encoder, feeds every camera
        # (each still its own RTSP session, decoded apart by the server under test).
        self.rtsp = [servers[i % len(servers)] for i in range(cameras)]
        self.camera_password = secrets.token_urlsafe(12)
        self.onvif_ports = stack.enter_context(onvif_simulators(self.rtsp, self.camera_password))

    def scenarios(self) -> tuple[Scenario, ...]:
        if self.args.matrix:
            return MATRIX
        return (Scenario(self.args.cameras, self.args.viewers),)

    def source_pids(self, scenario: Scenario) -> list[int]:
        servers = {id(server): server for server in self.rtsp[: scenario.cameras]}
        return [pid for server in servers.values() if (pid := server.pid)]

    def run_loacam(self, scenario: Scenario) -> Measurement:
        server = LoacamServer(
            workdir=self.tmp / f"loacam-{scenario.cameras}x{scenario.viewers}",
            broker_port=self.broker.port,
            onvif_ports=self.onvif_ports[: scenario.cameras],
            camera_password=self.camera_password,
            stream=self.args.stream,
            jpeg_quality=JPEG_QUALITY,
            profile=self._profile_path(scenario),
            tree=self.args.daemon_tree.resolve(),
        )
        try:
            server.start_blocking()
            urls = server.stream_urls(self.args.fps)
            wait_for_frames(urls, server.token, FIRST_FRAME_TIMEOUT_S)
            result = self._measure("loacam", scenario, server.pid, urls, server.token)
            result.server_stats = server.live_stats()
        except NoFramesError as exc:
            raise ServerError(f"loacam: {exc}\n{server.log_path}") from exc
        finally:
            server.stop_blocking()
        if server.profile is not None:
            print(hot_spots(server.profile))
        return result

    def _profile_path(self, scenario: Scenario) -> Path | None:
        directory: Path | None = self.args.profile
        if directory is None:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        return (directory / f"loacam-{scenario}.prof").resolve()

    def run_motion(self, scenario: Scenario) -> Measurement:
        width, height = SIZES[self.args.stream]
        peer = MotionPeer(
            workdir=self.tmp / f"motion-{scenario.cameras}x{scenario.viewers}",
            rtsp_urls=[server.url(self.args.stream) for server in self.rtsp[: scenario.cameras]],
            width=width,
            height=height,
            jpeg_quality=JPEG_QUALITY,
            # The same cap as loacam's viewers ask for (motion takes whole numbers).
            max_rate=max(1, round(self.args.fps)) if self.args.fps else 15,
        )
        try:
            peer.start_blocking()
            if not peer.wait_connected_blocking(FIRST_FRAME_TIMEOUT_S):
                raise ServerError(f"motion did not open its cameras:\n{peer.diagnostics()}")
            try:
                wait_for_frames(peer.stream_urls(), None, FIRST_FRAME_TIMEOUT_S)
            except NoFramesError as exc:
                raise ServerError(
                    f"motion delivers no frames: {exc}\n{peer.diagnostics()}"
                ) from exc
            result = self._measure("motion", scenario, peer.pid, peer.stream_urls(), None)
            peer.check_running()
        finally:
            peer.stop_blocking()
        return result

    def _measure(
        self, server: str, scenario: Scenario, pid: int, urls: list[str], token: str | None
    ) -> Measurement:
        return measure(
            server,
            scenario,
            pid=pid,
            urls=urls,
            token=token,
            warmup_s=self.args.warmup,
            seconds=self.args.seconds,
            workers=self.args.viewer_processes,
            source_pids=self.source_pids(scenario),
        )


def hot_spots(profile: Path, count: int = 12) -> str:
    """The functions of the daemon's main thread (the event loop) with most own time."""
    out = io.StringIO()
    stats = pstats.Stats(str(profile), stream=out)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(count)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    info = machine_info()
    print("Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()))
    width, height = SIZES[args.stream]
    print(
        f"Source: simulated cameras, {args.stream} stream {width}x{height} H.264 15 fps, "
        f"{args.sources} RTSP simulator(s); "
        f"JPEG quality {JPEG_QUALITY}; window {args.seconds:g} s after {args.warmup:g} s warm-up"
    )
    results: dict[Scenario, dict[str, Measurement]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="loacam-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        try:
            bench = Bench(args, Path(tmp), stack)
            for scenario in bench.scenarios():
                print(f"\n{scenario.cameras} camera(s) x {scenario.viewers} viewers", flush=True)
                by_server = results.setdefault(scenario, {})
                by_server["loacam"] = bench.run_loacam(scenario)
                print(describe(by_server["loacam"]), flush=True)
                if args.peer:
                    by_server["motion"] = bench.run_motion(scenario)
                    print(describe(by_server["motion"]))
                    print(compare(by_server["loacam"], by_server["motion"]), flush=True)
        except (BrokerError, SimulatorError, ServerError) as exc:
            print(f"fanout: {exc}", file=sys.stderr)
            return 1
    print("\n" + table(results))
    print("\nTargets (issue 4):")
    print("\n".join(targets(results)))
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nLoad average after: {' '.join(load)}")
    if args.json:
        args.json.write_text(json.dumps(_summary(info, results), indent=2), encoding="utf-8")
    return 0


def _summary(
    info: dict[str, str], results: dict[Scenario, dict[str, Measurement]]
) -> dict[str, object]:
    return {
        "machine": info,
        "results": [
            {
                "cameras": scenario.cameras,
                "viewers": scenario.viewers,
                "server": m.server,
                "fps_min": m.fps_min,
                "fps_median": m.fps_median,
                "latency_p50_ms": m.latency(50),
                "latency_p95_ms": m.latency(95),
                "cpu_percent": m.usage.cpu_percent,
                "rss_peak_mb": m.usage.rss_peak_mb,
                "others_cpu_percent": m.others_cpu,
                "machine_percent": m.machine_percent,
                "server_stats": m.server_stats,
                "placeholders": m.placeholders,
                "errors": m.errors,
            }
            for scenario, by_server in results.items()
            for m in by_server.values()
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
