"""``tg.linalg``: NumPy's ``numpy.linalg`` names as tinygraph ops.

inv, solve, det, slogdet and norm are the primitives of :mod:`tinygraph.ops.linalg` (slogdet a
composite: its sign is a constant); the array-API names NumPy 2 added to ``numpy.linalg``
(matmul, tensordot, outer, cross, diagonal, trace, matrix_transpose) are the same ops, with the
matrix axes last.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops.linalg import (
    SlogdetResult,
    cross,
    det,
    inv,
    matmul,
    matrix_trace,
    norm,
    outer,
    slogdet,
    solve,
    tensordot,
)
from tinygraph.ops.linalg import diagonal as _diagonal
from tinygraph.ops.shape import transpose

__all__ = [
    "inv",
    "solve",
    "det",
    "slogdet",
    "SlogdetResult",
    "norm",
    "matmul",
    "tensordot",
    "outer",
    "cross",
    "diagonal",
    "trace",
    "matrix_transpose",
]


def diagonal(x: Any, offset: int = 0) -> Any:
    """np.linalg.diagonal: the offset diagonal of each matrix (the last two axes)."""
    return _diagonal(x, offset=offset, axis1=-2, axis2=-1)


def trace(x: Any, offset: int = 0) -> Any:
    """np.linalg.trace: the sum of the offset diagonal of each matrix (the last two axes)."""
    return matrix_trace(x, offset=offset, axis1=-2, axis2=-1)


def matrix_transpose(x: Any) -> Any:
    """np.linalg.matrix_transpose: each matrix transposed (the last two axes swapped)."""
    ndim = np.ndim(x)
    if ndim < 2:
        raise ValueError(f"matrix_transpose: shape {np.shape(x)} needs at least 2 dimensions")
    return transpose(x, axes=(*range(ndim - 2), ndim - 1, ndim - 2))
