"""softmax_cross_entropy's parameters (class axis, reduction, label smoothing, ignore_index) against
a NumPy reference and PyTorch; the default call as it always was (values, gradients, the compiled
step's fusion); log_softmax and softmax of empty arrays; errors."""

import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.ops.losses import softmax_minus_targets

RNG = np.random.default_rng(17)


def reference(logits, labels, axis=-1, reduction="mean", label_smoothing=0.0,
              ignore_index=None):
    """The loss written out: class axis moved last, dense smoothed targets, then reduced."""
    z = np.moveaxis(logits.astype(np.float64), axis, -1)
    log_p = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - z.max(-1, keepdims=True)
    classes = z.shape[-1]
    keep = np.ones(z.shape[:-1], dtype=bool)
    if labels.ndim < logits.ndim:
        if ignore_index is not None:
            keep = labels != ignore_index
        targets = np.eye(classes)[np.where(keep, labels, 0)]
    else:
        targets = np.moveaxis(labels, axis, -1)
    targets = targets * (1 - label_smoothing) + label_smoothing / classes
    losses = np.where(keep, -(targets * log_p).sum(-1), 0.0)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / max(keep.sum(), 1)


def numeric_grad(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


CASES = [  # (logits shape, class axis, labels: "ids" or "targets", parameters)
    ((5, 3), -1, "ids", {}),
    ((5, 3), 1, "targets", {"reduction": "sum"}),
    ((4,), 0, "ids", {}),
    ((2, 4, 3), 1, "ids", {"reduction": "none"}),
    ((2, 3, 4), -1, "ids", {"label_smoothing": 0.1}),
    ((3, 2, 5), 0, "targets", {"label_smoothing": 0.3, "reduction": "none"}),
    ((2, 3, 4), 1, "targets", {}),
    ((2, 4, 3, 2), 1, "ids", {"ignore_index": -100}),
    ((6, 4), -1, "ids", {"ignore_index": 2, "label_smoothing": 0.2, "reduction": "sum"}),
    ((2, 5, 3), 1, "ids", {"ignore_index": 0, "label_smoothing": 0.1}),
]


def make_case(shape, axis, kind, params):
    logits = RNG.normal(size=shape) * 2
    batch = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    if kind == "ids":
        labels = RNG.integers(0, shape[axis], size=batch)
        if params.get("ignore_index") == -100:
            labels[RNG.random(batch) < 0.4] = -100
    else:
        labels = np.ascontiguousarray(  # (check_grads perturbs it through a flat view)
            np.moveaxis(RNG.dirichlet(np.ones(shape[axis]), size=batch), -1, axis))
    return logits, labels


@pytest.mark.parametrize("shape, axis, kind, params", CASES)
def test_cross_entropy_variants_match_a_numpy_reference(shape, axis, kind, params):
    logits, labels = make_case(shape, axis, kind, params)
    full = {"axis": axis, **params}
    out = tg.softmax_cross_entropy(tg.Tensor(logits), labels, **full)
    expected = reference(logits, labels, **full)
    assert out.shape == np.shape(expected) and np.allclose(out.data, expected, atol=1e-12)

    def projected(z):  # a random projection exercises every position of reduction="none"
        weights = np.random.default_rng(0).normal(size=np.shape(expected))
        return np.sum(reference(z, labels, **full) * weights), weights

    weights = projected(logits)[1]
    grad = tg.grad(lambda z: tg.sum(tg.softmax_cross_entropy(z, labels, **full) * weights))(
        logits)
    assert np.allclose(grad, numeric_grad(lambda z: projected(z)[0], logits), atol=1e-7)
    if kind == "targets":
        grad_t = tg.grad(lambda t: tg.sum(tg.softmax_cross_entropy(logits, t, **full)
                                          * weights))(labels)
        numeric = numeric_grad(lambda t: np.sum(reference(logits, t, **full) * weights), labels)
        assert np.allclose(grad_t, numeric, atol=1e-7)


@pytest.mark.parametrize("shape, axis, kind, params", CASES)
def test_cross_entropy_matches_pytorch(shape, axis, kind, params):
    torch = pytest.importorskip("torch")
    logits, labels = make_case(shape, axis, kind, params)
    to_torch = (lambda a: a) if len(shape) == 1 else (lambda a: np.moveaxis(a, axis, 1))
    from_torch = (lambda a: a) if len(shape) == 1 else (lambda a: np.moveaxis(a, 1, axis))
    z = torch.tensor(to_torch(logits), requires_grad=True)  # torch: classes at 1 (or 0 if 1-D)
    target = torch.tensor(labels if kind == "ids" else to_torch(labels))
    want = torch.nn.functional.cross_entropy(z, target, **params)
    weights = np.random.default_rng(1).normal(size=tuple(want.shape))
    (want * torch.tensor(weights)).sum().backward()
    x = tg.Tensor(logits, requires_grad=True)
    got = tg.softmax_cross_entropy(x, labels, axis=axis, **params)
    tg.sum(got * weights).backward()
    assert np.allclose(got.data, want.detach().numpy(), atol=1e-12)  # same batch order
    assert np.allclose(x.grad, from_torch(z.grad.numpy()), atol=1e-12)


def test_mean_with_ignore_index_averages_over_the_counted_rows_only():
    logits = RNG.normal(size=(4, 3))
    labels = np.array([0, -1, 2, -1])
    loss = tg.softmax_cross_entropy(logits, labels, ignore_index=-1)
    assert np.isclose(loss, tg.softmax_cross_entropy(logits[[0, 2]], labels[[0, 2]]))
    grad = tg.grad(lambda z: tg.softmax_cross_entropy(z, labels, ignore_index=-1))(logits)
    assert np.all(grad[[1, 3]] == 0)
    # nothing counted: the loss is 0 (PyTorch gives 0/0 = NaN), its gradient 0
    nothing = np.array([-1, -1, -1, -1])
    assert tg.softmax_cross_entropy(logits, nothing, ignore_index=-1) == 0
    assert np.all(tg.grad(lambda z: tg.softmax_cross_entropy(z, nothing, ignore_index=-1))(
        logits) == 0)


def test_the_default_call_and_its_gradient_are_unchanged():
    """Today's formula, to the last bit: mean of -log softmax at the label, rule (s - onehot)/N."""
    for dtype in (np.float32, np.float64):
        logits = RNG.normal(size=(6, 4)).astype(dtype)
        labels = RNG.integers(0, 4, 6)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        value, grad = tg.value_and_grad(tg.softmax_cross_entropy)(logits, labels)
        assert value.dtype == dtype
        assert value == np.asarray(-log_p[np.arange(6), labels].sum() / 6, dtype=dtype)
        softmax = np.exp(log_p)
        softmax[np.arange(6), labels] -= 1
        assert np.array_equal(grad, softmax * (np.asarray(1.0, dtype) / 6))


def test_the_compiled_step_fuses_only_the_default_call():
    logits, labels = RNG.normal(size=(5, 3)), RNG.integers(0, 3, 5)
    fused = tg.trace(tg.value_and_grad(tg.softmax_cross_entropy))
    fused(logits, labels)
    assert "softmax_cross_entropy + softmax_minus_targets" in fused.source
    cube = RNG.normal(size=(2, 4, 3))
    ids = RNG.integers(0, 3, (2, 4))
    ids[0, 0] = -1
    for params in ({"axis": -1}, {"label_smoothing": 0.1}, {"ignore_index": -1},
                   {"reduction": "none"}):
        def loss(z, y, params=params):
            return tg.sum(tg.softmax_cross_entropy(z, y, **params) * 1.5)

        eager = tg.value_and_grad(loss)
        step = tg.trace(eager)
        y = ids if "ignore_index" in params else np.abs(ids)
        step(cube, y)  # traced
        value, grad = step(cube, y)  # the compiled program
        want_value, want_grad = eager(cube, y)
        assert value == want_value and np.array_equal(grad, want_grad)
        assert "+ softmax_minus_targets" not in step.source
    default = tg.trace(tg.value_and_grad(tg.softmax_cross_entropy))  # N-d, no parameters
    default(cube, np.abs(ids))
    assert "softmax_cross_entropy + softmax_minus_targets" in default.source
    value, grad = default(cube, np.abs(ids))
    want_value, want_grad = tg.value_and_grad(tg.softmax_cross_entropy)(cube, np.abs(ids))
    assert value == want_value and np.array_equal(grad, want_grad)


def test_second_derivatives_of_every_variant():
    for shape, axis, kind, params in CASES:
        logits, labels = make_case(shape, axis, kind, params)
        weights = RNG.normal(size=np.shape(reference(logits, labels, axis=axis, **params)))

        def loss(z, t=labels, axis=axis, params=params, weights=weights):
            return tg.sum(tg.softmax_cross_entropy(z, t, axis=axis, **params) * weights)

        tg.check_grads(loss, logits, order=2)
        if kind == "targets":
            tg.check_grads(lambda t, z=logits, loss=loss: loss(z, t), labels, order=2)


def test_softmax_minus_targets_is_the_gradient_times_the_count():
    logits, labels = RNG.normal(size=(3, 2, 4)), RNG.integers(0, 4, (3, 2))
    grad = tg.grad(lambda z: tg.softmax_cross_entropy(z, labels, axis=-1, reduction="sum"))(
        logits)
    assert np.allclose(softmax_minus_targets(logits, labels), grad, atol=1e-15)


def test_log_softmax_and_softmax_of_empty_arrays_are_empty():
    for shape, axis in [((2, 0), 1), ((2, 0), 0), ((0, 3), 1), ((0,), 0)]:
        x = tg.Tensor(np.zeros(shape, dtype=np.float32), requires_grad=True)
        out = tg.softmax(x, axis=axis)
        assert out.shape == shape and out.dtype == np.float32
        assert tg.log_softmax(x, axis=axis).shape == shape
        tg.sum(out).backward()
        assert x.grad.shape == shape
    assert tg.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 0
    assert tg.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int),
                                    reduction="none").shape == (0,)


