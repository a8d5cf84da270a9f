"use strict";
// The broadcasts section (Lịch phát): every programme with its schedule and next air time,
// and the report of a day or a month. One programme's detail is broadcast-detail.js's, the
// form that creates programmes (radio station and administrators) broadcast-form.js's;
// leaders read. Uses app.js's helpers ($, api, Repeat, reconcile, placeInOrder, vietnam,
// two, say, reason, capital, PRIORITY_NAMES, sessionExpired) and joins its session through
// `parts`.

const BROADCAST_READERS = new Set(["radio", "admin", "leader"]);
const BROADCAST_EDITORS = new Set(["radio", "admin"]);
const KIND_NAMES = { text: "đọc văn bản", media: "bản ghi", url: "tiếp sóng" };
const BROADCAST_STATES = { active: "đang hoạt động", done: "đã xong", cancelled: "đã hủy" };
const WEEKDAYS = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]; // as Date.getUTCDay() counts
const WEEKDAY_NAMES = {
  MO: "thứ Hai",
  TU: "thứ Ba",
  WE: "thứ Tư",
  TH: "thứ Năm",
  FR: "thứ Sáu",
  SA: "thứ Bảy",
  SU: "Chủ nhật",
};
// Lunar months by the names people use for them: tháng Giêng … tháng Chạp.
const LUNAR_MONTHS = [
  "Giêng", "Hai", "Ba", "Tư", "Năm", "Sáu", "Bảy", "Tám", "Chín", "Mười", "Mười Một", "Chạp",
];
const BROADCASTS_EVERY_MS = 30000;
const SHOWN_AT_ONCE = 50; // a phone on a slow link need not draw years of programmes

function broadcastPath(id, rest = "") {
  return `/api/v1/broadcasts/${encodeURIComponent(id)}${rest}`;
}

// ---- times, always Vietnam's ------------------------------------------------------------

function hhmm(iso) {
  const at = vietnam(new Date(iso));
  return `${at.hour}:${at.minute}`;
}

function vietnamDate(date) {
  const at = vietnam(date);
  return `${at.year}-${at.month}-${at.day}`;
}

function addDays(isoDate, days) {
  const [year, month, day] = isoDate.split("-").map(Number);
  const moved = new Date(Date.UTC(year, month - 1, day + days));
  return `${moved.getUTCFullYear()}-${two(moved.getUTCMonth() + 1)}-${two(moved.getUTCDate())}`;
}

function weekdayOf(isoDate) {
  const [year, month, day] = isoDate.split("-").map(Number);
  return WEEKDAYS[new Date(Date.UTC(year, month - 1, day)).getUTCDay()];
}

// "06:00, Chủ nhật 29/11/2026"; the seconds only when there are some (an item queued
// after another starts a few seconds after it ends).
function airTime(iso) {
  const at = vietnam(new Date(iso));
  const day = WEEKDAY_NAMES[weekdayOf(`${at.year}-${at.month}-${at.day}`)];
  const seconds = at.second === "00" ? "" : `:${at.second}`;
  return `${at.hour}:${at.minute}${seconds}, ${day} ${at.day}/${at.month}/${at.year}`;
}

function listText(words) {
  return words.length > 1 ? `${words.slice(0, -1).join(", ")} và ${words.at(-1)}` : words[0];
}

// ---- what a programme is, in words ----------------------------------------------------

// The times of day an RRULE airs: its BYHOUR × BYMINUTE, or the start's time.
function ruleTimes(parts, start) {
  const [hour, minute] = hhmm(start).split(":");
  const hours = parts.BYHOUR ? parts.BYHOUR.split(",").map(two) : [hour];
  const mins = parts.BYMINUTE ? parts.BYMINUTE.split(",").map(two) : [minute];
  return `lúc ${listText(hours.flatMap((h) => mins.map((m) => `${h}:${m}`)).sort())}`;
}

// The RRULE parts each frequency is put in words with; a rule with others is RULE_OTHER.
const RULE_WORDS = {
  DAILY: [],
  WEEKLY: ["BYDAY", "WKST"],
  MONTHLY: ["BYMONTHDAY"],
  YEARLY: ["BYMONTH", "BYMONTHDAY"],
};
const RULE_ANY = ["FREQ", "INTERVAL", "BYHOUR", "BYMINUTE", "COUNT", "UNTIL"];
// Leaders read the schedule, not RFC 5545: a rule not put in words is named only this.
const RULE_OTHER = "lặp lại theo lịch riêng";

