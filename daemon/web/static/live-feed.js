"use strict";
// A programme's live progress, as the daemon pushes it (GET /api/v1/broadcasts/{id}/events,
// Server-Sent Events): the parser and the connection that keeps itself open, for
// broadcast-detail.js.

const LIVE_RETRY_MS = 1000; // doubled after each drop, up to LIVE_MAX_RETRY_MS
const LIVE_MAX_RETRY_MS = 30000;
// A stream up this long was a success: the backoff starts over, and if the daemon ended it
// (it does after 10 minutes, daemon/api/broadcast_events.py's LIFETIME) the next one is
// opened at once, with nothing shown: the first event carries the whole state again.
const LIVE_STEADY_MS = 15000;

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

// Answers that end the live stream for good: the login ran out, the account may no longer
// read the programme, it is gone (or the daemon has no stream: 404 from its router too, and
// 405 from an older one).
const FEED_REFUSED = { 401: "expired", 403: "forbidden", 404: "gone", 405: "unavailable" };

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
      let ended = false; // the daemon closed a stream it had opened, rather than an error
      try {
        const response = await fetch(this.path, {
          credentials: "same-origin",
          headers: { Accept: "text/event-stream" },
          cache: "no-store",
          signal,
        });
        if (FEED_REFUSED[response.status]) {
          this.handlers.state(FEED_REFUSED[response.status]);
          return; // asking again would get the same answer
        }
        if (response.ok && response.body) {
          // The daemon sends the whole state first: nothing missed while the link was down.
          this.handlers.state("live");
          await this.read(response.body);
          ended = true;
        }
      } catch {
        // A dropped link, or the abort itself (checked below).
      }
      if (signal.aborted) return;
      const steady = Date.now() - since >= LIVE_STEADY_MS;
      if (steady) delayMs = LIVE_RETRY_MS;
      if (!(ended && steady)) {
        this.handlers.state("lost");
        await pause(delayMs * (0.75 + Math.random() / 2), signal); // jitter: not all at once
        delayMs = Math.min(delayMs * 2, LIVE_MAX_RETRY_MS);
      }
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
