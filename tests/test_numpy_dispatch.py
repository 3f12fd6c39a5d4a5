"""NumPy dispatch (``np.f(t)`` records tinygraph's op) and the ``tinygraph.numpy`` module."""

import numpy as np
import pytest

import tinygraph as tg
import tinygraph.numpy as tnp


def _values(shape, low=-2.0, high=2.0, seed=0, avoid=None):
    """Float64 values in [low, high], kept 0.1 away from ``avoid`` (a kink or a pole)."""
    values = np.random.default_rng(seed).uniform(low, high, size=shape)
    if avoid is not None:
        close = np.abs(values - avoid) < 0.1
        values[close] = avoid + 0.1 * np.sign(values[close] - avoid + 1e-12)
    return values


def _distinct(shape, seed=0):
    """Values far apart (no ties for max, min, sort)."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.37 - size * 0.15).reshape(shape)


def _spd(n, seed=0):
    a = _values((n, n), seed=seed)
    return a @ a.T + n * np.eye(n)


X = _values((3, 4))
Y = _values((3, 4), seed=1)
POSITIVE = _values((3, 4), 0.3, 2.0)
UNIT = _values((3, 4), -0.8, 0.8)
YT = np.ascontiguousarray(Y.T)  # (gradient checks perturb C-ordered copies of their inputs)

# (id, function written with plain NumPy, inputs): each function is differentiated through
# dispatch and checked against finite differences of NumPy itself.
CASES = [
    # elementwise ufuncs
    *[(name, getattr(np, name), (UNIT,)) for name in (
        "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh",
        "arctanh", "square", "exp", "exp2", "expm1", "negative", "deg2rad", "rad2deg",
        "radians", "degrees", "positive", "sinc", "real", "conj")],
    *[(name, getattr(np, name), (POSITIVE,)) for name in (
        "sqrt", "cbrt", "log", "log2", "log10", "log1p", "reciprocal")],
    ("arccosh", np.arccosh, (POSITIVE + 1.1,)),
    ("abs", np.abs, (_values((3, 4), avoid=0.0),)),
    ("fabs", np.fabs, (_values((3, 4), avoid=0.0),)),
    *[(name, getattr(np, name), (X, Y)) for name in (
        "add", "subtract", "multiply", "logaddexp", "logaddexp2", "arctan2")],
    ("maximum", np.maximum, (_distinct((3, 4)), _distinct((3, 4), 1) + 0.1)),
    ("minimum", np.minimum, (_distinct((3, 4)), _distinct((4,), 1) + 0.1)),
    ("fmax", np.fmax, (_distinct((3, 4)), _distinct((3, 4), 1) + 0.1)),
    ("fmin", np.fmin, (_distinct((3, 4)), _distinct((3, 4), 1) + 0.1)),
    ("divide", np.divide, (X, _values((4,), avoid=0.0))),
    ("true_divide", np.true_divide, (X, _values((3, 4), avoid=0.0))),
    ("power", np.power, (POSITIVE, Y)),
    ("mod", lambda x: np.mod(x, 1.0), (_values((3, 4), 0.1, 0.9),)),
    ("remainder", lambda x: np.remainder(x, 1.0), (_values((3, 4), 1.1, 1.9),)),
    ("clip", lambda x: np.clip(x, -0.5, 0.5), (_values((3, 4), avoid=0.5) * 0.9,)),
    ("where", lambda x, y: np.where(X > 0, x, y), (X, Y)),
    ("nan_to_num", np.nan_to_num, (X,)),
    ("ndarray operators", lambda x: (X + x) * (Y - x) / (2.0 + X * X) - (X @ x.T) @ X,
     (Y,)),
    ("ndarray power", lambda x: POSITIVE ** x, (X,)),
    # reductions
    ("sum", lambda x: np.sum(x, axis=0), (X,)),
    ("sum keepdims", lambda x: np.sum(x, axis=-1, keepdims=True), (X,)),
    ("mean", lambda x: np.mean(x, axis=1), (X,)),
    ("prod", lambda x: np.prod(x, axis=1), (X,)),
    ("max", lambda x: np.max(x, axis=0), (_distinct((3, 4)),)),
    ("amax", np.amax, (_distinct((3, 4)),)),
    ("min", lambda x: np.min(x, axis=1), (_distinct((3, 4)),)),
    ("amin", lambda x: np.amin(x, axis=-1), (_distinct((3, 4)),)),
    ("var", lambda x: np.var(x, axis=0, ddof=1), (X,)),
    ("std", lambda x: np.std(x, axis=1), (X,)),
    ("cumsum", lambda x: np.cumsum(x, axis=1), (X,)),
    ("cumprod", lambda x: np.cumprod(x, axis=0), (X,)),
    ("add.reduce", lambda x: np.add.reduce(x), (X,)),
    ("add.reduce axis", lambda x: np.add.reduce(x, axis=1, keepdims=True), (X,)),
    ("multiply.reduce", lambda x: np.multiply.reduce(x, 1), (X,)),
    ("maximum.reduce", lambda x: np.maximum.reduce(x, axis=None), (_distinct((3, 4)),)),
    ("minimum.reduce", lambda x: np.minimum.reduce(x), (_distinct((3, 4)),)),
    ("add.accumulate", lambda x: np.add.accumulate(x), (X,)),
    ("multiply.accumulate", lambda x: np.multiply.accumulate(x, axis=1), (X,)),
    ("linalg.norm", np.linalg.norm, (X,)),
    ("linalg.norm axis", lambda x: np.linalg.norm(x, axis=1), (X,)),
    # shapes
    ("concatenate", lambda x, y: np.concatenate([x, y, X], axis=1), (X, Y)),
    ("stack", lambda x, y: np.stack([x, y], axis=-1), (X, Y)),
    ("hstack", lambda x, y: np.hstack((x, y)), (X, Y)),
    ("vstack", lambda x, y: np.vstack([x, Y, y]), (X, Y)),
    ("dstack", lambda x, y: np.dstack([x, y]), (X, Y)),
    ("column_stack", lambda x, y: np.column_stack([x[0], y[1]]), (X, Y)),
    ("split", lambda x: np.split(x, 2, axis=1)[1], (X,)),
    ("array_split", lambda x: np.array_split(x, 3, axis=1)[0], (X,)),
    ("squeeze", lambda x: np.squeeze(x, axis=1), (X[:, :1],)),
    ("expand_dims", lambda x: np.expand_dims(x, 0), (X,)),
    ("ravel", np.ravel, (X,)),
    ("reshape -1", lambda x: np.reshape(x, -1), (X,)),
    ("reshape", lambda x: np.reshape(x, (2, 6)), (X,)),
    ("transpose", lambda x: np.transpose(x, (1, 0)), (X,)),
    ("repeat", lambda x: np.repeat(x, 2, axis=0), (X,)),
    ("tile", lambda x: np.tile(x, (2, 1)), (X,)),
    ("pad", lambda x: np.pad(x, ((1, 0), (0, 2))), (X,)),
    ("flip", lambda x: np.flip(x, axis=1), (X,)),
    ("flipud", np.flipud, (X,)),
    ("fliplr", np.fliplr, (X,)),
    ("rot90", np.rot90, (X,)),
    ("roll", lambda x: np.roll(x, 1, axis=1), (X,)),
    ("swapaxes", lambda x: np.swapaxes(x, 0, 1), (X,)),
    ("moveaxis", lambda x: np.moveaxis(x, 0, -1), (X,)),
    ("atleast_2d", np.atleast_2d, (X[0],)),
    ("append", lambda x, y: np.append(x, y, axis=0), (X, Y)),
    ("diff", lambda x: np.diff(x, axis=1), (X,)),
    ("sort", lambda x: np.sort(x, axis=1), (_distinct((3, 4)),)),
    ("linspace", lambda a, b: np.linspace(a, b, 5), (np.array(0.5), np.array(2.0))),
    ("diag", np.diag, (X[0],)),
    ("diagonal", np.diagonal, (X,)),
    ("triu", np.triu, (X,)),
    ("tril", lambda x: np.tril(x, -1), (X,)),
    ("select", lambda x, y: np.select([X > 1, X < -1], [x, y], 0.5), (X, Y)),
    # linear algebra
    ("dot", np.dot, (X, YT)),
    ("dot vector", np.dot, (X, Y[0])),
    ("matmul", np.matmul, (X, YT)),
    ("tensordot", lambda x, y: np.tensordot(x, y, axes=([1], [1])), (X, Y)),
    ("einsum", lambda x, y: np.einsum("ij,kj->ik", x, y), (X, Y)),
    ("outer", np.outer, (X[0], Y[1])),
    ("inner", np.inner, (X, Y)),
    ("kron", np.kron, (X[:2, :2], Y[:2, :3])),
    ("cross", np.cross, (X[:, :3], Y[:, :3])),
    ("trace", np.trace, (X[:, :3],)),
    ("linalg.inv", np.linalg.inv, (_spd(3),)),
    ("linalg.solve", np.linalg.solve, (_spd(3), X[:, :2])),
    ("linalg.det", np.linalg.det, (_spd(3),)),
    ("linalg.slogdet", lambda a: np.linalg.slogdet(a)[1], (_spd(3),)),
]


@pytest.mark.parametrize("name, function, inputs", CASES, ids=[case[0] for case in CASES])
def test_numpy_call_on_tensors_records_the_op_with_numpys_value_and_a_true_gradient(
        name, function, inputs):
    expected = function(*inputs)  # NumPy itself, on arrays
    tensors = [tg.Tensor(x, requires_grad=True) for x in inputs]
    out = function(*tensors)
    assert isinstance(out, tg.Tensor) and out.requires_grad and out.op is not None
    assert out.shape == np.shape(expected) and out.dtype == np.asarray(expected).dtype
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    weights = _values(np.shape(expected), seed=7)
    tg.check_grads(lambda *xs: np.sum(function(*xs) * weights), *inputs)


@pytest.mark.parametrize("ufunc, tg_name", [
    (np.sin, "sin"), (np.subtract, "sub"), (np.multiply, "mul"), (np.divide, "div"),
    (np.negative, "neg"), (np.absolute, "abs"), (np.matmul, "matmul"), (np.maximum, "maximum")])
def test_a_ufunc_records_tinygraphs_op_of_that_name(ufunc, tg_name):
    t = tg.Tensor(_values((2, 2)), requires_grad=True)
    out = ufunc(*[t] * ufunc.nin)
    assert out.op is getattr(tg, tg_name) or out.op.name == getattr(tg, tg_name).name


def test_second_derivatives_go_through_dispatch():
    x = _values((3,))
    hessian = tg.hessian(lambda v: np.sum(np.sin(v) * np.exp(v)))(x)
    np.testing.assert_allclose(hessian, np.diag(2 * np.cos(x) * np.exp(x)), rtol=1e-10)


@pytest.mark.parametrize("function, shape", [
    (np.floor, (3, 4)), (np.ceil, (3, 4)), (np.sign, (3, 4)), (np.rint, (3, 4)),
    (np.round, (3, 4)), (np.trunc, (3, 4))])
def test_piecewise_constant_functions_have_numpys_values_and_zero_gradient(function, shape):
    x = _values(shape, avoid=0.0) * 2.3
    np.testing.assert_array_equal(function(tg.Tensor(x)).data, function(x))
    # d/dv (f(v) v) = f(v) + f'(v) v, with f' = 0
    np.testing.assert_array_equal(tg.grad(lambda v: np.sum(function(v) * v))(x), function(x))


def test_astype_keeps_the_derivative_to_floats_and_drops_it_to_integers():
    x = np.array([1.7, -2.3, 0.4])
    np.testing.assert_array_equal(tg.grad(lambda v: np.sum(np.astype(v, np.float32) * 2.0))(x),
                                  [2.0, 2.0, 2.0])
    # d/dv (int(v) v) = int(v): the rounded factor is a constant
    np.testing.assert_array_equal(tg.grad(lambda v: np.sum(np.astype(v, np.int64) * v))(x),
                                  [1.0, -2.0, 0.0])
    as_ints = tg.grad(lambda v: tnp.sum(tnp.array([v[0], v[1]], dtype=np.int64) * v[:2]))(x)
    np.testing.assert_array_equal(as_ints, [1.0, -2.0, 0.0])


def test_comparisons_with_an_array_on_the_left_give_boolean_tensors():
    t = tg.Tensor(X, requires_grad=True)
    for result, expected in ((Y < t, Y < X), (Y >= t, Y >= X), (np.greater(Y, t), Y > X),
                             (np.equal(X, t), np.ones_like(X, bool)),
                             (np.not_equal(Y, t), Y != X)):
        assert isinstance(result, tg.Tensor) and result.dtype == np.bool_
        assert not result.requires_grad
        np.testing.assert_array_equal(result.data, expected)


# ---------------------------------------------------------------------------------------------
# What dispatch refuses
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, named", [
    (lambda t: np.fft.fft(t), "numpy.fft.fft"),
    (lambda t: np.interp(t, X[0], Y[0]), "numpy.interp"),
    (lambda t: np.linalg.qr(t), "numpy.linalg.qr"),
    (lambda t: np.frexp(t), "numpy.frexp"),
    (lambda t: np.add.outer(t, t), "numpy.add.outer"),
    (lambda t: np.add.at(t, [0], 1.0), "numpy.add.at"),
    (lambda t: np.maximum.accumulate(t), "numpy.maximum.accumulate"),
    (lambda t: np.subtract.reduce(t), "numpy.subtract.reduce"),
])
def test_a_numpy_function_without_a_tinygraph_op_raises_a_type_error_naming_it(call, named):
    t = tg.Tensor(X, requires_grad=True)
    with pytest.raises(TypeError, match=f"tinygraph has no differentiable {named} "):
        call(t)


def test_writing_into_out_is_refused_with_the_reason():
    t = tg.Tensor(X, requires_grad=True)
    with pytest.raises(TypeError, match=r"numpy.sin\(\.\.\., out=\.\.\.\).*into a Tensor"):
        np.sin(X, out=t)
    with pytest.raises(TypeError, match=r"numpy.add\(\.\.\., out=\.\.\.\).*into an array"):
        np.add(t, 1.0, out=np.empty_like(X))
    array = X.copy()
    with pytest.raises(TypeError, match="array = array \\+ tensor"):
        array += t
    np.testing.assert_array_equal(array, X)  # nothing was written
    with pytest.raises(TypeError, match="numpy.sum.*out="):
        np.sum(t, out=np.empty(()))
    with pytest.raises(TypeError, match="numpy.exp: tinygraph does not follow the options where"):
        np.exp(t, where=X > 0)


def test_a_rule_calling_numpy_on_tensors_is_not_recorded_through_dispatch():
    from tinygraph.state import STATE

    previous, STATE.rule_op = STATE.rule_op, "my_op"
    try:
        with pytest.raises(TypeError, match="my_op: its backward rule calls numpy.cos"):
            np.cos(tg.Tensor(X, requires_grad=True))
        with pytest.raises(TypeError, match="my_op: its backward rule calls numpy.sum"):
            np.sum(tg.Tensor(X, requires_grad=True))
        assert np.shape(tg.Tensor(X)) == X.shape  # shapes stay free to ask
    finally:
        STATE.rule_op = previous


def test_a_rule_with_an_array_on_the_left_of_an_operator_gets_second_derivatives():
    weights = _values((3,), seed=3)

    @tg.primitive(register=False)
    def scale(x):
        return x * weights

    scale.defvjp(lambda grad_out, out, x: weights * grad_out)  # np.multiply(array, Tensor)
    hessian = tg.hessian(lambda v: tg.sum(scale(v) ** 2))(_values((3,)))
    np.testing.assert_allclose(hessian, np.diag(2 * weights ** 2))


# ---------------------------------------------------------------------------------------------
# Answered without recording: shapes, dtypes, tests on values
# ---------------------------------------------------------------------------------------------

def test_shape_questions_are_answered_without_recording():
    t = tg.Tensor(X.astype(np.float32), requires_grad=True)
    assert np.shape(t) == (3, 4) and np.ndim(t) == 2 and np.size(t) == 12
    assert np.size(t, 1) == 4
    assert np.result_type(t, 1.0) == np.float32 and np.result_type(t, X) == np.float64
    assert not np.iscomplexobj(t) and np.isrealobj(t)
    for like in (np.zeros_like(t), np.ones_like(t, dtype=np.float64), np.empty_like(t),
                 np.full_like(t, 2.0)):
        assert type(like) is np.ndarray and like.shape == (3, 4)
    assert np.full_like(t, 2.0).dtype == np.float32 and (np.full_like(t, 2.0) == 2).all()


def test_full_like_with_a_tensor_fill_value_is_recorded():
    x = _values((3,))
    got = tg.grad(lambda v: np.sum(np.full_like(v[:2], v[0], shape=(3, 4)) * X))(x)
    np.testing.assert_allclose(got, [X.sum(), 0, 0])


def test_tests_on_values_run_on_the_data_outside_traced_functions_only():
    t = tg.Tensor(_distinct((3, 4)), requires_grad=True)
    assert np.allclose(t, t.data) and np.array_equal(t, t.data)
    np.testing.assert_array_equal(np.argsort(t, axis=1), np.argsort(t.data, axis=1))
    assert np.count_nonzero(t > 0) == np.count_nonzero(t.data > 0)
    assert np.all(np.isfinite(t)) and not np.any(np.isnan(t))

    def traced(v):
        if np.allclose(v, 0.0):
            return v
        return v * 2

    with pytest.raises(tg.TraceError, match="numpy.allclose"):
        tg.trace(traced)(X)


# ---------------------------------------------------------------------------------------------
# Behaviour kept
# ---------------------------------------------------------------------------------------------

def test_array_matmul_tensor_still_gives_a_tensor_with_its_gradient():
    w = _values((4, 2))
    out = X @ tg.Tensor(w, requires_grad=True)
    assert isinstance(out, tg.Tensor) and out.op.name == "matmul"
    np.testing.assert_allclose(tg.grad(lambda v: np.sum(X @ v))(w), X.T @ np.ones((3, 2)))


def test_tensors_stay_hashable_and_convert_to_their_data():
    t, u = tg.Tensor(X), tg.Tensor(Y)
    assert {t: 1, u: 2}[t] == 1 and len({t, u, t}) == 2
    assert np.asarray(t) is t.data
    stacked = np.array([t, u])  # NumPy's constructor: the data, a constant (documented)
    assert type(stacked) is np.ndarray and np.array_equal(stacked, np.stack([X, Y]))


def test_numpys_array_constructor_on_tensors_is_refused_inside_a_trace():
    with pytest.raises(tg.TraceError):
        tg.trace(lambda v: tg.sum(tg.Tensor(np.array([v, v]))))(X[0])


# ---------------------------------------------------------------------------------------------
# tinygraph.numpy
# ---------------------------------------------------------------------------------------------

def test_tinygraph_numpy_maps_differentiable_names_to_tinygraphs_ops():
    assert tnp.sin is tg.sin and tnp.sum is tg.sum and tnp.max is tg.max
    assert tnp.abs is tnp.absolute and tnp.dot is tg.dot and tnp.concatenate is tg.concatenate
    assert tnp.acos is tg.arccos and tnp.pow is tg.power  # NumPy's other spellings
    assert tnp.trace is not tg.trace and tnp.trace(tg.Tensor(np.eye(3))).data == 3.0
    assert tnp.linalg.inv is tg.linalg.inv
    import tinygraph.numpy.linalg as tlinalg

    assert tlinalg is tnp.linalg and tlinalg.det is tg.linalg.det


def test_tinygraph_numpy_passes_the_rest_through_to_numpy():
    assert tnp.pi == np.pi and tnp.e == np.e and tnp.inf == np.inf and np.isnan(tnp.nan)
    assert tnp.newaxis is None and tnp.float32 is np.float32 and tnp.ndarray is np.ndarray
    assert tnp.random is np.random and tnp.fft is np.fft
    assert tnp.linalg.eigh is np.linalg.eigh
    np.testing.assert_array_equal(tnp.identity(2), np.eye(2))  # NumPy's, not tg.identity
    assert tnp.zeros((2, 3)).shape == (2, 3) and tnp.ones(2).dtype == np.float64
    np.testing.assert_array_equal(tnp.arange(3), [0, 1, 2])
    np.testing.assert_array_equal(tnp.eye(2), np.eye(2))
    assert tnp.full((2,), 3.0).tolist() == [3.0, 3.0] and tnp.empty(2).shape == (2,)
    assert type(tnp.zeros_like(tg.Tensor(X))) is np.ndarray
    np.testing.assert_allclose(tnp.interp([0.5], [0, 1], [0, 2]), [1.0])  # arrays: NumPy
    assert tnp.sin(np.pi / 2) == 1.0 and type(tnp.sum(X, axis=0)) is np.ndarray
    with pytest.raises(AttributeError, match="tinygraph.numpy' has no attribute 'sigmoid'"):
        tnp.sigmoid  # noqa: B018 - tinygraph's, not NumPy's: not mirrored
    with pytest.raises(AttributeError):
        tnp.__path__  # noqa: B018


def test_tinygraph_numpy_refuses_tensors_where_numpy_has_no_op():
    t = tg.Tensor(X, requires_grad=True)
    with pytest.raises(TypeError, match="tinygraph has no differentiable numpy.full "):
        tnp.full((3, 4), t)
    with pytest.raises(TypeError, match="tinygraph has no differentiable numpy.interp "):
        tnp.interp(t, X[0], Y[0])
    with pytest.raises(TypeError, match="tinygraph has no differentiable numpy.linalg.eigh "):
        tnp.linalg.eigh(t)


def test_tinygraph_numpy_array_builds_a_recorded_tensor_from_tensors():
    a, b = np.array(1.5), np.array(-0.5)
    out = tnp.array([tg.Tensor(a, requires_grad=True), tg.Tensor(b), 3.0])
    assert isinstance(out, tg.Tensor) and out.requires_grad
    np.testing.assert_array_equal(out.data, [1.5, -0.5, 3.0])

    def f(x, y):
        matrix = tnp.array([[x, 2.0 * y], [x * y, 1.0]])
        return tnp.sum(matrix * np.array([[1.0, 2.0], [3.0, 4.0]]))

    gx, gy = tg.grad(f, argnums=(0, 1))(a, b)
    assert gx == 1.0 + 3.0 * b and gy == 4.0 + 3.0 * a
    rows = tnp.array([tg.Tensor(X[0]), X[1]], dtype=np.float32, ndmin=3)
    assert rows.shape == (1, 2, 4) and rows.dtype == np.float32
    plain = tnp.array([[1, 2], [3, 4]])
    assert type(plain) is np.ndarray and plain.dtype == np.array([[1, 2]]).dtype
    t = tg.Tensor(X)
    assert tnp.asarray(t) is t and tnp.asarray(t, dtype=np.float32).dtype == np.float32
    assert isinstance(tnp.asarray([t, t]), tg.Tensor)
    assert type(tnp.asarray([1.0])) is np.ndarray
    assert tnp.ascontiguousarray(X.T).flags["C_CONTIGUOUS"] and tnp.asanyarray(t) is t
    copied = tnp.copy(X)
    copied[0, 0] = 99.0
    assert X[0, 0] != 99.0 and tnp.copy(t) is t


def test_tinygraph_numpy_where_with_one_argument_gives_indices():
    (rows,) = tnp.where(np.array([0.0, 2.0, 3.0]))
    np.testing.assert_array_equal(rows, [1, 2])
    assert isinstance(tnp.where(X > 0, tg.Tensor(X), 0.0), tg.Tensor)


# ---------------------------------------------------------------------------------------------
# NumPy programs made differentiable by ``import tinygraph.numpy as np``
# ---------------------------------------------------------------------------------------------

def _mlp_loss(params, inputs, targets):
    """A tanh MLP's mean squared error, written as NumPy code."""
    hidden = inputs
    for weights, bias in params:
        hidden = tnp.tanh(tnp.dot(hidden, weights) + bias)
    return tnp.mean(tnp.sum((hidden - targets) ** 2, axis=1))


