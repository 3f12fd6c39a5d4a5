"""ONNX rules of the network layers (:mod:`tinygraph.ops.convolution`, :mod:`~tinygraph.ops.
pooling`): conv2d and its two adjoints as Conv and ConvTranspose, im2col and col2im, max and
average pooling, and the mask of max pooling's backward rule.

Images are NCHW; a stride, padding or dilation is an int or an (height, width) pair, as the ops
take it (the ops have checked them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.onnx_export.graph import OnnxGraph, Rule
from tinygraph.ops._common import Pair, as_pair
from tinygraph.ops.convolution import conv_geometry


def _conv_attributes(stride: Any, padding: Any, dilation: Any) -> dict[str, list[int]]:
    """ONNX's ``strides``, ``pads`` (begin and end of each axis) and ``dilations`` of a Conv,
    ConvTranspose or Col2Im with NumPy-style (symmetric) padding."""
    (sh, sw), (ph, pw), (dh, dw) = conv_geometry(stride, padding, dilation)
    return {"strides": [sh, sw], "pads": [ph, pw, ph, pw], "dilations": [dh, dw]}


def _pool_geometry(kernel_size: Any, stride: Any) -> tuple[Pair, Pair]:
    """A pooling's (kernel, stride) as pairs; the stride is the kernel's when None."""
    kernel = as_pair(kernel_size, "kernel_size", 1)
    return kernel, kernel if stride is None else as_pair(stride, "stride", 1)


def _conv2d(g: OnnxGraph, x: str, w: str, stride: Any = 1, padding: Any = 0,
            dilation: Any = 1) -> str:
    """The convolution of images x (N, C, H, W) with kernels w (O, C, kH, kW): ONNX's Conv."""
    return g.op("Conv", *g.operands(x, w), kernel_shape=list(g.shape(w)[2:]),
                **_conv_attributes(stride, padding, dilation))


def _conv_transpose2d(g: OnnxGraph, x: str, w: str, stride: Any = 1, padding: Any = 0,
                      output_padding: Any = 0, dilation: Any = 1) -> str:
    """conv2d's adjoint in its input: ONNX's ConvTranspose (``output_padding`` adds rows and
    columns below and right)."""
    return g.op("ConvTranspose", *g.operands(x, w), kernel_shape=list(g.shape(w)[2:]),
                output_padding=list(as_pair(output_padding, "output_padding", 0)),
                **_conv_attributes(stride, padding, dilation))


def _conv2d_weight(g: OnnxGraph, x: str, grad: str, kernel_size: Any, stride: Any = 1,
                   padding: Any = 0, dilation: Any = 1) -> str:
    """conv2d's adjoint in its weight as a Conv with batch and channels swapped: the images'
    channels are the batch, the cotangent the kernel; stride and dilation trade places."""
    (sh, sw), (ph, pw), (dh, dw) = conv_geometry(stride, padding, dilation)
    kh, kw = as_pair(kernel_size, "kernel_size", 1)
    x, grad = g.operands(x, grad)
    images = g.op("Transpose", x, perm=[1, 0, 2, 3])
    kernel = g.op("Transpose", grad, perm=[1, 0, 2, 3])
    full = g.op("Conv", images, kernel, strides=[dh, dw], pads=[ph, pw, ph, pw],
                dilations=[sh, sw])
    cropped = g.op("Slice", full, g.ints([0, 0]), g.ints([kh, kw]), g.ints([2, 3]))
    return g.op("Transpose", cropped, perm=[1, 0, 2, 3])


