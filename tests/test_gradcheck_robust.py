"""Gradient checks that cannot fail silently: tolerances, exceptions in user code, --json paths,
a closed pipe (issue 12, item 3)."""

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import gradcheck
from tinygraph.gradcheck import __main__ as cli
from tinygraph.gradcheck.__main__ import main
from tinygraph.primitive import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--examples", "2", "--order", "1", "--no-shrink"]

# An op whose forward, rule or sample raises ``RAISE`` (a Python expression) when WHERE says so.
USER_OPS = textwrap.dedent("""
    import numpy as np

    import tinygraph as tg
    from tinygraph import gradcheck
    from tinygraph.sampling import default_sample

    WHERE, RAISE = {where!r}, {raise_!r}


    def fail():
        raise eval(RAISE)


    class Unprintable:
        def __repr__(self):
            fail()


    def sample(draw):
        if WHERE == "sample":
            fail()
        if WHERE == "sample-object":
            return (Unprintable(),), {{"axis": Unprintable()}}
        if WHERE == "sample-shape":
            return None
        if WHERE == "sample-params":
            return (default_sample(1)(draw)[0], "not a dict")
        return default_sample(1)(draw)


    @tg.primitive(name={name!r}, sample=sample)
    def user_op(x):
        if WHERE == "forward":
            fail()
        return x * 2.0


    def rule(grad_out, out, x):
        if WHERE == "rule":
            fail()
        return (grad_out * 2.0,)


    user_op.defvjp(rule)


    def model():
        if WHERE == "hook":
            fail()

        def loss(w):
            if WHERE == "loss":
                fail()
            return tg.sum(w * w)

        return gradcheck.ModelCheck(loss, (np.ones(3),))
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a module with a misbehaving op and model; its ops are unregistered afterwards."""
    saved = dict(REGISTRY)
    modules = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    count = [0]

    def write(where: str, raise_: str = "SystemExit(0)") -> str:
        count[0] += 1
        module = f"robust_ops_{count[0]}"
        (tmp_path / f"{module}.py").write_text(
            USER_OPS.format(where=where, raise_=raise_, name=f"user_op_{count[0]}"))
        return module

    yield write
    REGISTRY.clear()
    REGISTRY.update(saved)
    for name in set(sys.modules) - modules:
        if name.startswith("robust_ops_"):
            del sys.modules[name]


def run_cli(*args: str, path: Path | None = None, **popen: object) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(path) if path else "", str(ROOT), env.get("PYTHONPATH", "")) if p)
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen([sys.executable, "-m", "tinygraph.gradcheck", *args], cwd=ROOT,
                            env=env, **options)


def wrong_cube() -> tg.Primitive:
    """x^3 whose rule is 2 x^2: a third too small everywhere."""
    @tg.primitive(register=False)
    def cube(x):
        return x ** 3

    cube.defvjp(lambda grad_out, out, x: (grad_out * 2 * x ** 2,))
    return cube


# ---------------------------------------------------------------------------------------------
# Tolerances: finite and non-negative (eps positive), or a one-line ValueError naming them
# ---------------------------------------------------------------------------------------------

BAD_NUMBERS = [-1, -1e-12, math.nan, math.inf, -math.inf, True, "1e-5", None]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("name", ["atol", "rtol", "eps"])
def test_a_bad_tolerance_is_refused_instead_of_passing_a_wrong_rule(name, value):
    cube = wrong_cube()
    with pytest.raises(ValueError) as info:  # atol=-1 used to pass this 33%-wrong rule
        tg.check_grads(lambda x: tg.sum(cube(x)), np.array([1.0, 2.0]), **{name: value})
    message = str(info.value)
    assert "\n" not in message
    limit = "> 0" if name == "eps" else ">= 0"
    assert message == f"check_grads: {name} must be a finite number {limit}, not {value!r}"


@pytest.mark.parametrize("name, value, expected", [
    ("eps", 0.0, "eps must be a finite number > 0, not 0.0"),
    ("directions", 0, "directions must be an integer >= 1, not 0"),
    ("directions", 2.5, "directions must be an integer >= 1, not 2.5"),
    ("full_limit", -1, "full_limit must be an integer >= 0, not -1"),
])
def test_settings_that_would_check_nothing_are_refused(name, value, expected):
    with pytest.raises(ValueError, match=f"^check_grads: {expected}$"):
        tg.check_grads(lambda x: tg.sum(x), np.ones(2), **{name: value})


