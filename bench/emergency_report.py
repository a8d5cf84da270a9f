"""The emergency benchmark's figures: per measurement, per size, the 2 s target."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from dispatch_report import Spread, percentile
from emergency_daemon import DaemonStamps
from emergency_observer import Play

TARGET_MS = 2000.0  # every online speaker reached and its normal item pre-empted within 2 s


@dataclass
class Measurement:
    speakers: int
    run: int
    kind: str  # "new text" (rendered after the POST) or "cached text" (its second time)
    api_ms: float = 0.0  # the POST's answer
    cmd: Spread | None = None  # the emergency's command, as the broker relayed it
    ack: Spread | None = None  # the speaker took it ("reached")
    preempted: Spread | None = None  # the normal item ended `preempted`
    started: Spread | None = None  # the emergency's first sample out
    cmd_to_started: Spread | None = None  # per speaker: download, decode, start (ms, not t0)
    normal_ends: dict[str, int] = field(default_factory=dict)  # how the normal items ended
    refused: dict[str, int] = field(default_factory=dict)  # emergency acks with an error
    daemon: DaemonStamps | None = None
    daemon_cpu_s: float = 0.0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    machine_percent: float = 0.0
    others_cpu_percent: dict[str, float] = field(default_factory=dict)
    window_s: float = 0.0
    failure: str | None = None

    def observe(self, emergency: dict[str, Play], normal: dict[str, Play], t0: float) -> None:
        """Fill the speaker side from what the observer saw (every speaker of `normal`)."""

        def since(value: float | None) -> float | None:
            return None if value is None else value - t0

        taken = [emergency.get(speaker) for speaker in normal]
        self.cmd = Spread.of(since(p.cmd_at) if p else None for p in taken)
        self.ack = Spread.of(since(p.ack_at) if p and p.ack_error is None else None for p in taken)
        self.started = Spread.of(since(p.started_at) if p else None for p in taken)
        self.cmd_to_started = Spread.of(
            p.started_at - p.cmd_at if p and p.started_at is not None else None for p in taken
        )
        self.preempted = Spread.of(
            since(p.finished_at) if p.reason == "preempted" else None for p in normal.values()
        )
        self.normal_ends = dict(Counter(p.reason or "still playing" for p in normal.values()))
        self.refused = dict(Counter(p.ack_error for p in taken if p and p.ack_error))

    @property
    def reached(self) -> bool:
        """Every speaker took the emergency and cut the normal item within 2 s."""
        return _within(self.ack) and _within(self.preempted)

    @property
    def audible(self) -> bool:
        """Every speaker had the emergency's first sample out within 2 s (the strict reading)."""
        return _within(self.started)


def _within(spread: Spread | None) -> bool:
    return spread is not None and spread.all_ms is not None and spread.all_ms <= TARGET_MS


def _yes(*, met: bool) -> str:
    return "yes" if met else "**no**"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _s_ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:,.0f}"


def _spread(name: str, s: Spread | None) -> str:
    if s is None:
        return f"  {name}: -"
    missing = f", {s.missing} missing" if s.missing else ""
    return (
        f"  {name}: first {_ms(s.first)}, median {_ms(s.median)}, p95 {_ms(s.p95)}, "
        f"max {_ms(s.last)} ms ({s.count} speakers{missing})"
    )


