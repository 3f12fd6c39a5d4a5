"""numpy.linalg's matrix functions: inv, solve, det, logabsdet (and slogdet, its composite with
a constant sign), norm.

Part of the linear algebra family: :mod:`~tinygraph.ops.linalg` re-exports every name, and they
are public as ``tg.linalg.X`` (:mod:`tinygraph.linalg`), not in the family's ``__all__``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from tinygraph.ops._common import normalize_axes, op_error, with_kept_dims
from tinygraph.ops.elementwise import cast, equal, greater, less, power, where
from tinygraph.ops.products import matmul
from tinygraph.ops.reductions import reduce_max, reduce_sum
from tinygraph.ops.reshaping import swap_last
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array, distinct_array

__all__: list[str] = []  # its ops are tg.linalg's (tinygraph.linalg), not tg's


def _matrices(x: Any) -> Any:
    """x[..., None, None]: a scalar per matrix, broadcast against a stack of matrices."""
    return x.reshape((*np.shape(x), 1, 1))


# ---------------------------------------------------------------------------------------------
# numpy.linalg: inv, solve, det, slogdet, norm (public as tg.linalg.X)
# ---------------------------------------------------------------------------------------------

def _square_shape(draw: Draw) -> tuple[int, ...]:
    side = draw.integers(1, 3)
    return (*draw.choice([(), (), (2,)]), side, side)


def _well_conditioned(draw: Draw, shape: tuple[int, ...]) -> np.ndarray:
    """I + noise, |noise| <= 0.25, rows flipped in sign at random: for sides <= 3 every
    singular value is >= 1 - |noise|_F >= 0.25, and determinants take both signs."""
    noise = array(draw, shape, -0.25, 0.25)
    signs = draw.rng().choice([-1.0, 1.0], size=(*shape[:-1], 1))
    return (np.eye(shape[-1]) + noise) * signs


def _square_sample(draw: Draw) -> tuple[tuple, dict]:
    return (_well_conditioned(draw, _square_shape(draw)),), {}


def _not_square(shape: tuple[int, ...]) -> str | None:
    """Why ``shape`` is not a (stack of) square matrices, or None."""
    if len(shape) < 2:
        return f"shape {shape} is not a matrix (it needs at least 2 dimensions)"
    if shape[-1] != shape[-2]:
        return f"shape {shape} is not square (its last two axes are {shape[-2]} and {shape[-1]})"
    return None


def _square_explain(a: Any) -> str:
    return _not_square(np.shape(a)) or f"singular matrix of shape {np.shape(a)}"


@primitive(name="inv", sample=_square_sample, explain=_square_explain)
def inv(a):
    """The matrix inverse a^-1 (of each matrix in a stack)."""
    return np.linalg.inv(a)


# d(a^-1) = -a^-1 da a^-1, so the cotangent is -a^-T grad_out a^-T
inv.defvjp(lambda grad_out, out, a: -matmul(swap_last(out), matmul(grad_out, swap_last(out))))


def _solve_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = _square_shape(draw)
    side = shape[-1]
    b_shape = draw.choice([(side,), (*shape[:-2], side, draw.integers(1, 2)), (side, 2)])
    return (_well_conditioned(draw, shape), array(draw, b_shape)), {}


def _solve_explain(a: Any, b: Any) -> str:
    a_shape, b_shape = np.shape(a), np.shape(b)
    reason = _not_square(a_shape)
    if reason:
        return f"a: {reason}"
    if not b_shape:
        return f"a {a_shape} and b {b_shape}: b must be a vector or a (stack of) matrices"
    rows = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if rows != a_shape[-1]:
        part = "length" if len(b_shape) == 1 else "row count"
        return f"a {a_shape} and b {b_shape}: b's {part} {rows} is not a's side {a_shape[-1]}"
    try:
        np.broadcast_shapes(a_shape[:-2], b_shape[:-2] if len(b_shape) > 1 else ())
    except ValueError:
        return f"a {a_shape} and b {b_shape}: the batch dimensions do not broadcast"
    return f"singular matrix a of shape {a_shape} (b {b_shape})"


@primitive(name="solve", sample=_solve_sample, explain=_solve_explain)
def solve(a, b):
    """x with a x = b: b a vector (M,) or a (stack of) matrices (..., M, K), as np.linalg.solve."""
    return np.linalg.solve(a, b)


@solve.defvjp
def solve_vjp(grad_out, out, a, b):
    """x = a^-1 b: db = a^-T grad_out, da = -db x^T (a vector b as a one-column matrix)."""
    vector = np.ndim(b) == 1
    grad, x = (grad_out.reshape((*np.shape(grad_out), 1)), out.reshape((*np.shape(out), 1))) \
        if vector else (grad_out, out)
    grad_b = solve(swap_last(a), grad)
    grad_a = -matmul(grad_b, swap_last(x))
    return grad_a, grad_b.reshape(np.shape(grad_b)[:-1]) if vector else grad_b


@primitive(name="det", sample=_square_sample, explain=_square_explain)
def det(a):
    """The determinant (of each matrix in a stack)."""
    return np.linalg.det(a)


# d det(a)/da = det(a) a^-T (Jacobi's formula)
det.defvjp(lambda grad_out, out, a: _matrices(grad_out * out) * swap_last(inv(a)))


@primitive(name="logabsdet", sample=_square_sample, explain=_square_explain)
def logabsdet(a):
    """log |det a| (of each matrix in a stack), computed without forming det a."""
    return np.linalg.slogdet(a)[1]


# d log|det a|/da = a^-T
logabsdet.defvjp(lambda grad_out, out, a: _matrices(grad_out) * swap_last(inv(a)))


# Not registered: a sign has derivative 0, and the registry's mask check expects booleans.
@primitive(name="slogdet_sign", differentiable=False, register=False)
def _slogdet_sign(a):
    """The sign of det a (-1, 0 or 1), a constant to every derivative."""
    return np.linalg.slogdet(a)[0]


class SlogdetResult(NamedTuple):
    """What slogdet returns, as NumPy's: det a = sign * exp(logabsdet)."""

    sign: Any
    logabsdet: Any


