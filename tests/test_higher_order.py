"""Derivatives of derivatives, the new transforms, and every combination of transforms.

The reverse pass is recorded when it must be (inside another transform, a trace, or with
``create_graph=True``): these tests hold its numbers against finite differences, closed forms,
and the eager first-order pass.
"""

import numpy as np
import pytest

import tinygraph as tg
from models import network
from models.init import init_params
from tinygraph.autodiff import reverse_pass
from tinygraph.sampling import RandomDraw

REGISTERED = sorted(tg.registry())


def float_positions(args):
    return [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


# ---------------------------------------------------------------------------------------------
# Every op, second order (a registry walk: a new op is covered without being listed)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", REGISTERED)
def test_second_derivative_of_every_op_matches_differences_of_its_gradient(name):
    op = tg.registry()[name]
    for seed in range(6):
        args, params = op.sample(RandomDraw(seed))
        report = tg.check_op(op, args, params, seed=seed, order=2)
        assert {check.order for check in report.checks} == {1, 2}


@pytest.mark.parametrize("name", REGISTERED)
def test_recorded_pass_gives_the_array_pass_bits(name):
    """One rule body, two modes: on Tensors it computes exactly what it computes on arrays."""
    op = tg.registry()[name]
    for seed in range(4):
        args, params = op.sample(RandomDraw(seed))
        positions = float_positions(args)
        if not positions:
            continue
        tensors = [tg.Tensor(a, requires_grad=i in positions) if i in positions else a
                   for i, a in enumerate(args)]
        out = op(*tensors, **params)
        if not out.requires_grad:
            continue
        seed_array = np.random.default_rng(seed).standard_normal(out.shape)
        plain = reverse_pass([out], [seed_array])
        recorded = reverse_pass([out], [tg.Tensor(seed_array)], create_graph=True)
        assert plain.keys() == recorded.keys()
        for key, (_, cotangent) in plain.items():
            again = recorded[key][1]
            assert isinstance(again, tg.Tensor) and again.dtype == cotangent.dtype
            assert np.array_equal(again.data, cotangent)


def test_third_derivatives_of_tanh_and_sigmoid_match_closed_forms():
    x = np.linspace(-3, 3, 13)
    d3 = tg.grad(tg.grad(tg.grad(lambda v: tg.tanh(v))))
    t = np.tanh(x)
    closed_tanh = -2 * (1 - t**2) * (1 - 3 * t**2)  # (tanh)''' = -2 sech^2 (1 - 3 tanh^2)
    s = 1 / (1 + np.exp(-x))
    closed_sigmoid = s * (1 - s) * (1 - 6 * s + 6 * s**2)  # s''' = s(1-s)(1-6s+6s^2)
    d3s = tg.grad(tg.grad(tg.grad(lambda v: tg.sigmoid(v))))
    for i, value in enumerate(x):
        assert np.isclose(d3(value), closed_tanh[i], rtol=1e-12, atol=1e-12)
        assert np.isclose(d3s(value), closed_sigmoid[i], rtol=1e-12, atol=1e-12)
    # and the fourth, against differences of the third
    d4 = tg.grad(d3)
    h = 1e-5
    assert np.isclose(d4(0.4), (d3(0.4 + h) - d3(0.4 - h)) / (2 * h), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Hessians, hvp, jvp, vjp, jacobian
# ---------------------------------------------------------------------------------------------

def small_mlp():
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(4, 3)) * 0.5, "b1": rng.normal(size=3) * 0.1,
              "W2": rng.normal(size=(3, 2)) * 0.5, "b2": rng.normal(size=2) * 0.1}
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 2, 5)
    return params, x, y


