"""Preprocessing: images to feature rows, one-hot labels, a seeded train/validation split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike

from .files import DataError


class Split(NamedTuple):
    """Result of :func:`train_val_split`: the training part and the validation part."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray


def to_features(images: np.ndarray, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Flatten images to feature rows scaled to 0..1.

    ``images`` is an integer array of pixel values 0..255 shaped ``(N, H, W)`` (or already flat,
    ``(N, D)``); returns ``(N, H*W)`` of ``dtype`` holding ``pixel / 255``. Floating-point input
    is rejected (it may already be scaled), as are values outside 0..255.
    """
    array = np.asarray(images)
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"to_features: expected integer pixel values 0..255, got {array.dtype}")
    if array.ndim < 2:
        raise DataError(f"to_features: expected images (N, H, W), got shape {array.shape}")
    if array.dtype != np.uint8 and array.size and (array.min() < 0 or array.max() > 255):
        raise DataError("to_features: pixel values must lie in 0..255")
    flat = array.reshape(array.shape[0], -1)
    return flat.astype(dtype) / np.asarray(255, dtype=dtype)


def one_hot(
    labels: np.ndarray | Sequence[int],
    num_classes: int = 10,
    dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """Return ``(N, num_classes)`` rows that are 1 at each label's index and 0 elsewhere."""
    array = np.asarray(labels)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"one_hot: expected 1-D integer labels, got {array.dtype} {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise DataError(f"one_hot: labels must lie in 0..{num_classes - 1}")
    out = np.zeros((array.shape[0], num_classes), dtype=dtype)
    out[np.arange(array.shape[0]), array] = 1
    return out


def train_val_split(
    images: np.ndarray, labels: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> Split:
    """Shuffle with ``seed`` and split into training and validation parts.

    The last ``round(N * val_fraction)`` examples of a seeded permutation form the validation
    part, the rest the training part (0.2 gives 80/20). The same seed always gives the same
    split. Returns a :class:`Split` ``(train_images, train_labels, val_images, val_labels)``.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise DataError(f"train_val_split: {len(images)} images but {len(labels)} labels")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"train_val_split: val_fraction must be in [0, 1), got {val_fraction}")
    n = len(images)
    n_val = round(n * val_fraction)
    order = np.random.default_rng(seed).permutation(n)
    train_idx, val_idx = order[: n - n_val], order[n - n_val :]
    return Split(images[train_idx], labels[train_idx], images[val_idx], labels[val_idx])