def test_zero_tolerances_and_numpy_numbers_are_accepted():
    cube = wrong_cube()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero tolerance
        tg.check_grads(lambda x: tg.sum(x * x), np.array([1.0, 2.0]), atol=np.float32(0),
                       rtol=np.float64(1e-4), directions=np.int64(1))
        with pytest.raises(tg.GradientCheckError, match="allowed: atol 0 \\+ rtol 0 "):
            tg.check_grads(lambda x: tg.sum(cube(x)), np.array([1.0, 2.0]), atol=0, rtol=0)


def test_check_op_and_the_suite_refuse_bad_tolerances_before_running():
    cube = wrong_cube()
    with pytest.raises(ValueError, match="^check_grads: atol must be"):
        tg.check_op(cube, (np.array([1.0, 2.0]),), atol=-1)
    # before: every row FAILed with the ValueError, as if the rules were wrong
    for call in (lambda: gradcheck.check_op_examples(cube, 2, rtol=math.nan),
                 lambda: gradcheck.run_suite(["exp"], examples=2, rtol=math.nan),
                 lambda: gradcheck.check_model("m", gradcheck.ModelCheck(
                     lambda w: tg.sum(w), (np.ones(2),)), rtol=math.nan)):
        with pytest.raises(gradcheck.SuiteError, match=r"^rtol must be a finite number >= 0, "
                                                       r"not nan$"):
            call()
    with pytest.raises(gradcheck.SuiteError, match="^unknown option 'atl'; the options are "):
        gradcheck.run_suite(["exp"], examples=2, atl=1e-3)


def test_a_model_hook_with_a_bad_tolerance_is_a_suite_error():
    check = gradcheck.ModelCheck(lambda w: tg.sum(w), (np.ones(2),), options={"atol": -1})
    with pytest.raises(gradcheck.SuiteError, match="^model check: atol must be"):
        gradcheck.model_check(check)


@pytest.mark.parametrize("flag", ["--atol", "--rtol"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "abc"])
def test_the_command_refuses_a_bad_tolerance(flag, value, capsys, monkeypatch):
    monkeypatch.setattr(cli, "run_suite", lambda *a, **k: pytest.fail("the suite ran"))
    with pytest.raises(SystemExit) as info:
        main([f"{flag}={value}", "--op", "exp"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"tinygraph-gradcheck: error: argument {flag}: must be a "
                                    f"finite number >= 0, not {value!r}")


@pytest.mark.parametrize("flag, value, expected", [
    ("--seed", "x", "must be an integer, got 'x'"),
    ("--seed", "-1", "must be at least 0, got -1"),
    ("--examples", "1.5", "must be an integer, got '1.5'"),
    ("--order", "two", "must be an integer, got 'two'"),
])
def test_integer_flags_say_what_they_need(flag, value, expected, capsys):
    with pytest.raises(SystemExit) as info:  # was "invalid _seed value: 'x'"
        main([flag, value])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"tinygraph-gradcheck: error: argument {flag}: {expected}")


# ---------------------------------------------------------------------------------------------
# Exceptions in a user's rule, forward, sample or model: a failed row, or an interruption
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["rule", "forward", "sample"])
@pytest.mark.parametrize("raise_, shown", [
    ("SystemExit(0)", "SystemExit: 0"),
    ("SystemExit(3)", "SystemExit: 3"),
    ("SystemExit()", "SystemExit"),
    ("GeneratorExit()", "GeneratorExit"),
    ("ValueError('no way')", "no way"),
])
def test_an_exception_in_user_code_is_a_failed_row(where, raise_, shown, user_module, capsys):
    module = user_module(where, raise_)
    op = f"user_op_{module.rsplit('_', 1)[1]}"
    assert main(["--import", module, "--op", op, *FAST]) == 1
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith(op))
    assert row[1:4] == ["op", "1", "1"] and row[-1] == "FAIL"
    assert f"FAIL op {op} at order 1: example 0 failed" in out
    assert shown in out and "SystemExit: \n" not in out
    assert out.splitlines()[-1].startswith(f"1 of 1 checks FAILED ({op} order 1)")


@pytest.mark.parametrize("where, expected", [
    ("sample-shape", "the sample function returned None, not (args, params)"),
    ("sample-params", "the sample function returned params 'not a dict', not a dict"),
])
def test_a_sample_of_the_wrong_shape_is_a_failed_row(where, expected, user_module, capsys):
    module = user_module(where)
    op = f"user_op_{module.rsplit('_', 1)[1]}"
    assert main(["--import", module, "--op", op, *FAST]) == 1
    assert expected in capsys.readouterr().out


