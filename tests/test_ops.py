"""Every registered primitive: gradient-checked on hypothesis-drawn inputs, forward values right."""

import re

import numpy as np
import pytest
from hypothesis import given

import tinygraph as tg
from tinygraph.primitive import VARIADIC
from tinygraph.testing import op_inputs

# Walk the registry: an op added to tinygraph is checked here without anyone listing it.
REGISTERED = sorted(tg.registry())


def test_registry_holds_the_documented_ops():
    documented = {"add", "sub", "mul", "div", "neg", "matmul", "power", "exp", "log", "sigmoid",
                  "tanh", "relu", "sum", "max", "reshape", "transpose", "getitem",
                  "log_softmax", "softmax_cross_entropy"}
    assert documented <= set(REGISTERED)


@pytest.mark.parametrize("name", REGISTERED)
def test_every_primitive_has_a_backward_rule(name):
    assert tg.registry()[name].has_rule, f"{name} has no backward rule"


@pytest.mark.parametrize("name", REGISTERED)
def test_every_primitive_passes_gradient_check(name):
    op = tg.registry()[name]

    @given(op_inputs(op))
    def check(sample):
        args, params = sample
        tg.check_op(op, args, params)

    check()


@pytest.mark.parametrize("name", REGISTERED)
def test_every_primitive_keeps_float32(name):
    op = tg.registry()[name]
    args, params = op.sample(tg.RandomDraw(3))
    args32 = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
              for a in args]
    inputs = [tg.Tensor(a, requires_grad=True) if isinstance(a, np.ndarray)
              and a.dtype.kind == "f" else a for a in args32]
    out = op(*inputs, **params)
    if not op.differentiable:  # a mask: boolean, and never part of a derivative
        assert out.dtype == np.bool_ and not out.requires_grad
        return
    assert out.dtype == params.get("dtype", np.float32)
    (out * np.ones(out.shape, np.float32)).sum().backward()
    for x in inputs:
        if isinstance(x, tg.Tensor):
            assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


def test_forward_values_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4,))
    assert np.array_equal(tg.add(tg.Tensor(a), b).data, a + b)
    assert np.array_equal(tg.matmul(tg.Tensor(a), b).data, a @ b)
    assert np.allclose(tg.softmax(tg.Tensor(a), axis=0).data.sum(axis=0), 1)
    assert np.allclose(tg.mean(tg.Tensor(a), axis=1).data, a.mean(axis=1))
    assert np.allclose(tg.Tensor(a).mean().data, a.mean())
    assert np.allclose(tg.log_softmax(tg.Tensor(a)).data, np.log(np.exp(a) / np.exp(a).sum(-1,
                                                                                         keepdims=True)))


def test_functions_on_plain_arrays_return_arrays():
    x = np.array([0.0, 1.0])
    assert isinstance(tg.exp(x), np.ndarray)
    assert isinstance(tg.exp(tg.Tensor(x)), tg.Tensor)


def test_sigmoid_is_exact_and_quiet_at_large_magnitude():
    # Overflow, invalid and divide would be real faults; e^-1000 underflowing to 0 is the
    # correctly rounded value (and silent under NumPy's default settings).
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for dtype in (np.float32, np.float64):
            out = tg.sigmoid(tg.Tensor(np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0], dtype)))
            assert out.dtype == dtype
            assert out.data[0] == 0.0 and out.data[-1] == 1.0 and out.data[2] == 0.5
            assert np.all(np.isfinite(out.data))
    x = np.linspace(-30, 30, 61)
    assert np.allclose(tg.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-15, atol=0)


def test_softmax_cross_entropy_values_and_gradient():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(5, 3)), np.array([0, 2, 1, 1, 0])
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -log_p[np.arange(5), labels].mean()
    x = tg.Tensor(logits, requires_grad=True)
    loss = tg.softmax_cross_entropy(x, labels)
    assert loss.shape == () and np.isclose(loss.item(), expected)
    loss.backward()
    onehot = np.eye(3)[labels]
    assert np.allclose(x.grad, (np.exp(log_p) - onehot) / 5)
    # one-hot targets give the same loss and gradient as ids
    y = tg.Tensor(logits, requires_grad=True)
    tg.softmax_cross_entropy(y, onehot).backward()
    assert np.allclose(y.grad, x.grad)


