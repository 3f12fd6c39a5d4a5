"""numerical_grad and check_grads: right rules pass, wrong ones are caught and explained."""

import numpy as np
import pytest

import tinygraph as tg


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
