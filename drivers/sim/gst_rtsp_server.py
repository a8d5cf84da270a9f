"""A simulated camera's RTSP service: GStreamer's RTSP server with two live test streams.

Run it with the system interpreter (`/usr/bin/python3`), which has PyGObject; the
project's virtual environment does not. `drivers.sim.rtsp.SimulatedRtsp` starts it.

    /usr/bin/python3 gst_rtsp_server.py --port 8554 --label motcua-1 [--fps 15]
        [--codec h264|h265] [--stop-after S --resume-after S]

`/main` is 1280x720 and `/sub` 640x360. The picture is a moving ball with the label,
the stream name, the wall clock to the millisecond and a frame counter burnt in. Once
the server accepts connections it prints `READY <port>` on stdout, one line. SIGTERM
or SIGINT ends it cleanly; a setup error is one plain line on stderr and exit status 1.

After `READY`, every RTSP client connection is reported on stdout as it comes and goes:
`CLIENT connected <n>` and `CLIENT closed <n>`, where `<n>` counts the connections
open at that moment; tests use it to check how many sessions a daemon opens.

The fault `--stop-after S --resume-after R`: after S seconds of serving, the service
disappears (the listening socket is closed, so new connections are refused, and every
client connection and session is torn down); after R seconds it comes back on the same
port, and the cycle repeats. Without `--resume-after` it never comes back.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import signal
import sys
from datetime import datetime
from typing import Any

import gi  # type: ignore[import-not-found]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # type: ignore[import-not-found]  # noqa: E402

STREAMS = {"main": (1280, 720), "sub": (640, 360)}
ENCODERS = {
    # tune=zerolatency: no B-frames and no look-ahead, so a frame leaves the encoder
    # as soon as it is captured; key-int-max=fps puts a keyframe every second so a
    # new viewer of the shared stream starts within a second.
    "h264": (
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps}"
        " ! rtph264pay name=pay0 pt=96 config-interval=1"
    ),
    "h265": (
        "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps}"
        " ! rtph265pay name=pay0 pt=96 config-interval=1"
    ),
}
ELEMENTS = {
    "h264": ("x264enc", "rtph264pay"),
    "h265": ("x265enc", "rtph265pay"),
}
COMMON_ELEMENTS = ("videotestsrc", "capsfilter", "textoverlay", "videoconvert")


class SetupError(Exception):
    """The server cannot run: a missing element, a port that cannot be bound."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Simulated camera RTSP server (GStreamer).")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8554, help="RTSP TCP port; 0 picks one")
    parser.add_argument("--fps", type=int, default=15, help="frames per second of both streams")
    parser.add_argument("--label", default="cam", help="text burnt into the picture")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument(
        "--stop-after", type=float, default=0.0, help="seconds of service before it disappears"
    )
    parser.add_argument(
        "--resume-after", type=float, default=0.0, help="seconds of absence before it returns"
    )
    args = parser.parse_args(argv)
    if args.fps <= 0:
        parser.error("--fps must be positive")
    if args.stop_after < 0 or args.resume_after < 0:
        parser.error("--stop-after and --resume-after cannot be negative")
    return args


def check_elements(codec: str) -> None:
    missing = [
        name
        for name in (*COMMON_ELEMENTS, *ELEMENTS[codec])
        if Gst.ElementFactory.find(name) is None
    ]
    if missing:
        raise SetupError(
            f"GStreamer element(s) not installed: {', '.join(missing)} (Debian: "
            "gstreamer1.0-plugins-base/-good/-ugly/-bad, gstreamer1.0-x)"
        )


def launch_line(width: int, height: int, fps: int, codec: str) -> str:
    # The overlay's text is replaced on every frame by a probe (see stamp_frames).
    return (
        f"( videotestsrc is-live=true pattern=ball"
        f" ! video/x-raw,width={width},height={height},framerate={fps}/1"
        " ! textoverlay name=overlay valignment=top halignment=left line-alignment=left"
        ' font-desc="Monospace 18" shaded-background=true'
        f" ! videoconvert ! {ENCODERS[codec].format(fps=fps)} )"
    )


def stamp_frames(overlay: Any, caption: str) -> None:
    """Write the wall clock (ms) and a frame counter onto every frame of one media.

    The probe runs on the overlay's input, in the streaming thread, just before the
    overlay draws that very frame: the time shown is when the frame was captured.
    """
    frames = itertools.count()

    def on_buffer(_pad: Any, _info: Any) -> Any:
        clock = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        overlay.set_property("text", f"{caption}\n{clock}\nframe {next(frames):06d}")
        return Gst.PadProbeReturn.OK

    overlay.get_static_pad("video_sink").add_probe(Gst.PadProbeType.BUFFER, on_buffer)


