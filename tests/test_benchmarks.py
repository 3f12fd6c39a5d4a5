"""The benchmark suite runs and measures the right thing. Nothing here asserts a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygraph as tg
from benchmarks import engines, harness
from benchmarks.__main__ import QUICK, main
from benchmarks.harness import configure_xla
from benchmarks.ops import OpsPlan, run_ops
from benchmarks.report import evaluate_targets
from benchmarks.step import check_engines

ROOT = Path(__file__).resolve().parents[1]
PEER_ENGINES = [("mygrad", "mygrad"), ("autograd", "autograd"), ("jax", "jax_jit")]
PEERS = {engine for _, engine in PEER_ENGINES}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One ``--quick`` run, in process, shared by the tests that read its files."""
    out = tmp_path_factory.mktemp("benchmarks")
    with pytest.MonkeyPatch.context() as patch:  # the run sets XLA's threads for the process
        patch.delenv("PJRT_NPROC", raising=False)
        patch.setattr(harness, "_JAX_OPTIONS", {})
        assert main(["--quick", "--out", str(out), "--machine", "test"]) == 0
    (path,) = out.glob("*.json")
    return json.loads(path.read_text()), out


def test_quick_run_times_every_engine_batch_and_dtype(quick_run: tuple[dict, Path]) -> None:
    results, _ = quick_run
    available, skipped = engines.available_engines()
    assert set(results["engines"]) == set(available)
    assert results["skipped_engines"] == skipped
    rows = results["step"]["rows"]
    expected = {(name, batch, dtype) for name in available for batch in QUICK.step.batches
                for dtype in ("float32", "float64")}
    assert {(r["engine"], r["batch"], r["dtype"]) for r in rows} == expected
    assert all(r["median"] > 0 and r["ratio"] > 0 for r in rows)
    assert all(r["ratio"] == 1.0 for r in rows if r["engine"] == engines.BASELINE)
    assert all(check["ok"] for check in results["step"]["checks"]), results["step"]["checks"]


def test_quick_run_has_every_other_benchmark(quick_run: tuple[dict, Path]) -> None:
    results, _ = quick_run
    available, _ = engines.available_engines()
    assert {r["engine"] for r in results["epoch"]["rows"]} == set(available)
    assert engines.BASELINE in {r["engine"] for r in results["memory"]["rows"]}
    assert [r["nodes"] for r in results["graph"]["rows"]] == list(QUICK.graph.sizes)
    with_rules = {name for name, op in tg.registry().items() if op.has_rule}
    assert {r["op"] for r in results["ops"]["rows"]} == with_rules
    assert not [r for r in results["ops"]["rows"] if "error" in r]
    assert [p["batch"] for p in results["profile"]] == [1, 128]
    assert {"cpu", "blas", "threads", "numpy"} <= set(results["environment"])
    statuses = {t["status"].split(" ")[0] for t in results["targets"]}
    assert statuses <= {"met", "missed", "not"}, statuses


def test_markdown_and_plot_are_written(quick_run: tuple[dict, Path]) -> None:
    results, out = quick_run
    (markdown,) = out.glob("*.md")
    text = markdown.read_text()
    assert "## Targets" in text and "## Training step" in text and "hand-written NumPy" in text
    assert all(target["target"] in text for target in results["targets"])
    pytest.importorskip("matplotlib")
    (picture,) = out.glob("*.png")
    assert picture.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("batch", [1, 7, 200])