def test_an_input_whose_repr_exits_is_reported_not_fatal(user_module, capsys):
    module = user_module("sample-object", "SystemExit(0)")
    op = f"user_op_{module.rsplit('_', 1)[1]}"
    assert main(["--import", module, "--op", op, *FAST]) == 1
    out = capsys.readouterr().out
    assert "arg 0: <Unprintable: its repr() raised SystemExit>" in out
    assert "params: axis=<Unprintable: its repr() raised SystemExit>" in out


def test_a_system_exit_is_shrunk_like_any_failure(user_module, capsys):
    module = user_module("rule", "SystemExit(0)")
    op = f"user_op_{module.rsplit('_', 1)[1]}"
    assert main(["--import", module, "--op", op, "--examples", "2", "--order", "2"]) == 1
    out = capsys.readouterr().out
    assert "shrunk by hypothesis to:" in out and "SystemExit: 0" in out


@pytest.mark.parametrize("where, expected", [
    ("loss", 1),   # a failed model row
    ("hook", 2),   # the check cannot be built: a bad request, before anything runs
])
def test_a_system_exit_in_a_model_is_not_success(where, expected, user_module, capsys):
    module = user_module(where)
    assert main(["--model", f"{module}:model", "--order", "1"]) == expected
    captured = capsys.readouterr()
    assert "SystemExit: 0" in (captured.out if expected == 1 else captured.err)
    if expected == 2:
        assert captured.out == "" and captured.err == (
            f"tinygraph-gradcheck: error: model '{module}:model': the check function raised "
            "SystemExit: 0\n")