// The last day, Vietnam's: an UNTIL in UTC ("…T165959Z") may be the next day here.
function ruleEnd(parts) {
  if (parts.COUNT) return ` (${parts.COUNT} lần)`;
  const until = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?$/.exec(parts.UNTIL || "");
  if (!until) return "";
  let [year, month, day] = until.slice(1, 4);
  if (until[7]) {
    const [y, mo, d, h, mi, se] = until.slice(1, 7).map(Number);
    ({ year, month, day } = vietnam(new Date(Date.UTC(y, mo - 1, d, h, mi, se))));
  }
  return ` (đến ngày ${day}/${month}/${year})`;
}

function ruleText(rule, start) {
  const parts = Object.fromEntries(
    rule.toUpperCase().split(";").filter(Boolean).map((part) => part.split("=")),
  );
  const known = RULE_WORDS[parts.FREQ];
  if (!known || Object.keys(parts).some((key) => !RULE_ANY.includes(key) && !known.includes(key))) {
    return RULE_OTHER;
  }
  const every = Number(parts.INTERVAL || 1);
  const times = ruleTimes(parts, start) + ruleEnd(parts);
  const byDay = parts.BYDAY ? parts.BYDAY.split(",") : [];
  const days = byDay.filter((day) => WEEKDAY_NAMES[day]); // not "1MO", "-1FR"…
  if (parts.FREQ === "DAILY") {
    return every === 1 ? `hằng ngày ${times}` : `${every} ngày một lần, ${times}`;
  }
  if (parts.FREQ === "WEEKLY" && days.length === byDay.length) {
    const names = (days.length ? days : [weekdayOf(vietnamDate(new Date(start)))])
      .map((day) => WEEKDAY_NAMES[day]);
    const often = every === 1 ? " hằng tuần" : `, ${every} tuần một lần,`;
    return `${listText(names)}${often} ${times}`;
  }
  if (parts.FREQ === "MONTHLY" && parts.BYMONTHDAY && every === 1) {
    return `ngày ${listText(parts.BYMONTHDAY.split(","))} hằng tháng ${times}`;
  }
  if (parts.FREQ === "YEARLY" && parts.BYMONTH && parts.BYMONTHDAY && every === 1) {
    return `ngày ${parts.BYMONTHDAY}/${parts.BYMONTH} hằng năm ${times}`;
  }
  return RULE_OTHER;
}

// "ngày 1 tháng Giêng âm lịch, lúc 05:30"; "ngày 15 âm lịch hằng tháng, lúc 19:00".
function lunarText(lunar, start) {
  const month = LUNAR_MONTHS[lunar.month - 1];
  const when = month ? `tháng ${month} âm lịch` : "âm lịch hằng tháng";
  return `ngày ${lunar.day} ${when}, lúc ${hhmm(start)}`;
}

function scheduleText(item) {
  if (item.lunar) return lunarText(item.lunar, item.start_at);
  if (item.rrule) return ruleText(item.rrule, item.start_at);
  return `một lần, lúc ${airTime(item.start_at)}`;
}

// Days a repeating programme leaves out (one replaced by another that day).
function skipText(item) {
  const days = Array.isArray(item.skip_dates) ? item.skip_dates : [];
  if (!days.length) return "";
  const shown = days.slice(0, 5).map((day) => day.split("-").reverse().join("/"));
  const more = days.length > 5 ? ` và ${days.length - 5} ngày khác` : "";
  return ` — không phát ngày ${shown.join(", ")}${more}`;
}

function nextText(item) {
  if (!("next_at" in item)) return ""; // a daemon older than the field: the row hides
  return item.next_at ? airTime(item.next_at) : "không còn lần nào";
}

function speakerNames(ids) {
  const names = ids.map((id) => broadcasts.speakers.get(id)?.name || id);
  return names.length <= 3 ? names.join(", ") : `${names.length} cụm loa`;
}

function targetsText(targets) {
  if (!targets) return "—";
  if (targets.all) return "Tất cả các cụm loa";
  const zones = (targets.zones || []).map((id) => broadcasts.zones.get(id)?.name || id);
  const speakers = targets.speakers || [];
  return [zones.join(", "), speakers.length ? speakerNames(speakers) : ""]
    .filter(Boolean)
    .join("; ");
}

function contentText(item) {
  if (item.kind === "text" && item.text) {
    const text = [...item.text];
    const short = text.length > 160 ? `${text.slice(0, 160).join("")}…` : item.text;
    return `Đọc văn bản: “${short}”`;
  }
  if (item.kind === "media" && item.media_id) {
    const title = broadcasts.media.get(item.media_id)?.title;
    return `Bản ghi: ${title || item.media_id}`;
  }
  if (item.kind === "url" && item.url) {
    const length = item.duration_s ? ` trong ${Math.round(item.duration_s / 60)} phút` : "";
    return `Tiếp sóng ${shownUrl(item.url)}${length}`;
  }
  return KIND_NAMES[item.kind] || item.kind;
}

