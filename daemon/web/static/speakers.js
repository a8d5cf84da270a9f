"use strict";
// The speakers section: clusters by village (thôn), the alarms nobody may miss, and for
// technicians the test tone, the volume and stop, each command followed until the speaker
// has done it. Uses app.js's helpers ($, api, post, reason, Repeat, reconcile, placeInOrder,
// when, clock, capital, deliveryWords, PRIORITY_NAMES) and joins its session through `parts`.

const SPEAKER_STATUS = { online: "Trực tuyến", offline: "Mất kết nối", unknown: "Chưa rõ" };
const SPEAKER_BADGE = { online: "online", offline: "lost", unknown: "unknown" };
const FAULTS = {
  amplifier: "hỏng bộ khuếch đại",
  overheat: "quá nóng",
  power: "mất nguồn điện",
  storage: "lỗi bộ nhớ",
};
const PLAYING_NAMES = { "test-tone": "Âm thử" };
const DONE = new Set(["finished", "failed", "expired"]);
const PLAYS = "play";
const ACTIONS = [["test", "Phát thử"], ["set-volume", "Đặt âm lượng"], ["stop", "Dừng"]];
const NO_ZONE = "";

const SPEAKERS_EVERY_MS = 5000;
const COMMAND_EVERY_MS = 1000;
const COMMAND_WATCH_MS = 30000;

function speakerPath(id, rest = "") {
  return `/api/v1/speakers/${encodeURIComponent(id)}${rest}`;
}

function signalText(dbm) {
  if (typeof dbm !== "number") return { text: "Không rõ", weak: false };
  let word = "rất yếu";
  if (dbm >= -75) word = "mạnh";
  else if (dbm >= -85) word = "khá";
  else if (dbm >= -95) word = "yếu";
  return { text: `${Math.round(dbm)} dBm (${word})`, weak: dbm < -85 };
}

function playingText(playing) {
  if (!playing) return "Không";
  const item = playing.item_id || "";
  const name = PLAYING_NAMES[item] || (item ? `Bản tin ${item}` : "Âm thanh");
  const priority = PRIORITY_NAMES[playing.priority];
  return priority ? `${name} (${priority})` : name;
}

function deliveryText(command) {
  // Only a play has playback; any other command is finished once the speaker has done it.
  const done = command.state === "finished" && command.error !== "stopped" && command.op !== PLAYS;
  return capital(done ? "loa đã thực hiện" : deliveryWords(command));
}

function settled(command) {
  return DONE.has(command.state);
}

function deliveryTone(command) {
  if (command.state === "failed" || command.state === "expired") return "bad";
  return ["acknowledged", "started", "finished"].includes(command.state) ? "ok" : "";
}

// ---- one speaker cluster ---------------------------------------------------------------

class SpeakerCard {
  constructor(speaker, rights) {
    const root = $("speaker-template").content.firstElementChild.cloneNode(true);
    this.root = root;
    this.speaker = speaker;
    this.field = (name) => root.querySelector(`.${name}`);
    this.input = this.field("volume-input");
    this.edited = false; // the user is typing a volume: refreshes leave the box alone
    this.watched = null; // the command whose delivery is shown
    this.poll = new Repeat(COMMAND_EVERY_MS, () => this.follow());
    root.id = `speaker-${speaker.id}`;
    root.dataset.speaker = speaker.id;

    const form = this.field("controls");
    form.hidden = !(rights.manage || rights.stop);
    this.field("test").hidden = !rights.manage;
    this.field("volume-control").hidden = !rights.manage;
    this.field("stop").hidden = !rights.stop;
    this.field("test").addEventListener("click", () => {
      this.send("Phát thử", speakerPath(speaker.id, "/test-tone"), {});
    });
    this.field("stop").addEventListener("click", () => {
      this.send("Dừng", speakerPath(speaker.id, "/stop"), {});
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.setVolume();
    });
    this.input.addEventListener("input", () => {
      this.edited = true;
    });
  }

