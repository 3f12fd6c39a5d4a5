"""Parameter initialisation: shapes, scales, seeding, dtypes."""

import numpy as np
import pytest

from models.init import init_params


def test_shapes_and_zero_biases():
    params = init_params((784, 64, 32, 10), method="he", seed=0)
    assert list(params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert params["W2"].shape == (64, 32) and params["b3"].shape == (10,)
    assert all(not params[k].any() for k in ("b1", "b2", "b3"))


@pytest.mark.parametrize("method, std", [
    ("normal", 1.0),                      # the paper: N(0, 1)
    ("xavier", np.sqrt(2 / (784 + 64))),  # Glorot normal
    ("he", np.sqrt(2 / 784)),             # He normal
])
def test_scales(method, std):
    weights = init_params((784, 64, 10), method=method, seed=3)["W1"]
    assert abs(weights.mean()) < 0.02 * std * 10
    assert weights.std() == pytest.approx(std, rel=0.03)


def test_normal_scale_parameter_and_seeding():
    a = init_params(method="normal", scale=0.1, seed=5)
    b = init_params(method="normal", scale=0.1, seed=5)
    c = init_params(method="normal", scale=0.1, seed=6)
    assert np.array_equal(a["W1"], b["W1"]) and not np.array_equal(a["W1"], c["W1"])
    assert a["W1"].std() == pytest.approx(0.1, rel=0.03)


def test_dtype_and_bad_input():
    params = init_params(dtype=np.float32, seed=0)
    assert {p.dtype for p in params.values()} == {np.dtype(np.float32)}
    assert np.array_equal(params["W1"], init_params(seed=0)["W1"].astype(np.float32))
    with pytest.raises(ValueError, match="unknown init method"):
        init_params(method="orthogonal")
    with pytest.raises(ValueError, match="at least two positive"):
        init_params((784,))
