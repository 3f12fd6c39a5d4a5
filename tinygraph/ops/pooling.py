"""Pooling as ops: max_pool2d and avg_pool2d over NCHW images.

Part of the network layers family, whose every name :mod:`~tinygraph.ops.networks` re-exports.
Both rules end with ``col2im`` (:mod:`~tinygraph.ops.convolution`), which adds window entries back
into an image; max_pool2d's weighs them by a mask of the window maxima, a constant to the
derivative. So every rule here is differentiable again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops._common import Pair, as_pair, check_images, image_windows, output_size
from tinygraph.ops.convolution import col2im
from tinygraph.ops.elementwise import mul
from tinygraph.ops.shape import broadcast_to, reshape
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array, distinct_array

__all__ = [
    "max_pool2d",
    "avg_pool2d",
]


def _lowest(dtype: np.dtype) -> Any:
    """The value below every other of ``dtype`` (a max-pooling pad never wins)."""
    return -np.inf if dtype.kind in "fc" else np.iinfo(dtype).min


class _Shape:
    """Stands for an array in the geometry checks, which read its shape only (rules get Tensors)."""

    def __init__(self, shape: tuple) -> None:
        self.shape, self.ndim = tuple(shape), len(shape)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

def _pool_geometry(x: Any, kernel_size: Any, stride: Any, padding: Any,
                   ) -> tuple[Pair, Pair, Pair, Pair]:
    check_images(x)
    kernel = as_pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else as_pair(stride, "stride", 1)
    padding = as_pair(padding, "padding", 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"padding {padding} must be at most half the kernel {kernel} (a "
                         "window would hold padding only)")
    size = output_size(x.shape[2:], kernel, stride, padding, (1, 1), f"input {x.shape}")
    return kernel, stride, padding, size


def _pool_explain(x, kernel_size, stride=None, padding=0):
    try:
        _pool_geometry(np.asarray(x), kernel_size, stride, padding)
    except ValueError as exc:
        return str(exc)
    return None


def _reduce_windows(windows: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """ufunc.reduce over each window (axes 2, 3 of the view), one kernel position at a time:
    NumPy's reduction over two short strided axes is some 30 times slower."""
    out = windows[:, :, 0, 0].copy()
    for i in range(windows.shape[2]):
        for j in range(windows.shape[3]):
            if i or j:
                ufunc(out, windows[:, :, i, j], out=out)
    return out


def _pool_sample(draw: Draw, distinct: bool) -> tuple[tuple, dict]:
    kernel = draw.choice([1, 2, 3, (2, 3)])
    pair = as_pair(kernel, "kernel_size", 1)
    stride = draw.choice([None, 1, 2, (2, 1)])
    padding = draw.choice([0, (pair[0] // 2, pair[1] // 2)])
    steps = pair if stride is None else as_pair(stride, "stride", 1)
    size = tuple(max(1, k - 2 * p) + draw.integers(0, 2) * s
                 for k, s, p in zip(pair, steps, as_pair(padding, "padding", 0)))
    shape = (draw.integers(1, 2), draw.integers(1, 2), *size)
    # distinct values: every window has one maximum, far from a tie (max_pool2d's kink)
    x = distinct_array(draw, shape) if distinct else array(draw, shape)
    return (x,), {"kernel_size": kernel, "stride": stride, "padding": padding}


@primitive(sample=lambda draw: _pool_sample(draw, distinct=True), params=("kernel_size",),
           explain=_pool_explain)
def max_pool2d(x, kernel_size, stride=None, padding=0):
    """y[n, c, u, v] = max_{i,j} x[n, c, s*u + i - p, s*v + j - p] over a kernel_size window
    (stride defaults to the kernel; the padding is -inf, so it never wins)."""
    x = np.asarray(x)
    kernel, stride, padding, _ = _pool_geometry(x, kernel_size, stride, padding)
    return _reduce_windows(image_windows(x, kernel, stride, padding, (1, 1), fill=_lowest(x.dtype)),
                           np.maximum)


# Not registered: checked through max_pool2d, whose rule it is part of.
@primitive(params=("kernel_size", "stride", "padding"), differentiable=False, register=False)
def max_pool2d_mask(x, out, kernel_size, stride, padding):
    """(N, C, kH, kW, Ho, Wo): 1/t where a window entry equals the window's maximum ``out``
    (t entries tie for it), else 0. Derivative 0: the maxima move only at ties."""
    x = np.asarray(x)
    kernel, stride, padding, _ = _pool_geometry(x, kernel_size, stride, padding)
    windows = image_windows(x, kernel, stride, padding, (1, 1), fill=_lowest(x.dtype))
    mask = np.empty(windows.shape, dtype=np.result_type(out, np.float16))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            mask[:, :, i, j] = windows[:, :, i, j] == out
    ties = _reduce_windows(mask, np.add)
    mask /= ties.reshape((*ties.shape[:2], 1, 1, *ties.shape[2:]))
    return mask


@max_pool2d.defvjp
def max_pool2d_vjp(grad_out, out, x, kernel_size, stride=None, padding=0):
    """d max/dx = 1 at each window's maximum, 0 elsewhere: grad_out goes to the maximum (a tie
    shares it equally, as tg.max), and a pixel in several windows gets the sum."""
    kernel, stride, padding, (oh, ow) = _pool_geometry(_Shape(np.shape(x)), kernel_size,
                                                       stride, padding)
    n, c = np.shape(x)[:2]
    mask = max_pool2d_mask(x, out, kernel_size=kernel, stride=stride, padding=padding)
    return col2im(mul(mask, reshape(grad_out, (n, c, 1, 1, oh, ow))),
                  size=tuple(np.shape(x)[2:]), stride=stride, padding=padding)


def _avg_pool_sample(draw: Draw) -> tuple[tuple, dict]:
    return _pool_sample(draw, distinct=False)


@primitive(sample=_avg_pool_sample, params=("kernel_size",), explain=_pool_explain)
def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """y[n, c, u, v] = mean_{i,j} x[n, c, s*u + i - p, s*v + j - p] over a kernel_size window
    (stride defaults to the kernel; zero padding counts in the mean, as PyTorch's default)."""
    x = np.asarray(x)
    kernel, stride, padding, _ = _pool_geometry(x, kernel_size, stride, padding)
    total = _reduce_windows(image_windows(x, kernel, stride, padding, (1, 1)), np.add)
    return np.divide(total, kernel[0] * kernel[1], out=total if total.dtype.kind == "f"
                     else None)


@avg_pool2d.defvjp
def avg_pool2d_vjp(grad_out, out, x, kernel_size, stride=None, padding=0):
    """d mean/dx = 1 / (kH kW) for each window a pixel is in."""
    kernel, stride, padding, (oh, ow) = _pool_geometry(_Shape(np.shape(x)), kernel_size,
                                                       stride, padding)
    n, c = np.shape(x)[:2]
    share = reshape(grad_out / (kernel[0] * kernel[1]), (n, c, 1, 1, oh, ow))
    return col2im(broadcast_to(share, (n, c, *kernel, oh, ow)), size=tuple(np.shape(x)[2:]),
                  stride=stride, padding=padding)
