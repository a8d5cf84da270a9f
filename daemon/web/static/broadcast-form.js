"use strict";
// The form that creates a programme (Lịch phát → Tạo chương trình phát), for the radio
// station and administrators: what to air (a text read out, a recording, a relayed
// stream), where, how urgent, how loud and when; a clash with another programme is shown
// with the daemon's choices. Uses app.js's helpers, broadcasts.js's (`broadcasts`,
// `airTime`, `hhmm`, `addDays`, `speakerNames`, `scheduleText`, `LUNAR_MONTHS`) and
// broadcast-detail.js's `broadcastDetail`.

const BROADCAST_FIELDS = {
  title: "Tên chương trình",
  text: "Văn bản",
  voice: "Giọng đọc",
  media_id: "Bản ghi",
  url: "Địa chỉ tiếp sóng",
  duration_s: "Thời lượng tiếp sóng",
  targets: "Nơi phát",
  priority: "Mức độ",
  volume: "Âm lượng",
  start_at: "Ngày giờ phát",
  recurrence: "Lịch lặp lại",
  lateness_min: "Phát muộn tối đa",
};
const MAX_LATENESS_MIN = 24 * 60;
const MAX_RELAY_MIN = 6 * 60; // the daemon's MAX_RELAY_S
const VIETNAM_OFFSET = "+07:00"; // Vietnam keeps no daylight saving time
// The daemon's default quiet hours (broadcasts.quiet_evening / quiet_morning). A commune may
// set others and no API tells which, so the form says a normal item "may" be held back and
// the air time's own reason, once it comes, says what really happened.
const QUIET_EVENING = "21:00";
const QUIET_MORNING = "05:30";

function checked(name) {
  return document.querySelector(`#bc-form input[name="${name}"]:checked`)?.value || "";
}

function wholeNumber(text, low, high) {
  const value = Number(text);
  return text.trim() !== "" && Number.isInteger(value) && value >= low && value <= high
    ? value
    : null;
}

// A number box's whole number, or the reason it has none. A box holding what is not a number
// ("70%") reads as empty: `badInput` tells it from one left empty on purpose.
function numberIn(id, low, high, wrong) {
  const input = $(id);
  if (input.validity.badInput) {
    refuse(`${wrong} Ô này chỉ nhận chữ số (không kèm “%” hay chữ).`, input);
  }
  const value = wholeNumber(input.value, low, high);
  if (value === null) refuse(wrong, input);
  return value;
}

function inQuietHours(time) {
  return time >= QUIET_EVENING || time < QUIET_MORNING;
}

// The next moment at `time` (HH:MM, Vietnam's), as ISO 8601: today if still ahead, else
// tomorrow. A repeating programme takes its time of day from it.
function nextAt(time) {
  const now = vietnam(new Date());
  let day = `${now.year}-${now.month}-${now.day}`;
  if (time <= `${now.hour}:${now.minute}`) day = addDays(day, 1);
  return `${day}T${time}:00${VIETNAM_OFFSET}`;
}

// A 422 in plain words: the daemon's own sentence, or the fields it refused.
function refusal(body) {
  const said = body && body.detail;
  if (typeof said === "string") return vietnameseOnly(said);
  if (said && typeof said.message === "string") return vietnameseOnly(said.message);
  if (Array.isArray(said)) {
    const names = [...new Set(said.map((error) => BROADCAST_FIELDS[(error.loc || [])[1]]))]
      .filter(Boolean);
    if (names.length) return `Thông tin chưa hợp lệ: ${names.join(", ")}. Vui lòng kiểm tra lại.`;
  }
  return "Thông tin chưa hợp lệ, vui lòng kiểm tra lại.";
}

// What the form lacks, and the field (an id or the element) the user is taken to.
class Refused extends Error {
  constructor(message, field) {
    super(message);
    this.field = typeof field === "string" ? $(field) : field;
  }
}

function refuse(message, field) {
  throw new Refused(message, field);
}

// ---- the form ---------------------------------------------------------------------------

