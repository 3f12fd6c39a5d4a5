"""The linear algebra family against NumPy: values (float64 and float32), NumPy's shape rules,
gradients (second order for inv, solve, det), one-line errors naming the op."""

import re

import numpy as np
import pytest

import tinygraph as tg

RNG = np.random.default_rng(11)
DTYPES = [np.float64, np.float32]


def normal(*shape, dtype=np.float64):
    return RNG.normal(size=shape).astype(dtype)


def well_conditioned(*shape, dtype=np.float64):
    """I + small noise: far from singular."""
    return (np.eye(shape[-1]) + 0.2 * RNG.uniform(-1, 1, size=shape)).astype(dtype)


def tensors(*arrays):
    return [tg.Tensor(a, requires_grad=True) for a in arrays]


def assert_matches(out, expected, dtype):
    """``out`` (a Tensor) has NumPy's value, shape and the input dtype."""
    expected = np.asarray(expected)
    assert isinstance(out, tg.Tensor)
    assert out.shape == expected.shape and out.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert np.allclose(out.data, expected, rtol=tolerance, atol=tolerance)


def assert_grads_keep_dtype(out, inputs):
    tg.sum(out * np.ones(out.shape, out.dtype)).backward()
    for x in inputs:
        assert x.grad.dtype == x.dtype and x.grad.shape == x.shape


# ---------------------------------------------------------------------------------------------
# dot, tensordot, einsum
# ---------------------------------------------------------------------------------------------

def dot_shapes(a_ndim, b_ndim):
    a_shape = (2, 3, 4)[3 - a_ndim:]
    b_shape = {0: (), 1: (4,), 2: (4, 5), 3: (2, 4, 3)}[b_ndim]
    return a_shape, b_shape


@pytest.mark.parametrize("a_ndim", range(4))
@pytest.mark.parametrize("b_ndim", range(4))
def test_dot_follows_numpy_for_every_ndim_pair(a_ndim, b_ndim):
    a_shape, b_shape = dot_shapes(a_ndim, b_ndim)
    if a_ndim == 0 and b_ndim:  # a scalar times b: any b shape
        a_shape = ()
    a, b = normal(*a_shape), normal(*b_shape)
    for dtype in DTYPES:
        inputs = tensors(a.astype(dtype), b.astype(dtype))
        out = tg.dot(*inputs)
        assert_matches(out, np.dot(a, b).astype(dtype), dtype)
        assert_grads_keep_dtype(out, inputs)
    tg.check_grads(lambda a, b: tg.sum(tg.dot(a, b) ** 2), a, b, order=2)


def test_dot_on_arrays_returns_numpy_values():
    a, b = normal(3, 4), normal(4, 2)
    assert np.array_equal(tg.dot(a, b), np.dot(a, b))


@pytest.mark.parametrize("shapes, axes", [
    (((2, 3, 4), (3, 4, 5)), 2),
    (((2, 3), (3, 4)), 1),
    (((2, 3), (4, 5)), 0),
    (((3, 4, 2), (4, 5, 3)), ([0, 1], [2, 0])),
    (((3, 4, 2), (4, 5, 3)), ((-3, -2), (-1, 0))),
    (((2, 3), (3,)), (1, 0)),
    (((), (3,)), 0),
])
def test_tensordot_matches_numpy(shapes, axes):
    a, b = (normal(*shape) for shape in shapes)
    for dtype in DTYPES:
        inputs = tensors(a.astype(dtype), b.astype(dtype))
        out = tg.tensordot(*inputs, axes=axes)
        assert_matches(out, np.tensordot(a, b, axes=axes).astype(dtype), dtype)
        assert_grads_keep_dtype(out, inputs)
    tg.check_grads(lambda a, b: tg.sum(tg.tensordot(a, b, axes) ** 2), a, b, order=2)


