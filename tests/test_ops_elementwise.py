"""The elementwise family against NumPy: values in float64 and float32, NumPy's aliases, the
special cases (ties, NaN, steps, large magnitudes, one-sided clipping) and one-line errors.

Gradients of every registered op are checked by the registry walk (tests/test_ops.py,
tests/test_higher_order.py); here second order is checked on the cases a sample cannot draw."""

import re
import warnings

import numpy as np
import pytest

import tinygraph as tg

RNG = np.random.default_rng(11)
X = RNG.uniform(-2.0, 2.0, (3, 4))
Y = RNG.uniform(-2.0, 2.0, (4,))

# name -> (NumPy's function, inputs inside its domain); one row per op, compared on values only
UNARY = {
    "sqrt": (np.sqrt, np.abs(X) + 0.1), "cbrt": (np.cbrt, X), "exp2": (np.exp2, X),
    "expm1": (np.expm1, X), "log2": (np.log2, np.abs(X) + 0.1),
    "log10": (np.log10, np.abs(X) + 0.1), "log1p": (np.log1p, np.abs(X) - 0.9),
    "sin": (np.sin, X), "cos": (np.cos, X), "tan": (np.tan, X / 2), "arcsin": (np.arcsin, X / 2.1),
    "arccos": (np.arccos, X / 2.1), "arctan": (np.arctan, X), "sinh": (np.sinh, X),
    "cosh": (np.cosh, X), "arcsinh": (np.arcsinh, X), "arccosh": (np.arccosh, np.abs(X) + 1),
    "arctanh": (np.arctanh, X / 2.1), "sinc": (np.sinc, X), "square": (np.square, X),
    "reciprocal": (np.reciprocal, X), "abs": (np.abs, X), "sign": (np.sign, X),
    "floor": (np.floor, X), "ceil": (np.ceil, X), "trunc": (np.trunc, X), "rint": (np.rint, X),
    "round": (np.round, X), "deg2rad": (np.deg2rad, 90 * X), "rad2deg": (np.rad2deg, X),
    "real": (np.real, X), "imag": (np.imag, X), "conj": (np.conj, X), "angle": (np.angle, X),
    "real_if_close": (np.real_if_close, X), "nan_to_num": (np.nan_to_num, X),
}
BINARY = {
    "arctan2": np.arctan2, "logaddexp": np.logaddexp, "logaddexp2": np.logaddexp2,
    "maximum": np.maximum, "minimum": np.minimum, "fmax": np.fmax, "fmin": np.fmin,
    "mod": np.mod, "floor_divide": np.floor_divide,
}
MASKS = {"isfinite": np.isfinite, "isnan": np.isnan, "isinf": np.isinf}


