"""The reverse pass and the transforms: accumulation, shared nodes, depth, dtypes, pytrees."""

import gc
import sys
import weakref

import numpy as np
import pytest

import tinygraph as tg


def test_gradients_accumulate_across_backward_calls():
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert np.array_equal(x.grad, [3 + 2, 3 + 4])
    x.zero_grad()
    assert x.grad is None


def test_x_times_x_and_diamonds_sum_all_consumers():
    x = tg.Tensor(np.array(3.0), requires_grad=True)
    (x * x).backward()
    assert x.grad == 6.0
    # diamond: a feeds b and c, both feed d
    a = tg.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    b, c = tg.exp(a), a * 2
    d = (b * c).sum()
    d.backward()
    assert np.allclose(a.grad, np.exp(a.data) * 2 * a.data + np.exp(a.data) * 2)


def test_shared_subexpression_used_many_times():
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    s = tg.sigmoid(x)
    total = s + s * s + s.sum()
    total.sum().backward()
    sd = s.data
    assert np.allclose(x.grad, (1 + 2 * sd + 2) * sd * (1 - sd))


def test_deep_chain_does_not_recurse():
    depth = 200_000
    assert depth > sys.getrecursionlimit()
    x = tg.Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


def test_float32_stays_float32_through_a_network():
    rng = np.random.default_rng(0)
    x = rng.random((8, 5)).astype(np.float32)
    w = tg.Tensor(rng.normal(size=(5, 3)).astype(np.float32), requires_grad=True)
    b = tg.Tensor(np.zeros(3, np.float32), requires_grad=True)
    loss = tg.softmax_cross_entropy(tg.tanh(x @ w + b) * 2.0 - 1, rng.integers(0, 3, 8))
    assert loss.dtype == np.float32
    loss.backward()
    assert w.grad.dtype == np.float32 and b.grad.dtype == np.float32
    _, grads = tg.value_and_grad(lambda w: (tg.Tensor(x) @ w).sum())(w.data)
    assert grads.dtype == np.float32


def test_broadcasting_is_undone_in_the_pass():
    x = tg.Tensor(np.ones((4, 3)), requires_grad=True)
    b = tg.Tensor(np.ones(3), requires_grad=True)
    c = tg.Tensor(np.ones((4, 1)), requires_grad=True)
    ((x + b) * c).sum().backward()
    assert b.grad.shape == (3,) and np.array_equal(b.grad, [4, 4, 4])
    assert c.grad.shape == (4, 1) and np.array_equal(c.grad, np.full((4, 1), 6.0))


def test_backward_seed_rules():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match=r"output has shape \(3,\); pass grad="):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(2,\), the output \(3,\)"):
        (x * 2).backward(np.ones(2))
    (x * 2).backward(np.array([1.0, 0.0, 2.0]))
    assert np.array_equal(x.grad, [2, 0, 4])
    with pytest.raises(RuntimeError, match="does not depend on any tensor with requires_grad"):
        tg.Tensor(np.ones(1)).backward()


def test_intermediate_gradients_are_freed_unless_retained():
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = tg.exp(x)
    kept = (h * 2).retain_grad()
    out = kept.sum()
    out.backward()
    assert h.grad is None and np.array_equal(kept.grad, [1, 1])
    y = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h2 = tg.exp(y)
    (h2 * 2).sum().backward(retain_grads=True)
    assert np.array_equal(h2.grad, [2, 2])


def test_cotangents_are_dropped_during_the_pass():
    """Once a node's rule has run, the pass holds its cotangent no longer: watch one die."""
    probed = []
    alive_later = []

    @tg.primitive(register=False)
    def probe(x):
        return x * 1.0

    @probe.defvjp
    def probe_vjp(grad_out, out, x):
        probed.append(weakref.ref(grad_out))
        return (grad_out * 1.0,)  # a new array: the pass is grad_out's only holder

    @tg.primitive(register=False)
    def observe(x):
        return x * 1.0

    @observe.defvjp
    def observe_vjp(grad_out, out, x):
        gc.collect()
        alive_later.append(probed[0]() is not None)
        return (grad_out,)

    x = tg.Tensor(np.ones(3), requires_grad=True)
    out = probe(observe(x) * 2.0) * 1.0  # reverse: mul, probe, mul, observe
    out.backward(np.ones(3))
    assert alive_later == [False]
    assert np.array_equal(x.grad, [2, 2, 2])