def mlp_loss_of_flat(flat, shapes, x, y, activation="tanh"):
    params, start = {}, 0
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        params[key] = tg.reshape(flat[start:start + size], shape)
        start += size
    return network.loss(params, x, y, activation)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_hessian_of_a_small_mlp_is_symmetric_and_matches_differences(activation):
    params, x, y = small_mlp()
    shapes = {k: v.shape for k, v in params.items()}
    flat = np.concatenate([v.ravel() for v in params.values()])

    def loss(v):
        return mlp_loss_of_flat(v, shapes, x, y, activation)

    hessian = tg.hessian(loss)(flat)
    assert hessian.shape == flat.shape * 2
    assert np.allclose(hessian, hessian.T, atol=1e-12)
    gradient = tg.grad(loss)
    eps = 1e-6
    differences = np.stack([(gradient(flat + eps * e) - gradient(flat - eps * e)) / (2 * eps)
                            for e in np.eye(flat.size)], axis=1)
    assert np.allclose(hessian, differences, atol=1e-7, rtol=1e-5)


def test_hvp_equals_hessian_times_v_over_pytrees():
    params, x, y = small_mlp()
    rng = np.random.default_rng(1)
    v = {k: rng.normal(size=p.shape) for k, p in params.items()}
    (product,) = tg.hvp(lambda p: network.loss(p, x, y, "tanh"), (params,), (v,))
    shapes = {k: p.shape for k, p in params.items()}
    flat = np.concatenate([p.ravel() for p in params.values()])
    hessian = tg.hessian(lambda f: mlp_loss_of_flat(f, shapes, x, y))(flat)
    expected = hessian @ np.concatenate([v[k].ravel() for k in params])
    got = np.concatenate([product[k].ravel() for k in params])
    assert np.allclose(got, expected, atol=1e-12)
    assert set(product) == set(params) and all(product[k].shape == params[k].shape
                                               for k in params)


def test_hessian_shape_is_input_shape_twice():
    x = np.arange(6.0).reshape(2, 3) / 10
    h = tg.hessian(lambda a: tg.sum(tg.exp(a) * a))(x)
    assert h.shape == (2, 3, 2, 3)
    diagonal = (np.exp(x) * (x + 2)).ravel()  # d2/dx2 (x e^x) = (x + 2) e^x, no cross terms
    assert np.allclose(h.reshape(6, 6), np.diag(diagonal))


def test_jvp_matches_differences_and_vjp():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=4)

    def f(a, b):
        return {"y": tg.tanh(a @ b) * 2, "z": tg.sum(a * a, axis=0) + b}

    va, vb = rng.normal(size=a.shape), rng.normal(size=b.shape)
    out, tangent = tg.jvp(f, (a, b), (va, vb))
    assert set(out) == {"y", "z"} and isinstance(out["y"], np.ndarray)
    eps = 1e-6
    plus, minus = f(tg.Tensor(a + eps * va), b + eps * vb), f(tg.Tensor(a - eps * va),
                                                             b - eps * vb)
    for key in ("y", "z"):
        numerical = (plus[key].data - minus[key].data) / (2 * eps)
        assert np.allclose(tangent[key], numerical, atol=1e-8)
    # <u, J v> == <J^T u, v>
    u = {"y": rng.normal(size=3), "z": rng.normal(size=4)}
    _, vjp_fn = tg.vjp(f, a, b)
    pulled_a, pulled_b = vjp_fn(u)
    left = sum(np.sum(u[k] * tangent[k]) for k in u)
    right = np.sum(pulled_a * va) + np.sum(pulled_b * vb)
    assert np.isclose(left, right, rtol=1e-12)


def test_vjp_fn_can_be_called_again_and_checks_its_cotangent():
    out, vjp_fn = tg.vjp(lambda x: x * x, np.array([1.0, 2.0]))
    assert np.array_equal(out, [1, 4])
    assert np.array_equal(vjp_fn(np.ones(2))[0], [2, 4])
    assert np.array_equal(vjp_fn(np.array([1.0, 0.0]))[0], [2, 0])
    with pytest.raises(ValueError, match=r"cotangent has shape \(3,\), the output \(2,\)"):
        vjp_fn(np.ones(3))


