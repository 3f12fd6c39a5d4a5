"""numerical_grad and check_grads: right rules pass, wrong ones are caught and explained."""

import dataclasses
import re
import sys
import time

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import gradcheck


def make_cube(wrong: bool) -> tg.Primitive:
    @tg.primitive(name="cube_wrong" if wrong else "cube", register=False)
    def cube(x):
        return x ** 3

    @cube.defvjp
    def cube_vjp(grad_out, out, x):
        return (grad_out * (2 if wrong else 3) * x ** 2,)

    return cube


def test_numerical_grad_has_grads_structure():
    f = lambda p, x: tg.sum(p["a"] * x) + p["b"][0] ** 2  # noqa: E731
    params = {"a": np.array([1.0, 2.0]), "b": [np.array(3.0)]}
    x = np.array([0.5, -1.0])
    numeric = tg.numerical_grad(f, params, x)
    analytic = tg.grad(f)(params, x)
    assert set(numeric) == {"a", "b"} and isinstance(numeric["b"], list)
    assert np.allclose(numeric["a"], analytic["a"]) and np.allclose(numeric["b"][0], 6.0)
    both = tg.numerical_grad(f, params, x, argnums=(0, 1))
    assert isinstance(both, tuple) and np.allclose(both[1], [1.0, 2.0])
    assert params["a"].tolist() == [1.0, 2.0]  # inputs not modified


@pytest.mark.parametrize("mode", ["full", "directional"])
def test_right_rule_passes_wrong_rule_is_caught(mode):
    x = np.array([0.5, -1.5, 2.0])
    report = tg.check_grads(lambda x: tg.sum(make_cube(False)(x)), x, mode=mode)
    assert report.max_abs_error < 1e-6 and report.checks[0].mode == mode
    with pytest.raises(tg.GradientCheckError) as info:
        tg.check_grads(lambda x: tg.sum(make_cube(True)(x)), x, mode=mode)
    message = str(info.value)
    assert "argument 0" in message and "analytic" in message and "numerical" in message
    assert "atol" in message and "rtol" in message
    if mode == "full":
        assert "element (2,)" in message  # the largest error is where x**2 is largest
        assert "analytic 8.000000000e+00, numerical 1.200000000e+01" in message
    else:
        assert "seed 0" in message and "direction" in message
    assert isinstance(info.value, AssertionError)


def test_check_grads_names_the_pytree_path():
    def f(p):
        return tg.sum(p["good"] * 2) + tg.sum(make_cube(True)(p["layers"][1]))

    params = {"good": np.ones(2), "layers": [np.ones(1), np.array([1.0, 2.0])]}
    with pytest.raises(tg.GradientCheckError, match=r"argument 0\['layers'\]\[1\]"):
        tg.check_grads(f, params)


def test_check_grads_skips_integer_labels_and_reports():
    rng = np.random.default_rng(0)
    w, x, y = rng.normal(size=(4, 3)), rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    report = tg.check_grads(lambda w, x, y: tg.softmax_cross_entropy(x @ w, y), w, x, y)
    assert [c.path for c in report.checks] == ["0", "1"]
    assert "max abs err" in str(report)


def test_check_grads_catches_nan_gradients():
    @tg.primitive(register=False)
    def broken(x):
        return x * 2

    broken.defvjp(lambda grad_out, out, x: (grad_out * np.nan,))
    with pytest.raises(tg.GradientCheckError):
        tg.check_grads(lambda x: tg.sum(broken(x)), np.ones(2))


def test_directional_mode_is_chosen_for_big_inputs_and_checks_the_network():
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(0, 0.1, (784, 64)), "b1": np.zeros(64),
              "W2": rng.normal(0, 0.1, (64, 10)), "b2": np.zeros(10)}

    def loss(params, x, y):
        h = tg.sigmoid(x @ params["W1"] + params["b1"])
        return tg.softmax_cross_entropy(h @ params["W2"] + params["b2"], y)

    x, y = rng.random((32, 784)), rng.integers(0, 10, 32)
    report = tg.check_grads(loss, params, x, y)
    assert {c.mode for c in report.checks} == {"directional"}
    assert len(report.checks) == 5