EINSUM_TABLE = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ij,kj", [(2, 3), (4, 3)]),
    ("i,i", [(3,), (3,)]),
    ("i,i->", [(3,), (3,)]),
    ("i,j->ij", [(3,), (2,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("ij", [(2, 3)]),
    ("ji", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iij->j", [(3, 3, 2)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("iji->j", [(3, 2, 3)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("...i,...i->...", [(2, 3), (3,)]),
    ("...i,...i", [(2, 1, 3), (4, 3)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("i...->...", [(3, 2, 2)]),
    ("...", [(2, 3)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,ij->ij", [(1, 3), (2, 3)]),
    ("i,ij,j->", [(2,), (2, 3), (3,)]),
    ("ijk,jl->kil", [(2, 3, 4), (3, 2)]),
    ("i,->i", [(3,), ()]),
    (",->", [(), ()]),
    ("ba,ab->", [(2, 3), (3, 2)]),
    ("bA", [(2, 3)]),
    ("Ab,bC->CA", [(2, 3), (3, 4)]),
    (" ij , jk -> ik ", [(2, 3), (3, 4)]),
]


@pytest.mark.parametrize("subscripts, shapes", EINSUM_TABLE)
def test_einsum_matches_numpy_and_numerical_gradients(subscripts, shapes):
    operands = [normal(*shape) for shape in shapes]
    expected = np.einsum(subscripts, *operands)
    for dtype in DTYPES:
        inputs = tensors(*(x.astype(dtype) for x in operands))
        out = tg.einsum(subscripts, *inputs)
        assert_matches(out, expected.astype(dtype), dtype)
        assert_grads_keep_dtype(out, inputs)
    weights = normal(*np.shape(expected))
    tg.check_grads(lambda *xs: tg.sum(tg.einsum(subscripts, *xs) * weights), *operands, order=2)


def test_einsum_takes_numpys_interleaved_form_and_optimize():
    a, b = normal(2, 3), normal(3, 4)
    out = tg.einsum(tg.Tensor(a), [0, 1], tg.Tensor(b), [1, 2], [0, 2])
    assert np.allclose(out.data, a @ b)
    implicit = tg.einsum(tg.Tensor(a), [Ellipsis, 1], tg.Tensor(b), [1, 2])
    assert np.allclose(implicit.data, np.einsum(a, [Ellipsis, 1], b, [1, 2]))
    c = normal(4, 5)
    chain = tg.einsum("ij,jk,kl->il", *tensors(a, b, c), optimize=True)
    assert np.allclose(chain.data, a @ b @ c)
    tg.check_grads(lambda a, b, c: tg.sum(tg.einsum("ij,jk,kl->il", a, b, c, optimize=True)),
                   a, b, c)


def test_einsum_gradient_of_a_constant_operand_is_not_needed():
    a, b = normal(3, 3), normal(3)
    # second order through 'ii,i->i' (identity constants appear in the rule's einsums)
    hessian = tg.hessian(lambda a: tg.sum(tg.einsum("ii,i->i", a, b) ** 2))(a)
    expected = np.zeros((3, 3, 3, 3))
    for i in range(3):
        expected[i, i, i, i] = 2 * b[i] ** 2
    assert np.allclose(hessian, expected)


def test_einsum_replays_in_a_traced_step():
    a, b = normal(3, 3), normal(3, 2)

    def loss(a, b):
        return tg.sum(tg.einsum("ij,jk->ik", tg.triu(a), b) ** 2) + tg.matrix_trace(a)

    step = tg.trace(tg.value_and_grad(loss, argnums=(0, 1)))
    expected_value, expected_grads = tg.value_and_grad(loss, argnums=(0, 1))(a, b)
    for _ in range(2):
        value, grads = step(a, b)
        assert np.isclose(value, expected_value)
        assert all(np.allclose(g, e) for g, e in zip(grads, expected_grads))


# ---------------------------------------------------------------------------------------------
# outer, inner, kron, cross, diagonal, trace, diag, triu, tril
# ---------------------------------------------------------------------------------------------

COMPOSITE_CASES = [
    ("outer", lambda m: m.outer, [(3,), (4,)], {}),
    ("outer of 2-D inputs", lambda m: m.outer, [(2, 2), (3,)], {}),
    ("inner", lambda m: m.inner, [(2, 3), (4, 3)], {}),
    ("inner of vectors", lambda m: m.inner, [(3,), (3,)], {}),
    ("inner with a scalar", lambda m: m.inner, [(), (2, 3)], {}),
    ("kron", lambda m: m.kron, [(2, 3), (2, 2)], {}),
    ("kron of mixed ndims", lambda m: m.kron, [(3,), (2, 2)], {}),
    ("kron of 3-D", lambda m: m.kron, [(2, 1, 2), (1, 3, 2)], {}),
    ("cross", lambda m: m.cross, [(3,), (3,)], {}),
    ("cross broadcast", lambda m: m.cross, [(4, 3), (3,)], {}),
    ("cross axis", lambda m: m.cross, [(3, 2), (3, 2)], {"axis": 0}),
    ("cross axisa axisb axisc", lambda m: m.cross, [(3, 2), (2, 3)],
     {"axisa": 0, "axisb": 1, "axisc": 0}),
    ("diagonal", lambda m: m.diagonal, [(3, 4)], {}),
    ("diagonal offset", lambda m: m.diagonal, [(3, 4)], {"offset": 1}),
    ("diagonal negative offset", lambda m: m.diagonal, [(3, 4)], {"offset": -2}),
    ("diagonal empty", lambda m: m.diagonal, [(3, 4)], {"offset": 5}),
    ("diagonal of 3-D, axes apart", lambda m: m.diagonal, [(3, 2, 4)],
     {"axis1": 0, "axis2": 2, "offset": 1}),
    ("diagonal of 3-D, negative axes", lambda m: m.diagonal, [(2, 3, 3)],
     {"axis1": -1, "axis2": -2}),
    ("diagonal of 3-D, axes adjacent", lambda m: m.diagonal, [(2, 3, 4)],
     {"axis1": 1, "axis2": 2}),
    ("trace", lambda m: tg.matrix_trace if m is tg else np.trace, [(3, 3)], {}),
    ("trace offset axes", lambda m: tg.matrix_trace if m is tg else np.trace, [(3, 2, 4)],
     {"offset": -1, "axis1": 2, "axis2": 0}),
    ("diag of a vector", lambda m: m.diag, [(3,)], {}),
    ("diag of a vector, k", lambda m: m.diag, [(3,)], {"k": -2}),
    ("diag of a matrix", lambda m: m.diag, [(3, 4)], {"k": 1}),
    ("triu", lambda m: m.triu, [(3, 4)], {}),
    ("triu k", lambda m: m.triu, [(2, 3, 3)], {"k": -1}),
    ("triu of a vector", lambda m: m.triu, [(3,)], {}),
    ("tril", lambda m: m.tril, [(4, 3)], {}),
    ("tril k", lambda m: m.tril, [(2, 3, 3)], {"k": 1}),
]


@pytest.mark.parametrize("name, pick, shapes, params", COMPOSITE_CASES,
                         ids=[case[0] for case in COMPOSITE_CASES])
def test_matrix_ops_match_numpy(name, pick, shapes, params):
    function, reference = pick(tg), pick(np)
    arrays = [normal(*shape) for shape in shapes]
    expected = reference(*arrays, **params)
    for dtype in DTYPES:
        inputs = tensors(*(x.astype(dtype) for x in arrays))
        out = function(*inputs, **params)
        assert_matches(out, np.asarray(expected).astype(dtype), dtype)
        assert_grads_keep_dtype(out, inputs)
    weights = normal(*np.shape(expected))
    tg.check_grads(lambda *xs: tg.sum(function(*xs, **params) ** 2 * weights), *arrays,
                   order=2)


def test_matrix_ops_take_plain_arrays_and_lists():
    assert np.allclose(tg.outer([1.0, 2.0], [3.0, 4.0]), np.outer([1, 2], [3, 4]))
    assert np.allclose(tg.kron(np.eye(2), [[1.0, 2.0]]), np.kron(np.eye(2), [[1, 2]]))
    assert np.allclose(tg.cross([1.0, 0, 0], [0, 1.0, 0]), [0, 0, 1])
    assert np.allclose(tg.diag([1.0, 2.0], k=1), np.diag([1.0, 2.0], k=1))
    assert np.allclose(tg.triu(np.ones((3, 3))), np.triu(np.ones((3, 3))))
    assert np.isclose(tg.matrix_trace(np.arange(9.0).reshape(3, 3)), 12)
    assert "trace" not in tg.ops.linalg.__all__ and tg.trace is not tg.matrix_trace


def test_diagonal_gradient_lands_on_the_diagonal():
    x = tg.Tensor(np.zeros((3, 4)), requires_grad=True)
    tg.sum(tg.diagonal(x, offset=1) * np.array([1.0, 2.0, 3.0])).backward()
    expected = np.zeros((3, 4))
    expected[[0, 1, 2], [1, 2, 3]] = [1, 2, 3]
    assert np.array_equal(x.grad, expected)


# ---------------------------------------------------------------------------------------------
# tg.linalg: inv, solve, det, slogdet, norm
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 3, 3)])
def test_inv_det_slogdet_match_numpy(shape):
    a = well_conditioned(*shape)
    a[..., 0, :] *= -1  # negative determinants too
    for dtype in DTYPES:
        (x,) = tensors(a.astype(dtype))
        assert_matches(tg.linalg.inv(x), np.linalg.inv(a).astype(dtype), dtype)
        assert_matches(tg.linalg.det(x), np.linalg.det(a).astype(dtype), dtype)
        sign, logabsdet = tg.linalg.slogdet(x)
        expected = np.linalg.slogdet(a)
        assert_matches(sign, expected.sign.astype(dtype), dtype)
        assert_matches(logabsdet, expected.logabsdet.astype(dtype), dtype)
        assert not sign.requires_grad and logabsdet.requires_grad
        assert tg.linalg.slogdet(x).logabsdet is not None  # a named tuple, as NumPy's
        for op in (tg.linalg.inv, tg.linalg.det):
            (y,) = tensors(a.astype(dtype))
            assert_grads_keep_dtype(op(y), [y])


def test_inv_solve_det_slogdet_second_order():
    a, b, c = well_conditioned(3, 3), normal(3), normal(3, 2)
    stack = well_conditioned(2, 3, 3)
    tg.check_grads(lambda a: tg.sum(tg.linalg.inv(a) * c[:, :1]), a, order=2)
    tg.check_grads(lambda a: tg.sum(tg.linalg.inv(a) ** 2), stack, order=2)
    tg.check_grads(lambda a: tg.linalg.det(a), a, order=2)
    tg.check_grads(lambda a: tg.sum(tg.linalg.det(a) ** 2), stack, order=2)
    tg.check_grads(lambda a: tg.sum(tg.linalg.slogdet(a)[1]), stack, order=2)
    tg.check_grads(lambda a, b: tg.sum(tg.linalg.solve(a, b) ** 2), a, b, order=2)
    tg.check_grads(lambda a, c: tg.sum(tg.linalg.solve(a, c) ** 2), a, c, order=2)
    tg.check_grads(lambda a, b: tg.sum(tg.linalg.solve(a, b) ** 2), stack, b, order=2)
    tg.check_grads(lambda a, c: tg.sum(tg.linalg.solve(a, c) ** 2), stack, c, order=2)


def test_derivative_rules_are_the_textbook_ones():
    a = well_conditioned(3, 3)
    a_inv = np.linalg.inv(a)
    assert np.allclose(tg.grad(tg.linalg.det)(a), np.linalg.det(a) * a_inv.T)
    assert np.allclose(tg.grad(lambda a: tg.linalg.slogdet(a)[1])(a), a_inv.T)
    g = normal(3, 3)
    assert np.allclose(tg.grad(lambda a: tg.sum(tg.linalg.inv(a) * g))(a),
                       -a_inv.T @ g @ a_inv.T)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 1)),
    ((2, 3, 3), (3, 2)), ((3, 3), (4, 3, 2)),
])
def test_solve_matches_numpy(a_shape, b_shape):
    a, b = well_conditioned(*a_shape), normal(*b_shape)
    for dtype in DTYPES:
        inputs = tensors(a.astype(dtype), b.astype(dtype))
        out = tg.linalg.solve(*inputs)
        assert_matches(out, np.linalg.solve(a, b).astype(dtype), dtype)
        assert_grads_keep_dtype(out, inputs)


