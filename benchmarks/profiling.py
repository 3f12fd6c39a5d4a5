"""Where an engine's step spends its time: cProfile's top entries by own time (tottime)."""

from __future__ import annotations

import cProfile
import io
import pstats
from typing import Any

from benchmarks.engines import Engine, init_params, random_batch


def profile_step(engine_type: type[Engine], batch: int, dtype: str, steps: int,
                 top: int = 15) -> dict[str, Any]:
    """Profile ``steps`` training steps (after one warm-up step); the ``top`` entries."""
    engine = engine_type(init_params(dtype))
    data = engine.prepare(*random_batch(batch, dtype))
    engine.step(data)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        engine.step(data)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    entries = []
    raw: dict = stats.stats  # type: ignore[attr-defined]
    for (filename, line, function), (_, calls, tottime, cumtime, _) in sorted(
            raw.items(), key=lambda item: item[1][2], reverse=True)[:top]:
        entries.append({"function": f"{filename}:{line}({function})", "calls": calls,
                        "tottime_per_step": tottime / steps, "cumtime_per_step": cumtime / steps})
    total = sum(entry[2] for entry in raw.values())
    return {"engine": engine_type.name, "batch": batch, "dtype": dtype, "steps": steps,
            "seconds_per_step": total / steps, "top": entries, "text": stream.getvalue()}


def run_profiles(engine_type: type[Engine], batches: tuple[int, ...], dtype: str,
                 steps: dict[int, int]) -> list[dict[str, Any]]:
    """One profile per batch size."""
    return [profile_step(engine_type, batch, dtype, steps[batch]) for batch in batches]