def test_numpy_array_on_the_left_gives_a_tensor():
    w = tg.Tensor(np.ones((3, 2)), requires_grad=True)
    x = np.ones((4, 3))
    for out in (x @ w, np.ones(2) + w, np.ones(2) * w, np.ones(2) - w, np.ones(2) / w,
                np.full(2, 2.0) ** w, 2.0 ** w, 3 - w, 1 / w):
        assert isinstance(out, tg.Tensor) and out.requires_grad


def test_no_grad_records_nothing():
    x = tg.Tensor(np.ones(2), requires_grad=True)
    with tg.no_grad():
        y = x * 2
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf and z.requires_grad
    assert tg.is_grad_enabled()


def test_grad_and_value_and_grad_on_pytrees():
    params = {"w": np.array([1.0, 2.0]), "layers": [np.array(3.0), (np.array([4.0]),)]}

    def f(p, scale):
        return (tg.sum(p["w"] ** 2) + p["layers"][0] * p["layers"][1][0].sum()) * scale

    value, grads = tg.value_and_grad(f)(params, 2.0)
    assert isinstance(value, np.ndarray) and value.shape == () and value == 2 * (5 + 12)
    assert set(grads) == {"w", "layers"} and isinstance(grads["layers"][1], tuple)
    assert np.array_equal(grads["w"], [4, 8])
    assert grads["layers"][0] == 8 and np.array_equal(grads["layers"][1][0], [6])
    g_params, g_scale = tg.grad(f, argnums=(0, 1))(params, 2.0)
    assert g_scale == 17 and np.array_equal(g_params["w"], [4, 8])


def test_unused_argument_gets_zero_gradient_and_others_pass_unchanged():
    seen = {}

    def f(x, y, label):
        seen["label"] = label
        return tg.sum(x * 2)

    gx, gy = tg.grad(f, argnums=(0, 1))(np.ones(2), np.ones(3), "tag")
    assert np.array_equal(gx, [2, 2]) and np.array_equal(gy, np.zeros(3))
    assert seen["label"] == "tag"


def test_transforms_do_not_touch_tensor_grad():
    w = tg.Tensor(np.ones(2), requires_grad=True)
    g = tg.grad(lambda w: tg.sum(w * w))(w)
    assert np.array_equal(g, [2, 2]) and w.grad is None


def test_transform_gradients_are_owned_arrays():
    gx, gy = tg.grad(lambda x, y: tg.sum(x + y), argnums=(0, 1))(np.ones(3), np.ones(3))
    assert gx is not gy and gx.flags.writeable and gy.flags.writeable
    gx += 1
    assert np.array_equal(gy, [1, 1, 1])


def test_transform_errors():
    with pytest.raises(TypeError, match="must return a one-element Tensor, got float"):
        tg.grad(lambda x: 3.0)(np.ones(2))
    with pytest.raises(ValueError, match=r"one-element Tensor, got shape \(2,\)"):
        tg.grad(lambda x: x * 2)(np.ones(2))
    with pytest.raises(ValueError, match="argnums 3 does not fit 1 argument"):
        tg.grad(lambda x: tg.sum(x), argnums=3)(np.ones(2))
    with pytest.raises(TypeError, match=r"argument 0\['name'\] is a str"):
        tg.grad(lambda p: tg.sum(p["w"]))({"w": np.ones(2), "name": "x"})


def test_one_element_outputs_of_any_shape_are_accepted():
    value, g = tg.value_and_grad(lambda x: (x * 2).reshape(1, 1))(np.array([3.0]))
    assert value.shape == () and value == 6 and np.array_equal(g, [2])


def test_detect_anomaly_in_forward_names_op_and_line():
    x = tg.Tensor(np.array([1.0, -1.0]), requires_grad=True, name="x")
    with tg.detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(FloatingPointError, match=r"NaN first appeared in the forward of log"
                                                     r".*test_autodiff\.py:\d+"):
            tg.log(x)
    with np.errstate(invalid="ignore"):
        assert np.isnan(tg.log(x).data[1])  # outside the context nothing is checked


def test_detect_anomaly_in_backward_names_op_and_node():
    x = tg.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with tg.detect_anomaly(), np.errstate(divide="ignore", invalid="ignore"):
        root = x ** 0.5   # finite forward; d/dx sqrt(x) = inf at 0
        root.name = "root"
        with pytest.raises(FloatingPointError,
                           match=r"inf first appeared in the backward rule of power"):
            root.sum().backward()


