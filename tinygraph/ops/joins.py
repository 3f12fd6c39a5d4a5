"""Joining, splitting, repeating and padding: arrays put together from pieces.

Part of the shape family, whose every name :mod:`~tinygraph.ops.shape` re-exports. Primitives
(forward, rule, sample): concatenate (any number of inputs) and pad. The stack family (stack,
hstack, vstack, dstack, column_stack), append, the split family (split, array_split, hsplit,
vsplit, dsplit), repeat and tile are composites: reshapes, broadcasts, getitems and concatenates,
with no rule of their own, differentiable to any order through their parts.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygraph.ops._common import along, as_operand, checked_axis, op_error
from tinygraph.ops.elementwise import cast
from tinygraph.ops.indexing import getitem, scatter_add
from tinygraph.ops.reshaping import (
    atleast_1d,
    atleast_2d,
    atleast_3d,
    broadcast_to,
    ravel,
    reshape,
)
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array
from tinygraph.tensor import Tensor

__all__ = [
    "concatenate",
    "stack",
    "hstack",
    "vstack",
    "dstack",
    "column_stack",
    "row_stack",
    "append",
    "split",
    "array_split",
    "hsplit",
    "vsplit",
    "dsplit",
    "repeat",
    "tile",
    "pad",
]


# ---------------------------------------------------------------------------------------------
# Joining and splitting
# ---------------------------------------------------------------------------------------------

def _sequence(arrays: Any, op: str) -> list:
    """The inputs of a join: a list or tuple, or the slices along the first axis of one array."""
    if isinstance(arrays, Tensor):
        return [getitem(arrays, index=i) for i in range(len(arrays))]
    if isinstance(arrays, np.ndarray):
        return list(arrays)
    if not isinstance(arrays, (list, tuple)):
        raise op_error(TypeError, op,
                       f"takes a list or tuple of arrays, not {type(arrays).__name__}")
    if not arrays:
        raise op_error(ValueError, op, "needs at least one array")
    return list(arrays)


def _shapes(arrays: Sequence[Any]) -> str:
    return ", ".join(str(tuple(np.shape(a))) for a in arrays)


def _concatenate_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(min_dims=1)
    axis = draw.integers(-len(shape), len(shape) - 1)
    parts = []
    for _ in range(draw.integers(1, 3)):
        sides = list(shape)
        sides[axis] = draw.integers(1, 3)
        parts.append(array(draw, tuple(sides)))
    return tuple(parts), {"axis": draw.choice([axis, axis, None])}


def _concatenate_explain(*inputs: Any, axis: int | None = 0) -> str:
    shapes = [tuple(np.shape(x)) for x in inputs]
    listed = " and ".join(str(s) for s in shapes)
    if not inputs:
        return "needs at least one array"
    if axis is None:
        return f"cannot join inputs of shapes {listed}"
    if any(len(s) == 0 for s in shapes):
        return f"0-d inputs cannot be joined (shapes {listed}); use stack"
    if len({len(s) for s in shapes}) > 1:
        return f"inputs of shapes {listed} have different numbers of dims"
    ndim = len(shapes[0])
    if not -ndim <= axis < ndim:
        return f"axis {axis} is out of bounds for inputs of {ndim} dims (shapes {listed})"
    return f"shapes {listed} differ outside axis {axis}"


@primitive(name="concatenate", sample=_concatenate_sample, explain=_concatenate_explain)
def concatenate_op(*inputs, axis=0):
    """The inputs joined along ``axis`` (flattened first when ``axis`` is None)."""
    return np.concatenate(inputs, axis=axis)


@concatenate_op.defvjp
def concatenate_vjp(grad_out, out, *inputs, axis=0):
    """d concatenate/d input k = 1 where input k sits: each input gets its slice of grad_out."""
    sides = [int(np.size(x)) if axis is None else np.shape(x)[axis] for x in inputs]
    joined = 0 if axis is None else axis % np.ndim(out)
    ends = np.cumsum(sides).tolist()
    pieces = [getitem(grad_out, index=along(joined, slice(end - side, end)))
              for side, end in zip(sides, ends)]
    if axis is None:
        return tuple(reshape(piece, shape=np.shape(x)) for piece, x in zip(pieces, inputs))
    return tuple(pieces)


def concatenate(arrays: Sequence[Any], axis: int | None = 0, dtype: Any = None) -> Any:
    """The arrays joined along an existing ``axis`` (all flattened when ``axis`` is None)."""
    arrays = _sequence(arrays, "concatenate")
    if dtype is not None:
        arrays = [cast(x, dtype=np.dtype(dtype)) for x in arrays]
    return concatenate_op(*arrays, axis=axis)


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Arrays of one shape joined along a new ``axis`` of the result."""
    arrays = [as_operand(x) for x in _sequence(arrays, "stack")]
    shapes = {tuple(np.shape(x)) for x in arrays}
    if len(shapes) > 1:
        raise op_error(ValueError, "stack",
                       f"all inputs need the same shape, got {_shapes(arrays)}")
    (shape,) = shapes
    axis = checked_axis(axis, len(shape) + 1, "stack", shape)
    wide = (*shape[:axis], 1, *shape[axis:])
    return concatenate_op(*[reshape(x, shape=wide) for x in arrays], axis=axis)


