"use strict";
// One programme in detail (Lịch phát → a programme): what it airs, where and when, its next
// air times, and each air time followed speaker by speaker, live while the detail is open
// (Server-Sent Events); the radio station may cancel it. Uses app.js's helpers ($, api,
// post, Repeat, reconcile, placeInOrder, clock, say, reason, vietnameseOnly, sessionExpired,
// deliveryWords, DELIVERY_NAMES), broadcasts.js's (`broadcasts`, the words for programmes
// and times) and live-feed.js's LiveFeed.

const RUN_STATES = {
  pending: "đang chuẩn bị",
  dispatched: "đã gửi đến các cụm loa",
  missed: "bị lỡ",
  failed: "lỗi",
  cancelled: "đã hủy",
};
const STOPPED = "stopped"; // counted apart: speakers stopped before the end
const TROUBLE = new Set(["failed", "offline", "expired"]);
const NEXT_COUNT = 5;
const RUNS_SHOWN = 20; // the latest air times GET /{id} carries; older ones by the page
const POLL_MS = 5000; // only for a daemon without the live stream
// A speaker reporting its stop this much before loacam sent the relay's end (clocks, the
// report's trip) still stopped on time.
const RELAY_END_SLACK_MS = 30000;

// ---- one air time, speaker by speaker --------------------------------------------------

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// loacam sends `stop` to every speaker of a relay at its end (relay_stop.py), and they
// answer finished/"stopped": the planned end, not an interruption, unless a speaker stopped
// before loacam sent that end (someone pressed Dừng).
function stoppedOnTime(command, run, item) {
  if (!item || item.kind !== "url") return false;
  if (!("stopped_at" in run)) return true; // a daemon that does not say when it ended them
  if (!run.stopped_at) return false;
  if (!command.finished_at) return true;
  return Date.parse(command.finished_at) >= Date.parse(run.stopped_at) - RELAY_END_SLACK_MS;
}

// The state a speaker is counted and coloured under: a relay stopped at its end finished.
function countedState(command, run, item) {
  if (command.state !== "finished" || command.error !== "stopped") return command.state;
  return stoppedOnTime(command, run, item) ? "finished" : STOPPED;
}

