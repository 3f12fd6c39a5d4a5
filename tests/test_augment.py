"""Tests for models.augment: exact identity, exact shifts, determinism, ranges."""

from __future__ import annotations

import numpy as np
import pytest

from models.augment import affine_transform, random_affine, sample_affine


def synthetic(n: int = 4, dtype=np.float32) -> np.ndarray:
    """n distinct 28x28 images with values in 0..1 and non-zero content up to the border."""
    rng = np.random.default_rng(123)
    return rng.random((n, 28, 28)).astype(dtype)


@pytest.mark.parametrize("flat", [False, True])
def test_identity_is_exact(flat):
    x = synthetic()
    if flat:
        x = x.reshape(len(x), 784)
    rng = np.random.default_rng(0)
    for y in (
        random_affine(x, rng, rotation=0, scale=0, shear=0, translate=0),
        random_affine(x, rng, prob=0.0),
        affine_transform(x, np.eye(2), np.zeros(2)),
    ):
        assert y.shape == x.shape and y.dtype == x.dtype
        assert np.array_equal(y, x)
        assert y is not x


def test_one_pixel_translation_is_exact():
    x = synthetic()
    right = affine_transform(x, np.eye(2), [0.0, -1.0])  # reads col - 1: content moves right
    assert np.array_equal(right[:, :, 1:], x[:, :, :-1])
    assert np.all(right[:, :, 0] == 0)
    up = affine_transform(x, np.eye(2), [1.0, 0.0])  # reads row + 1: content moves up
    assert np.array_equal(up[:, :-1, :], x[:, 1:, :])
    assert np.all(up[:, -1, :] == 0)


def test_quarter_turn_matches_rot90():
    x = synthetic()
    quarter = np.array([[0.0, 1.0], [-1.0, 0.0]])  # out[r, c] = in[c, 27 - r]
    assert np.array_equal(affine_transform(x, quarter, [0.0, 0.0]), np.rot90(x, axes=(1, 2)))


def test_per_image_parameters():
    x = synthetic(3)
    offsets = np.array([[0.0, 0.0], [0.0, -1.0], [-2.0, 0.0]])
    y = affine_transform(x, np.broadcast_to(np.eye(2), (3, 2, 2)), offsets)
    assert np.array_equal(y[0], x[0])
    assert np.array_equal(y[1, :, 1:], x[1, :, :-1])
    assert np.array_equal(y[2, 2:, :], x[2, :-2, :]) and np.all(y[2, :2] == 0)


def test_sampled_translation_moves_a_dot():
    img = np.zeros((1, 28, 28))
    img[0, 14, 14] = 1.0
    rng = np.random.default_rng(5)
    mats, offs = sample_affine(200, np.random.default_rng(5), 0, 0, 0, translate=2.0)
    np.testing.assert_allclose(mats, np.broadcast_to(np.eye(2), (200, 2, 2)))
    assert np.all(np.abs(offs) <= 2.0)
    out = random_affine(np.repeat(img, 200, axis=0), rng, 0, 0, 0, translate=2.0)
    assert np.all(out.sum(axis=(1, 2)) == 1.0)  # the dot survives, exactly once
    rows, cols = np.nonzero(out)[1:]
    assert np.all(np.abs(rows - 14) <= 2) and np.all(np.abs(cols - 14) <= 2)
    assert len({(int(r), int(c)) for r, c in zip(rows, cols, strict=True)}) > 10


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_shape_dtype_and_range(dtype):
    x = synthetic(8, np.float64)
    x = (x * 255).astype(dtype) if dtype == np.uint8 else x.astype(dtype)
    for batch in (x, x.reshape(8, 784)):
        y = random_affine(batch, np.random.default_rng(0), rotation=15, scale=0.15, shear=15)
        assert y.shape == batch.shape and y.dtype == batch.dtype
        assert y.min() >= 0 and y.max() <= batch.max()
        # nearest neighbour: every output value is an input value of that image, or 0
        for yi, xi in zip(y.reshape(8, -1), batch.reshape(8, -1), strict=True):
            assert np.all(np.isin(yi, np.append(xi, 0)))


def test_deterministic_for_a_seed_and_fresh_per_call():
    x = synthetic(16)
    a = random_affine(x, np.random.default_rng(42))
    b = random_affine(x, np.random.default_rng(42))
    assert np.array_equal(a, b)
    rng = np.random.default_rng(42)
    c1, c2 = random_affine(x, rng), random_affine(x, rng)
    assert np.array_equal(c1, a) and not np.array_equal(c1, c2)


def test_different_per_image():
    x = np.repeat(synthetic(1), 32, axis=0)
    y = random_affine(x, np.random.default_rng(1)).reshape(32, -1)
    assert len({row.tobytes() for row in y}) == 32


def test_mostly_preserves_a_centred_digit():
    # a small centred blob stays inside the frame under the default ranges
    x = np.zeros((64, 28, 28), np.float32)
    x[:, 9:19, 11:17] = 1.0
    y = random_affine(x, np.random.default_rng(3))
    mass = y.sum(axis=(1, 2)) / x.sum(axis=(1, 2))
    assert np.all((mass > 0.7) & (mass < 1.4))


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        random_affine(np.zeros((2, 783)), np.random.default_rng(0))
    with pytest.raises(ValueError):
        random_affine(np.zeros(784), np.random.default_rng(0))