def test_a_numpy_mlp_is_differentiated_by_tg_grad():
    rng = np.random.default_rng(0)
    inputs, targets = rng.normal(size=(6, 3)), rng.uniform(-0.5, 0.5, size=(6, 2))
    params = [(rng.normal(size=(3, 5)), rng.normal(size=5)),
              (rng.normal(size=(5, 2)), rng.normal(size=2))]
    grads = tg.grad(_mlp_loss)(params, inputs, targets)
    assert [g.shape for pair in grads for g in pair] == [(3, 5), (5,), (5, 2), (2,)]
    tg.check_grads(_mlp_loss, params, inputs, targets, argnums=0)
    # the same function runs as plain NumPy on arrays
    assert type(_mlp_loss(params, inputs, targets)) in (np.float64, np.ndarray)


def _logistic_loss(weights, bias, inputs, labels):
    """Mean negative log-likelihood of logistic regression, as NumPy code."""
    logits = tnp.dot(inputs, weights) + bias
    log_p = -tnp.logaddexp(0.0, -logits)
    log_not_p = -tnp.logaddexp(0.0, logits)
    return -tnp.mean(labels * log_p + (1 - labels) * log_not_p)


def test_a_numpy_logistic_regression_is_differentiated_and_traced():
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(8, 3))
    labels = (inputs @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.float64)
    weights, bias = rng.normal(size=3), np.array(0.1)
    tg.check_grads(_logistic_loss, weights, bias, inputs, labels, argnums=(0, 1))
    step = tg.trace(tg.value_and_grad(_logistic_loss, argnums=(0, 1)))
    value, (g_w, g_b) = step(weights, bias, inputs, labels)
    expected_value, (e_w, e_b) = tg.value_and_grad(_logistic_loss, argnums=(0, 1))(
        weights, bias, inputs, labels)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(g_w, e_w, rtol=1e-12)
    np.testing.assert_allclose(g_b, e_b, rtol=1e-12)