def _windows(g: OnnxGraph, x: str, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
             size: Pair, fill: float = 0.0) -> str:
    """Every window of the images x padded with ``fill``: (N, C, kH, kW, Ho, Wo), each kernel
    position's strided slice of the padded image, stacked."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, size
    if ph or pw:
        x = g.op("Pad", x, g.ints([0, 0, ph, pw, 0, 0, ph, pw]), g.scalar(fill, g.dtype(x)))
    pieces = []
    for i in range(kh):
        for j in range(kw):
            piece = g.op("Slice", x, g.ints([dh * i, dw * j]),
                         g.ints([dh * i + sh * (oh - 1) + 1, dw * j + sw * (ow - 1) + 1]),
                         g.ints([2, 3]), g.ints([sh, sw]))
            pieces.append(g.op("Unsqueeze", piece, g.ints([2])))
    stacked = pieces[0] if len(pieces) == 1 else g.op("Concat", *pieces, axis=2)
    return g.op("Reshape", stacked, g.ints([0, 0, kh, kw, oh, ow]))


def _im2col(g: OnnxGraph, x: str, kernel_size: Any, stride: Any = 1, padding: Any = 0,
            dilation: Any = 1) -> str:
    """The windows of the images x: (N, C, kH, kW, Ho, Wo)."""
    x = g.cast(x, g.out_dtype)
    return _windows(g, x, as_pair(kernel_size, "kernel_size", 1),
                    *conv_geometry(stride, padding, dilation), size=g.out_shape[4:])


def _max_pool2d_mask(g: OnnxGraph, x: str, out: str, kernel_size: Any, stride: Any,
                     padding: Any) -> str:
    """1/t where a window entry equals its window's maximum (t entries tie), else 0:
    (N, C, kH, kW, Ho, Wo), the padding -inf (max_pool2d's backward rule)."""
    kernel, steps = _pool_geometry(kernel_size, stride)
    x = g.cast(x, g.out_dtype)
    windows = _windows(g, x, kernel, steps, as_pair(padding, "padding", 0), (1, 1),
                       size=g.out_shape[4:], fill=-np.inf)
    maxima = g.op("Unsqueeze", g.cast(out, g.out_dtype), g.ints([2, 3]))
    mask = g.op("Cast", g.op("Equal", windows, maxima), to=g.onnx_dtype(g.out_dtype))
    return g.op("Div", mask, g.op("ReduceSum", mask, g.ints([2, 3]), keepdims=1))


def _col2im(g: OnnxGraph, cols: str, size: Any, stride: Any = 1, padding: Any = 0,
            dilation: Any = 1) -> str:
    """im2col's adjoint: window entries (N, C, kH, kW, Ho, Wo) added back into images of
    ``size``: ONNX's Col2Im of the windows as (N, C*kH*kW, Ho*Wo) blocks."""
    kh, kw, oh, ow = g.shape(cols)[2:]
    blocks = g.op("Reshape", g.cast(cols, g.out_dtype), g.ints([0, -1, oh * ow]))
    return g.op("Col2Im", blocks, g.ints(list(g.out_shape[2:])), g.ints([kh, kw]),
                **_conv_attributes(stride, padding, dilation))


def _pool(op_type: str) -> Rule:
    """max_pool2d or avg_pool2d: ONNX's MaxPool or AveragePool (the average counts the padding's
    zeros, as tinygraph's does)."""
    def rule(g: OnnxGraph, x: str, kernel_size: Any, stride: Any = None,
             padding: Any = 0) -> str:
        kernel, steps = _pool_geometry(kernel_size, stride)
        ph, pw = as_pair(padding, "padding", 0)
        extra = {"count_include_pad": 1} if op_type == "AveragePool" else {}
        return g.op(op_type, g.cast(x, g.out_dtype), kernel_shape=list(kernel),
                    strides=list(steps), pads=[ph, pw, ph, pw], **extra)

    return rule


RULES: dict[str, Rule] = {
    "conv2d": _conv2d, "conv_transpose2d": _conv_transpose2d, "conv2d_weight": _conv2d_weight,
    "im2col": _im2col, "col2im": _col2im, "max_pool2d": _pool("MaxPool"),
    "avg_pool2d": _pool("AveragePool"),
    # max_pool2d's backward rule's own op (so a traced gradient exports too)
    "max_pool2d_mask": _max_pool2d_mask,
}
