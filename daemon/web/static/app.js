"use strict";
// The console talks to the same API as everyone else; the login cookie (HttpOnly,
// SameSite=Strict) carries the session, so this script never sees the token.
// Live pictures are plain <img> elements on the daemon's MJPEG streams: no player, no build step.

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
  media: "Hình trực tiếp (MJPEG, HLS)",
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
// Statuses in which the daemon holds the camera's profiles, so its streams and snapshots answer.
const CONNECTED = new Set(["online", "degraded"]);

const GRID_FPS = 10; // the grid uses sub streams at 10 fps: enough to watch, light on a slow link
const LIST_EVERY_MS = 10000;
const AGE_EVERY_MS = 3000;
const RETRY_MS = 5000; // doubled after each failure, up to MAX_RETRY_MS
const MAX_RETRY_MS = 60000;
const STILL_EVERY_MS = 10000;
const STILL_TIMEOUT_MS = 15000;
// Browsers open at most six HTTP/1.1 connections to one server and each MJPEG picture holds
// one for as long as it is shown. Past four streams the API calls would queue behind them
// forever, so further tiles show a still (the sub stream's snapshot) every STILL_EVERY_MS.
// The other long-lived connection is a programme's live progress (broadcast-detail.js, one
// Server-Sent Events stream): 4 pictures + that stream would leave the API one connection,
// so the grid rests while the detail is open, as it does under the full-screen viewer.
const MAX_STREAMS = 4;

const $ = (id) => document.getElementById(id);

let loggedIn = false;
let serverLost = false;
let sequence = 0;

// Other parts of the console (speakers.js, announce.js, broadcasts.js, broadcast-form.js) join
// the session here: each has enter(me), called with the who-am-i answer once logged in, and
// leave(), called on the way out.
const parts = [];

// ---- small helpers ---------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  if (response.status !== 204) {
    body = await response.json().catch(() => null);
  }
  return { response, body };
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

// A refresh that runs again `everyMs` after each run ends, until stopped: whoever starts it,
// one timer stays. A run that throws (fetch does when the server cannot be reached) does not
// end the loop; the camera list's refresh is the one that tells the user.
class Repeat {
  constructor(everyMs, work) {
    this.everyMs = everyMs;
    this.work = work;
    this.running = false;
    this.timer = 0;
  }

  async now() {
    this.running = true;
    clearTimeout(this.timer);
    try {
      await this.work();
    } catch (error) {
      console.warn("loacam:", error);
    }
    clearTimeout(this.timer);
    if (this.running) this.timer = setTimeout(() => this.now(), this.everyMs);
  }

  later(delayMs) {
    this.running = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.now(), delayMs);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
  }
}

// Keeps one view per item (views: id → view with update(item)), in the items' order: views
// of items gone are dropped, new items get a view from `create`.
function reconcile(views, items, create, drop) {
  const seen = new Set(items.map((item) => item.id));
  for (const [id, view] of views) {
    if (!seen.has(id)) drop(id, view);
  }
  const ordered = new Map();
  for (const item of items) {
    const view = views.get(item.id) || create(item);
    view.update(item);
    ordered.set(item.id, view);
  }
  views.clear();
  for (const [id, view] of ordered) views.set(id, view);
}

// Moves nodes only when their order changed: pictures keep playing, inputs keep their focus.
// A node that moves loses the focus it held (a programme's button when the list re-sorts):
// it is given back, without scrolling the page.
function placeInOrder(container, nodes) {
  const children = container.children;
  if (nodes.length !== children.length || nodes.some((node, i) => children[i] !== node)) {
    const focused = container.contains(document.activeElement) ? document.activeElement : null;
    container.append(...nodes);
    if (focused && focused.isConnected && document.activeElement !== focused) {
      focused.focus({ preventScroll: true });
    }
  }
}

function cameraPath(id, rest) {
  return `/api/v1/cameras/${encodeURIComponent(id)}${rest}`;
}

// A fresh URL each time: a finished stream may sit in the browser's image cache, and setting
// the same URL again would show that old picture instead of reconnecting.
function streamUrl(id, stream, fps) {
  sequence += 1;
  const cap = fps ? `&fps=${fps}` : "";
  return cameraPath(id, `/mjpeg?stream=${stream}${cap}&v=${sequence}`);
}

