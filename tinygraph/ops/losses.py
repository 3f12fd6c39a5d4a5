"""The losses family: the cross-entropy, fused with its softmax for numerical stability, and
(re-exported from :mod:`~tinygraph.ops.softmax`) the log-softmax."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygraph.ops._common import Residuals
from tinygraph.ops.elementwise import cast, exp, greater, not_equal, where
from tinygraph.ops.reductions import reduce_sum
from tinygraph.ops.shape import reshape
from tinygraph.ops.softmax import (
    _columns_shape,
    _log_softmax,
    _log_softmax_transposed,
    log_softmax,
)
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array

__all__ = [
    "log_softmax",
    "softmax_cross_entropy",
]

REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------------------------
# Checking the inputs of the cross-entropy
# ---------------------------------------------------------------------------------------------

def _class_axis(logits: Any, axis: Any) -> int:
    """``axis`` of the logits in [0, ndim)."""
    shape = np.shape(logits)
    if not shape:
        raise ValueError("logits must have a class axis, got a scalar")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
            or not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis!r} is out of range for logits of shape {shape}")
    return int(axis) % len(shape)


def _is_ids(logits: Any, labels: Any) -> bool:
    """Class ids have one axis less than the logits (targets have their shape)."""
    return np.ndim(labels) < np.ndim(logits)


def _batch_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + shape[axis + 1:]


def _kept_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """``shape`` with the class axis kept as 1: per-position values broadcast over classes."""
    return shape[:axis] + (1,) + shape[axis + 1:]


def _position(flat: int, batch: tuple) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, batch))


def _where_in(position: tuple, batch: tuple) -> str:
    if len(batch) == 1:
        return f" at row {position[0]}"
    return f" at position {position}" if batch else ""


def _class_ids(logits: np.ndarray, labels: np.ndarray, axis: int,
               valid: np.ndarray | None) -> np.ndarray:
    """Check labels as class ids in [0, C) (where ``valid``); return them as integers."""
    batch, classes = _batch_shape(logits.shape, axis), logits.shape[axis]
    if labels.shape != batch:
        if len(batch) == 1:
            raise ValueError(f"got {labels.shape[0]} labels for {batch[0]} rows of logits "
                             f"{logits.shape}")
        raise ValueError(f"class ids of shape {labels.shape} do not match logits "
                         f"{logits.shape}: expected {batch} (the logits without axis {axis})")
    if labels.dtype.kind == "f":
        whole = np.equal(labels, np.round(labels))
        if valid is not None:
            whole |= ~valid
        if not whole.all():
            position = _position(int(np.argmin(whole)), batch)
            raise ValueError(f"label {labels[position]}{_where_in(position, batch)} is not an "
                             "integer class id")
    elif labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    checked = labels if valid is None else np.where(valid, labels, 0)
    if checked.size == 0:
        return checked.astype(np.intp)
    if checked.min() < 0:
        position = _position(int(np.argmin(checked)), batch)
        raise ValueError(f"label {labels[position]}{_where_in(position, batch)} is negative")
    if checked.max() >= classes:
        position = _position(int(np.argmax(checked)), batch)
        raise ValueError(f"label {labels[position]}{_where_in(position, batch)} is out of "
                         f"range for {classes} classes")
    return checked.astype(np.intp, copy=False)


def _check_cross_entropy(logits: np.ndarray, labels: Any, axis: Any = -1,
                         reduction: str = "mean", label_smoothing: float = 0.0,
                         ignore_index: Any = None) -> tuple[np.ndarray, int, np.ndarray | None]:
    """(labels as integer ids or as targets, the class axis in [0, ndim), the mask of the ids
    that count, or None when all do)."""
    axis = _class_axis(logits, axis)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(
            label_smoothing, (int, float, np.integer, np.floating)) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    labels = np.asarray(labels)
    shape = logits.shape
    if labels.ndim == len(shape) - 1:
        valid = None
        if ignore_index is not None:
            if isinstance(ignore_index, bool) or not isinstance(ignore_index,
                                                                (int, np.integer)):
                raise ValueError(f"ignore_index must be an int, got {ignore_index!r}")
            valid = np.not_equal(labels, ignore_index)
        return _class_ids(logits, labels, axis, valid), axis, valid
    if labels.ndim == len(shape):
        if labels.shape != shape:
            raise ValueError(f"targets of shape {labels.shape} do not match logits {shape}")
        if labels.dtype.kind not in "fiub":
            raise ValueError(f"targets must be numbers, got dtype {labels.dtype}")
        if ignore_index is not None:
            raise ValueError(f"ignore_index applies to class ids, not to targets of shape "
                             f"{labels.shape}")
        return labels, axis, None
    if len(shape) == 2 and axis == 1:
        ids, targets = "(N,)", "(N, C)"
    else:
        ids, targets = str(_batch_shape(shape, axis)), str(shape)
    raise ValueError(f"labels must be class ids of shape {ids} or targets of shape {targets}, "
                     f"got {labels.shape}")


# ---------------------------------------------------------------------------------------------
# The cross-entropy and its rule
# ---------------------------------------------------------------------------------------------

def _cross_entropy_sample(draw: Draw) -> tuple[tuple, dict]:
    classes = draw.integers(2, 4)
    if draw.choice([True, False]):  # today's call: (N, C) logits, no parameters
        shape, axis, params = (draw.integers(1, 3), classes), 1, {}
    else:
        batch = tuple(draw.integers(1, 3) for _ in range(draw.integers(0, 2)))
        axis = draw.integers(0, len(batch))
        shape = batch[:axis] + (classes,) + batch[axis:]
        params = {"axis": draw.choice([axis, axis - len(shape)]),
                  "reduction": draw.choice(REDUCTIONS),
                  "label_smoothing": draw.choice([0.0, 0.2])}
    logits = array(draw, shape, -3.0, 3.0)
    batch = _batch_shape(shape, axis)
    if draw.choice([True, False]):
        labels: Any = draw.rng().integers(0, classes, size=batch)
        if params and draw.choice([True, False]):
            params["ignore_index"] = draw.choice([-100, classes - 1])
            labels[draw.rng().random(batch) < 0.3] = params["ignore_index"]
    else:
        # (contiguous: the gradient checks perturb the array through a flat view of it)
        labels = np.ascontiguousarray(
            np.moveaxis(draw.rng().dirichlet(np.ones(classes), size=batch), -1, axis))
    return (logits, labels), params


@primitive(sample=_cross_entropy_sample)
def softmax_cross_entropy(logits, labels, axis=-1, reduction="mean", label_smoothing=0.0,
                          ignore_index=None):
    """-sum_c target_c log softmax(logits)_c along the class ``axis``, at each position, then
    its mean (over positions whose label is not ``ignore_index``), sum, or none.

    ``labels`` are class ids (the logits' shape without ``axis``) or targets (the logits'
    shape); ``label_smoothing`` e makes the target (1 - e) target + e / C, as PyTorch's.
    """
    if (reduction == "mean" and not label_smoothing and ignore_index is None
            and axis in (-1, 1) and _training_call(logits, labels)):
        return _LOG_PROBS.keep(*_training_loss(logits, labels))
    checked, axis, valid = _check_cross_entropy(logits, labels, axis, reduction,
                                                label_smoothing, ignore_index)
    log_probs = _log_softmax(logits, axis=axis)
    loss = _cross_entropy_value(logits, checked, log_probs, axis, reduction, label_smoothing,
                                valid)
    return _LOG_PROBS.keep(loss, log_probs)  # the eager rule starts from it


# The forward's log-softmax, kept for the rule of an eager (array) pass: the rule then does not
# compute it again (a recorded pass recomputes it with ops, so that it is differentiable).
_LOG_PROBS = Residuals()


def _cross_entropy_value(logits: np.ndarray, labels: np.ndarray, log_probs: np.ndarray,
                         axis: int = -1, reduction: str = "mean", smoothing: float = 0.0,
                         valid: np.ndarray | None = None) -> np.ndarray:
    shape = np.shape(logits)
    axis %= len(shape)
    classes, batch = shape[axis], _batch_shape(shape, axis)
    count = math.prod(batch)  # (Python ints: np.prod's wrapper cost ~2 us a call)
    if labels.ndim < len(shape):
        last = log_probs if axis == len(shape) - 1 else np.moveaxis(log_probs, axis, -1)
        flat = last.reshape(count, classes)  # a view: the class axis last
        picked = flat[np.arange(count), labels.reshape(count)]  # log p of each label
        if smoothing:
            picked = (1 - smoothing) * picked + (smoothing / classes) * flat.sum(axis=1)
        if valid is not None:
            picked = np.where(valid.reshape(count), picked, 0)
            count = int(np.count_nonzero(valid))
        if reduction == "none":
            return np.asarray(-picked.reshape(batch), dtype=logits.dtype)
        total = picked.sum()
    else:
        if smoothing:
            labels = labels * (1 - smoothing) + smoothing / classes
        if reduction == "none":
            return np.asarray(-np.sum(labels * log_probs, axis=axis), dtype=logits.dtype)
        total = np.sum(labels * log_probs)
    if reduction == "sum":
        return np.asarray(0.0 - total, dtype=logits.dtype)  # 0 - x: +0.0 when nothing counts
    return np.asarray(0.0 - total / max(count, 1), dtype=logits.dtype)  # (+0.0, not -0.0)


def _softmax_minus(log_probs: np.ndarray, labels: np.ndarray, axis: int = -1,
                   smoothing: float = 0.0, ignore_index: Any = None) -> np.ndarray:
    softmax = np.exp(log_probs)
    if labels.ndim < log_probs.ndim:
        ids = labels if labels.dtype.kind in "iu" else labels.astype(np.intp)
        if log_probs.ndim == 2 and axis in (1, -1) and not smoothing and ignore_index is None:
            softmax[np.arange(len(ids)), ids] -= 1  # a fresh array: in place is safe
            return softmax
        valid = None if ignore_index is None else np.not_equal(ids, ignore_index)
        if valid is not None:
            ids = np.where(valid, ids, 0)
        if smoothing:  # the target is (1 - e) at the label, plus e / C everywhere
            softmax -= smoothing / log_probs.shape[axis]
        moved = np.moveaxis(softmax, axis, -1)  # a view: the subtraction lands in softmax
        moved[(*np.indices(ids.shape, sparse=True), ids)] -= 1 - smoothing
        if valid is not None:  # an ignored position has no target and no cotangent
            softmax *= valid.reshape(_kept_shape(log_probs.shape, axis % log_probs.ndim))
        return softmax
    if smoothing:
        labels = labels * (1 - smoothing) + smoothing / log_probs.shape[axis]
    return softmax * labels.sum(axis=axis, keepdims=True) - labels


def _training_call(logits: Any, labels: Any) -> bool:
    """Whether this is the training step's call, checked in a few comparisons: (N, C) logits
    and N valid integer class ids (the general path raises the one-line errors). Its short
    paths are the general path's operations, so the same bits, without its Python overhead
    (~20 us of a ~100 us compiled step at batch 1)."""
    return (type(logits) is np.ndarray and type(labels) is np.ndarray and logits.ndim == 2
            and labels.ndim == 1 and labels.dtype.kind in "iu" and len(labels) == len(logits)
            and len(labels) > 0 and logits.shape[1] > 0 and labels.min() >= 0
            and labels.max() < logits.shape[1])


def _training_loss(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the mean cross-entropy, the log-softmax) of a call ``_training_call`` accepted: the
    operations of ``_cross_entropy_value`` for it, without the general path's handling."""
    log_probs = _log_softmax(logits, axis=1)
    count = len(labels)
    loss = np.asarray(0.0 - log_probs[np.arange(count), labels].sum() / count,
                      dtype=logits.dtype)
    return loss, log_probs