  update(speaker) {
    this.speaker = speaker;
    const name = speaker.name;
    this.field("tile-name").textContent = name;
    const badge = this.field("badge");
    badge.textContent = SPEAKER_STATUS[speaker.status] || speaker.status;
    badge.className = `badge ${SPEAKER_BADGE[speaker.status] || ""}`;
    badge.title = speaker.last_seen ? `Tin cuối từ loa lúc ${when(speaker.last_seen)}` : "";
    this.field("since").textContent = speaker.since
      ? when(speaker.since)
      : "Chưa nhận được tin từ loa";
    this.field("volume").textContent = speaker.volume === null ? "—" : String(speaker.volume);
    this.field("playing").textContent = playingText(speaker.playing);
    this.field("playing").classList.toggle("emergency", speaker.playing?.priority === "emergency");
    const signal = signalText(speaker.signal_dbm);
    this.field("signal").textContent = signal.text;
    this.field("signal").classList.toggle("weak", signal.weak);
    const faults = speaker.faults.map((fault) => FAULTS[fault] || fault);
    this.field("faults").textContent = faults.length ? faults.join(", ") : "Không có";
    this.field("faults").classList.toggle("weak", faults.length > 0);

    const alarm = this.field("speaker-alarm");
    alarm.hidden = !speaker.alarm;
    alarm.textContent = speaker.alarm
      ? `Cảnh báo: mất kết nối từ ${when(speaker.alarm_since)}`
      : "";
    this.root.classList.toggle("alarm", speaker.alarm);
    this.root.classList.toggle("trouble", speaker.status !== "online");

    if (!this.edited && document.activeElement !== this.input) {
      this.input.value = speaker.volume === null ? "" : String(speaker.volume);
    }
    for (const [field, action] of ACTIONS) {
      this.field(field).setAttribute("aria-label", `${action}: ${name}`);
    }
    this.input.setAttribute("aria-label", `Âm lượng mới (0–100) cho ${name}`);
  }

  async setVolume() {
    const text = this.input.value.trim();
    const volume = Number(text);
    if (text === "" || !Number.isInteger(volume) || volume < 0 || volume > 100) {
      this.show("Âm lượng phải là số nguyên từ 0 đến 100.", "bad");
      this.input.focus();
      return;
    }
    const path = speakerPath(this.speaker.id, "/volume");
    // Sent: the box follows what the speaker reports again.
    if (await this.send(`Đặt âm lượng ${volume}`, path, { volume })) this.edited = false;
  }

  // True once the daemon has taken the command; its delivery is then shown as it goes.
  async send(label, path, body) {
    this.poll.stop();
    this.watched = null;
    this.busy(true);
    this.show(`${label}: đang gửi lệnh…`, "");
    let answer;
    try {
      answer = await post(path, body);
    } catch {
      this.show(`${label}: không gửi được — mất kết nối với máy chủ loacam.`, "bad");
      return false;
    } finally {
      this.busy(false);
    }
    if (answer.response.status === 401) {
      sessionExpired();
      return false;
    }
    if (!answer.response.ok || !answer.body) {
      const why = reason(answer.body, "không gửi được lệnh, vui lòng thử lại.");
      this.show(`${label}: ${why}`, "bad");
      return false;
    }
    this.watched = { label, command: answer.body, until: Date.now() + COMMAND_WATCH_MS };
    this.showDelivery();
    if (!settled(answer.body)) this.poll.later(COMMAND_EVERY_MS);
    return true;
  }

  async follow() {
    const watched = this.watched;
    if (!watched) {
      this.poll.stop();
      return;
    }
    const id = encodeURIComponent(watched.command.cmd_id);
    const { response, body } = await api(`/api/v1/speaker-commands/${id}`);
    if (this.watched !== watched) return; // a newer command took its place meanwhile
    if (response.ok && body) {
      const changed = body.state !== watched.command.state;
      watched.command = body;
      if (changed) speakers.refresh.now(); // what the speaker plays, its volume: show it now
    }
    const over = settled(watched.command) || Date.now() > watched.until;
    this.showDelivery(over);
    if (over) this.poll.stop();
  }

  showDelivery(over = false) {
    const { label, command } = this.watched;
    // Given up following: say that the speaker has not answered yet, not that it never will.
    const silent = over && ["queued", "sent"].includes(command.state) ? " — loa chưa trả lời" : "";
    this.show(`${label}: ${deliveryText(command)}${silent}`, deliveryTone(command));
  }

  show(text, tone) {
    const line = this.field("command");
    line.textContent = text;
    line.className = `command ${tone}`;
    line.hidden = !text;
  }

  busy(state) {
    for (const button of this.root.querySelectorAll(".controls button")) button.disabled = state;
  }

  remove() {
    this.poll.stop();
    this.watched = null;
    this.root.remove();
  }
}

// ---- one village -----------------------------------------------------------------------

class ZoneGroup {
  constructor() {
    this.root = $("zone-template").content.firstElementChild.cloneNode(true);
    this.title = this.root.querySelector(".zone-title");
    this.list = this.root.querySelector(".speaker-grid");
  }

  update(zone) {
    this.root.dataset.zone = zone.id;
    this.title.textContent = `${zone.name} — ${zone.online}/${zone.speakers} trực tuyến`;
    this.title.classList.toggle("trouble", zone.online < zone.speakers);
  }
}