function stillUrl(id) {
  sequence += 1;
  return cameraPath(id, `/snapshot.jpg?stream=sub&v=${sequence}`);
}

function two(n) {
  return String(n).padStart(2, "0");
}

function stamp(date) {
  const day = `${date.getFullYear()}${two(date.getMonth() + 1)}${two(date.getDate())}`;
  return `${day}-${two(date.getHours())}${two(date.getMinutes())}${two(date.getSeconds())}`;
}

// Times shown are Vietnam's, like the daemon's own messages (its alarms say "mất kết nối từ
// 14:05 27/11/2026"), whatever zone the PC is set to.
const VIETNAM_TIME = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Asia/Ho_Chi_Minh",
  hourCycle: "h23",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  day: "2-digit",
  month: "2-digit",
  year: "numeric",
});

function vietnam(date) {
  const part = {};
  for (const { type, value } of VIETNAM_TIME.formatToParts(date)) part[type] = value;
  return part;
}

function clock(date) {
  const at = vietnam(date);
  return `${at.hour}:${at.minute}:${at.second}`;
}

// A moment as Vietnamese write it: "14:05 27/11/2026".
function when(iso) {
  const at = vietnam(new Date(iso));
  return `${at.hour}:${at.minute} ${at.day}/${at.month}/${at.year}`;
}

// Vietnamese writes three and a half as 3,5.
function decimal(value) {
  return value.toFixed(1).replace(".", ",");
}

// ---- shared by the announcements and broadcasts sections -------------------------------

const ENGINE_NAMES = {
  gtts: "Google (trực tuyến)",
  "espeak-ng": "espeak-ng (ngoại tuyến)",
  piper: "Piper (ngoại tuyến)",
};
const ENGINE_SHORT = { gtts: "Google", "espeak-ng": "espeak-ng", piper: "Piper" };
const ONLINE_ENGINES = new Set(["gtts"]);
// The daemon's default audio.max_text_chars; it refuses longer texts with its own message.
const MAX_TEXT_CHARS = 5000;
// The speaker protocol's error words (docs/mqtt-speakers.md), for people.
const COMMAND_ERRORS = {
  busy: "loa đang phát bản tin ưu tiên hơn",
  codec: "loa không phát được định dạng âm thanh này",
  unsupported: "loa không hỗ trợ lệnh này",
  bad_request: "lệnh không hợp lệ",
  download: "loa không tải được âm thanh",
  decode: "tệp âm thanh bị hỏng",
  storage: "bộ nhớ của loa bị lỗi",
  media: "không có tệp âm thanh",
  preempted: "bị bản tin ưu tiên hơn ngắt",
  refused: "loa từ chối lệnh",
  broker: "máy chủ MQTT từ chối lệnh (xem quyền ACL của loacam)",
  expired: "lệnh đã hết hạn",
};

// Priorities as Thông tư 39/2020/TT-BTTTT names them; the speakers' and the programmes'
// pages share these words (capital() at the start of a sentence or on a badge).
const PRIORITY_NAMES = { normal: "thông thường", priority: "ưu tiên", emergency: "khẩn cấp" };
// A speaker's delivery of a command (DeliveryState in daemon/speakers/outbox.py), furthest
// first; a failure's reason comes from COMMAND_ERRORS.
const DELIVERY_NAMES = {
  finished: "đã phát xong",
  started: "đang phát",
  acknowledged: "loa đã nhận",
  sent: "đã gửi",
  queued: "đang chờ",
  offline: "loa mất kết nối — sẽ gửi khi có mạng",
  failed: "lỗi",
  expired: "hết hạn, không phát",
};