def test_softmax_cross_entropy_is_finite_for_huge_logits():
    logits = tg.Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]]), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = tg.softmax_cross_entropy(logits, np.array([0, 2]))
        loss.backward()
    assert np.isfinite(loss.item()) and np.isclose(loss.item(), 5e3 / 2)
    assert np.all(np.isfinite(logits.grad))


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 3]), "label 3 at row 1 is out of range for 3 classes"),
    (np.array([-1, 0]), "label -1 at row 0 is negative"),
    (np.array([0.5, 1.0]), "label 0.5 at row 0 is not an integer class id"),
    (np.array([0, 1, 2]), "got 3 labels for 2 rows"),
    (np.zeros((2, 4)), "targets of shape (2, 4) do not match logits (2, 3)"),
    (np.zeros((2, 3, 1)), "labels must be class ids of shape (N,) or targets of shape (N, C)"),
    (np.array(["a", "b"]), "labels must be integer class ids"),
])
def test_softmax_cross_entropy_rejects_bad_labels(labels, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        tg.softmax_cross_entropy(tg.Tensor(np.zeros((2, 3))), labels)
    assert str(info.value).startswith("softmax_cross_entropy: ")
    assert "test_ops.py" in str(info.value)  # the line the user wrote


def test_softmax_cross_entropy_needs_a_class_axis_and_matching_labels():
    with pytest.raises(ValueError, match="logits must have a class axis, got a scalar"):
        tg.softmax_cross_entropy(tg.Tensor(np.zeros(())), np.array(0))
    with pytest.raises(ValueError, match=r"got 3 labels for 2 rows of logits \(2, 3\)"):
        tg.softmax_cross_entropy(tg.Tensor(np.zeros((2, 3))), np.array([0, 1, 2]))


def test_shape_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=re.escape(
            "matmul: (3, 4) @ (5, 2): inner dimensions 4 and 5 differ")):
        np.ones((3, 4)) @ tg.Tensor(np.ones((5, 2)))
    with pytest.raises(ValueError, match=re.escape("mul: shapes (3,) and (4,) do not broadcast")):
        tg.Tensor(np.ones(3)) * np.ones(4)
    with pytest.raises(ValueError, match=r"^reshape: .*\(2, 3\).*test_ops\.py:\d+"):
        tg.Tensor(np.ones((2, 3))).reshape(4)
    with pytest.raises(ValueError) as info:
        tg.Tensor(np.ones((2, 3))) @ tg.Tensor(np.ones((2, 3)))
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_indexing_scatter_adds_repeated_rows():
    x = tg.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    picked = x[np.array([0, 2, 0])]
    assert np.array_equal(picked.data, [[0, 1], [4, 5], [0, 1]])
    picked.sum().backward()
    assert np.array_equal(x.grad, [[2, 2], [0, 0], [1, 1]])
    y = tg.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    (y[1:, 0] * 3).sum().backward()
    assert np.array_equal(y.grad, [[0, 0], [3, 0], [3, 0]])


def test_max_splits_ties_evenly():
    x = tg.Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    tg.max(x).backward()
    assert np.array_equal(x.grad, [0, 0.5, 0.5])


@pytest.mark.parametrize("shapes", [((4,), (4,)), ((4,), (4, 2)), ((3, 4), (4,)),
                                    ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5))])
def test_matmul_follows_numpy_shapes(shapes):
    rng = np.random.default_rng(2)
    a, b = (rng.normal(size=s) for s in shapes)
    out = tg.matmul(tg.Tensor(a), tg.Tensor(b))
    assert out.shape == np.matmul(a, b).shape
    tg.check_grads(lambda a, b: tg.sum(tg.matmul(a, b) ** 2), a, b)