def test_check_grads_argument_errors():
    with pytest.raises(ValueError, match="mode must be"):
        tg.check_grads(lambda x: tg.sum(x), np.ones(2), mode="fast")
    with pytest.raises(ValueError, match="no argument has floating-point leaves"):
        tg.check_grads(lambda y: tg.sum(y), np.arange(3))


# ---------------------------------------------------------------------------------------------
# Failure reports, the two modes, the registry-walking suite and model checks
# ---------------------------------------------------------------------------------------------

def make_mul(wrong: bool) -> tg.Primitive:
    """a * b whose rule for b is 1% off when ``wrong`` (small enough to need a real check)."""
    @tg.primitive(name="mul_wrong" if wrong else "mul_right", register=False)
    def mul(a, b):
        return a * b

    mul.defvjp(lambda grad_out, out, a, b: grad_out * b,
               lambda grad_out, out, a, b: grad_out * a * (1.01 if wrong else 1.0))
    return mul


@pytest.mark.parametrize("mode", ["full", "directional"])
def test_every_message_names_the_seed_and_carries_the_numbers(mode):
    with pytest.raises(tg.GradientCheckError) as info:
        tg.check_op(make_cube(True), (np.array([0.5, -1.5, 2.0]),), seed=7, mode=mode)
    assert "op cube_wrong: " in str(info.value) and "seed 7" in str(info.value)
    mismatch = info.value.mismatch
    assert mismatch.mode == mode and mismatch.seed == 7 and mismatch.path == "0"
    assert mismatch.abs_error == pytest.approx(abs(mismatch.analytic - mismatch.numerical))
    assert (mismatch.atol, mismatch.rtol) == (1e-5, 1e-4)


def test_full_and_directional_agree_on_every_registered_op():
    for name, op in sorted(tg.registry().items()):
        for example in range(3):
            args, params = op.sample(tg.RandomDraw(example))
            full = tg.check_op(op, args, params, seed=example, mode="full")
            directional = tg.check_op(op, args, params, seed=example, mode="directional")
            assert [c.path for c in full.checks] == [c.path for c in directional.checks], name


@pytest.mark.parametrize("mode", ["full", "directional"])
def test_both_modes_catch_a_rule_that_is_one_percent_off(mode):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 2, (3, 1)), rng.uniform(0.5, 2, (4,))
    tg.check_op(make_mul(False), (a, b), mode=mode)
    with pytest.raises(tg.GradientCheckError, match="argument 1"):
        tg.check_op(make_mul(True), (a, b), mode=mode)


def test_suite_row_for_every_built_in_op():
    report = gradcheck.run_suite(examples=5, seed=1)
    assert report.passed, str(report)
    assert [r.name for r in report.results] == sorted(tg.registry())
    assert all(r.examples == 5 and r.max_abs_error < 1e-6 for r in report.results)
    assert report.summary().startswith(f"all {len(tg.registry())} checks passed")


def test_suite_examples_do_not_depend_on_which_ops_run():
    whole = {r.name: r for r in gradcheck.run_suite(examples=4, seed=3).results}
    alone = gradcheck.run_suite(["matmul"], examples=4, seed=3).results[0]
    assert alone == dataclasses.replace(whole["matmul"], seconds=alone.seconds)


def test_suite_reports_and_shrinks_a_wrong_rule():
    result = gradcheck.check_op_examples(make_mul(True), examples=20, seed=0)
    assert not result.passed and result.examples == 1
    assert result.max_rel_error == pytest.approx(0.01, rel=1e-3)
    failure = result.failure
    assert failure.mismatch.path == "1" and failure.shrunk_input is not None
    assert failure.example_seed == gradcheck.example_seed(0, "mul_wrong", 0)
    text = result.failure_text()
    assert "FAIL op mul_wrong: example 0 failed (run seed 0, example seed" in text
    assert "shrunk by hypothesis to:" in text and "arg 1: float64" in text
    assert f"tg.RandomDraw({failure.example_seed})" in text
    # the printed example seed reproduces the failure exactly
    args, params = make_mul(True).sample(tg.RandomDraw(failure.example_seed))
    with pytest.raises(tg.GradientCheckError):
        tg.check_op(make_mul(True), args, params, seed=failure.example_seed)