function capital(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

// One speaker's delivery in words, lower case.
function deliveryWords(command) {
  if (command.state === "failed") {
    return `lỗi: ${COMMAND_ERRORS[command.error] || command.error || "không rõ lý do"}`;
  }
  if (command.state === "finished" && command.error === "stopped") return "đã dừng giữa chừng";
  return DELIVERY_NAMES[command.state] || command.state;
}

// Does a bracketed part of a daemon message read as English? Some ASCII words and no
// Vietnamese letter outside quotes (a file name quoted in it may have some).
function isEnglish(inner) {
  const bare = inner.replace(/“[^”]*”|"[^"]*"|'[^'\n]*'/g, "");
  return /[a-z]{3}/.test(bare) && !/[^\x00-\x7f]/.test(bare);
}

// The one way English leaves the daemon's messages. They read "Vietnamese (English)", the
// English sometimes mid-sentence ("Thời điểm bắt đầu đã qua (start_at is in the past):
// 05:30 01/01/2020") and sometimes with brackets of its own (a decoder's message): each
// outermost bracketed group that reads as English goes; "(22:10 28/11/2026)", "(3 lần)" or
// "(BYHOUR/BYMINUTE)" stay.
function vietnameseOnly(text) {
  let kept = "";
  let depth = 0;
  let open = 0;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (ch === "(") {
      if (depth === 0) open = i;
      depth += 1;
    } else if (ch === ")" && depth > 0) {
      depth -= 1;
      if (depth === 0) {
        const inner = text.slice(open + 1, i);
        if (isEnglish(inner)) kept = kept.replace(/\s+$/, "");
        else kept += `(${vietnameseOnly(inner)})`; // Vietnamese that may hold English
      }
    } else if (depth === 0) {
      kept += ch;
    }
  }
  if (depth > 0) kept += text.slice(open); // a bracket never closed: kept as written
  return kept.trim() || text.trim();
}

// The Vietnamese of an API error's `detail`, or the fallback.
function reason(body, fallback) {
  return body && typeof body.detail === "string" ? vietnameseOnly(body.detail) : fallback;
}

// 7.9 → "0:07", 75 → "1:15", 3725 → "1:02:05": whole seconds as the <audio> players count.
function minutes(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const hours = Math.floor(total / 3600);
  const rest = `${two(Math.floor((total % 3600) / 60))}:${two(total % 60)}`;
  return hours ? `${hours}:${rest}` : rest.replace(/^0(?=\d:)/, "");
}

function characters(text) {
  return [...text].length; // code points, as the daemon counts them
}

// "123/5000 ký tự" under a text for the speakers, red once it is too long.
function showCount(textarea, line) {
  const used = characters(textarea.value);
  line.textContent = used > MAX_TEXT_CHARS
    ? `${used}/${MAX_TEXT_CHARS} ký tự — dài quá, hãy bớt ${used - MAX_TEXT_CHARS} ký tự`
    : `${used}/${MAX_TEXT_CHARS} ký tự`;
  line.classList.toggle("over", used > MAX_TEXT_CHARS);
}

// Hides a "hear it first" box: what was heard is for the text then written, not the next.
function dropHeard(audio, box) {
  audio.pause();
  audio.removeAttribute("src");
  audio.load(); // drops what was loaded: the old speech can no longer be played
  box.hidden = true;
}

// Refused here, before the daemon is asked; null when the length is fine.
function tooLong(text) {
  const over = characters(text) - MAX_TEXT_CHARS;
  return over > 0 ? `Văn bản dài quá ${MAX_TEXT_CHARS} ký tự: hãy bớt ${over} ký tự.` : null;
}

// A signed link names the address the speakers download from (fleet.media_base_url), which
// need not be the one this page came from, and the page's CSP plays media from its own
// origin only. The daemon serves the same signed path here, so play it from here.
function playable(url) {
  const parsed = new URL(url, location.href);
  const at = parsed.pathname.lastIndexOf("/media/");
  return at < 0 ? url : parsed.pathname.slice(at) + parsed.search;
}

function say(id, text) {
  const line = $(id);
  line.textContent = text || "";
  line.hidden = !text;
}

// How the speakers will read a text: {result}, {error} in plain words, or {expired} when
// the login has run out (the caller, knowing its session, shows the login page).
async function hear(text, voice) {
  const body = voice ? { text, voice } : { text };
  let answer;
  try {
    answer = await post("/api/v1/tts/preview", body);
  } catch {
    return { error: "Không tạo được giọng đọc — mất kết nối với máy chủ loacam." };
  }
  if (answer.response.status === 401) return { expired: true };
  if (!answer.response.ok || !answer.body) {
    const fallback = answer.response.status === 503
      ? "Hiện không có bộ đọc nào đọc được văn bản này, vui lòng thử lại sau."
      : "Không tạo được giọng đọc, vui lòng thử lại.";
    return { error: reason(answer.body, fallback) };
  }
  return { result: answer.body };
}

