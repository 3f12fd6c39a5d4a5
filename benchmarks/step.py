"""Time per training step, and per epoch, for every engine, after checking they agree.

Before anything is timed, every engine takes one step from the same parameters on the same batch,
and its loss, gradients and updated parameters are compared with the hand-NumPy baseline's (and
must still have the dtype asked for: a float32 row computed in float64 would pass the tolerance
and be timed at the wrong precision): an engine that disagrees is reported and not timed, so
nothing fast-but-wrong is measured.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.engines import (
    BASELINE,
    LEARNING_RATE,
    PARAM_NAMES,
    SIZES,
    Engine,
    init_params,
    random_batch,
    runtime_groups,
)
from benchmarks.harness import REPO, interleaved, log, time_once

MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
# Relative tolerances of the agreement check: rounding differences only.
TOLERANCE = {"float32": 2e-3, "float64": 1e-8}


@dataclass(frozen=True)
class StepPlan:
    """What the step benchmark runs: batch sizes, dtypes, and how long it samples."""

    batches: tuple[int, ...]
    dtypes: tuple[str, ...]
    samples: int           # samples per engine at batches below ``large_batch``
    large_samples: int     # samples per engine from ``large_batch`` on (each step is long)
    min_time: float        # seconds one sample lasts at least
    rounds: int = 5        # turns of each runtime's block of engines (harness.interleaved)
    settle: float = 0.25   # seconds of pause before each block: idle threads go to sleep
    large_batch: int = 10_000


@dataclass(frozen=True)
class EpochPlan:
    """What the epoch benchmark runs."""

    images: int            # per epoch (60,000 for a real one)
    batch_size: int
    dtypes: tuple[str, ...]
    repeats: int
    settle: float = 0.25   # seconds of pause between runtimes (harness.interleaved)


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected| (the absolute error when expected is zero)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        return float("inf")
    scale = float(np.max(np.abs(expected), initial=0.0))
    error = float(np.max(np.abs(actual - expected), initial=0.0))
    return error / scale if scale > 0 else error


def compare(engine: Engine, reference: Engine) -> dict[str, float]:
    """The largest relative errors of ``engine``'s last step against ``reference``'s."""
    grads, expected_grads = engine.last_grads(), reference.last_grads()
    params, expected_params = engine.params(), reference.params()
    return {
        "loss": relative_error(engine.last_loss(), reference.last_loss()),
        "grads": max(relative_error(grads[k], expected_grads[k]) for k in PARAM_NAMES),
        "params": max(relative_error(params[k], expected_params[k]) for k in PARAM_NAMES),
    }


def check_engines(engines: dict[str, type[Engine]], params: dict[str, np.ndarray],
                  x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, Any]]:
    """One step of each engine from ``params`` on ``(x, y)``, compared with the baseline's."""
    dtype = params["W1"].dtype.name
    tolerance = TOLERANCE[dtype]
    reference = engines[BASELINE](params)
    reference.step(reference.prepare(x, y))
    checks: dict[str, dict[str, Any]] = {}
    for name, engine_type in engines.items():
        try:
            engine = engine_type(params)
            engine.step(engine.prepare(x, y))
            errors = compare(engine, reference)
            dtypes = {np.asarray(value).dtype.name
                      for value in (*engine.params().values(), *engine.last_grads().values())}
        except Exception as exc:  # an engine that fails is reported, not timed
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            continue
        if dtypes != {dtype}:
            checks[name] = {"ok": False, "error": f"computes in {', '.join(sorted(dtypes))}, "
                                                  f"not {dtype}", **errors}
            continue
        checks[name] = {"ok": all(e <= tolerance for e in errors.values()),
                        "tolerance": tolerance, **errors}
    return checks


