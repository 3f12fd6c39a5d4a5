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


def test_suite_row_for_every_built_in_op_at_orders_one_and_two():
    report = gradcheck.run_suite(examples=5, seed=1)
    assert report.passed, str(report)
    assert report.orders == (1, 2) == gradcheck.suite.DEFAULT_ORDERS
    assert [(r.name, r.order) for r in report.results] == [
        (name, order) for name in sorted(tg.registry()) for order in (1, 2)]
    assert all(r.examples == 5 and r.max_abs_error < 1e-6 for r in report.results)
    rows = 2 * len(tg.registry())
    assert report.summary().startswith(
        f"all {rows} checks passed: {len(tg.registry())} ops ({5 * rows} examples); "
        "orders 1, 2; seed 1; ")


def test_suite_examples_do_not_depend_on_which_ops_or_orders_run():
    whole = {(r.name, r.order): r for r in gradcheck.run_suite(examples=4, seed=3).results}
    for orders in ([1], [2], [2, 1]):
        alone = gradcheck.run_suite(["matmul"], examples=4, seed=3, orders=orders).results
        assert [r.order for r in alone] == sorted(orders)
        for row in alone:
            assert row == dataclasses.replace(whole["matmul", row.order], seconds=row.seconds)


def test_suite_orders_must_be_positive_integers():
    for orders in ([], [0], [1, -2], [1.5]):
        with pytest.raises(gradcheck.SuiteError, match="order"):
            gradcheck.run_suite(["exp"], examples=1, orders=orders)
    with pytest.raises(gradcheck.SuiteError, match="order"):
        gradcheck.check_op_examples("exp", 1, order=0)


def make_cube_second_wrong() -> tg.Primitive:
    """x ** 3 whose rule, 3 x^2 with x held constant, is right but has no second derivative."""
    @tg.primitive(name="cube_second_wrong", register=False)
    def cube(x):
        return x ** 3

    cube.defvjp(lambda grad_out, out, x: (grad_out * 3 * tg.stop_gradient(x) ** 2,))
    return cube


def test_a_lost_second_derivative_fails_at_order_two_only():
    op = make_cube_second_wrong()
    report = gradcheck.run_suite([op], examples=10, seed=4)
    first, second = report.results
    assert (first.order, first.passed, first.examples) == (1, True, 10)
    assert first.max_abs_error < 1e-6
    assert (second.order, second.passed, second.examples) == (2, False, 1)
    failure = second.failure
    assert "op cube_second_wrong: order 2 (the gradient of <grad f, v>): gradient check failed" \
        in failure.error
    # the analytic H v is 0 (the rule's x is a constant), the numerical one is 6 x v
    assert failure.mismatch.analytic == 0.0 and abs(failure.mismatch.numerical) > 1e-3
    assert second.max_abs_error == failure.mismatch.abs_error
    text = second.failure_text()
    assert text.startswith("FAIL op cube_second_wrong at order 2: example 0 failed (run seed 4")
    assert "shrunk by hypothesis to:" in text
    assert f"seed={failure.example_seed}, order=2)" in text  # the Python reproduction
    lines = report.table().splitlines()
    assert lines[0].split()[:4] == ["check", "kind", "order", "examples"]
    assert [line.split()[:4] for line in lines[1:]] == [["cube_second_wrong", "op", "1", "10"],
                                                        ["cube_second_wrong", "op", "2", "1"]]
    assert [line.split()[-1] for line in lines[1:]] == ["ok", "FAIL"]
    assert report.summary().startswith("1 of 2 checks FAILED (cube_second_wrong order 2): "
                                       "1 op (11 examples); orders 1, 2; seed 4;")
    # the printed example seed reproduces that row alone
    args, params = op.sample(tg.RandomDraw(failure.example_seed))
    tg.check_op(op, args, params, seed=failure.example_seed)
    with pytest.raises(tg.GradientCheckError, match="order 2"):
        tg.check_op(op, args, params, seed=failure.example_seed, order=2)


