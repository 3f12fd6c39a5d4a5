"""The softmax family and the cross-entropy loss, fused for numerical stability."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops.elementwise import exp
from tinygraph.ops.reductions import reduce_sum
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array

__all__ = [
    "log_softmax",
    "softmax_cross_entropy",
]


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    # the ufuncs' own reductions: np.max / np.sum's bits, without their Python wrappers
    shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)  # exp never overflows
    return shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))


def _log_softmax_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(min_dims=1)
    return (array(draw, shape, -3.0, 3.0),), {"axis": draw.integers(-len(shape), len(shape) - 1)}


@primitive(sample=_log_softmax_sample)
def log_softmax(x, axis=-1):
    """log(softmax(x)) = x - log(sum(exp(x))) along ``axis``, stable for any magnitude."""
    return _log_softmax(x, axis)


@log_softmax.defvjp
def log_softmax_vjp(grad_out, out, x, axis=-1):
    """d/dx_j (x_i - lse(x)) = [i = j] - softmax_j: grad_out - softmax * sum(grad_out)."""
    return (grad_out - exp(out) * grad_out.sum(axis=axis, keepdims=True),)


def _class_ids(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Check labels of shape (N,) as class ids in [0, C); return them as integers."""
    count, classes = logits.shape
    if labels.shape[0] != count:
        raise ValueError(f"got {labels.shape[0]} labels for {count} rows of logits {logits.shape}")
    if labels.dtype.kind == "f":
        whole = np.equal(labels, np.round(labels))
        if not whole.all():
            row = int(np.argmin(whole))
            raise ValueError(f"label {labels[row]} at row {row} is not an integer class id")
    elif labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    if count == 0:
        return labels.astype(np.intp)
    low, high = labels.min(), labels.max()
    if low < 0:
        row = int(np.argmin(labels))
        raise ValueError(f"label {labels[row]} at row {row} is negative")
    if high >= classes:
        row = int(np.argmax(labels))
        raise ValueError(f"label {labels[row]} at row {row} is out of range for {classes} classes")
    return labels.astype(np.intp, copy=False)


def _check_cross_entropy(logits: np.ndarray, labels: Any) -> np.ndarray:
    if np.ndim(logits) != 2:
        raise ValueError(f"logits must be 2-D (N, C), got shape {np.shape(logits)}")
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return _class_ids(logits, labels)
    if labels.ndim == 2:
        if labels.shape != logits.shape:
            raise ValueError(f"targets of shape {labels.shape} do not match logits {logits.shape}")
        if labels.dtype.kind not in "fiub":
            raise ValueError(f"targets must be numbers, got dtype {labels.dtype}")
        return labels
    raise ValueError(
        f"labels must be class ids of shape (N,) or targets of shape (N, C), got {labels.shape}"
    )


def _cross_entropy_sample(draw: Draw) -> tuple[tuple, dict]:
    count, classes = draw.integers(1, 4), draw.integers(2, 5)
    logits = array(draw, (count, classes), -3.0, 3.0)
    if draw.choice([True, False]):
        labels: Any = draw.rng().integers(0, classes, size=count)
    else:
        labels = draw.rng().dirichlet(np.ones(classes), size=count)
    return (logits, labels), {}


@primitive(sample=_cross_entropy_sample)
def softmax_cross_entropy(logits, labels):
    """mean_n -sum_c target[n, c] log softmax(logits[n])_c, with labels as ids or targets."""
    labels = _check_cross_entropy(logits, labels)
    return _cross_entropy_value(logits, labels, _log_softmax(logits, axis=1))


def _cross_entropy_value(logits: np.ndarray, labels: np.ndarray,
                         log_probs: np.ndarray) -> np.ndarray:
    count = logits.shape[0]
    if labels.ndim == 1:
        total = log_probs[np.arange(count), labels].sum()
    else:
        total = np.sum(labels * log_probs)
    return np.asarray(-total / max(count, 1), dtype=logits.dtype)


def _softmax_minus(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    softmax = np.exp(log_probs)
    if labels.ndim == 1:
        ids = labels if labels.dtype.kind in "iu" else labels.astype(np.intp)
        softmax[np.arange(len(ids)), ids] -= 1  # a fresh array: in place is safe
        return softmax
    return softmax * labels.sum(axis=1, keepdims=True) - labels


def _cross_entropy_and_rule(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """softmax_cross_entropy and softmax_minus_targets of the same inputs, sharing one
    log-softmax (same bits as the two ops apart): a compiled step computes them together."""
    checked = _check_cross_entropy(logits, labels)
    log_probs = _log_softmax(logits, axis=1)
    return (_cross_entropy_value(logits, checked, log_probs),
            _softmax_minus(log_probs, np.asarray(labels)))


# Not registered: an internal op, applied only to inputs softmax_cross_entropy has checked (so
# it checks nothing itself); its rules are checked through softmax_cross_entropy's second and
# third derivatives, which are made of them.
@primitive(sample=_cross_entropy_sample, register=False)
def softmax_minus_targets(logits, labels):
    """softmax(logits) * sum(target) - target along axis 1 (= softmax - target for ids).

    N times the cross-entropy's gradient: the cross-entropy's rule is this one op, which keeps
    the first-order pass as fast as a hand-fused rule, and has rules of its own for higher
    orders. ``labels`` are class ids (N,) or targets (N, C), as for softmax_cross_entropy.
    """
    return _softmax_minus(_log_softmax(logits, axis=1), np.asarray(labels))


def _softmax_minus_targets_vjp_logits(grad_out, out, logits, labels):
    """d(s_i T - t_i)/dz_j = T s_i ([i = j] - s_j), T = sum(t): T s (g - sum(g s))."""
    softmax = exp(log_softmax(logits, axis=1))
    if np.ndim(labels) != 1:
        grad_out = grad_out * reduce_sum(labels, axis=1, keepdims=True)
    return softmax * (grad_out - reduce_sum(grad_out * softmax, axis=1, keepdims=True))


def _softmax_minus_targets_vjp_labels(grad_out, out, logits, labels):
    """d(s_i T - t_i)/dt_j = s_i - [i = j]: sum(g s) - g; class ids have no derivative."""
    if np.ndim(labels) == 1:
        return None
    return reduce_sum(grad_out * exp(log_softmax(logits, axis=1)), axis=1, keepdims=True) \
        - grad_out


softmax_minus_targets.defvjp(_softmax_minus_targets_vjp_logits,
                             _softmax_minus_targets_vjp_labels)
# Ops that a compiled program may compute in one call with this one, on the same inputs.
softmax_cross_entropy.fusions = {softmax_minus_targets: _cross_entropy_and_rule}


def _cross_entropy_vjp_logits(grad_out, out, logits, labels):
    """d loss/d logits = (softmax(logits) * sum(target) - target) / N (= softmax - target)."""
    return softmax_minus_targets(logits, labels) * (grad_out / np.shape(logits)[0])


def _cross_entropy_vjp_labels(grad_out, out, logits, labels):
    """d loss/d target = -log softmax(logits) / N; class ids have no derivative."""
    if np.ndim(labels) == 1:
        return None
    return log_softmax(logits, axis=1) * (-grad_out / np.shape(logits)[0])


softmax_cross_entropy.defvjp(_cross_entropy_vjp_logits, _cross_entropy_vjp_labels)
