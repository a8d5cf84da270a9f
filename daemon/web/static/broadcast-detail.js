"use strict";
// One programme in detail (Lịch phát → a programme): what it airs, where and when, its next
// air times, and each air time followed speaker by speaker, live while the detail is open
// (Server-Sent Events); the radio station may cancel it. Uses app.js's helpers ($, api,
// post, Repeat, reconcile, placeInOrder, clock, say, reason, vietnameseOnly, sessionExpired,
// COMMAND_ERRORS) and broadcasts.js's (`broadcasts`, the words for programmes and times).

const RUN_STATES = {
  pending: "đang chuẩn bị",
  dispatched: "đã gửi đến loa",
  missed: "bị lỡ",
  failed: "lỗi",
  cancelled: "đã hủy",
};
// Each speaker's delivery (DeliveryState in daemon/speakers/outbox.py), furthest first.
const DELIVERY_STATES = [
  ["finished", "đã phát xong"],
  ["started", "đang phát"],
  ["acknowledged", "loa đã nhận"],
  ["sent", "đã gửi"],
  ["queued", "chờ gửi"],
  ["offline", "mất kết nối"],
  ["failed", "lỗi"],
  ["expired", "quá hạn"],
];
const DELIVERY_NAMES = Object.fromEntries(DELIVERY_STATES);
const TROUBLE = new Set(["failed", "offline", "expired"]);
const NEXT_COUNT = 5;
const RUNS_SHOWN = 20; // the latest air times GET /{id} carries; older ones by the page
const LIVE_RETRY_MS = 1000; // doubled after each drop, up to LIVE_MAX_RETRY_MS
const LIVE_MAX_RETRY_MS = 30000;
const LIVE_STEADY_MS = 15000; // a stream up this long was a success: the backoff starts over
const POLL_MS = 5000; // only for a daemon without the live stream

// ---- one air time, speaker by speaker --------------------------------------------------

function deliveryWords(command) {
  if (command.state === "failed") {
    return `lỗi: ${COMMAND_ERRORS[command.error] || command.error || "không rõ lý do"}`;
  }
  if (command.state === "finished" && command.error === "stopped") return "đã dừng giữa chừng";
  return DELIVERY_NAMES[command.state] || command.state;
}

function lastHeard(command) {
  const moments = [
    command.finished_at,
    command.started_at,
    command.acked_at,
    command.sent_at,
    command.issued_at,
  ];
  const latest = moments.find(Boolean);
  return latest ? clock(new Date(latest)) : "";
}

function summaryOf(run) {
  if (run.summary && typeof run.summary === "object") return run.summary;
  const counted = {};
  for (const command of run.speakers) counted[command.state] = (counted[command.state] || 0) + 1;
  return counted;
}

class RunView {
  constructor(run) {
    const root = $("run-template").content.firstElementChild.cloneNode(true);
    this.root = root;
    this.field = (name) => root.querySelector(`.${name}`);
    root.dataset.run = String(run.id);
  }

