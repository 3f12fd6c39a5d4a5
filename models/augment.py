"""Cheap, fully vectorised random affine augmentation for batches of small grey images.

Coordinates are ``(row, col)`` pixel indices measured from the image centre
``c = ((H - 1) / 2, (W - 1) / 2)``.  A *forward* transform moves the content of the input
pixel at ``u`` to ``F (u - c) + c + t``.  Resampling goes the other way: output pixel ``v``
reads the input at

    u = A (v - c) + c + o,        A = F^{-1},  o = -A t,

rounded to the nearest pixel (nearest-neighbour sampling, ties rounded up); positions that
fall outside the input read 0.  :func:`affine_transform` takes ``A`` and ``o`` directly,
:func:`random_affine` draws a fresh ``F, t`` per image.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["affine_transform", "random_affine", "sample_affine"]

_CHUNK = 128  # images per block: its index array (400 KB) stays in cache (1024: 1.3x slower)


def _as_batch(images: np.ndarray) -> tuple[np.ndarray, int, int]:
    """View ``images`` as ``(N, H, W)``; ``(N, D)`` with square ``D`` is accepted."""
    if images.ndim == 3:
        return images, images.shape[1], images.shape[2]
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError(f"cannot view rows of length {images.shape[1]} as square images")
        return images.reshape(images.shape[0], side, side), side, side
    raise ValueError(f"expected (N, H, W) or (N, H*W) images, got shape {images.shape}")


def affine_transform(
    images: npt.ArrayLike, matrices: npt.ArrayLike, offsets: npt.ArrayLike
) -> np.ndarray:
    """Resample each image with its own inverse affine map, nearest neighbour, zero fill.

    Output pixel ``v = (row, col)`` of image ``n`` is ``images[n][round(A_n (v - c) + c + o_n)]``,
    or 0 if that position lies outside the image.

    Args:
        images: ``(N, H, W)`` or ``(N, H*W)`` (square) array; any dtype.
        matrices: ``(N, 2, 2)`` or ``(2, 2)`` inverse matrices ``A`` in (row, col) order.
        offsets: ``(N, 2)`` or ``(2,)`` offsets ``o`` in pixels, (row, col) order.
            E.g. ``A = I, o = (0, -1)`` shifts the content one pixel to the right.

    Returns:
        A new array with the shape and dtype of ``images``.
    """
    images = np.asarray(images)
    batch, h, w = _as_batch(images)
    n = batch.shape[0]
    mats = np.broadcast_to(np.asarray(matrices, dtype=np.float64), (n, 2, 2))
    offs = np.broadcast_to(np.asarray(offsets, dtype=np.float64), (n, 2))
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    # centred output coordinates; half-integers, hence exact in float32
    ry = (np.arange(h, dtype=np.float32) - np.float32(cy))[None, :, None]
    rx = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, None, :]
    hp, wp = h + 2, w + 2  # one-pixel zero border absorbs every out-of-range read
    out = np.empty((n, h, w), dtype=images.dtype)
    # every block's arrays allocated once (a fresh 400 KB array per block costs page faults)
    block = min(_CHUNK, n)
    rows_in, cols_in = np.empty((block, h, w), np.float32), np.empty((block, h, w), np.float32)
    columns, index = np.empty((block, h, w), np.int32), np.empty((block, h, w), np.int32)
    padded = np.zeros((block, hp, wp), dtype=images.dtype)  # its border stays 0
    image_base = (np.arange(block, dtype=np.int32) * (hp * wp))[:, None, None]
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        m = stop - start
        a = mats[start:stop].astype(np.float32)
        # +1 for the border, +0.5 so that truncation of a non-negative value rounds
        shift = offs[start:stop].astype(np.float32) + np.float32([cy + 1.5, cx + 1.5])
        a00, a01 = a[:, 0, 0, None, None], a[:, 0, 1, None, None]
        a10, a11 = a[:, 1, 0, None, None], a[:, 1, 1, None, None]
        # source coordinate = (term in output row) + (term in output col), broadcast to HxW
        src_r = np.add(a00 * ry + shift[:, 0, None, None], a01 * rx, out=rows_in[:m])
        src_c = np.add(a10 * ry + shift[:, 1, None, None], a11 * rx, out=cols_in[:m])
        np.clip(src_r, 0.0, hp - 1, out=src_r)
        np.clip(src_c, 0.0, wp - 1, out=src_c)
        idx = index[:m]
        np.copyto(idx, src_r, casting="unsafe")  # truncation, as astype(np.int32)
        idx *= wp
        np.copyto(columns[:m], src_c, casting="unsafe")
        idx += columns[:m]
        idx += image_base[:m]
        padded[:m, 1:-1, 1:-1] = batch[start:stop]
        np.take(padded[:m].reshape(-1), idx, out=out[start:stop], mode="clip")
    return out.reshape(images.shape)


def sample_affine(
    n: int,
    rng: np.random.Generator,
    rotation: float = 5.0,
    scale: float = 0.05,
    shear: float = 0.0,
    translate: float = 1.0,
    prob: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` random affine maps; return inverse ``(matrices (n,2,2), offsets (n,2))``.

    Per image, independently and uniformly: rotation angle ``theta`` in ``[-rotation, rotation]``
    degrees, isotropic zoom ``s`` in ``[1 - scale, 1 + scale]``, horizontal shear angle ``phi``
    in ``[-shear, shear]`` degrees and a translation ``t`` in ``[-translate, translate]`` pixels
    per axis.  In (x = col, y = row) coordinates the forward map is
    ``F = R(theta) @ [[1, tan(phi)], [0, 1]] * s`` (zoom, then shear, then rotation, about the
    centre), followed by ``+ t``.  With probability ``1 - prob`` an image gets the identity.
    All draws are made (in a fixed order) even when a range is zero, so the random stream
    consumed depends only on ``n``.

    The defaults (5 degrees, 5 %, no shear, 1 pixel) are the mild ranges that validated best
    for the small 784-64-10 sigmoid MLP on MNIST; 8 degrees / 8 % / 5 degrees shear / 1.5 px
    was no better and 10 degrees / 10 % / 10 degrees shear / 2 px clearly worse.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError("prob must be in [0, 1]")
    theta = np.deg2rad(rng.uniform(-rotation, rotation, size=n))
    zoom = rng.uniform(1.0 - scale, 1.0 + scale, size=n)
    phi = np.deg2rad(rng.uniform(-shear, shear, size=n))
    t_xy = rng.uniform(-translate, translate, size=(n, 2))
    keep = rng.random(n) >= prob  # images left untouched
    theta[keep], zoom[keep], phi[keep], t_xy[keep] = 0.0, 1.0, 0.0, 0.0
    cos, sin, tan = np.cos(theta), np.sin(theta), np.tan(phi)
    # forward matrix in (x, y): R(theta) @ Shear(phi) * s
    f_xx = zoom * cos
    f_xy = zoom * (cos * tan - sin)
    f_yx = zoom * sin
    f_yy = zoom * (sin * tan + cos)
    det = f_xx * f_yy - f_xy * f_yx
    # inverse, re-ordered to (row, col) = (y, x)
    mats = np.empty((n, 2, 2))
    mats[:, 0, 0] = f_xx / det  # d row_in / d row_out  (= inv_yy)
    mats[:, 0, 1] = -f_yx / det  # d row_in / d col_out (= inv_yx)
    mats[:, 1, 0] = -f_xy / det  # d col_in / d row_out (= inv_xy)
    mats[:, 1, 1] = f_yy / det  # d col_in / d col_out (= inv_xx)
    t_rc = t_xy[:, ::-1]
    offs = -np.einsum("nij,nj->ni", mats, t_rc)
    return mats, offs


def random_affine(
    images: npt.ArrayLike,
    rng: np.random.Generator,
    rotation: float = 5.0,
    scale: float = 0.05,
    shear: float = 0.0,
    translate: float = 1.0,
    prob: float = 1.0,
) -> np.ndarray:
    """Apply a fresh random affine transform to every image (see :func:`sample_affine` for
    the distribution and :func:`affine_transform` for the resampling).

    ``images`` is ``(N, 28, 28)`` or ``(N, 784)`` (any square size works), values are
    preserved exactly (nearest neighbour), so a 0..1 input stays in 0..1.  With all ranges
    zero (or ``prob=0``) the output equals the input exactly.  Returns a new array of the
    same shape and dtype.
    """
    images = np.asarray(images)
    mats, offs = sample_affine(images.shape[0], rng, rotation, scale, shear, translate, prob)
    return affine_transform(images, mats, offs)
