"""The log-softmax, with its rule, for any axis; a batch of few classes goes column by column.

Part of the losses family, whose face :mod:`~tinygraph.ops.losses` re-exports ``log_softmax``
and builds the cross-entropy on these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops.elementwise import exp
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array

__all__ = ["log_softmax"]


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    if np.size(x) == 0:  # an empty axis has no maximum; the result is as empty as x
        return np.zeros(np.shape(x), dtype=np.result_type(x, np.float16))
    if _by_columns(x, axis):
        rows, classes = x.shape
        exps = np.empty((classes, rows), x.dtype)
        columns = _log_softmax_transposed(x, np.empty_like(exps), exps, np.empty(rows, x.dtype))
        return np.ascontiguousarray(columns.T)
    # the ufuncs' own reductions: np.max / np.sum's bits, without their Python wrappers
    shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)  # exp never overflows
    return shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))


# A batch of rows of a few classes (a classifier's logits) is reduced column by column: NumPy
# reduces a short contiguous axis one row at a time (at (48000, 10), 1.75 ms for the row
# maxima), while on the transpose each class is one vectorized pass over the batch (59 us).
_COLUMNS_MAX_CLASSES = 32
_COLUMNS_MIN_ROWS = 64  # below it, the two transposing copies cost more than they save


def _by_columns(x: Any, axis: int) -> bool:
    """Whether _log_softmax goes by columns (_log_softmax_transposed): decided by type, shape
    and dtype alone, so a compiled program's plan decides as the eager op does (same bits)."""
    return isinstance(x, np.ndarray) and _columns_shape(x.shape, x.dtype, axis)


def _columns_shape(shape: tuple[int, ...], dtype: np.dtype, axis: int) -> bool:
    # (not float16: a running sum of float16 rounds after every class, where NumPy's row
    # reduction accumulates in float32)
    return (len(shape) == 2 and axis in (1, -1) and dtype.kind == "f" and dtype.itemsize >= 4
            and shape[1] <= _COLUMNS_MAX_CLASSES and shape[0] >= _COLUMNS_MIN_ROWS)


def _log_softmax_transposed(x: np.ndarray, columns: np.ndarray, exps: np.ndarray,
                           row: np.ndarray) -> np.ndarray:
    """log-softmax of (N, C) ``x`` along its rows, transposed: into ``columns`` (C, N), where
    each class's shift, exponential and running sum is one pass over the batch (the sum adds
    the classes in order). ``exps`` is (C, N) scratch, ``row`` (N,) scratch."""
    np.copyto(columns, x.T)
    np.maximum.reduce(columns, axis=0, out=row)
    np.subtract(columns, row, out=columns)  # exp never overflows
    np.exp(columns, out=exps)
    np.add.reduce(exps, axis=0, out=row)
    np.log(row, out=row)
    return np.subtract(columns, row, out=columns)


def _log_softmax_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(min_dims=1)
    return (array(draw, shape, -3.0, 3.0),), {"axis": draw.integers(-len(shape), len(shape) - 1)}


@primitive(sample=_log_softmax_sample)
def log_softmax(x, axis=-1):
    """log(softmax(x)) = x - log(sum(exp(x))) along ``axis``, stable for any magnitude."""
    return _log_softmax(x, axis)


@log_softmax.defvjp
def log_softmax_vjp(grad_out, out, x, axis=-1):
    """d/dx_j (x_i - lse(x)) = [i = j] - softmax_j: grad_out - softmax * sum(grad_out)."""
    return (grad_out - exp(out) * grad_out.sum(axis=axis, keepdims=True),)
