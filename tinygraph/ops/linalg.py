"""Linear algebra: products (matmul, dot, tensordot, einsum, ...), diagonals and triangles,
inverses, determinants and norms, with NumPy's names and semantics.

Primitives (a rule each): matmul, dot, tensordot, einsum, diagonal, inv, solve, det, logabsdet,
norm. Composites of them (no rule of their own): outer, inner, matrix_trace, diag, triu, tril,
kron, cross, slogdet. ``inv solve det slogdet norm`` are NumPy's ``numpy.linalg`` names: they
are public as ``tg.linalg.X`` (:mod:`tinygraph.linalg`), not in this family's ``__all__``.

This module is the family's face: every name of the family is importable from here (names outside
``__all__`` are imported ``as`` themselves: a re-export). The products are
:mod:`~tinygraph.ops.products` (matmul, dot, tensordot, einsum), numpy.linalg's functions
:mod:`~tinygraph.ops.matrix` (inv, solve, det, logabsdet, slogdet, norm); defined here are the
composites of the products (outer, inner, kron, cross) and the diagonal with its traces and
triangles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops._common import as_operand, dtype_of, op_error
from tinygraph.ops.elementwise import mul, where
from tinygraph.ops.matrix import SlogdetResult as SlogdetResult
from tinygraph.ops.matrix import det as det
from tinygraph.ops.matrix import inv as inv
from tinygraph.ops.matrix import logabsdet as logabsdet
from tinygraph.ops.matrix import norm as norm
from tinygraph.ops.matrix import norm_vjp as norm_vjp
from tinygraph.ops.matrix import slogdet as slogdet
from tinygraph.ops.matrix import solve as solve
from tinygraph.ops.matrix import solve_vjp as solve_vjp
from tinygraph.ops.products import (
    dot,
    einsum,
    matmul,
    tensordot,
)
from tinygraph.ops.reductions import reduce_sum
from tinygraph.ops.reshaping import moved
from tinygraph.ops.shape import reshape, scatter_add
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array

__all__ = [
    "matmul",
    "dot",
    "tensordot",
    "einsum",
    "outer",
    "inner",
    "matrix_trace",  # np.trace (tg.trace is the tracer)
    "diagonal",
    "diag",
    "triu",
    "tril",
    "kron",
    "cross",
]


# ---------------------------------------------------------------------------------------------
# Products built from the primitives
# ---------------------------------------------------------------------------------------------

def outer(a: Any, b: Any) -> Any:
    """np.outer: out[i, j] = a[i] * b[j] over both inputs flattened."""
    return mul(reshape(as_operand(a), shape=(-1, 1)), reshape(as_operand(b), shape=(1, -1)))


def inner(a: Any, b: Any) -> Any:
    """np.inner: the sum of products over the last axes (a plain product for a scalar)."""
    a, b = as_operand(a), as_operand(b)
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return mul(a, b)
    if np.shape(a)[-1] != np.shape(b)[-1]:
        raise op_error(ValueError, "inner", f"shapes {np.shape(a)} and {np.shape(b)}: the last "
                       f"axes {np.shape(a)[-1]} and {np.shape(b)[-1]} differ")
    return tensordot(a, b, axes=((-1,), (-1,)))


def kron(a: Any, b: Any) -> Any:
    """np.kron: the block matrix of blocks a[i, j] * b (the shorter shape padded with 1s)."""
    a, b = as_operand(a), as_operand(b)
    ndim = max(np.ndim(a), np.ndim(b))
    a_shape = (1,) * (ndim - np.ndim(a)) + np.shape(a)
    b_shape = (1,) * (ndim - np.ndim(b)) + np.shape(b)
    spread_a = reshape(a, shape=tuple(side for pair in zip(a_shape, (1,) * ndim) for side in pair))
    spread_b = reshape(b, shape=tuple(side for pair in zip((1,) * ndim, b_shape) for side in pair))
    return reshape(mul(spread_a, spread_b), shape=tuple(p * q for p, q in zip(a_shape, b_shape)))


def _levi_civita(dtype: np.dtype) -> np.ndarray:
    """epsilon[i, j, k]: +1 for even permutations of (0, 1, 2), -1 for odd ones, else 0."""
    epsilon = np.zeros((3, 3, 3), dtype=dtype)
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        epsilon[i, j, k], epsilon[i, k, j] = 1, -1
    return epsilon


def cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1,
          axis: int | None = None) -> Any:
    """np.cross of 3-vectors: c_i = epsilon_ijk a_j b_k, vectors along axisa, axisb, axisc
    (``axis`` sets all three), other axes broadcast."""
    a, b = as_operand(a), as_operand(b)
    if axis is not None:
        axisa = axisb = axisc = axis
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        raise op_error(ValueError, "cross", f"shapes {np.shape(a)} and {np.shape(b)}: need vectors")
    a = moved(a, axisa % np.ndim(a), np.ndim(a) - 1)
    b = moved(b, axisb % np.ndim(b), np.ndim(b) - 1)
    if np.shape(a)[-1] != 3 or np.shape(b)[-1] != 3:
        raise op_error(ValueError, "cross", f"vectors of {np.shape(a)[-1]} and "
                       f"{np.shape(b)[-1]} components (only 3-vectors are supported)")
    product = einsum("ijk,...j,...k->...i", _levi_civita(np.result_type(dtype_of(a), dtype_of(b))),
                     a, b)
    return moved(product, np.ndim(product) - 1, axisc % np.ndim(product))


# ---------------------------------------------------------------------------------------------
# Diagonals, traces and triangles
# ---------------------------------------------------------------------------------------------

def _diagonal_index(shape: tuple[int, ...], offset: int, axis1: int,
                    axis2: int) -> tuple[tuple, int]:
    """The integer index that picks the diagonal, and the axis where indexing puts it."""
    first, second = axis1 % len(shape), axis2 % len(shape)
    length = max(0, min(shape[first] + min(offset, 0), shape[second] - max(offset, 0)))
    steps = np.arange(length)
    index: list[Any] = [slice(None)] * len(shape)
    index[first], index[second] = steps - min(offset, 0), steps + max(offset, 0)
    # NumPy puts the axis of two adjacent integer indices where they were, otherwise first
    return tuple(index), min(first, second) if abs(first - second) == 1 else 0


def _diagonal_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(min_dims=2, max_dims=3)
    first, second = draw.rng().choice(len(shape), size=2, replace=False).tolist()
    return (array(draw, shape),), {"offset": draw.integers(-2, 2), "axis1": first,
                                   "axis2": second - draw.choice([0, len(shape)])}


def _diagonal_explain(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> str:
    return f"shape {np.shape(x)} with axis1={axis1}, axis2={axis2}: need two distinct axes"


@primitive(sample=_diagonal_sample, explain=_diagonal_explain)
def diagonal(x, offset=0, axis1=0, axis2=1):
    """x[..., i, i + offset] over axes axis1 and axis2, as a last axis (np.diagonal)."""
    return np.diagonal(x, offset=offset, axis1=axis1, axis2=axis2)


@diagonal.defvjp
def diagonal_vjp(grad_out, out, x, offset=0, axis1=0, axis2=1):
    """The cotangent goes back onto the diagonal; zero elsewhere."""
    index, position = _diagonal_index(np.shape(x), offset, axis1, axis2)
    return scatter_add(moved(grad_out, np.ndim(grad_out) - 1, position), index=index,
                       shape=np.shape(x))


def matrix_trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """np.trace: the sum of diagonal(a, offset, axis1, axis2) over its last axis."""
    a = as_operand(a)
    if np.ndim(a) < 2:
        raise op_error(ValueError, "trace", f"shape {np.shape(a)}: needs at least 2 dimensions")
    return reduce_sum(diagonal(a, offset=offset, axis1=axis1, axis2=axis2), axis=-1)


def diag(v: Any, k: int = 0) -> Any:
    """np.diag: a 1-D v laid on the k-th diagonal of a square matrix; a 2-D v's k-th diagonal."""
    v = as_operand(v)
    shape = np.shape(v)
    if len(shape) == 2:
        return diagonal(v, offset=k)
    if len(shape) != 1:
        raise op_error(ValueError, "diag", f"shape {shape}: the input must be 1-D or 2-D")
    side = shape[0] + abs(k)
    steps = np.arange(shape[0])
    return scatter_add(v, index=(steps - min(k, 0), steps + max(k, 0)), shape=(side, side))


def _triangle(name: str, m: Any, keep_lower: bool, k: int) -> Any:
    m = as_operand(m)
    shape = np.shape(m)
    if not shape:
        raise op_error(ValueError, name, "a 0-d input has no diagonal")
    lower = np.tri(*shape[-2:], k=k if keep_lower else k - 1, dtype=bool)
    return where(lower, m, 0) if keep_lower else where(lower, 0, m)


def triu(m: Any, k: int = 0) -> Any:
    """np.triu: m with the entries below its k-th diagonal (last two axes) set to 0."""
    return _triangle("triu", m, keep_lower=False, k=k)


def tril(m: Any, k: int = 0) -> Any:
    """np.tril: m with the entries above its k-th diagonal (last two axes) set to 0."""
    return _triangle("tril", m, keep_lower=True, k=k)
