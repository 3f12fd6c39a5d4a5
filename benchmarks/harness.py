"""The machinery every benchmark shares: the environment, thread limits and interleaved timing.

Timing is interleaved: the functions under comparison take turns, one sample each per round (the
starting function rotates every round), so a burst of load from elsewhere on the machine lands on
all of them alike instead of on whichever happened to run during it. Functions that use different
native thread pools (NumPy's, PyTorch's, XLA's) take turns in blocks, with a pause between blocks:
see :func:`interleaved`. Each sample repeats its
function enough times to last ``min_time`` (at least once); the statistic reported is the median
over samples of the time per call, with the quartiles beside it. Each sample also reads the
process's CPU time: CPU seconds over wall seconds says how many cores the function kept busy,
which shows whether a thread limit took hold.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import tinygraph as tg

REPO = Path(__file__).resolve().parents[1]
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                      "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ---------------------------------------------------------------------------------------------
# Optional dependencies
# ---------------------------------------------------------------------------------------------

def optional_module(name: str) -> ModuleType | None:
    """``import name``, or None when it is not installed (torch, threadpoolctl, matplotlib)."""
    try:
        return __import__(name)
    except ImportError:
        return None


def torch_module() -> ModuleType | None:
    """PyTorch when it is installed, else None: every torch engine is optional."""
    return optional_module("torch")


def jax_module() -> ModuleType | None:
    """JAX when it is installed, else None, with the settings of :func:`configure_xla` applied.

    Call :func:`configure_xla` first: XLA sizes its thread pools when JAX starts its CPU backend.
    """
    jax = optional_module("jax")
    if jax is not None:
        for option, value in _JAX_OPTIONS.items():
            jax.config.update(option, value)
    return jax


def package_version(name: str) -> str | None:
    """An installed distribution's version, without importing it; None when it is absent."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# XLA's threads
# ---------------------------------------------------------------------------------------------

# XLA (JAX's CPU backend) runs its own thread pools, which neither threadpoolctl nor PyTorch's
# setting reaches. It sizes them, when JAX starts its CPU backend, from PJRT_NPROC (then NPROC,
# then the cores this process may use). XLA_FLAGS=--xla_cpu_multi_thread_eigen=false, the usual
# advice, leaves this XLA multi-threaded: a full-batch step kept 1.99 cores busy with it and 1.00
# with PJRT_NPROC=1 (``intra_op_parallelism_threads=1``, often written after it, is TensorFlow's
# option, not an XLA flag). With one thread, JAX also runs each computation on the calling thread
# instead of handing it to a dispatch thread (jax_cpu_enable_async_dispatch=False): the same time
# per step, but 1.00 cores busy instead of up to 1.36 at batch 1. The step benchmark's "cores
# busy" table (process CPU time over wall time per engine) shows what each runtime really used.
_JAX_OPTIONS: dict[str, Any] = {}


def configure_xla(threads: int) -> dict[str, Any]:
    """XLA's threads for ``threads``, set before JAX is imported; what was set, and if it holds.

    Sets ``PJRT_NPROC`` (the size of XLA's CPU thread pools) and, with one thread, turns JAX's
    asynchronous CPU dispatch off (applied by :func:`jax_module`). Once JAX's CPU backend has
    started in this process, its pools are sized already: the result then says so.
    """
    os.environ["PJRT_NPROC"] = str(threads)
    _JAX_OPTIONS["jax_cpu_enable_async_dispatch"] = threads > 1
    imported = "jax" in sys.modules and sys.modules["jax"] is not None
    note = ("JAX was imported earlier in this process: holds only if its CPU backend had not "
            "started" if imported else "set before JAX was imported")
    return {"PJRT_NPROC": str(threads), "async_dispatch": threads > 1, "applied": not imported,
            "note": note}


# ---------------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------------

def default_threads() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_name() -> str:
    """The host name, reduced to characters that are safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-") or "machine"


def cpu_name() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def thread_pools() -> list[dict[str, Any]]:
    """The native thread pools loaded now (BLAS, OpenMP) as threadpoolctl sees them."""
    threadpoolctl = optional_module("threadpoolctl")
    if threadpoolctl is None:
        return []
    keys = ("user_api", "internal_api", "version", "architecture", "num_threads",
            "threading_layer", "prefix")
    return [{key: pool.get(key) for key in keys if key in pool}
            for pool in threadpoolctl.threadpool_info()]


def blas_name() -> str:
    """NumPy's BLAS in one line, e.g. ``openblas 0.3.31 (SkylakeX kernels, pthreads)``."""
    for pool in thread_pools():
        if pool.get("user_api") == "blas":
            name = f"{pool.get('internal_api')} {pool.get('version')}"
            details = [f"{pool['architecture']} kernels" if pool.get("architecture") else None,
                       pool.get("threading_layer")]
            details = [d for d in details if d]
            return f"{name} ({', '.join(details)})" if details else name
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} (threadpoolctl not installed)"
    except Exception:  # an old NumPy without mode="dicts"
        return "unknown (install threadpoolctl)"