// A stream's address may carry a key (?token=…): the radio station sees it whole, others
// only scheme://host/path (the daemon already sends leaders no more than that).
function shownUrl(url) {
  if (broadcasts.rights.edit) return url;
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return url.replace(/[?#].*$/, "");
  }
}

function setLevel(badge, priority) {
  badge.textContent = capital(PRIORITY_NAMES[priority] || priority);
  badge.dataset.level = priority;
}

function setState(badge, status) {
  badge.textContent = BROADCAST_STATES[status] || status;
  badge.dataset.state = status;
}

// ---- the list -------------------------------------------------------------------------

// Programmes still to air first, the next to air at the top (a standing daily programme
// stays in sight however many one-off ones are made after it); then the others as the
// daemon lists them, newest first. The sort is stable: equal times keep the newest first.
function listOrder(items) {
  const at = (item) => (item.next_at ? Date.parse(item.next_at) : Number.POSITIVE_INFINITY);
  const active = items.filter((item) => item.status === "active");
  active.sort((a, b) => (at(a) === at(b) ? 0 : at(a) - at(b)));
  return [...active, ...items.filter((item) => item.status !== "active")];
}

class BroadcastCard {
  constructor(item) {
    const root = $("broadcast-template").content.firstElementChild.cloneNode(true);
    this.root = root;
    this.field = (name) => root.querySelector(`.${name}`);
    this.open = this.field("broadcast-open");
    root.dataset.broadcast = item.id;
    this.open.addEventListener("click", () => broadcastDetail.open(this.item.id, this.open));
  }

  update(item) {
    this.item = item;
    this.open.textContent = item.title;
    this.root.dataset.level = item.priority;
    this.root.dataset.state = item.status;
    setLevel(this.field("priority"), item.priority);
    setState(this.field("state"), item.status);
    this.field("kind").textContent = KIND_NAMES[item.kind] || item.kind;
    this.field("schedule").textContent = scheduleText(item);
    const next = nextText(item);
    this.field("next").textContent = next;
    this.field("next").hidden = !next;
    this.field("next").previousElementSibling.hidden = !next;
  }
}

// ---- the report -----------------------------------------------------------------------

const broadcastReport = {
  query(format) {
    const query = new URLSearchParams();
    const day = $("bc-report-day").value;
    if (day) query.set("day", day);
    query.set("span", $("bc-report-span").value);
    query.set("format", format);
    return `/api/v1/reports/broadcasts?${query}`;
  },

  place() {
    // The printable page opens in a tab of its own: the login cookie goes with it.
    $("bc-report-print").href = this.query("html");
  },

  async download(format, button) {
    say("bc-report-status", "");
    say("bc-report-error", "");
    const session = broadcasts.session;
    button.disabled = true;
    let response;
    let blob = null;
    try {
      response = await fetch(this.query(format), { credentials: "same-origin" });
      if (response.ok) blob = await response.blob();
    } catch {
      response = null;
    }
    if (session !== broadcasts.session) return;
    button.disabled = false;
    if (response && response.status === 401) {
      sessionExpired();
      return;
    }
    if (!response || !blob) {
      const body = response ? await response.json().catch(() => null) : null;
      say("bc-report-error", reason(body, "Chưa tải được báo cáo, vui lòng thử lại."));
      return;
    }
    const named = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
    const day = $("bc-report-day").value || vietnamDate(new Date());
    const span = $("bc-report-span").value === "month" ? day.slice(0, 7) : day;
    const name = named ? named[1] : `bao-cao-phat-thanh-${span}.${format}`;
    // The answer needed the login, so it is saved from memory rather than by a plain link.
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    say("bc-report-status", `Đã tải xuống tệp ${name}.`);
  },
};

// Enter in the date field submits the form: it downloads, as the first button does, rather
// than reloading the page (and losing a half-written announcement with it).
$("bc-report-form").addEventListener("submit", (event) => {
  event.preventDefault();
  broadcastReport.download("csv", $("bc-report-csv"));
});
$("bc-report-day").addEventListener("change", () => broadcastReport.place());
$("bc-report-span").addEventListener("change", () => broadcastReport.place());
$("bc-report-csv").addEventListener("click", (event) => {
  broadcastReport.download("csv", event.currentTarget);
});
$("bc-report-json").addEventListener("click", (event) => {
  broadcastReport.download("json", event.currentTarget);
});

// ---- the section -----------------------------------------------------------------------

const broadcasts = {
  rights: { read: false, edit: false },
  watching: false, // logged in with the right to read: the list refreshes while the tab shows
  cards: new Map(), // broadcast id → BroadcastCard, in listOrder
  zones: new Map(), // the names the lists and the form show: id → zone
  speakers: new Map(),
  media: new Map(),
  fleet: Promise.resolve(), // settles once zones, speakers and recordings are known
  session: 0, // bumped at each enter and leave: late answers of an old session are dropped
  sequence: 0,
  shown: SHOWN_AT_ONCE,
  refresh: null,

  enter(me) {
    this.session += 1;
    this.rights = { read: BROADCAST_READERS.has(me.role), edit: BROADCAST_EDITORS.has(me.role) };
    if (!this.rights.read) {
      // Technicians and district officials have no business with the programmes.
      $("broadcasts").hidden = true;
      return;
    }
    $("broadcasts").hidden = false;
    $("bc-report-day").value = vietnamDate(new Date());
    broadcastReport.place();
    this.fleet = this.loadFleet(this.session);
    this.watching = true;
    if (document.hidden) return; // the list loads when the tab is looked at
    this.refresh.now();
  },

  // A tab in the background downloads nothing; back in front, the list is brought up to date.
  visibility() {
    if (document.hidden) this.refresh.stop();
    else if (this.watching) this.refresh.now();
  },

  leave() {
    this.session += 1;
    this.watching = false;
    this.refresh.stop();
    if (broadcastDetail.isOpen()) broadcastDetail.dialog.close();
    broadcastDetail.reset();
    for (const card of this.cards.values()) card.root.remove();
    this.cards.clear();
    for (const names of [this.zones, this.speakers, this.media]) names.clear();
    this.shown = SHOWN_AT_ONCE;
    $("bc-filter").value = "active";
    $("bc-report-form").reset();
    for (const id of ["bc-list-error", "bc-report-status", "bc-report-error"]) say(id, "");
    $("bc-list-empty").hidden = true;
    $("bc-list-more").hidden = true;
    $("broadcasts").hidden = true;
  },

  // Names for ids (zones, speakers, recordings); the form draws its choices from them too.
  async loadFleet(session) {
    const paths = ["/api/v1/zones", "/api/v1/speakers", "/api/v1/media"];
    const answers = await Promise.all(paths.map((path) => api(path).catch(() => null)));
    if (session !== this.session) return;
    for (const [names, answer] of [[this.zones, answers[0]], [this.speakers, answers[1]]]) {
      if (answer && answer.response.ok && Array.isArray(answer.body)) {
        names.clear();
        for (const item of answer.body) names.set(item.id, item);
      }
    }
    this.placeMedia(answers[2]);
  },

  placeMedia(answer) {
    if (!answer || !answer.response.ok || !Array.isArray(answer.body)) return false;
    this.media.clear();
    for (const item of answer.body) this.media.set(item.id, item);
    return true;
  },

  async load() {
    const mine = ++this.sequence;
    const status = $("bc-filter").value;
    const query = status ? `?status=${encodeURIComponent(status)}` : "";
    const { response, body } = await api(`/api/v1/broadcasts${query}`);
    // A slower, older refresh must not overwrite a newer one.
    if (mine !== this.sequence || !this.refresh.running) return;
    if (response.status === 401) {
      sessionExpired();
      return;
    }
    if (response.status === 403) {
      this.watching = false;
      this.refresh.stop();
      $("broadcasts").hidden = true;
      return;
    }
    if (!response.ok || !Array.isArray(body)) {
      say("bc-list-error", "Chưa tải được danh sách chương trình — sẽ thử lại.");
      return;
    }
    say("bc-list-error", "");
    const shown = listOrder(body).slice(0, this.shown);
    const drop = (_id, card) => card.root.remove();
    reconcile(this.cards, shown, (item) => new BroadcastCard(item), drop);
    placeInOrder($("bc-list"), [...this.cards.values()].map((card) => card.root));
    $("bc-list-empty").hidden = body.length > 0;
    const more = $("bc-list-more");
    more.hidden = body.length <= shown.length;
    more.textContent = `Xem thêm (đang hiện ${shown.length}/${body.length} chương trình)`;
  },
};

broadcasts.refresh = new Repeat(BROADCASTS_EVERY_MS, () => broadcasts.load());

$("bc-filter").addEventListener("change", () => {
  broadcasts.shown = SHOWN_AT_ONCE;
  broadcasts.refresh.now();
});
$("bc-list-more").addEventListener("click", () => {
  broadcasts.shown += SHOWN_AT_ONCE;
  broadcasts.refresh.now();
});
document.addEventListener("visibilitychange", () => broadcasts.visibility());
parts.push(broadcasts);
