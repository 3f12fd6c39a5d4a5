"""Issue 10, eager memory: a reverse pass frees the large intermediate arrays that no backward
rule reads (``Primitive.rule_reads``) and that nothing but the graph holds."""

import copy
import pickle
import sys
import weakref

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import autodiff
from tinygraph.tensor import Released

DECLARED = sorted(name for name, op in tg.registry().items() if op.reads is not None)


def test_the_ops_of_a_network_declare_what_their_rules_read():
    assert {"add", "sub", "mul", "neg", "matmul", "sigmoid", "tanh", "relu", "exp", "sum",
            "reshape", "transpose", "unbroadcast", "broadcast_to",
            "softmax_cross_entropy"} <= set(DECLARED)


def _stand_ins(op, out, args):
    """out and the arguments, those the rule does not read replaced by Released stand-ins."""
    names = ("out", *op.input_names)
    values = (out, *args)
    return [Released(v) if name not in op.reads and isinstance(v, np.ndarray) else v
            for name, v in zip(names, values)]


@pytest.mark.parametrize("name", DECLARED)
def test_every_declaration_holds_on_the_ops_samples(name):
    """A rule given stand-ins for the arguments it declares unread gives the same cotangents,
    bit for bit, on arrays (the pass that frees) and recorded on Tensors (a later pass over
    the same graph). A rule that reads one raises: the declaration is wrong."""
    op = tg.registry()[name]
    for seed in range(4):
        args, params = op.sample(tg.RandomDraw(seed))
        out = op.forward(*args, **params)
        rng = np.random.default_rng(seed)
        grad_out = rng.normal(size=np.shape(out)).astype(np.result_type(out))
        needed = [isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in args]
        expected = op.cotangents(grad_out, out, list(args), params, needed)
        stand_out, *stand_args = _stand_ins(op, out, args)
        got = op.cotangents(grad_out, stand_out, stand_args, params, needed)
        for e, g in zip(expected, got):
            assert (e is None) == (g is None)
            if e is not None:
                assert np.array_equal(np.asarray(e), np.asarray(g), equal_nan=True)
        # Recorded: Tensors whose data are the stand-ins.
        tensors = [tg.Tensor.node(s, requires_grad=need) if isinstance(a, np.ndarray) else a
                   for s, a, need in zip(stand_args, args, needed)]
        out_tensor = tg.Tensor.node(stand_out, True, op, tuple(tensors), params)
        recorded = op.graph_cotangents(tg.Tensor.node(grad_out), out_tensor, tuple(tensors),
                                       params, needed)
        for e, g in zip(expected, recorded):
            if e is not None and g is not None:
                assert np.array_equal(np.asarray(e), np.asarray(g.data), equal_nan=True)


def test_a_declaration_names_the_rules_arguments():
    with pytest.raises(ValueError, match=r"add.rule_reads: 'c' is not one of the rule's "
                                         r"arguments \(a, b, out\)"):
        tg.add.rule_reads("c")
    with pytest.raises(RuntimeError, match="its values are gone"):
        np.asarray(Released(np.zeros(3)))


def _mlp(rows=600, dtype=np.float64):
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(30, 500)).astype(dtype) * 0.1,
              "b1": np.zeros(500, dtype), "W2": rng.normal(size=(500, 10)).astype(dtype) * 0.1,
              "b2": np.zeros(10, dtype)}
    x = rng.random((rows, 30)).astype(dtype)
    y = rng.integers(0, 10, rows)
    return params, x, y


def loss(p, x, y):
    h = tg.sigmoid(x @ p["W1"] + p["b1"])  # (600, 500) float64: 2.4 MB per array
    return tg.softmax_cross_entropy(h @ p["W2"] + p["b2"], y)


def test_value_and_grad_frees_the_layer_arrays_and_gets_the_same_bits(monkeypatch):
    params, x, y = _mlp()
    freed = []
    release = autodiff.release_unread
    monkeypatch.setattr(autodiff, "release_unread",
                        lambda order, roots: freed.append(release(order, roots)) or freed[-1])
    value, grads = tg.value_and_grad(loss)(params, x, y)
    assert freed == [2]  # x @ W1 and (x @ W1) + b1: no rule reads them
    monkeypatch.setattr(autodiff, "release_unread", lambda order, roots: 0)
    value0, grads0 = tg.value_and_grad(loss)(params, x, y)
    assert np.array_equal(value, value0)
    for k in grads:
        assert np.array_equal(grads[k], grads0[k])


def test_backward_frees_only_what_nobody_holds():
    params, x, y = _mlp()
    tensors = {k: tg.Tensor(v, requires_grad=True) for k, v in params.items()}
    kept = []
    pre = x @ tensors["W1"]              # held by this function: never freed
    h = tg.sigmoid(pre + tensors["b1"])  # the sum: nobody holds it
    kept.append(h @ tensors["W2"])       # held in a list
    value = tg.softmax_cross_entropy(kept[0] + tensors["b2"], y)
    value.backward()
    assert type(pre.data) is np.ndarray and type(kept[0].data) is np.ndarray
    summed = h._inputs[0]
    assert type(summed.data) is Released and "released" in repr(summed)
    assert summed.shape == (600, 500) and summed.dtype == np.float64
    # The graph can be walked again: a second pass, and a recorded one, need none of it.
    first = tensors["W1"].grad.copy()
    value.backward()
    assert np.allclose(tensors["W1"].grad, 2 * first)
    for t in tensors.values():
        t.zero_grad()
    value.backward(create_graph=True)
    assert np.allclose(tensors["W1"].grad.data, first)
    # Drawing it with values names the freed array instead of failing.
    from tinygraph.viz import _tensor_label

    label, _ = _tensor_label(summed, "add", show_grads=False, show_values=True,
                             value_limit=10**6)
    assert "freed by a reverse pass" in label


