"""Indexing: getitem and its scatter-add, take_along_axis and its scatter-add, and the
composites that gather (sort, partition, select).

Part of the shape family, whose every name :mod:`~tinygraph.ops.shape` re-exports. Primitives
(forward, rule, sample): getitem, scatter_add, take_along_axis and scatter_add_along_axis;
``plain_index`` turns the index of ``Tensor[...]`` into one NumPy takes. sort and partition are
take_along_axis of their positions, select nested where: composites, differentiable to any
order through their parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygraph.ops._common import as_operand, checked_axis, dtype_of, op_error
from tinygraph.ops.elementwise import where
from tinygraph.ops.reshaping import ravel
from tinygraph.primitive import describe, primitive
from tinygraph.sampling import Draw, array
from tinygraph.state import STATE, refuse_leaving_the_graph
from tinygraph.tensor import Tensor

__all__ = [
    "getitem",
    "scatter_add",
    "take_along_axis",
    "scatter_add_along_axis",
    "sort",
    "partition",
    "select",
]


# ---------------------------------------------------------------------------------------------
# Indexing: getitem and its scatter-add, take_along_axis and its scatter-add
# ---------------------------------------------------------------------------------------------

def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis
               for p in parts)


def _index_sample(draw: Draw) -> tuple[Any, tuple[int, ...]]:
    """An index into an array of a drawn shape: int, slice, repeated or negative int array,
    empty int array, boolean mask, or a mix."""
    shape = draw.shape(min_dims=1)
    first = shape[0]
    kind = draw.choice(["int", "slice", "array", "negative", "empty", "mask", "mixed",
                        "mixed mask"])
    rows = draw.rng().integers(0, first, size=draw.integers(1, 5))  # repeats are likely
    mask = draw.rng().random(first) < 0.5
    if kind == "int":
        index: Any = draw.integers(-first, first - 1)
    elif kind == "slice":
        index = slice(draw.integers(0, first - 1), None, draw.choice([1, 2]))
    elif kind == "array":
        index = rows
    elif kind == "negative":
        index = rows - first
    elif kind == "empty":
        index = np.array([], dtype=np.intp)
    elif kind == "mask":
        index = draw.choice([mask, draw.rng().random(shape) < 0.5])
    elif kind == "mixed":
        index = (rows, slice(None)) if len(shape) > 1 else (rows,)
    else:
        index = (slice(None), draw.rng().random(shape[1]) < 0.5) if len(shape) > 1 else (mask,)
    return index, shape


def _getitem_sample(draw: Draw) -> tuple[tuple, dict]:
    index, shape = _index_sample(draw)
    return (array(draw, shape),), {"index": index}


@primitive(name="getitem", sample=_getitem_sample, params=("index",))
def getitem(x, index):
    """x[index]: basic (a view), integer-array or boolean-mask indexing, as NumPy's."""
    return x[index]


getitem.defvjp(lambda grad_out, out, x, index:  # scatter-add: repeated indices sum
               (scatter_add(grad_out, index=index, shape=np.shape(x)),))


def _scatter_add_sample(draw: Draw) -> tuple[tuple, dict]:
    index, shape = _index_sample(draw)
    values_shape = np.zeros(shape)[index].shape
    return (array(draw, values_shape),), {"index": index, "shape": shape}


@primitive(sample=_scatter_add_sample, params=("index", "shape"))
def scatter_add(values, index, shape):
    """zeros(shape) with ``values`` added at ``index`` (repeated positions add up)."""
    result = np.zeros(shape, dtype=np.result_type(values, np.float16))
    if _is_basic_index(index):
        result[index] = values  # basic indices never repeat a position
    else:
        np.add.at(result, index, values)
    return result


scatter_add.defvjp(lambda grad_out, out, values, index, shape: (grad_out[index],))


def plain_index(index: Any) -> Any:
    """An index as NumPy takes it (used by ``Tensor[...]``): Tensors become their arrays (whole
    floats become integer positions, booleans stay masks), lists arrays (an empty list an empty
    integer index, a list of booleans a mask), tuples part by part."""
    if isinstance(index, tuple):
        return tuple(plain_index(part) for part in index)
    if isinstance(index, Tensor):
        if STATE.tracing and (index.requires_grad or index._prim is not None):
            # an index is a parameter of getitem, fixed when recorded: a replay would reuse it
            refuse_leaving_the_graph("indexing with a Tensor computed from the trace's "
                                     "arguments (tg.take_along_axis takes its indices as an "
                                     "input)")
        data = index.data
        if data.dtype.kind == "f":  # Tensors hold integers as float64: index with them exactly
            if not np.array_equal(data, np.round(data)):
                raise IndexError(f"getitem: index values must be integers, got {data.ravel()[:4]}")
            return data.astype(np.intp)
        return data
    if isinstance(index, list):
        positions = np.asarray(index)
        if positions.size == 0:  # NumPy reads [] as no positions, not as a float array
            return positions.astype(np.intp)
        return positions
    return index


def _positions(indices: Any) -> np.ndarray:
    """Integer positions; whole floats too (a Tensor holds integers as float64)."""
    indices = np.asarray(indices)
    if indices.dtype.kind == "f":
        if not np.array_equal(indices, np.round(indices)):
            raise IndexError(f"index values must be integers, got {indices.ravel()[:4]}")
        return indices.astype(np.intp)
    return indices


