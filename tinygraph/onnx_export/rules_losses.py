"""ONNX rules of the losses (:mod:`tinygraph.ops.losses`): log_softmax, the softmax
cross-entropy, and softmax_minus_targets, the cross-entropy's backward rule (so that a recorded
gradient exports too).

Labels are class ids (one axis fewer than the logits) or targets (a distribution per row);
``label_smoothing`` mixes the targets with the uniform distribution, and an ``ignore_index`` id
counts for nothing.
"""

from __future__ import annotations

import numpy as np

from tinygraph.onnx_export.batch import BatchDim
from tinygraph.onnx_export.graph import OnnxGraph, Rule


def _class_axis(g: OnnxGraph, logits: str, axis: int) -> tuple[int, int]:
    """(the class axis in [0, ndim), the number of classes); refused when it follows the batch."""
    axis = int(axis) % g.ndim(logits)
    classes = g.dims(logits)[axis]
    if isinstance(classes, BatchDim):
        raise g.fail("the class axis cannot be the batch axis")
    return axis, classes


def _smoothed(g: OnnxGraph, targets: str, label_smoothing: float, classes: int,
              dtype: np.dtype) -> str:
    """targets (1 - s) + s / classes: the targets mixed with the uniform distribution."""
    scaled = g.op("Mul", targets, g.scalar(1 - label_smoothing, dtype))
    return g.op("Add", scaled, g.scalar(label_smoothing / classes, dtype))


def _kept_ids(g: OnnxGraph, ids: str, ignore_index: int | None) -> tuple[str, str | None]:
    """(the int64 ids with 0 for ``ignore_index``, the mask of the others), or (ids, None)
    without one."""
    if ignore_index is None:
        return ids, None
    valid = g.op("Not", g.op("Equal", ids, g.scalar(ignore_index, np.int64)))
    return g.op("Where", valid, ids, g.scalar(0, np.int64)), valid


def _softmax_minus_targets(g: OnnxGraph, logits: str, labels: str, axis: int = -1,
                           label_smoothing: float = 0.0, ignore_index: int | None = None) -> str:
    """softmax(logits) * sum(target) - target along ``axis`` (softmax - one-hot for ids, with
    smoothing, and 0 at ignored ids): the cross-entropy's backward rule, for exported gradients."""
    dtype = g.out_dtype
    ndim = g.ndim(logits)
    axis, classes = _class_axis(g, logits, axis)
    softmax = g.op("Exp", g.op("LogSoftmax", g.cast(logits, dtype), axis=axis))
    if g.ndim(labels) == ndim:
        targets = g.cast(labels, dtype)
        if label_smoothing:
            targets = _smoothed(g, targets, label_smoothing, classes, dtype)
        total = g.op("ReduceSum", targets, g.ints([axis]), keepdims=1)
        return g.op("Sub", g.op("Mul", softmax, total), targets)
    ids = g.op("Unsqueeze", g.cast(labels, np.int64), g.ints([axis]))
    ids, valid = _kept_ids(g, ids, ignore_index)
    positions = g.const(np.arange(classes, dtype=np.int64).reshape(
        [-1 if a == axis else 1 for a in range(ndim)]), name="classes")
    onehot = g.op("Cast", g.op("Equal", ids, positions), to=g.onnx_dtype(dtype))
    result = g.op("Sub", softmax, g.op("Mul", onehot, g.scalar(1 - label_smoothing, dtype))
                  if label_smoothing else onehot)
    if label_smoothing:
        result = g.op("Sub", result, g.scalar(label_smoothing / classes, dtype))
    if valid is not None:
        result = g.op("Mul", result, g.op("Cast", valid, to=g.onnx_dtype(dtype)))
    return result


def _log_softmax(g: OnnxGraph, x: str, axis: int = -1) -> str:
    """x - log(sum(e^x)) along ``axis``: ONNX's LogSoftmax."""
    return g.op("LogSoftmax", g.cast(x, g.out_dtype), axis=int(axis) % max(g.ndim(x), 1))


def _softmax_cross_entropy(g: OnnxGraph, logits: str, labels: str, axis: int = -1,
                           reduction: str = "mean", label_smoothing: float = 0.0,
                           ignore_index: int | None = None) -> str:
    """tinygraph's cross-entropy: log-softmax along the class axis, the label's entry picked
    (GatherElements) or the targets' weighted sum, smoothing, ignored ids, then the reduction.
    Labels are not range-checked at run time (ONNX Runtime refuses an id out of range)."""
    dtype = g.out_dtype
    ndim = g.ndim(logits)
    axis, classes = _class_axis(g, logits, axis)
    log_probs = g.op("LogSoftmax", g.cast(logits, dtype), axis=axis)
    batch_axes = [a for a in range(ndim) if a != axis]
    by_id = g.ndim(labels) < ndim  # class ids, else targets
    zero = g.scalar(0, dtype)
    valid = None
    if by_id:
        label_ids, valid = _kept_ids(g, g.cast(labels, np.int64), ignore_index)
        column = g.op("Unsqueeze", label_ids, g.ints([axis]))
        picked = g.op("Squeeze", g.op("GatherElements", log_probs, column, axis=axis),
                      g.ints([axis]))
        if label_smoothing:
            spread = g.op("ReduceSum", log_probs, g.ints([axis]), keepdims=0)
            picked = g.op("Add", g.op("Mul", picked, g.scalar(1 - label_smoothing, dtype)),
                          g.op("Mul", spread, g.scalar(label_smoothing / classes, dtype)))
        if valid is not None:
            picked = g.op("Where", valid, picked, zero)
        if reduction == "none":
            return g.op("Neg", picked)
        total = g.op("ReduceSum", picked, keepdims=0)
    else:
        targets = g.cast(labels, dtype)
        if label_smoothing:
            targets = _smoothed(g, targets, label_smoothing, classes, dtype)
        products = g.op("Mul", targets, log_probs)
        if reduction == "none":
            return g.op("Neg", g.op("ReduceSum", products, g.ints([axis]), keepdims=0))
        total = g.op("ReduceSum", products, keepdims=0)
    if reduction == "sum":
        return g.op("Sub", zero, total)
    if valid is not None:
        count = g.op("ReduceSum", g.op("Cast", valid, to=g.onnx_dtype(dtype)), keepdims=0)
    else:
        count = g.count(logits, batch_axes, dtype)
    count = g.op("Max", count, g.scalar(1, dtype))
    return g.op("Sub", zero, g.op("Div", total, count))


RULES: dict[str, Rule] = {
    "log_softmax": _log_softmax, "softmax_cross_entropy": _softmax_cross_entropy,
    # the cross-entropy's backward rule's own op (so a traced gradient exports too)
    "softmax_minus_targets": _softmax_minus_targets,
}