def run_steps(plan: StepPlan, engines: dict[str, type[Engine]]) -> dict[str, Any]:
    """Median seconds per step of every engine at every batch size and dtype, interleaved."""
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for dtype in plan.dtypes:
        params = init_params(dtype)
        for size in plan.batches:
            x, y = random_batch(size, dtype)
            agreement = check_engines(engines, params, x, y)
            checks.extend({"dtype": dtype, "batch": size, "engine": name, **result}
                          for name, result in agreement.items())
            wrong = [name for name, result in agreement.items() if not result["ok"]]
            if BASELINE in wrong:
                raise RuntimeError(f"the baseline failed its own check: {agreement[BASELINE]}")
            for name in wrong:
                log(f"  {name} disagrees with the baseline at batch {size} {dtype}, not timed: "
                    f"{agreement[name]}")
            steps: dict[str, Callable[[], object]] = {}
            for name, engine_type in engines.items():
                if name not in wrong:
                    engine = engine_type(params)
                    steps[name] = functools.partial(engine.step, engine.prepare(x, y))
            large = size >= plan.large_batch
            timings = interleaved(steps, plan.large_samples if large else plan.samples,
                                  plan.min_time, groups=runtime_groups(list(steps)),
                                  settle=plan.settle, rounds=plan.rounds)
            baseline = timings[BASELINE].median
            for name, timing in timings.items():
                rows.append({"engine": name, "dtype": dtype, "batch": size,
                             **timing.summary(), "ratio": timing.median / baseline})
            summary = ", ".join(f"{name} {t.median * 1e3:.3g} ms ({t.median / baseline:.2f}x)"
                                for name, t in timings.items())
            log(f"  step batch {size} {dtype}: {summary}")
    return {"rows": rows, "checks": checks,
            "plan": {"batches": list(plan.batches), "dtypes": list(plan.dtypes),
                     "samples": plan.samples, "large_samples": plan.large_samples,
                     "min_time": plan.min_time, "rounds": plan.rounds, "settle": plan.settle,
                     "learning_rate": LEARNING_RATE,
                     "data": "random inputs in [0, 1), random labels"}}


# ---------------------------------------------------------------------------------------------
# Epochs
# ---------------------------------------------------------------------------------------------

def training_data(images: int, dtype: str,
                  mnist_dir: Path = MNIST_DIR) -> tuple[np.ndarray, np.ndarray, str]:
    """The first ``images`` MNIST training images as features in [0, 1], or random data."""
    if (Path(mnist_dir) / "train-images-idx3-ubyte.gz").exists():
        from models.data import load, to_features

        dataset = load(str(mnist_dir))
        x = to_features(dataset.train_images[:images], dtype=dtype)
        return x, dataset.train_labels[:images], f"MNIST training images from {mnist_dir}"
    x, y = random_batch(images, dtype, seed=2)
    return x, y, f"random data of MNIST's shape (no MNIST at {mnist_dir})"


def run_epoch(engine: Engine, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
    """One pass over ``(x, y)`` in shuffled batches, as a training loop does it."""
    order = np.random.default_rng(seed).permutation(len(x))
    for start in range(0, len(x), batch_size):
        rows = order[start:start + batch_size]
        engine.step(engine.prepare(x[rows], y[rows]))


def run_epochs(plan: EpochPlan, engines: dict[str, type[Engine]],
               mnist_dir: Path = MNIST_DIR) -> dict[str, Any]:
    """Seconds per epoch of every engine; engines take turns epoch by epoch.

    The engines of one runtime take turns epoch by epoch; PyTorch's follow NumPy's after a
    pause, as in :func:`benchmarks.harness.interleaved`.
    """
    rows: list[dict[str, Any]] = []
    source = ""
    for dtype in plan.dtypes:
        x, y, source = training_data(plan.images, dtype, mnist_dir)
        params = init_params(dtype)
        models = {name: engine_type(params) for name, engine_type in engines.items()}
        # warm up on every batch shape the epoch will see (a traced step traces each once)
        sizes = {min(plan.batch_size, len(x)), len(x) % plan.batch_size}
        for engine in models.values():
            for size in sorted(s for s in sizes if s):
                engine.step(engine.prepare(x[:size], y[:size]))
        times: dict[str, list[float]] = {name: [] for name in models}
        groups = runtime_groups(list(models))
        for repeat in range(plan.repeats):
            for group in groups:
                if len(groups) > 1:
                    time.sleep(plan.settle)  # see harness.interleaved
                shift = repeat % len(group)
                for name in group[shift:] + group[:shift]:
                    epoch = functools.partial(run_epoch, models[name], x, y, plan.batch_size,
                                              repeat)
                    times[name].append(time_once(epoch))
        baseline = float(np.median(times[BASELINE]))
        for name, seconds in times.items():
            median = float(np.median(seconds))
            rows.append({"engine": name, "dtype": dtype, "seconds": median,
                         "all": seconds, "ratio": median / baseline})
        log(f"  epoch {dtype}: " + ", ".join(f"{r['engine']} {r['seconds']:.2f} s"
                                             for r in rows if r["dtype"] == dtype))
    return {"rows": rows, "images": plan.images, "batch_size": plan.batch_size,
            "repeats": plan.repeats, "data": source, "features": SIZES[0],
            "note": "each batch is gathered from the shuffled order inside the timed epoch, "
                    "the same for every engine"}
