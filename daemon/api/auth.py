"""Login and logout."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from daemon.api.deps import COOKIE, Principal, State, public
from daemon.auth import Role, verify_password_blocking
from daemon.store.users import get_user, record_audit

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_at: datetime
    role: Role


class Me(BaseModel):
    username: str
    role: Role
    expires_at: datetime


@router.post("/login")
@public
async def login(
    body: LoginRequest, request: Request, response: Response, state: State
) -> TokenResponse:
    """Exchange a user name and password for a token (also set as an HttpOnly cookie)."""
    client = request.client.host if request.client else "unknown"
    username = body.username.strip().lower()
    wait = state.throttle.reserve(client, username)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="Đăng nhập sai quá nhiều lần, vui lòng thử lại sau (too many failed logins)",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = await get_user(state.store, username)
    stored_hash = user.password_hash if user is not None and not user.disabled else None
    # argon2 is deliberately slow: keep it off the event loop.
    if user is None or not await asyncio.to_thread(
        verify_password_blocking, stored_hash, body.password
    ):
        # A password typed into the name field must not reach the journal: unknown
        # names are not repeated.
        actor = username if user is not None else "(unknown)"
        await record_audit(state.store, actor=actor, action="login.failed", client=client)
        log.info("auth: failed login for %s from %s", actor, client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Sai tên đăng nhập hoặc mật khẩu (wrong user name or password)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    state.throttle.forgive(client, username)
    token, claims = state.tokens.issue(user.username, Role(user.role))
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(state.tokens.ttl.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=state.config.http.cookie_secure,
        path="/",
    )
    await record_audit(state.store, actor=user.username, action="login", client=client)
    return TokenResponse(access_token=token, expires_at=claims.expires_at, role=claims.role)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(claims: Principal, response: Response) -> None:
    """Forget the browser's cookie. (A bearer token stays valid until it expires.)"""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    del claims


@router.get("/me")
async def me(claims: Principal) -> Me:
    """Who the token belongs to."""
    return Me(username=claims.username, role=claims.role, expires_at=claims.expires_at)