def slogdet(a: Any) -> SlogdetResult:
    """(sign, log |det a|) as np.linalg.slogdet; the sign is a constant with no derivative."""
    reason = _not_square(np.shape(a))
    if reason:
        raise op_error(ValueError, "slogdet", reason)
    return SlogdetResult(_slogdet_sign(a), logabsdet(a))


# ---------------------------------------------------------------------------------------------
# norm
# ---------------------------------------------------------------------------------------------

_VECTOR_ORDS = "None, 2, 1, inf, -inf, 0 and any other real p"
_MATRIX_ORDS = "None, 'fro', 1, -1, inf, -inf"


def _norm_axes(ndim: int, ord: Any, axis: Any) -> tuple[tuple[int, ...] | None, bool]:
    """(the axes the norm reduces, None for all of x as one vector; whether it is a matrix
    norm), as np.linalg.norm reads ord and axis."""
    if axis is None and ord is None:
        return None, False
    axes = tuple(range(ndim)) if axis is None else normalize_axes(axis, ndim)
    return axes, len(axes) == 2


def _norm_sample(draw: Draw) -> tuple[tuple, dict]:
    matrix = draw.choice([False, True])
    shape = draw.shape(min_dims=2 if matrix else 1)
    if matrix:
        ord = draw.choice([None, "fro", 1, -1, np.inf, -np.inf])
        first, second = draw.rng().choice(len(shape), size=2, replace=False).tolist()
        axis = (first, second - draw.choice([0, len(shape)]))
        if len(shape) == 2 and draw.choice([True, False]):
            axis = None
    else:
        ord = draw.choice([None, 2, 1, np.inf, -np.inf, 0, 3, 1.5, -2])
        axis = draw.choice([None, draw.integers(-len(shape), len(shape) - 1)])
        if axis is None and ord is not None:
            shape = shape[-1:]  # a vector ord with no axis needs a vector
    # magnitudes distinct (no ties for the inf-norms) and away from 0 (the kinks of |x|)
    signs = draw.rng().choice([-1.0, 1.0], size=shape)
    x = distinct_array(draw, shape, 0.2, 2.0) * signs
    return (x,), {"ord": ord, "axis": axis, "keepdims": draw.choice([False, True])}


@primitive(name="norm", sample=_norm_sample)
def norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm: vector norms (sum |x|^p)^(1/p), max |x|, min |x|, count of nonzeros;
    matrix norms over two axes: Frobenius, max/min column (1) or row (inf) sum of |x|."""
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)


def _share_extreme(values: Any, axis: Any, largest: bool) -> Any:
    """1/count where ``values`` hits its max (or min) along ``axis``, else 0 (ties share)."""
    signed = values if largest else -values
    hits = cast(equal(signed, reduce_max(signed, axis=axis, keepdims=True)), values.dtype)
    return hits / reduce_sum(hits, axis=axis, keepdims=True)


@norm.defvjp
def norm_vjp(grad_out, out, x, ord=None, axis=None, keepdims=False):
    """d|x|/dx for each ord, with the cotangent spread back over the reduced axes."""
    shape = np.shape(x)
    axes, matrix = _norm_axes(len(shape), ord, axis)
    grad = with_kept_dims(grad_out, shape, axes, keepdims)
    value = with_kept_dims(out, shape, axes, keepdims)
    sign = cast(greater(x, 0), x.dtype) - cast(less(x, 0), x.dtype)  # d|x|/dx (0 at 0)
    if ord is None or ord == "fro" or (ord == 2 and not matrix):
        # d|x|_2/dx = x / |x|_2, taken as 0 at x = 0 (where no derivative exists)
        return grad * x / where(equal(value, 0), 1, value)
    if matrix and ord in (1, -1, np.inf, -np.inf):
        # the max (min) over columns (ord 1) or rows (ord inf) of the sums of |x| along the
        # other axis: sign(x) in the extreme column or row
        summed, across = axes if ord in (1, -1) else axes[::-1]
        sums = reduce_sum(x * sign, axis=summed, keepdims=True)
        return grad * sign * _share_extreme(sums, across, largest=ord > 0)
    if matrix:
        raise NotImplementedError(f"norm: no derivative for the matrix ord={ord!r} "
                                  f"(supported: {_MATRIX_ORDS})")
    if ord == 0:
        return grad * (0 * x)  # a count of nonzeros: derivative 0
    if ord in (np.inf, -np.inf):  # max (min) |x|: sign(x) at the extreme element
        return grad * sign * _share_extreme(x * sign, axes, largest=ord > 0)
    if ord == 1:
        return grad * sign
    # d (sum |x|^p)^(1/p)/dx = sign(x) (|x| / |x|_p)^(p - 1)
    return grad * sign * power(x * sign / value, ord - 1)