// The engines that failed before the one that spoke: a sentence ("" if none) and the errors.
function fallbackText(result) {
  const failed = Array.isArray(result.fallbacks) ? result.fallbacks : [];
  if (!failed.length) return { text: "", errors: [] };
  const names = [...new Set(failed.map((f) => ENGINE_SHORT[f.engine] || f.engine))];
  const short = ENGINE_SHORT[result.engine] || result.engine;
  const to = ONLINE_ENGINES.has(result.engine)
    ? ENGINE_NAMES[result.engine]
    : `giọng đọc ngoại tuyến (${short})`;
  const offline = failed.some((f) => ONLINE_ENGINES.has(f.engine))
    ? " Có thể máy chủ đang mất kết nối Internet."
    : "";
  return {
    text: `Không dùng được ${names.join(", ")}, đã chuyển sang ${to}.${offline}`,
    errors: failed.map((f) => `${ENGINE_SHORT[f.engine] || f.engine}: ${f.error}`),
  };
}

// The daemon's voices as <option>s for a select whose first option is the default voice;
// the select keeps its choice. False if the daemon could not be asked.
async function fillVoices(select) {
  let answer;
  try {
    answer = await api("/api/v1/tts/voices");
  } catch {
    return false; // the default voice still works; the next login tries again
  }
  if (!answer.response.ok || !Array.isArray(answer.body)) return false;
  const chosen = select.value;
  const options = answer.body.map((voice) => {
    const option = document.createElement("option");
    option.value = voice.id;
    option.textContent = vietnameseOnly(voice.name);
    if (!voice.engines.length) {
      option.disabled = true;
      option.textContent += " — không có bộ đọc nào";
    }
    return option;
  });
  select.replaceChildren(select.options[0], ...options);
  select.value = chosen;
  return true;
}

// What a stream's stats say about its picture; null when the daemon sends no stats.
function ageOf(stats) {
  // No stats (an older daemon) or a capture not running (yet): nothing to say.
  if (!stats || typeof stats !== "object" || stats.status === "stopped") return null;
  if (stats.status === "lost") return { text: "Mất tín hiệu — đang kết nối lại", stale: true };
  const age = stats.last_frame_age_s;
  if (typeof age !== "number" || !Number.isFinite(age)) {
    return { text: stats.status === "starting" ? "Đang mở luồng…" : "Chưa có hình", stale: false };
  }
  if (age < 60) return { text: `Hình mới ${decimal(age)} giây trước`, stale: age > 10 };
  if (age < 3600) return { text: `Hình cũ ${Math.floor(age / 60)} phút trước`, stale: true };
  return { text: "Hình cũ hơn 1 giờ", stale: true };
}

function statusName(status) {
  return CAMERA_STATUS[status] || status;
}

function setBadge(badge, camera) {
  badge.textContent = statusName(camera.status);
  badge.className = `badge ${camera.status}`;
  const since = camera.since ? when(camera.since) : "";
  const why = camera.last_error ? ` — ${camera.last_error}` : "";
  badge.title = since ? `${statusName(camera.status)} từ ${since}${why}` : why;
}

function setSnapshot(link, camera) {
  // Snapshots only answer while the daemon is connected to the camera.
  const usable = CONNECTED.has(camera.status);
  link.href = cameraPath(camera.id, "/snapshot.jpg?stream=main");
  link.download = `${camera.id}-${stamp(new Date())}.jpg`;
  link.classList.toggle("disabled", !usable);
  link.setAttribute("aria-disabled", String(!usable));
  link.title = usable
    ? `Tải ảnh chụp (độ phân giải đầy đủ) của ${camera.name}`
    : "Camera chưa kết nối: chưa chụp được ảnh";
}

function onSnapshotClick(event) {
  const link = event.currentTarget;
  if (link.getAttribute("aria-disabled") === "true") {
    event.preventDefault();
    return;
  }
  // The file name carries the moment of the click, not of the page load.
  const id = link.dataset.camera;
  link.download = `${id}-${stamp(new Date())}.jpg`;
}

// ---- camera tiles ----------------------------------------------------------------------

// Tiles past the stream limit show stills fetched one at a time, so that they too leave
// connections free for the API however many cameras there are.
const stills = { queue: [], busy: null, timer: 0 };

function queueStill(tile) {
  if (stills.busy !== tile && !stills.queue.includes(tile)) stills.queue.push(tile);
  pumpStills();
}