def _tolerance(dtype):
    return {"rtol": 1e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-14, "atol": 0}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_values_and_dtypes_match_numpy(name, dtype):
    reference, x = UNARY[name]
    x = x.astype(dtype)
    out = getattr(tg, name)(tg.Tensor(x, requires_grad=True))
    expected = reference(x)
    assert out.dtype == expected.dtype == dtype
    np.testing.assert_allclose(out.data, expected, **_tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_values_broadcast_as_numpy(name, dtype):
    x, y = X.astype(dtype), Y.astype(dtype)
    out = getattr(tg, name)(tg.Tensor(x, requires_grad=True), y)
    expected = BINARY[name](x, y)
    assert out.shape == (3, 4) and out.dtype == expected.dtype == dtype
    np.testing.assert_allclose(out.data, expected, **_tolerance(dtype))
    # and a scalar on the left, as np.maximum(0, x)
    np.testing.assert_allclose(getattr(tg, name)(0.5, tg.Tensor(y)).data, BINARY[name](0.5, y),
                               **_tolerance(dtype))


@pytest.mark.parametrize("name", sorted(MASKS))
def test_masks_match_numpy_and_are_constants(name):
    x = np.array([1.0, np.nan, np.inf, -np.inf, -0.0])
    out = getattr(tg, name)(tg.Tensor(x, requires_grad=True))
    assert out.dtype == np.bool_ and not out.requires_grad
    assert np.array_equal(out.data, MASKS[name](x))


def test_parameters_of_round_clip_angle_nan_to_num_match_numpy():
    values = np.array([-151.25, -0.35, 0.25, 12.5, 1234.5678])
    for decimals in (-2, -1, 0, 1, 2):
        assert np.array_equal(tg.round(tg.Tensor(values), decimals).data,
                              np.round(values, decimals))
    assert np.array_equal(tg.clip(tg.Tensor(X), -0.5, 1.0).data, np.clip(X, -0.5, 1.0))
    assert np.array_equal(tg.clip(tg.Tensor(X), Y, 1.5).data, np.clip(X, Y, 1.5))
    assert np.array_equal(tg.clip(tg.Tensor(X), None, 0.5).data, np.clip(X, None, 0.5))
    assert np.array_equal(tg.clip(tg.Tensor(X), a_min=-0.5, a_max=None).data,
                          np.clip(X, -0.5, None))
    assert np.array_equal(tg.angle(tg.Tensor(X), deg=True).data, np.angle(X, deg=True))
    special = np.array([np.nan, np.inf, -np.inf, 2.0], np.float32)
    for params in ({}, {"nan": 1.0, "posinf": 9.0, "neginf": -9.0}):
        out = tg.nan_to_num(tg.Tensor(special), **params)
        assert out.dtype == np.float32
        assert np.array_equal(out.data, np.nan_to_num(special, **params))


def test_numpy_aliases_are_the_same_objects():
    assert tg.subtract is tg.sub and tg.multiply is tg.mul and tg.negative is tg.neg
    assert tg.divide is tg.div and tg.true_divide is tg.div
    assert tg.abs is tg.absolute and tg.fabs is tg.absolute
    assert tg.remainder is tg.mod and tg.conjugate is tg.conj
    assert tg.radians is tg.deg2rad and tg.degrees is tg.rad2deg
    assert tg.registry()["abs"] is tg.abs  # registered once, under NumPy's short name
    names = set(tg.__all__)
    assert {"subtract", "multiply", "divide", "true_divide", "negative", "fabs", "remainder",
            "radians", "degrees", "conjugate", "sin", "logaddexp2", "sinc"} <= names


def test_plain_arrays_in_give_plain_arrays_out():
    assert type(tg.sin(X)) is np.ndarray and type(tg.maximum(X, Y)) is np.ndarray
    assert np.array_equal(tg.floor(X), np.floor(X))


# ---------------------------------------------------------------------------------------------
# Steps: floor, ceil, round, sign, ... have a zero derivative (not a boolean mask, not None)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["floor", "ceil", "trunc", "rint", "round", "sign", "angle",
                                  "imag"])
def test_steps_have_zero_gradients_of_the_input_dtype(name):
    op = getattr(tg, name)
    for dtype in (np.float64, np.float32):
        x = (X + 0.01).astype(dtype)
        gradient = tg.grad(lambda v, op=op: tg.sum(op(v) * v))(x)  # d(f(x) x)/dx = f(x)
        assert gradient.dtype == dtype
        np.testing.assert_allclose(gradient, UNARY[name][0](x), rtol=1e-6)
    assert tg.grad(op)(1.3) == 0.0


def test_grad_of_floor_is_zeros_as_in_autograd_and_jax():
    gradient = tg.grad(lambda v: tg.sum(tg.floor(v)))(X)
    assert gradient.shape == X.shape and not gradient.any()
    assert tg.grad(tg.grad(tg.floor))(2.5) == 0.0
    both = tg.grad(lambda a, b: tg.sum(tg.floor_divide(a, b)), argnums=(0, 1))(X, Y + 3)
    assert not both[0].any() and not both[1].any() and both[1].shape == Y.shape


def test_abs_has_gradient_sign_and_zero_at_zero():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    assert np.array_equal(tg.grad(lambda v: tg.sum(tg.abs(v)))(x), [-1, -1, 0, 1, 1])
    assert tg.grad(tg.grad(tg.abs))(-0.7) == 0.0