NORM_CASES = [
    ((4,), None, None), ((4,), 2, None), ((4,), 1, None), ((4,), np.inf, None),
    ((4,), -np.inf, None), ((4,), 3, None), ((4,), 0.5, None), ((4,), -2, None), ((4,), 0, None),
    ((2, 3, 4), None, None), ((2, 3), None, 1), ((2, 3), 1, -1), ((2, 3, 4), 3, (1,)),
    ((2, 3, 4), np.inf, 0),
    ((3, 4), "fro", None), ((3, 4), 1, None), ((3, 4), -1, None), ((3, 4), np.inf, None),
    ((3, 4), -np.inf, None), ((3, 4), None, None), ((2, 3, 4), "fro", (2, 0)),
    ((2, 3, 4), 1, (-1, 1)), ((2, 3, 4), -np.inf, (0, 2)), ((), None, None),
]


@pytest.mark.parametrize("shape, ord, axis", NORM_CASES)
def test_norm_matches_numpy(shape, ord, axis):
    x = RNG.uniform(0.2, 2.0, size=shape) * RNG.choice([-1.0, 1.0], size=shape)
    for keepdims in (False, True):
        expected = np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
        for dtype in DTYPES:
            (t,) = tensors(x.astype(dtype))
            out = tg.linalg.norm(t, ord=ord, axis=axis, keepdims=keepdims)
            assert_matches(out, np.asarray(expected).astype(dtype), dtype)
            assert_grads_keep_dtype(out, [t])
        weights = normal(*np.shape(expected))

        def projected(x, keepdims=keepdims, weights=weights):
            return tg.sum(tg.linalg.norm(x, ord, axis, keepdims) * weights)

        tg.check_grads(projected, x, order=2)


