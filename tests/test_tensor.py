"""The Tensor's construction rules and attributes."""

import numpy as np
import pytest

import tinygraph as tg


@pytest.mark.parametrize("data, dtype", [
    (np.ones(2, np.float16), np.float16), (np.ones(2, np.float32), np.float32),
    (np.ones(2), np.float64), (np.arange(3), np.float64), (np.array([True]), np.bool_),
    (3, np.float64), (2.5, np.float64), ([1, 2], np.float64),
])
def test_dtype_rules(data, dtype):
    assert tg.Tensor(data).dtype == dtype


def test_no_copy_and_attributes():
    array = np.arange(6.0).reshape(2, 3)
    t = tg.Tensor(array, requires_grad=True, name="w")
    assert t.data is array and t.numpy() is array
    assert (t.shape, t.ndim, t.size, t.name, t.grad) == ((2, 3), 2, 6, "w", None)
    assert t.requires_grad and t.is_leaf
    assert tg.Tensor(np.array([4.0])).item() == 4.0
    assert np.asarray(t) is array


def test_repr_shows_shape_dtype_and_op():
    t = tg.Tensor(np.ones((2, 2), np.float32), requires_grad=True, name="w")
    text = repr(t * 2)
    assert "shape=(2, 2)" in text and "dtype=float32" in text and "op=mul" in text
    assert "name='w'" in repr(t)


def test_bad_data_is_a_clear_error():
    with pytest.raises(TypeError, match="cannot hold data of dtype <U1"):
        tg.Tensor(["a"])


def test_methods():
    t = tg.Tensor(np.arange(6.0).reshape(2, 3))
    assert t.T.shape == (3, 2) and t.transpose(1, 0).shape == (3, 2)
    assert t.transpose((1, 0)).shape == (3, 2)
    assert t.reshape(3, 2).shape == (3, 2) and t.reshape((6,)).shape == (6,)
    assert t.sum(axis=0).shape == (3,) and t.mean(axis=1, keepdims=True).shape == (2, 1)
    assert t.max().item() == 5.0
    assert np.array_equal(t > 2, t.data > 2)
    assert len(t) == 2 and t[0].shape == (3,)
    assert {t: 1}[t] == 1  # tensors are hashable; == keeps identity meaning


def test_array_conversion_honours_copy_and_truth_follows_numpy():
    t = tg.Tensor(np.array([1.0, 2.0]))
    copied = np.array(t, copy=True)
    copied[0] = 7
    assert t.data[0] == 1.0
    assert bool(tg.Tensor(0.0)) is False and bool(tg.Tensor([3.0])) is True
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)


def test_files_written_for_users_get_ordinary_permissions(tmp_path):
    import os

    from tinygraph.files import write_atomic

    umask = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "a.txt", b"x")
    finally:
        os.umask(umask)
    assert path.read_bytes() == b"x" and (path.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_keep_freed_memory_reports_whether_it_applied():
    import sys

    assert tg.keep_freed_memory() is sys.platform.startswith("linux")


def test_array_conversion_without_copy_follows_numpy_2():
    t = tg.Tensor(np.ones(3, np.float32))
    assert np.asarray(t, copy=False) is t.data
    with pytest.raises(ValueError, match="cannot become float64 without a copy"):
        np.asarray(t, dtype=np.float64, copy=False)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