def test_log_softmax_keeps_its_bits():
    x = RNG.normal(size=(4, 5))
    shifted = x - np.max(x, axis=0, keepdims=True)
    assert np.array_equal(tg.log_softmax(x, axis=0),
                          shifted - np.log(np.sum(np.exp(shifted), axis=0, keepdims=True)))


@pytest.mark.parametrize("shape, labels, params, message", [
    ((2, 3), np.array([0, 3]), {}, "label 3 at row 1 is out of range for 3 classes"),
    ((2, 3, 2), np.array([[0, 1], [2, 5]]), {"axis": 1},
     "label 5 at position (1, 1) is out of range for 3 classes"),
    ((2, 3), np.array([-1, 0]), {}, "label -1 at row 0 is negative"),
    ((2, 3), np.array([0.5, 1.0]), {}, "label 0.5 at row 0 is not an integer class id"),
    ((2, 3), np.array([0, 1, 2]), {}, "got 3 labels for 2 rows of logits (2, 3)"),
    ((2, 3), np.array([0, 1]), {"axis": 0}, "got 2 labels for 3 rows of logits (2, 3)"),
    ((2, 3, 4), np.zeros((2, 4)), {}, "class ids of shape (2, 4) do not match logits (2, 3, 4): "
                                      "expected (2, 3) (the logits without axis 2)"),
    ((2, 3, 4), np.zeros(2), {}, "labels must be class ids of shape (2, 3) or targets of shape "
                                 "(2, 3, 4), got (2,)"),
    ((2, 3), np.zeros((2, 3, 1)), {}, "labels must be class ids of shape (N,) or targets of "
                                      "shape (N, C), got (2, 3, 1)"),
    ((2, 3), np.zeros((2, 3)), {"ignore_index": 0}, "ignore_index applies to class ids, not to "
                                                    "targets of shape (2, 3)"),
    ((2, 3), np.array([0, 1]), {"reduction": "avg"}, "reduction must be 'mean', 'sum' or "
                                                     "'none', got 'avg'"),
    ((2, 3), np.array([0, 1]), {"label_smoothing": 1.5}, "label_smoothing must be a number in "
                                                         "[0, 1], got 1.5"),
    ((2, 3), np.array([0, 1]), {"axis": 2}, "axis 2 is out of range for logits of shape (2, 3)"),
    ((2, 3), np.array([0, 1]), {"ignore_index": 0.5}, "ignore_index must be an int, got 0.5"),
    ((), np.array(0), {}, "logits must have a class axis, got a scalar"),
])
def test_cross_entropy_errors_are_one_line_and_name_the_op(shape, labels, params, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        tg.softmax_cross_entropy(np.zeros(shape), labels, **params)
    text = str(info.value)
    assert text.startswith("softmax_cross_entropy: ") and "\n" not in text
    assert "test_losses.py" in text


def test_ignored_labels_may_be_out_of_range_and_float_ids_work():
    logits = RNG.normal(size=(3, 4))
    ids = np.array([1, -100, 3])
    a = tg.softmax_cross_entropy(logits, ids, ignore_index=-100)
    b = tg.softmax_cross_entropy(logits, ids.astype(np.float64), ignore_index=-100)
    assert a == b == tg.softmax_cross_entropy(logits[[0, 2]], ids[[0, 2]])


def test_a_loss_over_nothing_is_plus_zero():
    ignored = tg.softmax_cross_entropy(np.zeros((2, 3)), np.array([-100, -100]), ignore_index=-100)
    empty = tg.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int), reduction="sum")
    for value in (ignored, empty):
        assert value == 0.0 and not np.signbit(value)  # printed "0.0", not "-0.0"