def _cross_entropy_and_rule(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """softmax_cross_entropy and softmax_minus_targets of the same inputs and no parameters,
    sharing one log-softmax (same bits as the two ops apart): a compiled step computes them
    together."""
    if _training_call(logits, labels):  # the same operations as below, so the same bits
        loss, log_probs = _training_loss(logits, labels)
        return loss, _softmax_minus(log_probs, labels)
    checked, axis, _ = _check_cross_entropy(logits, labels)
    log_probs = _log_softmax(logits, axis=axis)
    return (_cross_entropy_value(logits, checked, log_probs, axis),
            _softmax_minus(log_probs, np.asarray(labels)))


# Not registered: an internal op, applied only to inputs softmax_cross_entropy has checked (so
# it checks nothing itself); its rules are checked through softmax_cross_entropy's second and
# third derivatives, which are made of them.
@primitive(sample=_cross_entropy_sample, register=False)
def softmax_minus_targets(logits, labels, axis=-1, label_smoothing=0.0, ignore_index=None):
    """softmax(logits) * sum(target) - target along ``axis`` (= softmax - target for ids), with
    the target smoothed as softmax_cross_entropy's, and 0 at positions whose id is ignored.

    The cross-entropy's gradient times its scale (1/N for the mean): the cross-entropy's rule is
    this one op, which keeps the first-order pass as fast as a hand-fused rule, and has rules of
    its own for higher orders. ``labels`` are class ids or targets, as for
    softmax_cross_entropy.
    """
    return _softmax_minus(_log_softmax(logits, axis=axis), np.asarray(labels), axis,
                          label_smoothing, ignore_index)


def _kept_ids(logits: Any, labels: Any, axis: int, ignore_index: Any) -> Any:
    """1 where the class id counts, 0 where it is ignore_index, with a size-1 class axis."""
    mask = cast(not_equal(labels, ignore_index), np.result_type(logits))
    return reshape(mask, _kept_shape(np.shape(logits), axis % np.ndim(logits)))


def _softmax_minus_targets_vjp_logits(grad_out, out, logits, labels, axis=-1,
                                      label_smoothing=0.0, ignore_index=None):
    """d(s_i T - t_i)/dz_j = T s_i ([i = j] - s_j), T = sum(t): T s (g - sum(g s))."""
    softmax = exp(log_softmax(logits, axis=axis))
    if not _is_ids(logits, labels):
        total = reduce_sum(labels, axis=axis, keepdims=True)
        if label_smoothing:  # sum of (1 - e) t + e / C
            total = total * (1 - label_smoothing) + label_smoothing
        grad_out = grad_out * total
    elif ignore_index is not None:  # T = 1 where the id counts, 0 where it is ignored
        grad_out = grad_out * _kept_ids(logits, labels, axis, ignore_index)
    return softmax * (grad_out - reduce_sum(grad_out * softmax, axis=axis, keepdims=True))


def _softmax_minus_targets_vjp_labels(grad_out, out, logits, labels, axis=-1,
                                      label_smoothing=0.0, ignore_index=None):
    """d(s_i T - t_i)/dt_j = (1 - e)(s_i - [i = j]): (1 - e)(sum(g s) - g); ids have none."""
    if _is_ids(logits, labels):
        return None
    result = reduce_sum(grad_out * exp(log_softmax(logits, axis=axis)), axis=axis,
                        keepdims=True) - grad_out
    return result * (1 - label_smoothing) if label_smoothing else result


softmax_minus_targets.defvjp(_softmax_minus_targets_vjp_logits,
                             _softmax_minus_targets_vjp_labels)
# Ops that a compiled program may compute in one call with this one, on the same inputs. The
# compiler fuses only equations without parameters, so only the default call (class axis last,
# mean, no smoothing, nothing ignored), which is what _cross_entropy_and_rule computes.
softmax_cross_entropy.fusions = {softmax_minus_targets: _cross_entropy_and_rule}


def _plan_cross_entropy_and_rule(shapes: list[tuple[int, ...]], dtypes: list[np.dtype]) -> Any:
    """For a compiled program, whose shapes are fixed: ``into(out, logits, labels) -> (loss,
    out)``, _cross_entropy_and_rule for (N, C) logits and N integer ids with the rule's result
    written into ``out`` (a buffer of the program's plan) and its scratch allocated once.

    The same arithmetic on the same values, so the same bits; fewer NumPy calls (what a small
    batch pays for) and fewer passes. The ids go through a boolean one-hot (ids == 0..C-1):
    it checks them (a row without a True is an id outside [0, C): the general path then raises
    its one-line error), picks each row's log-probability in row order (the values and order
    of ``log_probs[rows, ids]``, so the same sum), and subtracts the 1s (x - 0 is x). Logits
    that _log_softmax reduces by columns stay transposed until the rule's result is copied out
    (``out``, seen as (C, N), is their scratch until then)."""
    (logits_shape, labels_shape), (dtype, labels_dtype) = shapes, dtypes
    if (len(logits_shape) != 2 or labels_shape != logits_shape[:1] or labels_dtype.kind not in "iu"
            or dtype.kind != "f" or 0 in logits_shape):
        return None
    count, classes = logits_shape
    if classes - 1 > np.iinfo(labels_dtype).max:  # int8 ids and 200 classes: 0..C-1 would wrap
        return None
    class_ids = np.arange(classes, dtype=labels_dtype)
    maximum, add, subtract, exp, log, equal = (np.maximum.reduce, np.add.reduce, np.subtract,
                                               np.exp, np.log, np.equal)
    count_nonzero = np.count_nonzero

    def general(out: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> tuple:
        """The general path: it raises the one-line error of an id out of range, and gives
        eager's bits for logits that are not C-contiguous (NumPy then reduces in another
        order)."""
        loss, rule = _cross_entropy_and_rule(logits, labels)
        np.copyto(out, rule)
        return loss, out

    if _columns_shape(logits_shape, dtype, 1):  # as _log_softmax decides for these logits
        rows = np.arange(count)
        columns = np.empty((classes, count), dtype)
        onehot_t, row = np.empty((classes, count), bool), np.empty(count, dtype)
        class_column = class_ids.reshape(classes, 1)

        def by_columns(out: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> tuple:
            equal(class_column, labels, out=onehot_t)  # the one-hot, transposed
            if count_nonzero(onehot_t) != count:
                return general(out, logits, labels)
            exps = out.reshape(classes, count)  # (scratch until the result is copied in)
            log_probs_t = _log_softmax_transposed(logits, columns, exps, row)
            loss = np.asarray(0.0 - add(log_probs_t[labels, rows]) / count, dtype=dtype)
            exp(log_probs_t, out=columns)  # (the log-probabilities are read for the last time)
            subtract(columns, onehot_t, out=columns)
            np.copyto(out, columns.T)
            return loss, out

        return by_columns

    log_probs, onehot = np.empty(logits_shape, dtype), np.empty(logits_shape, bool)
    row = np.empty((count, 1), dtype)

    def by_rows(out: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> tuple:
        equal(labels.reshape(count, 1), class_ids, out=onehot)
        if count_nonzero(onehot) != count or not logits.flags.c_contiguous:
            return general(out, logits, labels)
        maximum(logits, axis=1, keepdims=True, out=row)  # _log_softmax, into the buffers
        subtract(logits, row, out=log_probs)
        exp(log_probs, out=out)
        add(out, axis=1, keepdims=True, out=row)
        log(row, out=row)
        subtract(log_probs, row, out=log_probs)
        loss = np.asarray(0.0 - add(log_probs[onehot]) / count, dtype=dtype)  # _training_loss
        exp(log_probs, out=out)  # _softmax_minus
        subtract(out, onehot, out=out)
        return loss, out

    return by_rows


_cross_entropy_and_rule.plan = _plan_cross_entropy_and_rule  # type: ignore[attr-defined]


def _position_scale(grad_out: Any, logits: Any, labels: Any, axis: int, reduction: str,
                    ignore_index: Any) -> Any:
    """d loss / d (loss at each position), times grad_out, broadcastable against the logits:
    grad_out itself for sum, over the count for mean, with a class axis for none."""
    shape = np.shape(logits)
    axis %= len(shape)
    if reduction == "none":
        return reshape(grad_out, _kept_shape(shape, axis))
    if reduction == "sum":
        return grad_out
    if ignore_index is None or not _is_ids(logits, labels):
        return grad_out / max(math.prod(_batch_shape(shape, axis)), 1)
    count = reduce_sum(cast(not_equal(labels, ignore_index), np.result_type(logits)))
    return grad_out / where(greater(count, 0), count, 1)  # nothing counted: the loss is 0


def _rule_params(axis: int, label_smoothing: float, ignore_index: Any) -> dict:
    """softmax_minus_targets' parameters, the default ones left out: the default call's rule
    then has none, and a compiled step fuses it with the loss (see ``fusions``)."""
    params: dict[str, Any] = {}
    if axis != -1:
        params["axis"] = axis
    if label_smoothing:
        params["label_smoothing"] = label_smoothing
    if ignore_index is not None:
        params["ignore_index"] = ignore_index
    return params


def _cross_entropy_vjp_logits(grad_out, out, logits, labels, axis=-1, reduction="mean",
                              label_smoothing=0.0, ignore_index=None):
    """d loss/d logits = (softmax(logits) * sum(target) - target) * d loss/d position loss."""
    log_probs = _LOG_PROBS.take(out)
    if log_probs is not None:  # an array pass: softmax_minus_targets' forward, from the residual
        return _softmax_minus(log_probs, np.asarray(labels), axis, label_smoothing,
                              ignore_index) \
            * _position_scale(grad_out, logits, labels, axis, reduction, ignore_index)
    return softmax_minus_targets(logits, labels, **_rule_params(axis, label_smoothing,
                                                                ignore_index)) \
        * _position_scale(grad_out, logits, labels, axis, reduction, ignore_index)


def _cross_entropy_vjp_labels(grad_out, out, logits, labels, axis=-1, reduction="mean",
                              label_smoothing=0.0, ignore_index=None):
    """d loss/d target = -(1 - e) log softmax(logits) * d loss/d position loss; ids have none."""
    if _is_ids(logits, labels):
        return None
    scale = _position_scale(grad_out, logits, labels, axis, reduction, ignore_index)
    if label_smoothing:
        scale = scale * (1 - label_smoothing)
    return log_softmax(logits, axis=axis) * -scale


softmax_cross_entropy.defvjp(_cross_entropy_vjp_logits, _cross_entropy_vjp_labels)
softmax_cross_entropy.rule_reads("logits", "labels")
