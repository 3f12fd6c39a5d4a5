"""Reductions (sum max min prod var std logsumexp), cumsum and cumprod, argmax and argmin:
values as NumPy's, NumPy's axis semantics, gradients at zeros, stability, errors."""

import re

import numpy as np
import pytest

import tinygraph as tg

RNG = np.random.default_rng(11)
X = RNG.uniform(0.5, 1.5, size=(2, 3, 4)) * RNG.choice([-1.0, 1.0], size=(2, 3, 4))
AXES = [None, 0, 1, -1, -3, (0, 2), (-1, 0), (1, -3), (0, 1, 2), ()]

REDUCTIONS = [  # (tinygraph op, NumPy function, extra parameters)
    (tg.sum, np.sum, {}),
    (tg.max, np.max, {}),
    (tg.amax, np.max, {}),
    (tg.reduce_min, np.min, {}),
    (tg.amin, np.min, {}),
    (tg.prod, np.prod, {}),
    (tg.var, np.var, {}),
    (tg.var, np.var, {"ddof": 1}),
    (tg.std, np.std, {}),
    (tg.std, np.std, {"ddof": 1}),
]


@pytest.mark.filterwarnings("ignore:Degrees of freedom <= 0")  # NumPy's, for ddof=1 over 1
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op, reference, extra", REDUCTIONS)
def test_reductions_match_numpy_for_every_axis_form(op, reference, extra, dtype):
    x = X.astype(dtype)
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    for axis in AXES:
        for keepdims in (False, True):
            with np.errstate(divide="ignore", invalid="ignore"):  # ddof=1 over one entry: NaN
                out = op(tg.Tensor(x), axis=axis, keepdims=keepdims, **extra)
                expected = reference(x, axis=axis, keepdims=keepdims, **extra)
            assert out.dtype == dtype and out.shape == np.shape(expected)
            assert np.allclose(out.data, expected, rtol=tolerance, atol=tolerance,
                               equal_nan=True), (axis, keepdims)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logsumexp_matches_the_direct_formula(dtype):
    x = X.astype(dtype)
    for axis in AXES:
        for keepdims in (False, True):
            out = tg.logsumexp(tg.Tensor(x), axis=axis, keepdims=keepdims)
            expected = np.log(np.sum(np.exp(x.astype(np.float64)), axis=axis, keepdims=keepdims))
            assert out.dtype == dtype and out.shape == expected.shape
            assert np.allclose(out.data, expected, rtol=1e-6 if dtype == np.float32 else 1e-13)


