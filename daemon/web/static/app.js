"use strict";
// The console talks to the same API as everyone else; the login cookie (HttpOnly,
// SameSite=Strict) carries the session, so this script never sees the token.

const ROLE_NAMES = {
  admin: "quản trị viên",
  technician: "kỹ thuật viên",
  leader: "lãnh đạo xã",
  district: "cán bộ huyện",
  radio: "đài truyền thanh",
};
const LOOP_NAMES = {
  mqtt: "Kết nối MQTT (loa)",
  cameras: "Giám sát camera",
  http: "Giao diện web / API",
  systemd: "Báo cáo cho systemd",
};
const STATUS_NAMES = { running: "đang chạy", backoff: "đang thử lại", stopped: "đã dừng" };

const CAMERA_STATUS = {
  connecting: "đang kết nối",
  online: "hoạt động",
  auth_failed: "sai tài khoản/mật khẩu",
  unreachable: "không liên lạc được",
  degraded: "trục trặc",
  offline: "không theo dõi",
};

const $ = (id) => document.getElementById(id);

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function loadCameras() {
  const { response, body } = await api("/api/v1/cameras");
  if (!response.ok || body.length === 0) return;
  $("cameras").hidden = false;
  const rows = body.map((camera) => {
    const tr = document.createElement("tr");
    const since = new Date(camera.since).toLocaleString("vi-VN");
    tr.append(
      cell(camera.name),
      cell(CAMERA_STATUS[camera.status] || camera.status, camera.status),
      cell(since),
      cell(camera.last_error || "—"),
    );
    return tr;
  });
  $("camera-rows").replaceChildren(...rows);
}

function detail(body, fallback) {
  // API errors read "Vietnamese (English)"; show the Vietnamese part.
  const text = body && typeof body.detail === "string" ? body.detail : fallback;
  return text.replace(/\s*\([^)]*\)\s*$/, "");
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  if (response.status !== 204) {
    body = await response.json().catch(() => null);
  }
  return { response, body };
}

function show(loggedIn) {
  $("login").hidden = loggedIn;
  $("home").hidden = !loggedIn;
  $("who").hidden = !loggedIn;
}

async function loadStatus() {
  const { response, body } = await api("/api/v1/system/status");
  if (!response.ok) return;
  $("status").hidden = false;
  $("summary").textContent = body.mqtt.connected
    ? "Đã kết nối máy chủ MQTT."
    : "Mất kết nối máy chủ MQTT — loa không nhận được lệnh.";
  const rows = body.loops.map((loop) => {
    // The MQTT loop keeps running while it reconnects: show the link itself.
    const lost = loop.name === "mqtt" && loop.status === "running" && !body.mqtt.connected;
    const tr = document.createElement("tr");
    const cells = [
      LOOP_NAMES[loop.name] || loop.name,
      lost ? "mất kết nối, đang thử lại" : STATUS_NAMES[loop.status] || loop.status,
      String(loop.restarts),
      (lost ? body.mqtt.last_error : loop.last_error) || "—",
    ];
    for (const [index, text] of cells.entries()) {
      const td = document.createElement("td");
      td.textContent = text;
      if (index === 1) td.className = lost ? "backoff" : loop.status;
      tr.append(td);
    }
    return tr;
  });
  $("loops").replaceChildren(...rows);
}

async function enter() {
  const { response, body } = await api("/api/v1/auth/me");
  if (!response.ok) {
    show(false);
    return;
  }
  const role = ROLE_NAMES[body.role] || body.role;
  $("who-name").textContent = `${body.username} (${role})`;
  $("welcome").textContent = `Xin chào ${body.username}. Bạn đăng nhập với vai trò ${role}.`;
  show(true);
  await loadCameras();
  if (body.role === "admin" || body.role === "technician") {
    await loadStatus();
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("login-error");
  error.hidden = true;
  const { response, body } = await api("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  if (!response.ok) {
    error.textContent = response.status === 422
      ? "Vui lòng nhập tên đăng nhập và mật khẩu."
      : detail(body, "Không đăng nhập được, vui lòng thử lại.");
    error.hidden = false;
    return;
  }
  $("password").value = "";
  await enter();
});

$("logout").addEventListener("click", async () => {
  await api("/api/v1/auth/logout", { method: "POST" });
  $("status").hidden = true;
  $("cameras").hidden = true;
  show(false);
});

enter();