def test_the_eager_rule_reuses_the_forwards_log_softmax_with_the_same_bits():
    """Fused residual (issue 10): the forward keeps its log-softmax for the array pass's rule,
    which takes it once; the gradient is bit for bit the one computed afresh; nothing is kept
    under no_grad, after the rule took it, or once the loss is freed."""
    import gc

    from tinygraph.ops import losses

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=16)
    grad_out = np.float32(1.0)
    for kwargs in ({}, {"label_smoothing": 0.1}, {"ignore_index": 3}, {"reduction": "sum"},
                   {"reduction": "none"}):
        loss = tg.softmax_cross_entropy(logits, labels, **kwargs)
        g = grad_out if loss.ndim == 0 else np.ones_like(loss)
        afresh = losses._cross_entropy_vjp_logits(g, loss.copy(), logits, labels, **kwargs)
        fused = losses._cross_entropy_vjp_logits(g, loss, logits, labels, **kwargs)
        assert fused.dtype == np.float32 and np.array_equal(fused, afresh), kwargs
        assert losses._LOG_PROBS.take(loss) is None  # taken once: a second pass recomputes
    kept = len(losses._LOG_PROBS._kept)
    with tg.no_grad():
        tg.softmax_cross_entropy(logits, labels)
    assert len(losses._LOG_PROBS._kept) == kept  # nothing kept where no rule will ask
    loss = tg.softmax_cross_entropy(logits, labels)
    assert len(losses._LOG_PROBS._kept) == kept + 1
    del loss
    gc.collect()
    assert len(losses._LOG_PROBS._kept) == kept  # dropped with the loss it belongs to
    # The eager pass (residual) and a recorded pass (recomputed with ops) agree bit for bit.
    W = rng.normal(size=(10, 10)).astype(np.float32)
    eager = tg.grad(lambda w: tg.softmax_cross_entropy(logits @ w, labels))(W)
    w = tg.Tensor(W, requires_grad=True)
    tg.softmax_cross_entropy(logits @ w, labels).backward(create_graph=True)
    assert np.array_equal(eager, w.grad.data)


