"""Shape and indexing ops: broadcasting and its undoing, reshapes, joins and splits, reorders,
padding, sorting, indexing.

Primitives (forward, rule, sample): unbroadcast, reshape, transpose, broadcast_to, getitem,
scatter_add, concatenate (any number of inputs), flip, roll, pad, take_along_axis and
scatter_add_along_axis. Everything else here is a composite: a plain function built from those
primitives (stack, split, squeeze, repeat, tile, sort, diff, gradient, linspace, ...), so it
needs no rule of its own, works on arrays (returning arrays) and on Tensors (recording nodes),
and is differentiable to any order through its parts.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygraph.ops._common import normalize_axes
from tinygraph.ops.elementwise import cast, not_equal, sub, where
from tinygraph.primitive import describe, primitive, user_site
from tinygraph.sampling import Draw, array
from tinygraph.state import STATE, refuse_leaving_the_graph
from tinygraph.tensor import Tensor

__all__ = [
    "unbroadcast",
    "reshape",
    "transpose",
    "broadcast_to",
    "getitem",
    "scatter_add",
    "take_along_axis",
    "scatter_add_along_axis",
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
    "squeeze",
    "expand_dims",
    "ravel",
    "flatten",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "repeat",
    "tile",
    "pad",
    "flip",
    "flipud",
    "fliplr",
    "rot90",
    "roll",
    "swapaxes",
    "moveaxis",
    "rollaxis",
    "diff",
    "gradient",
    "sort",
    "partition",
    "select",
    "linspace",
]


# ---------------------------------------------------------------------------------------------
# Helpers for the composites: operands, axes, errors that name the op and the caller's line
# ---------------------------------------------------------------------------------------------

def _operand(x: Any) -> Any:
    """A Tensor as it is; anything else (numbers, lists) as a NumPy array."""
    return x if isinstance(x, Tensor) else np.asarray(x)


def _dtype(x: Any) -> np.dtype:
    return x.dtype if isinstance(x, (Tensor, np.ndarray, np.generic)) else np.asarray(x).dtype


def _error(kind: type[Exception], op: str, message: str) -> Exception:
    """A one-line error of ``kind`` naming the op and the line the user wrote."""
    return kind(f"{op}: {message} (at {user_site()})")


def _axis(axis: Any, ndim: int, op: str, shape: tuple[int, ...]) -> int:
    """``axis`` in [0, ndim), from NumPy's [-ndim, ndim)."""
    try:
        index = operator.index(axis)
    except TypeError:
        raise _error(TypeError, op, f"axis must be an integer, not {axis!r}") from None
    if not -ndim <= index < ndim:
        raise _error(np.exceptions.AxisError, op,
                     f"axis {axis} is out of bounds for {ndim} dims (input shape {shape})")
    return index % ndim


