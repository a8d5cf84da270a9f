"""Signed media URLs: how a speaker downloads audio without a login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import FileResponse

from daemon.api.deps import State, public
from daemon.media import MEDIA_TYPES, MediaError, is_media_name

router = APIRouter(tags=["media"])

_REFUSED = "Đường dẫn không hợp lệ hoặc đã hết hạn (invalid or expired media link)"


@router.get("/media/{name}", response_class=Response)
@public
async def media_file(
    name: str,
    state: State,
    exp: Annotated[int, Query(ge=0)],
    sig: Annotated[str, Query(pattern="^[0-9a-f]{64}$")],
) -> Response:
    """One audio file, for whoever holds an unexpired signature over its name."""
    # Same answer for a bad name, a bad signature and an expired one: nothing to probe.
    if not is_media_name(name) or not state.media_signer.check(name, exp, sig):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=_REFUSED)
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]
    try:
        data = await state.media.small_file(name)
    except MediaError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail="Không có tệp này (no such file)"
        ) from None
    if data is not None:
        return Response(data, media_type=media_type)
    return FileResponse(state.media.path(name), media_type=media_type)
