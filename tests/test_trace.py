"""tg.trace: a recorded step replays with the same numbers as eager mode, or says why not."""

import numpy as np
import pytest

import tinygraph as tg
from models import network
from models.init import init_params


def batch(seed: int, n: int = 16, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784)).astype(dtype), rng.integers(0, 10, n)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_traced_training_step_equals_eager(dtype, activation):
    params = init_params((784, 64, 10), "xavier", seed=1, dtype=dtype)
    eager = tg.value_and_grad(network.loss)
    step = tg.trace(eager)
    for seed in (0, 1, 2):  # the first call traces, the others replay
        x, y = batch(seed, dtype=dtype)
        value, grads = eager(params, x, y, activation)
        traced_value, traced_grads = step(params, x, y, activation)
        assert traced_value.shape == () and traced_value == value
        for key in params:
            assert traced_grads[key].dtype == dtype
            assert np.array_equal(traced_grads[key], grads[key])
    assert step.trace_count == 1


@pytest.mark.parametrize("name", sorted(tg.registry()))
def test_every_registered_op_traces_like_eager(name):
    op = tg.registry()[name]
    args, params = op.sample(tg.RandomDraw(7))
    positions = [i for i, a in enumerate(args)
                 if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    weights = np.random.default_rng(0).standard_normal(np.shape(op(*args, **params)))

    def projected(*arrays):
        return tg.sum(op(*arrays, **params) * weights)

    eager = tg.value_and_grad(projected, argnums=tuple(positions))
    step = tg.trace(eager)
    step(*args)
    rng = np.random.default_rng(1)
    moved = [a * (1 + 0.01 * rng.random(a.shape)) if i in positions else a
             for i, a in enumerate(args)]  # new values, same shapes and valid domain
    value, grads = eager(*moved)
    traced_value, traced_grads = step(*moved)
    assert np.allclose(traced_value, value, rtol=0, atol=1e-12)
    for expected, got in zip(grads, traced_grads):
        assert np.allclose(got, expected, rtol=0, atol=1e-12)


def test_forward_only_trace_and_fresh_outputs():
    def layer(w, x):
        return tg.sigmoid(x @ w), tg.exp(w).sum()

    traced = tg.trace(layer)
    w, x = np.ones((3, 2)), np.ones((4, 3))
    first, total = traced(w, x)
    kept = first.copy()
    second, _ = traced(w, x * 2)
    assert np.array_equal(first, kept)  # outputs are not the reused buffers
    assert np.allclose(second, 1 / (1 + np.exp(-6.0))) and np.isclose(total, 6 * np.e)


def test_grad_kind_and_argnums_tuple():
    def f(a, b):
        return tg.sum(a * b + a ** 2)

    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    ga, gb = tg.trace(tg.grad(f, argnums=(0, 1)))(a, b)
    assert np.array_equal(ga, b + 2 * a) and np.array_equal(gb, a)
    assert np.array_equal(tg.trace(tg.grad(f))(a, b), b + 2 * a)


def test_returned_gradients_are_owned():
    step = tg.trace(tg.grad(lambda x, y: tg.sum(x + y), argnums=(0, 1)))
    gx, gy = step(np.ones(3), np.ones(3))
    gx += 5
    assert np.array_equal(gy, [1, 1, 1])
    gx2, _ = step(np.ones(3), np.ones(3))
    assert np.array_equal(gx2, [1, 1, 1])


def test_new_shapes_retrace_or_raise():
    params = init_params((784, 64, 10), "xavier", seed=1)
    step = tg.trace(tg.value_and_grad(network.loss))
    x, y = batch(0)
    step(params, x, y)
    step(params, x[:5], y[:5])  # the last, smaller batch of an epoch
    assert step.trace_count == 2
    strict = tg.trace(tg.value_and_grad(network.loss), retrace=False)
    strict(params, x, y, "sigmoid")
    with pytest.raises(tg.TraceError, match=r"argument 1 has shape \(5, 784\) float64, but the "
                                            r"trace was made for shape \(16, 784\) float64"):
        strict(params, x[:5], y[:5], "sigmoid")
    with pytest.raises(tg.TraceError, match=r"argument 0\['W1'\] has shape \(784, 64\) float32"):
        strict({k: v.astype(np.float32) for k, v in params.items()}, x, y, "sigmoid")
    with pytest.raises(tg.TraceError, match="argument 3 has str 'tanh'"):
        strict(params, x, y, "tanh")
    with pytest.raises(tg.TraceError, match="called with 3 arguments, traced with 4"):
        strict(params, x, y)


def test_what_cannot_be_traced_is_refused():
    x = np.array([1.0, -2.0])
    cases = {
        "Tensor.item()": lambda x: x.sum() * x.sum().item(),
        "converting a Tensor to a NumPy array": lambda x: tg.sum(x * np.asarray(x)),
        "the truth value of a Tensor": lambda x: tg.sum(x) if x[0] > 0 else tg.sum(-x),
    }
    for message, f in cases.items():
        with pytest.raises(tg.TraceError, match=message):
            tg.trace(tg.grad(f))(x)
    with pytest.raises(ValueError, match=r"must return a one-element Tensor, got shape \(2,\)"):
        tg.trace(tg.grad(lambda x: x * 2))(x)
    with pytest.raises(tg.TraceError, match="returned float"):
        tg.trace(lambda x: 3.0)(x)
    assert not tg.state.STATE.tracing  # a failed trace leaves no state behind
    assert (tg.Tensor(x) > 0).data.tolist() == [True, False]


def test_python_control_flow_is_recorded_as_taken():
    def f(x, flag):
        return tg.sum(x * 2) if flag else tg.sum(x * 3)

    step = tg.trace(tg.grad(f))
    assert np.array_equal(step(np.ones(2), True), [2, 2])
    assert np.array_equal(step(np.ones(2), False), [3, 3])  # a static argument: traced again
    assert step.trace_count == 2


def test_integer_labels_are_inputs_not_constants():
    params = init_params((784, 64, 10), "xavier", seed=1)
    step = tg.trace(tg.value_and_grad(network.loss))
    x, y = batch(0)
    step(params, x, y)
    other = (y + 1) % 10
    assert step(params, x, other)[0] == tg.value_and_grad(network.loss)(params, x, other)[0]


def test_numbers_in_differentiated_arguments_are_inputs_like_in_grad():
    g = tg.grad(lambda w, s: tg.sum(w * s), argnums=(0, 1))
    for scale in (np.float32(2), 2, 2.0):
        _, eager = g(np.ones(3), scale)
        _, traced = tg.trace(g)(np.ones(3), scale)
        assert traced == eager == 3.0


def test_a_wrapper_of_a_transform_is_traced_as_itself():
    import functools

    inner = tg.grad(lambda w: tg.sum(w * w))

    @functools.wraps(inner)
    def zeroed(w):
        return inner(w) * 0

    # Traced as the function it is (one calling a transform), never silently replaced by the
    # bare transform that functools.wraps copied the name of.
    assert np.array_equal(tg.trace(zeroed)(np.ones(2)), [0.0, 0.0])


def test_a_primitive_itself_can_be_traced():
    """tg.trace(tg.exp) failed: the transform cache keys functions by weak reference, and a
    Primitive could not be weakly referenced."""
    x = np.array([0.0, 1.0])
    assert np.array_equal(tg.trace(tg.exp)(x), np.exp(x))
    assert np.array_equal(tg.trace(tg.grad(tg.sum))(x), np.ones(2))


def test_a_function_of_no_arguments_can_be_traced():
    """Its generated entry had an empty try block (IndentationError at the first call)."""
    step = tg.trace(lambda: tg.Tensor(np.ones(3)) * 2)
    assert np.array_equal(step(), [2.0, 2.0, 2.0]) and np.array_equal(step(), [2.0, 2.0, 2.0])
