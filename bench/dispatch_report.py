"""The dispatch benchmark's figures: per size, a Markdown table, the targets of issue 5."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dispatch_observer import Seen

ACK_TARGET_MS = 1000.0  # every ack within 1 s of the dispatch, at 1,000 speakers
RSS_TARGET_MB = 50.0  # daemon RSS growth for 1,000 speakers
TARGET_SIZE = 1000


@dataclass
class Spread:
    """Milliseconds since t0 over the speakers that answered; `missing` did not."""

    count: int
    missing: int
    first: float | None = None
    median: float | None = None
    p95: float | None = None
    last: float | None = None

    @classmethod
    def of(cls, seconds: Iterable[float | None]) -> Spread:
        values = list(seconds)
        got = sorted(1000 * v for v in values if v is not None)
        spread = cls(count=len(got), missing=len(values) - len(got))
        if got:
            spread.first, spread.last = got[0], got[-1]
            spread.median, spread.p95 = percentile(got, 50), percentile(got, 95)
        return spread

    @property
    def all_ms(self) -> float | None:
        """Until the last one, if none is missing."""
        return self.last if self.missing == 0 else None


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of them at or below it."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Timings:
    cmd: Spread  # the command as the observer got it from the broker
    ack: Spread
    started: Spread
    ack_after_cmd: Spread  # per speaker: ack minus command (speaker and broker round trip)
    not_ok: int
    errors: dict[str, int]

    @classmethod
    def of(cls, seen: dict[str, Seen]) -> Timings:
        items = list(seen.values())
        refusals = Counter(s.ack_error or "?" for s in items if s.ack_ok is False)
        return cls(
            cmd=Spread.of(s.cmd_s for s in items),
            ack=Spread.of(s.ack_s for s in items),
            started=Spread.of(s.started_s for s in items),
            ack_after_cmd=Spread.of(
                s.ack_s - s.cmd_s if s.ack_s is not None and s.cmd_s is not None else None
                for s in items
            ),
            not_ok=sum(refusals.values()),
            errors=dict(refusals),
        )


@dataclass
class DaemonSide:
    """The daemon's own stamps in the records the broadcast answered, in ms since t0 on the
    same wall clock: when its `submit` began (`issued_at`) and its first and last PUBACK
    (`sent_at`). The API answers after the last PUBACK."""

    issued_ms: float | None = None
    first_sent_ms: float | None = None
    last_sent_ms: float | None = None
    # From its outbox (the store), read after the window: when it handled each ack and
    # `started` event, and how many commands it published more than once.
    acked: Spread | None = None
    started: Spread | None = None
    resent: int = 0
    read_at_ms: float = 0.0

    @classmethod
    def of(cls, records: Sequence[Mapping[str, object]], t0_wall: float) -> DaemonSide:
        def since(value: object) -> float | None:
            if not isinstance(value, str):
                return None
            return 1000 * (datetime.fromisoformat(value).timestamp() - t0_wall)

        issued = [v for r in records if (v := since(r.get("issued_at"))) is not None]
        sent = sorted(v for r in records if (v := since(r.get("sent_at"))) is not None)
        return cls(
            issued_ms=min(issued) if issued else None,
            first_sent_ms=sent[0] if sent else None,
            last_sent_ms=sent[-1] if sent else None,
        )


@dataclass
class SizeResult:
    speakers: int
    processes: int
    run: int = 1
    connect_s: float = 0.0  # speaker processes started until all said `ready`
    online_s: float = 0.0  # ... until the API counted every one online
    online: int = 0
    rss_baseline_mb: float = 0.0  # daemon ready, no speaker connected
    rss_online_mb: float = 0.0
    rss_after_mb: float = 0.0  # at the end of the dispatch window
    rss_peak_mb: float = 0.0  # in the window
    rss_caught_up_mb: float = 0.0  # once the outbox had every ack and start (or gave up)
    threads_baseline: int = 0
    threads_after: int = 0
    api_ms: float = 0.0
    commands: int = 0
    daemon_side: DaemonSide | None = None
    timings: Timings | None = None
    window_s: float = 0.0
    daemon_cpu_s: float = 0.0
    others_cpu_percent: dict[str, float] = field(default_factory=dict)
    machine_percent: float = 0.0
    broker_drops: list[str] = field(default_factory=list)  # clients whose queue overflowed
    failure: str | None = None  # the stage that failed and why; the rest may be empty

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_after_mb - self.rss_baseline_mb


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _spread(name: str, s: Spread) -> str:
    missing = f", {s.missing} MISSING" if s.missing else ""
    return (
        f"{name:<14} first {_ms(s.first)} median {_ms(s.median)} p95 {_ms(s.p95)} "
        f"last {_ms(s.last)} ms ({s.count} seen{missing})"
    )


def describe(r: SizeResult) -> str:
    lines = []
    if r.connect_s:
        lines.append(
            f"  speakers connected in {r.connect_s:.1f} s; {r.online:,} of {r.speakers:,} "
            f"online in the API after {r.online_s:.1f} s"
        )
    if r.timings is not None:
        t = r.timings
        lines += [
            f"  API answered the broadcast ({r.commands} commands) in {r.api_ms:.0f} ms",
            *_daemon_side(r.daemon_side),
            "  " + _spread("cmd", t.cmd),
            "  " + _spread("ack", t.ack),
            "  " + _spread("started", t.started),
            "  " + _spread("ack-cmd", t.ack_after_cmd).replace(" ms (", " ms per speaker ("),
            *_outbox(r.daemon_side),
            f"  acks ok: false: {t.not_ok} {t.errors if t.errors else ''}".rstrip(),
        ]
        daemon = 100 * r.daemon_cpu_s / r.window_s
        others = ", ".join(f"{name} {cpu:.0f} %" for name, cpu in r.others_cpu_percent.items())
        rest = r.machine_percent - daemon - sum(r.others_cpu_percent.values())
        lines.append(
            f"  daemon CPU {r.daemon_cpu_s:.2f} s in the {r.window_s:.2f} s window "
            f"({daemon:.0f} % of a core); machine {r.machine_percent:.0f} % of all cores "
            f"(daemon {daemon:.0f} %, {others}, anything else {max(0.0, rest):.0f} %)"
        )
    if r.timings is not None:
        lines.append(
            f"  daemon RSS: {r.rss_baseline_mb:.0f} MB ready, {r.rss_online_mb:.0f} MB online, "
            f"{r.rss_after_mb:.0f} MB after (peak {r.rss_peak_mb:.0f}, "
            f"{r.rss_caught_up_mb:.0f} once the outbox caught up); growth "
            f"{r.rss_growth_mb:+.0f} MB; threads {r.threads_baseline} → {r.threads_after}"
        )
    elif r.rss_baseline_mb:
        lines.append(
            f"  daemon RSS: {r.rss_baseline_mb:.0f} MB ready, {r.rss_online_mb:.0f} MB with "
            f"{r.online:,} online"
        )
    if r.broker_drops:
        lines.append(
            "  mosquitto dropped messages (queue full, max_queued_messages) for: "
            + ", ".join(r.broker_drops)
        )
    if r.failure:
        lines.append(f"  FAILED: {r.failure}")
    return "\n".join(lines)


def _daemon_side(d: DaemonSide | None) -> list[str]:
    if d is None:
        return []
    return [
        f"  daemon's stamps: submit began {_ms(d.issued_ms)}, first PUBACK "
        f"{_ms(d.first_sent_ms)}, last PUBACK {_ms(d.last_sent_ms)} ms"
    ]


def _outbox(d: DaemonSide | None) -> list[str]:
    lines = []
    if d is not None and d.acked is not None and d.started is not None:
        lines += [
            "  " + _spread("outbox ack", d.acked).replace("seen", "recorded"),
            "  " + _spread("outbox started", d.started).replace("seen", "recorded"),
            f"  (outbox read {d.read_at_ms / 1000:.1f} s after the dispatch; "
            f"{d.resent} commands re-sent)",
        ]
    return lines


def table(results: Sequence[SizeResult]) -> str:
    rows = [
        "| speakers | run | API ms | last PUBACK ms | first ack ms | median ack ms | p95 ack ms "
        "| all acks ms | all started ms | missing ack/started | ack not ok | daemon CPU s "
        "| RSS MB ready → online → after | RSS growth MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r.timings
        if t is None:
            why = (r.failure or "").splitlines()[0]
            rows.append(f"| {r.speakers:,} | {r.run} | failed: {why} |")
            continue
        last_puback = r.daemon_side.last_sent_ms if r.daemon_side else None
        rows.append(
            f"| {r.speakers:,} | {r.run} | {r.api_ms:.0f} | {_ms(last_puback)} | "
            f"{_ms(t.ack.first)} | {_ms(t.ack.median)} | {_ms(t.ack.p95)} | "
            f"{_ms(t.ack.all_ms)} | {_ms(t.started.all_ms)} | "
            f"{t.ack.missing}/{t.started.missing} | {t.not_ok} | {r.daemon_cpu_s:.2f} | "
            f"{r.rss_baseline_mb:.0f} → {r.rss_online_mb:.0f} → {r.rss_after_mb:.0f} | "
            f"{r.rss_growth_mb:+.0f} |"
        )
    return "\n".join(rows)


def targets(results: Sequence[SizeResult]) -> list[str]:
    """The targets of issue 5 point 8, judged at 1,000 speakers."""
    verdicts = []
    for r in results:
        if r.speakers != TARGET_SIZE or r.timings is None:
            continue
        ack = r.timings.ack
        last = ack.all_ms
        verdicts.append(
            _verdict(
                f"all {TARGET_SIZE:,} acks within {ACK_TARGET_MS:g} ms of dispatch",
                met=last is not None and last <= ACK_TARGET_MS,
                detail=f"last ack at {_ms(ack.last)} ms, {ack.missing} missing",
            )
        )
        verdicts.append(
            _verdict(
                f"daemon RSS growth ≤ {RSS_TARGET_MB:g} MB for {TARGET_SIZE:,} speakers",
                met=r.rss_growth_mb <= RSS_TARGET_MB,
                detail=f"{r.rss_baseline_mb:.0f} → {r.rss_after_mb:.0f} MB "
                f"({r.rss_growth_mb:+.0f} MB; peak {r.rss_peak_mb:.0f} MB)",
            )
        )
    return verdicts


def _verdict(target: str, *, met: bool, detail: str) -> str:
    return f"  [{'met' if met else 'MISSED'}] {target}: {detail}"
