"""tinygraph.testing: strategies that draw valid inputs, and the pytest assertion helper."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygraph as tg
from tinygraph.gradcheck import check_op_examples
from tinygraph.testing import (
    HypothesisDraw,
    assert_op_gradients,
    broadcastable_shapes,
    check_op,
    float_arrays,
    op_inputs,
)


@given(st.integers(1, 4).flatmap(lambda n: broadcastable_shapes(n)))
def test_broadcastable_shapes_broadcast(shapes):
    np.broadcast_shapes(*shapes)  # raises ValueError if they do not
    assert all(len(shape) <= 3 and all(1 <= side <= 4 for side in shape) for shape in shapes)


@given(st.data(), st.integers(1, 3))
def test_hypothesis_draw_gives_broadcastable_shapes(data, n):
    shapes = HypothesisDraw(data.draw).broadcastable_shapes(n, min_dims=1, max_side=3)
    assert len(shapes) == n and all(len(s) >= 1 for s in shapes)
    np.broadcast_shapes(*shapes)


@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_random_draw_gives_broadcastable_shapes(seed, n):
    np.broadcast_shapes(*tg.RandomDraw(seed).broadcastable_shapes(n))


def test_drawn_pairs_cover_broadcasting_size_one_and_zero_d():
    pairs = [tg.RandomDraw(seed).broadcastable_shapes(2) for seed in range(300)]
    assert any(a == () or b == () for a, b in pairs)                    # 0-d
    assert any(len(a) != len(b) for a, b in pairs)                      # missing leading dims
    assert any(1 in a and np.broadcast_shapes(a, b) != a for a, b in pairs)  # size-1 stretched


@given(float_arrays(shape=(2, 3), dtype=hnp.floating_dtypes(sizes=(32, 64), endianness="="),
                    low=-1, high=1))
def test_float_arrays_of_given_shape_and_drawn_dtype(array):
    assert array.shape == (2, 3) and array.dtype in (np.float32, np.float64)
    assert np.all(np.abs(array) <= 1)


@given(float_arrays())
def test_float_arrays_of_drawn_shape(array):
    assert array.dtype == np.float64 and array.ndim <= 3 and np.all(np.isfinite(array))


@given(st.sampled_from(sorted(tg.registry())).flatmap(
    lambda name: st.tuples(st.just(name), op_inputs(tg.registry()[name]))))
def test_op_inputs_are_valid_for_their_op(drawn):
    name, (args, params) = drawn
    out = tg.registry()[name](*args, **params)
    assert np.all(np.isfinite(out))


def test_check_op_is_reexported():
    assert check_op is tg.check_op


def test_assert_op_gradients_passes_on_a_built_in_op():
    result = assert_op_gradients("log_softmax", examples=10, seed=1)
    assert result.passed and result.examples == 10 and result.max_abs_error < 1e-6
    assert result.order == 1
    second = assert_op_gradients("log_softmax", examples=10, seed=1, order=2)
    assert second.passed and second.order == 2 and second.max_abs_error < 1e-6
    row = check_op_examples("log_softmax", 10, 1, order=2)  # the command's row, same inputs
    assert second == dataclasses.replace(row, seconds=second.seconds)


def test_assert_op_gradients_passes_the_order_through():
    @tg.primitive(name="exp_held", register=False)
    def exp_held(x):
        return np.exp(x)

    # right at first order; out held constant, so d/dx of the rule misses exp(x) * grad_out
    exp_held.defvjp(lambda grad_out, out, x: (grad_out * tg.stop_gradient(out),))
    assert assert_op_gradients(exp_held, examples=5, seed=3).passed
    with pytest.raises(tg.GradientCheckError) as info:
        assert_op_gradients(exp_held, examples=5, seed=3, order=2, shrink=False)
    message = str(info.value)
    assert message == check_op_examples(exp_held, 5, 3, order=2, shrink=False).report()
    header, row = message.splitlines()[:2]
    assert header.split()[:4] == ["check", "kind", "order", "examples"]
    assert row.split()[:4] == ["exp_held", "op", "2", "1"] and row.endswith("FAIL")
    assert "FAIL op exp_held at order 2: example 0 failed (run seed 3" in message
    assert "op exp_held: order 2 (the gradient of <grad f, v>): gradient check failed" in message
    assert ", order=2)" in message  # the Python line that reruns it
    assert info.value.mismatch is not None and info.value.mismatch.analytic != \
        pytest.approx(info.value.mismatch.numerical)


def test_assert_op_gradients_fails_with_the_commands_report():
    @tg.primitive(name="tanh_wrong", register=False)
    def tanh_wrong(x):
        return np.tanh(x)

    tanh_wrong.defvjp(lambda grad_out, out, x: (grad_out * (1 - out),))  # should be 1 - out^2
    with pytest.raises(tg.GradientCheckError) as info:
        assert_op_gradients(tanh_wrong, examples=10, seed=2)
    message = str(info.value)
    assert message == check_op_examples(tanh_wrong, 10, 2).report()
    header, row = message.splitlines()[:2]
    assert header.split()[:4] == ["check", "kind", "order", "examples"]
    assert row.split()[:3] == ["tanh_wrong", "op", "1"] and row.endswith("FAIL")
    assert "FAIL op tanh_wrong at order 1: example 0 failed (run seed 2, example seed" in message
    assert "shrunk by hypothesis to:" in message and "allowed: atol 1e-05" in message
    assert info.value.mismatch is not None and info.value.mismatch.path == "0"
