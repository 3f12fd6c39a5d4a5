"""2-D convolution as ops: conv2d, its adjoints, and the windows of an image (im2col, col2im).

Part of the network layers family, whose every name :mod:`~tinygraph.ops.networks` re-exports.
Images are NCHW (batch, channels, height, width); a convolution kernel is (O, C, kH, kW). A
stride, padding or dilation is an int or an (height, width) pair.

A convolution is im2col and one matrix product: the windows of the (padded) input are a strided
view of it (``as_strided``, no copy), and reshaping them to (N, C*kH*kW, Ho*Wo) for the product is
the only copy. Three ops close convolution under differentiation, each rule made of the others:

- ``conv2d(x, w)``: its rules are ``conv_transpose2d(grad, w)`` (in x) and
  ``conv2d_weight(x, grad)`` (in w);
- ``conv_transpose2d(x, w)``, conv2d's adjoint in its input: rules ``conv2d(grad, w)`` and
  ``conv2d_weight(grad, x)``;
- ``conv2d_weight(x, g)``, conv2d's adjoint in its weight: rules ``conv_transpose2d(g, grad)``
  and ``conv2d(x, grad)``.

``col2im`` adds window entries back into an image (the pooling rules end with it); its adjoint,
``im2col``, takes the windows. The window geometry (``as_pair``, ``output_size``,
``image_windows``) is in :mod:`~tinygraph.ops._common`, shared with the pooling ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops._common import Pair, as_pair, check_images, image_windows, output_size
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array

__all__ = [
    "conv2d",
    "conv_transpose2d",
]


def conv_geometry(stride: Any, padding: Any, dilation: Any) -> tuple[Pair, Pair, Pair]:
    """(stride, padding, dilation) as (height, width) pairs (the ONNX exporter reads them too)."""
    return (as_pair(stride, "stride", 1), as_pair(padding, "padding", 0),
            as_pair(dilation, "dilation", 1))


def _leftover(size: tuple, kernel: tuple, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """Rows and columns of the padded image no window reaches (below/right of the last one): the
    ``output_padding`` that makes a transposed convolution give back ``size``."""
    rest = [(side + 2 * p - d * (k - 1) - 1) % s
            for side, k, s, p, d in zip(size, kernel, stride, padding, dilation)]
    return rest[0], rest[1]


def _add_windows(out: np.ndarray, cols: np.ndarray, stride: Pair, dilation: Pair,
                 first: int) -> None:
    """out[..., s*u + d*i, s*v + d*j, ...] += cols[..., i, j, u, v, ...] into zeros ``out``: the
    adjoint of taking windows. Spatial axes of ``out`` are ``first`` and ``first + 1``; ``cols``
    holds (kH, kW, Ho, Wo) at ``first`` .. ``first + 3``."""
    (sh, sw), (dh, dw) = stride, dilation
    kh, kw, oh, ow = cols.shape[first:first + 4]
    # windows that never overlap (pooling's stride = kernel) write each pixel once: assign
    overlap = sh < dh * (kh - 1) + 1 or sw < dw * (kw - 1) + 1
    lead = (slice(None),) * first
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            if overlap:
                out[(*lead, rows, columns)] += cols[(*lead, i, j)]
            else:
                out[(*lead, rows, columns)] = cols[(*lead, i, j)]


def _check_conv(x: np.ndarray, w: np.ndarray, channels: int, name: str = "input") -> None:
    """x is (N, C, H, W) and w a 4-D kernel whose axis ``channels`` matches C."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{name} {x.shape} and weight {w.shape} must be 4-D: "
                         "(N, C, H, W) and (O, C, kH, kW)")
    if x.shape[1] != w.shape[channels]:
        raise ValueError(f"{name} {x.shape} has {x.shape[1]} channels, weight {w.shape} "
                         f"expects {w.shape[channels]}")


# ---------------------------------------------------------------------------------------------
# Convolution: conv2d, its adjoint in x (conv_transpose2d) and in w (conv2d_weight)
# ---------------------------------------------------------------------------------------------