def git_revision() -> str | None:
    """The repository's commit (with ``+dirty`` for local changes), or None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, timeout=10, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def environment(threads: int) -> dict[str, Any]:
    """Everything a reader needs to compare this run with another."""
    torch = torch_module()
    return {
        "machine": machine_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "blas": blas_name(),
        "thread_pools": thread_pools(),
        "threads_controlled": optional_module("threadpoolctl") is not None,
        "env": {name: os.environ[name] for name in OPENBLAS_VARIABLES if name in os.environ},
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "tinygraph": getattr(tg, "__version__", "?"),
        "tinygraph_has_trace": hasattr(tg, "trace"),
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "peers": {name: package_version(name) for name in ("mygrad", "autograd", "jax")},
        "git": git_revision(),
    }


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` threads in every native pool: BLAS, OpenMP and PyTorch's own."""
    threadpoolctl = optional_module("threadpoolctl")
    torch = torch_module()
    previous_torch = None if torch is None else torch.get_num_threads()
    with contextlib.ExitStack() as stack:
        if threadpoolctl is not None:
            stack.enter_context(threadpoolctl.threadpool_limits(limits=threads))
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch is not None and previous_torch is not None:
                torch.set_num_threads(previous_torch)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

@dataclass
class Timing:
    """Seconds per call, one value per sample."""

    samples: list[float] = field(default_factory=list)
    calls_per_sample: int = 1
    cpu_samples: list[float] = field(default_factory=list)  # process CPU seconds per call

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def cores_busy(self) -> float | None:
        """Process CPU time over wall time, all samples together (1.0: one core busy)."""
        if not self.cpu_samples or not sum(self.samples):
            return None
        return sum(self.cpu_samples) / sum(self.samples)

    def summary(self) -> dict[str, Any]:
        """Median, quartiles, minimum, cores busy and sample counts, for the JSON file."""
        q1, median, q3 = np.percentile(self.samples, [25, 50, 75])
        return {"median": float(median), "q1": float(q1), "q3": float(q3),
                "min": float(np.min(self.samples)), "samples": len(self.samples),
                "calls_per_sample": self.calls_per_sample, "cores_busy": self.cores_busy}


def calibrate(function: Callable[[], object], min_time: float) -> int:
    """How many calls make one sample last at least ``min_time`` (and it warms the function)."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1_000_000:
            return number
        grown = int(number * 1.3 * min_time / max(elapsed, 1e-9)) + 1
        number = min(max(2 * number, grown), 100 * number)


def interleaved(functions: Mapping[str, Callable[[], object]], samples: int,
                min_time: float, warmup: int = 1, groups: Sequence[Sequence[str]] | None = None,
                settle: float = 0.0, rounds: int = 5, collect: bool = True) -> dict[str, Timing]:
    """Time every function, round-robin: each round takes one sample of each, in rotated order.

    ``groups`` splits the functions by the native thread pools they use (NumPy's OpenBLAS,
    PyTorch's OpenMP, XLA's own). Pools of two runtimes must not take turns call by call: each
    keeps its idle threads spinning for a while after its last call (OpenBLAS up to ~0.1 s), and
    the other runtime's threads then wait for a core, which no user running one framework ever
    sees. So
    with several groups, each of ``rounds`` rounds gives every group a turn, after a ``settle``
    pause (idle threads go to sleep) and an untimed call of each of its functions, and the turn
    takes ``samples / rounds`` interleaved samples of each function of the group; noise that
    lasts longer than a turn still lands on all groups alike.

    A function is calibrated (and so warmed up) at its group's first turn, then runs ``warmup``
    samples' worth of untimed calls; with ``collect``, garbage is collected before each set of
    samples so that no function pays for another's.
    """
    groups = [list(group) for group in (groups or [list(functions)]) if group]
    if len(groups) == 1:
        rounds, per_round = 1, samples
    else:
        rounds = max(1, min(rounds, samples))
        per_round = -(-samples // rounds)
    numbers: dict[str, int] = {}
    timings: dict[str, Timing] = {}
    for round_number in range(rounds):
        for group_number, group in enumerate(groups):
            if len(groups) > 1 and (round_number, group_number) != (0, 0):
                time.sleep(settle)
            for name in group:
                if name not in numbers:
                    numbers[name] = calibrate(functions[name], min_time)
                    timings[name] = Timing(calls_per_sample=numbers[name])
                    for _ in range(warmup * numbers[name]):
                        functions[name]()
                elif len(groups) > 1:
                    functions[name]()
            for repeat in range(per_round):
                if collect:
                    gc.collect()
                shift = (round_number * per_round + repeat) % len(group)
                for name in group[shift:] + group[:shift]:
                    function, number = functions[name], numbers[name]
                    cpu_start = time.process_time()
                    start = time.perf_counter()
                    for _ in range(number):
                        function()
                    elapsed = time.perf_counter() - start
                    timings[name].cpu_samples.append((time.process_time() - cpu_start) / number)
                    timings[name].samples.append(elapsed / number)
    return {name: timings[name] for name in functions if name in timings}


def time_once(function: Callable[[], object]) -> float:
    """Seconds one call takes (for runs long enough that one is a sample)."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def log(message: str) -> None:
    """Progress on stderr, so that stdout stays for results."""
    print(message, file=sys.stderr, flush=True)
