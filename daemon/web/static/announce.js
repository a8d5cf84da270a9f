"use strict";
// The announcements section (Thông báo): write a text and hear how the speakers will read it,
// upload recordings, and the library of recordings. The radio station and administrators do
// all of it; leaders listen to the library. Uses app.js's helpers ($, api, Repeat, reconcile,
// placeInOrder, when, say, reason, minutes, showCount, dropHeard, tooLong, playable, hear,
// fallbackText, fillVoices, sessionExpired) and joins its session through `parts`.

const LIBRARY_EVERY_MS = 60000;
// Listening links from the API last an hour: a player at rest gets a fresh one after half.
const LINK_FRESH_MS = 30 * 60 * 1000;
const EDIT_ROLES = new Set(["radio", "admin"]);
const LISTEN_ROLES = new Set(["radio", "admin", "leader"]);

// A raw-body upload through XMLHttpRequest: fetch cannot report upload progress.
function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    request.responseType = "json"; // anything else (a proxy's HTML page) reads as null
    request.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      resolve({ status: request.status, body: request.response });
    });
    request.addEventListener("error", () => reject(new Error("upload failed")));
    request.addEventListener("abort", () => reject(new Error("upload aborted")));
    request.send(file);
  });
}

// ---- one recording of the library ------------------------------------------------------

class RecordRow {
  constructor(item, canDelete, onDelete) {
    const root = $("record-template").content.firstElementChild.cloneNode(true);
    this.root = root;
    this.item = item;
    this.field = (name) => root.querySelector(`.${name}`);
    this.audio = this.field("record-audio");
    this.linkAt = 0;
    root.dataset.media = item.id;
    const remove = this.field("record-delete");
    remove.hidden = !canDelete;
    if (canDelete) remove.addEventListener("click", () => onDelete(this));
  }

  update(item) {
    this.item = item;
    this.field("record-title").textContent = item.title;
    this.field("record-duration").textContent = minutes(item.duration_s);
    this.field("record-meta").textContent =
      `Người tải lên: ${item.created_by} — lúc ${when(item.created_at)}`;
    this.audio.setAttribute("aria-label", `Nghe bản ghi: ${item.title}`);
    this.field("record-delete").setAttribute("aria-label", `Xóa: ${item.title}`);
    // A new link would stop a recording someone is listening to: only a resting player.
    if (this.audio.paused && Date.now() - this.linkAt > LINK_FRESH_MS) {
      this.audio.src = playable(item.url);
      this.linkAt = Date.now();
    }
  }

  busy(state) {
    this.field("record-delete").disabled = state;
  }

  remove() {
    this.audio.pause();
    this.audio.removeAttribute("src");
    this.root.remove();
  }
}

// ---- the section -----------------------------------------------------------------------