const broadcastForm = {
  session: 0,
  pending: null, // the body the daemon answered with a clash: the choices send it again
  choicesKey: "", // the villages and clusters the checkboxes were drawn for

  enter(me) {
    this.session += 1;
    const edit = BROADCAST_EDITORS.has(me.role);
    $("bc-create").hidden = !edit;
    if (!edit) return;
    this.reset();
    fillVoices($("bc-voice")); // the default voice works meanwhile
    const session = this.session;
    broadcasts.fleet.then(() => {
      if (session === this.session) this.placeChoices();
    });
  },

  leave() {
    this.session += 1;
    this.reset();
    $("bc-zones").replaceChildren();
    $("bc-speakers").replaceChildren();
    $("bc-media").replaceChildren();
    this.choicesKey = "";
    $("bc-create").hidden = true;
  },

  reset() {
    $("bc-form").reset();
    this.pending = null;
    this.hideHeard();
    for (const id of ["bc-form-status", "bc-form-error", "bc-hear-status", "bc-hear-error"]) {
      say(id, "");
    }
    $("bc-conflict").hidden = true;
    $("bc-submit").disabled = false;
    $("bc-hear").disabled = false;
    this.arrange();
    this.count();
  },

  // Shows the parts of the form the choices made call for.
  arrange() {
    const kind = checked("bc-kind");
    const target = checked("bc-target");
    const moment = checked("bc-when");
    for (const part of document.querySelectorAll("#bc-form .part")) {
      const { dataset } = part;
      part.hidden = !(
        (dataset.kind && dataset.kind === kind)
        || (dataset.target && dataset.target === target)
        || (dataset.when && dataset.when.split(" ").includes(moment))
      );
    }
    $("bc-urgent").hidden = $("bc-priority").value !== "emergency";
    $("bc-submit").textContent = moment === "now" ? "Phát ngay" : "Lưu lịch phát";
    this.warnQuiet();
  },

  // The time of day chosen (Vietnam's HH:MM; now's for "Phát ngay"), "" if none yet.
  chosenTime() {
    const moment = checked("bc-when");
    if (moment === "now") {
      const now = vietnam(new Date());
      return `${now.hour}:${now.minute}`;
    }
    if (moment === "at") return $("bc-at").value.slice(11, 16);
    return $("bc-time").value.slice(0, 5);
  },

  // A normal or priority item at night may be held back: said before it is sent.
  warnQuiet() {
    const time = this.chosenTime();
    const urgent = $("bc-priority").value === "emergency";
    $("bc-quiet").hidden = urgent || !time || !inQuietHours(time);
  },

  count() {
    showCount($("bc-text"), $("bc-text-count"));
  },

  // ---- the choices: villages, clusters, recordings ----

  placeChoices() {
    const box = (name, item, text) => {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = name;
      input.value = item.id;
      label.append(input, ` ${text}`);
      return label;
    };
    // Drawn again only when the villages or clusters changed: a box keeps its focus.
    const key = JSON.stringify([
      [...broadcasts.zones.values()].map((zone) => [zone.id, zone.name, zone.speakers]),
      [...broadcasts.speakers.values()].map((speaker) => [speaker.id, speaker.name]),
    ]);
    this.placeMedia();
    if (key === this.choicesKey) return;
    this.choicesKey = key;
    const keep = (name) => new Set(
      [...document.querySelectorAll(`#bc-form input[name="${name}"]:checked`)].map((i) => i.value),
    );
    const zones = keep("bc-zone");
    $("bc-zones").replaceChildren(...[...broadcasts.zones.values()].map((zone) => {
      const label = box("bc-zone", zone, `${zone.name} (${zone.speakers} cụm loa)`);
      label.firstChild.checked = zones.has(zone.id);
      return label;
    }));
    const speakers = keep("bc-speaker");
    $("bc-speakers").replaceChildren(...[...broadcasts.speakers.values()].map((speaker) => {
      const label = box("bc-speaker", speaker, speaker.name);
      label.firstChild.checked = speakers.has(speaker.id);
      return label;
    }));
  },

  placeMedia() {
    const select = $("bc-media");
    const chosen = select.value;
    const items = [...broadcasts.media.values()];
    const texts = items.map((item) => `${item.title} (${minutes(item.duration_s)})`);
    $("bc-media-empty").hidden = items.length > 0;
    const { options } = select;
    const same = items.length === options.length
      && items.every((item, i) => options[i].value === item.id && options[i].text === texts[i]);
    if (same) return; // an open list stays open
    select.replaceChildren(...items.map((item, i) => {
      const option = document.createElement("option");
      option.value = item.id;
      option.textContent = texts[i];
      return option;
    }));
    if (items.some((item) => item.id === chosen)) select.value = chosen;
  },

  async refreshChoices() {
    // A recording uploaded, a cluster added since the login: the lists are asked for again.
    const session = this.session;
    await broadcasts.loadFleet(broadcasts.session);
    if (session === this.session) this.placeChoices();
  },

  // ---- hear the text first ----

  async listen() {
    const text = $("bc-text").value;
    say("bc-hear-error", "");
    const problem = text.trim() ? tooLong(text) : "Hãy nhập văn bản trước khi nghe.";
    if (problem) {
      say("bc-hear-error", problem);
      $("bc-text").focus();
      return;
    }
    const session = this.session;
    const button = $("bc-hear");
    button.disabled = true;
    this.hideHeard();
    say("bc-hear-status", "Đang tạo giọng đọc…");
    const heard = await hear(text, $("bc-voice").value);
    if (session !== this.session) return;
    button.disabled = false;
    say("bc-hear-status", "");
    if (heard.expired) {
      sessionExpired();
      return;
    }
    if (heard.error) {
      say("bc-hear-error", heard.error);
      return;
    }
    const result = heard.result;
    $("bc-heard-text").textContent = result.normalized_text;
    const engine = ENGINE_NAMES[result.engine] || result.engine;
    const fallback = fallbackText(result).text;
    $("bc-heard-engine").textContent =
      `${engine}, dài ${minutes(result.duration_s)}.${fallback ? ` ${fallback}` : ""}`;
    $("bc-heard-audio").src = playable(result.url);
    $("bc-heard").hidden = false;
  },

  hideHeard() {
    dropHeard($("bc-heard-audio"), $("bc-heard"));
  },

  // ---- what is sent ----

  content(body) {
    const kind = checked("bc-kind");
    if (kind === "text") {
      const text = $("bc-text").value;
      if (!text.trim()) refuse("Hãy nhập văn bản cần đọc.", "bc-text");
      if (tooLong(text)) refuse(tooLong(text), "bc-text");
      body.text = text;
      if ($("bc-voice").value) body.voice = $("bc-voice").value;
    } else if (kind === "media") {
      const id = $("bc-media").value;
      if (!id) refuse("Hãy chọn một bản ghi trong thư viện.", "bc-media");
      body.media_id = id;
      body.title ||= broadcasts.media.get(id)?.title || "";
    } else {
      const url = $("bc-url").value.trim();
      if (!/^https?:\/\/\S+$/i.test(url)) {
        refuse("Địa chỉ tiếp sóng phải bắt đầu bằng http:// hoặc https://.", "bc-url");
      }
      let host = "";
      try {
        host = new URL(url).host;
      } catch {
        host = ""; // "http://[": not an address at all
      }
      if (!host) refuse("Địa chỉ tiếp sóng không hợp lệ: hãy kiểm tra lại tên máy chủ.", "bc-url");
      const wrong = `Hãy nhập thời lượng tiếp sóng: số phút, từ 1 đến ${MAX_RELAY_MIN}.`;
      const length = numberIn("bc-duration", 1, MAX_RELAY_MIN, wrong);
      body.url = url;
      body.duration_s = length * 60;
      body.title ||= `Tiếp sóng ${host}`;
    }
  },

  targets() {
    const target = checked("bc-target");
    if (target === "all") return { all: true };
    const name = target === "zones" ? "bc-zone" : "bc-speaker";
    const ids = [...document.querySelectorAll(`#bc-form input[name="${name}"]:checked`)]
      .map((input) => input.value);
    if (!ids.length) {
      const what = target === "zones" ? "một thôn" : "một cụm loa";
      refuse(`Hãy chọn ít nhất ${what}.`, document.querySelector(`#bc-form input[name="${name}"]`));
    }
    return { [target]: ids };
  },

  schedule(body) {
    const moment = checked("bc-when");
    if (moment === "now") return;
    if (moment === "at") {
      const at = $("bc-at").value;
      if (!at) refuse("Hãy chọn ngày và giờ phát.", "bc-at");
      body.start_at = `${at.slice(0, 16)}:00${VIETNAM_OFFSET}`; // the PC's zone plays no part
      return;
    }
    const time = $("bc-time").value.slice(0, 5);
    if (!time) refuse("Hãy chọn giờ phát.", "bc-time");
    body.start_at = nextAt(time);
    if (moment === "daily") {
      body.recurrence = { rrule: "FREQ=DAILY" };
    } else if (moment === "weekly") {
      const days = [...document.querySelectorAll('#bc-form input[name="bc-day"]:checked')]
        .map((input) => input.value);
      if (!days.length) {
        const first = document.querySelector('input[name="bc-day"]');
        refuse("Hãy chọn ít nhất một ngày trong tuần.", first);
      }
      body.recurrence = { rrule: `FREQ=WEEKLY;BYDAY=${days.join(",")}` };
    } else {
      const day = numberIn("bc-lunar-day", 1, 30, "Ngày âm lịch phải là số từ 1 đến 30.");
      const month = $("bc-lunar-month").value;
      body.recurrence = { lunar: month ? { day, month: Number(month) } : { day } };
    }
  },

  // The request body, or null after showing what is missing next to the form.
  build() {
    const body = { title: $("bc-title").value.trim() };
    try {
      this.content(body);
      body.targets = this.targets();
      body.priority = $("bc-priority").value;
      // Left empty, the speakers keep their volume; "70%" is not empty, only unreadable.
      if ($("bc-volume").value.trim() !== "" || $("bc-volume").validity.badInput) {
        body.volume = numberIn("bc-volume", 0, 100, "Âm lượng phải là số nguyên từ 0 đến 100.");
      }
      this.schedule(body);
      body.lateness_min = numberIn(
        "bc-lateness",
        1,
        MAX_LATENESS_MIN,
        "Thời gian phát muộn tối đa phải là số phút từ 1 đến 1440.",
      );
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      say("bc-form-error", error.message);
      if (error.field) error.field.focus();
      return null;
    }
    if (!body.title) delete body.title; // the daemon names it from the text
    return body;
  },

  // Where a programme goes, in words for the question asked before it is sent:
  // "tất cả 12 cụm loa (3 thôn)", "4 cụm loa của Thôn Đông", "2 cụm loa: …".
  reach(targets) {
    if (targets.all) {
      const count = broadcasts.speakers.size;
      const zones = broadcasts.zones.size;
      return count ? `tất cả ${count} cụm loa (${zones} thôn)` : "tất cả các cụm loa";
    }
    if (targets.zones) {
      const zones = targets.zones.map((id) => broadcasts.zones.get(id));
      const count = zones.reduce((sum, zone) => sum + (zone?.speakers || 0), 0);
      const names = zones.map((zone, i) => zone?.name || targets.zones[i]);
      const where = names.length <= 3 ? names.join(", ") : `${names.length} thôn`;
      return `${count} cụm loa của ${where}`;
    }
    return `${targets.speakers.length} cụm loa: ${speakerNames(targets.speakers)}`;
  },

  // One Enter must not air on every speaker: "now" to all of them, or any emergency, is
  // asked first. Null when no question is needed.
  question(body) {
    const now = !body.start_at;
    const urgent = body.priority === "emergency";
    if (!urgent && !(now && body.targets.all)) return null;
    const title = body.title ? `“${body.title}”` : "chương trình này";
    const recurrence = body.recurrence || {};
    let when = "ngay bây giờ";
    if (!now) {
      when = recurrence.rrule || recurrence.lunar
        ? `theo lịch: ${scheduleText({ start_at: body.start_at, ...recurrence })}`
        : `lúc ${airTime(body.start_at)}`;
    }
    const lines = [
      `${urgent ? "Phát TIN KHẨN CẤP" : "Phát"} ${title} ${when} trên ${this.reach(body.targets)}?`,
      `Mức độ: ${PRIORITY_NAMES[body.priority]}.`,
    ];
    if (urgent) {
      lines.push("Tin khẩn cấp ngắt mọi chương trình đang phát và phát cả trong giờ yên tĩnh.");
    }
    return lines.join("\n");
  },

  async submit(choice) {
    say("bc-form-error", "");
    say("bc-form-status", "");
    this.warnQuiet(); // "now" moves on while the form is open
    const body = choice ? this.pending : this.build();
    if (!body) return;
    // A clash's choice sends again what was already asked about.
    const question = choice ? null : this.question(body);
    if (question && !window.confirm(question)) {
      say("bc-form-status", "Chưa gửi gì đến loa.");
      return;
    }
    const panel = $("bc-conflict");
    const fromPanel = panel.contains(document.activeElement);
    panel.hidden = true;
    const session = this.session;
    const button = $("bc-submit");
    button.disabled = true;
    say("bc-form-status", "Đang gửi…");
    // The clash's buttons are gone: the focus waits on the line that says what happens.
    if (fromPanel) $("bc-form-status").focus();
    let answer;
    try {
      answer = await post("/api/v1/broadcasts", choice ? { ...body, on_conflict: choice } : body);
    } catch {
      answer = null;
    }
    if (session !== this.session) return;
    button.disabled = false;
    say("bc-form-status", "");
    if (!answer) {
      this.failed("Chưa gửi được — mất kết nối với máy chủ loacam.", fromPanel);
      return;
    }
    const { response } = answer;
    if (response.status === 401) {
      sessionExpired();
      return;
    }
    const said = answer.body && answer.body.detail;
    if (response.status === 409 && said && Array.isArray(said.conflicts)) {
      this.pending = body;
      this.showConflict(said);
      return;
    }
    if (!response.ok || !answer.body) {
      this.failed(response.status === 422
        ? refusal(answer.body)
        : reason(answer.body, "Chưa tạo được chương trình, vui lòng thử lại."), fromPanel);
      return;
    }
    this.created(answer.body, !body.start_at, choice);
    if (fromPanel && !broadcastDetail.isOpen()) $("bc-form-status").focus();
  },

  failed(message, focus) {
    say("bc-form-error", message);
    if (focus) $("bc-form-error").focus();
  },

  created(item, now, choice) {
    // Read before the form is emptied: was it a normal item at night?
    const quiet = !$("bc-quiet").hidden;
    this.reset();
    const at = item.next_at || item.start_at;
    let said = `Đã lưu “${item.title}” — phát lần đầu lúc ${airTime(at)}.`;
    // "Now" is a request: quiet hours or a speaker's state may still hold it back, and
    // the detail that opens says what each speaker did.
    if (now) said = `Đã lên lịch “${item.title}” để phát ngay.`;
    if (choice === "queue") {
      said = `Đã xếp “${item.title}” sau chương trình bị trùng — phát lúc ${airTime(at)}.`;
    }
    if (quiet) said += " Trong giờ yên tĩnh, tin này có thể bị giữ lại: xem lý do ở từng lần phát.";
    say("bc-form-status", said);
    broadcasts.refresh.now();
    // Sent now: its delivery is what the operator wants to see next.
    if (now) broadcastDetail.open(item.id, $("bc-submit"));
  },

  showConflict(said) {
    $("bc-conflict-message").textContent = vietnameseOnly(
      said.message || "Trùng giờ với chương trình khác trên cùng cụm loa.",
    );
    // A daily programme against another clashes every day: one line per programme.
    const byProgramme = new Map();
    for (const clash of said.conflicts) {
      if (!byProgramme.has(clash.id)) byProgramme.set(clash.id, []);
      byProgramme.get(clash.id).push(clash);
    }
    $("bc-conflict-list").replaceChildren(...[...byProgramme.values()].map((clashes) => {
      const [first] = clashes;
      const li = document.createElement("li");
      const speakers = Array.isArray(first.speakers) ? first.speakers : [];
      const shared = speakers.length ? ` — cùng phát trên ${speakerNames(speakers)}` : "";
      const more = clashes.length > 1 ? ` (và ${clashes.length - 1} lần nữa trong tuần tới)` : "";
      li.textContent = `“${first.title}”: ${hhmm(first.start)}–${hhmm(first.end)}, `
        + `${airTime(first.start).split(", ")[1]}${more}${shared}`;
      li.dataset.broadcast = first.id;
      return li;
    }));
    const choices = Array.isArray(said.choices) ? said.choices : [];
    for (const item of document.querySelectorAll("#bc-conflict li[data-choice]")) {
      item.hidden = Boolean(item.dataset.choice) && !choices.includes(item.dataset.choice);
    }
    $("bc-conflict").hidden = false;
    document.querySelector("#bc-conflict li:not([hidden]) button").focus();
  },

  abandon() {
    this.pending = null;
    $("bc-conflict").hidden = true;
    say("bc-form-status", "Chưa tạo chương trình: có thể đổi giờ hoặc nơi phát rồi lưu lại.");
  },
};