def test_user_primitive_works_everywhere():
    @tg.primitive(register=False)
    def cube(x):
        return x ** 3

    @cube.defvjp
    def cube_vjp(grad_out, out, x):
        return (grad_out * 3 * x ** 2,)

    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = cube(x)
    assert y.op is cube and cube.name == "cube"
    y.sum().backward()
    assert np.array_equal(x.grad, [3, 12])
    assert np.array_equal(tg.grad(lambda x: tg.sum(cube(x)))(np.array([2.0])), [12])
    tg.check_grads(lambda x: tg.sum(cube(x)), np.array([0.5, -1.5]))
    assert not isinstance(cube(np.array(2.0)), tg.Tensor)  # arrays in, arrays out


def test_user_primitive_with_a_bad_rule_gets_a_clear_error():
    @tg.primitive(register=False)
    def twice(x):
        return 2 * x

    x = tg.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(NotImplementedError, match="twice: no backward rule"):
        twice(x).sum().backward()
    twice.defvjp(lambda grad_out, out, x: (grad_out, grad_out))
    with pytest.raises(TypeError, match="must return a tuple of 1 cotangent"):
        twice(x).sum().backward()
    twice.defvjp(lambda grad_out, out, x: (np.ones(5),))
    with pytest.raises(ValueError, match=r"twice: the backward rule returned a cotangent of shape "
                                         r"\(5,\) for input 0, which has shape \(3,\)"):
        twice(x).sum().backward()


def test_toposort_and_unbroadcast_helpers():
    x = tg.Tensor(np.ones(2), requires_grad=True)
    y = x * 2
    z = y + x
    order = [id(node) for node in tg.toposort(z)]  # by identity: == is elementwise
    assert order.index(id(x)) < order.index(id(y)) < order.index(id(z))
    assert tg.unbroadcast(np.ones((2, 3, 4)), (3, 1)).tolist() == [[8.0]] * 3


def test_sum_to_shape_plans_the_axes_once_and_matches_unbroadcast_bit_for_bit():
    from tinygraph.autodiff import sum_to_shape

    rng = np.random.default_rng(0)
    pairs = [((5, 3), (3,)), ((5, 3), (1, 3)), ((5, 3), (5, 1)), ((2, 5, 3), (5, 3)),
             ((2, 5, 3), (1, 3)), ((4,), ()), ((7, 1, 3), (1, 3)), ((128, 64), (64,))]
    for _ in range(2):  # the second round uses the planned axes
        for shape, target in pairs:
            for dtype in (np.float32, np.float64):
                x = rng.normal(size=shape).astype(dtype)
                summed = sum_to_shape(x, target)
                expected = tg.unbroadcast.forward(x, target)
                assert summed.shape == target and summed.dtype == dtype
                assert np.array_equal(summed, expected)
    for shape, target in [((5, 3), (4,)), ((5, 3), (2, 3)), ((3,), (2, 3))]:
        with pytest.raises(ValueError, match="cannot be summed down"):
            sum_to_shape(np.zeros(shape), target)


def test_the_reverse_pass_pauses_the_cycle_collector_and_leaves_it_as_it_was():
    """A full collection in the middle of a pass walks every node (time per node grew with the
    graph): the collector is off during the pass, on again after it, even after an error, and
    a pass that starts with it off (nested, or the user's choice) leaves it off."""
    import gc

    seen = []

    @tg.primitive(register=False)
    def probe(x):
        return x

    probe.defvjp(lambda g, out, x: seen.append(gc.isenabled()) or g)

    @tg.primitive(register=False)
    def broken(x):
        return x

    def fail(g, out, x):
        raise RuntimeError("rule failed")

    broken.defvjp(fail)
    assert gc.isenabled()
    x = tg.Tensor(np.ones(3), requires_grad=True)
    tg.sum(probe(x)).backward()
    assert seen == [False] and gc.isenabled()
    with pytest.raises(RuntimeError, match="rule failed"):
        tg.sum(broken(x)).backward()
    assert gc.isenabled()
    gc.disable()
    try:
        tg.grad(lambda t: tg.sum(probe(t)))(np.ones(2))
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert tg.grad(tg.grad(lambda t: tg.sum(probe(t) ** 3)))(np.array(2.0)) == 12.0
    assert gc.isenabled()
