"""Text-to-speech preview and the radio station's library of recordings."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from audio.tts import ENGINES
from daemon.api.deps import State, audit, require_role
from daemon.audio.records import MediaItem
from daemon.audio.service import AudioInputError, AudioUnavailableError
from daemon.auth import Claims, Role
from daemon.config_audio import VOICES, Voice

router = APIRouter(prefix="/api/v1", tags=["audio"])
# The radio station writes and uploads; leaders may listen to what is in the library.
Radio = Annotated[Claims, Depends(require_role(Role.RADIO))]
Listener = Annotated[Claims, Depends(require_role(Role.RADIO, Role.LEADER))]

LINK_TTL = timedelta(hours=1)  # how long a listening link from the API stays valid
VOICE_NAMES = {
    "vi": "Giọng Bắc (northern)",
    "vi-vn-x-central": "Giọng Trung (central)",
    "vi-vn-x-south": "Giọng Nam (southern)",
}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PreviewIn(Body):
    text: str = Field(min_length=1, max_length=50_000, description="The announcement text.")
    voice: Voice | None = Field(None, description="Voice; default: the configured one.")


class FallbackOut(BaseModel):
    engine: str
    error: str


class PreviewOut(BaseModel):
    normalized_text: str = Field(description="The text as the engine read it.")
    engine: str = Field(description="The engine that spoke it.")
    voice: str
    duration_s: float
    url: str = Field(description="Signed link to the audio, valid for an hour.")
    cached: bool = Field(description="True when it came from the cache.")
    fallbacks: list[FallbackOut] = Field(description="Engines that failed before this one.")


class VoiceOut(BaseModel):
    id: str
    name: str
    engines: list[str] = Field(description="Configured engines that speak it, in order.")


class MediaOut(BaseModel):
    id: str
    kind: str
    title: str
    duration_s: float
    size: int
    original_name: str
    source_codec: str
    created_by: str
    created_at: datetime
    url: str = Field(description="Signed link to the audio speakers get, valid for an hour.")


@contextlib.contextmanager
def _audio_errors() -> Iterator[None]:
    try:
        yield
    except AudioInputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    except AudioUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc


def _link(state: State, name: str) -> str:
    return state.media_signer.url(name, datetime.now(UTC) + LINK_TTL)


def _media_out(state: State, item: MediaItem) -> MediaOut:
    return MediaOut(
        id=item.id,
        kind=item.kind,
        title=item.title,
        duration_s=item.duration_s,
        size=item.size,
        original_name=item.original_name,
        source_codec=item.source_codec,
        created_by=item.created_by,
        created_at=item.created_at,
        url=_link(state, item.file),
    )


@router.post("/tts/preview", response_model=PreviewOut)
async def tts_preview(body: PreviewIn, state: State, _: Radio) -> PreviewOut:
    """Speak a text as the speakers would play it, and show how it was read."""
    with _audio_errors():
        spoken = await state.audio.speak(body.text, body.voice)
    return PreviewOut(
        normalized_text=spoken.normalized_text,
        engine=spoken.engine,
        voice=spoken.voice,
        duration_s=round(spoken.duration_s, 2),
        url=_link(state, spoken.file),
        cached=spoken.cached,
        fallbacks=[FallbackOut(engine=a.engine, error=a.error) for a in spoken.attempts],
    )


@router.get("/tts/voices", response_model=list[VoiceOut])
async def tts_voices(state: State, _: Listener) -> list[VoiceOut]:
    """The voices, and which configured engines speak each (gTTS has the northern one only)."""
    engines = state.config.audio.tts.engines
    return [
        VoiceOut(
            id=voice,
            name=VOICE_NAMES[voice],
            engines=[engine for engine in engines if voice in ENGINES[engine].voices],
        )
        for voice in VOICES
    ]


@router.get("/media", response_model=list[MediaOut])
async def list_media(state: State, _: Listener) -> list[MediaOut]:
    """Uploaded recordings, newest first."""
    return [_media_out(state, item) for item in await state.library.list_items()]


@router.get("/media/{item_id}", response_model=MediaOut)
async def get_media(item_id: str, state: State, _: Listener) -> MediaOut:
    item = await state.library.get_item(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Không có bản ghi này (no such item)")
    return _media_out(state, item)


@router.post("/media", response_model=MediaOut, status_code=201)
async def upload_media(
    request: Request,
    state: State,
    claims: Radio,
    filename: Annotated[str, Query(min_length=3, max_length=255, description="e.g. thong-bao.mp3")],
    title: Annotated[str | None, Query(max_length=200)] = None,
) -> MediaOut:
    """Upload a recording: the request body is the file itself (any common audio format).

    It is decoded in full before it is accepted, brought to the loudness target and
    converted to the speakers' format; a file that fails any check leaves nothing behind.
    """
    limit = state.config.audio.upload_max_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(state)
    name = Path(filename).name.strip() or "recording"
    incoming = state.media.directory / ".incoming"
    await asyncio.to_thread(incoming.mkdir, parents=True, exist_ok=True, mode=0o750)
    path = incoming / uuid.uuid4().hex
    try:
        await _receive(request, path, limit, state)
        with _audio_errors():
            item = await state.library.add_upload(
                path,
                title=(title or "").strip() or Path(name).stem[:200],
                original_name=name,
                created_by=claims.username,
            )
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    await audit(state, request, claims, "media.upload", item.id, detail=item.title)
    return _media_out(state, item)


async def _receive(request: Request, path: Path, limit: int, state: State) -> None:
    """Stream the body to `path`, refusing it as soon as it passes `limit` bytes."""
    received = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(state)
            # Chunks are at most a few tens of KB: a write to the page cache is quick.
            out.write(chunk)
    if received == 0:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="Tệp trống (the file is empty)"
        )


def _too_large(state: State) -> HTTPException:
    mb = state.config.audio.upload_max_mb
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"Tệp lớn quá {mb} MB (file larger than {mb} MB)",
    )


@router.delete("/media/{item_id}", status_code=204, response_class=Response)
async def delete_media(item_id: str, state: State, claims: Radio, request: Request) -> Response:
    """Remove a recording from the library."""
    item = await state.library.delete_item(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Không có bản ghi này (no such item)")
    await audit(state, request, claims, "media.delete", item.id, detail=item.title)
    return Response(status_code=204)