def test_a_model_module_that_exits_on_import_is_a_bad_request(tmp_path, monkeypatch, capsys):
    (tmp_path / "robust_ops_exits.py").write_text("raise SystemExit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["--model", "robust_ops_exits:model"]) == 2
    assert capsys.readouterr().err == ("tinygraph-gradcheck: error: model 'robust_ops_exits:model' "
                                       "does not load: SystemExit: 0\n")


@pytest.mark.parametrize("where", ["rule", "forward", "sample", "loss"])
def test_a_keyboard_interrupt_stops_the_run_with_status_130(where, user_module, tmp_path,
                                                            capsys):
    module = user_module(where, "KeyboardInterrupt")
    target = tmp_path / "r.json"
    what = (["--model", f"{module}:model"] if where == "loss"
            else ["--op", f"user_op_{module.rsplit('_', 1)[1]}"])
    assert main(["--import", module, *what, *FAST, "--json", str(target)]) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"tinygraph-gradcheck: interrupted; {target} not written\n"
    assert not target.exists() and list(tmp_path.glob("*.tmp")) == []


def test_the_library_lets_a_keyboard_interrupt_through(user_module):
    import importlib

    module = importlib.import_module(user_module("rule", "KeyboardInterrupt"))
    with pytest.raises(KeyboardInterrupt):
        gradcheck.check_op_examples(module.user_op, 2, shrink=False)


def test_system_exit_and_keyboard_interrupt_in_a_subprocess(tmp_path):
    (tmp_path / "robust_ops_exit.py").write_text(
        USER_OPS.format(where="rule", raise_="SystemExit(0)", name="exits"))
    (tmp_path / "robust_ops_kbd.py").write_text(
        USER_OPS.format(where="sample", raise_="KeyboardInterrupt", name="interrupts"))
    exits = run_cli("--import", "robust_ops_exit", "--op", "exits", *FAST, path=tmp_path)
    interrupts = run_cli("--import", "robust_ops_kbd", "--op", "interrupts", *FAST,
                         path=tmp_path)
    out, err = exits.communicate(timeout=60)
    assert exits.returncode == 1, out + err  # was 0 with no output at all
    assert "SystemExit: 0" in out and out.splitlines()[-1].startswith("1 of 1 checks FAILED")
    out, err = interrupts.communicate(timeout=60)
    assert (interrupts.returncode, out, err) == (130, "", "tinygraph-gradcheck: interrupted\n")


# ---------------------------------------------------------------------------------------------
# --json: the path checked before the run, the file written atomically
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def no_run(monkeypatch):
    monkeypatch.setattr(cli, "run_suite", lambda *a, **k: pytest.fail("the suite ran"))


def refused(args: list[str], capsys) -> str:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    return captured.err


def test_json_to_a_directory_is_refused_before_the_run(tmp_path, no_run, capsys):
    err = refused(["--json", str(tmp_path)], capsys)
    assert err == f"tinygraph-gradcheck: error: --json {tmp_path}: is a directory\n"
    err = refused(["--json", str(tmp_path / "new") + os.sep], capsys)
    assert err.endswith(": ends with a path separator; give a file name\n")


def test_json_into_a_missing_folder_or_under_a_file_is_refused(tmp_path, no_run, capsys):
    err = refused(["--json", str(tmp_path / "nope" / "r.json")], capsys)
    assert err.endswith(f": the directory does not exist ({tmp_path / 'nope'})\n")
    (tmp_path / "file").write_text("")
    err = refused(["--json", str(tmp_path / "file" / "r.json")], capsys)
    assert err.endswith(f": {tmp_path / 'file'} is not a directory\n")
    assert refused(["--json", ""], capsys).endswith("--json '': an empty path\n")


def test_json_to_something_other_than_a_file_is_refused(no_run, capsys):
    if not os.path.exists(os.devnull):
        pytest.skip(f"no {os.devnull} here")
    err = refused(["--json", os.devnull], capsys)
    assert err.endswith(": is not a regular file (the report replaces a file atomically)\n")


def can_create_files_in(directory: Path) -> bool:
    try:
        (directory / "tinygraph-probe").touch()
    except OSError:
        return False
    (directory / "tinygraph-probe").unlink()
    return True


@pytest.fixture
def unwritable_directory(tmp_path):
    """A directory this process cannot create files in, or skip saying why there is none."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    # root ignores the mode bits; a read-only sysfs stops root too
    found = next((d for d in (locked, Path("/sys"))
                  if d.is_dir() and not can_create_files_in(d)), None)
    yield found
    locked.chmod(0o755)


def test_json_to_an_unwritable_place_is_refused_before_the_run(unwritable_directory, no_run,
                                                              capsys):
    if unwritable_directory is None:
        pytest.skip("this process may write in a directory of mode 0555 and /sys alike")
    target = unwritable_directory / "r.json"
    err = refused(["--json", str(target)], capsys)
    assert err.startswith(f"tinygraph-gradcheck: error: --json {target}: "
                          f"cannot create a file in {unwritable_directory}: ")


def test_json_that_cannot_be_written_after_the_run_still_prints_the_report(tmp_path, monkeypatch,
                                                                          capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    real = cli.run_suite

    def run_then_remove_the_folder(*args, **kwargs):
        report = real(*args, **kwargs)
        folder.rmdir()
        return report

    monkeypatch.setattr(cli, "run_suite", run_then_remove_the_folder)
    assert main(["--op", "exp", *FAST, "--json", str(folder / "r.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].startswith("1 check passed: 1 op")
    assert captured.err.startswith(f"tinygraph-gradcheck: error: --json {folder / 'r.json'}: "
                                   "could not write the report: FileNotFoundError")
    assert len(captured.err.splitlines()) == 1


def test_json_through_a_symlink_updates_its_target_atomically(tmp_path, capsys):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert main(["--op", "exp", *FAST, "--json", str(link)]) == 0
    assert link.is_symlink() and json.loads(target.read_text())["passed"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


def test_json_is_written_with_write_atomic(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "write_atomic", lambda path, data: calls.append((path, data)))
    assert main(["--op", "exp", *FAST, "--json", str(tmp_path / "r.json")]) == 0
    assert [path for path, _ in calls] == [os.path.realpath(tmp_path / "r.json")]
    assert json.loads(calls[0][1])["passed"] is True


# ---------------------------------------------------------------------------------------------
# A closed pipe: quiet, status 141 (128 + SIGPIPE, as cat or grep in `| head`)
# ---------------------------------------------------------------------------------------------

class ClosedPipe:
    """A stdout whose reader has gone: every write raises BrokenPipeError."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_ends_quietly_with_141_and_the_json_is_still_written(tmp_path,
                                                                            monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    target = tmp_path / "r.json"
    assert main(["--op", "exp", *FAST, "--json", str(target)]) == 141
    assert capsys.readouterr().err == ""
    assert json.loads(target.read_text())["passed"] is True


def test_a_closed_pipe_in_a_subprocess_is_quiet():
    process = run_cli("--op", "exp", *FAST)
    process.stdout.close()  # the reader goes away before anything is printed, as `| head -0`
    err = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == 141
    assert err == ""  # was a BrokenPipeError traceback
