"""Issue 10, eager memory: a reverse pass frees the large intermediate arrays that no backward
rule reads (``Primitive.rule_reads``) and that nothing but the graph holds."""

import gc

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


def test_the_reference_count_is_calibrated_for_this_interpreter():
    """release_unread compares a node's references with those of a node one list holds; the
    count is measured at import, not assumed (interpreters count differently)."""
    node = tg.Tensor.node(np.zeros(1))
    nodes = [node]
    del node
    gc.collect()
    for each in nodes:
        assert autodiff._references(each) == autodiff._HELD_BY_THE_ORDER_ONLY