@pytest.mark.parametrize("rows, classes", [(1, 2), (7, 10), (63, 10), (64, 10), (513, 10),
                                           (100, 32), (100, 33)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8])
def test_the_compiled_steps_fused_loss_has_the_general_paths_bits(rows, classes, dtype,
                                                                  label_dtype):
    """The training step's call takes a short path (its Python overhead was ~20 us of a
    100 us compiled step at batch 1): the same value and rule, bit for bit and dtype."""
    from tinygraph.ops import losses

    rng = np.random.default_rng(rows)
    logits = (rng.normal(size=(rows, classes)) * 5).astype(dtype)
    labels = rng.integers(0, classes, size=rows).astype(label_dtype)
    value, rule = losses._cross_entropy_and_rule(logits, labels)
    checked, axis, _ = losses._check_cross_entropy(logits, labels)
    log_probs = losses._log_softmax(logits, axis=axis)
    expected = losses._cross_entropy_value(logits, checked, log_probs, axis)
    expected_rule = losses._softmax_minus(log_probs, labels)
    assert value.dtype == expected.dtype and np.array_equal(value, expected)
    assert rule.dtype == expected_rule.dtype and np.array_equal(rule, expected_rule)
    eager = tg.softmax_cross_entropy(logits, labels)  # the eager forward's short path too
    assert eager.dtype == expected.dtype and np.array_equal(eager, expected)
    # A compiled program's plan of it (buffers allocated once, ids checked by a one-hot),
    # called twice: the second call's results are right too (its buffers are reused).
    planned = losses._cross_entropy_and_rule.plan([logits.shape, labels.shape],
                                                  [logits.dtype, labels.dtype])
    out = np.empty_like(logits)
    for _ in range(2):
        value, rule = planned(out, logits, labels)
        assert rule is out
        assert value.dtype == expected.dtype and np.array_equal(value, expected)
        assert rule.dtype == expected_rule.dtype and np.array_equal(rule, expected_rule)


