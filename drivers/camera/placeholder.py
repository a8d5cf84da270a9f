"""The "signal lost" picture viewers get while a camera stream is reconnecting.

Drawn with Pillow and DejaVu Sans because OpenCV's Hershey fonts are ASCII only and
the message must read correctly in Vietnamese. Rendering blocks for a few
milliseconds (text layout and JPEG encoding): call it from a thread.
"""

from __future__ import annotations

import functools
import io
import logging
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

# Debian: fonts-dejavu-core.
FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
MESSAGE = "Mất tín hiệu — đang kết nối lại"
# Pillow's built-in font has no Vietnamese glyphs: without DejaVu, say it without marks.
MESSAGE_ASCII = "Mat tin hieu - dang ket noi lai"
BACKGROUND = (24, 26, 32)
FOREGROUND = (235, 235, 235)
MUTED = (160, 166, 178)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.cache
def _font(size: int) -> tuple[Font, bool]:
    """The font at `size` pixels, and whether it can draw Vietnamese."""
    try:
        return ImageFont.truetype(str(FONT_PATH), size), True
    except OSError:
        _warn_missing_font()
        return ImageFont.load_default(size), False


@functools.cache
def _warn_missing_font() -> None:
    # Cached: said once per process, not once per placeholder per second.
    log.warning("%s not found (Debian: fonts-dejavu-core); placeholder text in ASCII", FONT_PATH)


def render_placeholder_jpeg(
    width: int,
    height: int,
    *,
    camera_name: str | None = None,
    now: datetime | None = None,
    quality: int = 80,
) -> bytes:
    """A `width`x`height` JPEG: dark background, the message, the local time, the camera.

    Blocks (Pillow): call from a thread.
    """
    now = now or datetime.now().astimezone()
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    # Sized from the height so that a 640x360 tile and a 1280x720 full screen look alike;
    # the message is also shrunk to fit the width of a narrow picture.
    title_font, vietnamese = _font(max(10, height // 16))
    message = MESSAGE if vietnamese else MESSAGE_ASCII
    if draw.textlength(message, font=title_font) > width * 0.92:
        scale = width * 0.92 / draw.textlength(message, font=title_font)
        title_font, _ = _font(max(8, int(height // 16 * scale)))
    small_font, _ = _font(max(8, height // 24))
    lines: list[tuple[str, Font, tuple[int, int, int]]] = [
        (message, title_font, FOREGROUND),
        (now.strftime("%H:%M:%S  %d/%m/%Y"), small_font, MUTED),
    ]
    if camera_name:
        lines.insert(0, (camera_name if vietnamese else _ascii(camera_name), small_font, MUTED))
    _draw_centred(draw, lines, width, height)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _draw_centred(
    draw: ImageDraw.ImageDraw,
    lines: list[tuple[str, Font, tuple[int, int, int]]],
    width: int,
    height: int,
) -> None:
    boxes = [draw.textbbox((0, 0), text, font=font) for text, font, _ in lines]
    gap = height // 30
    total = sum(box[3] - box[1] for box in boxes) + gap * (len(lines) - 1)
    top = (height - total) / 2
    for (text, font, colour), box in zip(lines, boxes, strict=True):
        line_width, line_height = box[2] - box[0], box[3] - box[1]
        draw.text(((width - line_width) / 2 - box[0], top - box[1]), text, font=font, fill=colour)
        top += line_height + gap


def _ascii(text: str) -> str:
    return text.encode("ascii", errors="replace").decode("ascii")