function releaseStill(tile) {
  stills.queue = stills.queue.filter((queued) => queued !== tile);
  if (stills.busy !== tile) return;
  stills.busy = null;
  clearTimeout(stills.timer);
  pumpStills();
}

function pumpStills() {
  if (stills.busy) return;
  const tile = stills.queue.shift();
  if (!tile) return;
  stills.busy = tile;
  tile.image.src = stillUrl(tile.camera.id);
  // A camera that never answers must not hold up the other tiles' pictures.
  stills.timer = setTimeout(() => {
    tile.image.src = "";
    tile.failedToLoad();
  }, STILL_TIMEOUT_MS);
}

class Tile {
  constructor(camera) {
    const root = $("tile-template").content.firstElementChild.cloneNode(true);
    this.root = root;
    this.name = root.querySelector(".tile-name");
    this.badge = root.querySelector(".badge");
    this.image = root.querySelector(".tile-image");
    this.note = root.querySelector(".picture-note");
    this.age = root.querySelector(".age");
    this.snapshot = root.querySelector(".snapshot");
    this.full = root.querySelector(".full");
    this.camera = camera;
    this.mode = "off";
    this.inView = false;
    this.failed = false;
    this.retryMs = RETRY_MS;
    this.timer = 0;
    root.dataset.camera = camera.id;
    this.snapshot.dataset.camera = camera.id;
    this.snapshot.addEventListener("click", onSnapshotClick);
    this.full.addEventListener("click", () => viewer.open(this.camera));
    root.querySelector(".picture").addEventListener("click", () => viewer.open(this.camera));
    this.image.addEventListener("load", () => this.loaded());
    this.image.addEventListener("error", () => {
      // Clearing src reports an error too: that one is expected.
      if (this.image.getAttribute("src")) this.failedToLoad();
    });
  }

  update(camera) {
    const wasConnected = CONNECTED.has(this.camera.status);
    this.camera = camera;
    this.name.textContent = camera.name;
    this.image.alt = `Hình trực tiếp camera ${camera.name}`;
    this.full.setAttribute("aria-label", `Xem toàn màn hình: ${camera.name}`);
    this.snapshot.setAttribute("aria-label", `Chụp ảnh: ${camera.name}`);
    setBadge(this.badge, camera);
    setSnapshot(this.snapshot, camera);
    this.root.classList.toggle("trouble", !CONNECTED.has(camera.status));
    // A camera that has just come back: try its picture now rather than at the next retry.
    if (this.failed && !wasConnected && CONNECTED.has(camera.status)) {
      this.retryMs = RETRY_MS;
      this.restart();
    }
  }

  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.failed = false;
    this.retryMs = RETRY_MS;
    this.restart();
  }

  restart() {
    clearTimeout(this.timer);
    releaseStill(this);
    if (this.mode === "live") {
      if (!this.failed) this.showNote("Đang mở hình…");
      this.image.src = streamUrl(this.camera.id, "sub", GRID_FPS);
    } else if (this.mode === "still") {
      queueStill(this);
    } else {
      // An empty src makes the browser drop the stream's connection: on-demand captures stop.
      this.image.src = "";
      this.failed = false;
      this.root.classList.remove("broken");
      this.age.textContent = "";
      this.showNote(this.camera.status === "offline" ? "Camera không được theo dõi" : "Tạm dừng");
    }
  }

  loaded() {
    if (this.mode === "off") return;
    this.failed = false;
    this.retryMs = RETRY_MS;
    this.root.classList.remove("broken");
    this.showNote("");
    if (this.mode === "still") {
      this.age.textContent = `Ảnh chụp lúc ${clock(new Date())}`;
      releaseStill(this);
      this.timer = setTimeout(() => this.restart(), STILL_EVERY_MS);
    }
  }

  failedToLoad() {
    if (this.mode === "off") return;
    this.failed = true;
    this.root.classList.add("broken");
    this.age.textContent = "";
    const why = CONNECTED.has(this.camera.status)
      ? "Chưa lấy được hình"
      : `Camera ${statusName(this.camera.status)}`;
    this.showNote(`${why} — sẽ thử lại`);
    releaseStill(this);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.restart(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
  }

  showNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  showAge(stats) {
    const age = ageOf(stats);
    this.age.textContent = age ? age.text : "";
    this.age.classList.toggle("stale", Boolean(age && age.stale));
  }

  remove() {
    this.mode = "off";
    clearTimeout(this.timer);
    releaseStill(this);
    this.image.src = "";
    this.root.remove();
  }
}

