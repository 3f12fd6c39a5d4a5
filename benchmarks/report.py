"""The targets, checked against a run, and the run written as JSON, markdown and PNG.

The targets are those of the compiled-step issue (ratios to hand-written NumPy in the same run,
float32): the compiled step (``tg.trace``) at or under hand NumPy at every batch and ahead of
``jax.jit`` from batch 32 to 512, eager ``value_and_grad`` and ``Tensor.backward`` within a few
per cent and faster than MyGrad and PyTorch eager, peak memory, and a flat cost per node. A target
the run could not measure is listed as "not measured", with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.engines import BASELINE, ENGINES
from benchmarks.harness import log, optional_module

EAGER = ("tg_value_and_grad", "tg_backward")
TRACED = "tg_compiled"  # the compiled-step targets: the whole step compiled
TORCH_NN = "torch_nn"
MYGRAD = "mygrad"
JAX = "jax_jit"
FULL_BATCH = 48_000
STEP_BATCHES = (1, 32, 128, 512)  # the batches below the full one

COMPILED_LIMIT = 1.00          # the compiled step's time vs hand NumPy, every batch
COMPILED_MEMORY_LIMIT = 1.1    # its peak memory at full batch vs hand NumPy
EAGER_LIMITS = ((1, 1.3), (32, 1.3), (128, 1.15), (FULL_BATCH, 1.05))
EAGER_MEMORY_LIMIT = 1.5
FLAT_LIMIT = 1.3               # max / min time per node from 1e3 to 1e6 nodes
SLOW_RULE = 4.0  # a rule costing more than this times max(forward, copy) is flagged
PEER_NAMES = {"mygrad": "MyGrad", "autograd": "HIPS autograd", "jax": "JAX"}


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------

def seconds(value: float | None) -> str:
    """``12.3 us``, ``4.56 ms``, ``1.23 s``: three significant digits."""
    if value is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def mebibytes(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def label(engine: str) -> str:
    return ENGINES[engine].label if engine in ENGINES else engine


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------

def _step_row(results: dict[str, Any], engine: str, batch: int,
              dtype: str = "float32") -> dict[str, Any] | None:
    for row in results.get("step", {}).get("rows", []):
        if (row["engine"], row["batch"], row["dtype"]) == (engine, batch, dtype):
            return row
    return None


def _target(text: str, measured: str, status: str | bool | None) -> dict[str, str]:
    if isinstance(status, bool):
        status = "met" if status else "missed"
    return {"target": text, "measured": measured, "status": status or "not measured"}


def _why_not_measured(results: dict[str, Any], engine: str, batch: int | None = None,
                      dtype: str = "float32") -> str:
    """Why ``engine`` has no float32 step row at ``batch`` (any batch when None)."""
    skipped = results.get("skipped_engines", {})
    if engine in skipped:
        return skipped[engine]
    step = results.get("step")
    if not step:
        return "the step benchmark was not run (--only)"
    if batch is not None and batch not in step.get("plan", {}).get("batches", []):
        return f"batch {batch:,} is not in this run" + (" (--quick)" if results.get("quick")
                                                        else "")
    for check in step.get("checks", []):
        if (check["engine"], check["dtype"]) == (engine, dtype) and not check["ok"] and \
                batch in (None, check["batch"]):
            return f"disagreed with hand NumPy at batch {check['batch']:,}: not timed"
    return "not measured in this run"


def _ratio_target(results: dict[str, Any], engine: str, batch: int, limit: float,
                  text: str) -> dict[str, str]:
    row = _step_row(results, engine, batch)
    if row is None:
        return _target(text, _why_not_measured(results, engine, batch), None)
    return _target(text, f"{row['ratio']:.2f}x ({seconds(row['median'])} vs "
                         f"{seconds(row['median'] / row['ratio'])})", row["ratio"] <= limit)


def _faster_target(results: dict[str, Any], ours: str, theirs: str, batches: tuple[int, ...],
                   text: str) -> dict[str, str]:
    """``ours`` takes less time per float32 step than ``theirs`` at every one of ``batches``."""
    pairs, missing = [], []
    for batch in batches:
        mine, other = _step_row(results, ours, batch), _step_row(results, theirs, batch)
        if mine and other:
            pairs.append((batch, mine["median"], other["median"]))
        else:
            missing.append(batch)
    if not pairs:
        absent = theirs if theirs in results.get("skipped_engines", {}) else ours
        return _target(text, _why_not_measured(results, absent), None)
    measured = "; ".join(f"batch {b:,}: {seconds(o)} vs {seconds(t)} ({o / t:.2f}x)"
                         for b, o, t in pairs)
    status = "met" if all(o < t for _, o, t in pairs) else "missed"
    if missing:
        status += f" (batch {', '.join(f'{b:,}' for b in missing)} not measured)"
    return _target(text, measured, status)


def _memory_target(results: dict[str, Any], engine: str, limit: float, name: str | None = None,
                   steady: bool = False) -> dict[str, str]:
    """Peak memory of a full-batch step against hand NumPy's; ``steady``: the second step's."""
    text = (f"{name or label(engine)}, peak memory of a full-batch float32 step"
            f"{' (second step: traced already)' if steady else ''} <= {limit:.1f}x hand NumPy")
    memory = results.get("memory")
    rows = {row["engine"]: row for row in (memory or {}).get("rows", [])}
    if engine in rows:
        row, base = rows[engine], rows[BASELINE]
        key = "second_step_peak_bytes" if steady and "second_step_peak_bytes" in row else \
            "peak_bytes"
        ratio = row[key] / base[key]
        return _target(text, f"{ratio:.2f}x ({mebibytes(row[key])} vs {mebibytes(base[key])})",
                       ratio <= limit)
    if engine in results.get("skipped_engines", {}):
        return _target(text, results["skipped_engines"][engine], None)
    why = "the memory benchmark was not run (--only)" if memory is None else \
        "not measured in this run"
    return _target(text, why, None)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, str]]:
    """Every target of the compiled-step issue, met, missed, or not measured (and why)."""
    targets = []
    compiled = f"compiled step ({label(TRACED)})"
    for batch in (*STEP_BATCHES, FULL_BATCH):
        targets.append(_ratio_target(results, TRACED, batch, COMPILED_LIMIT,
                                     f"{compiled}, float32, batch {batch:,}: "
                                     f"<= {COMPILED_LIMIT:.2f}x hand NumPy"))
    ahead = tuple(b for b in STEP_BATCHES if b >= 32)
    targets.append(_faster_target(results, TRACED, JAX, ahead,
                                  f"{compiled} faster than {label(JAX)} at batch "
                                  f"{ahead[0]}-{ahead[-1]} (float32)"))
    targets.append(_memory_target(results, TRACED, COMPILED_MEMORY_LIMIT, compiled,
                                  steady=True))
    for engine in EAGER:
        for batch, limit in EAGER_LIMITS:
            targets.append(_ratio_target(results, engine, batch, limit,
                                         f"{label(engine)}, float32, batch {batch:,}: "
                                         f"<= {limit:.2f}x hand NumPy"))
    for rival in (MYGRAD, TORCH_NN):
        for engine in EAGER:
            targets.append(_faster_target(
                results, engine, rival, STEP_BATCHES,
                f"{label(engine)} faster than {label(rival)} at every batch <= "
                f"{STEP_BATCHES[-1]} (float32)"))
    for engine in EAGER:
        targets.append(_memory_target(results, engine, EAGER_MEMORY_LIMIT))
    targets.append(_graph_target(results))
    return targets


def _graph_target(results: dict[str, Any]) -> dict[str, str]:
    text = f"time per node flat from 1e3 to 1e6 nodes (max/min <= {FLAT_LIMIT})"
    if "graph" not in results:
        return _target(text, "the graph benchmark was not run (--only)", None)
    rows = [row for row in results["graph"].get("rows", []) if row["nodes"] >= 1_000]
    if len(rows) < 2:
        return _target(text, "fewer than two chains of 1,000 nodes or more in this run", None)
    per_node = [row["per_node"] for row in rows]
    largest = max(row["nodes"] for row in rows)
    spread = max(per_node) / min(per_node)
    measured = (f"{spread:.2f}x ({seconds(min(per_node))} to {seconds(max(per_node))} per node, "
                f"1,000 to {largest:,} nodes)")
    status = "met" if spread <= FLAT_LIMIT else "missed"
    if largest < 1_000_000:
        status += f" (only up to {largest:,} nodes)"
    return _target(text, measured, status)


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    """The whole run as markdown tables."""
    env = results["environment"]
    controlled = "fixed with threadpoolctl" if env["threads_controlled"] else \
        "NOT controlled: threadpoolctl is not installed"
    lines = [
        f"# tinygraph benchmarks: {env['machine']}, {env['date'][:10]}",
        "",
        f"`{results['command']}`{' (quick subset)' if results['quick'] else ''}: "
        f"{env['cpu']}, {env['cores']} cores, {env['threads']} threads ({controlled}), "
        f"BLAS {env['blas']}, Python {env['python']}, NumPy {env['numpy']}, "
        f"PyTorch {env['torch'] or 'not installed'}, tinygraph {env['tinygraph']} "
        f"(git {env['git'] or 'unknown'}), {results['duration_seconds']:.0f} s in all.",
    ]
    peers = env.get("peers") or {}
    if peers:
        lines.append("Peers: " + ", ".join(f"{PEER_NAMES.get(k, k)} {v or 'not installed'}"
                                           for k, v in peers.items()) + ".")
    xla = env.get("xla")
    if xla and "jax_jit" not in results.get("skipped_engines", {}):
        lines.append(f"JAX: XLA's thread pools sized by PJRT_NPROC={xla['PJRT_NPROC']}, "
                     f"asynchronous dispatch {'on' if xla['async_dispatch'] else 'off'} "
                     f"({xla['note']}).")
    if env["env"]:
        lines.append("Environment: " + ", ".join(f"{k}={v}" for k, v in env["env"].items()))
    for name, reason in results.get("skipped_engines", {}).items():
        lines.append(f"Skipped engine {label(name)}: {reason}.")
    lines += ["", "## Targets", ""]
    lines += _table(["target", "measured", "status"],
                    [[t["target"], t["measured"], f"**{t['status']}**"]
                     for t in results["targets"]])
    for section in (_step_section, _epoch_section, _memory_section, _graph_section,
                    _ops_section, _profile_section):
        part = section(results)
        if part:
            lines += ["", *part]
    return "\n".join(lines) + "\n"


def _step_section(results: dict[str, Any]) -> list[str]:
    step = results.get("step")
    if not step:
        return []
    plan = step["plan"]
    lines = ["## Training step", "",
             f"Median time per step (forward, loss, backward, SGD update) of the 784-64-10 "
             f"sigmoid network, and its ratio to hand-written NumPy at the same batch and dtype; "
             f"{plan['samples']} interleaved samples per engine ({plan['large_samples']} at "
             f"batch >= 10,000), each at least {plan['min_time'] * 1e3:.0f} ms. Data: "
             f"{plan['data']}."]
    engines = list(dict.fromkeys(row["engine"] for row in step["rows"]))
    for dtype in plan["dtypes"]:
        rows = [row for row in step["rows"] if row["dtype"] == dtype]
        if not rows:
            continue
        batches = sorted({row["batch"] for row in rows})
        table = []
        for engine in engines:
            cells = []
            for batch in batches:
                match = [r for r in rows if r["engine"] == engine and r["batch"] == batch]
                cells.append(f"{seconds(match[0]['median'])} ({match[0]['ratio']:.2f}x)"
                             if match else "not timed")
            table.append([label(engine), *cells])
        lines += ["", f"**{dtype}**", ""]
        lines += _table(["engine", *(f"batch {b:,}" for b in batches)], table)
    lines += _cores_section(step, engines)
    wrong = [c for c in step["checks"] if not c["ok"]]
    lines += ["", "Correctness check before timing: " + (
        "every engine's loss, gradients and updated parameters agree with hand NumPy "
        "(relative error <= 2e-3 in float32, 1e-8 in float64)." if not wrong else
        "DISAGREEING (not timed): " + "; ".join(
            f"{label(c['engine'])} at batch {c['batch']} {c['dtype']}: "
            f"{c.get('error') or {k: c[k] for k in ('loss', 'grads', 'params')}}"
            for c in wrong))]
    return lines


def _cores_section(step: dict[str, Any], engines: list[str]) -> list[str]:
    """Cores each engine kept busy (process CPU time / wall time), float32 / float64 per cell."""
    rows = [row for row in step["rows"] if row.get("cores_busy") is not None]
    if not rows:
        return []
    dtypes = list(dict.fromkeys(row["dtype"] for row in rows))
    batches = sorted({row["batch"] for row in rows})
    busy = {(r["engine"], r["batch"], r["dtype"]): r["cores_busy"] for r in rows}
    table = [[label(engine), *(" / ".join(f"{busy[engine, batch, dtype]:.2f}"
                                          if (engine, batch, dtype) in busy else "-"
                                          for dtype in dtypes) for batch in batches)]
             for engine in engines]
    return ["", f"Cores busy while each engine's samples ran (process CPU time / wall time; "
                f"{' / '.join(dtypes)}): 1.00 is one core, so this shows whether the thread "
                f"limit held for every runtime. Approximate: the kernel adds other threads' CPU "
                f"time at scheduler ticks, which matters for short samples (--quick).", "",
            *_table(["engine", *(f"batch {b:,}" for b in batches)], table)]


def _epoch_section(results: dict[str, Any]) -> list[str]:
    epoch = results.get("epoch")
    if not epoch:
        return []
    dtypes = list(dict.fromkeys(row["dtype"] for row in epoch["rows"]))
    engines = list(dict.fromkeys(row["engine"] for row in epoch["rows"]))
    table = []
    for engine in engines:
        cells = []
        for dtype in dtypes:
            match = [r for r in epoch["rows"] if r["engine"] == engine and r["dtype"] == dtype]
            cells.append(f"{seconds(match[0]['seconds'])} ({match[0]['ratio']:.2f}x)"
                         if match else "")
        table.append([label(engine), *cells])
    return ["## Epoch", "",
            f"Median seconds per epoch of {epoch['images']:,} images at batch "
            f"{epoch['batch_size']}, shuffled ({epoch['repeats']} epochs per engine, "
            f"interleaved); data: {epoch['data']}; {epoch['note']}.", "",
            *_table(["engine", *dtypes], table)]


def _memory_section(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory")
    if not memory:
        return []
    table = [[label(row["engine"]), mebibytes(row["peak_bytes"]),
              mebibytes(row["second_step_peak_bytes"]) if "second_step_peak_bytes" in row
              else "n/a", mebibytes(row["kept_bytes"]), f"{row['ratio']:.2f}x"]
             for row in memory["rows"]]
    left_out = ", ".join(label(name) for name in memory["left_out"])
    return ["## Memory", "",
            f"Full-batch step (batch {memory['batch']:,}, {memory['dtype']}): {memory['note']}; "
            f"the batch itself is {mebibytes(memory['input_bytes'])}. Second step: the peak "
            f"during the second step alone (a traced engine traces in its first). Kept: still "
            f"allocated after the second step (the engine's parameters and buffers)."
            + (f" Not measurable with tracemalloc: {left_out}." if left_out else ""), "",
            *_table(["engine", "peak", "second step", "kept", "peak vs hand NumPy"], table)]


def _graph_section(results: dict[str, Any]) -> list[str]:
    graph = results.get("graph")
    if not graph:
        return []
    table = [[f"{row['nodes']:,}", str(row["repeats"]), seconds(row["build_per_node"]),
              seconds(row["backward_per_node"]), seconds(row["per_node"]),
              seconds(row["free_per_node"]), f"{row['kept_bytes_per_node']:.0f} B",
              f"{row['peak_bytes_per_node']:.0f} B"] for row in graph["rows"]]
    return ["## Graph overhead", "",
            f"A chain of N nodes: {graph['op']}. Time per node (median over the runs), "
            "memory per node from a separate run under tracemalloc.", "",
            *_table(["nodes", "runs", "build", "backward", "build + backward", "free",
                     "kept", "peak"], table)]


def _ops_section(results: dict[str, Any]) -> list[str]:
    ops = results.get("ops")
    if not ops:
        return []
    lines = ["## Ops", "",
             "Every registered primitive (`tg.registry()`), median time per call. forward: "
             "`op.forward(*arrays)`; into: `op.forward_into(out, *arrays)`; call: "
             "`op(*tensors)` (forward + recording; overhead = call - forward); copy: a copy "
             "of each differentiable input (the least a rule writes); rule: "
             "`op.cotangents(...)`; pass: `y.backward(grad_out)` on the one-node graph. "
             f"Rules costing more than {SLOW_RULE:.0f}x max(forward, copy) are marked "
             f"**slow?**. Inputs {ops['dtype']}."]
    for size, title in (("medium", f"Medium inputs (about {ops['target_elements']:,} "
                                   "elements)"),
                        ("tiny", "Tiny inputs, as the sample draws them: per-call overhead")):
        table = []
        for row in ops["rows"]:
            if row["size"] != size:
                continue
            if "error" in row:
                table.append([row["op"], "failed: " + row["error"], *[""] * 9])
                continue
            ratio = f"{row['rule_ratio']:.1f}x"
            if size == "medium" and row["rule_ratio"] > SLOW_RULE:
                ratio += " **slow?**"
            table.append([row["op"], row["inputs"] + (f" ({row['params']})" if row["params"]
                                                      else ""),
                          seconds(row["forward"]), seconds(row.get("into")),
                          seconds(row["call"]), seconds(row["overhead"]) if row["overhead"] > 0
                          else "~0", seconds(row["copy"]), seconds(row["rule"]), ratio,
                          seconds(row.get("pass"))])
        lines += ["", f"**{title}**", ""]
        lines += _table(["op", "inputs", "forward", "into", "call", "overhead", "copy", "rule",
                         "rule / max(forward, copy)", "pass"], table)
    return lines


def _profile_section(results: dict[str, Any]) -> list[str]:
    profiles = results.get("profile")
    if not profiles:
        return []
    lines = ["## Profile", "",
             "cProfile of the tinygraph eager step (value_and_grad), top entries by own time "
             "per step (cProfile slows Python code, not NumPy's, so Python's share is "
             "overstated)."]
    for profile in profiles:
        table = [[entry["function"].replace("|", "\\|"), f"{entry['calls'] / profile['steps']:g}",
                  seconds(entry["tottime_per_step"]), seconds(entry["cumtime_per_step"])]
                 for entry in profile["top"]]
        lines += ["", f"**batch {profile['batch']}, {profile['dtype']}**: "
                      f"{seconds(profile['seconds_per_step'])} per step under the profiler, "
                      f"{profile['steps']} steps", ""]
        lines += _table(["function", "calls per step", "own time", "with callees"], table)
    return lines


# ---------------------------------------------------------------------------------------------
# The plot and the files
# ---------------------------------------------------------------------------------------------

def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Time per step against batch size, one line per engine, log-log; None without matplotlib."""
    matplotlib = optional_module("matplotlib")
    step = results.get("step")
    if matplotlib is None or not step or not step["rows"]:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = list(dict.fromkeys(row["dtype"] for row in step["rows"]))
    figure, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.8), squeeze=False,
                                sharey=True)
    for axis, dtype in zip(axes[0], dtypes):
        rows = [row for row in step["rows"] if row["dtype"] == dtype]
        for engine in dict.fromkeys(row["engine"] for row in rows):
            points = sorted((row["batch"], row["median"]) for row in rows
                            if row["engine"] == engine)
            style = {"linewidth": 2.5, "color": "black"} if engine == BASELINE else {}
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                      label=label(engine), **style)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("batch size")
        axis.set_title(f"training step, {dtype}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("median seconds per step")
    axes[0][-1].legend(fontsize=8)
    env = results["environment"]
    figure.suptitle(f"{env['cpu']}, {env['threads']} threads, {env['blas']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write(results: dict[str, Any], directory: Path, stem: str) -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.md``, ``<stem>.png`` and the profiles as text, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / f"{stem}.json", "markdown": directory / f"{stem}.md"}
    paths["json"].write_text(json.dumps(results, indent=1) + "\n")
    paths["markdown"].write_text(markdown(results))
    picture = plot(results, directory / f"{stem}.png")
    if picture is not None:
        paths["plot"] = picture
    else:
        log("  no plot: matplotlib is not installed" if optional_module("matplotlib") is None
            else "  no plot: no training-step results")
    if results.get("profile"):
        paths["profile"] = directory / f"{stem}.profile.txt"
        paths["profile"].write_text("\n".join(
            f"# {p['engine']}, batch {p['batch']}, {p['dtype']}, {p['steps']} steps\n{p['text']}"
            for p in results["profile"]))
    return paths
