"""Shape and indexing ops against NumPy: values (float64 and float32), gradients, NumPy's
semantics (negative axes, masks, empty indices), and one-line errors."""

import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.state import TraceError

RNG = np.random.default_rng(0)
X = RNG.permutation(60).reshape(3, 4, 5) / 7.0 - 4.0  # distinct values: sorting has no ties
COORDS = np.array([0.0, 0.5, 1.5, 1.75, 3.0])

# (id, tinygraph call, NumPy call): each gets the module (tg or np) and the input x
CASES = [
    ("concatenate", lambda m, x: m.concatenate([x, x[:, :2]], axis=1), None),
    ("concatenate -1", lambda m, x: m.concatenate((x, 2 * x), axis=-1), None),
    ("concatenate None", lambda m, x: m.concatenate([x, x[0]], axis=None), None),
    ("stack", lambda m, x: m.stack([x, x * 2, x], axis=0), None),
    ("stack -1", lambda m, x: m.stack([x, x * 2], axis=-1), None),
    ("stack -2", lambda m, x: m.stack([x[0], x[1]], axis=-2), None),
    ("hstack", lambda m, x: m.hstack([x, x[:, :1]]), None),
    ("hstack 1-d", lambda m, x: m.hstack([x[0, 0], x[1, 1, :2]]), None),
    ("vstack", lambda m, x: m.vstack([x[0, 0], x[0]]), None),
    ("row_stack", lambda m, x: m.row_stack([x[0, 0], x[1, 1]]),
     lambda m, x: np.vstack([x[0, 0], x[1, 1]])),
    ("dstack", lambda m, x: m.dstack([x[0], x[1], x[2][:, :, None]]), None),
    ("dstack 1-d", lambda m, x: m.dstack([x[0, 0], x[1, 0]]), None),
    ("column_stack", lambda m, x: m.column_stack([x[0, 0], x[:2, 0].T, x[1, 0]]), None),
    ("append", lambda m, x: m.append(x, x[0]), None),
    ("append axis", lambda m, x: m.append(x, x[:, :1], axis=-2), None),
    ("split", lambda m, x: m.split(x, 5, axis=-1), None),
    ("split indices", lambda m, x: m.split(x, [1, 3], axis=1), None),
    ("array_split", lambda m, x: m.array_split(x, 3, axis=-1), None),
    ("array_split indices", lambda m, x: m.array_split(x, [-2, 9], axis=2), None),
    ("hsplit", lambda m, x: m.hsplit(x, 2), None),
    ("vsplit", lambda m, x: m.vsplit(x, [1]), None),
    ("dsplit", lambda m, x: m.dsplit(x, [2, 3]), None),
    ("squeeze", lambda m, x: m.squeeze(x[:, :1, None]), None),
    ("squeeze axis", lambda m, x: m.squeeze(x[:, :1, None], axis=-2), None),
    ("expand_dims", lambda m, x: m.expand_dims(x, -1), None),
    ("expand_dims tuple", lambda m, x: m.expand_dims(x, (0, -2)), None),
    ("ravel", lambda m, x: m.ravel(x), None),
    ("flatten", lambda m, x: m.flatten(x[:, 1]), lambda m, x: x[:, 1].flatten()),
    ("reshape -1", lambda m, x: m.reshape(x, -1), None),
    ("reshape (-1, 5)", lambda m, x: m.reshape(x, (-1, 5)), None),
    ("atleast_1d", lambda m, x: m.atleast_1d(x[0, 0, 0]), None),
    ("atleast_2d", lambda m, x: m.atleast_2d(x[0, 0]), None),
    ("atleast_3d 1-d", lambda m, x: m.atleast_3d(x[0, 0]), None),
    ("atleast_3d 2-d", lambda m, x: m.atleast_3d(x[0]), None),
    ("atleast_3d 0-d", lambda m, x: m.atleast_3d(x[0, 0, 0]), None),
    ("atleast several", lambda m, x: m.atleast_2d(x[0, 0, 0], x), None),
    ("repeat", lambda m, x: m.repeat(x, 2, axis=-1), None),
    ("repeat flat", lambda m, x: m.repeat(x[0], 3), None),
    ("repeat counts", lambda m, x: m.repeat(x, [2, 0, 1], axis=0), None),
    ("repeat 0", lambda m, x: m.repeat(x, 0, axis=1), None),
    ("tile", lambda m, x: m.tile(x[0], (2, 1, 3)), None),
    ("tile int", lambda m, x: m.tile(x, 2), None),
    ("pad constant", lambda m, x: m.pad(x, ((1, 0), (0, 2), (2, 1))), None),
    ("pad value", lambda m, x: m.pad(x, 1, constant_values=2.5), None),
    ("pad values per axis",
     lambda m, x: m.pad(x, 1, constant_values=((1.0, 2.0), (3.0, 4.0), (5.0, 6.0))), None),
    ("pad edge", lambda m, x: m.pad(x, (1, 2), mode="edge"), None),
    ("pad reflect", lambda m, x: m.pad(x, ((0, 3), (2, 1), (4, 0)), mode="reflect"), None),
    ("pad symmetric", lambda m, x: m.pad(x, 2, mode="symmetric"), None),
    ("pad wrap", lambda m, x: m.pad(x, ((1, 4), (2, 0), (0, 6)), mode="wrap"), None),
    ("flip", lambda m, x: m.flip(x), None),
    ("flip -1", lambda m, x: m.flip(x, -1), None),
    ("flip axes", lambda m, x: m.flip(x, (0, -1)), None),
    ("flipud", lambda m, x: m.flipud(x), None),
    ("fliplr", lambda m, x: m.fliplr(x), None),
    ("rot90", lambda m, x: m.rot90(x), None),
    ("rot90 2", lambda m, x: m.rot90(x, 2, axes=(1, 2)), None),
    ("rot90 -1", lambda m, x: m.rot90(x, -1, axes=(-1, 0)), None),
    ("roll", lambda m, x: m.roll(x, 7), None),
    ("roll axis", lambda m, x: m.roll(x, -1, axis=-2), None),
    ("roll axes", lambda m, x: m.roll(x, (1, -2), axis=(0, 2)), None),
    ("swapaxes", lambda m, x: m.swapaxes(x, 0, -1), None),
    ("moveaxis", lambda m, x: m.moveaxis(x, 0, -1), None),
    ("moveaxis several", lambda m, x: m.moveaxis(x, [0, 1], [-1, 0]), None),
    ("rollaxis", lambda m, x: m.rollaxis(x, -1), None),
    ("rollaxis start", lambda m, x: m.rollaxis(x, 0, 2), None),
    ("transpose negative", lambda m, x: m.transpose(x, (-1, 0, 1)), None),
    ("diff", lambda m, x: m.diff(x), None),
    ("diff 2 axis 0", lambda m, x: m.diff(x, 2, axis=0), None),
    ("diff prepend append", lambda m, x: m.diff(x, axis=-2, prepend=x[:, :1], append=1.5),
     None),
    ("gradient", lambda m, x: m.gradient(x), None),
    ("gradient axis", lambda m, x: m.gradient(x, axis=-1), None),
    ("gradient step", lambda m, x: m.gradient(x, 0.5, axis=(0, 2)), None),
    ("gradient edge 2", lambda m, x: m.gradient(x, 2.0, edge_order=2, axis=1), None),
    ("gradient coords", lambda m, x: m.gradient(x, COORDS, axis=-1), None),
    ("gradient coords edge 2", lambda m, x: m.gradient(x, COORDS, axis=2, edge_order=2),
     None),
    ("sort", lambda m, x: m.sort(x), None),
    ("sort axis", lambda m, x: m.sort(x, axis=0), None),
    ("sort flat", lambda m, x: m.sort(x, axis=None), None),
    ("partition", lambda m, x: m.partition(x, 2), None),
    ("partition axis", lambda m, x: m.partition(x, (0, 2), axis=-2), None),
    ("select", lambda m, x: m.select([x > 0, x < -1], [x, 2 * x], default=-1.0), None),
    ("take_along_axis", lambda m, x: m.take_along_axis(
        x, np.array([[[0, -1, 2, 2]]]).reshape(1, 4, 1), axis=-1), None),
]


