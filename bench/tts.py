"""Offline text-to-speech (issue 6): synthesis time for 300 and 1,500 characters, cache hits.

Runs loacam's own AudioService (normaliser → espeak-ng → ffmpeg loudness and MP3) on a
fresh store in a temporary directory, with no network engine in the chain. Each text is
rendered `--runs` times from a cold cache (a new store each time), then asked for again
`--hits` times, which the cache answers. Also times espeak-ng alone on the same text,
so the pipeline's share is visible.

    .venv/bin/python bench/tts.py
    .venv/bin/python bench/tts.py --runs 5 --hits 500 --json /tmp/tts.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from audio.normalize import normalize
from audio.tts import EspeakEngine, EspeakSettings
from daemon.audio.service import AudioService
from daemon.config_audio import AudioConfig
from daemon.media import MediaStore
from daemon.store import Store

SENTENCE = (
    "UBND xã thông báo: từ 7h30 ngày 15/3/2025 tổ chức tiêm chủng tại trạm y tế xã, "
    "mỗi hộ đóng góp 25.000 đồng, liên hệ 0912 345 678. "
)


def text_of(length: int) -> str:
    text = SENTENCE * (length // len(SENTENCE) + 1)
    return text[:length].rsplit(" ", 1)[0] + "."


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def cold_render(text: str, workdir: Path) -> tuple[float, float]:
    """Seconds for one render from an empty cache, and the audio's length."""
    store = await Store.open(workdir)
    try:
        config = AudioConfig.model_validate({"tts": {"engines": ["espeak-ng"]}})
        audio = AudioService(config, store, MediaStore(workdir / "media"))
        started = time.perf_counter()
        spoken = await audio.speak(text)
        elapsed = time.perf_counter() - started
        if spoken.cached:
            raise RuntimeError("a cold render came from the cache: the figures would be wrong")
        return elapsed, spoken.duration_s
    finally:
        await store.close()


async def cache_hits(text: str, workdir: Path, hits: int) -> list[float]:
    store = await Store.open(workdir)
    try:
        config = AudioConfig.model_validate({"tts": {"engines": ["espeak-ng"]}})
        audio = AudioService(config, store, MediaStore(workdir / "media"))
        await audio.speak(text)
        times = []
        for _ in range(hits):
            started = time.perf_counter()
            spoken = await audio.speak(text)
            times.append(time.perf_counter() - started)
            if not spoken.cached:
                raise RuntimeError("a repeat was rendered again: the cache is not working")
        return times
    finally:
        await store.close()


async def espeak_alone(text: str) -> float:
    engine = EspeakEngine(EspeakSettings())
    said = normalize(text)
    started = time.perf_counter()
    await engine.synthesize(said, "vi")
    return time.perf_counter() - started


async def measure(length: int, runs: int, hits: int) -> dict[str, object]:
    text = text_of(length)
    renders, audio_s, engine_s = [], 0.0, []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="loacam-bench-tts-") as tmp:
            elapsed, audio_s = await cold_render(text, Path(tmp))
        renders.append(elapsed)
        engine_s.append(await espeak_alone(text))
    with tempfile.TemporaryDirectory(prefix="loacam-bench-tts-") as tmp:
        hit_times = await cache_hits(text, Path(tmp), hits)
    return {
        "characters": len(text),
        "audio_s": round(audio_s, 1),
        "render_median_s": round(statistics.median(renders), 2),
        "render_max_s": round(max(renders), 2),
        "espeak_only_median_s": round(statistics.median(engine_s), 2),
        "cache_hit_median_ms": round(statistics.median(hit_times) * 1000, 2),
        "cache_hit_p95_ms": round(percentile(hit_times, 0.95) * 1000, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    results = [await measure(length, args.runs, args.hits) for length in (300, 1500)]
    return {
        "when": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": f"{platform.node()} {platform.machine()}, {platform.python_version()}",
        "runs": args.runs,
        "hits": args.hits,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold renders per text")
    parser.add_argument("--hits", type=int, default=200, help="cache hits timed per text")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(f"tts bench {report['when']} on {report['machine']}")
    print("chars  audio_s  render_med  render_max  espeak_only  hit_med_ms  hit_p95_ms")
    for row in report["results"]:  # type: ignore[attr-defined]
        print(
            f"{row['characters']:>5}  {row['audio_s']:>7}  {row['render_median_s']:>10}  "
            f"{row['render_max_s']:>10}  {row['espeak_only_median_s']:>11}  "
            f"{row['cache_hit_median_ms']:>10}  {row['cache_hit_p95_ms']:>10}"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