def test_suite_without_hypothesis_reports_the_drawn_input(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # import hypothesis -> ImportError
    result = gradcheck.check_op_examples(make_cube(True), examples=5, seed=2)
    assert not result.passed and result.failure.shrunk_input is None
    assert "unshrunk: hypothesis is not installed" in result.failure_text()
    assert "arg 0: float64" in result.failure_text()


def test_suite_reports_an_op_without_a_rule_and_a_rule_that_raises():
    @tg.primitive(register=False)
    def no_rule(x):
        return x

    @tg.primitive(register=False)
    def bad_shape(x):
        return x * 2

    bad_shape.defvjp(lambda grad_out, out, x: (np.ones(7),))
    assert "no backward rule" in gradcheck.check_op_examples(no_rule, 3).failure.error
    result = gradcheck.check_op_examples(bad_shape, 3)
    assert not result.passed and "ValueError" in result.failure.error


def test_directional_check_of_the_paper_network_takes_under_a_second():
    from models.checks import mnist_mlp

    check = mnist_mlp()
    assert [np.shape(check.args[0][k]) for k in ("W1", "b1", "W2", "b2")] == [
        (784, 64), (64,), (64, 10), (10,)] and check.args[1].shape == (32, 784)
    times = []  # CPU seconds: other processes on a busy machine do not count against it
    for _ in range(3):
        start = time.process_time()
        report = tg.check_grads(check.f, *check.args, argnums=check.argnums, mode="directional")
        times.append(time.process_time() - start)
    assert [c.path for c in report.checks] == ["0['W1']", "0['b1']", "0['W2']", "0['b2']"]
    assert min(times) < 1.0, times


def test_model_check_catches_a_wrong_sigmoid_rule(monkeypatch):
    from models.checks import mnist_mlp

    assert gradcheck.check_model("mnist-mlp", mnist_mlp).passed
    sigmoid = tg.registry()["sigmoid"]
    monkeypatch.setattr(sigmoid, "joint_rule",
                        lambda grad_out, out, x: (grad_out * out * (1 - out) * 1.001,))
    result = gradcheck.check_model("mnist-mlp", mnist_mlp, seed=5)
    assert not result.passed and result.kind == "model"
    assert result.failure.mismatch.path in ("0['W1']", "0['b1']")
    assert result.worst_shape in ("0['W1'] (784, 64)", "0['b1'] (64,)")
    assert "model mnist-mlp: gradient check failed" in result.failure_text()
    assert "seed 5" in result.failure_text() and "--model mnist-mlp --seed 5" in \
        result.failure_text()


def test_model_hooks_may_return_tuples():
    w = np.array([1.0, 2.0])
    plain = gradcheck.check_model("tuple", lambda: (lambda w: tg.sum(w * w), (w,)))
    with_options = gradcheck.check_model(
        "options", lambda: (lambda w, x: tg.sum(w * x), (w, w), {"argnums": 0, "mode": "full"}))
    assert plain.passed and with_options.passed and with_options.worst_shape == "0 (2,)"
    with pytest.raises(gradcheck.SuiteError, match="must return a ModelCheck"):
        gradcheck.check_model("bad", lambda: 3)
    spec = f"{__name__}:broken_model_check"
    with pytest.raises(gradcheck.SuiteError, match=re.escape(
            f"model '{spec}': the check function raised RuntimeError: no data")):
        gradcheck.run_suite(["add"], [spec])  # before any op runs


def broken_model_check():
    raise RuntimeError("no data")