function speakerWords(command, run, item) {
  const onTime = command.error === "stopped" && countedState(command, run, item) === "finished";
  return onTime ? "đã phát xong (dừng đúng giờ)" : deliveryWords(command);
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

// Speakers per state, the speakers stopped midway apart; a run without its speakers
// (an older daemon) is counted from its summary.
function countOf(run, speakers, item) {
  if (!speakers.length && run.summary && typeof run.summary === "object") return run.summary;
  const counted = {};
  for (const command of speakers) {
    const state = countedState(command, run, item);
    counted[state] = (counted[state] || 0) + 1;
  }
  return counted;
}

function sentence(text) {
  return /[.!?…]$/.test(text) ? text : `${text}.`;
}

class RunView {
  constructor(run) {
    const root = $("run-template").content.firstElementChild.cloneNode(true);
    this.root = root;
    this.field = (name) => root.querySelector(`.${name}`);
    this.rowsKey = "";
    this.spoken = ""; // the air time and its progress, in one sentence for the live region
    root.dataset.run = String(run.id);
  }

  update(run) {
    const item = broadcastDetail.item;
    const speakers = Array.isArray(run.speakers) ? run.speakers : [];
    const counted = countOf(run, speakers, item);
    const total = speakers.length;
    const finished = counted.finished || 0;
    const title = `${airTime(run.slot)} — ${RUN_STATES[run.state] || run.state}`;
    let line = `${finished}/${total} cụm loa đã phát xong.`;
    if (!total) {
      line = run.state === "pending"
        ? "Đang chuẩn bị âm thanh và gửi đến các cụm loa…"
        : "Không có cụm loa nào nhận lệnh.";
    }
    if (run.error) line += ` Lý do: ${sentence(vietnameseOnly(run.error))}`;
    const names = { ...DELIVERY_NAMES, [STOPPED]: "đã dừng giữa chừng" };
    const others = [...Object.keys(DELIVERY_NAMES), STOPPED]
      .filter((state) => state !== "finished" && counted[state])
      .map((state) => `${counted[state]} ${names[state]}`);
    setText(this.field("run-title"), title);
    setText(this.field("run-summary"), line);
    setText(this.field("run-states"), others.join(" · "));
    this.field("run-states").hidden = others.length === 0;
    this.spoken = `${title}. ${line}`;
    this.root.classList.toggle("complete", total > 0 && finished === total);
    this.root.classList.toggle("trouble", speakers.some((s) => TROUBLE.has(s.state)));
    this.field("run-speakers").hidden = total === 0;
    this.placeRows(speakers.map((command) => ({
      command,
      name: broadcasts.speakers.get(command.speaker_id)?.name || command.speaker_id,
      state: countedState(command, run, item),
      words: speakerWords(command, run, item),
      at: lastHeard(command),
    })));
  }

  // The table is drawn again only when something in it changed.
  placeRows(rows) {
    rows.sort((a, b) => a.name.localeCompare(b.name, "vi", { numeric: true }));
    const key = JSON.stringify(rows.map((row) => [row.name, row.state, row.words, row.at]));
    if (key === this.rowsKey) return;
    this.rowsKey = key;
    this.root.querySelector("tbody").replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.speaker = row.command.speaker_id;
      tr.dataset.state = row.state;
      for (const text of [row.name, row.words, row.at]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
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
  spoken: null, // what the live region last said of the latest air time (null: not yet)

  isOpen() {
    return this.dialog.open;
  },

  async open(id, opener) {
    this.reset();
    const token = ++this.token;
    this.opener = opener || null;
    $("bc-detail-title").textContent = "Đang tải…";
    if (!this.dialog.open) this.dialog.showModal();
    arrange(); // the camera grid rests: this stream needs a connection of its own
    const loaded = await this.load(token, id);
    if (loaded !== "shown" || token !== this.token) return;
    this.feed = new LiveFeed(broadcastPath(id, "/events"), {
      event: (type, data) => this.onEvent(token, type, data),
      state: (state) => this.onFeed(token, id, state),
    });
    this.feed.start();
  },

  // "shown", "refused" (403, 404: asking again is no use), "failed" or "stale".
  async load(token, id) {
    let answer;
    try {
      answer = await api(broadcastPath(id));
    } catch {
      answer = null;
    }
    if (token !== this.token) return "stale";
    if (answer && answer.response.status === 401) {
      sessionExpired();
      return "stale";
    }
    if (!answer || !answer.response.ok || !answer.body) {
      const why = answer ? reason(answer.body, "") : "mất kết nối với máy chủ loacam";
      say("bc-detail-error", `Chưa tải được chương trình${why ? `: ${why}` : ""}.`);
      if (!this.item) $("bc-detail-title").textContent = "Chương trình phát";
      return answer && [403, 404].includes(answer.response.status) ? "refused" : "failed";
    }
    say("bc-detail-error", "");
    this.show(answer.body);
    return "shown";
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

  async onFeed(token, id, state) {
    if (token !== this.token) return;
    const live = $("bc-live");
    live.parentElement.classList.toggle("lost", state === "lost");
    if (state !== "live") setText($("bc-live-at"), "");
    const words = {
      live: "Đang theo dõi trực tiếp",
      lost: "Mất kết nối theo dõi trực tiếp — đang thử lại…",
    };
    setText(live, words[state] || ""); // a status line: said again only when it changes
    if (state === "expired") sessionExpired();
    if (state === "forbidden") {
      say("bc-detail-error", "Tài khoản của bạn không còn được xem chương trình này.");
    }
    // 404: the programme is gone, or the daemon has no live stream; asking for the
    // programme itself tells which.
    const older = state === "unavailable"
      || (state === "gone" && (await this.load(token, id)) === "shown");
    if (older && token === this.token) {
      // A daemon without the live stream: ask again every few seconds while open, until
      // it answers that the programme is gone or not to be read.
      this.poll = new Repeat(POLL_MS, async () => {
        if ((await this.load(token, id)) === "refused" && this.poll) this.poll.stop();
      });
      this.poll.later(POLL_MS);
    }
  },

  show(item) {
    this.item = item;
    setText($("bc-detail-title"), item.title);
    setLevel($("bc-detail-priority"), item.priority);
    setState($("bc-detail-state"), item.status);
    this.dialog.dataset.level = item.priority;
    setText($("bc-d-content"), contentText(item));
    setText($("bc-d-targets"), targetsText(item.targets));
    setText($("bc-d-schedule"), scheduleText(item) + skipText(item));
    const volume = typeof item.volume === "number" ? String(item.volume) : "giữ âm lượng của loa";
    setText($("bc-d-volume"), volume);
    const late = typeof item.lateness_min === "number" ? `${item.lateness_min} phút` : "—";
    setText($("bc-d-lateness"), late);
    setText($("bc-d-creator"), item.created_by);
    $("bc-cancel").hidden = !(broadcasts.rights.edit && item.status === "active");

    const latest = item.executions || [];
    const seen = new Set(latest.map((run) => run.id));
    const runs = [...latest, ...this.older.filter((run) => !seen.has(run.id))].sort(
      (a, b) => b.slot.localeCompare(a.slot) || b.id - a.id,
    );
    reconcile(this.runs, runs, (run) => new RunView(run), (_id, view) => view.root.remove());
    placeInOrder($("bc-runs"), [...this.runs.values()].map((view) => view.root));
    this.speak(runs.length ? this.runs.get(runs[0].id).spoken : "");
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

  // The latest air time's progress, read aloud when it changes (not what the dialog said
  // when it opened: its heading is read then).
  speak(text) {
    if (this.spoken !== null && text !== this.spoken) setText($("bc-run-live"), text);
    this.spoken = text;
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
    // The button is gone: the focus goes to what happened rather than to the page's top.
    $("bc-detail-status").focus();
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
    this.spoken = null;
    $("bc-run-live").textContent = "";
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
    arrange(); // the camera grid plays again
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