def describe(m: Measurement) -> str:
    head = f"{m.speakers:,} speakers, run {m.run}, {m.kind}"
    if m.failure:
        return f"{head}: FAILED: {m.failure}"
    d = m.daemon
    lines = [
        f"{head}: POST answered in {m.api_ms:.0f} ms; all reached and pre-empted within "
        f"2 s: {'yes' if m.reached else 'NO'}; all playing it within 2 s: "
        f"{'yes' if m.audible else 'NO'}",
        _spread("command at speakers", m.cmd),
        _spread("ack (reached)     ", m.ack),
        _spread("normal pre-empted ", m.preempted),
        _spread("emergency started ", m.started),
        _spread("per speaker, command → started", m.cmd_to_started),
        f"  normal items ended: {m.normal_ends}"
        + (f"; emergency refused: {m.refused}" if m.refused else ""),
    ]
    if d is not None:
        lines.append(
            f"  daemon: slot claimed {_s_ms(d.fired_s)} ms, speech ready / submit "
            f"{_s_ms(d.issued_s)} ms ({d.engine or '?'}, "
            f"{'cached' if d.render_cached else 'rendered now'}, {d.audio_kb or 0:.0f} KB, "
            f"{d.audio_s or 0:.1f} s), last PUBACK "
            f"{_ms(Spread.of(d.sent_s).last)} ms, recorded last ack "
            f"{_ms(Spread.of(d.acked_s).last)}, last start {_ms(Spread.of(d.started_s).last)} ms"
        )
    others = ", ".join(f"{k} {v:.0f} %" for k, v in m.others_cpu_percent.items())
    lines.append(
        f"  daemon CPU {m.daemon_cpu_s:.2f} s in {m.window_s:.2f} s; RSS {m.rss_before_mb:.0f} → "
        f"peak {m.rss_peak_mb:.0f} MB; machine {m.machine_percent:.0f} % of "
        f"{100 * _cores():.0f}; {others}"
    )
    return "\n".join(lines)


def _cores() -> int:
    return os.cpu_count() or 1


def table(results: Sequence[Measurement]) -> str:
    """One Markdown row per measurement: where the time went, speaker side and daemon side."""
    rows = [
        "| speakers | run | text | slot claimed ms | speech ready ms | last PUBACK ms | "
        "acks median / max ms | pre-empted median / p95 / max ms | started median / p95 / "
        "max ms | reached + pre-empted ≤ 2 s | playing ≤ 2 s | daemon CPU s | "
        "RSS before → peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in results:
        if m.failure or m.ack is None or m.preempted is None or m.started is None:
            rows.append(f"| {m.speakers:,} | {m.run} | {m.kind} | failed: {m.failure} |")
            continue
        d = m.daemon
        rows.append(
            f"| {m.speakers:,} | {m.run} | {m.kind} | {_s_ms(d.fired_s) if d else '-'} | "
            f"{_s_ms(d.issued_s) if d else '-'} | "
            f"{_ms(Spread.of(d.sent_s).last) if d else '-'} | "
            f"{_ms(m.ack.median)} / {_ms(m.ack.all_ms)} | "
            f"{_ms(m.preempted.median)} / {_ms(m.preempted.p95)} / {_ms(m.preempted.all_ms)} | "
            f"{_ms(m.started.median)} / {_ms(m.started.p95)} / {_ms(m.started.all_ms)} | "
            f"{_yes(met=m.reached)} | {_yes(met=m.audible)} | {m.daemon_cpu_s:.2f} | "
            f"{m.rss_before_mb:.0f} → {m.rss_peak_mb:.0f} |"
        )
    return "\n".join(rows)


def summary(results: Sequence[Measurement]) -> str:
    """Per size and text kind, over the runs: the last speaker's start, and every speaker's."""
    lines = []
    groups: dict[tuple[int, str], list[Measurement]] = {}
    for m in results:
        if not m.failure and m.started is not None:
            groups.setdefault((m.speakers, m.kind), []).append(m)
    for (count, kind), ms in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] != "new text")):
        last = sorted(m.started.all_ms or float("inf") for m in ms if m.started)
        cut = sorted(m.preempted.all_ms or float("inf") for m in ms if m.preempted)
        reached, audible = sum(m.reached for m in ms), sum(m.audible for m in ms)
        lines.append(
            f"{count:,} speakers, {kind}, {len(ms)} runs: last speaker pre-empted median "
            f"{_ms(statistics.median(cut))} / p95 {_ms(percentile(cut, 95))} / max "
            f"{_ms(cut[-1])} ms; last speaker playing it median {_ms(statistics.median(last))} "
            f"/ p95 {_ms(percentile(last, 95))} / max {_ms(last[-1])} ms; within 2 s: reached "
            f"and pre-empted in {reached} of {len(ms)} runs, playing in {audible} of {len(ms)}"
        )
    return "\n".join(lines)
