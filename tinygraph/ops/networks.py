"""Network layers as ops: 2-D convolution, pooling, dropout.

Images are NCHW (batch, channels, height, width); a convolution kernel is (O, C, kH, kW). A
stride, padding or dilation is an int or an (height, width) pair.

This module is the family's face: every name of the family is importable from here and listed in
``__all__`` (names outside it, such as conv2d_weight, im2col and the rules, are imported ``as``
themselves: a re-export). Convolution (conv2d, its adjoints conv_transpose2d and conv2d_weight,
im2col and col2im) is :mod:`~tinygraph.ops.convolution`, pooling (max_pool2d, avg_pool2d)
:mod:`~tinygraph.ops.pooling`; defined here is dropout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops._common import Pair as Pair
from tinygraph.ops.convolution import col2im as col2im
from tinygraph.ops.convolution import conv2d, conv_transpose2d
from tinygraph.ops.convolution import conv2d_weight as conv2d_weight
from tinygraph.ops.convolution import im2col as im2col
from tinygraph.ops.pooling import avg_pool2d, max_pool2d
from tinygraph.ops.pooling import avg_pool2d_vjp as avg_pool2d_vjp
from tinygraph.ops.pooling import max_pool2d_mask as max_pool2d_mask
from tinygraph.ops.pooling import max_pool2d_vjp as max_pool2d_vjp
from tinygraph.primitive import primitive

__all__ = [
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "dropout",
]


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------

# Not registered (random), and not differentiable: the mask is a constant to every derivative.
# Still an op, so that a traced step draws a new mask on every call instead of freezing one.
@primitive(params=("rate", "rng"), differentiable=False, register=False)
def dropout_mask(x, rate, rng):
    """1 where a uniform draw from ``rng`` is >= rate (probability 1 - rate), else 0."""
    return (rng.random(np.shape(x)) >= rate).astype(np.result_type(x, np.float16))


def dropout(x: Any, rate: float, rng: np.random.Generator, training: bool = True) -> Any:
    """Inverted dropout: x * mask / (1 - rate), each mask entry 0 with probability ``rate``
    (drawn from ``rng``), so the expected value is x; x itself when not training or rate is 0."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be a number in [0, 1), got {rate!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("dropout: rng must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    if not training or rate == 0:
        return x
    return x * dropout_mask(x, rate=rate, rng=rng) / (1 - rate)