def _draw_geometry(draw: Draw) -> tuple[Any, Any, Any]:
    """stride, padding, dilation: ints or pairs, small."""
    return (draw.choice([1, 2, (1, 2)]), draw.choice([0, 1, (1, 0)]),
            draw.choice([1, 2, (2, 1)]))


def _draw_image_for(draw: Draw, kernel: Pair, stride: Pair, padding: Pair,
                    dilation: Pair) -> Pair:
    """Height and width that the kernel fits in, with up to two more windows."""
    height, width = (max(1, d * (k - 1) + 1 - 2 * p) + draw.integers(0, 2) * s
                     for k, s, p, d in zip(kernel, stride, padding, dilation))
    return height, width


def _conv_sample(draw: Draw) -> tuple[tuple, dict]:
    stride, padding, dilation = _draw_geometry(draw)
    kernel = (draw.integers(1, 3), draw.integers(1, 3))
    size = _draw_image_for(draw, kernel, *conv_geometry(stride, padding, dilation))
    n, c, o = draw.integers(1, 2), draw.integers(1, 2), draw.integers(1, 2)
    x, w = array(draw, (n, c, *size)), array(draw, (o, c, *kernel))
    return (x, w), {"stride": stride, "padding": padding, "dilation": dilation}


def _conv2d_explain(x, w, stride=1, padding=0, dilation=1):
    x, w = np.asarray(x), np.asarray(w)
    _check_conv(x, w, 1)
    output_size(x.shape[2:], w.shape[2:], *conv_geometry(stride, padding, dilation),
                f"input {x.shape} and weight {w.shape}")


def _explained(check: Any) -> Any:
    """An ``explain`` hook from a function that raises ValueError on bad input: its message."""
    def explain(*inputs: Any, **params: Any) -> str | None:
        try:
            check(*inputs, **params)
        except ValueError as exc:
            return str(exc)
        return None
    return explain


@primitive(sample=_conv_sample, explain=_explained(_conv2d_explain))
def conv2d(x, w, stride=1, padding=0, dilation=1):
    """y[n, o, u, v] = sum_{c,i,j} w[o, c, i, j] x[n, c, s*u + d*i - p, s*v + d*j - p]
    (cross-correlation, as PyTorch's conv2d; add a bias as ``+ b.reshape(1, -1, 1, 1)``)."""
    x, w = np.asarray(x), np.asarray(w)
    _check_conv(x, w, 1)
    stride, padding, dilation = conv_geometry(stride, padding, dilation)
    kernel = w.shape[2:]
    oh, ow = output_size(x.shape[2:], kernel, stride, padding, dilation,
                         f"input {x.shape} and weight {w.shape}")
    n, o, size = x.shape[0], w.shape[0], w.shape[1] * w.shape[2] * w.shape[3]
    cols = image_windows(x, kernel, stride, padding, dilation)  # a view; reshape copies (im2col)
    # one batched product (N GEMMs of (O, C*kH*kW) @ (C*kH*kW, Ho*Wo)) lands in NCHW directly
    return np.matmul(w.reshape(o, size), cols.reshape(n, size, oh * ow)).reshape(n, o, oh, ow)


def _conv2d_vjp_x(grad_out, out, x, w, stride=1, padding=0, dilation=1):
    """d conv2d/dx: grad_out spread back over each window, weighted by w (conv_transpose2d)."""
    geometry = conv_geometry(stride, padding, dilation)
    extra = _leftover(np.shape(x)[2:], np.shape(w)[2:], *geometry)
    return conv_transpose2d(grad_out, w, stride=stride, padding=padding, output_padding=extra,
                            dilation=dilation)


def _conv2d_vjp_w(grad_out, out, x, w, stride=1, padding=0, dilation=1):
    """d conv2d/dw[o, c, i, j] = sum over n, y, x of grad_out[n, o] times the window entry."""
    return conv2d_weight(x, grad_out, kernel_size=tuple(np.shape(w)[2:]), stride=stride,
                         padding=padding, dilation=dilation)


