"""ONNX rules of the reductions (:mod:`tinygraph.ops.reductions`): sums, extrema and products
over axes, variance and standard deviation, logsumexp, running sums and products.

A count a reduction divides by (a mean's N, var's N - ddof) comes from ``g.count``, computed at
run time when one of the reduced sizes follows the batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.onnx_export.graph import OnnxGraph, Rule
from tinygraph.onnx_export.rules_elementwise import log1p_of
from tinygraph.ops._common import normalize_axes


def _reduce(op_type: str) -> Rule:
    """The ONNX reduction ``op_type`` over NumPy's ``axis`` (axes as an input, opset 18)."""
    def rule(g: OnnxGraph, x: str, axis: Any = None, keepdims: bool = False) -> str:
        ndim = g.ndim(x)
        x = g.cast(x, g.out_dtype)
        axes = normalize_axes(axis, ndim)
        if not axes:
            return g.op("Identity", x)
        return g.op(op_type, x, g.ints(axes), keepdims=int(bool(keepdims)))

    return rule


def _variance(root: bool) -> Rule:
    """var (std with ``root``): sum((x - mean)^2) / (count - ddof), over the axes."""
    def rule(g: OnnxGraph, x: str, axis: Any = None, *, ddof: int = 0,
             keepdims: bool = False) -> str:
        dtype = g.out_dtype
        axes = normalize_axes(axis, g.ndim(x))
        count = g.count(x, axes, dtype)
        x = g.cast(x, dtype)
        if not axes:
            centered = g.op("Sub", x, x)
            total = g.op("Mul", centered, centered)
        else:
            mean = g.op("Div", g.op("ReduceSum", x, g.ints(axes), keepdims=1), count)
            centered = g.op("Sub", x, mean)
            total = g.op("ReduceSum", g.op("Mul", centered, centered), g.ints(axes),
                         keepdims=int(bool(keepdims)))
        if ddof:
            count = g.op("Sub", count, g.scalar(ddof, dtype))
        out = g.op("Div", total, count)
        return g.op("Sqrt", out) if root else out

    return rule


def _logsumexp(g: OnnxGraph, x: str, axis: Any = None, keepdims: bool = False) -> str:
    """tinygraph's logsumexp: m + log1p(sum of e^(x - m) over the non-maxima + maxima - 1), m the
    (finite) maximum, so no overflow and a result near 0 keeps its digits."""
    dtype = g.out_dtype
    axes = normalize_axes(axis, g.ndim(x))
    x = g.cast(x, dtype)
    if not axes:
        return g.op("Identity", x)
    ints, zero, one = g.ints(axes), g.scalar(0, dtype), g.scalar(1, dtype)
    shift = g.op("ReduceMax", x, ints, keepdims=1)
    finite = g.op("Not", g.op("Or", g.op("IsNaN", shift), g.op("IsInf", shift)))
    shift = g.op("Where", finite, shift, zero)
    at_shift = g.op("Equal", x, shift)
    rest = g.op("ReduceSum", g.op("Where", at_shift, zero, g.op("Exp", g.op("Sub", x, shift))),
                ints, keepdims=1)
    maxima = g.op("ReduceSum", g.op("Cast", at_shift, to=g.onnx_dtype(dtype)), ints, keepdims=1)
    out = g.op("Add", log1p_of(g, g.op("Add", rest, g.op("Sub", maxima, one)), dtype), shift)
    return out if keepdims else g.op("Squeeze", out, ints)


def _cumsum(g: OnnxGraph, x: str, axis: int | None = None) -> str:
    """Running sums along ``axis`` (of the flattened x without one)."""
    ndim = g.ndim(x)
    x = g.cast(x, g.out_dtype)
    if axis is None:
        x, axis, ndim = g.op("Reshape", x, g.ints([-1])), 0, 1
    return g.op("CumSum", x, g.const(np.int64(int(axis) % ndim), name="axis"))


def _shifted(g: OnnxGraph, x: str, ndim: int, by: int, axis: int, fill: str) -> str:
    """x (``ndim`` axes) moved ``by`` places towards the end of ``axis``, ``fill`` entering at
    the start."""
    kept = g.op("Slice", x, g.ints([0]), g.ints([-by]), g.ints([axis]))
    pads = [0] * (2 * ndim)
    pads[axis] = by
    return g.op("Pad", kept, g.ints(pads), fill)


def _cumprod(g: OnnxGraph, x: str, axis: int | None = None) -> str:
    """Running products by doubling (Hillis-Steele): ceil(log2 n) rounds of y * shift(y, step),
    1 filling, so the graph stays small; the association differs from NumPy's loop (rounding)."""
    ndim = g.ndim(x)
    x = g.cast(x, g.out_dtype)
    if axis is None:
        g.require_static("cumprod over a flattened array", x)
        x, axis, ndim = g.op("Reshape", x, g.ints([-1])), 0, 1
        side = int(np.prod(g.out_shape, dtype=np.int64))
    else:
        axis = int(axis) % ndim
        side = g.fixed_length(g.out_dims[axis], "cumprod along the batch axis")
    one = g.scalar(1, g.out_dtype)
    step = 1
    while step < side:
        x = g.op("Mul", x, _shifted(g, x, ndim, step, axis, one))
        step *= 2
    return g.op("Identity", x)


RULES: dict[str, Rule] = {
    "sum": _reduce("ReduceSum"), "max": _reduce("ReduceMax"), "min": _reduce("ReduceMin"),
    "prod": _reduce("ReduceProd"), "var": _variance(root=False), "std": _variance(root=True),
    "logsumexp": _logsumexp, "cumsum": _cumsum, "cumprod": _cumprod,
}