def test_a_rule_in_raw_numpy_is_a_failed_order_two_row_not_a_crash():
    @tg.primitive(name="sin_numpy_rule", register=False)
    def sin(x):
        return np.sin(x)

    sin.defvjp(lambda grad_out, out, x: (grad_out * np.cos(x),))  # NumPy: arrays only
    report = gradcheck.run_suite([sin], examples=5, seed=0)
    first, second = report.results
    assert first.passed and first.order == 1 and first.examples == 5
    assert not second.passed and second.order == 2 and second.examples == 1
    assert second.failure.error.startswith("HigherOrderError: sin_numpy_rule: its backward rule "
                                           "runs on NumPy arrays only")
    assert second.failure.mismatch is None and np.isnan(second.max_abs_error)
    assert second.failure.shrunk_input is None  # no input would differ: nothing to shrink
    assert second.failure.shrink_note.startswith("unshrunk: the rule cannot be differentiated")
    assert "FAIL op sin_numpy_rule at order 2: example 0 failed" in str(report)
    assert report.to_json()["results"][1]["order"] == 2


def test_order_three_rows_check_one_derivative_more():
    report = gradcheck.run_suite(["tanh", "mul"], examples=3, seed=2, orders=(3,))
    assert report.passed, str(report)
    assert [(r.name, r.order) for r in report.results] == [("tanh", 3), ("mul", 3)]  # as given


def test_suite_reports_and_shrinks_a_wrong_rule():
    result = gradcheck.check_op_examples(make_mul(True), examples=20, seed=0)
    assert not result.passed and result.examples == 1
    assert result.max_rel_error == pytest.approx(0.01, rel=1e-3)
    failure = result.failure
    assert failure.mismatch.path == "1" and failure.shrunk_input is not None
    assert failure.example_seed == gradcheck.example_seed(0, "mul_wrong", 0)
    text = result.failure_text()
    assert "FAIL op mul_wrong at order 1: example 0 failed (run seed 0, example seed" in text
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

    assert gradcheck.check_model("mnist-mlp", mnist_mlp).order == 1
    sigmoid = tg.registry()["sigmoid"]
    monkeypatch.setattr(sigmoid, "joint_rule",
                        lambda grad_out, out, x: (grad_out * out * (1 - out) * 1.001,))
    result = gradcheck.check_model("mnist-mlp", mnist_mlp, seed=5)
    assert not result.passed and result.kind == "model"
    assert result.failure.mismatch.path in ("0['W1']", "0['b1']")
    assert result.worst_shape in ("0['W1'] (784, 64)", "0['b1'] (64,)")
    assert "model mnist-mlp: gradient check failed" in result.failure_text()
    assert "FAIL model mnist-mlp at order 1 (seed 5)" in result.failure_text()
    assert "--model mnist-mlp --seed 5 --order 1" in result.failure_text()


def test_model_check_at_order_two_catches_a_lost_second_derivative(monkeypatch):
    from models.checks import mnist_mlp

    right = gradcheck.check_model("mnist-mlp", mnist_mlp, seed=1, order=2)
    assert right.passed and right.order == 2 and right.max_abs_error < 1e-6
    assert right.to_json()["order"] == 2
    sigmoid = tg.registry()["sigmoid"]
    held = tg.stop_gradient  # out held constant: right gradient, no second derivative through it
    monkeypatch.setattr(sigmoid, "joint_rule",
                        lambda grad_out, out, x: (grad_out * held(out) * (1 - held(out)),))
    assert gradcheck.check_model("mnist-mlp", mnist_mlp, seed=1).passed
    result = gradcheck.check_model("mnist-mlp", mnist_mlp, seed=1, order=2)
    assert not result.passed and result.order == 2
    text = result.failure_text()
    assert "model mnist-mlp: order 2 (the gradient of <grad f, v>): gradient check failed" in text
    assert "--model mnist-mlp --seed 1 --order 2" in text


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