def hstack(tup: Sequence[Any]) -> Any:
    """Arrays joined column-wise: along axis 1, or axis 0 for 1-D inputs."""
    arrays = [atleast_1d(x) for x in _sequence(tup, "hstack")]
    return concatenate_op(*arrays, axis=0 if np.ndim(arrays[0]) == 1 else 1)


def vstack(tup: Sequence[Any]) -> Any:
    """Arrays joined row-wise, along axis 0, 1-D inputs as rows (1, n)."""
    return concatenate_op(*[atleast_2d(x) for x in _sequence(tup, "vstack")], axis=0)


row_stack = vstack


def dstack(tup: Sequence[Any]) -> Any:
    """Arrays joined depth-wise, along axis 2 of their at-least-3-d forms."""
    return concatenate_op(*[atleast_3d(x) for x in _sequence(tup, "dstack")], axis=2)


def column_stack(tup: Sequence[Any]) -> Any:
    """Arrays joined as columns: 1-D inputs become columns (n, 1), then along axis 1."""
    arrays = []
    for x in _sequence(tup, "column_stack"):
        x = as_operand(x)
        arrays.append(reshape(x, shape=(-1, 1)) if np.ndim(x) < 2 else x)
    return concatenate_op(*arrays, axis=1)


def append(arr: Any, values: Any, axis: int | None = None) -> Any:
    """``values`` joined after ``arr`` along ``axis`` (both flattened when it is None)."""
    if axis is None:
        return concatenate_op(ravel(arr), ravel(values), axis=0)
    return concatenate_op(as_operand(arr), as_operand(values), axis=axis)


def _split(op: str, ary: Any, indices_or_sections: Any, axis: int, equal: bool) -> list:
    """The pieces of ``ary`` along ``axis``: basic slices (views), each a getitem."""
    ary = as_operand(ary)
    shape = np.shape(ary)
    axis = checked_axis(axis, len(shape), op, shape)
    side = shape[axis]
    if np.ndim(indices_or_sections) == 0:
        sections = operator.index(indices_or_sections)
        if sections <= 0:
            raise op_error(ValueError, op, f"the number of sections must be > 0, got {sections}")
        each, extra = divmod(side, sections)
        if equal and extra:
            raise op_error(ValueError, op, f"axis {axis} of shape {shape} does not divide into "
                           f"{sections} equal sections (array_split allows unequal ones)")
        sizes = [each + 1] * extra + [each] * (sections - extra)
        bounds = [0, *np.cumsum(sizes).tolist()]
    else:
        bounds = [0, *(operator.index(i) for i in indices_or_sections), side]
    return [getitem(ary, index=along(axis, slice(start, stop)))
            for start, stop in zip(bounds[:-1], bounds[1:])]


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """``ary`` cut along ``axis`` into equal sections, or at the given indices."""
    return _split("split", ary, indices_or_sections, axis, equal=True)


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """As split, but n sections need not be equal: the first ``side % n`` get one more."""
    return _split("array_split", ary, indices_or_sections, axis, equal=False)


def _split_at_least(op: str, ary: Any, ndim: int, axis: int, indices_or_sections: Any) -> list:
    if np.ndim(ary) < ndim:
        raise op_error(ValueError, op, f"needs at least {ndim} dims, got shape {np.shape(ary)}")
    return _split(op, ary, indices_or_sections, axis, equal=True)


def hsplit(ary: Any, indices_or_sections: Any) -> list:
    """split along axis 1 (axis 0 for 1-D input)."""
    return _split_at_least("hsplit", ary, 1, 1 if np.ndim(ary) > 1 else 0, indices_or_sections)


def vsplit(ary: Any, indices_or_sections: Any) -> list:
    """split along axis 0 of an input with at least 2 dims."""
    return _split_at_least("vsplit", ary, 2, 0, indices_or_sections)


def dsplit(ary: Any, indices_or_sections: Any) -> list:
    """split along axis 2 of an input with at least 3 dims."""
    return _split_at_least("dsplit", ary, 3, 2, indices_or_sections)


# ---------------------------------------------------------------------------------------------
# Repeating and padding
# ---------------------------------------------------------------------------------------------

