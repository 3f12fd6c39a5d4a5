"""Helpers shared by the op families: operands, axes and one-line errors; kept dimensions; ufunc
``out=`` variants; step-function rules and samples; the window geometry of images.

Nothing here is an op, and nothing here imports an op module: every family may import this one.
(Helpers built on ops, such as the axis permutations of rules, are in
:mod:`~tinygraph.ops.reshaping`, next to ``transpose``.)
"""

from __future__ import annotations

import operator
import weakref
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from tinygraph.primitive import describe, user_site
from tinygraph.sampling import Draw, array
from tinygraph.state import current
from tinygraph.tensor import Tensor

Pair = tuple[int, int]


# ---------------------------------------------------------------------------------------------
# Operands, axes, errors that name the op and the caller's line
# ---------------------------------------------------------------------------------------------

def as_operand(x: Any) -> Any:
    """A Tensor as it is; anything else (numbers, lists) as a NumPy array."""
    return x if isinstance(x, Tensor) else np.asarray(x)


def dtype_of(x: Any) -> np.dtype:
    return x.dtype if isinstance(x, (Tensor, np.ndarray, np.generic)) else np.asarray(x).dtype


def op_error(kind: type[Exception], op: str, message: str) -> Exception:
    """A one-line error of ``kind`` naming the op and the line the user wrote."""
    return kind(f"{op}: {message} (at {user_site()})")


def checked_axis(axis: Any, ndim: int, op: str, shape: tuple[int, ...]) -> int:
    """``axis`` in [0, ndim), from NumPy's [-ndim, ndim)."""
    try:
        index = operator.index(axis)
    except TypeError:
        raise op_error(TypeError, op, f"axis must be an integer, not {axis!r}") from None
    if not -ndim <= index < ndim:
        raise op_error(np.exceptions.AxisError, op,
                       f"axis {axis} is out of bounds for {ndim} dims (input shape {shape})")
    return index % ndim


def checked_axes(axis: Any, ndim: int, op: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """One axis or a tuple of distinct axes, each in [0, ndim)."""
    axes = tuple(checked_axis(a, ndim, op, shape) for a in (
        axis if isinstance(axis, (tuple, list)) else (axis,)))
    if len(set(axes)) != len(axes):
        raise op_error(ValueError, op, f"repeated axis in {axis}")
    return axes


def along(axis: int, index: Any) -> tuple:
    """An index that applies ``index`` to axis ``axis`` and keeps every axis before it whole."""
    return (slice(None),) * axis + (index,)


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(a) % ndim if ndim else 0 for a in axes)


def with_kept_dims(value: Any, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Reinsert the reduced axes as size-1 dims, so a reduction's result broadcasts to ``shape``."""
    if keepdims or not shape:
        return value
    axes = normalize_axes(axis, len(shape))
    return value.reshape(tuple(1 if i in axes else side for i, side in enumerate(shape)))


# ---------------------------------------------------------------------------------------------
# Elementwise ops: ufunc ``out=`` variants, shape errors, step functions
# ---------------------------------------------------------------------------------------------

def ufunc_into(ufunc: np.ufunc) -> Any:
    """``forward_into`` for an op that is one NumPy ufunc: the ufunc with ``out=``.

    It carries the ufunc (``.ufunc``), so that compiled programs call it directly and may let it
    write over an input that is not needed afterwards (elementwise, that is safe).
    """
    def into(out, *inputs):
        return ufunc(*inputs, out=out)

    into.ufunc = ufunc
    return into


def broadcast_explain(*inputs: Any) -> str:
    shapes = " and ".join(describe(np.asarray(v)) for v in inputs)
    return f"shapes {shapes} do not broadcast"


def zero_vjp(grad_out, out, *inputs, **params):
    """A step function: derivative 0 almost everywhere, so a zero cotangent for every input
    (as HIPS autograd and JAX give; a comparison's boolean mask has no derivative at all)."""
    zero = 0 * grad_out
    return (zero,) * len(inputs)


def nonfinite_sample(draw: Draw) -> tuple[tuple, dict]:
    """Values in [-2, 2] with some NaN, inf and -inf among them."""
    shape = draw.shape()
    values, pick = array(draw, shape), draw.rng().random(shape)
    special = np.where(pick < 0.1, np.nan, np.where(pick < 0.2, np.inf, -np.inf))
    return (np.where(pick < 0.3, special, values),), {}


# ---------------------------------------------------------------------------------------------
# Images (NCHW): the geometry of windows, shared by convolution and pooling
# ---------------------------------------------------------------------------------------------

def as_pair(value: Any, name: str, low: int) -> Pair:
    """An int or a pair of ints, as a pair, each at least ``low``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return pair


def output_size(size: tuple, kernel: tuple, stride: Pair, padding: Pair, dilation: Pair,
                where: str) -> Pair:
    """(Ho, Wo) of windows of ``kernel`` over ``size`` padded by ``padding`` on each side."""
    sides = []
    for side, k, s, p, d in zip(size, kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        if k < 1 or side + 2 * p < span:
            raise ValueError(f"{where}: the kernel {tuple(kernel)} with dilation {dilation} "
                             f"does not fit in the {tuple(size)} image padded by {padding}")
        sides.append((side + 2 * p - span) // s + 1)
    return sides[0], sides[1]


def image_windows(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
                  fill: Any = 0) -> np.ndarray:
    """The windows of x, padded by ``fill``, as a read-only view (N, C, kH, kW, Ho, Wo):
    windows[n, c, i, j, u, v] = x_padded[n, c, s*u + d*i, s*v + d*j]."""
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    if ph or pw:
        n, c, h, w = x.shape
        padded = np.full((n, c, h + 2 * ph, w + 2 * pw), fill, dtype=x.dtype)
        padded[:, :, ph:ph + h, pw:pw + w] = x
        x = padded
    n, c, h, w = x.shape
    (kh, kw) = kernel
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    step_n, step_c, step_y, step_x = x.strides
    return as_strided(x, (n, c, kh, kw, oh, ow),
                      (step_n, step_c, step_y * dh, step_x * dw, step_y * sh, step_x * sw),
                      writeable=False)


def check_images(x: np.ndarray, name: str = "input") -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {x.shape}")


# ---------------------------------------------------------------------------------------------
# Residuals: what a forward computed that its rule needs again (eager passes only)
# ---------------------------------------------------------------------------------------------

class Residuals:
    """Intermediates a forward keeps for its backward rule, found by the result they belong to.

    ``keep(out, value)`` files ``value`` under the array ``out`` (the forward's result, which the
    node keeps as its data and hands back to the rule as ``out``), only while grad mode is on
    (under ``no_grad`` nothing will ask); ``take(out)`` returns it once and forgets it, or
    None. An entry lives until its rule takes it or ``out`` is freed (a weak reference removes
    it), and is found only for that very array, so a rule whose ``out`` is a Tensor (a recorded
    pass, which must recompute with ops to be differentiable again), a second pass over the same
    graph, or a new array gets None and recomputes.
    """

    def __init__(self) -> None:
        self._kept: dict[int, tuple[Any, Any]] = {}

    def keep(self, out: np.ndarray, value: Any) -> np.ndarray:
        if current().grad_enabled:
            key = id(out)
            kept = self._kept
            kept[key] = (weakref.ref(out, lambda _, key=key: kept.pop(key, None)), value)
        return out

    def take(self, out: Any) -> Any:
        entry = self._kept.pop(id(out), None)
        return entry[1] if entry is not None and entry[0]() is out else None
