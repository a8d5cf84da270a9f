"""One frame from an RTSP stream, for cameras whose snapshot URL is missing or broken."""

from __future__ import annotations

import os

import cv2

from drivers.camera.urls import redact

# FFmpeg options OpenCV passes on: RTSP over TCP (UDP loses packets on busy LANs).
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")


class GrabError(Exception):
    """No frame could be read from the stream."""


def grab_jpeg_blocking(url: str, timeout_s: float, quality: int = 85) -> bytes:
    """Open the stream, decode one frame, encode it as JPEG. Blocks: call from a thread."""
    timeout_ms = int(timeout_s * 1000)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        timeout_ms,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        timeout_ms,
    ]
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    try:
        if not capture.isOpened():
            raise GrabError(f"cannot open {redact(url)}")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise GrabError(f"no frame from {redact(url)}")
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise GrabError("JPEG encoding failed")
        return bytes(jpeg.tobytes())
    finally:
        capture.release()