def test_logsumexp_matches_scipy():
    special = pytest.importorskip("scipy.special")
    values = np.array([[1e4, -1e4, 0.0, np.inf], [-np.inf, -np.inf, -np.inf, -np.inf],
                       [3.0, 3.0, -700.0, 2.0]])
    for axis in (None, 0, 1, -1, (0, 1)):
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = special.logsumexp(values, axis=axis)
        # (one column is log(1 + e^-700) = 9.86e-305: log1p keeps it, log(1 + ...) would not)
        assert np.allclose(tg.logsumexp(values, axis=axis), expected, rtol=1e-15, atol=0), axis


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logsumexp_is_stable_at_large_magnitude(dtype):
    x = np.array([[1e4, 1e4 - 1.0], [-1e4, -1e4 - 1.0], [0.0, -np.inf]], dtype)
    t = tg.Tensor(x, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        out = tg.logsumexp(t, axis=1)
        tg.sum(out).backward()
    offset = np.log1p(np.exp(-1.0))
    assert out.dtype == dtype
    assert np.allclose(out.data, [1e4 + offset, -1e4 + offset, 0.0], rtol=1e-6)
    softmax = np.array([1.0, np.exp(-1.0)]) / (1 + np.exp(-1.0))
    assert t.grad.dtype == dtype
    # float32 holds 1e4 + 0.31 to 1e-3 only: that rounding of the result limits the gradient
    rtol = 1e-3 if dtype == np.float32 else 1e-12
    assert np.allclose(t.grad, [softmax, softmax, [1.0, 0.0]], rtol=rtol)


def test_logsumexp_of_nothing_or_only_minus_inf_is_minus_inf_and_inf_passes():
    with np.errstate(all="raise"):  # no warning either
        assert tg.logsumexp(np.zeros((2, 0)), axis=1).tolist() == [-np.inf, -np.inf]
        assert tg.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
        assert tg.logsumexp(np.array([np.inf, 1.0])) == np.inf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op, reference", [(tg.cumsum, np.cumsum), (tg.cumprod, np.cumprod)])
def test_cumulative_ops_match_numpy(op, reference, dtype):
    x = X.astype(dtype)
    for axis in (None, 0, 1, 2, -1, -3):
        out = op(tg.Tensor(x), axis=axis)
        expected = reference(x, axis=axis)
        assert out.dtype == dtype and out.shape == expected.shape  # axis=None flattens
        assert np.allclose(out.data, expected, rtol=1e-6 if dtype == np.float32 else 1e-13)
    assert op(tg.Tensor(np.array(2.5)), axis=None).shape == (1,)


def test_cumulative_gradients_for_every_axis():
    w = RNG.standard_normal(X.shape)
    for axis in (None, 0, -1, 1):
        for op in (tg.cumsum, tg.cumprod):
            def f(x, op=op, axis=axis):
                return tg.sum(op(x, axis=axis) * w.reshape(np.shape(op(X, axis=axis))))

            assert np.allclose(tg.grad(f)(X), tg.numerical_grad(f, X), atol=1e-7), (op, axis)
    # d cumsum/dx: every later output depends on x_i with weight 1
    ones = tg.grad(lambda x: tg.sum(tg.cumsum(x)))(np.zeros(4))
    assert np.array_equal(ones, [4.0, 3.0, 2.0, 1.0])


ZERO_CASES = [  # no zero, one, two (adjacent and apart), three, all
    np.array([0.7, -1.3, 1.1, 0.9]),
    np.array([0.7, 0.0, 1.1, 0.9]),
    np.array([0.0, 0.0, 1.1, -0.9]),
    np.array([0.7, 0.0, 1.1, 0.0]),
    np.array([0.0, -1.3, 0.0, 0.0]),
    np.zeros(4),
]


@pytest.mark.parametrize("x", ZERO_CASES, ids=lambda x: f"{int(np.sum(x == 0))}-zeros")
def test_prod_gradient_and_hessian_with_zeros(x):
    others = np.array([np.prod(np.delete(x, i)) for i in range(len(x))])
    assert np.array_equal(tg.grad(tg.prod)(x), others)
    pairs = np.array([[0.0 if i == j else np.prod(np.delete(x, [i, j])) for j in range(4)]
                      for i in range(4)])
    assert np.allclose(tg.hessian(tg.prod)(x), pairs, atol=1e-12)
    tg.check_grads(lambda v: tg.prod(v) * 1.5, x, order=3)


@pytest.mark.parametrize("x", ZERO_CASES, ids=lambda x: f"{int(np.sum(x == 0))}-zeros")
def test_cumprod_gradient_and_hessian_with_zeros(x):
    w = np.array([0.3, -1.2, 0.8, 1.7])

    def f(v):
        return tg.sum(tg.cumprod(v) * w)

    expected = [sum(w[k] * np.prod(np.delete(x[:k + 1], i)) for k in range(i, 4))
                for i in range(4)]
    with np.errstate(all="raise"):  # no division by zero anywhere
        assert np.allclose(tg.grad(f)(x), expected, atol=1e-15)
        hessian = tg.hessian(f)(x)
    assert np.allclose(hessian, tg.jacobian(lambda v: tg.grad(f)(v))(x))
    assert np.allclose(hessian, hessian.T) and np.allclose(np.diag(hessian), 0)
    tg.check_grads(f, x, order=3)


def test_prod_with_zeros_over_tuple_axes_and_keepdims():
    x = RNG.uniform(0.6, 1.4, size=(2, 3, 2))
    x[0, 1, 1] = x[1, 0, 0] = x[1, 2, 0] = 0.0
    for axis in ((0, 2), (-1, 1), None, 1):
        for keepdims in (False, True):
            def f(v, axis=axis, keepdims=keepdims):
                out = tg.prod(v, axis=axis, keepdims=keepdims)
                return tg.sum(out * np.arange(1.0, 1.0 + np.size(out)).reshape(np.shape(out)))

            tg.check_grads(f, x, order=2)


def test_prod_gradient_needs_no_division():
    # the product underflows to 0, yet d/dx_0 = x_1 x_2 = 1 (out / x_0 would say 0)
    x = np.array([1e-200, 1e-200, 1e200])
    assert tg.prod(x) == 0.0
    assert np.array_equal(tg.grad(tg.prod)(x), [1.0, 1.0, 0.0])


def test_products_and_running_values_follow_the_value_in_a_traced_step():
    # the rules branch on no value: a step traced without zeros is right with zeros
    def loss(v):
        return tg.sum(tg.prod(v, axis=1)) + tg.sum(tg.cumprod(v, axis=0) * 2.0)

    step = tg.trace(tg.grad(loss))
    eager = tg.grad(loss)
    for x in (np.full((3, 2), 1.5), np.array([[0.0, 2.0], [0.0, 0.0], [3.0, -1.0]])):
        assert np.allclose(step(x), eager(x))
        assert np.allclose(step(x), tg.numerical_grad(loss, x))


def test_var_and_std_gradients_and_degenerate_cases():
    x = np.array([[1.0, 2.0, 4.0], [0.5, 0.5, 0.5]])
    mean = x.mean(axis=1, keepdims=True)
    assert np.allclose(tg.grad(lambda v: tg.sum(tg.var(v, axis=1, ddof=1)))(x),
                       2 * (x - mean) / 2)
    g = tg.grad(lambda v: tg.sum(tg.std(v, axis=1)))(x)
    assert np.allclose(g[0], (x[0] - mean[0]) / (3 * x[0].std()))
    assert np.array_equal(g[1], [0.0, 0.0, 0.0])  # std = 0: 0, not NaN
    # one entry: std is 0 whatever x, so its derivatives are 0
    assert tg.grad(lambda v: tg.std(v))(np.array([3.0])).tolist() == [0.0]
    for op in (tg.var, tg.std):
        tg.check_grads(lambda v, op=op: tg.sum(op(v, axis=(0, -1), ddof=1) * 3.0), X, order=2)


def test_var_ddof_and_keepdims_are_keywords():
    t = tg.Tensor(X)
    assert np.allclose(tg.var(t, 1).data, X.var(axis=1))  # axis may come by position
    assert np.allclose(tg.std(t, -1, ddof=2, keepdims=True).data,
                       X.std(axis=-1, ddof=2, keepdims=True))
    with pytest.raises(TypeError, match="var: takes 1 input"):
        tg.var(t, 0, 1)


def test_size_zero_axes_as_numpy():
    empty = np.zeros((2, 0, 3))
    t = tg.Tensor(empty, requires_grad=True)
    assert np.array_equal(tg.prod(t, axis=1).data, np.ones((2, 3)))
    assert tg.prod(t, axis=0).shape == (0, 3) and tg.sum(t, axis=(0, 1)).shape == (3,)
    assert tg.cumsum(t, axis=1).shape == (2, 0, 3) and tg.cumprod(t).shape == (0,)
    assert tg.logsumexp(t, axis=(1, 2)).data.tolist() == [-np.inf, -np.inf]
    loss = tg.sum(tg.prod(t, axis=1)) + tg.sum(tg.cumprod(t, axis=1)) + tg.sum(tg.cumsum(t))
    loss.backward()
    assert t.grad.shape == (2, 0, 3)
    assert tg.grad(lambda v: tg.sum(tg.prod(v, axis=0)))(np.zeros((0, 2))).shape == (0, 2)


def test_min_and_max_split_ties_and_reach_second_order():
    x = np.array([[1.0, -2.0, -2.0], [0.5, 3.0, 0.25]])
    assert np.array_equal(tg.grad(lambda v: tg.sum(tg.amin(v, axis=1)))(x),
                          [[0, 0.5, 0.5], [0, 0, 1]])
    tg.check_grads(lambda v: tg.sum(tg.reduce_min(v, axis=0) ** 3), x, order=2)


def test_argmax_and_argmin_give_numpy_integer_arrays():
    x = np.array([[1.0, 5.0, 5.0], [7.0, -1.0, 0.0]])
    for given in (x, tg.Tensor(x), tg.Tensor(x, requires_grad=True) * 1.0):
        for axis in (None, 0, 1, -1):
            assert np.array_equal(tg.argmax(given, axis=axis), np.argmax(x, axis=axis))
            assert np.array_equal(tg.argmin(given, axis=axis), np.argmin(x, axis=axis))
        assert tg.argmax(given, axis=1).dtype.kind == "i"
        assert tg.argmax(given, 1, keepdims=True).shape == (2, 1)
    assert tg.argmax(x, axis=1).tolist() == [1, 0]  # ties: the first


def test_argmax_of_a_traced_tensor_refuses_to_freeze_it():
    with pytest.raises(tg.TraceError, match=r"tg\.argmax"):
        tg.trace(lambda v: v[int(tg.argmax(v))])(np.arange(3.0))


@pytest.mark.parametrize("call, message", [
    (lambda: tg.prod(tg.Tensor(X), axis=3), r"^prod: .*axis 3 is out of bounds"),
    (lambda: tg.reduce_min(tg.Tensor(np.zeros((2, 0))), axis=1), r"^min: .*zero-size array"),
    (lambda: tg.cumsum(tg.Tensor(X), axis=-4), r"^cumsum: .*axis -4 is out of bounds"),
    (lambda: tg.logsumexp(tg.Tensor(X), axis=(0, 0)), r"^logsumexp: .*duplicate value in 'axis'"),
])
def test_errors_name_the_op_and_the_line(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    text = str(info.value)
    assert "\n" not in text and re.search(r"test_ops_reductions\.py:\d+", text)


def test_registered_under_numpy_names():
    registry = tg.registry()
    for name in ("prod", "min", "var", "std", "logsumexp", "cumsum", "cumprod"):
        assert name in registry
    assert tg.amax is tg.max and tg.amin is tg.reduce_min
    assert "argmax" not in registry  # a plain function: indices have no derivative