# ---------------------------------------------------------------------------------------------
# Extrema: ties share the cotangent, fmax/fmin skip NaN
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["maximum", "minimum", "fmax", "fmin"])
def test_extrema_route_the_cotangent_and_split_ties(name):
    a = np.array([1.0, 3.0, 2.0])
    b = np.array([2.0, 1.0, 2.0])  # a loses, a wins (for max), a tie
    grad_a, grad_b = tg.grad(lambda u, v: tg.sum(getattr(tg, name)(u, v)), argnums=(0, 1))(a, b)
    a_wins = [0.0, 1.0, 0.5] if "max" in name else [1.0, 0.0, 0.5]
    assert np.array_equal(grad_a, a_wins)
    assert np.array_equal(grad_a + grad_b, [1, 1, 1])
    # broadcast: a scalar b tied with two of a's values gets half of each, and all of the one
    # value it beats (0 for max, 4 for min)
    grad_b = tg.grad(lambda v: tg.sum(getattr(tg, name)(np.array([2.0, 2.0, 0.0, 4.0]), v)))(2.0)
    assert grad_b == 0.5 + 0.5 + 1.0


def test_fmax_fmin_ignore_nan_and_maximum_propagates_it():
    a = np.array([np.nan, 1.0, np.nan, 4.0])
    b = np.array([2.0, np.nan, np.nan, 3.0])
    for name, reference in (("fmax", np.fmax), ("fmin", np.fmin), ("maximum", np.maximum),
                            ("minimum", np.minimum)):
        op = getattr(tg, name)
        assert np.array_equal(op(tg.Tensor(a), b).data, reference(a, b), equal_nan=True)
    grad_a, grad_b = tg.grad(lambda u, v: tg.sum(tg.fmax(u, v)), argnums=(0, 1))(a, b)
    assert np.array_equal(grad_a, [0, 1, 0, 1]) and np.array_equal(grad_b, [1, 0, 0, 0])
    grad_a, grad_b = tg.grad(lambda u, v: tg.sum(tg.fmin(u, v)), argnums=(0, 1))(a, b)
    assert np.array_equal(grad_a, [0, 1, 0, 0]) and np.array_equal(grad_b, [1, 0, 0, 1])


# ---------------------------------------------------------------------------------------------
# clip, mod, nan_to_num
# ---------------------------------------------------------------------------------------------

def test_clip_gradient_is_one_strictly_inside_and_flows_to_the_bounds():
    a = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    grads = tg.grad(lambda x, lo, hi: tg.sum(tg.clip(x, lo, hi) * np.arange(1.0, 6.0)),
                    argnums=(0, 1, 2))(a, -1.0, 1.0)
    assert np.array_equal(grads[0], [0, 0, 3, 0, 0])  # on a bound: the bound's
    assert grads[1] == 1 + 2 and grads[2] == 4 + 5
    # one-sided, with array bounds broadcasting against a
    lo = np.array([[-1.5], [0.5]])
    gradient = tg.grad(lambda x: tg.sum(tg.clip(x, lo, None)))(a)
    assert np.array_equal(gradient, [0, 1, 1, 2, 2])
    gradient = tg.grad(lambda hi: tg.sum(tg.clip(a, None, hi)))(np.array([0.5, 3.0]).reshape(2, 1))
    assert np.array_equal(gradient, [[2], [0]])
    # a_min > a_max: NumPy gives a_max everywhere, so a_max takes the whole cotangent
    grads = tg.grad(lambda x, lo, hi: tg.sum(tg.clip(x, lo, hi)), argnums=(0, 1, 2))(a, 1.0, -1.0)
    assert np.array_equal(tg.clip(a, 1.0, -1.0), np.clip(a, 1.0, -1.0))
    assert not grads[0].any() and grads[1] == 0 and grads[2] == 5


def test_clip_second_order_with_array_and_missing_bounds():
    a = np.array([[-1.7, -0.2, 0.3], [1.6, 0.1, -0.6]])
    lo, hi = np.array([-0.9, -0.8, -0.7]), np.array([[0.8], [0.7]])
    tg.check_grads(lambda x, u, v: tg.sum(tg.clip(x, u, v) ** 3), a, lo, hi, order=2)
    tg.check_grads(lambda x, v: tg.sum(tg.clip(x, None, v) ** 3), a, hi, order=2)
    tg.check_grads(lambda x, u: tg.sum(tg.clip(x, u, None) ** 3), a, lo, order=2)


def test_mod_follows_numpy_signs_and_has_derivative_minus_floor_quotient():
    a = np.array([5.5, -5.5, 5.5, -5.5, 7.0])
    b = np.array([2.0, 2.0, -2.0, -2.0, 2.5])
    out = tg.mod(tg.Tensor(a), b)
    assert np.array_equal(out.data, np.mod(a, b))
    assert np.array_equal(out.data, [x % y for x, y in zip(a, b)])  # Python's % too
    grad_a, grad_b = tg.grad(lambda u, v: tg.sum(tg.mod(u, v)), argnums=(0, 1))(a, b)
    assert np.array_equal(grad_a, np.ones(5))
    assert np.array_equal(grad_b, -np.floor(a / b))
    tg.check_grads(lambda u, v: tg.sum(tg.mod(u, v) ** 2), a, b, order=2)


