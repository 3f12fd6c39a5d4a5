"""PyTorch habits that used to fail far from their cause: in-place updates, lists as operands."""

import numpy as np
import pytest

import tinygraph as tg
import tinygraph.numpy as tinygraph_numpy


def test_an_in_place_update_under_no_grad_keeps_the_same_leaf():
    w = tg.Tensor(np.ones((2, 2)), requires_grad=True)
    tg.sum(np.array([[1.0, 2.0]]) @ w).backward()
    before = w
    with tg.no_grad():
        w -= 0.1 * w.grad
        w *= 2.0
        w += np.ones(2)  # broadcasting into its shape
        w /= 2.0
    assert w is before and w.is_leaf and w.requires_grad
    assert np.allclose(w.data, [[1.4, 1.4], [1.3, 1.3]])
    w.grad = None
    tg.sum(w * w).backward()  # still differentiable, from the new values
    assert np.allclose(w.grad, 2 * w.data)


def test_an_in_place_update_of_a_leaf_while_recording_is_refused_clearly():
    w = tg.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Tensor -=: a leaf that requires grad .*tg.no_grad"):
        w -= 1.0
    with tg.no_grad(), pytest.raises(ValueError, match=r"Tensor \+=: cannot update shape \(2,\)"):
        w += np.ones((3, 2))


def test_in_place_operators_on_other_tensors_record_a_new_node():
    w = tg.Tensor(np.ones(2), requires_grad=True)
    y = w * 2
    first = y
    y += 1.0
    assert y is not first and y.op is tg.add
    tg.sum(y).backward()
    assert np.array_equal(w.grad, [2.0, 2.0])


def test_a_nested_list_operand_is_an_array_for_the_rules_too():
    w = tg.Tensor(np.ones((2, 2)), requires_grad=True)
    tg.sum([[1.0, 2.0]] @ w).backward()
    assert np.array_equal(w.grad, [[1.0, 1.0], [2.0, 2.0]])
    grads = tg.grad(lambda v: tg.sum(tg.matmul([[1.0, 2.0]], v)))(np.ones((2, 2)))
    assert np.array_equal(grads, [[1.0, 1.0], [2.0, 2.0]])


def test_training_steps_leave_no_reference_cycles():
    import gc

    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(6, 3)), "b": np.zeros(3)}
    x, labels = rng.random((8, 6)), rng.integers(0, 3, size=8)

    def loss(p, x, labels):
        return tg.softmax_cross_entropy(tg.tanh(x @ p["W"] + p["b"]), labels)

    step = tg.value_and_grad(loss)
    traced = tg.trace(step)
    leaves = {k: tg.Tensor(v, requires_grad=True) for k, v in params.items()}
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            step(params, x, labels)
            traced(params, x, labels)
            loss(leaves, x, labels).backward()
        assert gc.collect() == 0  # every step's objects were freed by reference counting
    finally:
        gc.enable()


def test_a_list_holding_tensors_keeps_them_in_the_graph():
    w = tg.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    tg.sum(w * [w[0], 1.0, 1.0]).backward()
    assert np.array_equal(w.grad, [2.0, 1.0, 1.0])  # d(w0^2)/dw0 = 2 w0
    x = np.array([1.0, 2.0, 3.0])
    assert np.array_equal(tg.grad(lambda z: tg.sum(tg.concatenate([z, [z[0]]])))(x),
                          [2.0, 1.0, 1.0])
    assert np.allclose(tg.grad(lambda z: tg.sum(tg.exp([z[0], 1.0])))(x), [np.e, 0.0, 0.0])
    assert isinstance(tg.exp([0.0, 1.0]), np.ndarray)  # no Tensor anywhere: an array


def test_a_graph_recorded_before_an_in_place_update_refuses_to_be_differentiated():
    w = tg.Tensor(np.array([0.5, 1.0]), requires_grad=True)
    y = tg.exp(w)
    with tg.no_grad():
        y -= 1.0  # exp's rule reads its result
    with pytest.raises(RuntimeError, match="its result .* updated in place after exp recorded"):
        tg.sum(y).backward()
    w = tg.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    loss = tg.sum(w * w)
    with tg.no_grad():
        w -= 1.0  # the update before backward(): the gradient would be at the new values
    with pytest.raises(RuntimeError, match="its input 0 .* updated in place after mul"):
        loss.backward()
    w.grad = None
    tg.sum(w * w).backward()  # recorded after the update: fine
    assert np.array_equal(w.grad, [2.0, 4.0])


def test_a_tensor_built_from_a_list_of_graph_tensors_is_refused_not_cut_off():
    """Tensor([t0, t1]) used to make a new leaf, silently cutting the gradient to t0 and t1."""
    W = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(TypeError, match=r"tg.stack\(\[\.\.\.\]\)"):
        tg.Tensor([W[0], [W[1]]][:1])
    with pytest.raises(TypeError, match="would cut off"):
        tg.Tensor([[W[0] * 2, 1.0]])
    kept = tinygraph_numpy.array([W[0] * 2, W[1]])  # what the message advises keeps the graph
    tg.sum(kept).backward()
    assert np.array_equal(W.grad, [2.0, 1.0])
    constants = tg.Tensor([W[0].detach(), tg.Tensor(3.0), 4.0])  # constants are fine
    assert np.array_equal(constants.data, [1.0, 3.0, 4.0]) and not constants.requires_grad
