"""Parameter initialisation for fully-connected networks.

Layer ``i`` (1-based) maps ``fan_in = sizes[i-1]`` to ``fan_out = sizes[i]`` features with a
weight matrix ``W{i}`` of shape ``(fan_in, fan_out)`` (so ``h = x @ W + b`` for row-vector
batches) and a bias ``b{i}`` of shape ``(fan_out,)`` initialised to zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["INIT_METHODS", "init_params", "weight_std"]

INIT_METHODS = ("normal", "xavier", "xavier_uniform", "he", "lecun")


def weight_std(method: str, fan_in: int, fan_out: int, scale: float = 1.0) -> float:
    """Standard deviation of the weights of one layer for ``method``:

    * ``"normal"``          ``scale``                               (the paper: N(0, scale^2))
    * ``"xavier"``          ``scale * sqrt(2 / (fan_in + fan_out))``  (Glorot *normal*)
    * ``"xavier_uniform"``  same std, drawn from U(-a, a) with ``a = sqrt(3) * std``
                            ``= scale * sqrt(6 / (fan_in + fan_out))`` (Glorot uniform)
    * ``"he"``              ``scale * sqrt(2 / fan_in)``              (He/Kaiming normal)
    * ``"lecun"``           ``scale * sqrt(1 / fan_in)``              (LeCun normal)

    (Glorot & Bengio suggest ``scale = 4`` for logistic-sigmoid layers.)
    """
    if method == "normal":
        return float(scale)
    if method in ("xavier", "xavier_uniform"):
        return float(scale) * float(np.sqrt(2.0 / (fan_in + fan_out)))
    if method == "he":
        return float(scale) * float(np.sqrt(2.0 / fan_in))
    if method == "lecun":
        return float(scale) * float(np.sqrt(1.0 / fan_in))
    raise ValueError(f"unknown init method {method!r}; choose from {', '.join(INIT_METHODS)}")


def init_params(
    sizes: Sequence[int] = (784, 64, 10),
    method: str = "normal",
    scale: float = 1.0,
    seed: int = 0,
    dtype: npt.DTypeLike = np.float64,
) -> dict[str, np.ndarray]:
    """Initialise an MLP with layer widths ``sizes``: ``{"W1", "b1", "W2", "b2", ...}``.

    Weights are drawn layer by layer (W1 first) from ``np.random.default_rng(seed)``, with the
    distribution given by :func:`weight_std` (zero-mean normal, or uniform for
    ``"xavier_uniform"``); biases are zero.  Samples are drawn in float64 and then cast to
    ``dtype``, so the same seed gives the same (rounded) values in every dtype.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise ValueError("sizes needs at least two positive layer widths")
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        std = weight_std(method, fan_in, fan_out, scale)
        if method == "xavier_uniform":
            limit = np.sqrt(3.0) * std
            w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        else:
            w = rng.standard_normal((fan_in, fan_out)) * std
        params[f"W{i}"] = w.astype(dtype)
        params[f"b{i}"] = np.zeros(fan_out, dtype=dtype)
    return params