  update(run) {
    const speakers = Array.isArray(run.speakers) ? run.speakers : [];
    const summary = summaryOf({ ...run, speakers });
    const total = speakers.length;
    const finished = summary.finished || 0;
    this.field("run-title").textContent =
      `${airTime(run.slot)} — ${RUN_STATES[run.state] || run.state}`;
    let line = `${finished}/${total} loa đã phát xong`;
    if (!total) {
      line = run.state === "pending"
        ? "Đang chuẩn bị âm thanh và gửi đến loa…"
        : "Không có loa nào nhận lệnh.";
    }
    if (run.error) line += ` Lý do: ${vietnameseOnly(run.error)}`;
    this.field("run-summary").textContent = line;
    const others = DELIVERY_STATES.filter(([state]) => state !== "finished" && summary[state])
      .map(([state, name]) => `${summary[state]} ${name}`);
    this.field("run-states").textContent = others.join(" · ");
    this.field("run-states").hidden = others.length === 0;
    this.root.classList.toggle("complete", total > 0 && finished === total);
    this.root.classList.toggle("trouble", speakers.some((s) => TROUBLE.has(s.state)));
    this.field("run-speakers").hidden = total === 0;
    const rows = speakers
      .map((command) => ({
        command,
        name: broadcasts.speakers.get(command.speaker_id)?.name || command.speaker_id,
      }))
      .sort((a, b) => a.name.localeCompare(b.name, "vi", { numeric: true }))
      .map(({ command, name }) => {
        const tr = document.createElement("tr");
        tr.dataset.speaker = command.speaker_id;
        tr.dataset.state = command.state;
        for (const text of [name, deliveryWords(command), lastHeard(command)]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        return tr;
      });
    this.root.querySelector("tbody").replaceChildren(...rows);
  }
}

// ---- the live stream of one programme -------------------------------------------------

// Server-Sent Events, parsed as the HTML standard says: fields per line, an event per
// blank line; `data` lines joined with "\n".
class EventParser {
  constructor() {
    this.buffer = "";
    this.type = "";
    this.data = [];
  }

