"""The HTTP API's gate: default deny, login, roles, cookies, throttling, no secrets out."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastapi.routing
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from starlette.routing import Mount

from daemon.app import create_app
from daemon.auth import LoginThrottle, Role, TokenService, hash_password_blocking
from daemon.config import SecretSources
from daemon.config_loader import parse_config
from daemon.service import build_state
from daemon.state import AppState
from daemon.store import Store
from daemon.store.schema import audit_log, users
from daemon.store.users import add_user

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/"),  # the login page
    ("GET", "/static/x1"),  # its static files
    ("GET", "/media/x1"),  # signed media URLs: the signature is the credential
}
MQTT_SECRET = "mqtt-Secret-42"
PASSWORDS = {role: f"{role.value}-password-1" for role in Role}


@functools.cache
def password_hash(role: Role) -> str:
    return hash_password_blocking(PASSWORDS[role])  # argon2 is slow on purpose: hash once


@dataclass
class Api:
    app: FastAPI
    state: AppState
    client: httpx.AsyncClient

    async def token(self, role: Role) -> str:
        response = await self.client.post(
            "/api/v1/auth/login", json={"username": role.value, "password": PASSWORDS[role]}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def as_role(self, role: Role, method: str, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self.token(role)}"}
        return await self.client.request(method, path, headers=headers)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    text = (
        f"site: t\nstorage: {{path: {tmp_path}}}\nmqtt: {{port: 1, password: {MQTT_SECRET}}}\n"
        "auth: {max_failed_logins: 3}\n"
    )
    config = parse_config(text, "t.yaml", SecretSources({}, None))
    store = await Store.open(tmp_path)
    for role in Role:
        await add_user(store, role.value, role.value, password_hash(role))
    # Nothing is started: MQTT reads as down, no camera, no capture.
    state = build_state(config, store, b"k" * 32)
    app = create_app(state)
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://loacam.test") as client:
        yield Api(app, state, client)
    await store.close()


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) for every route the app has, path parameters filled in.

    FastAPI 0.165 keeps included routers nested; `iter_route_contexts` (what its own
    OpenAPI generator walks) flattens them. Older versions list routes flat.
    """
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    contexts = list(iterate(app.routes)) if iterate is not None else list(app.routes)
    found: list[tuple[str, str]] = []
    for context in contexts:
        original = getattr(context, "original_route", context)
        path = re.sub(r"\{[^}]+\}", "x1", context.path)
        if isinstance(original, Mount):
            found.append(("GET", path.rstrip("/") + "/x1"))
        else:
            methods = sorted(context.methods or {"GET"})
            found += [(method, path) for method in methods if method != "HEAD"]
    # Guard against a future FastAPI hiding routes from this walk: it must see every
    # operation the OpenAPI schema documents.
    documented = {
        (method.upper(), re.sub(r"\{[^}]+\}", "x1", path))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert documented <= set(found), documented - set(found)
    return found


async def test_every_route_but_the_public_ones_needs_a_token(api: Api) -> None:
    routes = every_route(api.app)
    assert ("GET", "/metrics") in routes
    assert ("GET", "/openapi.json") in routes
    assert ("GET", "/docs") in routes
    assert set(routes) >= PUBLIC
    for method, path in routes:
        response = await api.client.request(method, path, json={})
        if (method, path) in PUBLIC:
            assert response.status_code != 401, (method, path)
            if path.startswith("/media/"):  # unsigned: refused all the same
                assert response.status_code in {403, 422}, response.status_code
        else:
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"


async def test_forged_and_expired_tokens_are_refused(api: Api) -> None:
    forged = TokenService(b"z" * 32, timedelta(minutes=5)).issue("admin", Role.ADMIN)[0]
    issued_long_ago = datetime.now(UTC) - api.state.tokens.ttl - timedelta(minutes=1)
    expired = api.state.tokens.issue("admin", Role.ADMIN, now=issued_long_ago)[0]
    for token in (forged, expired, "not-a-jwt"):
        response = await api.client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401


async def test_wrong_password_and_unknown_user_get_401(api: Api) -> None:
    for username, password in (("admin", "wrong-password"), ("nobody", "whatever-123")):
        response = await api.client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 401
        assert "Sai tên đăng nhập hoặc mật khẩu" in response.json()["detail"]
    async with api.state.store.engine.connect() as conn:
        actions = (await conn.execute(sa.select(audit_log.c.action, audit_log.c.client))).all()
    assert [tuple(a) for a in actions] == [("login.failed", "10.9.8.7")] * 2
    async with api.state.store.engine.connect() as conn:
        actors = (await conn.execute(sa.select(audit_log.c.actor))).scalars().all()
    assert actors == ["admin", "(unknown)"]


async def test_login_gives_a_bearer_token_and_a_strict_httponly_cookie(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/auth/login", json={"username": "leader", "password": PASSWORDS[Role.LEADER]}
    )
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["role"] == "leader"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert f"loacam_session={body['access_token']}" in cookie
    me = await api.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["username"] == "leader"


async def test_district_is_forbidden_where_technician_is_required(api: Api) -> None:
    district = await api.as_role(Role.DISTRICT, "GET", "/api/v1/system/status")
    assert district.status_code == 403
    assert "không có quyền" in district.json()["detail"]
    technician = await api.as_role(Role.TECHNICIAN, "GET", "/api/v1/system/status")
    assert technician.status_code == 200
    assert technician.json()["mqtt"]["connected"] is False
    assert (await api.as_role(Role.ADMIN, "GET", "/api/v1/system/status")).status_code == 200
    assert (await api.as_role(Role.RADIO, "GET", "/metrics")).status_code == 403


async def test_metrics_show_state_to_a_technician(api: Api) -> None:
    response = await api.as_role(Role.TECHNICIAN, "GET", "/metrics")
    assert response.status_code == 200
    assert "loacam_mqtt_connected 0.0" in response.text
    assert "loacam_storage_ok" in response.text


async def test_cookie_works_for_reads_and_is_refused_cross_site_for_writes(api: Api) -> None:
    await api.token(Role.ADMIN)  # the client now holds the cookie
    assert (await api.client.get("/api/v1/auth/me")).status_code == 200
    cross = await api.client.post("/api/v1/auth/logout", headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    same = await api.client.post("/api/v1/auth/logout", headers={"Origin": "http://loacam.test"})
    assert same.status_code == 204


async def test_disabled_account_loses_access_with_a_valid_token(api: Api) -> None:
    token = await api.token(Role.RADIO)
    async with api.state.store.engine.begin() as conn:
        await conn.execute(users.update().where(users.c.username == "radio").values(disabled=True))
    response = await api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_brute_force_is_throttled_whatever_x_forwarded_for_says(api: Api) -> None:
    for attempt in range(3):
        response = await api.client.post(
            "/api/v1/auth/login",
            json={"username": "admin", "password": "guess"},
            headers={"X-Forwarded-For": f"192.0.2.{attempt}"},
        )
        assert response.status_code == 401
    # Even the right password waits now: the attacker must not learn it was right.
    blocked = await api.client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": PASSWORDS[Role.ADMIN]}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


def test_throttle_limits_per_client_tightly_and_per_user_loosely() -> None:
    throttle = LoginThrottle(2, 60.0)
    assert throttle.reserve("10.0.0.1", "radio", now=0.0) == 0.0
    assert throttle.reserve("10.0.0.1", "radio", now=1.0) == 0.0
    assert throttle.reserve("10.0.0.1", "radio", now=2.0) == pytest.approx(58.0)
    # Another office PC can still log in as the same user ...
    assert throttle.reserve("10.0.0.2", "radio", now=2.0) == 0.0
    assert throttle.reserve("10.0.0.3", "radio", now=2.0) == 0.0
    # ... until the looser per-user limit (4 x 2) is reached from many addresses.
    for n in range(4, 10):
        throttle.reserve(f"10.0.0.{n}", "radio", now=3.0)
    assert throttle.reserve("10.0.0.99", "radio", now=3.0) > 0
    assert throttle.reserve("10.0.0.1", "radio", now=61.5) == 0.0  # the window slid on


def test_a_successful_login_takes_its_attempt_back() -> None:
    throttle = LoginThrottle(2, 60.0)
    for _ in range(5):
        assert throttle.reserve("10.0.0.1", "leader", now=0.0) == 0.0
        throttle.forgive("10.0.0.1", "leader")


async def test_parallel_guesses_cannot_outrun_the_throttle(api: Api) -> None:
    guesses = [
        api.client.post("/api/v1/auth/login", json={"username": "admin", "password": f"guess-{n}"})
        for n in range(20)
    ]
    right = api.client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": PASSWORDS[Role.ADMIN]}
    )
    codes = [r.status_code for r in await asyncio.gather(*guesses, right)]
    # The limit is 3 per client: at most 3 passwords were ever checked.
    assert sum(code in {200, 401} for code in codes) <= 3
    assert codes.count(429) >= 18
    assert codes[-1] == 429


async def test_unknown_user_names_are_not_repeated_in_the_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    typed = "my-secret-password-in-the-name-field"
    await api.client.post("/api/v1/auth/login", json={"username": typed, "password": "x"})
    assert typed not in caplog.text
    assert "failed login for (unknown)" in caplog.text


async def test_no_secret_in_any_response_or_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": f"Bearer {await api.token(Role.ADMIN)}"}
    for method, path in every_route(api.app):
        if method == "GET":
            response = await api.client.get(path, headers=headers)
            assert MQTT_SECRET not in response.text, path
            assert PASSWORDS[Role.ADMIN] not in response.text, path
    assert MQTT_SECRET not in caplog.text
    assert PASSWORDS[Role.ADMIN] not in caplog.text


async def test_passwords_are_stored_as_argon2id(api: Api) -> None:
    async with api.state.store.engine.connect() as conn:
        hashes = (await conn.execute(sa.select(users.c.password_hash))).scalars().all()
    assert hashes
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not any(password in h for h in hashes for password in PASSWORDS.values())


async def test_openapi_lists_the_contract_paths_once_logged_in(api: Api) -> None:
    response = await api.as_role(Role.LEADER, "GET", "/openapi.json")
    assert response.status_code == 200
    assert "/api/v1/auth/login" in response.json()["paths"]


async def test_readyz_names_what_is_missing(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "missing": ["mqtt"]}


async def test_login_page_is_public_vietnamese_and_locked_down(api: Api) -> None:
    page = await api.client.get("/")
    assert page.status_code == 200
    assert "Đăng nhập" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    script = await api.client.get("/static/app.js")
    assert script.status_code == 200
    assert "/api/v1/auth/login" in script.text
    for sneaky in (
        "/static/../api/deps.py",
        "/static/%2e%2e/index.html",
        "/static/../../config.py",
    ):
        assert (await api.client.get(sneaky)).status_code == 404