def test_jacobian_of_a_vector_function_and_over_argnums():
    x = np.array([1.0, 2.0, 3.0])
    w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    jac = tg.jacobian(lambda v: tg.sigmoid(v @ w))(x)
    s = 1 / (1 + np.exp(-(x @ w)))
    assert np.allclose(jac, (s * (1 - s))[:, None] * w.T)
    jx, jw = tg.jacobian(lambda v, m: v @ m, argnums=(0, 1))(x, w)
    assert jx.shape == (2, 3) and jw.shape == (2, 3, 2)
    assert np.array_equal(jx, w.T)
    assert np.array_equal(jw[1, :, 1], x) and not jw[1, :, 0].any()


def test_newton_step_on_a_quadratic_lands_on_the_minimum():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(4, 4))
    a = m @ m.T + 4 * np.eye(4)  # positive definite
    b = rng.normal(size=4)

    def f(x):
        return 0.5 * tg.sum(x * (a @ x)) - tg.sum(b * x)

    x = np.zeros(4)
    x = x - np.linalg.solve(tg.hessian(f)(x), tg.grad(f)(x))
    assert np.allclose(x, np.linalg.solve(a, b), atol=1e-12)
    assert np.allclose(tg.grad(f)(x), 0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Nesting and composition: every combination gives the eager numbers or refuses clearly
# ---------------------------------------------------------------------------------------------

def test_nested_grad_forms():
    def f(x):
        return tg.sum(x**3 * tg.exp(x))

    x = np.array([0.3, -0.7])
    first = 3 * x**2 * np.exp(x) + x**3 * np.exp(x)
    second = (6 * x + 6 * x**2 + x**3) * np.exp(x)
    assert np.allclose(tg.grad(f)(x), first)
    assert np.allclose(tg.grad(lambda v: tg.grad(f)(v).sum())(x), second)
    value, g = tg.value_and_grad(lambda v: tg.value_and_grad(f)(v)[1].sum())(x)
    assert np.isclose(value, first.sum()) and np.allclose(g, second)
    # grad of value_and_grad's value: the value is joined to the outer graph too
    assert np.allclose(tg.grad(lambda v: tg.value_and_grad(f)(v)[0])(x), first)


def test_inner_transform_closing_over_an_outer_variable():
    # d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2x: the inner derivative is joined to x,
    # while the inner variable y (here given the value x) is a distinct variable.
    assert np.isclose(tg.grad(lambda x: x * tg.grad(lambda y: x * y)(x))(3.0), 6.0)
    # d/dx grad_y (x + y) = d/dx 1 = 0: no confusion of the two variables
    assert tg.grad(lambda x: tg.grad(lambda y: x + y)(x))(2.0) == 0


def test_create_graph_matches_grad_of_grad():
    def f(x):
        return tg.sum(tg.tanh(x) * tg.sigmoid(x) * x)

    data = np.array([0.4, -1.2, 2.0])
    x = tg.Tensor(data, requires_grad=True)
    f(x).backward(create_graph=True)
    first = x.grad
    assert isinstance(first, tg.Tensor) and first.requires_grad
    assert np.allclose(first.data, tg.grad(f)(data))
    x.zero_grad()
    tg.sum(first).backward()  # double backward, PyTorch style
    assert np.allclose(x.grad, tg.grad(lambda v: tg.sum(tg.grad(f)(v)))(data), atol=1e-14)


def test_second_backward_accumulates_into_a_graph_grad():
    x = tg.Tensor(np.array([2.0]), requires_grad=True)
    tg.sum(x**3).backward(create_graph=True)  # x.grad = 3x^2 = 12, with a graph
    tg.sum(x.grad).backward()  # adds 6x = 12
    assert np.allclose(x.grad.data if isinstance(x.grad, tg.Tensor) else x.grad, [24.0])


def test_backward_inside_grad_is_recorded():
    def f(x):
        w = tg.Tensor(np.array([1.5, -0.5]), requires_grad=True)
        tg.sum(tg.tanh(w * x)).backward()  # inside a transform: recorded, joined to x
        return tg.sum(w.grad * w.grad)

    x = np.array([0.3, 0.8])
    w = np.array([1.5, -0.5])

    def expected(v):
        g = v * (1 - np.tanh(w * v) ** 2)
        return np.sum(g * g)

    eps = 1e-6
    numerical = [(expected(x + eps * e) - expected(x - eps * e)) / (2 * eps) for e in np.eye(2)]
    assert np.allclose(tg.grad(f)(x), numerical, atol=1e-8)


def test_the_issues_examples():
    inner = tg.trace(lambda a: tg.sum(a * a))
    assert np.array_equal(tg.grad(lambda a: inner(a) + tg.sum(a))(np.array([1.0, 2.0])), [3, 5])
    f = tg.trace(lambda a: a * 3.0)
    g = tg.trace(lambda a: f(a) * a)
    assert np.array_equal(g(np.array([1.0])), [3]) and np.array_equal(g(np.array([2.0])), [12])


def mnist_case(dtype=np.float64):
    params = init_params((784, 16, 10), "xavier", seed=4, dtype=dtype)
    rng = np.random.default_rng(5)
    return params, rng.random((8, 784)).astype(dtype), rng.integers(0, 10, 8)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_composition_matrix_on_the_mnist_network(activation):
    params, x, y = mnist_case()

    def loss(p, xb, yb):
        return network.loss(p, xb, yb, activation)

    value, grads = tg.value_and_grad(loss)(params, x, y)

    def same(got, want=grads):
        return all(np.allclose(got[k], want[k], rtol=1e-12, atol=1e-15) for k in want)

    # trace(grad(f)) and trace of a step calling value_and_grad inside: bitwise as eager
    traced = tg.trace(tg.value_and_grad(loss))
    for _ in range(2):
        traced_value, traced_grads = traced(params, x, y)
        assert traced_value == value and all(np.array_equal(traced_grads[k], grads[k])
                                             for k in grads)

    def sgd_step(p, xb, yb):
        step_value, step_grads = tg.value_and_grad(loss)(p, xb, yb)
        return step_value, {k: p[k] - 0.1 * step_grads[k] for k in p}

    step = tg.trace(sgd_step)
    for _ in range(2):
        step_value, updated = step(params, x, y)
        assert step_value == value
        assert all(np.array_equal(updated[k], params[k] - 0.1 * grads[k]) for k in params)
    # grad(trace(f)), trace(trace(f)), grad(grad(trace(f))) via an hvp
    traced_loss = tg.trace(loss)
    assert same(tg.grad(traced_loss)(params, x, y))
    assert same(tg.trace(tg.grad(lambda p, xb, yb: traced_loss(p, xb, yb)))(params, x, y))
    assert np.isclose(tg.trace(lambda p, xb, yb: traced_loss(p, xb, yb))(params, x, y), value)
    rng = np.random.default_rng(6)
    v = {k: rng.normal(size=p.shape) for k, p in params.items()}
    (eager_hvp,) = tg.hvp(lambda p: loss(p, x, y), (params,), (v,))
    (traced_hvp,) = tg.hvp(lambda p: traced_loss(p, x, y), (params,), (v,))
    assert same(traced_hvp, eager_hvp)
    (hvp_of_trace_of_grad,) = tg.hvp(lambda p: tg.trace(lambda q: loss(q, x, y))(p),
                                     (params,), (v,))
    assert same(hvp_of_trace_of_grad, eager_hvp)
    # a traced hvp (trace of grad of grad) replays with new values
    traced_hvp_fn = tg.trace(lambda p, d: tg.hvp(lambda q: loss(q, x, y), (p,), (d,))[0])
    assert same(traced_hvp_fn(params, v), eager_hvp)
    v2 = {k: 2 * a for k, a in v.items()}
    assert same(traced_hvp_fn(params, v2), {k: 2 * a for k, a in eager_hvp.items()})


@pytest.mark.parametrize("name", REGISTERED)
def test_composition_matrix_on_every_op(name):
    op = tg.registry()[name]
    args, params = op.sample(RandomDraw(11))
    positions = float_positions(args)
    if not positions:
        pytest.skip(f"{name} has no floating input to differentiate")  # none today
    weights = np.random.default_rng(0).standard_normal(np.shape(op(*args, **params)))

    def projected(*arrays):
        return tg.sum(op(*arrays, **params) * weights)

    argnums = tuple(positions)
    eager = tg.grad(projected, argnums)(*args)
    traced = tg.trace(projected)
    for got in (tg.trace(tg.grad(projected, argnums))(*args),
                tg.grad(traced, argnums)(*args),
                tg.trace(tg.grad(lambda *a: traced(*a), argnums))(*args)):
        for want, value in zip(eager, got):
            assert np.allclose(value, want, rtol=1e-12, atol=1e-14)
    # second order through a trace: the hvp of the trace equals the eager hvp
    rng = np.random.default_rng(1)
    direction = tuple(rng.normal(size=np.shape(args[i])) for i in positions)

    def on_floats(fn):
        def wrapped(*floats):
            full = list(args)
            for i, value in zip(positions, floats):
                full[i] = value
            return fn(*full)
        return wrapped

    floats = tuple(args[i] for i in positions)
    want = tg.hvp(on_floats(projected), floats, direction)
    got = tg.hvp(on_floats(traced), floats, direction)
    for a, b in zip(want, got):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_trace_refuses_a_closure_over_an_enclosing_variable():
    def outer(w):
        inner = tg.trace(lambda x: tg.sum(x * w))  # w is the outer variable, not an argument
        return inner(np.ones(2))

    with pytest.raises(tg.TraceError, match="Tensor of an enclosing transform"):
        tg.grad(outer)(np.array([1.0, 2.0]))


def test_no_grad_inside_a_trace_stays_a_constant_on_replay():
    def f(x):
        with tg.no_grad():
            scale = tg.sum(x)  # recorded, replayed, but not differentiated
        return tg.sum(x * scale)

    x = np.array([1.0, 2.0])
    traced = tg.trace(tg.grad(f))
    assert np.array_equal(traced(x), [3, 3])
    assert np.array_equal(traced(2 * x), [6, 6])  # recomputed, not frozen
    assert np.array_equal(tg.grad(tg.trace(f))(2 * x), [6, 6])


def test_detach_inside_a_trace_is_replayed():
    traced = tg.trace(tg.grad(lambda x: tg.sum(x * x.detach())))
    assert np.array_equal(traced(np.array([1.0, 2.0])), [1, 2])
    assert np.array_equal(traced(np.array([3.0, 5.0])), [3, 5])


# ---------------------------------------------------------------------------------------------
# User primitives
# ---------------------------------------------------------------------------------------------

def test_user_rule_in_tinygraph_ops_gets_every_order():
    @tg.primitive(register=False)
    def cube(x):
        return x**3

    cube.defvjp(lambda grad_out, out, x: grad_out * 3 * x**2)
    d3 = tg.grad(tg.grad(tg.grad(lambda v: cube(v))))
    assert d3(2.0) == 6.0
    tg.check_grads(lambda v: tg.sum(cube(v)), np.array([0.5, -1.5]), order=3)


def test_raw_numpy_rule_works_at_first_order_and_refuses_second_order():
    @tg.primitive(register=False)
    def wave(x):
        return np.sin(x)

    wave.defvjp(lambda grad_out, out, x: grad_out * np.cos(x))  # raw NumPy on the input
    x = np.array([0.1, 0.7])
    assert np.allclose(tg.grad(lambda v: tg.sum(wave(v)))(x), np.cos(x))
    # first order inside a traced step: the rule is recorded as one opaque node
    step = tg.trace(tg.value_and_grad(lambda v: tg.sum(wave(v) * v)))
    for values in (x, 2 * x):
        value, g = step(values)
        assert np.allclose(g, np.cos(values) * values + np.sin(values))
    with pytest.raises(tg.HigherOrderError,
                       match=r"wave: its backward rule runs on NumPy arrays only.*"
                             r"Write the rule with tinygraph ops"):
        tg.grad(lambda v: tg.sum(tg.grad(lambda u: tg.sum(wave(u)))(v)))(x)
    t = tg.Tensor(x, requires_grad=True)
    tg.sum(wave(t)).backward(create_graph=True)
    with pytest.raises(tg.HigherOrderError, match="wave"):
        tg.sum(t.grad).backward()


def test_rule_reading_a_tensor_as_an_array_is_refused_not_frozen():
    @tg.primitive(register=False)
    def square(x):
        return x * x

    square.defvjp(lambda grad_out, out, x: grad_out * 2 * np.asarray(x))
    with pytest.raises(tg.HigherOrderError, match="square"):
        tg.hessian(lambda v: tg.sum(square(v)))(np.array([1.0, 2.0]))


def test_non_differentiable_masks_and_where():
    x = tg.Tensor(np.array([-1.0, 0.5, 2.0]), requires_grad=True)
    mask = x > 0
    assert isinstance(mask, tg.Tensor) and mask.dtype == bool and not mask.requires_grad
    y = tg.where(mask, x * x, -x)
    tg.sum(y).backward()
    assert np.array_equal(x.grad, [-1.0, 1.0, 4.0])
    assert np.array_equal(tg.grad(lambda v: tg.sum(tg.stop_gradient(v) * v))(np.array([3.0])),
                          [3.0])


def test_jacobian_and_hessian_nested_inside_other_transforms():
    def f(x):
        return tg.sum(tg.tanh(x) * x**2)

    x = np.array([0.3, -0.6, 1.1])

    def trace_of_hessian(v):
        return tg.sum(tg.hessian(f)(v))

    # d/dx sum(H(x)): the Hessian is recorded (its rows stacked as ops), then differentiated
    got = tg.grad(trace_of_hessian)(x)
    eps = 1e-5
    numerical = [(np.sum(tg.hessian(f)(x + eps * e)) - np.sum(tg.hessian(f)(x - eps * e)))
                 / (2 * eps) for e in np.eye(3)]
    assert np.allclose(got, numerical, atol=1e-7)
    traced = tg.trace(lambda v: tg.hessian(f)(v))
    assert np.allclose(traced(x), tg.hessian(f)(x), atol=1e-14)
    assert np.allclose(traced(2 * x), tg.hessian(f)(2 * x), atol=1e-14)
    jac_inside = tg.grad(lambda v: tg.sum(tg.jacobian(lambda u: tg.sigmoid(u) * u)(v)))(x)
    s = 1 / (1 + np.exp(-x))
    # J is diagonal with s + x s (1 - s); its derivative along x_i
    d = s * (1 - s)
    assert np.allclose(jac_inside, d + d + x * d * (1 - 2 * s), atol=1e-12)


def test_transforms_give_clear_errors():
    with pytest.raises(ValueError, match=r"tangents\[0\] has shape \(3,\), the primals \(2,\)"):
        tg.jvp(lambda x: x * 2, (np.ones(2),), (np.ones(3),))
    with pytest.raises(ValueError, match="tangents must have the structure of the primals"):
        tg.hvp(lambda x: tg.sum(x), (np.ones(2),), (np.ones(2), np.ones(2)))
    with pytest.raises(TypeError, match="jacobian.*must return Tensors, got float"):
        tg.jacobian(lambda x: 3.0)(np.ones(2))


# ---------------------------------------------------------------------------------------------
# Found by review: each of these once gave a wrong number or a crash
# ---------------------------------------------------------------------------------------------

def test_no_grad_around_a_transform_gives_eager_numbers_in_traces():
    def f(x):
        return tg.sum(tg.tanh(x) ** 2)

    def h(x):
        with tg.no_grad():
            g = tg.grad(f)(x)  # a constant to the outer derivative
        return tg.sum(g * x)

    x = np.array([0.3, -0.8])
    eager = tg.grad(h)(x)
    assert np.allclose(eager, tg.grad(f)(x))
    assert np.array_equal(tg.trace(tg.grad(h))(x), eager)
    assert np.array_equal(tg.grad(tg.trace(h))(x), eager)


def test_backward_on_a_nested_transforms_own_argument_fills_its_grad():
    def f(x):
        tg.sum(x * x * x).backward()
        return tg.sum(x.grad)  # sum(3 x^2): its gradient is 6 x

    x = np.array([0.3, -0.8])
    assert np.allclose(tg.grad(f)(x), 6 * x)
    assert np.allclose(tg.trace(tg.grad(f))(x), 6 * x)
    assert np.allclose(tg.hessian(f)(x), np.diag([6.0, 6.0]))


def test_a_rule_failing_on_tensors_once_is_not_marked_raw_for_ever():
    @tg.primitive(register=False)
    def square(x):
        return x * x

    @square.defvjp
    def square_vjp(grad_out, out, x):
        return (grad_out * 2 * float(x),) if np.ndim(x) == 0 else (grad_out * 2 * x,)

    hessian = tg.hessian(lambda v: tg.sum(square(v)))
    assert np.array_equal(hessian(np.ones(2)), 2 * np.eye(2))
    with pytest.raises(tg.HigherOrderError, match="square"):
        hessian(np.array(1.0))
    assert np.array_equal(hessian(np.ones(2)), 2 * np.eye(2))  # works again


def test_argument_mistakes_are_refused():
    with pytest.raises(ValueError, match=r"argnums \(0, 0\) names an argument twice"):
        tg.grad(lambda a, b: tg.sum(a * b), argnums=(0, 0))(np.ones(2), np.ones(2))
    assert np.array_equal(tg.grad(lambda a: tg.sum(a * a), argnums=np.int64(0))(np.ones(2)),
                          [2, 2])
    with pytest.raises(TypeError, match="jvp.*primals must be a tuple or list"):
        tg.jvp(lambda a, b: a * b, np.array([2.0, 3.0]), np.array([1.0, 0.0]))
    with pytest.raises(TypeError, match="hvp.*primals must be a tuple or list"):
        tg.hvp(lambda a: tg.sum(a), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"^grad\(<lambda>\): the function must return"):
        tg.grad(lambda x: x * 2)(np.ones(2))
    with pytest.raises(ValueError, match="order must be an integer"):
        tg.check_grads(lambda x: tg.sum(x), np.ones(2), order=True)


def test_gradients_handed_out_are_never_shared():
    a, b = (tg.Tensor(np.ones(2), requires_grad=True) for _ in range(2))
    c = tg.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    tg.sum((a + b) * c).backward(create_graph=True)
    assert not np.shares_memory(a.grad.data, b.grad.data)
    seed = np.ones(2)
    t = tg.Tensor(np.ones(2), requires_grad=True)
    (t * 1.0).backward(grad=seed, create_graph=True)
    assert not np.shares_memory(t.grad.data, seed)
    _, vjp_fn = tg.vjp(lambda x: (x + 1.0).reshape(2, 1), np.ones(2))
    u = np.ones((2, 1))
    (pulled,) = vjp_fn(u)
    assert not np.shares_memory(pulled, u)
    assert tg.Tensor(tg.Tensor(np.ones(2)) > 0).dtype == np.bool_  # a mask stays a mask
