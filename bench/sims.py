"""Simulated ONVIF cameras for the benchmark, in a process of their own.

    BENCH_CAMERA_PASSWORD=... python bench/sims.py --rtsp-port P [--rtsp-port P ...]

One camera per RTSP port, its profiles pointing at rtsp://127.0.0.1:P/main and /sub.
Prints one JSON line, the cameras' ONVIF ports in order, once they all answer; runs
until its standard input closes (the orchestrator ends) or SIGTERM/SIGINT. Kept out of
the measured daemon's process so their SOAP handling is not counted as loacam's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys

from drivers.sim.onvif import CameraIdentity, SimulatedOnvifCamera

USERNAME = "admin"


async def serve(rtsp_ports: list[int], password: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # End with the orchestrator even if it is killed: its end of our stdin (a pipe) closes.
    with contextlib.suppress(PermissionError):  # not a pipe (run by hand): signals only
        loop.add_reader(sys.stdin.fileno(), stop.set)
    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for index, rtsp_port in enumerate(rtsp_ports, start=1):
            camera = SimulatedOnvifCamera(
                username=USERNAME,
                password=password,
                rtsp_main=f"rtsp://127.0.0.1:{rtsp_port}/main",
                rtsp_sub=f"rtsp://127.0.0.1:{rtsp_port}/sub",
                identity=CameraIdentity(model="Bench", serial=f"BENCH-{index}"),
            )
            await stack.enter_async_context(camera)
            ports.append(camera.port)
        print(json.dumps(ports), flush=True)
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtsp-port", type=int, action="append", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.rtsp_port, os.environ["BENCH_CAMERA_PASSWORD"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