def report_clients(event: str, open_now: int) -> None:
    # Both signals are emitted from the main loop's thread (the default context the
    # server and its clients are attached to), so the lines cannot interleave.
    # A parent that went away (and closed the pipe) must not break the main loop.
    with contextlib.suppress(OSError):
        sys.stdout.write(f"CLIENT {event} {open_now}\n")
        sys.stdout.flush()


class CameraServer:
    """The RTSP server, its two mounts, and the stop/resume fault."""

    def __init__(self, args: argparse.Namespace, loop: Any) -> None:
        self.args = args
        self.loop = loop
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(args.address)
        self.server.set_service(str(args.port))
        self.source: Any = None
        self.medias: list[Any] = []
        mounts = self.server.get_mount_points()
        for stream, (width, height) in STREAMS.items():
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(launch_line(width, height, args.fps, args.codec))
            # Shared: every client of one mount is fed by one pipeline and one encoder.
            factory.set_shared(True)
            caption = f"{args.label}  {stream} {width}x{height} {args.codec}"
            factory.connect("media-configure", self.on_media_configure, caption)
            mounts.add_factory(f"/{stream}", factory)
        self.clients_open = 0
        self.server.connect("client-connected", self.on_client_connected)

    def on_client_connected(self, _server: Any, client: Any) -> None:
        self.clients_open += 1
        report_clients("connected", self.clients_open)
        client.connect("closed", self.on_client_closed)

    def on_client_closed(self, _client: Any) -> None:
        self.clients_open -= 1
        report_clients("closed", self.clients_open)

    def on_media_configure(self, _factory: Any, media: Any, caption: str) -> None:
        self.medias.append(media)
        media.connect("unprepared", self.on_media_unprepared)
        stamp_frames(media.get_element().get_by_name("overlay"), caption)

    def on_media_unprepared(self, media: Any) -> None:
        if media in self.medias:
            self.medias.remove(media)

    def serve(self) -> int:
        """Listen; return the bound port."""
        try:
            source = self.server.create_source(None)
        except GLib.Error as error:
            raise SetupError(
                f"cannot listen on {self.args.address}:{self.args.port}: {error.message}"
            ) from error
        source.attach(None)
        self.source = source
        port: int = self.server.get_bound_port()
        # A port picked by the system (--port 0) is kept for every resume.
        self.server.set_service(str(port))
        if self.args.stop_after > 0:
            GLib.timeout_add(int(self.args.stop_after * 1000), self.on_stop_due)
        return port

    def withdraw(self) -> None:
        """Close the listening socket and drop every client and session."""
        source, self.source = self.source, None
        if source is not None:
            # The source owns the listening socket: destroying it and dropping the
            # last reference closes the socket, so a new connection is refused
            # rather than left waiting in the backlog.
            source.destroy()
            del source
        self.server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
        self.server.get_session_pool().filter(
            lambda _pool, _session: GstRtspServer.RTSPFilterResult.REMOVE
        )

    def on_stop_due(self) -> bool:
        # Said first, so that a client that sees its session end finds it in the log.
        sys.stderr.write("service withdrawn (--stop-after)\n")
        self.withdraw()
        if self.args.resume_after > 0:
            GLib.timeout_add(int(self.args.resume_after * 1000), self.on_resume_due)
        return False  # GLib.SOURCE_REMOVE: a one-shot timer

    def on_resume_due(self) -> bool:
        try:
            self.serve()
        except SetupError as error:
            # Someone else took the port meanwhile: say so and try again shortly.
            sys.stderr.write(f"{error}; retrying in 1 s\n")
            GLib.timeout_add(1000, self.on_resume_due)
        else:
            sys.stderr.write("service resumed (--resume-after)\n")
        return False  # GLib.SOURCE_REMOVE: a one-shot timer

    def shut_down(self) -> bool:
        self.withdraw()
        # Stop the pipelines before the interpreter exits, so that no streaming
        # thread calls into a finalising interpreter through the overlay probe.
        for media in list(self.medias):
            media.unprepare()
        self.loop.quit()
        return False  # remove this handler: a second signal finds the loop gone


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    loop = GLib.MainLoop()
    try:
        check_elements(args.codec)
        camera = CameraServer(args, loop)
        port = camera.serve()
    except SetupError as error:
        sys.stderr.write(f"gst_rtsp_server: {error}\n")
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, camera.shut_down)
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
