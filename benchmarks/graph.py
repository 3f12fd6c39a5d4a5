"""What the graph itself costs: time and memory per node of long chains, and a step's peak memory.

Graph overhead: ``y = y * 1.0001`` repeated N times on an 8-element Tensor, then
``y.sum().backward()``. The arithmetic is negligible, so the seconds per node are the engine's
bookkeeping: building a node, sorting it, running its rule, freeing it. Linear cost means flat
seconds per node as N grows. Memory is measured in a second run under ``tracemalloc`` (which slows
Python down, so it is never timed): what the graph keeps per node after building it, and the peak
per node during build and backward.

Step memory: the peak that ``tracemalloc`` sees while an engine is made and takes two full-batch
steps, above what was allocated before (the data and the initial parameters are not counted, the
engine's copy of the parameters and every buffer it allocates are). PyTorch's and XLA's
allocators are invisible to ``tracemalloc``, so the torch and JAX engines are left out: only
engines whose arrays are NumPy's (``Engine.runtime == "numpy"``) are measured.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygraph as tg
from benchmarks.engines import BASELINE, Engine, init_params, random_batch
from benchmarks.harness import log


@dataclass(frozen=True)
class GraphPlan:
    """Chain lengths, and how many timed runs each (long chains take seconds per run)."""

    sizes: tuple[int, ...]
    repeats: int
    max_nodes_per_size: int = 3_000_000   # fewer repeats for long chains: n * repeats <= this


def chain(length: int) -> tuple[tg.Tensor, tg.Tensor]:
    """A leaf and the end of a chain of ``length`` multiplications from it."""
    leaf = tg.Tensor(np.ones(8), requires_grad=True)
    y = leaf
    for _ in range(length):
        y = y * 1.0001
    return leaf, y


def time_chain(length: int) -> dict[str, float]:
    """Seconds to build a chain, to run its backward pass, and to free it."""
    start = time.perf_counter()
    leaf, y = chain(length)
    built = time.perf_counter()
    y.sum().backward()
    finished = time.perf_counter()
    expected = 1.0001 ** length
    if not np.allclose(leaf.grad, expected, rtol=1e-6):
        raise RuntimeError(f"chain of {length}: gradient {leaf.grad[0]}, expected {expected}")
    del y
    freed = time.perf_counter()
    return {"build": built - start, "backward": finished - built, "free": freed - finished}


def chain_memory(length: int) -> dict[str, float]:
    """Bytes per node that a chain keeps after building, and its peak during build + backward."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        leaf, y = chain(length)
        kept = tracemalloc.get_traced_memory()[0] - before
        y.sum().backward()
        peak = tracemalloc.get_traced_memory()[1] - before
        del leaf, y
    finally:
        tracemalloc.stop()
    return {"kept_bytes_per_node": kept / length, "peak_bytes_per_node": peak / length}


def run_graph(plan: GraphPlan) -> dict[str, Any]:
    """Seconds and bytes per node for every chain length of ``plan``."""
    rows = []
    for length in plan.sizes:
        repeats = max(1, min(plan.repeats, plan.max_nodes_per_size // length))
        runs = []
        for _ in range(repeats):
            gc.collect()
            runs.append(time_chain(length))
        times = {part: float(np.median([run[part] for run in runs]))
                 for part in ("build", "backward", "free")}
        row = {"nodes": length, "repeats": repeats,
               **{f"{part}_per_node": seconds / length for part, seconds in times.items()},
               "per_node": (times["build"] + times["backward"]) / length,
               **chain_memory(length)}
        rows.append(row)
        log(f"  graph {length:>9,} nodes: {row['per_node'] * 1e6:.2f} us/node "
            f"(build {row['build_per_node'] * 1e6:.2f}, backward "
            f"{row['backward_per_node'] * 1e6:.2f}, free {row['free_per_node'] * 1e6:.2f}), "
            f"peak {row['peak_bytes_per_node']:.0f} B/node")
    return {"rows": rows,
            "op": "y = y * 1.0001 on an 8-element float64 Tensor, then y.sum().backward()"}


def step_peak(engine_type: type[Engine], params: dict[str, np.ndarray], x: np.ndarray,
              y: np.ndarray) -> dict[str, float]:
    """Peak and kept bytes above the data while an engine is made and takes two steps.

    ``peak_bytes`` covers all of it (a traced engine traces in its first step);
    ``second_step_peak_bytes`` only the second step, a training loop's steady state (still
    above the memory held before the engine was made, so its parameters and buffers count).
    """
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        engine = engine_type(params)
        batch = engine.prepare(x, y)
        engine.step(batch)
        first_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        engine.step(batch)
        current, second_peak = tracemalloc.get_traced_memory()
        del engine, batch
    finally:
        tracemalloc.stop()
    return {"peak_bytes": max(first_peak, second_peak) - before,
            "second_step_peak_bytes": second_peak - before, "kept_bytes": current - before}


def run_memory(engines: dict[str, type[Engine]], size: int = 48_000,
               dtype: str = "float32") -> dict[str, Any]:
    """Peak memory of a full-batch step for every engine tracemalloc can see."""
    params = init_params(dtype)
    x, y = random_batch(size, dtype)
    rows = []
    measured = {name: engine for name, engine in engines.items() if engine.runtime == "numpy"}
    results = {name: step_peak(engine, params, x, y) for name, engine in measured.items()}
    baseline = results[BASELINE]["peak_bytes"]
    second_baseline = results[BASELINE]["second_step_peak_bytes"]
    for name, result in results.items():
        rows.append({"engine": name, **result, "ratio": result["peak_bytes"] / baseline,
                     "second_step_ratio": result["second_step_peak_bytes"] / second_baseline})
        log(f"  memory {name}: peak {result['peak_bytes'] / 2**20:.1f} MiB "
            f"({result['peak_bytes'] / baseline:.2f}x), second step "
            f"{result['second_step_peak_bytes'] / 2**20:.1f} MiB "
            f"({result['second_step_peak_bytes'] / second_baseline:.2f}x)")
    return {"rows": rows, "batch": size, "dtype": dtype,
            "input_bytes": int(x.nbytes + y.nbytes),
            "left_out": sorted(set(engines) - set(measured)),
            "note": "tracemalloc peak while the engine is made and takes two steps, above the "
                    "memory held before (the batch and the initial parameters are not counted)"}
