"""python -m tinygraph.gradcheck: the table, exit status, --json, --op, --order, --import,
--model."""

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tinygraph as tg
from tinygraph.gradcheck import MODEL_GROUP, available_models
from tinygraph.gradcheck.__main__ import main
from tinygraph.primitive import REGISTRY

ROOT = Path(__file__).resolve().parents[1]

WRONG_OPS = textwrap.dedent("""
    import tinygraph as tg

    @tg.primitive(name="{name}")
    def cube(x):
        return x ** 3

    cube.defvjp(lambda grad_out, out, x: (grad_out * 2 * x ** 2,))  # d/dx x^3 is 3 x^2
""")

# Right at first order; x held constant in the rule loses the second derivative 6 x.
SECOND_WRONG_OPS = textwrap.dedent("""
    import tinygraph as tg

    @tg.primitive(name="{name}")
    def cube(x):
        return x ** 3

    cube.defvjp(lambda grad_out, out, x: (grad_out * 3 * tg.stop_gradient(x) ** 2,))
""")


def run_cli(*args: str, path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(path) if path else "", str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "tinygraph.gradcheck", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def restore_registry():
    """Ops that a test's --import registers are gone afterwards (other tests walk the registry)."""
    saved = dict(REGISTRY)
    modules = set(sys.modules)
    yield
    REGISTRY.clear()
    REGISTRY.update(saved)
    for name in set(sys.modules) - modules:
        if name.startswith("wrong_ops_"):
            del sys.modules[name]


def test_every_built_in_op_passes_at_orders_one_and_two_in_a_subprocess():
    result = run_cli("--examples", "3", "--seed", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["check", "kind", "order", "examples"]
    rows = [line.split() for line in lines[1:] if line.strip()][:-1]  # the last is the summary
    assert [(row[0], row[2]) for row in rows] == [
        (name, order) for name in sorted(tg.registry()) for order in ("1", "2")]
    assert all(row[1] == "op" and row[3] == "3" and row[-1] == "ok" for row in rows)
    checks = len(tg.registry()) * 2
    assert lines[-1].startswith(f"all {checks} checks passed: {len(tg.registry())} ops "
                                f"({3 * checks} examples); orders 1, 2; seed 4; ")


def test_a_wrong_rule_fails_with_the_op_the_seed_and_the_input(tmp_path):
    (tmp_path / "wrong_ops_sub.py").write_text(WRONG_OPS.format(name="cube_wrong"))
    result = run_cli("--import", "wrong_ops_sub", "--op", "cube_wrong", "--op", "exp",
                     "--examples", "5", "--seed", "9", "--json", str(tmp_path / "r.json"),
                     path=tmp_path)
    assert result.returncode == 1
    out = result.stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("cube_wrong ")]
    # a wrong first-order rule fails both rows: order 2 checks order 1 on the way
    assert [(row[2], row[3], row[-1]) for row in rows] == [("1", "1", "FAIL"), ("2", "1", "FAIL")]
    assert "FAIL op cube_wrong at order 1: example 0 failed (run seed 9, example seed" in out
    assert "FAIL op cube_wrong at order 2: example 0 failed (run seed 9, example seed" in out
    assert "gradient check failed for argument 0" in out and "arg 0: float64" in out
    assert "shrunk by hypothesis to:" in out
    for order in (1, 2):
        assert ("python -m tinygraph.gradcheck --import wrong_ops_sub --op cube_wrong --seed 9 "
                f"--order {order} --examples 1") in out
    assert out.splitlines()[-1].startswith(
        "2 of 4 checks FAILED (cube_wrong order 1, cube_wrong order 2): 2 ops (12 examples); "
        "orders 1, 2; seed 9;")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is False and data["orders"] == [1, 2]
    assert [(r["name"], r["order"], r["passed"]) for r in data["results"]] == [
        ("cube_wrong", 1, False), ("cube_wrong", 2, False), ("exp", 1, True), ("exp", 2, True)]
    failure = data["results"][0]["failure"]
    assert failure["example"] == 0 and f"example seed {failure['example_seed']}" in out
    assert failure["mismatch"]["path"] == "0" and failure["mismatch"]["seed"] == \
        failure["example_seed"]
    assert failure["shrunk_input"] and failure["error"].splitlines()[0] in out


def test_a_lost_second_derivative_fails_at_order_two_and_its_command_reproduces_it(tmp_path):
    (tmp_path / "wrong_ops_second.py").write_text(SECOND_WRONG_OPS.format(name="cube_second"))
    result = run_cli("--import", "wrong_ops_second", "--op", "cube_second", "--examples", "4",
                     "--seed", "2", "--json", str(tmp_path / "r.json"), path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("cube_second ")]
    assert [(row[2], row[3], row[-1]) for row in rows] == [("1", "4", "ok"), ("2", "1", "FAIL")]
    assert "FAIL op cube_second at order 2: example 0 failed (run seed 2, example seed" in out
    assert "op cube_second: order 2 (the gradient of <grad f, v>): gradient check failed" in out
    assert "1 of 2 checks FAILED (cube_second order 2)" in out.splitlines()[-1]
    data = json.loads((tmp_path / "r.json").read_text())
    assert [(r["order"], r["passed"]) for r in data["results"]] == [(1, True), (2, False)]
    failure = data["results"][1]["failure"]
    command = failure["reproduce"][0]
    assert command == ("python -m tinygraph.gradcheck --import wrong_ops_second --op cube_second "
                       "--seed 2 --order 2 --examples 1")
    assert "order=2" in failure["reproduce"][1] and command in out
    # the printed command runs that row again: the same example seed, the same numbers
    again = run_cli(*command.split()[3:], "--no-shrink", "--json", str(tmp_path / "again.json"),
                    path=tmp_path)
    assert again.returncode == 1
    rerun = json.loads((tmp_path / "again.json").read_text())["results"]
    assert [(r["name"], r["order"], r["examples"]) for r in rerun] == [("cube_second", 2, 1)]
    assert rerun[0]["failure"]["example_seed"] == failure["example_seed"]
    assert rerun[0]["failure"]["mismatch"] == failure["mismatch"]


def test_order_alone_gives_only_that_orders_rows(capsys):
    assert main(["--op", "exp", "--op", "sum", "--order", "2", "--examples", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:4] for line in lines[1:3]] == [["exp", "op", "2", "2"],
                                                         ["sum", "op", "2", "2"]]
    assert lines[3] == "" and lines[-1].startswith(
        "all 2 checks passed: 2 ops (4 examples); order 2; seed 0;")
    assert main(["--op", "exp", "--order", "2", "--order", "1", "--order", "2",
                 "--examples", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines[1:3]] == ["1", "2"]  # sorted, once each
    with pytest.raises(SystemExit) as info:
        main(["--order", "0"])
    assert info.value.code == 2
    assert "argument --order: must be at least 1, got 0" in capsys.readouterr().err


def test_without_hypothesis_the_failure_is_reported_unshrunk(tmp_path, monkeypatch, capsys,
                                                            restore_registry):
    (tmp_path / "wrong_ops_nohyp.py").write_text(WRONG_OPS.format(name="cube_nohyp"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # import hypothesis -> ImportError
    assert main(["--import", "wrong_ops_nohyp", "--op", "cube_nohyp", "--examples", "3",
                 "--order", "1"]) == 1
    out = capsys.readouterr().out
    assert "unshrunk: hypothesis is not installed" in out and "run seed 0" in out
    assert "--op cube_nohyp --seed 0 --order 1 --examples 1" in out


def test_json_has_the_table_and_is_written_in_place(tmp_path, capsys):
    target = tmp_path / "report.json"
    target.write_text("old")
    assert main(["--examples", "2", "--op", "add", "--op", "matmul", "--json",
                 str(target)]) == 0
    data = json.loads(target.read_text())
    assert data["passed"] is True and data["seed"] == 0 and data["examples"] == 2
    assert data["tolerances"] == {"atol": 1e-5, "rtol": 1e-4} and data["orders"] == [1, 2]
    assert [(row["name"], row["order"]) for row in data["results"]] == [
        ("add", 1), ("add", 2), ("matmul", 1), ("matmul", 2)]
    row = data["results"][3]
    assert set(row) >= {"kind", "order", "examples", "max_abs_error", "max_rel_error",
                        "worst_input_shape", "passed", "failure"}
    assert row["examples"] == 2 and row["passed"] and row["failure"] is None
    assert row["worst_input_shape"] in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temp file left


def test_json_into_a_missing_directory_is_refused_before_running(tmp_path, capsys):
    assert main(["--json", str(tmp_path / "nope" / "r.json")]) == 2
    assert "the directory does not exist" in capsys.readouterr().err


def test_op_narrows_and_an_unknown_op_lists_the_known_ones(capsys):
    assert main(["--op", "exp", "--op", "sum", "--examples", "2"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:3]] == ["exp", "exp"]
    assert [line.split()[0] for line in out.splitlines()[3:5]] == ["sum", "sum"]
    assert "all 4 checks passed: 2 ops (8 examples); orders 1, 2; seed 0;" in out
    assert main(["--op", "exp", "--op", "nonsense"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown op 'nonsense'; registered ops: abs, add, " in captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize("module, reason", [
    ("no_such_module_xyz", "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    ("wrong_ops_broken", "ZeroDivisionError: division by zero"),
])
def test_an_import_that_fails_is_one_clear_line(module, reason, tmp_path, monkeypatch, capsys,
                                               restore_registry):
    (tmp_path / "wrong_ops_broken.py").write_text("import tinygraph\n1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["--import", module]) == 2
    err = capsys.readouterr().err
    assert err == f"tinygraph-gradcheck: error: --import {module}: {reason}\n"


def test_an_import_that_fails_in_a_subprocess():
    result = run_cli("--import", "no_such_module_xyz")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "tinygraph-gradcheck: error: --import no_such_module_xyz: ModuleNotFoundError: "
        "No module named 'no_such_module_xyz'"]


def test_model_by_module_and_function_in_a_subprocess():
    result = run_cli("--model", "models.checks:mnist_mlp", "--seed", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:4] for line in lines[1:3]] == [
        ["models.checks:mnist_mlp", "model", "1", "1"], ["models.checks:mnist_mlp", "model", "2",
                                                         "1"]]
    assert all(line.split()[-1] == "ok" for line in lines[1:3])
    assert lines[-1].startswith("all 2 checks passed: 1 model; orders 1, 2; seed 3")


def fake_entry_points(**selection):
    assert selection == {"group": MODEL_GROUP}
    return [importlib.metadata.EntryPoint("mnist-mlp", "models.checks:mnist_mlp", MODEL_GROUP)]


def test_models_are_found_through_the_entry_point_group(monkeypatch, capsys):
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    assert available_models() == {"mnist-mlp": "models.checks:mnist_mlp"}
    assert main(["--model", "mnist-mlp", "--op", "exp", "--examples", "2", "--order", "1"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[:3] for line in out.splitlines()[1:3]] == [["exp", "op", "1"],
                                                                    ["mnist-mlp", "model", "1"]]
    assert out.splitlines()[-1].startswith("all 2 checks passed: 1 op (2 examples), 1 model; "
                                           "order 1; seed 0")
    assert main(["--model", "mnist-cnn"]) == 2
    assert capsys.readouterr().err == (
        "tinygraph-gradcheck: error: unknown model 'mnist-cnn'; available models "
        "(tinygraph.models entry points): mnist-mlp; or give module:function\n")


def test_a_model_that_does_not_load_is_a_clear_error(capsys):
    assert main(["--model", "models.checks:no_such_check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinygraph-gradcheck: error: model 'models.checks:no_such_check' "
                          "does not load: AttributeError")