const tiles = new Map(); // camera id → Tile, in the order the API lists them

const onScreen = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      const tile = tiles.get(entry.target.dataset.camera);
      if (tile) tile.inView = entry.isIntersecting;
    }
    arrange();
  },
  { rootMargin: "100px" },
);

// Which tile streams, which shows a still, which rests: the one place that decides. The grid
// rests under the full-screen viewer and under a programme's detail (its live progress
// needs a connection of the six, see MAX_STREAMS).
function arrange() {
  const covered = viewer.isOpen() || $("bc-detail").open;
  const paused = !loggedIn || document.hidden || covered;
  let streams = 0;
  for (const tile of tiles.values()) {
    let mode = "off";
    if (!paused && tile.inView && tile.camera.status !== "offline") {
      mode = streams < MAX_STREAMS ? "live" : "still";
      if (mode === "live") streams += 1;
    }
    tile.setMode(mode);
  }
  viewer.arrange(!loggedIn || document.hidden);
}

// ---- the full-screen viewer ------------------------------------------------------------

const viewer = {
  dialog: $("viewer"),
  image: $("viewer-image"),
  note: $("viewer-note"),
  camera: null,
  streaming: false,
  timer: 0,

  isOpen() {
    return this.dialog.open;
  },

  open(camera) {
    this.camera = camera;
    this.update(camera);
    if (!this.dialog.open) this.dialog.showModal();
    arrange(); // the grid rests while the main stream plays: one link's worth of bandwidth
    ageLoop.later(1000); // the main stream's age, once its capture has had a moment to start
  },

  update(camera) {
    this.camera = camera;
    $("viewer-title").textContent = camera.name;
    this.image.alt = `Hình trực tiếp luồng chính, camera ${camera.name}`;
    setBadge($("viewer-badge"), camera);
    $("viewer-snapshot").dataset.camera = camera.id;
    setSnapshot($("viewer-snapshot"), camera);
  },

  arrange(paused) {
    const want = this.dialog.open && !paused;
    if (want === this.streaming) return;
    this.streaming = want;
    this.restart();
  },

  restart() {
    clearTimeout(this.timer);
    this.dialog.classList.remove("broken");
    if (this.streaming && this.camera) {
      this.showNote("Đang mở luồng chính…");
      this.image.src = streamUrl(this.camera.id, "main");
    } else {
      // Drop the main stream's connection at once: its on-demand capture may then stop.
      this.image.src = "";
      this.showNote("");
    }
  },

  failedToLoad() {
    if (!this.streaming || !this.image.getAttribute("src")) return;
    this.dialog.classList.add("broken");
    this.showNote("Chưa mở được luồng chính — sẽ thử lại");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.restart(), RETRY_MS);
  },

  showNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  },

  closed() {
    this.streaming = false;
    this.restart();
    $("viewer-age").textContent = "";
    const tile = this.camera && tiles.get(this.camera.id);
    this.camera = null;
    arrange();
    if (tile) tile.full.focus();
  },
};

$("viewer-close").addEventListener("click", () => viewer.dialog.close());
// Esc closes a modal <dialog> by itself; every way of closing ends here.
viewer.dialog.addEventListener("close", () => viewer.closed());
viewer.image.addEventListener("load", () => viewer.showNote(""));
viewer.image.addEventListener("error", () => viewer.failedToLoad());
$("viewer-snapshot").addEventListener("click", onSnapshotClick);

// ---- refreshing ------------------------------------------------------------------------

function placeTiles(cameras) {
  reconcile(
    tiles,
    cameras,
    (camera) => {
      const tile = new Tile(camera);
      onScreen.observe(tile.root);
      return tile;
    },
    (id, tile) => {
      onScreen.unobserve(tile.root);
      tile.remove();
      if (viewer.camera && viewer.camera.id === id) viewer.dialog.close();
    },
  );
  const shown = viewer.camera && tiles.get(viewer.camera.id);
  if (shown) viewer.update(shown.camera);
  placeInOrder($("camera-grid"), [...tiles.values()].map((tile) => tile.root));
}

