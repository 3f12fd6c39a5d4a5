"""A LeNet-style convolutional network as a tinygraph expression.

    image 1x28x28 -> conv 5x5 -> act -> max pool 2 -> conv 5x5 -> act -> max pool 2
                  -> dense -> act (one or more) -> dense -> 10 scores

Convolutions are unpadded ("valid"), as in LeNet-5 on 28x28 MNIST: 28 -> 24 -> 12 -> 8 -> 4, so
the first dense layer reads ``channels2 * 4 * 4`` features. Parameters are a plain dict of NumPy
arrays, like the MLP's (``models.network``), named after their layer::

    conv1_w (C1, 1, 5, 5)   conv1_b (C1,)     conv2_w (C2, C1, 5, 5)   conv2_b (C2,)
    fc1_w (C2*16, H)        fc1_b (H,)        ...                      fcK_w (H', 10)  fcK_b (10,)

Inputs are the same flat rows of 784 pixels the MLP reads; the network views them as NCHW images.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

import tinygraph as tg
from models.init import weight_std

__all__ = ["BLAS_THREADS", "CONVS", "IMAGE", "KERNEL", "POOL", "describe", "init_params",
           "layout", "logits"]

IMAGE = 28   # input side, one channel
KERNEL = 5   # convolution kernels are KERNEL x KERNEL
POOL = 2     # max pooling windows (and strides) are POOL x POOL
CONVS = 2    # conv1, conv2
BLAS_THREADS = 1  # its many small products run best on one thread (models.cli.blas_threads)

_DENSE = re.compile(r"fc(\d+)_[wb]")


def _after_convs(side: int = IMAGE) -> int:
    """Side of the feature maps after every conv (valid) + pool stage: 28 -> 24 -> 12 -> 8 -> 4."""
    for _ in range(CONVS):
        side = (side - KERNEL + 1) // POOL
    return side


def layout(params: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(channels of conv1, conv2; widths of the dense layers fc1 .. fcK) read off the shapes.

    Raises ValueError, one line, when the arrays are not this network's (a missing or extra
    name, or shapes that do not chain).
    """
    dense = sorted({int(m.group(1)) for key in params if (m := _DENSE.fullmatch(key))})
    expected = {f"conv{i}_{p}" for i in range(1, CONVS + 1) for p in "wb"}
    expected |= {f"fc{i}_{p}" for i in range(1, len(dense) + 1) for p in "wb"}
    if set(params) != expected or not dense:
        missing, extra = sorted(expected - set(params)), sorted(set(params) - expected)
        raise ValueError(f"not the CNN's parameters (missing {missing or 'nothing'}, "
                         f"unexpected {extra or 'nothing'})")
    shape = {key: np.shape(value) for key, value in params.items()}
    channels, inputs = [], 1
    for i in range(1, CONVS + 1):
        w, b = shape[f"conv{i}_w"], shape[f"conv{i}_b"]
        if len(w) != 4 or w[1:] != (inputs, KERNEL, KERNEL) or b != w[:1]:
            raise ValueError(f"conv{i}_w {w} / conv{i}_b {b}: expected (O, {inputs}, {KERNEL}, "
                             f"{KERNEL}) and (O,)")
        channels.append(w[0])
        inputs = w[0]
    widths, inputs = [], inputs * _after_convs() ** 2
    for i in range(1, len(dense) + 1):
        w, b = shape[f"fc{i}_w"], shape[f"fc{i}_b"]
        if len(w) != 2 or w[0] != inputs or b != w[1:]:
            raise ValueError(f"fc{i}_w {w} / fc{i}_b {b}: expected ({inputs}, H) and (H,)")
        widths.append(w[1])
        inputs = w[1]
    return channels, widths


def describe(params: dict[str, Any]) -> str:
    """The layers in one line: ``1x28x28 > conv5 16x24x24 > pool 16x12x12 > ... > 10``."""
    channels, widths = layout(params)
    parts, side = [f"1x{IMAGE}x{IMAGE}"], IMAGE
    for c in channels:
        side -= KERNEL - 1
        parts.append(f"conv{KERNEL} {c}x{side}x{side}")
        side //= POOL
        parts.append(f"pool {c}x{side}x{side}")
    parts.extend(str(width) for width in widths)
    return " > ".join(parts)


def init_params(channels: Sequence[int] = (32, 64), hidden: Sequence[int] = (256,),
                classes: int = 10, method: str = "he", scale: float = 1.0, seed: int = 0,
                dtype: npt.DTypeLike = np.float32) -> dict[str, np.ndarray]:
    """Weights drawn layer by layer (conv1 first) as ``models.init`` draws the MLP's: zero-mean
    normal (or Glorot-uniform) with the std of :func:`models.init.weight_std` for the layer's
    fan-in and fan-out (a convolution's are ``C * 5 * 5`` and ``O * 5 * 5``); biases zero."""
    if len(channels) != CONVS or min(channels) <= 0 or (hidden and min(hidden) <= 0):
        raise ValueError(f"need {CONVS} positive channel counts and positive dense widths, "
                         f"got {list(channels)} and {list(hidden)}")
    rng = np.random.default_rng(seed)
    shapes: list[tuple[str, tuple[int, ...], int, int]] = []
    inputs = 1
    for i, c in enumerate(channels, start=1):
        shapes.append((f"conv{i}", (c, inputs, KERNEL, KERNEL), inputs * KERNEL ** 2,
                       c * KERNEL ** 2))
        inputs = c
    inputs *= _after_convs() ** 2
    for i, width in enumerate([*hidden, classes], start=1):
        shapes.append((f"fc{i}", (inputs, width), inputs, width))
        inputs = width
    params: dict[str, np.ndarray] = {}
    for name, shape, fan_in, fan_out in shapes:
        std = weight_std(method, fan_in, fan_out, scale)
        if method == "xavier_uniform":
            w = rng.uniform(-np.sqrt(3.0) * std, np.sqrt(3.0) * std, size=shape)
        else:
            w = rng.standard_normal(shape) * std
        params[f"{name}_w"] = w.astype(dtype)
        params[f"{name}_b"] = np.zeros(shape[0] if name.startswith("conv") else shape[1],
                                       dtype=dtype)
    return params


def logits(params: dict[str, Any], x: Any, act: Callable[[Any], Any] = tg.relu) -> Any:
    """The scores for flat rows ``x`` (N, 784): one scope per layer, so drawings show them."""
    channels, widths = layout(params)
    with tg.scope("input"):
        h = tg.reshape(x, (-1, 1, IMAGE, IMAGE))  # NCHW
    for i in range(1, len(channels) + 1):
        with tg.scope(f"conv{i}"):
            h = tg.conv2d(h, params[f"conv{i}_w"])
            h = act(h + tg.reshape(params[f"conv{i}_b"], (1, -1, 1, 1)))
            h = tg.max_pool2d(h, POOL)
    count = len(widths)
    for i in range(1, count + 1):
        last = i == count
        with tg.scope("output" if last else f"fc{i}"):
            if i == 1:
                h = tg.reshape(h, (-1, np.shape(params["fc1_w"])[0]))  # flatten C x 4 x 4
            h = h @ params[f"fc{i}_w"] + params[f"fc{i}_b"]
            if not last:
                h = act(h)
    return h