  // The events complete in `chunk`, as {type, data}.
  push(chunk) {
    this.buffer += chunk;
    // A CR at the very end may be the first half of a CRLF: it waits for the next chunk.
    const lines = this.buffer.split(/\r\n|\n|\r(?!$)/);
    this.buffer = lines.pop();
    const events = [];
    for (const line of lines) {
      if (line === "") {
        if (this.data.length) {
          events.push({ type: this.type || "message", data: this.data.join("\n") });
        }
        this.type = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: the server's keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") this.type = value;
      else if (field === "data") this.data.push(value);
    }
    return events;
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

// fetch rather than EventSource: the page can abort it, read its status (a login run out,
// a daemon without the stream) and choose its own backoff. The login rides in the cookie.
class LiveFeed {
  constructor(path, handlers) {
    this.path = path;
    this.handlers = handlers; // event(type, data), state("live" | "lost" | ...)
    this.controller = null;
  }

  start() {
    this.stop();
    this.controller = new AbortController();
    this.run(this.controller.signal);
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async run(signal) {
    let delayMs = LIVE_RETRY_MS;
    while (!signal.aborted) {
      const since = Date.now();
      try {
        const response = await fetch(this.path, {
          credentials: "same-origin",
          headers: { Accept: "text/event-stream" },
          cache: "no-store",
          signal,
        });
        if ([401, 403, 404, 405].includes(response.status)) {
          this.handlers.state(response.status === 401 ? "expired" : "unavailable");
          return;
        }
        if (response.ok && response.body) {
          // The daemon sends the whole state first: nothing missed while the link was down.
          this.handlers.state("live");
          await this.read(response.body);
        }
      } catch {
        // A dropped link, or the abort itself (checked below).
      }
      if (signal.aborted) return;
      if (Date.now() - since >= LIVE_STEADY_MS) delayMs = LIVE_RETRY_MS;
      this.handlers.state("lost");
      await pause(delayMs * (0.75 + Math.random() / 2), signal); // jitter: not all at once
      delayMs = Math.min(delayMs * 2, LIVE_MAX_RETRY_MS);
    }
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new EventParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const event of parser.push(value)) this.handlers.event(event.type, event.data);
    }
  }
}

// ---- one programme in detail -----------------------------------------------------------

const broadcastDetail = {
  dialog: $("bc-detail"),
  item: null,
  opener: null,
  token: 0, // bumped at each open and close: late answers for another programme are dropped
  runs: new Map(), // execution id → RunView, newest first
  older: [], // air times paged in below the latest ones (they no longer change)
  moreOlder: false,
  nextKey: "",
  events: 0,
  feed: null,
  poll: null,

  isOpen() {
    return this.dialog.open;
  },

  async open(id, opener) {
    this.reset();
    const token = ++this.token;
    this.opener = opener || null;
    $("bc-detail-title").textContent = "Đang tải…";
    if (!this.dialog.open) this.dialog.showModal();
    const loaded = await this.load(token, id);
    if (!loaded || token !== this.token) return;
    this.feed = new LiveFeed(broadcastPath(id, "/events"), {
      event: (type, data) => this.onEvent(token, type, data),
      state: (state) => this.onFeed(token, id, state),
    });
    this.feed.start();
  },

  async load(token, id) {
    let answer;
    try {
      answer = await api(broadcastPath(id));
    } catch {
      answer = null;
    }
    if (token !== this.token) return false;
    if (answer && answer.response.status === 401) {
      sessionExpired();
      return false;
    }
    if (!answer || !answer.response.ok || !answer.body) {
      const why = answer ? reason(answer.body, "") : "mất kết nối với máy chủ loacam";
      say("bc-detail-error", `Chưa tải được chương trình${why ? `: ${why}` : ""}.`);
      $("bc-detail-title").textContent = "Chương trình phát";
      return false;
    }
    say("bc-detail-error", "");
    this.show(answer.body);
    return true;
  },

  onEvent(token, type, data) {
    if (token !== this.token || type !== "progress") return;
    let body;
    try {
      body = JSON.parse(data);
    } catch {
      return; // a torn message: the next one carries the whole state again
    }
    this.events += 1;
    $("bc-live").dataset.events = String(this.events);
    // Outside the status line: a screen reader would read every update's time aloud.
    $("bc-live-at").textContent = `— cập nhật lúc ${clock(new Date())}`;
    this.show(body);
  },

  onFeed(token, id, state) {
    if (token !== this.token) return;
    const live = $("bc-live");
    live.parentElement.classList.toggle("lost", state === "lost");
    if (state !== "live") $("bc-live-at").textContent = "";
    if (state === "live") live.textContent = "Đang theo dõi trực tiếp";
    if (state === "lost") live.textContent = "Mất kết nối theo dõi trực tiếp — đang thử lại…";
    if (state === "expired") sessionExpired();
    if (state === "unavailable") {
      // A daemon without the live stream: ask again every few seconds while open.
      live.textContent = "";
      this.poll = new Repeat(POLL_MS, () => this.load(token, id));
      this.poll.later(POLL_MS);
    }
  },

  show(item) {
    this.item = item;
    $("bc-detail-title").textContent = item.title;
    setLevel($("bc-detail-priority"), item.priority);
    setState($("bc-detail-state"), item.status);
    this.dialog.dataset.level = item.priority;
    $("bc-d-content").textContent = contentText(item);
    $("bc-d-targets").textContent = targetsText(item.targets);
    $("bc-d-schedule").textContent = scheduleText(item) + skipText(item);
    $("bc-d-volume").textContent =
      typeof item.volume === "number" ? String(item.volume) : "giữ âm lượng của loa";
    $("bc-d-lateness").textContent =
      typeof item.lateness_min === "number" ? `${item.lateness_min} phút` : "—";
    $("bc-d-creator").textContent = item.created_by;
    $("bc-cancel").hidden = !(broadcasts.rights.edit && item.status === "active");

    const latest = item.executions || [];
    const seen = new Set(latest.map((run) => run.id));
    const runs = [...latest, ...this.older.filter((run) => !seen.has(run.id))].sort(
      (a, b) => b.slot.localeCompare(a.slot) || b.id - a.id,
    );
    reconcile(this.runs, runs, (run) => new RunView(run), (_id, view) => view.root.remove());
    placeInOrder($("bc-runs"), [...this.runs.values()].map((view) => view.root));
    $("bc-runs-none").hidden = runs.length > 0;
    if (!this.older.length) this.moreOlder = latest.length >= RUNS_SHOWN;
    $("bc-runs-more").hidden = !this.moreOlder;
    // The next air times move on once one has aired, or when the programme ends.
    const key = `${item.status}|${runs.length ? runs[0].id : ""}|${item.start_at}|${item.rrule}`;
    if (key !== this.nextKey) {
      this.nextKey = key;
      this.loadNext(this.token, item.id);
    }
  },

  async loadNext(token, id) {
    let answer;
    try {
      answer = await api(broadcastPath(id, `/next?count=${NEXT_COUNT}`));
    } catch {
      return; // the list stays as it was; the next change asks again
    }
    if (token !== this.token || !answer.response.ok || !Array.isArray(answer.body)) return;
    $("bc-next").replaceChildren(...answer.body.map((iso) => {
      const li = document.createElement("li");
      li.textContent = airTime(iso);
      return li;
    }));
    $("bc-next-none").hidden = answer.body.length > 0;
  },

  async loadOlder() {
    const item = this.item;
    if (!item) return;
    const token = this.token;
    const oldest = Math.min(...[...this.runs.keys()]);
    const button = $("bc-runs-more");
    button.disabled = true;
    const path = broadcastPath(item.id, `/executions?limit=${RUNS_SHOWN}&before=${oldest}`);
    const answer = await api(path).catch(() => null);
    if (token !== this.token) return;
    button.disabled = false;
    if (!answer || !answer.response.ok || !Array.isArray(answer.body)) {
      say("bc-detail-error", "Chưa tải được các lần phát cũ hơn, vui lòng thử lại.");
      return;
    }
    this.older.push(...answer.body);
    this.moreOlder = answer.body.length >= RUNS_SHOWN;
    this.show(this.item);
  },

  async cancel() {
    const item = this.item;
    if (!item) return;
    const question = `Hủy chương trình “${item.title}”?\nCác lần phát sau sẽ không phát nữa.`;
    if (!window.confirm(question)) return;
    const token = this.token;
    const button = $("bc-cancel");
    button.disabled = true;
    let answer;
    try {
      answer = await post(broadcastPath(item.id, "/cancel"), {});
    } catch {
      answer = null;
    }
    if (token !== this.token) return;
    button.disabled = false;
    if (answer && answer.response.status === 401) {
      sessionExpired();
      return;
    }
    if (!answer || !answer.response.ok) {
      const why = answer ? reason(answer.body, "") : "mất kết nối với máy chủ loacam";
      say("bc-detail-error", `Chưa hủy được “${item.title}”${why ? `: ${why}` : ""}.`);
      return;
    }
    say("bc-detail-status", `Đã hủy “${item.title}”.`);
    this.show(answer.body); // the same view as GET: its air times, its speakers
    broadcasts.refresh.now();
  },

  reset() {
    this.token += 1;
    if (this.feed) this.feed.stop();
    this.feed = null;
    if (this.poll) this.poll.stop();
    this.poll = null;
    this.item = null;
    this.events = 0;
    this.nextKey = "";
    for (const view of this.runs.values()) view.root.remove();
    this.runs.clear();
    this.older = [];
    this.moreOlder = false;
    $("bc-runs-more").hidden = true;
    $("bc-next").replaceChildren();
    $("bc-next-none").hidden = true;
    $("bc-runs-none").hidden = true;
    $("bc-cancel").hidden = true;
    const live = $("bc-live");
    live.textContent = "";
    live.parentElement.classList.remove("lost");
    delete live.dataset.events;
    $("bc-live-at").textContent = "";
    say("bc-detail-status", "");
    say("bc-detail-error", "");
  },

  closed() {
    this.reset();
    const opener = this.opener;
    this.opener = null;
    if (opener && opener.isConnected) opener.focus();
  },
};

$("bc-detail-close").addEventListener("click", () => broadcastDetail.dialog.close());
// Esc closes a modal <dialog> by itself; every way of closing ends here.
broadcastDetail.dialog.addEventListener("close", () => broadcastDetail.closed());
$("bc-cancel").addEventListener("click", () => broadcastDetail.cancel());
$("bc-runs-more").addEventListener("click", () => broadcastDetail.loadOlder());
