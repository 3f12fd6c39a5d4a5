"""Shape and indexing ops: broadcasting and its undoing, reshape, transpose, indexing."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops._common import normalize_axes
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array
from tinygraph.tensor import Tensor

__all__ = [
    "unbroadcast",
    "reshape",
    "transpose",
    "broadcast_to",
    "getitem",
    "scatter_add",
]


def _unbroadcast_forward(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    extra = np.ndim(x) - len(shape)
    x_shape = np.shape(x)
    if extra < 0 or any(c != s and s != 1 for c, s in zip(x_shape[extra:], shape)):
        raise ValueError(f"shape {x_shape} cannot be summed down to {tuple(shape)}")
    stretched = tuple(extra + i for i, side in enumerate(shape)
                      if side == 1 and x_shape[extra + i] != 1)
    axes = tuple(range(extra)) + stretched
    if axes:
        x = x.sum(axis=axes, keepdims=True)
    return x.reshape(shape) if extra else x


def _unbroadcast_sample(draw: Draw) -> tuple[tuple, dict]:
    small, large = draw.broadcastable_shapes(2)
    return (array(draw, np.broadcast_shapes(small, large)),), {"shape": tuple(small)}


@primitive(sample=_unbroadcast_sample, params=("shape",))
def unbroadcast(x, shape):
    """Sum x over the axes broadcasting added or stretched, down to ``shape`` (undo broadcasting).

    The reverse pass applies it to every cotangent whose shape differs from its input's.
    """
    return _unbroadcast_forward(x, shape)


unbroadcast.defvjp(lambda grad_out, out, x, shape: broadcast_to(grad_out, np.shape(x)))


def _plan_unbroadcast(params: dict, shapes: list[tuple[int, ...]]) -> Any:
    """For a compiled program, whose shapes are fixed: the axes planned once. When only leading
    axes are summed (a bias's gradient), one reduction writes the result directly."""
    shape, (x_shape,) = tuple(params["shape"]), shapes
    extra = len(x_shape) - len(shape)
    if extra <= 0 or any(side == 1 and x_shape[extra + i] != 1 for i, side in enumerate(shape)):
        return None
    axes = tuple(range(extra))

    def forward(x):
        return np.add.reduce(x, axis=axes)

    def into(out, x):
        return np.add.reduce(x, axis=axes, out=out)

    return forward, into


unbroadcast.plan = _plan_unbroadcast


def _reshape_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(max_dims=3)
    size = int(np.prod(shape, dtype=np.int64))
    new_shape = draw.choice([(size,), (1, size), (size, 1), (-1,), ()]) if size == 1 else \
        draw.choice([(size,), (1, size), (size, 1), (-1,)])
    return (array(draw, shape),), {"shape": new_shape}


@primitive(sample=_reshape_sample, params=("shape",))
def reshape(x, shape):
    """x with a new shape of the same size (a view; -1 infers one side)."""
    return np.reshape(x, shape)


reshape.defvjp(lambda grad_out, out, x, shape: (grad_out.reshape(np.shape(x)),))


def _transpose_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape()
    axes = draw.choice([None, tuple(draw.rng().permutation(len(shape)).tolist())])
    return (array(draw, shape),), {"axes": axes}


@primitive(sample=_transpose_sample)
def transpose(x, axes=None):
    """Permute the axes (reverse them when ``axes`` is None)."""
    return np.transpose(x, axes)


@transpose.defvjp
def transpose_vjp(grad_out, out, x, axes=None):
    """The cotangent goes back through the inverse permutation."""
    if axes is None:
        return (transpose(grad_out),)
    inverse = tuple(np.argsort(normalize_axes(axes, np.ndim(x))).tolist())  # axes may be < 0
    return (transpose(grad_out, axes=inverse),)


def _broadcast_to_sample(draw: Draw) -> tuple[tuple, dict]:
    small, large = draw.broadcastable_shapes(2)
    target = np.broadcast_shapes(small, large)
    return (array(draw, small),), {"shape": target}


@primitive(sample=_broadcast_to_sample, params=("shape",))
def broadcast_to(x, shape):
    """x repeated along new or size-1 axes to ``shape`` (a view)."""
    return np.broadcast_to(x, shape)


broadcast_to.defvjp(lambda grad_out, out, x, shape: unbroadcast(grad_out, np.shape(x)))


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis
               for p in parts)


def _index_sample(draw: Draw) -> tuple[Any, tuple[int, ...]]:
    """An index into an array of a drawn shape: int, slice, repeated int array, or a mix."""
    shape = draw.shape(min_dims=1)
    first = shape[0]
    kind = draw.choice(["int", "slice", "array", "mixed"])
    rows = draw.rng().integers(0, first, size=draw.integers(1, 5))  # repeats are likely
    if kind == "int":
        index: Any = draw.integers(-first, first - 1)
    elif kind == "slice":
        index = slice(draw.integers(0, first - 1), None, draw.choice([1, 2]))
    elif kind == "array":
        index = rows
    else:
        index = (rows, slice(None)) if len(shape) > 1 else (rows,)
    return index, shape


def _getitem_sample(draw: Draw) -> tuple[tuple, dict]:
    index, shape = _index_sample(draw)
    return (array(draw, shape),), {"index": index}


@primitive(name="getitem", sample=_getitem_sample, params=("index",))
def getitem(x, index):
    """x[index]: basic (a view) or integer-array indexing."""
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
    """An index as NumPy takes it: Tensors and lists become arrays (used by ``Tensor[...]``)."""
    if isinstance(index, Tensor):  # Tensors hold integers as float64: index with them exactly
        data = index.data
        if data.dtype.kind == "f":
            if not np.array_equal(data, np.round(data)):
                raise IndexError(f"getitem: index values must be integers, got {data.ravel()[:4]}")
            return data.astype(np.intp)
        return data
    if isinstance(index, tuple):
        return tuple(plain_index(part) for part in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index