def test_hand_numpy_gradients_equal_tinygraph(batch: int) -> None:
    """The baseline is right: its loss, gradients and update are tinygraph's, in float64."""
    params = engines.init_params("float64")
    x, y = engines.random_batch(batch, "float64")
    hand = engines.HandNumpy(params)
    hand.step(hand.prepare(x, y))
    value, grads = tg.value_and_grad(engines.loss)(params, x, y)
    assert hand.last_loss() == pytest.approx(float(value), rel=1e-12)
    for key in engines.PARAM_NAMES:
        np.testing.assert_allclose(hand.last_grads()[key], grads[key], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(hand.params()[key],
                                   params[key] - engines.LEARNING_RATE * grads[key],
                                   rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hand_numpy_is_stable_for_saturated_units(dtype: str) -> None:
    """Huge pre-activations and logits: no overflow, and still tinygraph's gradients."""
    params = engines.init_params(dtype)
    params["W2"] = params["W2"] * 1e3
    x, y = engines.random_batch(16, dtype)
    x *= 1e4
    hand = engines.HandNumpy(params)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow is fine
        hand.step(hand.prepare(x, y))
    value, grads = tg.value_and_grad(engines.loss)(params, x, y)
    assert hand.last_loss() == pytest.approx(float(value), rel=1e-5)
    hand_grads = hand.last_grads()
    assert all(np.isfinite(hand_grads[key]).all() for key in engines.PARAM_NAMES)
    if dtype == "float64":  # float32 has no digits left for h (1 - h) at saturation
        for key in engines.PARAM_NAMES:
            np.testing.assert_allclose(hand_grads[key], grads[key], rtol=1e-8,
                                       atol=1e-10 * np.abs(grads[key]).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_engine_agrees_with_the_baseline(dtype: str) -> None:
    available, _ = engines.available_engines()
    x, y = engines.random_batch(33, dtype)
    checks = check_engines(available, engines.init_params(dtype), x, y)
    assert set(checks) == set(available)
    assert all(check["ok"] for check in checks.values()), checks


def test_a_wrong_engine_is_caught_before_timing() -> None:
    class Wrong(engines.HandNumpy):
        name = "wrong"

        def last_grads(self) -> dict[str, np.ndarray]:
            grads = super().last_grads()
            return {**grads, "b2": grads["b2"] * 1.01}

    x, y = engines.random_batch(8, "float64")
    checks = check_engines({engines.BASELINE: engines.HandNumpy, "wrong": Wrong},
                           engines.init_params("float64"), x, y)
    assert checks[engines.BASELINE]["ok"] and not checks["wrong"]["ok"]


def test_a_new_op_is_benchmarked_without_being_listed() -> None:
    cube = tg.primitive(lambda x: x ** 3, name="bench_cube", register=False)
    cube.defvjp(lambda grad_out, out, x: (grad_out * 3 * x ** 2,))
    results = run_ops(OpsPlan(samples=1, min_time=0.0), ops={"bench_cube": cube})
    sizes = {row["size"]: row for row in results["rows"]}
    assert set(sizes) == {"tiny", "medium"}
    assert sizes["medium"]["elements"] > sizes["tiny"]["elements"]
    assert all(row["forward"] > 0 and row["rule"] > 0 and row["pass"] > 0
               for row in sizes.values())


def test_missing_engines_are_skipped_and_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(tg, "trace", raising=False)
    monkeypatch.setattr(engines, "torch_module", lambda: None)
    monkeypatch.setattr(engines, "jax_module", lambda: None)
    monkeypatch.setattr(engines, "optional_module", lambda name: None)
    available, skipped = engines.available_engines()
    assert set(skipped) == {"tg_traced", "tg_compiled", "torch_nn", "torch_raw", *PEERS}
    assert set(available) == {engines.BASELINE, "tg_value_and_grad", "tg_backward"}
    assert skipped["jax_jit"] == "JAX is not installed"
    targets = evaluate_targets({"skipped_engines": skipped})
    compiled = [t for t in targets if t["target"].startswith("compiled step")]
    assert len(compiled) == 7  # five batches, ahead of JAX, memory
    assert all(t["status"] == "not measured" for t in targets)
    assert all("no tg.trace" in t["measured"] for t in compiled if "JAX" not in t["target"])
    for rival, reason in (("torch.nn", "PyTorch"), ("MyGrad", "MyGrad"), ("JAX", "JAX")):
        rows = [t for t in targets if rival in t["target"]]
        assert rows and all(t["measured"] == f"{reason} is not installed" for t in rows)


def test_runs_without_any_optional_peer(tmp_path: Path) -> None:
    """PyTorch, MyGrad, autograd and JAX stay optional: with their imports failing, it runs."""
    script = ("import sys\n"
              "for name in ('torch', 'mygrad', 'autograd', 'jax'): sys.modules[name] = None\n"
              "from benchmarks.__main__ import main\n"
              f"main(['--quick', '--only', 'step', '--out', {str(tmp_path)!r}])\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (path,) = tmp_path.glob("*.json")
    results = json.loads(path.read_text())
    assert results["environment"]["torch"] is None
    assert {"torch_nn", "torch_raw", *PEERS} <= set(results["skipped_engines"])
    assert {r["engine"] for r in results["step"]["rows"]} >= {engines.BASELINE,
                                                              "tg_value_and_grad"}
    text = next(tmp_path.glob("*.md")).read_text()
    assert "Skipped engine JAX jit: JAX is not installed." in text


@pytest.mark.parametrize(("module", "engine"), PEER_ENGINES)
def test_installed_peers_are_timed_and_agree(quick_run: tuple[dict, Path], module: str,
                                             engine: str) -> None:
    """Each peer that is installed runs in the quick run: checked, then timed at every batch."""
    pytest.importorskip(module)
    results, _ = quick_run
    assert engine in results["engines"] and engine not in results["skipped_engines"]
    checks = [c for c in results["step"]["checks"] if c["engine"] == engine]
    assert len(checks) == len(QUICK.step.batches) * 2 and all(c["ok"] for c in checks), checks
    rows = {(r["batch"], r["dtype"]) for r in results["step"]["rows"] if r["engine"] == engine}
    assert rows == {(b, d) for b in QUICK.step.batches for d in ("float32", "float64")}


def test_jax_compiles_before_the_timed_steps() -> None:
    """``prepare`` compiles a new batch shape; the step itself then finds it compiled."""
    pytest.importorskip("jax")
    for dtype in ("float32", "float64"):
        engine = engines.JaxJit(engines.init_params(dtype))
        jitted = engines._jax_step(engine.lr)
        for size in (3, 5):
            batch = engine.prepare(*engines.random_batch(size, dtype))
            compiled = jitted._cache_size()
            engine.step(batch)
            engine.step(batch)
            assert jitted._cache_size() == compiled
            assert {v.dtype.name for v in engine.params().values()} == {dtype}


def test_xla_threads_follow_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """PJRT_NPROC sizes XLA's pools; one thread also runs JAX computations inline."""
    monkeypatch.setenv("PJRT_NPROC", "7")
    monkeypatch.setattr(harness, "_JAX_OPTIONS", {})
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    one = configure_xla(1)
    assert one["applied"] and os.environ["PJRT_NPROC"] == "1" and not one["async_dispatch"]
    assert harness._JAX_OPTIONS == {"jax_cpu_enable_async_dispatch": False}
    monkeypatch.setitem(sys.modules, "jax", object())  # JAX imported already: said, not hidden
    two = configure_xla(2)
    assert not two["applied"] and "earlier" in two["note"]
    assert os.environ["PJRT_NPROC"] == "2" and two["async_dispatch"]


def test_an_engine_in_the_wrong_dtype_is_caught() -> None:
    """float32 rows computed in float64 would pass the tolerance: the check refuses them."""
    class Wide(engines.HandNumpy):
        name = "wide"

        def params(self) -> dict[str, np.ndarray]:
            return {k: v.astype(np.float64) for k, v in super().params().items()}

    x, y = engines.random_batch(4, "float32")
    checks = check_engines({engines.BASELINE: engines.HandNumpy, "wide": Wide},
                           engines.init_params("float32"), x, y)
    assert checks[engines.BASELINE]["ok"] and not checks["wide"]["ok"]
    assert "float64" in checks["wide"]["error"]


def test_targets_read_a_run() -> None:
    """The compiled-step targets: thresholds, comparisons with peers, reasons for gaps."""
    def row(engine: str, batch: int, median: float) -> dict:
        return {"engine": engine, "batch": batch, "dtype": "float32", "median": median,
                "ratio": median / 1.0}

    step_rows = [row(engines.BASELINE, b, 1.0) for b in (1, 32, 128, 512)]
    step_rows += [row("tg_compiled", b, 0.99) for b in (1, 32, 128)]
    step_rows += [row("tg_compiled", 512, 1.01), row("tg_value_and_grad", 1, 1.25),
                  row("tg_value_and_grad", 128, 1.2)]
    step_rows += [row("jax_jit", b, 1.0) for b in (32, 128, 512)]
    step_rows += [row("mygrad", b, 2.0) for b in (1, 32, 128, 512)]
    results = {"skipped_engines": {"torch_nn": "PyTorch is not installed"}, "quick": False,
               "step": {"rows": step_rows, "checks": [],
                        "plan": {"batches": [1, 32, 128, 512]}},
               "graph": {"rows": [{"nodes": n, "per_node": t} for n, t in
                                  ((1_000, 1.0), (1_000_000, 1.25))]}}
    targets = {t["target"]: t for t in evaluate_targets(results)}

    def status(start: str) -> str:
        (match,) = [t for text, t in targets.items() if text.startswith(start)]
        return match["status"]

    compiled = "compiled step (tinygraph compiled, whole step)"
    assert status(f"{compiled}, float32, batch 1:") == "met"
    assert status(f"{compiled}, float32, batch 512:") == "missed"
    assert status(f"{compiled}, float32, batch 48,000:") == "not measured"
    assert targets[f"{compiled}, float32, batch 48,000: <= 1.00x hand NumPy"]["measured"] == \
        "batch 48,000 is not in this run"
    assert status(f"{compiled} faster than JAX jit at batch 32-512") == "missed"  # 512: 1.01
    assert status("tinygraph eager, value_and_grad, float32, batch 1: <= 1.30x") == "met"
    assert status("tinygraph eager, value_and_grad, float32, batch 128: <= 1.15x") == "missed"
    assert status("tinygraph eager, value_and_grad faster than MyGrad") == \
        "met (batch 32, 512 not measured)"
    assert status("tinygraph eager, Tensor.backward faster than MyGrad") == "not measured"
    assert status("time per node flat from 1e3 to 1e6 nodes (max/min <= 1.3)") == "met"
    assert status(f"{compiled}, peak memory") == "not measured"
