"""Linear algebra: matrix products."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops.shape import transpose
from tinygraph.primitive import describe, primitive
from tinygraph.sampling import Draw, array

__all__ = [
    "matmul",
]


def _matmul_sample(draw: Draw) -> tuple[tuple, dict]:
    m, k, n = draw.integers(1, 4), draw.integers(1, 4), draw.integers(1, 4)
    case = draw.choice(["matrix", "vector-matrix", "matrix-vector", "vector", "batched"])
    if case == "matrix":
        shapes = (m, k), (k, n)
    elif case == "vector-matrix":
        shapes = (k,), draw.choice([(k, n), (2, k, n)])
    elif case == "matrix-vector":
        shapes = draw.choice([(m, k), (2, m, k)]), (k,)
    elif case == "vector":
        shapes = (k,), (k,)
    else:
        batch_a, batch_b = draw.broadcastable_shapes(2, min_dims=1, max_dims=2, max_side=3)
        shapes = (*batch_a, m, k), (*batch_b, k, n)
    return tuple(array(draw, s) for s in shapes), {}


def _matmul_explain(a: Any, b: Any) -> str:
    a, b = np.asarray(a), np.asarray(b)
    where = f"{describe(a)} @ {describe(b)}"
    if a.ndim == 0 or b.ndim == 0:
        return f"{where}: both operands need at least one dimension (use mul for scalars)"
    inner_a, inner_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if inner_a != inner_b:
        return f"{where}: inner dimensions {inner_a} and {inner_b} differ"
    return f"{where}: batch dimensions {a.shape[:-2]} and {b.shape[:-2]} do not broadcast"


def _matmul_into(out, a, b):
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2:
        return np.dot(a, b, out=out)
    return np.matmul(a, b, out=out)


@primitive(sample=_matmul_sample, explain=_matmul_explain, forward_into=_matmul_into)
def matmul(a, b):
    """a @ b as np.matmul: 1-D, 2-D, or stacks of matrices with broadcast batch dims."""
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2:
        # np.dot goes to BLAS for thin shapes (the outer product of a batch-1 backward pass)
        # where np.matmul may loop in C: 5x faster there, the same bits elsewhere
        return np.dot(a, b)
    return np.matmul(a, b)


def _swap_last(x: Any) -> Any:
    """x with its last two axes swapped (the matrix transpose of a stack)."""
    axes = list(range(np.ndim(x)))
    axes[-2:] = axes[-1], axes[-2]
    return transpose(x, axes=tuple(axes))


def _column(x: Any) -> Any:
    """x[..., None]: a trailing axis of size 1."""
    return x.reshape((*np.shape(x), 1))


def _matmul_vjp_a(grad_out, out, a, b):
    """d(a @ b)/da: grad_out @ b^T, with 1-D operands promoted and squeezed as np.matmul does."""
    a_ndim, b_ndim = np.ndim(a), np.ndim(b)
    if b_ndim == 1:
        return grad_out * b if a_ndim == 1 else _column(grad_out) * b
    if a_ndim == 1:
        product = matmul(b, _column(grad_out))
        return product.reshape(np.shape(product)[:-1])
    if b_ndim == 2:
        return matmul(grad_out, b.T)
    return matmul(grad_out, _swap_last(b))


def _matmul_vjp_b(grad_out, out, a, b):
    """d(a @ b)/db: a^T @ grad_out, with 1-D operands promoted and squeezed as np.matmul does."""
    a_ndim, b_ndim = np.ndim(a), np.ndim(b)
    if a_ndim == 1:
        if b_ndim == 1:
            return grad_out * a
        row = grad_out.reshape((*np.shape(grad_out)[:-1], 1, np.shape(grad_out)[-1]))
        return _column(a) * row
    if b_ndim == 1:
        product = matmul(_swap_last(a), _column(grad_out))
        return product.reshape(np.shape(product)[:-1])
    if a_ndim == 2:
        return matmul(a.T, grad_out)
    return matmul(_swap_last(a), grad_out)


matmul.defvjp(_matmul_vjp_a, _matmul_vjp_b)