def test_norm_gradient_at_zero_is_zero():
    for ord in (None, 2, 1):
        grad = tg.grad(lambda x, ord=ord: tg.linalg.norm(x, ord=ord))(np.zeros(3))
        assert np.array_equal(grad, np.zeros(3)) and np.all(np.isfinite(grad))
    grad = tg.grad(lambda x: tg.sum(tg.linalg.norm(x, axis=1)))(np.array([[0.0, 0], [3, 4]]))
    assert np.allclose(grad, [[0, 0], [0.6, 0.8]])


def test_norm_says_which_matrix_ords_have_no_derivative():
    x = tg.Tensor(well_conditioned(3, 3), requires_grad=True)
    assert np.isclose(tg.linalg.norm(x, "nuc").data, np.linalg.norm(x.data, "nuc"))
    with pytest.raises(NotImplementedError, match="norm: no derivative for the matrix ord='nuc'"):
        tg.linalg.norm(x, "nuc").backward()


def test_linalg_namespace_has_numpys_array_api_names():
    x = normal(2, 3, 3)
    assert np.allclose(tg.linalg.trace(tg.Tensor(x)).data, np.linalg.trace(x))
    assert np.allclose(tg.linalg.diagonal(tg.Tensor(x), offset=1).data,
                       np.linalg.diagonal(x, offset=1))
    assert np.allclose(tg.linalg.matrix_transpose(tg.Tensor(x)).data,
                       np.linalg.matrix_transpose(x))
    assert tg.linalg.matmul is tg.matmul and tg.linalg.outer is tg.outer
    assert {"inv", "solve", "det", "logabsdet", "norm", "einsum", "dot", "tensordot",
            "diagonal"} <= set(tg.registry())
    assert not hasattr(tg, "inv") and not hasattr(tg, "solve")