def repeat(a: Any, repeats: Any, axis: int | None = None) -> Any:
    """Each element repeated ``repeats`` times along ``axis`` (of the flattened a when None).

    One count: a reshape, a broadcast and a reshape (the gradient sums the copies); one count
    per element: a getitem with the repeated positions (the gradient scatter-adds them).
    """
    a = as_operand(a)
    if axis is None:
        a, axis = ravel(a), 0
    shape = np.shape(a)
    axis = checked_axis(axis, len(shape), "repeat", shape)
    counts = np.asarray(repeats)
    if counts.dtype.kind not in "iu":
        raise op_error(TypeError, "repeat", f"repeats must be integers, got {counts.dtype}")
    if (counts < 0).any():
        raise op_error(ValueError, "repeat", "repeats may not be negative")
    side = shape[axis]
    if counts.size == 1 and counts.ndim <= 1:
        count = int(counts.reshape(()))
        inner = (*shape[:axis + 1], 1, *shape[axis + 1:])
        copies = (*shape[:axis + 1], count, *shape[axis + 1:])
        joined = (*shape[:axis], side * count, *shape[axis + 1:])
        return reshape(broadcast_to(reshape(a, shape=inner), shape=copies), shape=joined)
    if counts.shape != (side,):
        raise op_error(ValueError, "repeat", f"{counts.size} repeats for axis {axis} of shape "
                       f"{shape} (need 1 or {side})")
    return getitem(a, index=along(axis, np.repeat(np.arange(side), counts)))


def tile(A: Any, reps: int | Sequence[int]) -> Any:
    """A repeated ``reps`` times along each axis (missing axes count as 1, on the left).

    A reshape that puts a size-1 axis before each axis, a broadcast to the repeat counts, and a
    reshape that merges each pair: the gradient sums the copies.
    """
    A = as_operand(A)
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    reps = tuple(operator.index(r) for r in reps)
    if any(r < 0 for r in reps):
        raise op_error(ValueError, "tile", f"repetitions may not be negative, got {reps}")
    shape = np.shape(A)
    ndim = max(len(shape), len(reps))
    shape = (1,) * (ndim - len(shape)) + tuple(shape)
    reps = (1,) * (ndim - len(reps)) + reps
    spread = tuple(v for side in shape for v in (1, side))
    copies = tuple(v for count, side in zip(reps, shape) for v in (count, side))
    return reshape(broadcast_to(reshape(A, shape=spread), shape=copies),
                   shape=tuple(count * side for count, side in zip(reps, shape)))


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad_pairs(pad_width: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    """NumPy's ways to give widths (n, (before, after), or one pair per axis) as pairs per axis."""
    widths = np.asarray(pad_width)
    if widths.dtype.kind not in "iu":
        raise ValueError(f"pad_width must hold integers, got {pad_width!r}")
    if (widths < 0).any():
        raise ValueError(f"pad widths may not be negative, got {pad_width!r}")
    try:
        pairs = np.broadcast_to(widths, (ndim, 2))
    except ValueError:
        raise ValueError(f"pad_width {pad_width!r} does not fit {ndim} dims (one pair per "
                         "axis)") from None
    return tuple((int(before), int(after)) for before, after in pairs)


def _pad_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(max_dims=2)
    widths = tuple((draw.integers(0, 2), draw.integers(0, 2)) for _ in shape)
    mode = draw.choice(_PAD_MODES)
    params: dict = {"mode": mode}
    if mode == "constant":
        params["constant_values"] = draw.choice([0, 1.5])
    return (array(draw, shape),), {"pad_width": widths if shape else 0, **params}


def _pad_explain(array, pad_width, mode="constant", constant_values=0) -> str | None:
    shape = np.shape(array)
    if mode not in _PAD_MODES:
        return f"mode {mode!r} is not supported (supported: {', '.join(_PAD_MODES)})"
    try:
        pad_pairs(pad_width, len(shape))
    except ValueError as exc:
        return f"input shape {shape}: {exc}"
    return None


@primitive(sample=_pad_sample, explain=_pad_explain, params=("pad_width",))
def pad(array, pad_width, mode="constant", constant_values=0):
    """``array`` with borders added on each axis: a constant, or copies of its own elements
    (mode edge, reflect, symmetric or wrap, as NumPy's; reflect_type 'even')."""
    if mode not in _PAD_MODES:
        raise ValueError(f"unsupported mode {mode!r}")
    pairs = pad_pairs(pad_width, np.ndim(array))
    if not pairs:  # a 0-d array has no borders (np.pad refuses an empty pad_width)
        return np.array(array, copy=True)
    if mode == "constant":
        return np.pad(array, pairs, mode="constant", constant_values=constant_values)
    return np.pad(array, pairs, mode=mode)


@pad.defvjp
def pad_vjp(grad_out, out, array, pad_width, mode="constant", constant_values=0):
    """d pad/d array: constant borders have no derivative (the cotangent's middle is the
    input's); copied borders send theirs back to the elements copied (a scatter-add)."""
    shape = np.shape(array)
    pairs = pad_pairs(pad_width, len(shape))
    if not pairs:
        return grad_out
    if mode == "constant":
        return getitem(grad_out, index=tuple(slice(before, before + side)
                                             for (before, _), side in zip(pairs, shape)))
    # Along each axis the padded result picks input positions: NumPy's pad of 0, 1, ..., n-1
    sources = [np.pad(np.arange(side), pair, mode=mode) for side, pair in zip(shape, pairs)]
    return scatter_add(grad_out, index=np.ix_(*sources), shape=shape)
