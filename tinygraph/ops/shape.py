"""Shape and indexing ops: broadcasting and its undoing, reshapes, joins and splits, reorders,
padding, sorting, indexing.

Primitives (forward, rule, sample): unbroadcast, reshape, transpose, broadcast_to, getitem,
scatter_add, concatenate (any number of inputs), flip, roll, pad, take_along_axis and
scatter_add_along_axis. Everything else here is a composite: a plain function built from those
primitives (stack, split, squeeze, repeat, tile, sort, diff, gradient, linspace, ...), so it
needs no rule of its own, works on arrays (returning arrays) and on Tensors (recording nodes),
and is differentiable to any order through its parts.

This module is the family's face: every name of the family is importable from here and listed in
``__all__`` (names outside it, such as rules and ``plain_index``, are imported ``as`` themselves: a
re-export). The ops live in modules of one job each: :mod:`~tinygraph.ops.reshaping` (broadcasting,
reshapes, axis permutations, flip, roll, rot90), :mod:`~tinygraph.ops.indexing` (getitem,
take_along_axis and their scatter-adds; sort, partition, select) and :mod:`~tinygraph.ops.joins`
(concatenate, stack, split, append, repeat, tile, pad). Defined here are the composites built on all
three: differences (diff, gradient) and linspace.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from tinygraph.ops import indexing, joins, reshaping
from tinygraph.ops._common import along, as_operand, checked_axes, checked_axis, dtype_of, op_error
from tinygraph.ops.elementwise import cast, not_equal, sub, where
from tinygraph.ops.indexing import *  # noqa: F403 - the family's names, re-exported
from tinygraph.ops.indexing import (
    getitem,
)
from tinygraph.ops.indexing import plain_index as plain_index
from tinygraph.ops.joins import *  # noqa: F403 - the family's names, re-exported
from tinygraph.ops.joins import (
    concatenate_op,
)
from tinygraph.ops.joins import concatenate_vjp as concatenate_vjp
from tinygraph.ops.joins import pad_vjp as pad_vjp
from tinygraph.ops.reshaping import *  # noqa: F403 - the family's names, re-exported
from tinygraph.ops.reshaping import (
    broadcast_to,
    moveaxis,
    reshape,
)
from tinygraph.ops.reshaping import transpose_vjp as transpose_vjp
from tinygraph.tensor import Tensor

# The family's names: its modules' own lists, then the ops defined here.
__all__ = [
    *reshaping.__all__,
    *indexing.__all__,
    *joins.__all__,
    "diff",
    "gradient",
    "linspace",
]


# ---------------------------------------------------------------------------------------------
# Differences: diff, gradient
# ---------------------------------------------------------------------------------------------

_NOT_GIVEN: Any = object()


def _edge(value: Any, shape: tuple[int, ...], axis: int) -> Any:
    """A prepend/append value: a scalar becomes a slab of ``shape`` one element thick."""
    value = as_operand(value)
    if np.ndim(value) == 0:
        return broadcast_to(value, shape=(*shape[:axis], 1, *shape[axis + 1:]))
    return value


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = _NOT_GIVEN,
         append: Any = _NOT_GIVEN) -> Any:
    """The n-th forward difference along ``axis``: out[i] = a[i + 1] - a[i], n times (for
    booleans a[i + 1] != a[i]); ``prepend``/``append`` join values first."""
    a = as_operand(a)
    n = operator.index(n)
    if n < 0:
        raise op_error(ValueError, "diff", f"order n must be >= 0, got {n}")
    if n == 0:
        return a
    shape = np.shape(a)
    if not shape:
        raise op_error(ValueError, "diff", "needs at least 1 dim, got a 0-d input")
    axis = checked_axis(axis, len(shape), "diff", shape)
    parts = [part for part in (prepend, a, append) if part is not _NOT_GIVEN]
    if len(parts) > 1:
        a = concatenate_op(*[x if x is a else _edge(x, shape, axis) for x in parts], axis=axis)
    difference = not_equal if dtype_of(a) == np.bool_ else sub
    for _ in range(n):
        a = difference(getitem(a, index=along(axis, slice(1, None))),
                       getitem(a, index=along(axis, slice(None, -1))))
    return a


def _gradient_along(f: Any, axis: int, spacing: Any, edge_order: int) -> Any:
    """np.gradient along one axis: central differences inside, one-sided ones at both ends
    (first or second order); ``spacing`` is a step or the coordinates along the axis."""
    shape = np.shape(f)
    side = shape[axis]
    if side < edge_order + 1:
        raise op_error(ValueError, "gradient", f"axis {axis} of shape {shape} has {side} "
                       f"elements; edge_order {edge_order} needs at least {edge_order + 1}")

    def part(start: int | None, stop: int | None) -> Any:
        return getitem(f, index=along(axis, slice(start, stop)))

    if np.ndim(spacing) == 0:  # a uniform step h
        h = spacing
        inside = (part(2, None) - part(None, -2)) / (2.0 * h)
        if edge_order == 1:
            first = (part(1, 2) - part(0, 1)) / h
            last = (part(side - 1, side) - part(side - 2, side - 1)) / h
        else:
            first = (-1.5 / h) * part(0, 1) + (2.0 / h) * part(1, 2) + (-0.5 / h) * part(2, 3)
            last = ((0.5 / h) * part(side - 3, side - 2) + (-2.0 / h) * part(side - 2, side - 1)
                    + (1.5 / h) * part(side - 1, side))
        return concatenate_op(first, inside, last, axis=axis)
    # Coordinates x: second-order differences for uneven steps dx1 (before) and dx2 (after)
    if np.ndim(spacing) != 1 or np.shape(spacing)[0] != side:
        raise op_error(ValueError, "gradient", f"coordinates of shape {np.shape(spacing)} do not "
                       f"match axis {axis} of shape {shape}")
    steps = diff(spacing)

    def column(coefficient: Any) -> Any:  # a coefficient per position, broadcast along axis
        return reshape(coefficient, shape=tuple(-1 if i == axis else 1 for i in range(len(shape))))

    dx1, dx2 = steps[:-1], steps[1:]
    inside = (column(-dx2 / (dx1 * (dx1 + dx2))) * part(None, -2)
              + column((dx2 - dx1) / (dx1 * dx2)) * part(1, -1)
              + column(dx1 / (dx2 * (dx1 + dx2))) * part(2, None))
    if edge_order == 1:
        first = (part(1, 2) - part(0, 1)) / steps[0]
        last = (part(side - 1, side) - part(side - 2, side - 1)) / steps[-1]
    else:
        dx1, dx2 = steps[0], steps[1]
        first = (-(2.0 * dx1 + dx2) / (dx1 * (dx1 + dx2)) * part(0, 1)
                 + (dx1 + dx2) / (dx1 * dx2) * part(1, 2)
                 - dx1 / (dx2 * (dx1 + dx2)) * part(2, 3))
        dx1, dx2 = steps[-2], steps[-1]
        last = (dx2 / (dx1 * (dx1 + dx2)) * part(side - 3, side - 2)
                - (dx2 + dx1) / (dx1 * dx2) * part(side - 2, side - 1)
                + (2.0 * dx2 + dx1) / (dx2 * (dx1 + dx2)) * part(side - 1, side))
    return concatenate_op(first, inside, last, axis=axis)


def gradient(f: Any, *varargs: Any, axis: int | tuple[int, ...] | None = None,
             edge_order: int = 1) -> Any:
    """np.gradient: the derivative of sampled values along each axis (central differences
    inside, one-sided at the ends); ``varargs`` are one spacing for all axes or one per axis,
    each a step or the coordinates. One axis gives one result, several a tuple."""
    f = as_operand(f)
    if not isinstance(f, Tensor) and f.dtype.kind != "f":
        f = f.astype(np.float64)
    shape = np.shape(f)
    if not shape:
        raise op_error(ValueError, "gradient", "needs at least 1 dim, got a 0-d input")
    axes = (tuple(range(len(shape))) if axis is None
            else checked_axes(axis, len(shape), "gradient", shape))
    if edge_order not in (1, 2):
        raise op_error(ValueError, "gradient", f"edge_order must be 1 or 2, got {edge_order}")
    if not varargs:
        spacings: list = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacings = list(varargs) * len(axes)
    elif len(varargs) == len(axes):
        spacings = list(varargs)
    else:
        raise op_error(TypeError, "gradient", f"give one spacing, or one per axis ({len(axes)}), "
                       f"not {len(varargs)}")
    spacings = [h if isinstance(h, Tensor) or np.ndim(h) == 0 else np.asarray(h, np.float64)
                for h in spacings]
    results = []
    for each, h in zip(axes, spacings):
        result = _gradient_along(f, each, h, edge_order)
        # as NumPy, the result has f's float dtype (a float64 spacing does not widen float32)
        results.append(result if dtype_of(result) == dtype_of(f)
                       else cast(result, dtype=dtype_of(f)))
    return results[0] if len(results) == 1 else tuple(results)


# ---------------------------------------------------------------------------------------------
# Sample grids: linspace
# ---------------------------------------------------------------------------------------------

def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True,
             retstep: bool = False, dtype: Any = None, axis: int = 0) -> Any:
    """``num`` evenly spaced values from start to stop (stop left out when not ``endpoint``):
    start + i * (stop - start) / div, differentiable in start and stop when they are Tensors."""
    if not isinstance(start, Tensor) and not isinstance(stop, Tensor):
        return np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    num = operator.index(num)
    if num < 0:
        raise op_error(ValueError, "linspace", f"num must be >= 0, got {num}")
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise op_error(TypeError, "linspace", f"Tensor endpoints need a float dtype, not "
                       f"{np.dtype(dtype)}")
    # Python numbers stay numbers, so that (as in NumPy) they do not widen a float32 endpoint
    start, stop = (v if isinstance(v, (Tensor, int, float)) else np.asarray(v)
                   for v in (start, stop))
    exact = np.result_type(*(dtype_of(v) for v in (start, stop) if not isinstance(v, (int, float))),
                           np.float16)
    ends = np.broadcast_shapes(np.shape(start), np.shape(stop))
    div = num - 1 if endpoint else num
    positions = np.arange(num, dtype=exact).reshape((-1,) + (1,) * len(ends))
    delta = stop - start
    step = delta / div if div > 0 else np.nan
    samples = positions * (step if div > 0 else delta) + start
    if endpoint and num > 1:  # the last value is stop itself, not start + div * step
        last = (np.arange(num) == num - 1).reshape(positions.shape)
        samples = where(last, stop, samples)
    if axis != 0:
        samples = moveaxis(samples, 0, axis)
    if dtype is not None:
        samples = cast(samples, dtype=np.dtype(dtype))
    return (samples, step) if retstep else samples
