"""The benchmark's printout: one block per scenario, a Markdown table, the targets."""

from __future__ import annotations

from measure import Measurement, Scenario

FPS_TARGET = 14.0
P95_TARGET_MS = 150.0
SCALING_TARGET = 1.3  # CPU at 50 viewers / CPU at 1 viewer


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def describe(m: Measurement) -> str:
    lines = [
        f"  {m.server:<6} fps/viewer min {m.fps_min:5.2f} median {m.fps_median:5.2f} | "
        f"latency p50 {_ms(m.latency(50))} p95 {_ms(m.latency(95))} ms | "
        f"CPU {m.usage.cpu_percent:5.1f} % | RSS {m.usage.rss_peak_mb:.0f} MB peak"
    ]
    lines.append(
        f"         CPU: {m.usage.system_percent:.1f} % of it in the kernel; "
        f"{m.kb_per_frame:.1f} KB/frame, {m.delivered_mb_s:.1f} MB/s to all viewers"
    )
    others = ", ".join(f"{name} {cpu:.0f} %" for name, cpu in m.others_cpu.items())
    lines.append(
        f"         machine {m.machine_percent:.0f} % of all cores ({others}, "
        f"anything else {m.background_percent:.0f} %)"
    )
    for camera, stats in m.server_stats.items():
        lines.append(
            f"         {camera}: input {stats['input_fps']:.1f} fps, output "
            f"{stats['output_fps']:.1f} fps, decode {stats['decode_ms']:.1f} ms, "
            f"encode {stats['encode_ms']:.1f} ms per frame"
        )
    if m.placeholders:
        lines.append(f"         {m.placeholders} placeholder parts (not counted as frames)")
    lines.extend(f"         viewer error: {error}" for error in sorted(set(m.errors)))
    return "\n".join(lines)


def compare(loacam: Measurement, motion: Measurement) -> str:
    cpu = loacam.usage.cpu_percent / motion.usage.cpu_percent if motion.usage.cpu_percent else 0
    return (
        f"  ratio  CPU loacam/motion {cpu:.2f}; median fps {loacam.fps_median:.2f} vs "
        f"{motion.fps_median:.2f}; min fps {loacam.fps_min:.2f} vs {motion.fps_min:.2f}"
    )


def table(results: dict[Scenario, dict[str, Measurement]]) -> str:
    rows = [
        "| cameras x viewers | server | fps/viewer min | fps/viewer median | latency p50 ms"
        " | latency p95 ms | CPU % of a core | RSS MB (peak) | CPU loacam/motion |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, by_server in results.items():
        loacam, motion = by_server.get("loacam"), by_server.get("motion")
        ratio = (
            f"{loacam.usage.cpu_percent / motion.usage.cpu_percent:.2f}"
            if loacam and motion and motion.usage.cpu_percent
            else ""
        )
        rows.extend(
            f"| {scenario} | {m.server} | {m.fps_min:.2f} | {m.fps_median:.2f} | "
            f"{_ms(m.latency(50))} | {_ms(m.latency(95))} | {m.usage.cpu_percent:.1f} | "
            f"{m.usage.rss_peak_mb:.0f} | {ratio if m.server == 'loacam' else ''} |"
            for m in by_server.values()
        )
    return "\n".join(rows)


def targets(results: dict[Scenario, dict[str, Measurement]]) -> list[str]:
    """Each acceptance target this run can judge, met or missed and by how much."""
    loacam = {s: r["loacam"] for s, r in results.items() if "loacam" in r}
    verdicts = []
    for scenario, m in loacam.items():
        if scenario.viewers >= 50:
            verdicts.append(
                _verdict(
                    f"every viewer ≥ {FPS_TARGET:g} fps at {scenario}",
                    met=m.fps_min >= FPS_TARGET,
                    detail=f"min {m.fps_min:.2f} fps",
                )
            )
    p95s = {s: m.latency(95) for s, m in loacam.items() if m.latency(95) is not None}
    if p95s:
        worst = max(p95s, key=lambda s: p95s[s] or 0.0)
        value = p95s[worst] or 0.0
        verdicts.append(
            _verdict(
                f"p95 added latency ≤ {P95_TARGET_MS:g} ms",
                met=value <= P95_TARGET_MS,
                detail=f"worst {value:.0f} ms at {worst}",
            )
        )
    one, fifty = loacam.get(Scenario(1, 1)), loacam.get(Scenario(1, 50))
    if one and fifty and one.usage.cpu_percent:
        growth = fifty.usage.cpu_percent / one.usage.cpu_percent
        verdicts.append(
            _verdict(
                f"CPU at 1x50 ≤ {SCALING_TARGET:g} x CPU at 1x1",
                met=growth <= SCALING_TARGET,
                detail=f"{fifty.usage.cpu_percent:.1f} % / {one.usage.cpu_percent:.1f} % "
                f"= {growth:.2f}x",
            )
        )
    for scenario, by_server in results.items():
        if "loacam" in by_server and "motion" in by_server:
            ours, peer = by_server["loacam"], by_server["motion"]
            ratio = ours.usage.cpu_percent / peer.usage.cpu_percent
            verdicts.append(
                _verdict(
                    f"CPU below motion's at ≥ its frame rate, {scenario}",
                    met=ratio < 1 and ours.fps_median >= peer.fps_median,
                    detail=f"{ratio:.2f}x motion's CPU (aim ≤ 0.5), median fps "
                    f"{ours.fps_median:.2f} vs {peer.fps_median:.2f}",
                )
            )
    return verdicts


def _verdict(target: str, *, met: bool, detail: str) -> str:
    return f"  [{'met' if met else 'MISSED'}] {target}: {detail}"