def _as_list(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_values_match_numpy(case, dtype):
    _, ours, theirs = case
    x = X.astype(dtype)
    expected = _as_list((theirs or ours)(np, x))
    got = _as_list(ours(tg, tg.Tensor(x)))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert isinstance(g, tg.Tensor) and g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_allclose(g.data, e, rtol=1e-6 if dtype == np.float32 else 1e-13)
    plain = _as_list(ours(tg, x))  # arrays in, arrays out, the same values
    assert all(isinstance(p, np.ndarray) for p in plain)
    for p, e in zip(plain, expected):
        np.testing.assert_allclose(p, e, rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_float32_gradients_stay_float32(case):
    x = tg.Tensor(X.astype(np.float32), requires_grad=True)
    parts = _as_list(case[1](tg, x))
    total = parts[0].sum()
    for part in parts[1:]:
        total = total + part.sum() * 2
    total.backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


GRADIENT_CASES = [c for c in CASES if not c[0].startswith(("select", "sort", "partition"))]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_composites_pass_gradient_checks(case):
    _, ours, theirs = case
    weights = [RNG.normal(size=np.shape(p)) for p in _as_list((theirs or ours)(np, X))]

    def loss(x):
        parts = _as_list(ours(tg, x))
        return sum(tg.sum(p * p * w) for p, w in zip(parts, weights))

    tg.check_grads(loss, X, order=2, mode="directional")


def test_sort_and_partition_gradients_follow_the_permutation():
    x = X[0]
    weights = RNG.normal(size=x.shape)
    tg.check_grads(lambda x: tg.sum(tg.sort(x, axis=0) ** 3 * weights), x, order=2)
    tg.check_grads(lambda x: tg.sum(tg.partition(x, 1) ** 2 * weights), x, order=2)
    grad = tg.grad(lambda x: tg.sum(tg.sort(x) * np.arange(5.0)))(x)
    assert np.array_equal(grad, np.argsort(np.argsort(x, axis=-1), axis=-1))  # each one's rank
    hessian = tg.hessian(lambda v: tg.sum(tg.sort(v) ** 3 * np.arange(1.0, 6.0)))(x[0])
    assert np.allclose(hessian, np.diag(6 * x[0] * (np.argsort(np.argsort(x[0])) + 1)))


def test_sort_in_a_traced_step_sorts_each_new_input():
    weights = np.arange(4.0)
    step = tg.trace(tg.value_and_grad(lambda x: tg.sum(tg.sort(x) * weights)))
    for x in (np.array([3.0, 1.0, 2.0, 0.0]), np.array([0.0, 2.0, 1.0, 3.0])):
        value, grad = step(x)
        assert np.isclose(value, np.sort(x) @ weights)
        assert np.array_equal(grad, weights[np.argsort(np.argsort(x))])


def test_a_traced_step_of_shape_ops_matches_eager():
    weights = RNG.normal(size=(3, 9))

    def loss(x):
        left, right = tg.split(x, [2], axis=1)
        y = tg.concatenate([tg.flip(right, -1), tg.roll(left, 1, axis=0)], axis=1)
        y = tg.pad(y, ((0, 0), (2, 3)), mode="reflect")
        y = tg.repeat(tg.sort(y, axis=1)[:, :3], 3, axis=1) + tg.tile(
            tg.diff(x, axis=0)[:1, :3], (3, 3))
        return tg.sum(y ** 2 * weights) + tg.sum(tg.gradient(x, axis=-1) ** 2)

    step = tg.trace(tg.value_and_grad(loss))
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=(3, 4))
        value, grad = step(x)
        eager_value, eager_grad = tg.value_and_grad(loss)(x)
        assert np.isclose(value, eager_value) and np.allclose(grad, eager_grad)


EMPTY_CASES = [
    lambda m, x: m.concatenate([x, np.ones((2, 3))]),
    lambda m, x: m.stack([x, x], -1),
    lambda m, x: m.array_split(x, 2),
    lambda m, x: m.repeat(x, 2, axis=-2),
    lambda m, x: m.pad(x, 1),
    lambda m, x: m.roll(x, 1, axis=-1),
    lambda m, x: m.sort(x, axis=0),
    lambda m, x: m.diff(x, axis=0),
    lambda m, x: m.gradient(x, axis=1),
]


@pytest.mark.parametrize("number", range(len(EMPTY_CASES)))
def test_size_zero_axes_work_as_in_numpy(number):
    call = EMPTY_CASES[number]
    x = tg.Tensor(np.zeros((0, 3)), requires_grad=True)
    got, expected = _as_list(call(tg, x)), _as_list(call(np, np.zeros((0, 3))))
    assert [g.shape for g in got] == [e.shape for e in expected]
    total = got[0].sum()
    for part in got[1:]:
        total = total + part.sum()
    total.backward()
    assert x.grad.shape == (0, 3)


def test_split_and_concatenate_round_trip_gradients():
    x = X[:2]
    weights = RNG.normal(size=x.shape)

    def swapped(x):  # the pieces joined in reverse order
        return tg.concatenate(tg.split(x, [1, 3], axis=1)[::-1], axis=1)

    assert np.array_equal(swapped(x), np.concatenate(np.split(x, [1, 3], axis=1)[::-1], axis=1))
    grad = tg.grad(lambda x: tg.sum(swapped(x) * weights))(x)
    assert np.array_equal(grad, weights[:, [3, 1, 2, 0]])  # columns x3 x1 x2 x0 were joined
    # the exact inverse: reading the round trip back gives each element its own weight
    back = tg.grad(lambda x: tg.sum(tg.concatenate(tg.array_split(x, 3, axis=-1), axis=-1)
                                    * weights))(x)
    assert np.array_equal(back, weights)
    tg.check_grads(lambda x: tg.sum(swapped(x) ** 3 * weights), x, order=2)
    pieces = lambda x: tg.stack(tg.split(x, 4, axis=1), axis=-1)  # noqa: E731
    tg.check_grads(lambda x: tg.sum(pieces(x) ** 2 * np.arange(4.0)), x, order=2)


def test_concatenate_is_a_variadic_primitive_with_one_joint_rule():
    op = tg.registry()["concatenate"]
    a, b = tg.Tensor(X[0], requires_grad=True), tg.Tensor(X[1, :2], requires_grad=True)
    out = tg.concatenate([a, b])
    assert out.op is op and out.inputs == (a, b)
    (out * out).sum().backward()
    assert np.array_equal(a.grad, 2 * X[0]) and np.array_equal(b.grad, 2 * X[1, :2])


def test_linspace_is_differentiable_in_its_endpoints():
    weights = RNG.normal(size=5)
    fraction = np.arange(5) / 4

    def f(a, b):
        return tg.sum(tg.linspace(a, b, 5) * weights)

    grad_a, grad_b = tg.grad(f, argnums=(0, 1))(1.0, 3.0)
    assert np.isclose(grad_a, weights @ (1 - fraction)) and np.isclose(grad_b, weights @ fraction)
    tg.check_grads(lambda a, b: tg.sum(tg.linspace(a, b, 4, endpoint=False, axis=-1) ** 2),
                   np.array([0.5, -1.0]), np.array([[2.0, 3.0]]), order=2)
    start, stop = tg.Tensor(np.float32(0.0)), tg.Tensor(np.array([1.0, 2.0], np.float32))
    for kwargs in ({}, {"endpoint": False}, {"axis": -1}, {"num": 1}, {"num": 0}):
        got = tg.linspace(start, stop, **{"num": 5, **kwargs})
        expected = np.linspace(start.data, stop.data, **{"num": 5, **kwargs})
        assert got.dtype == expected.dtype == np.float32 and np.allclose(got.data, expected)
    samples, step = tg.linspace(tg.Tensor(0.0), 2.0, 5, retstep=True)
    assert np.array_equal(samples.data, np.linspace(0, 2, 5)) and np.isclose(step.data, 0.5)
    assert tg.linspace(tg.Tensor(0.0), 2.0, 5).data[-1] == 2.0  # the end exactly
    assert isinstance(tg.linspace(0.0, 1.0, 3), np.ndarray)  # no Tensor: NumPy's own


def test_select_takes_the_first_condition_that_holds():
    x = tg.Tensor(X[0], requires_grad=True)
    out = tg.select([x > 0, x > -1], [x * 2, x * 3], default=x)
    out.sum().backward()
    assert np.array_equal(x.grad, np.select([X[0] > 0, X[0] > -1], [2.0, 3.0], default=1.0))
    assert tg.select([x > 0], [x]).dtype == np.float64
    assert tg.select([x > 0], [tg.Tensor(X[0].astype(np.float32))]).dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Indexing: NumPy's rules for empty, negative, boolean and mixed indices, and their gradients
# ---------------------------------------------------------------------------------------------

MASK = np.array([True, False, True])
INDICES = [
    ("empty list", []),
    ("empty array", np.array([], dtype=int)),
    ("empty with slice", (np.array([], dtype=int), slice(1, None))),
    ("negative int", -1),
    ("negative array", np.array([-1, -3, -1])),
    ("negative tuple", (-2, np.array([-1, 0, -1]))),
    ("mask", MASK),
    ("mask list", [True, False, True]),
    ("mask all false", np.zeros(3, bool)),
    ("mask full shape", X[:, :, 0] > 0),
    ("mask and slice", (MASK, slice(1, None))),
    ("slice and mask", (slice(None), np.array([True, False, False, True]))),
    ("mask and ints", (MASK, np.array([0, 3]))),
    ("ellipsis and mask", (Ellipsis, np.array([False, True, True, False, True]))),
    ("mask list in tuple", (0, [False, True, True, False])),
    ("slice and empty list", (slice(None), [])),
]


@pytest.mark.parametrize("name, index", INDICES, ids=[i[0] for i in INDICES])
def test_indexing_follows_numpy_with_gradients(name, index):
    x = tg.Tensor(X, requires_grad=True)
    expected = X[index]  # NumPy itself takes lists: [] as no positions, booleans as a mask
    out = x[index]
    assert out.shape == expected.shape and np.array_equal(out.data, expected)
    (out * 3).sum().backward()
    counts = np.zeros(X.shape)
    np.add.at(counts, index, 3.0)
    assert np.array_equal(x.grad, counts)


def test_empty_list_index_gives_an_empty_result():
    out = tg.Tensor(np.arange(3.0))[[]]
    assert out.shape == (0,) and out.dtype == np.float64
    assert np.array_equal(tg.grad(lambda x: tg.sum(x[[]]))(np.arange(3.0)), np.zeros(3))


def test_tensor_held_masks_select_as_numpy():
    values = np.arange(4.0)
    t = tg.Tensor(values, requires_grad=True)
    picked = t[t > 1.5]  # a comparison gives a boolean Tensor
    assert np.array_equal(picked.data, [2.0, 3.0])
    (picked * picked).sum().backward()
    assert np.array_equal(t.grad, [0, 0, 4, 6])
    matrix = tg.Tensor(X[0], requires_grad=True)
    assert np.array_equal(matrix[matrix < 0].data, X[0][X[0] < 0])
    assert np.array_equal(matrix[1, tg.greater(matrix[0], 0)].data, X[0][1, X[0][0] > 0])
    assert np.array_equal(t[tg.Tensor([3, -1, 0])].data, [3.0, 3.0, 0.0])  # integers stay


def test_a_tensor_built_from_booleans_is_a_mask():
    mask = tg.Tensor(np.array([True, False, True, False]))
    assert mask.dtype == np.bool_ and not mask.requires_grad
    t = tg.Tensor(np.arange(4.0))
    assert np.array_equal(t[mask].data, [0.0, 2.0])
    grads = tg.grad(lambda x: tg.sum(x[mask] * x[mask]))(np.arange(4.0))
    assert np.array_equal(grads, [0.0, 0.0, 4.0, 0.0])
    with pytest.raises(TypeError, match="boolean Tensor"):
        tg.Tensor(np.array([True]), requires_grad=True)


def test_indexing_with_a_traced_tensor_refuses_to_freeze_it():
    def f(x, positions):
        return tg.sum(x[positions])

    with pytest.raises(TraceError, match="indexing with a Tensor"):
        tg.trace(f)(np.arange(4.0), np.array([0, 1]))
    step = tg.trace(lambda x, positions: tg.sum(tg.take_along_axis(x, positions, axis=0)))
    x = np.arange(4.0)
    assert step(x, np.array([0, 1])) == 1.0 and step(x, np.array([2, 3])) == 5.0


def test_negative_axes_transpose_gradient():
    w = np.arange(8.0).reshape(2, 2, 2)
    negative = tg.grad(lambda x: tg.sum(tg.transpose(x, axes=(-1, 0, 1)) * w))(w)
    positive = tg.grad(lambda x: tg.sum(tg.transpose(x, axes=(2, 0, 1)) * w))(w)
    assert np.array_equal(negative, positive)
    assert np.array_equal(negative, np.transpose(w, (1, 2, 0)))


def test_reshape_minus_one():
    t = tg.Tensor(X, requires_grad=True)
    for out in (t.reshape(-1), tg.reshape(t, -1), t.reshape(4, -1), tg.ravel(t)):
        assert out.size == X.size and np.array_equal(out.data.ravel(), X.ravel())
    (t.reshape(-1) * np.arange(60.0)).sum().backward()
    assert np.array_equal(t.grad, np.arange(60.0).reshape(X.shape))


def test_pad_takes_numpy_pad_widths_and_gradients_sum_the_copies():
    x = tg.Tensor(np.arange(3.0), requires_grad=True)
    tg.pad(x, (2, 0), mode="wrap").sum().backward()
    assert np.array_equal(x.grad, [1, 2, 2])  # [1 2 | 0 1 2]
    x.grad = None
    tg.pad(x, 1, constant_values=5.0).sum().backward()
    assert np.array_equal(x.grad, [1, 1, 1])


# ---------------------------------------------------------------------------------------------
# Errors: one line, naming the op, the shapes, and the caller's line
# ---------------------------------------------------------------------------------------------

T = tg.Tensor(np.zeros((2, 3)))
ERRORS = [
    (lambda: tg.concatenate([T, tg.Tensor(np.zeros((3, 2)))]), ValueError,
     "concatenate: shapes (2, 3) and (3, 2) differ outside axis 0"),
    (lambda: tg.concatenate([T, np.zeros(3)], axis=1), ValueError,
     "concatenate: inputs of shapes (2, 3) and (3,) have different numbers of dims"),
    (lambda: tg.concatenate([T, T], axis=2), ValueError,
     "concatenate: axis 2 is out of bounds for inputs of 2 dims"),
    (lambda: tg.concatenate([]), ValueError, "concatenate: needs at least one array"),
    (lambda: tg.stack([T, T[0]]), ValueError,
     "stack: all inputs need the same shape, got (2, 3), (3,)"),
    (lambda: tg.stack([T, T], axis=-4), np.exceptions.AxisError,
     "stack: axis -4 is out of bounds for 3 dims (input shape (2, 3))"),
    (lambda: tg.split(T, 2, axis=1), ValueError,
     "split: axis 1 of shape (2, 3) does not divide into 2 equal sections"),
    (lambda: tg.array_split(T, 0), ValueError, "array_split: the number of sections must be > 0"),
    (lambda: tg.vsplit(T[0], 1), ValueError, "vsplit: needs at least 2 dims, got shape (3,)"),
    (lambda: tg.squeeze(T, axis=1), ValueError, "squeeze: axis 1 of shape (2, 3) has size 3"),
    (lambda: tg.expand_dims(T, 3), np.exceptions.AxisError,
     "expand_dims: axis 3 is out of bounds for 3 dims (input shape (2, 3))"),
    (lambda: tg.swapaxes(T, 0, 2), np.exceptions.AxisError,
     "swapaxes: axis 2 is out of bounds for 2 dims"),
    (lambda: tg.moveaxis(T, [0, 1], [1]), ValueError,
     "moveaxis: 2 source axes but 1 destinations"),
    (lambda: tg.rot90(T, axes=(1, 1)), ValueError, "rot90: repeated axis in (1, 1)"),
    (lambda: tg.repeat(T, [1, 2], axis=1), ValueError,
     "repeat: 2 repeats for axis 1 of shape (2, 3) (need 1 or 3)"),
    (lambda: tg.repeat(T, -1), ValueError, "repeat: repeats may not be negative"),
    (lambda: tg.tile(T, (-1, 2)), ValueError, "tile: repetitions may not be negative"),
    (lambda: tg.pad(T, 1, mode="median"), ValueError, "pad: mode 'median' is not supported"),
    (lambda: tg.pad(T, ((1, 2), (0, 1), (1, 1))), ValueError,
     "pad: input shape (2, 3): pad_width ((1, 2), (0, 1), (1, 1)) does not fit 2 dims"),
    (lambda: tg.pad(T, -1), ValueError, "pad: input shape (2, 3): pad widths may not be "
     "negative"),
    (lambda: tg.flip(T, 2), np.exceptions.AxisError, "flip: inputs (2, 3)"),
    (lambda: tg.fliplr(T[0]), ValueError, "fliplr: needs at least 2 dims, got shape (3,)"),
    (lambda: tg.diff(T, axis=-3), np.exceptions.AxisError, "diff: axis -3 is out of bounds"),
    (lambda: tg.diff(T, n=-1), ValueError, "diff: order n must be >= 0, got -1"),
    (lambda: tg.gradient(T[:, :1], axis=1), ValueError,
     "gradient: axis 1 of shape (2, 1) has 1 elements; edge_order 1 needs at least 2"),
    (lambda: tg.gradient(T, np.arange(4.0), axis=1), ValueError,
     "gradient: coordinates of shape (4,) do not match axis 1 of shape (2, 3)"),
    (lambda: tg.gradient(T, 1.0, 2.0, 3.0), TypeError,
     "gradient: give one spacing, or one per axis (2), not 3"),
    (lambda: tg.sort(T, axis=2), np.exceptions.AxisError, "sort: axis 2 is out of bounds"),
    (lambda: tg.select([T > 0], [T, T]), ValueError,
     "select: 1 conditions but 2 choices"),
    (lambda: tg.select([T], [T]), TypeError, "select: condition 0 has dtype float64, not bool"),
    (lambda: tg.take_along_axis(T, np.full((2, 3), 0.5), axis=1), IndexError,
     "take_along_axis: inputs (2, 3), (2, 3) with axis 1 (indices need integer values"),
    (lambda: tg.take_along_axis(T, np.zeros(3, int), axis=1), ValueError,
     "take_along_axis: inputs (2, 3), (3,) with axis 1 (indices need integer values and the "
     "input's number of dims)"),
    (lambda: tg.roll(T, 1, axis=5), np.exceptions.AxisError, "roll: inputs (2, 3)"),
]


@pytest.mark.parametrize("call, kind, message", ERRORS, ids=[e[2].split(":")[0] + str(i)
                                                             for i, e in enumerate(ERRORS)])
def test_bad_input_gives_one_line_naming_op_and_shapes(call, kind, message):
    with pytest.raises(kind) as info:
        call()
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text and re.search(r"test_ops_shape\.py:\d+\)$", text), text