def _axes(axis: Any, ndim: int, op: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """One axis or a tuple of distinct axes, each in [0, ndim)."""
    axes = tuple(_axis(a, ndim, op, shape) for a in (
        axis if isinstance(axis, (tuple, list)) else (axis,)))
    if len(set(axes)) != len(axes):
        raise _error(ValueError, op, f"repeated axis in {axis}")
    return axes


def _along(axis: int, index: Any) -> tuple:
    """An index that applies ``index`` to axis ``axis`` and keeps every axis before it whole."""
    return (slice(None),) * axis + (index,)


def _sequence(arrays: Any, op: str) -> list:
    """The inputs of a join: a list or tuple, or the slices along the first axis of one array."""
    if isinstance(arrays, Tensor):
        return [getitem(arrays, index=i) for i in range(len(arrays))]
    if isinstance(arrays, np.ndarray):
        return list(arrays)
    if not isinstance(arrays, (list, tuple)):
        raise _error(TypeError, op, f"takes a list or tuple of arrays, not {type(arrays).__name__}")
    if not arrays:
        raise _error(ValueError, op, "needs at least one array")
    return list(arrays)


def _shapes(arrays: Sequence[Any]) -> str:
    return ", ".join(str(tuple(np.shape(a))) for a in arrays)


# ---------------------------------------------------------------------------------------------
# Broadcasting and its undoing
# ---------------------------------------------------------------------------------------------

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


def _broadcast_to_sample(draw: Draw) -> tuple[tuple, dict]:
    small, large = draw.broadcastable_shapes(2)
    target = np.broadcast_shapes(small, large)
    return (array(draw, small),), {"shape": target}


@primitive(sample=_broadcast_to_sample, params=("shape",))
def broadcast_to(x, shape):
    """x repeated along new or size-1 axes to ``shape`` (a view)."""
    return np.broadcast_to(x, shape)


broadcast_to.defvjp(lambda grad_out, out, x, shape: unbroadcast(grad_out, np.shape(x)))


# ---------------------------------------------------------------------------------------------
# Reshapes and axis permutations
# ---------------------------------------------------------------------------------------------

def _reshape_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(max_dims=3)
    size = int(np.prod(shape, dtype=np.int64))
    new_shape = draw.choice([(size,), (1, size), (size, 1), (-1,), ()]) if size == 1 else \
        draw.choice([(size,), (1, size), (size, 1), (-1,), (1, -1), -1])
    return (array(draw, shape),), {"shape": new_shape}


@primitive(sample=_reshape_sample, params=("shape",))
def reshape(x, shape):
    """x with a new shape of the same size (a view; -1 infers one side)."""
    return np.reshape(x, shape)


reshape.defvjp(lambda grad_out, out, x, shape: (grad_out.reshape(np.shape(x)),))


def _transpose_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape()
    permutation = draw.rng().permutation(len(shape))
    negative = permutation - len(shape) * draw.rng().integers(0, 2, len(shape))  # some < 0
    axes = draw.choice([None, tuple(permutation.tolist()), tuple(negative.tolist())])
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


def squeeze(a: Any, axis: int | tuple[int, ...] | None = None) -> Any:
    """a without the size-1 axes named (all of them when ``axis`` is None): a reshape."""
    a = _operand(a)
    shape = np.shape(a)
    if axis is None:
        axes = tuple(i for i, side in enumerate(shape) if side == 1)
    else:
        axes = _axes(axis, len(shape), "squeeze", shape)
        for i in axes:
            if shape[i] != 1:
                raise _error(ValueError, "squeeze",
                             f"axis {i} of shape {shape} has size {shape[i]}, not 1")
    return reshape(a, shape=tuple(side for i, side in enumerate(shape) if i not in axes))


def expand_dims(a: Any, axis: int | tuple[int, ...]) -> Any:
    """a with new size-1 axes at the positions ``axis`` of the result: a reshape."""
    a = _operand(a)
    shape = np.shape(a)
    count = len(axis) if isinstance(axis, (tuple, list)) else 1
    axes = _axes(axis, len(shape) + count, "expand_dims", shape)
    sides = iter(shape)
    return reshape(a, shape=tuple(1 if i in axes else next(sides)
                                  for i in range(len(shape) + count)))


def ravel(a: Any, order: str = "C") -> Any:
    """a as one dimension, in row-major order: a reshape (a view where NumPy's is one)."""
    if order != "C":
        raise _error(ValueError, "ravel", f"only order='C' is supported, not {order!r}")
    return reshape(_operand(a), shape=(-1,))


flatten = ravel  # ndarray.flatten's name; a Tensor is never written in place, so a view serves


def _atleast(x: Any, ndim: int) -> Any:
    """x reshaped to at least ``ndim`` dims, as NumPy's atleast_1d/2d/3d place the new axes."""
    x = _operand(x)
    shape = tuple(np.shape(x))
    if len(shape) >= ndim:
        return x
    if ndim == 3 and shape:  # (n,) -> (1, n, 1) and (m, n) -> (m, n, 1)
        return reshape(x, shape=(1, *shape, 1) if len(shape) == 1 else (*shape, 1))
    return reshape(x, shape=(1,) * (ndim - len(shape)) + shape)


def atleast_1d(*arys: Any) -> Any:
    """Each input with at least one dimension (a 0-d one becomes shape (1,))."""
    results = [_atleast(x, 1) for x in arys]
    return results[0] if len(results) == 1 else tuple(results)


def atleast_2d(*arys: Any) -> Any:
    """Each input with at least two dimensions: (n,) becomes (1, n)."""
    results = [_atleast(x, 2) for x in arys]
    return results[0] if len(results) == 1 else tuple(results)


def atleast_3d(*arys: Any) -> Any:
    """Each input with at least three dimensions: (n,) becomes (1, n, 1), (m, n) (m, n, 1)."""
    results = [_atleast(x, 3) for x in arys]
    return results[0] if len(results) == 1 else tuple(results)


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """a with two axes exchanged: a transpose."""
    a = _operand(a)
    shape = np.shape(a)
    first, second = (_axis(axis, len(shape), "swapaxes", shape) for axis in (axis1, axis2))
    axes = list(range(len(shape)))
    axes[first], axes[second] = second, first
    return transpose(a, axes=tuple(axes))


def moveaxis(a: Any, source: int | Sequence[int], destination: int | Sequence[int]) -> Any:
    """a with the axes ``source`` moved to the positions ``destination``: a transpose."""
    a = _operand(a)
    shape = np.shape(a)
    sources = _axes(source, len(shape), "moveaxis", shape)
    targets = _axes(destination, len(shape), "moveaxis", shape)
    if len(sources) != len(targets):
        raise _error(ValueError, "moveaxis", f"{len(sources)} source axes but "
                     f"{len(targets)} destinations")
    rest = iter(i for i in range(len(shape)) if i not in sources)
    placed = dict(zip(targets, sources))
    return transpose(a, axes=tuple(placed[i] if i in placed else next(rest)
                                   for i in range(len(shape))))


def rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    """a with ``axis`` moved to sit before the axis now at ``start``: a transpose."""
    a = _operand(a)
    shape = np.shape(a)
    ndim = len(shape)
    axis = _axis(axis, ndim, "rollaxis", shape)
    if not -ndim <= start <= ndim:
        raise _error(np.exceptions.AxisError, "rollaxis",
                     f"start {start} is out of bounds for {ndim} dims (input shape {shape})")
    start = start + ndim if start < 0 else start
    if axis < start:
        start -= 1
    axes = [i for i in range(ndim) if i != axis]
    axes.insert(start, axis)
    return transpose(a, axes=tuple(axes))


# ---------------------------------------------------------------------------------------------
# Joining and splitting
# ---------------------------------------------------------------------------------------------

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
    pieces = [getitem(grad_out, index=_along(joined, slice(end - side, end)))
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
    arrays = [_operand(x) for x in _sequence(arrays, "stack")]
    shapes = {tuple(np.shape(x)) for x in arrays}
    if len(shapes) > 1:
        raise _error(ValueError, "stack", f"all inputs need the same shape, got {_shapes(arrays)}")
    (shape,) = shapes
    axis = _axis(axis, len(shape) + 1, "stack", shape)
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
        x = _operand(x)
        arrays.append(reshape(x, shape=(-1, 1)) if np.ndim(x) < 2 else x)
    return concatenate_op(*arrays, axis=1)


def append(arr: Any, values: Any, axis: int | None = None) -> Any:
    """``values`` joined after ``arr`` along ``axis`` (both flattened when it is None)."""
    if axis is None:
        return concatenate_op(ravel(arr), ravel(values), axis=0)
    return concatenate_op(_operand(arr), _operand(values), axis=axis)


def _split(op: str, ary: Any, indices_or_sections: Any, axis: int, equal: bool) -> list:
    """The pieces of ``ary`` along ``axis``: basic slices (views), each a getitem."""
    ary = _operand(ary)
    shape = np.shape(ary)
    axis = _axis(axis, len(shape), op, shape)
    side = shape[axis]
    if np.ndim(indices_or_sections) == 0:
        sections = operator.index(indices_or_sections)
        if sections <= 0:
            raise _error(ValueError, op, f"the number of sections must be > 0, got {sections}")
        each, extra = divmod(side, sections)
        if equal and extra:
            raise _error(ValueError, op, f"axis {axis} of shape {shape} does not divide into "
                         f"{sections} equal sections (array_split allows unequal ones)")
        sizes = [each + 1] * extra + [each] * (sections - extra)
        bounds = [0, *np.cumsum(sizes).tolist()]
    else:
        bounds = [0, *(operator.index(i) for i in indices_or_sections), side]
    return [getitem(ary, index=_along(axis, slice(start, stop)))
            for start, stop in zip(bounds[:-1], bounds[1:])]


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """``ary`` cut along ``axis`` into equal sections, or at the given indices."""
    return _split("split", ary, indices_or_sections, axis, equal=True)


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """As split, but n sections need not be equal: the first ``side % n`` get one more."""
    return _split("array_split", ary, indices_or_sections, axis, equal=False)


def _split_at_least(op: str, ary: Any, ndim: int, axis: int, indices_or_sections: Any) -> list:
    if np.ndim(ary) < ndim:
        raise _error(ValueError, op, f"needs at least {ndim} dims, got shape {np.shape(ary)}")
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
    a = _operand(a)
    if axis is None:
        a, axis = ravel(a), 0
    shape = np.shape(a)
    axis = _axis(axis, len(shape), "repeat", shape)
    counts = np.asarray(repeats)
    if counts.dtype.kind not in "iu":
        raise _error(TypeError, "repeat", f"repeats must be integers, got {counts.dtype}")
    if (counts < 0).any():
        raise _error(ValueError, "repeat", "repeats may not be negative")
    side = shape[axis]
    if counts.size == 1 and counts.ndim <= 1:
        count = int(counts.reshape(()))
        inner = (*shape[:axis + 1], 1, *shape[axis + 1:])
        copies = (*shape[:axis + 1], count, *shape[axis + 1:])
        joined = (*shape[:axis], side * count, *shape[axis + 1:])
        return reshape(broadcast_to(reshape(a, shape=inner), shape=copies), shape=joined)
    if counts.shape != (side,):
        raise _error(ValueError, "repeat", f"{counts.size} repeats for axis {axis} of shape "
                     f"{shape} (need 1 or {side})")
    return getitem(a, index=_along(axis, np.repeat(np.arange(side), counts)))


def tile(A: Any, reps: int | Sequence[int]) -> Any:
    """A repeated ``reps`` times along each axis (missing axes count as 1, on the left).

    A reshape that puts a size-1 axis before each axis, a broadcast to the repeat counts, and a
    reshape that merges each pair: the gradient sums the copies.
    """
    A = _operand(A)
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    reps = tuple(operator.index(r) for r in reps)
    if any(r < 0 for r in reps):
        raise _error(ValueError, "tile", f"repetitions may not be negative, got {reps}")
    shape = np.shape(A)
    ndim = max(len(shape), len(reps))
    shape = (1,) * (ndim - len(shape)) + tuple(shape)
    reps = (1,) * (ndim - len(reps)) + reps
    spread = tuple(v for side in shape for v in (1, side))
    copies = tuple(v for count, side in zip(reps, shape) for v in (count, side))
    return reshape(broadcast_to(reshape(A, shape=spread), shape=copies),
                   shape=tuple(count * side for count, side in zip(reps, shape)))


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _pad_pairs(pad_width: Any, ndim: int) -> tuple[tuple[int, int], ...]:
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
        _pad_pairs(pad_width, len(shape))
    except ValueError as exc:
        return f"input shape {shape}: {exc}"
    return None


@primitive(sample=_pad_sample, explain=_pad_explain, params=("pad_width",))
def pad(array, pad_width, mode="constant", constant_values=0):
    """``array`` with borders added on each axis: a constant, or copies of its own elements
    (mode edge, reflect, symmetric or wrap, as NumPy's; reflect_type 'even')."""
    if mode not in _PAD_MODES:
        raise ValueError(f"unsupported mode {mode!r}")
    pairs = _pad_pairs(pad_width, np.ndim(array))
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
    pairs = _pad_pairs(pad_width, len(shape))
    if not pairs:
        return grad_out
    if mode == "constant":
        return getitem(grad_out, index=tuple(slice(before, before + side)
                                             for (before, _), side in zip(pairs, shape)))
    # Along each axis the padded result picks input positions: NumPy's pad of 0, 1, ..., n-1
    sources = [np.pad(np.arange(side), pair, mode=mode) for side, pair in zip(shape, pairs)]
    return scatter_add(grad_out, index=np.ix_(*sources), shape=shape)


# ---------------------------------------------------------------------------------------------
# Reordering: flip, roll, rot90
# ---------------------------------------------------------------------------------------------

def _flip_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape()
    axes: list = [None, *range(-len(shape), len(shape))]
    if len(shape) > 1:
        axes.append((0, -1))
    return (array(draw, shape),), {"axis": draw.choice(axes)}


@primitive(sample=_flip_sample)
def flip(m, axis=None):
    """m with its elements in reverse order along ``axis`` (every axis when None); a view."""
    return np.flip(m, axis)


flip.defvjp(lambda grad_out, out, m, axis=None: flip(grad_out, axis=axis))  # its own inverse


def flipud(m: Any) -> Any:
    """m upside down: flipped along axis 0."""
    if np.ndim(m) < 1:
        raise _error(ValueError, "flipud", "needs at least 1 dim, got a 0-d input")
    return flip(_operand(m), axis=0)


def fliplr(m: Any) -> Any:
    """m mirrored left to right: flipped along axis 1."""
    if np.ndim(m) < 2:
        raise _error(ValueError, "fliplr", f"needs at least 2 dims, got shape {np.shape(m)}")
    return flip(_operand(m), axis=1)


def rot90(m: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Any:
    """m turned k quarter turns in the plane of ``axes``, from the first axis towards the second:
    flips and a transpose."""
    m = _operand(m)
    shape = np.shape(m)
    if len(axes) != 2:
        raise _error(ValueError, "rot90", f"axes must name 2 axes, got {axes}")
    first, second = _axes(tuple(axes), len(shape), "rot90", shape)
    k = operator.index(k) % 4
    if k == 0:
        return m
    if k == 2:
        return flip(m, axis=(first, second))
    order = list(range(len(shape)))
    order[first], order[second] = second, first
    if k == 1:
        return transpose(flip(m, axis=second), axes=tuple(order))
    return flip(transpose(m, axes=tuple(order)), axis=second)


def _negated(shift: Any) -> Any:
    return (-np.asarray(shift)).tolist()


def _roll_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(min_dims=1)
    case = draw.choice(["flat", "axis", "axes"] if len(shape) > 1 else ["flat", "axis"])
    if case == "flat":
        return (array(draw, shape),), {"shift": draw.integers(-5, 5)}
    if case == "axis":
        axis = draw.integers(-len(shape), len(shape) - 1)
        return (array(draw, shape),), {"shift": draw.integers(-5, 5), "axis": axis}
    return (array(draw, shape),), {"shift": (draw.integers(-3, 3), draw.integers(-3, 3)),
                                   "axis": (0, -1)}


@primitive(sample=_roll_sample, params=("shift",))
def roll(a, shift, axis=None):
    """a shifted cyclically by ``shift`` places along ``axis`` (of the flattened a when None)."""
    return np.roll(a, shift, axis=axis)


# the inverse shift: d roll(a, s)/da sends each cotangent back s places
roll.defvjp(lambda grad_out, out, a, shift, axis=None: roll(grad_out, _negated(shift), axis=axis))


# ---------------------------------------------------------------------------------------------
# Differences: diff, gradient
# ---------------------------------------------------------------------------------------------

_NOT_GIVEN: Any = object()


def _edge(value: Any, shape: tuple[int, ...], axis: int) -> Any:
    """A prepend/append value: a scalar becomes a slab of ``shape`` one element thick."""
    value = _operand(value)
    if np.ndim(value) == 0:
        return broadcast_to(value, shape=(*shape[:axis], 1, *shape[axis + 1:]))
    return value


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = _NOT_GIVEN,
         append: Any = _NOT_GIVEN) -> Any:
    """The n-th forward difference along ``axis``: out[i] = a[i + 1] - a[i], n times (for
    booleans a[i + 1] != a[i]); ``prepend``/``append`` join values first."""
    a = _operand(a)
    n = operator.index(n)
    if n < 0:
        raise _error(ValueError, "diff", f"order n must be >= 0, got {n}")
    if n == 0:
        return a
    shape = np.shape(a)
    if not shape:
        raise _error(ValueError, "diff", "needs at least 1 dim, got a 0-d input")
    axis = _axis(axis, len(shape), "diff", shape)
    parts = [part for part in (prepend, a, append) if part is not _NOT_GIVEN]
    if len(parts) > 1:
        a = concatenate_op(*[x if x is a else _edge(x, shape, axis) for x in parts], axis=axis)
    difference = not_equal if _dtype(a) == np.bool_ else sub
    for _ in range(n):
        a = difference(getitem(a, index=_along(axis, slice(1, None))),
                       getitem(a, index=_along(axis, slice(None, -1))))
    return a


def _gradient_along(f: Any, axis: int, spacing: Any, edge_order: int) -> Any:
    """np.gradient along one axis: central differences inside, one-sided ones at both ends
    (first or second order); ``spacing`` is a step or the coordinates along the axis."""
    shape = np.shape(f)
    side = shape[axis]
    if side < edge_order + 1:
        raise _error(ValueError, "gradient", f"axis {axis} of shape {shape} has {side} "
                     f"elements; edge_order {edge_order} needs at least {edge_order + 1}")

    def part(start: int | None, stop: int | None) -> Any:
        return getitem(f, index=_along(axis, slice(start, stop)))

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
        raise _error(ValueError, "gradient", f"coordinates of shape {np.shape(spacing)} do not "
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
    f = _operand(f)
    if not isinstance(f, Tensor) and f.dtype.kind != "f":
        f = f.astype(np.float64)
    shape = np.shape(f)
    if not shape:
        raise _error(ValueError, "gradient", "needs at least 1 dim, got a 0-d input")
    axes = (tuple(range(len(shape))) if axis is None
            else _axes(axis, len(shape), "gradient", shape))
    if edge_order not in (1, 2):
        raise _error(ValueError, "gradient", f"edge_order must be 1 or 2, got {edge_order}")
    if not varargs:
        spacings: list = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacings = list(varargs) * len(axes)
    elif len(varargs) == len(axes):
        spacings = list(varargs)
    else:
        raise _error(TypeError, "gradient", f"give one spacing, or one per axis ({len(axes)}), "
                     f"not {len(varargs)}")
    spacings = [h if isinstance(h, Tensor) or np.ndim(h) == 0 else np.asarray(h, np.float64)
                for h in spacings]
    results = []
    for each, h in zip(axes, spacings):
        result = _gradient_along(f, each, h, edge_order)
        # as NumPy, the result has f's float dtype (a float64 spacing does not widen float32)
        results.append(result if _dtype(result) == _dtype(f) else cast(result, dtype=_dtype(f)))
    return results[0] if len(results) == 1 else tuple(results)


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
    a = _operand(a)
    if axis is None:
        a, axis = ravel(a), -1
    _axis(axis, np.ndim(a), "sort", np.shape(a))
    return take_along_axis(a, _argsort(a, axis=axis, kind=kind), axis=axis)


def partition(a: Any, kth: int | Sequence[int], axis: int | None = -1) -> Any:
    """a rearranged so the kth element is where sorting would put it, smaller ones before and
    larger after: take_along_axis of its argpartition (the gradient follows the permutation)."""
    a = _operand(a)
    if axis is None:
        a, axis = ravel(a), -1
    _axis(axis, np.ndim(a), "partition", np.shape(a))
    return take_along_axis(a, _argpartition(a, kth, axis=axis), axis=axis)


def select(condlist: Sequence[Any], choicelist: Sequence[Any], default: Any = 0) -> Any:
    """Elementwise, the choice of the first condition that holds (``default`` where none does):
    nested where, the last condition innermost."""
    if len(condlist) != len(choicelist):
        raise _error(ValueError, "select", f"{len(condlist)} conditions but {len(choicelist)} "
                     "choices (they go in pairs)")
    if not condlist:
        raise _error(ValueError, "select", "needs at least one condition")
    for number, condition in enumerate(condlist):
        if _dtype(condition) != np.bool_:
            raise _error(TypeError, "select", f"condition {number} has dtype "
                         f"{_dtype(condition)}, not bool")
    result = default
    for condition, choice in zip(reversed(condlist), reversed(choicelist)):
        result = where(condition, choice, result)
    return result


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True,
             retstep: bool = False, dtype: Any = None, axis: int = 0) -> Any:
    """``num`` evenly spaced values from start to stop (stop left out when not ``endpoint``):
    start + i * (stop - start) / div, differentiable in start and stop when they are Tensors."""
    if not isinstance(start, Tensor) and not isinstance(stop, Tensor):
        return np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    num = operator.index(num)
    if num < 0:
        raise _error(ValueError, "linspace", f"num must be >= 0, got {num}")
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise _error(TypeError, "linspace", f"Tensor endpoints need a float dtype, not "
                     f"{np.dtype(dtype)}")
    # Python numbers stay numbers, so that (as in NumPy) they do not widen a float32 endpoint
    start, stop = (v if isinstance(v, (Tensor, int, float)) else np.asarray(v)
                   for v in (start, stop))
    exact = np.result_type(*(_dtype(v) for v in (start, stop) if not isinstance(v, (int, float))),
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
