"""Broadcasting and its undoing, reshapes and axis permutations, reorders (flip, roll, rot90).

Part of the shape family, whose every name :mod:`~tinygraph.ops.shape` re-exports. Primitives
(forward, rule, sample): unbroadcast, broadcast_to, reshape, transpose, flip and roll. Everything
else here is a composite: a plain function built from those primitives (squeeze, expand_dims,
ravel, atleast_1d, swapaxes, moveaxis, rot90, ...), so it needs no rule of its own, works on
arrays (returning arrays) and on Tensors (recording nodes), and is differentiable to any order
through its parts. The helpers of the composites (operands, axes, one-line errors) are in
:mod:`~tinygraph.ops._common`; the axis permutations that other families' rules use
(``permuted``, ``moved``, ``swap_last``, not exported) are here, next to ``transpose``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygraph.ops._common import (
    as_operand,
    checked_axes,
    checked_axis,
    normalize_axes,
    op_error,
)
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array

__all__ = [
    "unbroadcast",
    "reshape",
    "transpose",
    "broadcast_to",
    "squeeze",
    "expand_dims",
    "ravel",
    "flatten",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "flip",
    "flipud",
    "fliplr",
    "rot90",
    "roll",
    "swapaxes",
    "moveaxis",
    "rollaxis",
]


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
unbroadcast.rule_reads()


def _plan_unbroadcast(params: dict, shapes: list[tuple[int, ...]], dtypes: list[np.dtype]) -> Any:
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
broadcast_to.rule_reads()


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
reshape.rule_reads()


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


def _plan_transpose(params: dict, shapes: list[tuple[int, ...]], dtypes: list[np.dtype]) -> Any:
    """For a compiled program: the reversed axes are the array's ``.T`` (no function call of
    np.transpose's wrapper: about 1 us of a small step, for each of a layer's transposes)."""
    axes, ndim = params.get("axes"), len(shapes[0])
    if axes is not None and tuple(a % ndim for a in axes) != tuple(range(ndim - 1, -1, -1)):
        return None
    return operator.attrgetter("T"), None


transpose.plan = _plan_transpose


@transpose.defvjp
def transpose_vjp(grad_out, out, x, axes=None):
    """The cotangent goes back through the inverse permutation."""
    if axes is None:
        return (transpose(grad_out),)
    inverse = tuple(np.argsort(normalize_axes(axes, np.ndim(x))).tolist())  # axes may be < 0
    return (transpose(grad_out, axes=inverse),)


transpose.rule_reads()


# Axis permutations for the rules of other families (matmul, dot, tensordot, inv, cross, ...): on
# axes already normalized, with no checks, and no node where nothing moves. Not exported.

def permuted(x: Any, order: Any) -> Any:
    """transpose(x, order), skipped when ``order`` keeps every axis in place."""
    order = tuple(int(axis) for axis in order)
    return x if order == tuple(range(len(order))) else transpose(x, axes=order)


def moved(x: Any, source: int, destination: int) -> Any:
    """x with axis ``source`` moved to ``destination`` (np.moveaxis; both normalized)."""
    axes = list(range(np.ndim(x)))
    axes.insert(destination, axes.pop(source))
    return permuted(x, axes)


def swap_last(x: Any) -> Any:
    """x with its last two axes swapped (the matrix transpose of a stack)."""
    axes = list(range(np.ndim(x)))
    axes[-2:] = axes[-1], axes[-2]
    return transpose(x, axes=tuple(axes))


def squeeze(a: Any, axis: int | tuple[int, ...] | None = None) -> Any:
    """a without the size-1 axes named (all of them when ``axis`` is None): a reshape."""
    a = as_operand(a)
    shape = np.shape(a)
    if axis is None:
        axes = tuple(i for i, side in enumerate(shape) if side == 1)
    else:
        axes = checked_axes(axis, len(shape), "squeeze", shape)
        for i in axes:
            if shape[i] != 1:
                raise op_error(ValueError, "squeeze",
                               f"axis {i} of shape {shape} has size {shape[i]}, not 1")
    return reshape(a, shape=tuple(side for i, side in enumerate(shape) if i not in axes))


def expand_dims(a: Any, axis: int | tuple[int, ...]) -> Any:
    """a with new size-1 axes at the positions ``axis`` of the result: a reshape."""
    a = as_operand(a)
    shape = np.shape(a)
    count = len(axis) if isinstance(axis, (tuple, list)) else 1
    axes = checked_axes(axis, len(shape) + count, "expand_dims", shape)
    sides = iter(shape)
    return reshape(a, shape=tuple(1 if i in axes else next(sides)
                                  for i in range(len(shape) + count)))


def ravel(a: Any, order: str = "C") -> Any:
    """a as one dimension, in row-major order: a reshape (a view where NumPy's is one)."""
    if order != "C":
        raise op_error(ValueError, "ravel", f"only order='C' is supported, not {order!r}")
    return reshape(as_operand(a), shape=(-1,))


flatten = ravel  # ndarray.flatten's name; a Tensor is never written in place, so a view serves


def _atleast(x: Any, ndim: int) -> Any:
    """x reshaped to at least ``ndim`` dims, as NumPy's atleast_1d/2d/3d place the new axes."""
    x = as_operand(x)
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
    a = as_operand(a)
    shape = np.shape(a)
    first, second = (checked_axis(axis, len(shape), "swapaxes", shape) for axis in (axis1, axis2))
    axes = list(range(len(shape)))
    axes[first], axes[second] = second, first
    return transpose(a, axes=tuple(axes))


def moveaxis(a: Any, source: int | Sequence[int], destination: int | Sequence[int]) -> Any:
    """a with the axes ``source`` moved to the positions ``destination``: a transpose."""
    a = as_operand(a)
    shape = np.shape(a)
    sources = checked_axes(source, len(shape), "moveaxis", shape)
    targets = checked_axes(destination, len(shape), "moveaxis", shape)
    if len(sources) != len(targets):
        raise op_error(ValueError, "moveaxis", f"{len(sources)} source axes but "
                       f"{len(targets)} destinations")
    rest = iter(i for i in range(len(shape)) if i not in sources)
    placed = dict(zip(targets, sources))
    return transpose(a, axes=tuple(placed[i] if i in placed else next(rest)
                                   for i in range(len(shape))))


def rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    """a with ``axis`` moved to sit before the axis now at ``start``: a transpose."""
    a = as_operand(a)
    shape = np.shape(a)
    ndim = len(shape)
    axis = checked_axis(axis, ndim, "rollaxis", shape)
    if not -ndim <= start <= ndim:
        raise op_error(np.exceptions.AxisError, "rollaxis",
                       f"start {start} is out of bounds for {ndim} dims (input shape {shape})")
    start = start + ndim if start < 0 else start
    if axis < start:
        start -= 1
    axes = [i for i in range(ndim) if i != axis]
    axes.insert(start, axis)
    return transpose(a, axes=tuple(axes))


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
        raise op_error(ValueError, "flipud", "needs at least 1 dim, got a 0-d input")
    return flip(as_operand(m), axis=0)


def fliplr(m: Any) -> Any:
    """m mirrored left to right: flipped along axis 1."""
    if np.ndim(m) < 2:
        raise op_error(ValueError, "fliplr", f"needs at least 2 dims, got shape {np.shape(m)}")
    return flip(as_operand(m), axis=1)


def rot90(m: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Any:
    """m turned k quarter turns in the plane of ``axes``, from the first axis towards the second:
    flips and a transpose."""
    m = as_operand(m)
    shape = np.shape(m)
    if len(axes) != 2:
        raise op_error(ValueError, "rot90", f"axes must name 2 axes, got {axes}")
    first, second = checked_axes(tuple(axes), len(shape), "rot90", shape)
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
