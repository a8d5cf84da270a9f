"""Signed media URLs: how a speaker downloads audio without a login."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse

from daemon.api.deps import State, public
from daemon.media import MEDIA_TYPES, MediaError, is_media_name

router = APIRouter(tags=["media"])

_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_REFUSED = "Đường dẫn không hợp lệ hoặc đã hết hạn (invalid or expired media link)"


@router.get("/media/{name}", response_class=Response)
@public
async def media_file(
    name: str,
    state: State,
    request: Request,
    exp: Annotated[str, Query()] = "",
    sig: Annotated[str, Query()] = "",
) -> Response:
    """One audio file, for whoever holds an unexpired signature over its name."""
    # Same answer for a bad name, a missing, bad or expired signature: nothing to probe.
    if (
        not is_media_name(name)
        or not (exp.isdigit() and len(exp) <= 12)
        or not _SIGNATURE.match(sig)
        or not state.media_signer.check(name, int(exp), sig)
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=_REFUSED)
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]
    if "range" in request.headers:
        # Part of a file (a browser seeking, a speaker resuming): Starlette's file
        # response answers ranges, 206 and 416 by the book.
        return _whole_or_part(state, name, media_type)
    try:
        data = await state.media.small_file(name)
    except MediaError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail="Không có tệp này (no such file)"
        ) from None
    if data is not None:
        return Response(data, media_type=media_type, headers={"Accept-Ranges": "bytes"})
    return _whole_or_part(state, name, media_type)


def _whole_or_part(state: State, name: str, media_type: str) -> Response:
    path = state.media.path(name)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Không có tệp này (no such file)")
    return FileResponse(path, media_type=media_type)