const announce = {
  rights: { edit: false, listen: false },
  rows: new Map(), // media id → RecordRow, newest first
  session: 0, // bumped at each enter and leave: late answers of an old session are dropped
  sequence: 0,
  suggestedTitle: "",
  refresh: null,

  enter(me) {
    this.session += 1;
    const edit = EDIT_ROLES.has(me.role);
    this.rights = { edit, listen: LISTEN_ROLES.has(me.role) };
    if (!this.rights.listen) {
      // Technicians and district officials have no business with announcements.
      $("announce").hidden = true;
      return;
    }
    $("compose").hidden = !edit;
    $("upload").hidden = !edit;
    $("announce").hidden = false;
    this.count();
    if (edit) fillVoices($("compose-voice")); // the default voice works meanwhile
    this.refresh.now();
  },

  leave() {
    this.session += 1;
    this.refresh.stop();
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    // The next person at this PC starts with an empty page.
    $("compose-form").reset();
    $("upload-form").reset();
    this.suggestedTitle = "";
    this.hidePreview();
    for (const id of ["compose-status", "compose-error", "upload-status", "upload-error"]) {
      say(id, "");
    }
    for (const id of ["library-status", "library-error"]) say(id, "");
    $("compose-preview").disabled = false;
    $("upload-send").disabled = false;
    $("library-empty").hidden = true;
    $("announce").hidden = true;
  },

  // ---- compose and hear ----

  count() {
    showCount($("compose-text"), $("compose-count"));
  },

  async preview() {
    const text = $("compose-text").value;
    say("compose-error", "");
    if (!text.trim()) {
      say("compose-error", "Hãy nhập nội dung thông báo trước khi nghe thử.");
      $("compose-text").focus();
      return;
    }
    if (tooLong(text)) {
      say("compose-error", tooLong(text));
      $("compose-text").focus();
      return;
    }
    const session = this.session;
    const button = $("compose-preview");
    button.disabled = true;
    this.hidePreview(); // what is shown must be the text just sent, not an older one
    say("compose-status", "Đang tạo giọng đọc…");
    const heard = await hear(text, $("compose-voice").value);
    if (session !== this.session) return;
    button.disabled = false;
    say("compose-status", "");
    if (heard.expired) {
      sessionExpired();
      return;
    }
    if (heard.error) {
      say("compose-error", heard.error);
      return;
    }
    this.showPreview(heard.result);
  },

  showPreview(result) {
    $("preview-text").textContent = result.normalized_text;
    const engine = ENGINE_NAMES[result.engine] || result.engine;
    $("preview-engine").textContent = result.cached ? `${engine} — bản đã tạo trước đó` : engine;
    $("preview-duration").textContent = minutes(result.duration_s);
    const fallback = fallbackText(result);
    $("preview-fallback").hidden = !fallback.text;
    $("preview-fallback-text").textContent = fallback.text;
    $("preview-fallback-errors").replaceChildren(...fallback.errors.map((error) => {
      const li = document.createElement("li");
      li.textContent = error;
      return li;
    }));
    const audio = $("preview-audio");
    audio.src = playable(result.url);
    audio.setAttribute("aria-label", "Nghe thử thông báo");
    $("preview").hidden = false;
  },

  hidePreview() {
    dropHeard($("preview-audio"), $("preview"));
  },

  // ---- upload ----

  suggestTitle() {
    // A title from the file's name, unless the user has written one of their own.
    const file = $("upload-file").files[0];
    const title = $("upload-title");
    if (!file || (title.value && title.value !== this.suggestedTitle)) return;
    this.suggestedTitle = file.name.replace(/\.[^.]*$/, "").slice(0, 200);
    title.value = this.suggestedTitle;
  },

  async send() {
    const file = $("upload-file").files[0];
    say("upload-error", "");
    say("upload-status", "");
    if (!file) {
      say("upload-error", "Hãy chọn một tệp âm thanh.");
      $("upload-file").focus();
      return;
    }
    if (file.size === 0) {
      say("upload-error", "Tệp trống, không có gì để tải lên.");
      return;
    }
    const title = $("upload-title").value.trim();
    const query = new URLSearchParams({ filename: file.name });
    if (title) query.set("title", title);
    const session = this.session;
    const button = $("upload-send");
    button.disabled = true;
    say("upload-status", "Đang tải lên… 0%");
    let answer;
    try {
      answer = await upload(`/api/v1/media?${query}`, file, (done) => {
        if (session !== this.session) return;
        say("upload-status", done < 1
          ? `Đang tải lên… ${Math.floor(done * 100)}%`
          : "Đã gửi xong, máy chủ đang kiểm tra tệp và chỉnh âm lượng…");
      });
    } catch {
      answer = null;
    }
    if (session !== this.session) return;
    button.disabled = false;
    say("upload-status", "");
    if (!answer) {
      say("upload-error", "Không tải lên được — mất kết nối với máy chủ loacam.");
      return;
    }
    if (answer.status === 401) {
      sessionExpired();
      return;
    }
    if (answer.status !== 201 || !answer.body) {
      const fallback = {
        413: "Tệp quá lớn, máy chủ không nhận.",
        422: "Tệp không phải âm thanh đọc được hoặc đã hỏng.",
      }[answer.status] || "Không tải lên được, vui lòng thử lại.";
      say("upload-error", reason(answer.body, fallback));
      return;
    }
    const item = answer.body;
    $("upload-form").reset();
    this.suggestedTitle = "";
    say("upload-status", `Đã thêm “${item.title}” (${minutes(item.duration_s)}) vào thư viện.`);
    await this.refresh.now();
  },

  // ---- the library ----

  async load() {
    const mine = ++this.sequence;
    const { response, body } = await api("/api/v1/media");
    // A slower, older refresh must not overwrite a newer one.
    if (mine !== this.sequence || !this.refresh.running) return;
    if (response.status === 401) {
      sessionExpired();
      return;
    }
    if (response.status === 403) {
      this.refresh.stop();
      $("announce").hidden = true;
      return;
    }
    if (!response.ok || !Array.isArray(body)) {
      say("library-error", "Chưa tải được thư viện bản ghi — sẽ thử lại.");
      return;
    }
    say("library-error", "");
    reconcile(
      this.rows,
      body,
      (item) => new RecordRow(item, this.rights.edit, (row) => this.remove(row)),
      (_id, row) => row.remove(),
    );
    placeInOrder($("library-list"), [...this.rows.values()].map((row) => row.root));
    $("library-empty").hidden = body.length > 0;
  },

  async remove(row) {
    const { id, title } = row.item;
    say("library-status", "");
    say("library-error", "");
    if (!window.confirm(`Xóa bản ghi “${title}” khỏi thư viện?\nKhông thể hoàn tác.`)) return;
    const session = this.session;
    row.busy(true);
    let answer;
    try {
      answer = await api(`/api/v1/media/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch {
      answer = null;
    }
    if (session !== this.session) return;
    row.busy(false);
    if (!answer) {
      say("library-error", `Không xóa được “${title}” — mất kết nối với máy chủ loacam.`);
      return;
    }
    if (answer.response.status === 401) {
      sessionExpired();
      return;
    }
    // 404: someone else deleted it meanwhile, which is what was wanted.
    if (!answer.response.ok && answer.response.status !== 404) {
      say("library-error", reason(answer.body, `Không xóa được “${title}”, vui lòng thử lại.`));
      return;
    }
    say("library-status", `Đã xóa “${title}”.`);
    await this.refresh.now();
  },
};

announce.refresh = new Repeat(LIBRARY_EVERY_MS, () => announce.load());

$("compose-text").addEventListener("input", () => announce.count());
$("compose-form").addEventListener("submit", (event) => {
  event.preventDefault();
  announce.preview();
});
$("upload-file").addEventListener("change", () => announce.suggestTitle());
$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  announce.send();
});
parts.push(announce);
