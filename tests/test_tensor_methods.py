"""Tensor methods as ndarray's (ravel flatten squeeze astype min prod var std dot argmax argmin
swapaxes), float(t) and int(t), and iteration over the first axis."""

import numpy as np
import pytest

import tinygraph as tg

RNG = np.random.default_rng(5)
A = RNG.uniform(0.5, 1.5, size=(2, 1, 3)) * np.array([1.0, -1.0, 1.0])


@pytest.mark.parametrize("method, args, kwargs", [
    ("ravel", (), {}),
    ("flatten", (), {}),
    ("squeeze", (), {}),
    ("squeeze", (1,), {}),
    ("squeeze", (), {"axis": -2}),
    ("swapaxes", (0, -1), {}),
    ("min", (), {}),
    ("min", (-1,), {"keepdims": True}),
    ("prod", (), {}),
    ("prod", ((0, 2),), {}),
    ("var", (), {}),
    ("var", (0,), {"ddof": 1, "keepdims": True}),
    ("std", ((0, -1),), {}),
    ("std", (), {"ddof": 1}),
    ("argmax", (), {}),
    ("argmax", (-1,), {}),
    ("argmin", (0,), {"keepdims": True}),
    ("astype", (np.float32,), {}),
    ("astype", ("float64",), {}),
])
def test_methods_match_ndarray(method, args, kwargs):
    out = getattr(tg.Tensor(A), method)(*args, **kwargs)
    expected = getattr(A, method)(*args, **kwargs)
    value = out.data if isinstance(out, tg.Tensor) else out
    assert np.shape(value) == np.shape(expected) and np.asarray(value).dtype == expected.dtype
    assert np.allclose(value, expected, rtol=1e-13)


def test_dot_as_ndarray_dot():
    b = RNG.standard_normal((3, 4))
    m = tg.Tensor(A.reshape(2, 3))
    assert np.allclose(m.dot(b).data, A.reshape(2, 3).dot(b))
    assert np.allclose(m.dot(2.0).data, A.reshape(2, 3) * 2.0)
    v = tg.Tensor(np.arange(3.0))
    assert v.dot(np.ones(3)).shape == () and v.dot(np.ones(3)).item() == 3.0


def test_gradients_flow_through_the_methods():
    w = RNG.standard_normal((3, 2))

    def f(x):
        rows = x.squeeze(1).swapaxes(0, 1)  # (3, 2)
        return (rows.dot(w.T).ravel().sum() + x.flatten().prod() + x.min(axis=2).sum()
                + x.var(axis=0, ddof=1).sum() + x.std() + x.astype("float64").sum())

    tg.check_grads(f, A, order=2)


def test_astype_keeps_the_derivative_for_floats_only():
    t = tg.Tensor(np.array([1.7, -2.2]), requires_grad=True)
    single = t.astype(np.float32)
    assert single.dtype == np.float32 and single.requires_grad
    (single * 2).sum().backward()
    assert t.grad.dtype == np.float64 and np.array_equal(t.grad, [2.0, 2.0])
    for dtype, expected in ((int, [1, -2]), (np.int32, [1, -2]), (bool, [True, True])):
        rounded = t.astype(dtype)
        assert rounded.dtype == np.dtype(dtype) and not rounded.requires_grad
        assert rounded.data.tolist() == expected
    with pytest.raises(TypeError, match="Tensor.astype: tinygraph holds real numbers only"):
        t.astype(np.complex128)


def test_float_and_int_of_one_element_tensors():
    assert float(tg.Tensor(np.array([[2.75]]))) == 2.75
    assert int(tg.Tensor(np.array(-2.75))) == -2  # toward zero, as int(np.float64(-2.75))
    assert isinstance(float(tg.Tensor(np.float32(1.5))), float)
    with pytest.raises(TypeError, match=r"float\(Tensor\): only a one-element Tensor .* \(2,\)"):
        float(tg.Tensor(np.zeros(2)))
    with pytest.raises(TypeError, match=r"int\(Tensor\)"):
        int(tg.Tensor(np.zeros((0,))))


def test_float_and_int_refuse_to_leave_a_traced_graph():
    with pytest.raises(tg.TraceError, match=r"float\(Tensor\) inside a traced function"):
        tg.trace(lambda v: v * float(v[0]))(np.array([1.0, 2.0]))
    with pytest.raises(tg.TraceError, match=r"int\(Tensor\)"):
        tg.trace(lambda v: v * int(v[0]))(np.array([1.0, 2.0]))


def test_float_in_a_rule_has_no_second_derivative():
    @tg.primitive(register=False)
    def cube(x):
        return x ** 3

    cube.defvjp(lambda grad_out, out, x: grad_out * 3 * float(x) ** 2)  # leaves the graph
    assert tg.grad(cube)(2.0) == 12.0
    with pytest.raises(tg.HigherOrderError, match=r"cube: .*float\(Tensor\)"):
        tg.grad(tg.grad(cube))(2.0)


def test_iteration_yields_recorded_rows():
    t = tg.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = list(t)
    assert len(rows) == len(t) == 3
    assert all(row.op.name == "getitem" and row.shape == (2,) for row in rows)
    assert np.array_equal(np.stack([row.data for row in rows]), t.data)
    total = sum(row * weight for weight, row in enumerate(t))
    tg.sum(total).backward()
    assert np.array_equal(t.grad, [[0, 0], [1, 1], [2, 2]])
    scalars = list(tg.Tensor(np.array([4.0, 5.0])))
    assert [s.shape for s in scalars] == [(), ()] and [s.item() for s in scalars] == [4.0, 5.0]
    assert list(tg.Tensor(np.zeros((0, 3)))) == []


def test_iterating_a_0d_tensor_raises_like_numpy():
    with pytest.raises(TypeError, match="iteration over a 0-d Tensor"):
        iter(tg.Tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d Tensor"):
        for _ in tg.Tensor(np.array(1.0)):
            pass


def test_iteration_inside_a_traced_step_replays_with_new_values():
    def loss(v):
        return sum(tg.sum(row) * (k + 1) for k, row in enumerate(v))

    step = tg.trace(tg.value_and_grad(loss))
    for x in (np.ones((2, 3)), np.arange(6.0).reshape(2, 3)):
        value, g = step(x)
        assert value == x[0].sum() + 2 * x[1].sum()
        assert np.array_equal(g, [[1, 1, 1], [2, 2, 2]])


def test_argmax_method_and_python_numbers_inside_grad():
    x = np.array([[0.3, 2.0, -1.0], [4.0, 0.0, 4.0]])

    def f(v):  # outside a trace, argmax and float may read a value (as item() may)
        picked = v[np.arange(2), v.argmax(axis=1)]
        return tg.sum(picked) * float(v[0, 0])

    assert np.allclose(tg.grad(f)(x), [[0, 0.3, 0], [0.3, 0, 0]])