def test_parameters_may_come_by_position_as_in_numpy():
    x = np.arange(6.0).reshape(2, 3)
    cases = [
        (lambda x: tg.sum(tg.sum(x, 0) ** 2), lambda x: tg.sum(tg.sum(x, axis=0) ** 2)),
        (lambda x: tg.sum(tg.max(x, 1)), lambda x: tg.sum(tg.max(x, axis=1))),
        (lambda x: tg.sum(tg.reshape(x, (3, 2)) ** 2), lambda x: tg.sum(x.reshape(3, 2) ** 2)),
        (lambda x: tg.sum(tg.transpose(x, (1, 0))[0]), lambda x: tg.sum(x.T[0])),
        (lambda x: tg.sum(tg.log_softmax(x, 0) ** 2),
         lambda x: tg.sum(tg.log_softmax(x, axis=0) ** 2)),
        (lambda x: tg.sum(tg.getitem(x, 1) ** 2), lambda x: tg.sum(x[1] ** 2)),
        (lambda x: tg.sum(tg.broadcast_to(x, (4, 2, 3)) ** 2),
         lambda x: tg.sum(tg.broadcast_to(x, shape=(4, 2, 3)) ** 2)),
    ]
    for positional, keyword in cases:
        assert np.array_equal(tg.grad(positional)(x), tg.grad(keyword)(x))
    with pytest.raises(TypeError, match="sum: takes 1 input.*axis, keepdims; got 4 positional"):
        tg.sum(tg.Tensor(x), 0, False, 3)
    with pytest.raises(TypeError, match="parameter 'axis' given twice"):
        tg.sum(tg.Tensor(x), 0, axis=1)


def test_a_builtin_name_cannot_be_taken_silently():
    with pytest.raises(ValueError, match="the name 'add' is taken by tinygraph.ops"):
        tg.primitive(lambda a, b: a + b, name="add")
    assert tg.registry()["add"] is tg.add


def test_power_with_exponent_zero_has_zero_gradient_at_zero():
    x = np.array([0.0, 2.0])
    assert np.array_equal(tg.grad(lambda x: tg.sum(x ** 0.0))(x), [0, 0])
    with np.errstate(all="raise"):
        assert np.array_equal(tg.grad(lambda x: tg.sum(x ** np.array([0.0, 2.0])))(x), [0, 4])


def test_tensor_indices_must_be_integral():
    x = tg.Tensor(np.arange(4.0), requires_grad=True)
    assert np.array_equal(x[tg.Tensor([3, 1])].data, [3.0, 1.0])
    with pytest.raises(IndexError, match="index values must be integers"):
        x[tg.Tensor([0.5])]


def test_an_op_may_take_any_number_of_inputs():
    @tg.primitive(register=False)
    def joined(*parts, axis=0):
        return np.concatenate(parts, axis=axis)

    @joined.defvjp
    def joined_vjp(grad_out, out, *parts, axis=0):
        ends = np.cumsum([np.shape(p)[axis] for p in parts])
        return tuple(grad_out[tuple([slice(None)] * axis + [slice(end - np.shape(p)[axis], end)])]
                     for p, end in zip(parts, ends))

    a, b = np.arange(3.0), np.array([5.0, 6.0])

    def f(a, b):
        return tg.sum(joined(a, b * b, axis=0) ** 3)

    assert joined.arity == VARIADIC
    grads = tg.grad(f, argnums=(0, 1))(a, b)
    assert np.allclose(grads[0], 3 * a**2) and np.allclose(grads[1], 6 * b**5)
    assert np.allclose(tg.hessian(lambda b: f(a, b))(b), np.diag(30 * b**4))  # second order
    step = tg.trace(tg.value_and_grad(f, argnums=(0, 1)))
    for _ in range(2):
        value, (grad_a, grad_b) = step(a, b)
        assert np.allclose(grad_b, 6 * b**5)
        assert np.isclose(value, np.sum(np.concatenate([a, b * b]) ** 3))