// Zones as the API lists them, then a group for speakers in no known zone.
function zoneItems(zones, list) {
  const known = new Set(zones.map((zone) => zone.id));
  const stray = list.filter((speaker) => !known.has(speaker.zone));
  const items = zones.map((zone) => ({ ...zone }));
  if (stray.length) {
    const online = stray.filter((speaker) => speaker.status === "online").length;
    items.push({ id: NO_ZONE, name: "Chưa xếp thôn", speakers: stray.length, online });
  }
  return { items, zoneOf: (speaker) => (known.has(speaker.zone) ? speaker.zone : NO_ZONE) };
}

// ---- the section -----------------------------------------------------------------------

const speakers = {
  rights: { manage: false, stop: false },
  cards: new Map(), // speaker id → SpeakerCard
  groups: new Map(), // zone id → ZoneGroup
  alarmKey: "",
  sequence: 0,
  refresh: null,

  enter(me) {
    this.rights = {
      manage: me.role === "admin" || me.role === "technician",
      stop: ["admin", "technician", "radio"].includes(me.role),
    };
    this.refresh.now();
  },

  leave() {
    this.refresh.stop();
    for (const card of this.cards.values()) card.remove();
    this.cards.clear();
    this.groups.clear();
    $("zones").replaceChildren();
    this.showAlarms([]);
    $("speakers").hidden = true;
  },

  async load() {
    const mine = ++this.sequence;
    const listed = await api("/api/v1/speakers");
    if (listed.response.status === 401) {
      sessionExpired();
      return;
    }
    if (listed.response.status === 403) {
      // District officials have no business with the commune's speakers.
      this.refresh.stop();
      $("speakers").hidden = true;
      return;
    }
    if (!listed.response.ok || !Array.isArray(listed.body)) return;
    const [zones, alarms] = await Promise.all([
      api("/api/v1/zones"),
      api("/api/v1/alarms?active=true"),
    ]);
    // A slower, older refresh must not overwrite a newer one.
    if (mine !== this.sequence || !this.refresh.running) return;
    // Without the villages every cluster would land in "no village": keep what is shown.
    if (!zones.response.ok || !Array.isArray(zones.body)) return;
    $("speakers").hidden = false;
    this.place(listed.body, zones.body);
    if (alarms.response.ok && Array.isArray(alarms.body)) this.showAlarms(alarms.body);
  },

  place(list, zones) {
    const { items, zoneOf } = zoneItems(zones, list);
    reconcile(this.groups, items, () => new ZoneGroup(), (_id, group) => group.root.remove());
    placeInOrder($("zones"), [...this.groups.values()].map((group) => group.root));
    reconcile(
      this.cards,
      list,
      (speaker) => new SpeakerCard(speaker, this.rights),
      (_id, card) => card.remove(),
    );
    for (const [zoneId, group] of this.groups) {
      const here = list.filter((speaker) => zoneOf(speaker) === zoneId);
      placeInOrder(group.list, here.map((speaker) => this.cards.get(speaker.id).root));
    }
    const online = list.filter((speaker) => speaker.status === "online").length;
    $("speakers-empty").hidden = list.length > 0;
    $("speakers-summary").textContent = list.length
      ? `${online}/${list.length} cụm loa trực tuyến — cập nhật lúc ${clock(new Date())}`
      : "";
  },

  showAlarms(alarms) {
    // Rebuilt only when the alarms change: screen readers announce the banner each time.
    const key = alarms.map((alarm) => `${alarm.subject}@${alarm.since}`).join("|");
    if (key === this.alarmKey) return;
    this.alarmKey = key;
    const items = alarms.map((alarm) => {
      const li = document.createElement("li");
      const text = alarm.message || `${alarm.subject}: cảnh báo từ ${when(alarm.since)}`;
      if (this.cards.has(alarm.subject)) {
        // A link to the speaker's card, which carries the same red marker.
        const link = document.createElement("a");
        link.href = `#speaker-${alarm.subject}`;
        link.textContent = text;
        li.append(link);
      } else {
        li.textContent = text;
      }
      return li;
    });
    $("speaker-alarm-list").replaceChildren(...items);
    const count = alarms.length;
    $("speaker-alarms-title").textContent = `Cảnh báo loa truyền thanh (${count})`;
    $("speaker-alarms").hidden = count === 0;
    const notice = $("alarm-notice");
    notice.hidden = count === 0;
    notice.firstElementChild.textContent =
      `Có ${count} cảnh báo loa truyền thanh — bấm để xem chi tiết`;
  },
};

speakers.refresh = new Repeat(SPEAKERS_EVERY_MS, () => speakers.load());
parts.push(speakers);