def test_nothing_is_freed_under_detect_anomaly_or_for_small_arrays():
    params, x, y = _mlp(rows=8)  # arrays of 32 KB: not worth freeing
    tensors = {k: tg.Tensor(v, requires_grad=True) for k, v in params.items()}
    value = loss(tensors, x, y)
    value.backward()
    assert not _released_in(value)
    params, x, y = _mlp()
    tensors = {k: tg.Tensor(v, requires_grad=True) for k, v in params.items()}
    value = loss(tensors, x, y)
    with tg.detect_anomaly():
        value.backward()
    assert not _released_in(value)
    value.backward()
    assert _released_in(value) == 2


def _released_in(root):
    return sum(type(node.data) is Released for node in autodiff.toposort(root, every=True))


def _pre_held_by(hold):
    """Run a backward pass in which the user holds ``x @ W1`` through ``hold(tensor)``; return
    that tensor (its data must survive) and the root."""
    params, x, y = _mlp()
    tensors = {k: tg.Tensor(v, requires_grad=True) for k, v in params.items()}
    pre = x @ tensors["W1"]
    hold(pre)
    value = loss_of_pre(pre, tensors, y)
    del pre
    value.backward()
    return value


def loss_of_pre(pre, p, y):
    h = tg.sigmoid(pre + p["b1"])
    return tg.softmax_cross_entropy(h @ p["W2"] + p["b2"], y)


def _the_matmul(root):
    (node,) = [n for n in autodiff.toposort(root, every=True)
               if n.op is tg.matmul and n.shape == (600, 500)]
    return node


def test_a_node_held_by_a_weak_reference_or_a_name_is_not_freed():
    held = []
    root = _pre_held_by(lambda t: held.append(weakref.ref(t)))
    assert type(held[0]().data) is np.ndarray
    root = _pre_held_by(lambda t: setattr(t, "name", "pre"))
    assert type(_the_matmul(root).data) is np.ndarray
    root = _pre_held_by(lambda t: None)  # the control: nobody holds it
    assert type(_the_matmul(root).data) is Released


def test_two_consumers_sharing_one_inputs_tuple_count_once():
    """copy.copy(tensor) shares the inputs tuple: counting it twice hid a user's reference
    (found by review)."""
    params, x, y = _mlp()
    tensors = {k: tg.Tensor(v, requires_grad=True) for k, v in params.items()}
    pre = x @ tensors["W1"]  # held here
    summed = pre + tensors["b1"]
    twin = copy.copy(summed)
    value = tg.sum(tg.sigmoid(summed)) + tg.sum(tg.sigmoid(twin))
    del summed, twin
    value.backward()
    assert type(pre.data) is np.ndarray and np.isfinite(pre.data.sum())


def test_nothing_is_freed_while_a_debugger_or_profiler_runs():
    """A trace function may hold frames (pdb reads f_locals): references cannot be counted."""
    def tracer(frame, event, arg):
        frame.f_locals  # noqa: B018 - what debuggers do
        return tracer

    sys.settrace(tracer)
    try:
        root = _pre_held_by(lambda t: None)
    finally:
        sys.settrace(None)
    assert type(_the_matmul(root).data) is np.ndarray


def test_retain_grads_passes_free_nothing():
    params, x, y = _mlp()
    tensors = {k: tg.Tensor(v, requires_grad=True) for k, v in params.items()}
    value = loss(tensors, x, y)
    value.backward(retain_grads=True)  # for drawing: values and gradients stay
    assert not _released_in(value)


def test_every_way_to_a_freed_array_says_its_values_are_gone():
    root = _pre_held_by(lambda t: None)
    node = _the_matmul(root)
    for use in (node.numpy, lambda: np.asarray(node), node.item, lambda: len(node),
                lambda: pickle.dumps(node.data), lambda: node.data.copy(),
                lambda: node + 1, lambda: node.sum(), lambda: np.sum(node)):
        with pytest.raises(RuntimeError, match="its values are gone"):
            use()
    assert node.shape == (600, 500) and node.ndim == 2 and node.size == 300000
    assert not hasattr(node.data, "__array_interface__")  # protocols fall back as usual


def test_no_reference_of_the_release_itself_keeps_a_node():
    """The last input it looked at stayed in a local and was never freed (found by review)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 30))
    W, b = tg.Tensor(rng.normal(size=(30, 500)), requires_grad=True), tg.Tensor(np.zeros(500))
    root = tg.sum(x @ W + b)
    root.backward()
    assert _released_in(root) == 2  # the product and the sum
