"""ONNX rules of the linear algebra ops (:mod:`tinygraph.ops.products`, :mod:`~tinygraph.ops.
matrix`, :mod:`~tinygraph.ops.linalg`): matmul, dot, tensordot and einsum (as MatMul or Einsum),
diagonal, det, norm.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from tinygraph.onnx_export.graph import INT_MAX, OnnxGraph, Rule
from tinygraph.ops._common import normalize_axes
from tinygraph.ops.products import einsum_specs, tensordot_axes


def _matmul(g: OnnxGraph, a: str, b: str) -> str:
    """a @ b (ONNX's MatMul is NumPy's matmul)."""
    return g.op("MatMul", *g.operands(a, b))


def _letters(count: int) -> list[str]:
    """``count`` einsum labels."""
    return list((string.ascii_lowercase + string.ascii_uppercase)[:count])


def _contraction(g: OnnxGraph, a: str, b: str, a_labels: list[str], b_labels: list[str],
                 out_labels: list[str]) -> str:
    """The Einsum ``a_labels,b_labels->out_labels`` of a and b in the result's dtype."""
    equation = f"{''.join(a_labels)},{''.join(b_labels)}->{''.join(out_labels)}"
    return g.op("Einsum", *g.operands(a, b), equation=equation)


def _dot(g: OnnxGraph, a: str, b: str) -> str:
    """np.dot: a product with a scalar; MatMul when b has at most 2 axes; else an Einsum that
    sums a's last axis against b's second-to-last."""
    a_ndim, b_ndim = g.ndim(a), g.ndim(b)
    x, y = g.operands(a, b)
    if a_ndim == 0 or b_ndim == 0:
        return g.op("Mul", x, y)
    if b_ndim <= 2:
        return g.op("MatMul", x, y)
    labels = _letters(a_ndim + b_ndim - 1)
    a_labels = labels[:a_ndim]
    b_labels = labels[a_ndim:a_ndim + b_ndim - 2] + [a_labels[-1]] + labels[-1:]
    out_labels = a_labels[:-1] + b_labels[:-2] + b_labels[-1:]
    return _contraction(g, x, y, a_labels, b_labels, out_labels)


def _tensordot(g: OnnxGraph, a: str, b: str, axes: Any = 2) -> str:
    """np.tensordot as an Einsum: the summed axes of b take the labels of a's."""
    a_ndim, b_ndim = g.ndim(a), g.ndim(b)
    axes_a, axes_b = tensordot_axes(axes, a_ndim, b_ndim)
    labels = _letters(a_ndim + b_ndim)
    a_labels = labels[:a_ndim]
    b_labels = labels[a_ndim:]
    for i, j in zip(axes_a, axes_b):
        b_labels[j] = a_labels[i]
    out = [a_labels[i] for i in range(a_ndim) if i not in axes_a] + \
        [b_labels[j] for j in range(b_ndim) if j not in axes_b]
    return _contraction(g, a, b, a_labels, b_labels, out)


def _einsum(g: OnnxGraph, *operands: str, subscripts: str, optimize: Any = False) -> str:
    """np.einsum as ONNX's Einsum, its subscripts made explicit (``optimize`` is NumPy's)."""
    specs, output = einsum_specs(subscripts, [g.shape(x) for x in operands])
    return g.op("Einsum", *g.operands(*operands), equation=f"{','.join(specs)}->{output}")


def _diagonal(g: OnnxGraph, x: str, offset: int = 0, axis1: int = 0, axis2: int = 1) -> str:
    """The two axes moved last, sliced to the L x L block the diagonal crosses, flattened, and
    every (L + 1)-th entry taken."""
    ndim = g.ndim(x)
    first, second = axis1 % ndim, axis2 % ndim
    dims = g.dims(x)
    rows = g.fixed_length(dims[first], "diagonal across the batch axis")
    cols = g.fixed_length(dims[second], "diagonal across the batch axis")
    side = max(0, min(rows + min(offset, 0), cols - max(offset, 0)))
    rest = [a for a in range(ndim) if a not in (first, second)]
    moved = g.op("Transpose", x, perm=rest + [first, second])
    row0, col0 = -min(offset, 0), max(offset, 0)
    block = g.op("Slice", moved, g.ints([row0, col0]), g.ints([row0 + side, col0 + side]),
                 g.ints([ndim - 2, ndim - 1]))
    flat = g.op("Reshape", block, g.ints([0] * len(rest) + [side * side]))
    return g.op("Slice", flat, g.ints([0]), g.ints([INT_MAX]), g.ints([len(rest)]),
                g.ints([side + 1]))


def _det(g: OnnxGraph, a: str) -> str:
    """The determinant of the last two axes (ONNX's Det)."""
    return g.op("Det", g.cast(a, g.out_dtype))


def _norm(g: OnnxGraph, x: str, ord: Any = None, axis: Any = None, keepdims: bool = False) -> str:
    """np.linalg.norm's vector norms, and its matrix norms but the 2-norm and the nuclear norm
    (singular values, which ONNX has no operator for)."""
    ndim = g.ndim(x)
    dtype = g.out_dtype
    x = g.cast(x, dtype)
    keep = int(bool(keepdims))
    axes = normalize_axes(axis, ndim)
    ints = g.ints(list(axes))
    if (axis is None and ord is None) or ord == "fro" or (ord is None and len(axes) == 2):
        return g.op("Sqrt", g.op("ReduceSumSquare", x, ints, keepdims=keep))
    if len(axes) == 2:
        if ord not in (1, -1, np.inf, -np.inf):
            raise g.fail(f"the matrix norm ord={ord!r} needs singular values, which ONNX has no "
                         "operator for")
        summed, across = axes if ord in (1, -1) else axes[::-1]
        sums = g.op("ReduceSum", g.op("Abs", x), g.ints([summed]), keepdims=1)
        out = g.op("ReduceMax" if ord > 0 else "ReduceMin", sums, g.ints([across]), keepdims=1)
        return out if keepdims else g.op("Squeeze", out, ints)
    if ord is None or ord == 2:
        return g.op("Sqrt", g.op("ReduceSumSquare", x, ints, keepdims=keep))
    if ord == np.inf:
        return g.op("ReduceMax", g.op("Abs", x), ints, keepdims=keep)
    if ord == -np.inf:
        return g.op("ReduceMin", g.op("Abs", x), ints, keepdims=keep)
    if ord == 0:
        nonzero = g.op("Cast", g.op("Not", g.op("Equal", x, g.scalar(0, dtype))),
                       to=g.onnx_dtype(dtype))
        return g.op("ReduceSum", nonzero, ints, keepdims=keep)
    if ord == 1:
        return g.op("ReduceSum", g.op("Abs", x), ints, keepdims=keep)
    power = g.op("Pow", g.op("Abs", x), g.scalar(ord, dtype))
    return g.op("Pow", g.op("ReduceSum", power, ints, keepdims=keep), g.scalar(1 / ord, dtype))


RULES: dict[str, Rule] = {
    "matmul": _matmul, "dot": _dot, "tensordot": _tensordot, "einsum": _einsum,
    "diagonal": _diagonal, "det": _det, "norm": _norm,
}