def test_the_fused_losss_short_path_leaves_bad_labels_to_the_checked_path():
    from tinygraph.ops import losses

    logits = np.zeros((2, 3), np.float32)
    for labels, message in (([0, 3], "out of range for 3 classes"), ([-1, 0], "is negative"),
                            ([0], "got 1 labels for 2 rows")):
        with pytest.raises(ValueError, match=message):
            losses._cross_entropy_and_rule(logits, np.array(labels))
    planned = losses._cross_entropy_and_rule.plan([(2, 3), (2,)],
                                                  [np.dtype(np.float32), np.dtype(np.int64)])
    for labels, message in (([0, 3], "out of range for 3 classes"), ([-1, 0], "is negative"),
                            ([-3, 0], "is negative"), ([3, 3], "out of range")):
        with pytest.raises(ValueError, match=message):
            planned(np.empty_like(logits), logits, np.array(labels))


def test_a_compiled_step_with_a_bad_label_names_it_in_one_line():
    """The compiled step's fused loss checks its ids through the one-hot (no min/max pass):
    an id out of range is still the cross-entropy's own one-line error, not a wrong loss."""
    params = {"W": np.ones((4, 3), np.float32)}
    step = tg.trace(tg.value_and_grad(lambda p, x, y: tg.softmax_cross_entropy(x @ p["W"], y)))
    x = np.ones((2, 4), np.float32)
    step(params, x, np.array([0, 2]))
    for labels, message in (([0, 3], "out of range for 3 classes"), ([-1, 0], "is negative")):
        with pytest.raises(ValueError, match=message):
            step(params, x, np.array(labels))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_batch_of_few_classes_is_reduced_by_columns_exactly_enough_and_stably(dtype):
    """Issue 10: (N >= 64, C <= 32) logits take the column-by-column log-softmax (a row
    reduction over a short axis is slow in NumPy). It must be as accurate as the row path
    (within a few units in the last place of a float64 reference), overflow-free for huge
    logits, and give the same layout and dtype."""
    from tinygraph.ops import losses, softmax

    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(200, 10)) * 8).astype(dtype)
    logits[0] = [1e30, -1e30, 0, 0, 0, 0, 0, 0, 0, 3e29]  # huge, in float32 and float64
    assert softmax._by_columns(logits, -1) and not softmax._by_columns(logits[:63], -1)
    result = tg.log_softmax(logits)
    assert result.dtype == dtype and result.flags.c_contiguous and np.all(np.isfinite(result))
    wide = logits.astype(np.float64)
    shifted = wide - wide.max(axis=1, keepdims=True)
    reference = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(result - reference) <= 8 * eps * (1 + np.abs(reference)))
    row_path = losses._log_softmax(logits[:, :, None], axis=1)[:, :, 0]  # (3-D: the row path)
    assert np.allclose(result, row_path, rtol=4 * eps, atol=4 * eps)


def test_the_compiled_cross_entropy_agrees_with_eager_on_awkward_inputs():
    """Found by review: int8 ids with 200 classes wrapped the plan's class ids (a label -100
    matched class 156, silently); logits that are not C-contiguous were reduced in another
    order than eager's (1 ulp). Now: no plan for the first, the general path for the second."""
    from tinygraph.ops import losses

    assert losses._cross_entropy_and_rule.plan(
        [(6, 200), (6,)], [np.dtype(np.float32), np.dtype(np.int8)]) is None
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 200)).astype(np.float32)
    step = tg.trace(tg.value_and_grad(lambda z, t: tg.softmax_cross_entropy(z, t)))
    labels = np.array([1, 2, 3, 4, 5, 6], np.int8)
    step(logits, labels)
    with pytest.raises(ValueError, match="label -100 at row 5 is negative"):
        step(logits, np.array([1, 2, 3, 4, 5, -100], np.int8))
    for rows, classes in ((20, 10), (63, 32), (64, 33), (100, 40), (100, 10)):
        x = rng.normal(size=(classes, rows)).astype(np.float32)
        y = rng.integers(0, classes, rows)
        f = tg.value_and_grad(lambda z, t: tg.softmax_cross_entropy(z.T, t))
        traced = tg.trace(f)
        for _ in range(2):
            value, grad = traced(x, y)
            value0, grad0 = f(x, y)
            assert np.array_equal(value, value0) and np.array_equal(grad, grad0), (rows, classes)


def test_the_column_path_is_for_float32_and_float64_arrays_of_any_subclass(tmp_path):
    from tinygraph.ops import softmax

    assert not softmax._by_columns(np.zeros((100, 10), np.float16), 1)  # rounds per class
    mapped = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (100, 10))
    mapped[:] = np.random.default_rng(0).normal(size=(100, 10))
    assert softmax._by_columns(mapped, 1)
    assert np.array_equal(tg.log_softmax(mapped), tg.log_softmax(np.array(mapped)))