$("bc-lunar-month").append(...LUNAR_MONTHS.map((name, i) => {
  const option = document.createElement("option");
  option.value = String(i + 1);
  option.textContent = `Tháng ${name}`;
  return option;
}));
$("bc-form").addEventListener("change", (event) => {
  broadcastForm.arrange();
  const { name, value } = event.target;
  if ((name === "bc-kind" && value === "media") || (name === "bc-target" && value !== "all")) {
    broadcastForm.refreshChoices();
  }
});
$("bc-form").addEventListener("input", (event) => {
  if (["bc-at", "bc-time"].includes(event.target.id)) broadcastForm.warnQuiet();
  if (event.target.id === "bc-text") {
    broadcastForm.count();
    if (!$("bc-heard").hidden) broadcastForm.hideHeard();
  }
  // The clash shown was for what the form said before: choosing now would send that.
  if (!$("bc-conflict").hidden) broadcastForm.abandon();
});
$("bc-form").addEventListener("submit", (event) => {
  event.preventDefault();
  broadcastForm.submit("");
});
$("bc-hear").addEventListener("click", () => broadcastForm.listen());
for (const item of document.querySelectorAll("#bc-conflict li[data-choice]")) {
  item.querySelector("button").addEventListener("click", () => {
    if (item.dataset.choice) {
      broadcastForm.submit(item.dataset.choice);
    } else {
      broadcastForm.abandon();
      $("bc-submit").focus();
    }
  });
}
parts.push(broadcastForm);