async function refreshCameras() {
  const { response, body } = await api("/api/v1/cameras");
  if (response.status === 401) {
    sessionExpired();
    return;
  }
  if (!response.ok || !Array.isArray(body)) return;
  $("cameras").hidden = false;
  $("cameras-empty").hidden = body.length > 0;
  placeTiles(body);
  arrange();
}

// The list refresh reports a lost server; the ages simply wait for it.
async function refreshAges() {
  if (!loggedIn) return;
  const open = viewer.isOpen() && viewer.camera;
  const wanted = open
    ? [[viewer.camera.id, "main"]]
    : [...tiles.values()].filter((t) => t.mode === "live" && !t.failed).map((t) => [t.camera.id, "sub"]);
  await Promise.all(
    wanted.map(async ([id, stream]) => {
      const { response, body } = await api(cameraPath(id, "")).catch(() => ({}));
      if (!response || !response.ok || !body) return;
      // `live` is newer than the rest of the detail: an older daemon simply shows no age.
      const stats = body.live && typeof body.live === "object" ? body.live[stream] : null;
      if (stream === "main") {
        const age = ageOf(stats);
        $("viewer-age").textContent = age ? age.text : "";
        $("viewer-age").classList.toggle("stale", Boolean(age && age.stale));
      } else if (tiles.has(id)) {
        tiles.get(id).showAge(stats);
      }
    }),
  );
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

let technical = false;

async function refreshList() {
  try {
    await refreshCameras();
    if (technical && loggedIn) await loadStatus();
    if (serverLost) {
      // The daemon is back (perhaps restarted): streams it ended must be opened again.
      serverLost = false;
      $("offline-banner").hidden = true;
      for (const tile of tiles.values()) tile.restart();
      viewer.restart();
    }
  } catch {
    // fetch fails only when the server cannot be reached at all.
    serverLost = true;
    $("offline-banner").hidden = false;
  }
}

const cameraLoop = new Repeat(LIST_EVERY_MS, refreshList);
const ageLoop = new Repeat(AGE_EVERY_MS, refreshAges);

document.addEventListener("visibilitychange", arrange);

// ---- quick links -------------------------------------------------------------------------

// One link per section the role is shown, whichever script shows or hides the section.
const jumps = [...document.querySelectorAll("#jump a")];

function placeJumps() {
  for (const link of jumps) link.hidden = $(link.hash.slice(1)).hidden;
  $("jump").hidden = jumps.filter((link) => !link.hidden).length < 2;
}

const sectionWatch = new MutationObserver(placeJumps);
for (const link of jumps) {
  sectionWatch.observe($(link.hash.slice(1)), { attributes: true, attributeFilter: ["hidden"] });
}

// ---- login and logout ------------------------------------------------------------------

function show(state) {
  loggedIn = state;
  $("login").hidden = state;
  $("home").hidden = !state;
  $("who").hidden = !state;
}

function leave(message) {
  show(false);
  cameraLoop.stop();
  ageLoop.stop();
  for (const part of parts) part.leave();
  if (viewer.isOpen()) viewer.dialog.close();
  for (const tile of tiles.values()) {
    onScreen.unobserve(tile.root);
    tile.remove();
  }
  tiles.clear();
  technical = false;
  serverLost = false;
  $("offline-banner").hidden = true;
  $("status").hidden = true;
  $("cameras").hidden = true;
  const error = $("login-error");
  error.textContent = message || "";
  error.hidden = !message;
}

function sessionExpired() {
  leave("Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.");
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
  technical = body.role === "admin" || body.role === "technician";
  show(true);
  for (const part of parts) part.enter(body);
  await cameraLoop.now();
  ageLoop.later(1000);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("login-error");
  error.hidden = true;
  const { response, body } = await post("/api/v1/auth/login", {
    username: $("username").value,
    password: $("password").value,
  });
  if (!response.ok) {
    error.textContent = response.status === 422
      ? "Vui lòng nhập tên đăng nhập và mật khẩu."
      : reason(body, "Không đăng nhập được, vui lòng thử lại.");
    error.hidden = false;
    return;
  }
  $("password").value = "";
  await enter();
});

$("logout").addEventListener("click", async () => {
  await api("/api/v1/auth/logout", { method: "POST" });
  leave("");
});

// After every deferred script (speakers.js too) has run and joined `parts`.
document.addEventListener("DOMContentLoaded", enter);
