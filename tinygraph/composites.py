"""Functions built only from primitives: they need no backward rule of their own."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops.arithmetic import exp
from tinygraph.ops.losses import log_softmax
from tinygraph.ops.reductions import reduce_sum
from tinygraph.tensor import Tensor


def mean(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Average over ``axis`` (all axes when None): sum(x, axis) / count."""
    shape = np.shape(x)  # Tensors have .shape too
    axes = range(len(shape)) if axis is None else (axis,) if np.ndim(axis) == 0 else axis
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    return reduce_sum(x, axis=axis, keepdims=keepdims) / count


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x_i) / sum_j exp(x_j) along ``axis``, computed as exp(log_softmax(x)) for stability."""
    return exp(log_softmax(x, axis=axis))


# ``t.mean(axis, keepdims)`` is this function (installed here, where it is defined: the other
# Tensor methods are installed by tinygraph/ops/operators.py, which stands below this module).
Tensor.mean = mean
