"""Many simulated speakers in one process, for benchmarks and demos.

    python -m drivers.sim.speaker --host 127.0.0.1 --port 1883 --site bench --count 1000

Speaker ids are `<prefix>-0001`..., spread round-robin over zones `zone-1`...`zone-K`.
Prints one line `ready <count>` on stdout once every speaker is connected, then runs
until SIGTERM or SIGINT and stops cleanly (a second signal exits at once).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Literal, cast

from drivers.sim.speaker import SimSpeakerSpec, SpeakerFleet

log = logging.getLogger("drivers.sim.speaker")

FDS_PER_SPEAKER = 3  # its MQTT socket, a download's socket, slack for the rest


def specs(count: int, prefix: str, zones: int) -> list[SimSpeakerSpec]:
    return [
        SimSpeakerSpec(id=f"{prefix}-{n:04d}", zone=f"zone-{(n - 1) % zones + 1}")
        for n in range(1, count + 1)
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m drivers.sim.speaker", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--site", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--prefix", default="spk")
    parser.add_argument("--zones", type=int, default=1)
    parser.add_argument("--speed", type=float, default=1.0, help="playback runs this much faster")
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    parser.add_argument("--tls-ca", type=Path, help="CA file: connect with TLS, check the broker")
    parser.add_argument("--downloads", type=int, default=100, help="HTTP downloads in flight")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.count < 1 or args.zones < 1:
        parser.error("--count and --zones must be at least 1")
    return args


def raise_fd_limit(needed: int) -> None:
    """A thousand sockets pass the common soft limit of 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            os._exit(130)  # the second signal: the user does not want to wait
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    started = time.monotonic()
    fleet = SpeakerFleet(
        host=args.host,
        port=args.port,
        site=args.site,
        speakers=specs(args.count, args.prefix, args.zones),
        speed=args.speed,
        protocol=cast("Literal['5', '3.1.1']", args.protocol),
        tls_ca_file=args.tls_ca,
        concurrent_downloads=args.downloads,
    )
    async with fleet:
        log.warning("%s speakers connected in %.2f s", len(fleet), time.monotonic() - started)
        sys.stdout.write(f"ready {len(fleet)}\n")
        sys.stdout.flush()
        await stop.wait()
        log.warning("stopping %s speakers", len(fleet))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    raise_fd_limit(args.count * FDS_PER_SPEAKER + args.downloads + 256)
    asyncio.run(serve(args))
    return 0
