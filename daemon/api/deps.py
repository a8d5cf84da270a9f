"""Request dependencies: the app state, default-deny authentication, and roles.

`authenticate` is installed on the whole app, so a new route is protected by
being written; only endpoints decorated with `@public` skip it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status

from daemon.auth import Claims, InvalidTokenError, Role
from daemon.state import AppState
from daemon.store.users import get_user, record_audit

COOKIE = "loacam_session"
_PUBLIC_MARK = "__loacam_public__"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

F = TypeVar("F", bound=Callable[..., Any])


def public(endpoint: F) -> F:
    """Mark an endpoint as reachable without a login. Use sparingly."""
    setattr(endpoint, _PUBLIC_MARK, True)
    return endpoint


def is_public(request: Request) -> bool:
    route = request.scope.get("route")
    return bool(getattr(getattr(route, "endpoint", None), _PUBLIC_MARK, False))


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.loacam
    return state


State = Annotated[AppState, Depends(get_state)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def authenticate(request: Request, state: State) -> Claims | None:
    """Default deny: every non-public route needs a valid token from a live account."""
    if is_public(request):
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    from_cookie = False
    if scheme.lower() != "bearer" or not token:
        token = request.cookies.get(COOKIE, "")
        from_cookie = True
    if not token:
        raise unauthorized("Chưa đăng nhập (not authenticated)")
    try:
        claims = state.tokens.decode(token)
    except InvalidTokenError:
        raise unauthorized(
            "Phiên đăng nhập không hợp lệ hoặc đã hết hạn (invalid or expired token)"
        ) from None
    user = await get_user(state.store, claims.username)
    if user is None or user.disabled or user.role != claims.role:
        raise unauthorized("Tài khoản không còn hiệu lực (account no longer valid)")
    if from_cookie and request.method not in _SAFE_METHODS:
        _refuse_cross_site(request)
    return claims


def _refuse_cross_site(request: Request) -> None:
    # SameSite=Strict already keeps the cookie off cross-site requests; checking the
    # Origin as well protects browsers that ignore SameSite.
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="Yêu cầu từ trang khác bị từ chối (cross-site request)",
        )


async def principal(claims: Annotated[Claims | None, Depends(authenticate)]) -> Claims:
    if claims is None:  # a public endpoint asked for a user: a programming error
        raise unauthorized("Chưa đăng nhập (not authenticated)")
    return claims


Principal = Annotated[Claims, Depends(principal)]


def require_role(*roles: Role) -> Callable[[Claims], Awaitable[Claims]]:
    """A dependency admitting these roles; admin is always admitted."""
    allowed = frozenset(roles) | {Role.ADMIN}

    async def check(claims: Principal) -> Claims:
        if claims.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail="Tài khoản của bạn không có quyền này (forbidden for your role)",
            )
        return claims

    return check


async def audit(
    state: AppState, request: Request, claims: Claims, action: str, target: str, *, detail: str = ""
) -> None:
    """One audit-log line for a change a user made."""
    client = request.client.host if request.client else ""
    await record_audit(
        state.store,
        actor=claims.username,
        action=action,
        target=target,
        client=client,
        detail=detail,
    )
