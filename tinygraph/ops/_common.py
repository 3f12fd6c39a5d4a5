"""Helpers shared by the op families: axes, kept dimensions, ufunc ``out=`` variants."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.primitive import describe


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