conv2d.defvjp(_conv2d_vjp_x, _conv2d_vjp_w)


def _transpose_geometry(x: np.ndarray, w: np.ndarray, stride: Any, padding: Any,
                        output_padding: Any, dilation: Any) -> tuple:
    _check_conv(x, w, 0)
    stride, padding, dilation = conv_geometry(stride, padding, dilation)
    extra = as_pair(output_padding, "output_padding", 0)
    if extra[0] >= stride[0] or extra[1] >= stride[1]:
        raise ValueError(f"output_padding {output_padding!r} must be smaller than the stride "
                         f"{stride}")
    size = tuple((side - 1) * s - 2 * p + d * (k - 1) + e + 1 for side, k, s, p, d, e in
                 zip(x.shape[2:], w.shape[2:], stride, padding, dilation, extra))
    if min(size) < 1:
        raise ValueError(f"input {x.shape} and weight {w.shape} with padding {padding} give an "
                         f"empty {size} output")
    return stride, padding, dilation, size


def _conv_transpose_sample(draw: Draw) -> tuple[tuple, dict]:
    stride, padding, dilation = _draw_geometry(draw)
    s = as_pair(stride, "stride", 1)
    kernel = (draw.integers(1, 3), draw.integers(1, 3))
    extra = draw.choice([0, (s[0] - 1, s[1] - 1)])
    p, d = as_pair(padding, "padding", 0), as_pair(dilation, "dilation", 1)
    # (side - 1) s - 2p + d (k - 1) + extra + 1 >= 1: enough input rows to cover the padding
    size = tuple(max(1, -((d_ * (k - 1) - 2 * p_) // s_) + 1) + draw.integers(0, 1)
                 for k, s_, p_, d_ in zip(kernel, s, p, d))
    n, c, o = draw.integers(1, 2), draw.integers(1, 2), draw.integers(1, 2)
    x, w = array(draw, (n, c, *size)), array(draw, (c, o, *kernel))
    return (x, w), {"stride": stride, "padding": padding, "output_padding": extra,
                    "dilation": dilation}


def _conv_transpose2d_check(x, w, stride=1, padding=0, output_padding=0, dilation=1):
    _transpose_geometry(np.asarray(x), np.asarray(w), stride, padding, output_padding, dilation)


@primitive(sample=_conv_transpose_sample, explain=_explained(_conv_transpose2d_check))
def conv_transpose2d(x, w, stride=1, padding=0, output_padding=0, dilation=1):
    """y[n, o, s*u + d*i - p, s*v + d*j - p] += x[n, c, u, v] w[c, o, i, j]: conv2d's adjoint in
    its input, w of shape (C_in, C_out, kH, kW) as PyTorch's conv_transpose2d; the output is
    (H - 1) s - 2p + d (kH - 1) + output_padding + 1 high (likewise wide)."""
    x, w = np.asarray(x), np.asarray(w)
    stride, padding, dilation, size = _transpose_geometry(x, w, stride, padding,
                                                          output_padding, dilation)
    n, c_in, h, wide = x.shape
    c_out, kh, kw = w.shape[1:]
    # batch innermost: the kH*kW scatter-adds below then run over long contiguous rows
    rows = x.transpose(1, 2, 3, 0).reshape(c_in, h * wide * n)
    cols = np.dot(w.reshape(c_in, c_out * kh * kw).T, rows).reshape(c_out, kh, kw, h, wide, n)
    (ph, pw) = padding
    out = np.zeros((c_out, size[0] + 2 * ph, size[1] + 2 * pw, n), dtype=cols.dtype)
    _add_windows(out, cols, stride, dilation, first=1)
    return np.ascontiguousarray(out[:, ph:ph + size[0], pw:pw + size[1]].transpose(3, 0, 1, 2))


def _conv_transpose2d_vjp_x(grad_out, out, x, w, stride=1, padding=0, output_padding=0,
                            dilation=1):
    """d conv_transpose2d/dx = conv2d(grad_out, w): the adjoint of the adjoint."""
    return conv2d(grad_out, w, stride=stride, padding=padding, dilation=dilation)


def _conv_transpose2d_vjp_w(grad_out, out, x, w, stride=1, padding=0, output_padding=0,
                            dilation=1):
    """d conv_transpose2d/dw[c, o, i, j] = sum of x[n, c] times grad_out's window entry."""
    return conv2d_weight(grad_out, x, kernel_size=tuple(np.shape(w)[2:]), stride=stride,
                         padding=padding, dilation=dilation)


conv_transpose2d.defvjp(_conv_transpose2d_vjp_x, _conv_transpose2d_vjp_w)


def _conv2d_weight_check(x, grad, kernel_size, stride=1, padding=0, dilation=1):
    x, grad = np.asarray(x), np.asarray(grad)
    check_images(x)
    check_images(grad, "grad")
    kernel = as_pair(kernel_size, "kernel_size", 1)
    geometry = conv_geometry(stride, padding, dilation)
    oh, ow = output_size(x.shape[2:], kernel, *geometry, f"input {x.shape}")
    if grad.shape[0] != x.shape[0] or grad.shape[2:] != (oh, ow):
        raise ValueError(f"grad {grad.shape} does not fit input {x.shape} with kernel "
                         f"{kernel}: expected ({x.shape[0]}, O, {oh}, {ow})")
    return kernel, geometry


def _conv2d_weight_sample(draw: Draw) -> tuple[tuple, dict]:
    (x, w), params = _conv_sample(draw)
    grad = array(draw, np.shape(conv2d(x, w, **params)))
    return (x, grad), {"kernel_size": tuple(w.shape[2:]), **params}


@primitive(sample=_conv2d_weight_sample, params=("kernel_size",),
           explain=_explained(_conv2d_weight_check))
def conv2d_weight(x, grad, kernel_size, stride=1, padding=0, dilation=1):
    """dw[o, c, i, j] = sum_{n,u,v} grad[n, o, u, v] x[n, c, s*u + d*i - p, s*v + d*j - p]:
    conv2d's adjoint in its weight (the kernel's gradient for the output cotangent ``grad``)."""
    x, grad = np.asarray(x), np.asarray(grad)
    kernel, (stride, padding, dilation) = _conv2d_weight_check(x, grad, kernel_size, stride,
                                                               padding, dilation)
    cols = image_windows(x, kernel, stride, padding, dilation)
    n, c, kh, kw, oh, ow = cols.shape
    o = grad.shape[1]
    per_image = np.matmul(grad.reshape(n, o, oh * ow),
                          cols.reshape(n, c * kh * kw, oh * ow).transpose(0, 2, 1))
    return per_image.sum(axis=0).reshape(o, c, kh, kw)


def _conv2d_weight_vjp_x(grad_out, out, x, grad, kernel_size, stride=1, padding=0, dilation=1):
    """<conv2d_weight(x, g), V> = <conv2d(x, V), g>: in x, conv_transpose2d(g, V)."""
    geometry = conv_geometry(stride, padding, dilation)
    extra = _leftover(np.shape(x)[2:], as_pair(kernel_size, "kernel_size", 1), *geometry)
    return conv_transpose2d(grad, grad_out, stride=stride, padding=padding,
                            output_padding=extra, dilation=dilation)


def _conv2d_weight_vjp_grad(grad_out, out, x, grad, kernel_size, stride=1, padding=0,
                            dilation=1):
    """<conv2d_weight(x, g), V> = <conv2d(x, V), g>: in g, conv2d(x, V)."""
    return conv2d(x, grad_out, stride=stride, padding=padding, dilation=dilation)


conv2d_weight.defvjp(_conv2d_weight_vjp_x, _conv2d_weight_vjp_grad)


# ---------------------------------------------------------------------------------------------
# Windows as ops: col2im adds window entries back into an image (pooling rules end with it);
# its adjoint im2col takes the windows
# ---------------------------------------------------------------------------------------------

def _im2col_check(x, kernel_size, stride=1, padding=0, dilation=1):
    x = np.asarray(x)
    check_images(x)
    kernel = as_pair(kernel_size, "kernel_size", 1)
    geometry = conv_geometry(stride, padding, dilation)
    output_size(x.shape[2:], kernel, *geometry, f"input {x.shape}")
    return kernel, geometry


def _im2col_sample(draw: Draw) -> tuple[tuple, dict]:
    stride, padding, dilation = _draw_geometry(draw)
    kernel = (draw.integers(1, 3), draw.integers(1, 3))
    size = _draw_image_for(draw, kernel, *conv_geometry(stride, padding, dilation))
    x = array(draw, (draw.integers(1, 2), draw.integers(1, 2), *size))
    return (x,), {"kernel_size": kernel, "stride": stride, "padding": padding,
                  "dilation": dilation}


@primitive(sample=_im2col_sample, params=("kernel_size",), explain=_explained(_im2col_check))
def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """windows[n, c, i, j, u, v] = x[n, c, s*u + d*i - p, s*v + d*j - p] (0 outside x): every
    window of x, (N, C, kH, kW, Ho, Wo), a read-only view of x (of a padded copy with padding)."""
    x = np.asarray(x)
    kernel, geometry = _im2col_check(x, kernel_size, stride, padding, dilation)
    return image_windows(x, kernel, *geometry)


im2col.defvjp(lambda grad_out, out, x, kernel_size, stride=1, padding=0, dilation=1:
              # each entry of x is read by the windows that cover it: their cotangents add up
              col2im(grad_out, size=tuple(np.shape(x)[2:]), stride=stride, padding=padding,
                     dilation=dilation))


def _col2im_check(cols, size, stride=1, padding=0, dilation=1):
    cols = np.asarray(cols)
    if cols.ndim != 6:
        raise ValueError(f"cols must be 6-D (N, C, kH, kW, Ho, Wo), got shape {cols.shape}")
    size = as_pair(size, "size", 0)
    geometry = conv_geometry(stride, padding, dilation)
    expected = output_size(size, cols.shape[2:4], *geometry, f"cols {cols.shape}")
    if cols.shape[4:] != expected:
        raise ValueError(f"cols {cols.shape} do not hold the windows of a {size} image: "
                         f"expected {expected} of them")
    return size, geometry


def _col2im_sample(draw: Draw) -> tuple[tuple, dict]:
    (x,), params = _im2col_sample(draw)
    cols = array(draw, np.shape(im2col(x, **params)))
    params["size"] = tuple(x.shape[2:])
    del params["kernel_size"]
    return (cols,), params


@primitive(sample=_col2im_sample, params=("size",), explain=_explained(_col2im_check))
def col2im(cols, size, stride=1, padding=0, dilation=1):
    """x[n, c, s*u + d*i - p, s*v + d*j - p] += cols[n, c, i, j, u, v]: the adjoint of im2col,
    an image of ``size`` (H, W) where each pixel sums the window entries that read it."""
    cols = np.asarray(cols)
    (h, w), (stride, padding, dilation) = _col2im_check(cols, size, stride, padding, dilation)
    n, c = cols.shape[:2]
    (ph, pw) = padding
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=np.result_type(cols, np.float16))
    _add_windows(out, cols, stride, dilation, first=2)
    return out[:, :, ph:ph + h, pw:pw + w] if ph or pw else out


col2im.defvjp(lambda grad_out, out, cols, size, stride=1, padding=0, dilation=1:
              # each pixel is added to every window entry that reads it: read them back
              im2col(grad_out, kernel_size=tuple(np.shape(cols)[2:4]), stride=stride,
                     padding=padding, dilation=dilation))