# ---------------------------------------------------------------------------------------------
# Errors: one line, naming the op, the shapes and the user's line
# ---------------------------------------------------------------------------------------------

def raised(call, kind=ValueError):
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and "test_ops_linalg.py" in message
    return message


def test_errors_name_the_op_and_the_shapes():
    a, b = tg.Tensor(np.ones((2, 3))), tg.Tensor(np.ones((4, 5)))
    assert raised(lambda: tg.dot(a, b)).startswith(
        "dot: shapes (2, 3) and (4, 5) are not aligned: the last axis of a (3) and the "
        "second-to-last axis of b (4) differ")
    assert raised(lambda: tg.dot(a, np.ones(4))).startswith(
        "dot: shapes (2, 3) and (4,) are not aligned")
    assert raised(lambda: tg.tensordot(a, b, axes=1)).startswith(
        "tensordot: shapes (2, 3) and (4, 5) with axes=1: the summed sides (3,) and (4,) differ")
    assert raised(lambda: tg.inner(a, b)).startswith("inner: shapes (2, 3) and (4, 5)")
    assert re.match(r"einsum: inputs \(2, 3\), \(4, 5\): .*'subscripts': 'ij,jk->ik'",
                    raised(lambda: tg.einsum("ij,jk->ik", a, b)))
    assert raised(lambda: tg.linalg.inv(a), np.linalg.LinAlgError).startswith(
        "inv: shape (2, 3) is not square (its last two axes are 2 and 3)")
    assert raised(lambda: tg.linalg.det(tg.Tensor(np.ones(3))), np.linalg.LinAlgError)\
        .startswith("det: shape (3,) is not a matrix")
    assert raised(lambda: tg.linalg.solve(tg.Tensor(np.eye(3)), np.ones(4))).startswith(
        "solve: a (3, 3) and b (4,): b's length 4 is not a's side 3")
    assert raised(lambda: tg.linalg.slogdet(a)).startswith("slogdet: shape (2, 3) is not square")
    assert raised(lambda: tg.cross(np.ones(2), np.ones(3))).startswith(
        "cross: vectors of 2 and 3 components")
    assert raised(lambda: tg.diag(np.ones((2, 2, 2)))).startswith("diag: shape (2, 2, 2)")
    assert raised(lambda: tg.triu(np.float64(1.0))).startswith("triu: a 0-d input")
    assert raised(lambda: tg.matrix_trace(np.ones(3))).startswith("trace: shape (3,)")
    assert raised(lambda: tg.diagonal(a, axis1=1, axis2=-1)).startswith(
        "diagonal: shape (2, 3) with axis1=1, axis2=-1: need two distinct axes")


def test_singular_matrices_raise_linalg_errors_naming_the_op():
    singular = tg.Tensor(np.array([[1.0, 2.0], [2.0, 4.0]]), requires_grad=True)
    assert raised(lambda: tg.linalg.inv(singular), np.linalg.LinAlgError).startswith(
        "inv: singular matrix of shape (2, 2)")
    assert raised(lambda: tg.linalg.solve(singular, np.ones(2)), np.linalg.LinAlgError)\
        .startswith("solve: singular matrix a of shape (2, 2) (b (2,))")
    assert isinstance(np.linalg.LinAlgError("x"), ValueError)  # so `except ValueError` works too
    assert tg.linalg.det(singular).data == 0