def _along_axis(indices: Any, axis: int | None, shape: tuple[int, ...]) -> Any:
    """The full index that take_along_axis reads with: ``indices`` on ``axis``, and on every
    other axis its own positions, broadcast."""
    if axis is None:
        return indices
    ndim = len(shape)
    return tuple(indices if k == axis else
                 np.arange(shape[k]).reshape(tuple(-1 if i == k else 1 for i in range(ndim)))
                 for k in range(ndim))


def _along_axis_sample(draw: Draw) -> tuple[np.ndarray, int | None, tuple[int, ...]]:
    shape = draw.shape(min_dims=1)
    axis = draw.choice([None, *range(-len(shape), len(shape))])
    size = int(np.prod(shape)) if axis is None else shape[axis]
    if axis is None:
        index_shape: tuple[int, ...] = (draw.integers(1, 4),)
    else:
        sides = list(shape)
        sides[axis] = draw.integers(1, 4)
        index_shape = tuple(sides)
    indices = draw.rng().integers(-size, size, size=index_shape)  # repeats and negatives
    return indices, axis, shape


def _take_along_axis_sample(draw: Draw) -> tuple[tuple, dict]:
    indices, axis, shape = _along_axis_sample(draw)
    return (array(draw, shape), indices), {"axis": axis}


def _along_axis_explain(*inputs: Any, axis: int | None = -1, shape: Any = None) -> str:
    return f"inputs {', '.join(describe(np.asarray(x)) for x in inputs)} with axis {axis} " \
        "(indices need integer values and the input's number of dims)"


@primitive(sample=_take_along_axis_sample, explain=_along_axis_explain)
def take_along_axis(arr, indices, axis=-1):
    """out[..., i, ...] = arr[..., indices[..., i, ...], ...] along ``axis`` (flattened when
    None); ``indices`` is an input (integers, no derivative), so a traced step reads new ones."""
    return np.take_along_axis(arr, _positions(indices), axis=axis)


take_along_axis.defvjp(  # each picked element's cotangent goes back to where it was taken from
    lambda grad_out, out, arr, indices, axis=-1:
        scatter_add_along_axis(grad_out, indices, axis=axis, shape=np.shape(arr)),
    None)


def _scatter_add_along_axis_sample(draw: Draw) -> tuple[tuple, dict]:
    indices, axis, shape = _along_axis_sample(draw)
    values_shape = np.take_along_axis(np.zeros(shape), indices, axis=axis).shape
    return (array(draw, values_shape), indices), {"axis": axis, "shape": shape}


@primitive(sample=_scatter_add_along_axis_sample, explain=_along_axis_explain,
           params=("shape",))
def scatter_add_along_axis(values, indices, shape, axis=-1):
    """zeros(shape) with ``values`` added where take_along_axis(., indices, axis) reads
    (repeated positions add up)."""
    result = np.zeros(shape, dtype=np.result_type(values, np.float16))
    indices = _positions(indices)
    if axis is None:
        np.add.at(result.reshape(-1), indices, values)
    else:
        axis = axis % len(shape)
        np.add.at(result, _along_axis(indices, axis, tuple(shape)), values)
    return result


scatter_add_along_axis.defvjp(  # linear in values: its transpose is the gather
    lambda grad_out, out, values, indices, shape, axis=-1:
        take_along_axis(grad_out, indices, axis=axis),
    None)


# Not registered: their results are integer positions (no derivative, and not the boolean masks
# the registry expects of a non-differentiable op); sort and partition check them as composites.
@primitive(name="argsort", differentiable=False, register=False)
def _argsort(a, axis=-1, kind=None):
    """The positions that sort a along ``axis``."""
    return np.argsort(a, axis=axis, kind=kind)


@primitive(name="argpartition", differentiable=False, register=False, params=("kth",))
def _argpartition(a, kth, axis=-1):
    """The positions that partition a around its kth smallest element(s) along ``axis``."""
    return np.argpartition(a, kth, axis=axis)


def sort(a: Any, axis: int | None = -1, kind: str | None = None) -> Any:
    """a sorted along ``axis`` (flattened when None): take_along_axis of its argsort, so the
    gradient follows the permutation (a tie gives each tied element its own position's)."""
    a = as_operand(a)
    if axis is None:
        a, axis = ravel(a), -1
    checked_axis(axis, np.ndim(a), "sort", np.shape(a))
    return take_along_axis(a, _argsort(a, axis=axis, kind=kind), axis=axis)


def partition(a: Any, kth: int | Sequence[int], axis: int | None = -1) -> Any:
    """a rearranged so the kth element is where sorting would put it, smaller ones before and
    larger after: take_along_axis of its argpartition (the gradient follows the permutation)."""
    a = as_operand(a)
    if axis is None:
        a, axis = ravel(a), -1
    checked_axis(axis, np.ndim(a), "partition", np.shape(a))
    return take_along_axis(a, _argpartition(a, kth, axis=axis), axis=axis)


def select(condlist: Sequence[Any], choicelist: Sequence[Any], default: Any = 0) -> Any:
    """Elementwise, the choice of the first condition that holds (``default`` where none does):
    nested where, the last condition innermost."""
    if len(condlist) != len(choicelist):
        raise op_error(ValueError, "select", f"{len(condlist)} conditions but {len(choicelist)} "
                       "choices (they go in pairs)")
    if not condlist:
        raise op_error(ValueError, "select", "needs at least one condition")
    for number, condition in enumerate(condlist):
        if dtype_of(condition) != np.bool_:
            raise op_error(TypeError, "select", f"condition {number} has dtype "
                           f"{dtype_of(condition)}, not bool")
    result = default
    for condition, choice in zip(reversed(condlist), reversed(choicelist)):
        result = where(condition, choice, result)
    return result
