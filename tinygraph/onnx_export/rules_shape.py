"""ONNX rules of the shape ops (:mod:`tinygraph.ops.reshaping`, :mod:`~tinygraph.ops.joins`):
reshape, transpose, broadcasting and its adjoint, flip, roll, concatenate, pad.

Sizes that follow the batch go through ``g.reshape`` and ``g.expand``; roll and the non-constant
pad modes need a fixed length along the axis they move entries on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.onnx_export.graph import INT_MAX, INT_MIN, OnnxGraph, Rule
from tinygraph.ops._common import normalize_axes
from tinygraph.ops.joins import pad_pairs


def _reshape(g: OnnxGraph, x: str, shape: Any) -> str:
    """x in the result's sizes (``shape`` is the traced one; a size may follow the batch)."""
    return g.reshape(x)


def _transpose(g: OnnxGraph, x: str, axes: Any = None) -> str:
    """The axes permuted (reversed without ``axes``)."""
    ndim = g.ndim(x)
    if ndim == 0:
        return g.op("Identity", x)
    perm = list(range(ndim))[::-1] if axes is None else list(normalize_axes(axes, ndim))
    return g.op("Transpose", x, perm=perm)


def _broadcast_to(g: OnnxGraph, x: str, shape: Any) -> str:
    """x expanded to the result's sizes."""
    return g.op("Identity", g.expand(x, g.out_dims))


def _unbroadcast(g: OnnxGraph, x: str, shape: Any) -> str:
    """broadcast_to's adjoint: x summed over the leading axes and the axes the result has as 1."""
    x_shape, target = g.shape(x), tuple(g.out_shape)
    extra = len(x_shape) - len(target)
    axes = list(range(extra)) + [extra + i for i, side in enumerate(target)
                                 if side == 1 and x_shape[extra + i] != 1]
    if axes:
        x = g.op("ReduceSum", x, g.ints(axes), keepdims=1)
    return g.reshape(x) if extra else g.op("Identity", x)


def _flip(g: OnnxGraph, m: str, axis: Any = None) -> str:
    """m read backwards along the axes: a Slice with step -1."""
    axes = normalize_axes(axis, g.ndim(m))
    if not axes:
        return g.op("Identity", m)
    k = len(axes)
    return g.op("Slice", m, g.ints([-1] * k), g.ints([INT_MIN] * k), g.ints(list(axes)),
                g.ints([-1] * k))


def _roll(g: OnnxGraph, a: str, shift: Any, axis: Any = None) -> str:
    """Entries moved ``shift`` places along each axis, wrapping around: per axis, the last
    ``shift`` entries concatenated before the others (the flattened array without ``axis``)."""
    x = a
    if axis is None:
        g.require_static("roll of the flattened array")
        x = g.op("Reshape", x, g.ints([-1]))
        pairs = [(0, int(np.sum(shift)))]
        dims = (int(np.prod(g.out_shape, dtype=np.int64)),)
    else:
        ndim = g.ndim(a)
        shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
        totals: dict[int, int] = {}
        for s, ax in zip(shifts.ravel().tolist(), axes.ravel().tolist()):
            totals[int(ax) % ndim] = totals.get(int(ax) % ndim, 0) + int(s)
        pairs = sorted(totals.items())
        dims = g.dims(a)
    for ax, s in pairs:
        side = g.fixed_length(dims[ax], "roll along the batch axis")
        s = s % side if side else 0
        if s:
            tail = g.op("Slice", x, g.ints([side - s]), g.ints([INT_MAX]), g.ints([ax]))
            head = g.op("Slice", x, g.ints([0]), g.ints([side - s]), g.ints([ax]))
            x = g.op("Concat", tail, head, axis=ax)
    return g.reshape(x) if axis is None else g.op("Identity", x)


def _concatenate(g: OnnxGraph, *inputs: str, axis: int | None = 0) -> str:
    """The inputs joined along ``axis`` (flattened without one)."""
    parts = g.operands(*inputs)
    if axis is None:
        parts = [g.op("Reshape", p, g.ints([-1])) for p in parts]
        axis = 0
    return g.op("Concat", *parts, axis=int(axis))


def _pad(g: OnnxGraph, array: str, pad_width: Any, mode: str = "constant",
         constant_values: Any = 0) -> str:
    """np.pad: the constant mode as ONNX's Pad; the others (edge, reflect, symmetric, wrap) as
    a Gather per axis of the positions np.pad copies from, so they need fixed lengths."""
    ndim = g.ndim(array)
    x = g.cast(array, g.out_dtype)
    if ndim == 0:
        return g.op("Identity", x)
    pairs = pad_pairs(pad_width, ndim)
    if mode == "constant":
        if np.ndim(constant_values) != 0:
            raise g.fail("constant_values per axis are not mapped (ONNX's Pad takes one value)")
        pads = [b for b, _ in pairs] + [a for _, a in pairs]
        return g.op("Pad", x, g.ints(pads), g.scalar(constant_values, g.out_dtype))
    dims = g.dims(array)
    for axis, pair in enumerate(pairs):
        if pair == (0, 0):
            continue
        side = g.fixed_length(dims[axis], f"pad mode {mode!r} along the batch axis")
        positions = np.pad(np.arange(side), pair, mode=mode)  # what each place copies
        x = g.op("Gather", x, g.ints(positions.tolist()), axis=axis)
    return x if x != array else g.op("Identity", x)


RULES: dict[str, Rule] = {
    "reshape": _reshape, "transpose": _transpose, "broadcast_to": _broadcast_to,
    "unbroadcast": _unbroadcast, "flip": _flip, "roll": _roll, "concatenate": _concatenate,
    "pad": _pad,
}