def test_nan_to_num_passes_the_cotangent_where_x_was_finite():
    x = np.array([np.nan, 1.5, np.inf, -np.inf, -2.0], np.float32)
    gradient = tg.grad(lambda v: tg.sum(tg.nan_to_num(v, posinf=5.0, neginf=-5.0) * 3))(x)
    assert gradient.dtype == np.float32
    assert np.array_equal(gradient, [0, 3, 0, 0, 3])
    x = np.array([1.0, np.nan])
    original = x.copy()
    tg.nan_to_num(tg.Tensor(x), copy=False)  # never written into, whatever copy says
    assert np.array_equal(x, original, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# Stability and special points
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, base", [("logaddexp", np.e), ("logaddexp2", 2.0)])
def test_logaddexp_is_finite_and_exact_at_large_magnitude(name, base, dtype):
    op = getattr(tg, name)
    a = np.array([1000.0, 1000.0, -1000.0, 30000.0, -30000.0], dtype)
    b = np.array([1000.0, -1000.0, -1000.0, 0.0, 0.0], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no invalid value
        out = op(tg.Tensor(a), b)
        grad_a, grad_b = tg.grad(lambda u, v: tg.sum(op(u, v)), argnums=(0, 1))(a, b)
        hessian = tg.hessian(lambda u: tg.sum(op(u, b)))(a)
    log2 = np.log(2.0) / np.log(base)  # log_base(2): the value at a tie is a + log_base 2
    np.testing.assert_allclose(out.data, [1000 + log2, 1000, -1000 + log2, 30000, 0],
                               rtol=1e-6)
    assert grad_a.dtype == dtype
    np.testing.assert_allclose(grad_a, [0.5, 1, 0.5, 1, 0], atol=1e-7)
    np.testing.assert_allclose(grad_a + grad_b, np.ones(5), atol=1e-7)
    assert np.isfinite(hessian).all()


def test_sinc_has_derivative_zero_at_zero_and_matches_its_closed_form():
    assert tg.grad(tg.sinc)(0.0) == 0.0
    x = np.array([-1.5, -0.3, 0.25, 0.5, 2.0])
    closed = (np.cos(np.pi * x) - np.sinc(x)) / x
    np.testing.assert_allclose(tg.grad(lambda v: tg.sum(tg.sinc(v)))(x), closed, rtol=1e-12)


def test_parts_of_a_real_number():
    assert not tg.imag(tg.Tensor(X)).data.any()
    assert np.array_equal(tg.real(tg.Tensor(X)).data, X)
    assert np.array_equal(tg.real_if_close(tg.Tensor(X)).data, X)
    assert np.array_equal(tg.angle(tg.Tensor(np.array([-2.0, 3.0]))).data, [np.pi, 0])
    for op in (tg.real, tg.conj, tg.real_if_close):
        assert np.array_equal(tg.grad(lambda v, op=op: tg.sum(op(v) * v))(X), 2 * X)
    imag = tg.imag(tg.Tensor(X))
    imag.data[0, 0] = 1.0  # a fresh array, not NumPy's read-only view


def test_functions_compose_to_second_order():
    x = RNG.uniform(0.2, 0.8, (2, 3))
    y = RNG.uniform(-0.8, 0.8, (3,))

    def f(u, v):
        trig = tg.sin(u) * tg.cos(v) + tg.tan(u) * tg.arctan2(v, u) + tg.arcsin(v) * tg.arccos(u)
        hyper = tg.sinh(v) * tg.cosh(u) + tg.arcsinh(u * v) + tg.arctanh(v) + tg.arccosh(1 + u)
        logs = tg.log2(u) + tg.log10(u) * tg.log1p(v) + tg.expm1(v) * tg.exp2(u)
        rest = tg.sqrt(u) * tg.cbrt(v) + tg.logaddexp(u, v) * tg.logaddexp2(v, u) + tg.sinc(v)
        more = tg.square(v) * tg.reciprocal(u) + tg.deg2rad(u) * tg.rad2deg(v) + tg.abs(v) * u
        return tg.sum(trig + hyper + logs + rest + more + tg.maximum(u, v) * tg.fmin(u, v))

    tg.check_grads(f, x, y, order=2)


# ---------------------------------------------------------------------------------------------
# Errors: one line, naming the op and the shapes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BINARY))
def test_shapes_that_do_not_broadcast_name_the_op(name):
    with pytest.raises(ValueError, match=re.escape(f"{name}: shapes (3,) and (4,) do not "
                                                   "broadcast")) as info:
        getattr(tg, name)(tg.Tensor(np.ones(3)), np.ones(4))
    assert "\n" not in str(info.value) and "test_ops_elementwise.py" in str(info.value)


def test_clip_errors_name_the_op_and_the_given_shapes():
    with pytest.raises(ValueError, match=re.escape("clip: shapes (3,) and (4,) do not broadcast")):
        tg.clip(tg.Tensor(np.ones(3)), np.zeros(4), None)
    with pytest.raises(TypeError, match=r"^clip: .*a_max"):
        tg.clip(tg.Tensor(np.ones(3)), a_min=0.0)


def _sigmoid_reference(x: np.ndarray) -> np.ndarray:
    """e^min(x, 0) / (1 + e^-|x|) written plainly, two exponentials (the formula's definition)."""
    return np.exp(np.minimum(x, 0)) / (1 + np.exp(-np.abs(x)))


def test_every_way_of_computing_the_sigmoid_gives_the_definition_s_bits():
    """Issue 10: the sigmoid's numerator e^min(x, 0) comes from its one exponential e^-|x|
    (by sign(x) on small arrays, by x >= 0 on large ones) and a large array goes block by block
    (the memory target: one small scratch, not a second array of the layer's size). None of it
    may change a bit: every path against the plain two-exponential formula, on values that
    include 0, -0, NaN, infinities and exponents far past overflow."""
    from tinygraph.ops import arithmetic

    rng = np.random.default_rng(1)
    specials = [0.0, -0.0, 800.0, -800.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30]
    for size in (1, 9, arithmetic._SIGMOID_COMPARE - 1, arithmetic._SIGMOID_COMPARE,
                 3 * arithmetic._SIGMOID_BLOCK + 17):  # several blocks and a short last one
        for dtype in (np.float32, np.float64):
            x = (rng.normal(size=max(size, len(specials))) * 30).astype(dtype)[:size]
            x[:len(specials)] = specials[:size]
            with np.errstate(all="ignore"):
                expected = _sigmoid_reference(x)
            for shaped in (x, x.reshape(-1, 1), x[::-1].copy()[::-1]):  # 1-D, 2-D, a view
                assert np.array_equal(tg.sigmoid(shaped).reshape(-1), expected, equal_nan=True)
            out = np.empty_like(x)
            assert arithmetic._sigmoid_into(out, x) is out
            assert np.array_equal(out, expected, equal_nan=True)
            planned = arithmetic._sigmoid_plan(x.shape, x.dtype)  # a compiled program's
            assert np.array_equal(planned(np.empty_like(x), x), expected, equal_nan=True)
            assert np.array_equal(tg.sigmoid(x[::2]), expected[::2], equal_nan=True)  # strided


def test_the_sigmoid_of_a_mask_and_its_nan_bits_match_the_compiled_programs():
    """Found by review: a small boolean array failed inside np.sign with a garbled error, and a
    large strided input took another numerator formula than the compiled plan (NaN's sign
    bit differed)."""
    from tinygraph.ops import arithmetic

    mask = np.array([True, False, True])
    assert np.array_equal(tg.sigmoid(mask), tg.sigmoid(mask.astype(np.float16)))  # as NumPy: f16
    x = np.random.default_rng(0).normal(size=(2 * arithmetic._SIGMOID_COMPARE, 2)) * 5
    x[::3] = np.nan
    strided = x[:, 0]  # not contiguous, above the comparison threshold
    planned = arithmetic._sigmoid_plan(strided.shape, strided.dtype)(np.empty(len(strided)),
                                                                     strided)
    assert tg.sigmoid(strided).tobytes() == planned.tobytes()
    with pytest.raises(TypeError, match=r"^sign: "):
        tg.sign(np.array([True]))  # an error type with other arguments: still one line
