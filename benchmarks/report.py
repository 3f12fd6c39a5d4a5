"""The targets of issue 6, checked against a run, and the run written as JSON, markdown and PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.engines import BASELINE, ENGINES
from benchmarks.harness import log, optional_module

EAGER = ("tg_value_and_grad", "tg_backward")
TRACED = "tg_traced"
TORCH_NN = "torch_nn"
FULL_BATCH = 48_000
SLOW_RULE = 4.0  # a rule costing more than this times max(forward, copy) is flagged


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


def _ratio_target(results: dict[str, Any], engine: str, batch: int, limit: float,
                  text: str) -> dict[str, str]:
    row = _step_row(results, engine, batch)
    if row is None:
        return _target(text, "not measured in this run", None)
    return _target(text, f"{row['ratio']:.2f}x ({seconds(row['median'])} vs "
                         f"{seconds(row['median'] / row['ratio'])})", row["ratio"] <= limit)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, str]]:
    """Every target of issue 6, met, missed, or not measured (and why)."""
    targets = []
    for engine in EAGER:
        name = label(engine)
        for batch, limit in ((128, 1.15), (1, 2.0), (FULL_BATCH, 1.05)):
            targets.append(_ratio_target(results, engine, batch, limit,
                                         f"{name}, float32 step, batch {batch:,}: "
                                         f"<= {limit:.2f}x hand NumPy"))
    for engine in EAGER:
        text = f"{label(engine)} faster than torch.nn eager at batch <= 128 (float32)"
        pairs = []
        for batch in sorted({row["batch"] for row in results.get("step", {}).get("rows", [])}):
            ours, theirs = _step_row(results, engine, batch), _step_row(results, TORCH_NN, batch)
            if batch <= 128 and ours and theirs:
                pairs.append((batch, ours["median"], theirs["median"]))
        if not pairs:
            why = "torch not installed" if TORCH_NN in results.get("skipped_engines", {}) else \
                "not measured in this run"
            targets.append(_target(text, why, None))
            continue
        measured = "; ".join(f"batch {b}: {seconds(o)} vs {seconds(t)}" for b, o, t in pairs)
        targets.append(_target(text, measured, all(o < t for _, o, t in pairs)))
    memory = {row["engine"]: row for row in results.get("memory", {}).get("rows", [])}
    for engine in EAGER:
        text = f"{label(engine)}, peak memory of a full-batch float32 step <= 1.5x hand NumPy"
        if engine in memory:
            row = memory[engine]
            targets.append(_target(text, f"{row['ratio']:.2f}x ({mebibytes(row['peak_bytes'])} "
                                         f"vs {mebibytes(memory[BASELINE]['peak_bytes'])})",
                                   row["ratio"] <= 1.5))
        else:
            targets.append(_target(text, "not measured in this run", None))
    targets.append(_graph_target(results))
    for batch in (128, FULL_BATCH):
        text = f"traced step, float32, batch {batch:,}: <= 1.00x hand NumPy"
        if TRACED in results.get("skipped_engines", {}):
            targets.append(_target(text, results["skipped_engines"][TRACED], None))
        else:
            targets.append(_ratio_target(results, TRACED, batch, 1.0, text))
    return targets


def _graph_target(results: dict[str, Any]) -> dict[str, str]:
    text = "time per node flat from 1e3 to 1e6 nodes (max/min <= 1.5)"
    rows = [row for row in results.get("graph", {}).get("rows", []) if row["nodes"] >= 1_000]
    if len(rows) < 2:
        return _target(text, "not measured in this run", None)
    per_node = [row["per_node"] for row in rows]
    largest = max(row["nodes"] for row in rows)
    spread = max(per_node) / min(per_node)
    measured = (f"{spread:.2f}x ({seconds(min(per_node))} to {seconds(max(per_node))} per node, "
                f"1,000 to {largest:,} nodes)")
    status = "met" if spread <= 1.5 else "missed"
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
    wrong = [c for c in step["checks"] if not c["ok"]]
    lines += ["", "Correctness check before timing: " + (
        "every engine's loss, gradients and updated parameters agree with hand NumPy "
        "(relative error <= 2e-3 in float32, 1e-8 in float64)." if not wrong else
        "DISAGREEING (not timed): " + "; ".join(
            f"{label(c['engine'])} at batch {c['batch']} {c['dtype']}: "
            f"{c.get('error') or {k: c[k] for k in ('loss', 'grads', 'params')}}"
            for c in wrong))]
    return lines


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
    table = [[label(row["engine"]), mebibytes(row["peak_bytes"]), mebibytes(row["kept_bytes"]),
              f"{row['ratio']:.2f}x"] for row in memory["rows"]]
    left_out = ", ".join(label(name) for name in memory["left_out"])
    return ["## Memory", "",
            f"Full-batch step (batch {memory['batch']:,}, {memory['dtype']}): {memory['note']}; "
            f"the batch itself is {mebibytes(memory['input_bytes'])}. Kept: still allocated "
            f"after the second step (the engine's parameters and buffers)."
            + (f" Not measurable with tracemalloc: {left_out}." if left_out else ""), "",
            *_table(["engine", "peak", "kept", "peak vs hand NumPy"], table)]


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
