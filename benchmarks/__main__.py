"""``python -m benchmarks``: run the suite and write JSON, markdown and a plot.

    python -m benchmarks                    # everything (several minutes)
    python -m benchmarks --quick            # a small subset in seconds (what CI runs)
    python -m benchmarks --only step        # one of: step epoch memory graph ops profile
    python -m benchmarks --out DIR --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import gc
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tinygraph as tg
from benchmarks import graph, ops, profiling, report, step
from benchmarks.engines import ENGINES, TinygraphValueAndGrad, available_engines
from benchmarks.harness import (
    configure_xla,
    default_threads,
    environment,
    limited_threads,
    log,
    machine_name,
)

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Plan:
    """Everything one run does."""

    step: step.StepPlan
    epoch: step.EpochPlan
    graph: graph.GraphPlan
    ops: ops.OpsPlan
    profile_steps: dict[int, int]
    memory_batch: int = report.FULL_BATCH


FULL = Plan(
    step=step.StepPlan(batches=(1, 32, 128, 512, report.FULL_BATCH),
                       dtypes=("float32", "float64"), samples=25, large_samples=5,
                       min_time=0.04, rounds=5),
    epoch=step.EpochPlan(images=60_000, batch_size=128, dtypes=("float32", "float64"),
                         repeats=5),
    graph=graph.GraphPlan(sizes=(100, 1_000, 10_000, 100_000, 1_000_000), repeats=20,
                          max_nodes_per_size=1_000_000),
    ops=ops.OpsPlan(samples=15, min_time=0.005),
    profile_steps={1: 3000, 128: 500},
)

QUICK = Plan(
    step=step.StepPlan(batches=(1, 128), dtypes=("float32", "float64"), samples=5,
                       large_samples=3, min_time=0.005, rounds=1, settle=0.15),
    epoch=step.EpochPlan(images=6_400, batch_size=128, dtypes=("float32",), repeats=1,
                         settle=0.15),
    graph=graph.GraphPlan(sizes=(100, 1_000, 10_000), repeats=3, max_nodes_per_size=30_000),
    ops=ops.OpsPlan(samples=3, min_time=0.001),
    profile_steps={1: 200, 128: 40},
)

BENCHMARKS = ("step", "epoch", "memory", "graph", "ops", "profile")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time tinygraph against hand-written NumPy (and PyTorch, MyGrad, HIPS "
                    "autograd and JAX when installed).")
    parser.add_argument("--quick", action="store_true",
                        help="a small subset in seconds (batches 1 and 128, short chains)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"directory for the results (default {RESULTS})")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for BLAS, OpenMP, PyTorch and XLA (JAX) (default: this "
                             f"machine's {default_threads()})")
    parser.add_argument("--machine", default=None,
                        help=f"machine name in the file names (default: {machine_name()})")
    parser.add_argument("--mnist", type=Path, default=step.MNIST_DIR,
                        help=f"directory of the MNIST IDX files for the epoch (default "
                             f"{step.MNIST_DIR}; random data when absent)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def run(args: argparse.Namespace, command: str) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run the chosen benchmarks; return the results and the files written."""
    plan = QUICK if args.quick else FULL
    chosen = args.only or list(BENCHMARKS)
    threads = args.threads or default_threads()
    xla = configure_xla(threads)  # before available_engines() imports JAX
    engines, skipped = available_engines()
    for name, reason in skipped.items():
        log(f"skipping engine {name}: {reason}")
    # Everything imported so far (PyTorch alone brings ~10^5 objects) lives as long as the
    # process: freezing it keeps every garbage collection, timed or not, as cheap as in a
    # process that imported tinygraph alone.
    gc.collect()
    gc.freeze()
    # Freed per-step arrays (a 200 KB weight gradient) stay in the heap instead of being
    # page-faulted in anew every step (48 faults, ~60 us at batch 1); process-wide, so every
    # engine gets it. The README's training CLI does the same.
    malloc_tuned = tg.keep_freed_memory()
    started = time.perf_counter()
    results: dict[str, Any] = {"command": command, "quick": args.quick, "benchmarks": chosen,
                               "engines": {name: ENGINES[name].label for name in engines},
                               "skipped_engines": skipped}
    jobs: dict[str, Callable[[], Any]] = {
        "step": lambda: step.run_steps(plan.step, engines),
        "epoch": lambda: step.run_epochs(plan.epoch, engines, args.mnist),
        "memory": lambda: graph.run_memory(engines, plan.memory_batch),
        "graph": lambda: graph.run_graph(plan.graph),
        "ops": lambda: ops.run_ops(plan.ops),
        "profile": lambda: profiling.run_profiles(TinygraphValueAndGrad, (1, 128), "float32",
                                                  plan.profile_steps),
    }
    try:
        with limited_threads(threads):
            results["environment"] = environment(threads)
            results["environment"]["keep_freed_memory"] = malloc_tuned
            results["environment"]["xla"] = xla
            log(f"{results['environment']['cpu']}, {threads} threads, "
                f"BLAS {results['environment']['blas']}")
            timings = results["seconds"] = {}
            for name in BENCHMARKS:
                if name in chosen:
                    log(f"{name}:")
                    began = time.perf_counter()
                    results[name] = jobs[name]()
                    timings[name] = time.perf_counter() - began
                    log(f"  ({timings[name]:.1f} s)")
    finally:
        gc.unfreeze()
    results["duration_seconds"] = time.perf_counter() - started
    results["targets"] = report.evaluate_targets(results)
    stem = f"{args.machine or machine_name()}-{datetime.date.today().isoformat()}"
    if args.quick:
        stem += "-quick"
    if args.only:
        stem += "-" + "+".join(args.only)
    return results, report.write(results, args.out, stem)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(arguments)
    command = shlex.join(["python", "-m", "benchmarks", *arguments])
    results, paths = run(args, command)
    print("\n".join(f"| {t['target']} | {t['measured']} | {t['status']} |"
                    for t in results["targets"]))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