def test_numpy_options_tinygraph_does_not_take_are_one_line_errors_naming_them():
    t = tg.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    with pytest.raises(TypeError, match=r"^numpy\.sum on Tensors: .* option dtype= \(at "):
        np.sum(t, dtype=np.float32)
    with pytest.raises(TypeError, match=r"^numpy\.reshape on Tensors: .* option order="):
        np.reshape(t, (3,), order="F")


def test_numpy_where_with_one_argument_gives_the_indices():
    t = tg.Tensor(np.array([1.0, -2.0, 3.0]))
    (indices,) = np.where(t > 0)
    assert np.array_equal(indices, [0, 2])


def test_saving_and_printing_a_tensor_use_its_data(tmp_path):
    """np.save(path, W) is how weights are stored: it writes the data (it used to be refused
    as 'not differentiable'); inside tg.trace it is refused, as replay would not run it."""
    W = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    np.save(tmp_path / "w.npy", W)
    np.savez(tmp_path / "w.npz", W=W)
    np.savetxt(tmp_path / "w.txt", W)
    assert np.array_equal(np.load(tmp_path / "w.npy"), W.data)
    with np.load(tmp_path / "w.npz") as npz:
        assert np.array_equal(npz["W"], W.data)
    assert np.array_equal(np.loadtxt(tmp_path / "w.txt"), W.data)
    assert np.array2string(W) == np.array2string(W.data)

    def saves(x):
        np.save(tmp_path / "x.npy", x)
        return x * 2

    with pytest.raises(tg.TraceError, match="numpy.save on a Tensor"):
        tg.trace(saves)(np.ones(2))
