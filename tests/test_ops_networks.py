"""Network ops (conv2d, conv_transpose2d, max_pool2d, avg_pool2d, dropout): values and gradients
against direct loops, second order, PyTorch where installed, dropout's statistics, errors."""

import itertools
import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.ops.networks import conv2d_weight

RNG = np.random.default_rng(5)

# (stride, padding, dilation): ints and pairs, windows that overlap, skip pixels, leave a rest
GEOMETRIES = [(1, 0, 1), (2, 1, 1), ((1, 2), (1, 0), (2, 1)), (3, 2, 2), (2, (0, 2), 1)]


def pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def conv_loop(x, w, stride, padding, dilation):
    """y[n, o, y, x] = sum w[o, c, i, j] x[n, c, s*y + d*i - p, s*x + d*j - p], one term at a
    time; also returns which (input pixel, weight entry) pairs feed each output."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, c, h, wide = x.shape
    o, _, kh, kw = w.shape
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wide + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), dtype=np.float64)
    terms = []
    for b, q, r, s in itertools.product(range(n), range(o), range(oh), range(ow)):
        for ch, i, j in itertools.product(range(c), range(kh), range(kw)):
            row, col = r * sh + i * dh - ph, s * sw + j * dw - pw
            if 0 <= row < h and 0 <= col < wide:
                out[b, q, r, s] += w[q, ch, i, j] * x[b, ch, row, col]
                terms.append(((b, q, r, s), (b, ch, row, col), (q, ch, i, j)))
    return out, terms


def conv_loop_grads(x, w, grad_out, terms):
    """d sum(grad_out * y)/dx and /dw, accumulated term by term."""
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for out_index, x_index, w_index in terms:
        dx[x_index] += grad_out[out_index] * w[w_index]
        dw[w_index] += grad_out[out_index] * x[x_index]
    return dx, dw


@pytest.mark.parametrize("stride, padding, dilation", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_values_and_gradients_match_a_direct_loop(stride, padding, dilation, dtype):
    x = RNG.normal(size=(2, 3, 7, 8)).astype(dtype)
    w = RNG.normal(size=(4, 3, 3, 2)).astype(dtype)
    expected, terms = conv_loop(x, w, stride, padding, dilation)
    grad_out = RNG.normal(size=expected.shape).astype(dtype)
    xt, wt = tg.Tensor(x, requires_grad=True), tg.Tensor(w, requires_grad=True)
    out = tg.conv2d(xt, wt, stride=stride, padding=padding, dilation=dilation)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    assert out.dtype == dtype and out.shape == expected.shape
    assert np.allclose(out.data, expected, atol=tolerance)
    tg.sum(out * grad_out).backward()
    dx, dw = conv_loop_grads(x, w, grad_out, terms)
    assert xt.grad.dtype == dtype and wt.grad.dtype == dtype
    assert np.allclose(xt.grad, dx, atol=tolerance) and np.allclose(wt.grad, dw, atol=tolerance)


def test_conv2d_with_a_bias_and_an_empty_batch():
    x, w, b = RNG.normal(size=(2, 1, 5, 5)), RNG.normal(size=(3, 1, 2, 2)), RNG.normal(size=3)
    out = tg.conv2d(x, w) + b.reshape(1, -1, 1, 1)
    assert np.allclose(out, conv_loop(x, w, 1, 0, 1)[0] + b[:, None, None])
    empty = tg.Tensor(np.zeros((0, 1, 5, 5)), requires_grad=True)
    assert tg.conv2d(empty, w).shape == (0, 3, 4, 4)
    tg.sum(tg.conv2d(empty, w)).backward()
    assert empty.grad.shape == (0, 1, 5, 5)


@pytest.mark.parametrize("stride, padding, dilation", GEOMETRIES[:4])
def test_conv_transpose2d_is_the_adjoint_of_conv2d(stride, padding, dilation):
    """<conv2d(x, w), g> = <x, conv_transpose2d(g, w)> and = <w, conv2d_weight(x, g)>."""
    x, w = RNG.normal(size=(2, 3, 7, 8)), RNG.normal(size=(4, 3, 3, 2))
    y, _ = conv_loop(x, w, stride, padding, dilation)
    g = RNG.normal(size=y.shape)
    geometry = {"stride": stride, "padding": padding, "dilation": dilation}
    extra = tuple((side + 2 * p - d * (k - 1) - 1) % s for side, k, s, p, d in
                  zip(x.shape[2:], w.shape[2:], pair(stride), pair(padding), pair(dilation)))
    back = tg.conv_transpose2d(g, w, output_padding=extra, **geometry)
    assert back.shape == x.shape
    assert np.isclose(np.sum(y * g), np.sum(x * back))
    assert np.isclose(np.sum(y * g), np.sum(w * conv2d_weight(x, g, (3, 2), **geometry)))


def test_convolution_has_second_derivatives():
    x, w = RNG.normal(size=(1, 2, 4, 4)), RNG.normal(size=(2, 2, 2, 2))

    def loss(x, w):  # tanh: a second derivative that is not zero
        return tg.sum(tg.tanh(tg.conv2d(x, w, stride=(1, 2), padding=1, dilation=(2, 1))))

    report = tg.check_grads(loss, x, w, order=2)
    assert {check.order for check in report.checks} == {1, 2}
    pooled = lambda x, w: tg.sum(tg.tanh(tg.max_pool2d(tg.conv2d(x, w, padding=1), 2)))  # noqa: E731
    tg.check_grads(pooled, x, w, order=2)


def test_conv_transpose2d_output_size():
    x, w = RNG.normal(size=(1, 2, 3, 4)), RNG.normal(size=(2, 5, 3, 3))
    out = tg.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    assert out.shape == (1, 5, (3 - 1) * 2 - 2 + 2 + 1 + 1, (4 - 1) * 2 - 2 + 2 + 1 + 1)


def pool_loop(x, kernel, stride, padding, reduce):
    (kh, kw), (ph, pw) = pair(kernel), pair(padding)
    (sh, sw) = pair(kernel if stride is None else stride)
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    windows = {}
    for b, ch, r, s in itertools.product(range(n), range(c), range(oh), range(ow)):
        cells = [(b, ch, r * sh + i - ph, s * sw + j - pw) for i in range(kh) for j in range(kw)]
        windows[b, ch, r, s] = cells
        out[b, ch, r, s] = reduce(cells, x)
    return out, windows


def max_of(cells, x):
    return max(x[cell] if 0 <= cell[2] < x.shape[2] and 0 <= cell[3] < x.shape[3] else -np.inf
               for cell in cells)


def mean_of(cells, x):
    return sum(x[cell] for cell in cells
               if 0 <= cell[2] < x.shape[2] and 0 <= cell[3] < x.shape[3]) / len(cells)


POOLS = [(2, None, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 1)), (3, 2, 0), (2, 1, 0)]


@pytest.mark.parametrize("kernel, stride, padding", POOLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pool2d_matches_a_direct_loop_and_routes_the_gradient_to_the_maximum(
        kernel, stride, padding, dtype):
    x = RNG.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6).astype(dtype)  # no ties
    expected, windows = pool_loop(x, kernel, stride, padding, max_of)
    xt = tg.Tensor(x, requires_grad=True)
    out = tg.max_pool2d(xt, kernel, stride=stride, padding=padding)
    assert out.dtype == dtype and np.array_equal(out.data, expected)
    grad_out = RNG.normal(size=expected.shape).astype(dtype)
    tg.sum(out * grad_out).backward()
    dx = np.zeros(x.shape)
    for position, cells in windows.items():  # each window's cotangent goes to its maximum
        inside = [c for c in cells if 0 <= c[2] < x.shape[2] and 0 <= c[3] < x.shape[3]]
        dx[max(inside, key=lambda c: x[c])] += grad_out[position]
    assert xt.grad.dtype == dtype and np.allclose(xt.grad, dx, atol=1e-6)


@pytest.mark.parametrize("kernel, stride, padding", POOLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_avg_pool2d_matches_a_direct_loop(kernel, stride, padding, dtype):
    x = RNG.normal(size=(2, 3, 7, 6)).astype(dtype)
    expected, windows = pool_loop(x, kernel, stride, padding, mean_of)
    xt = tg.Tensor(x, requires_grad=True)
    out = tg.avg_pool2d(xt, kernel, stride=stride, padding=padding)
    assert out.dtype == dtype and np.allclose(out.data, expected, atol=1e-6)
    grad_out = RNG.normal(size=expected.shape).astype(dtype)
    tg.sum(out * grad_out).backward()
    dx = np.zeros(x.shape)
    for position, cells in windows.items():
        for cell in cells:
            if 0 <= cell[2] < x.shape[2] and 0 <= cell[3] < x.shape[3]:
                dx[cell] += grad_out[position] / len(cells)
    assert xt.grad.dtype == dtype and np.allclose(xt.grad, dx, atol=1e-6)


def test_max_pool2d_splits_the_cotangent_between_ties():
    x = tg.Tensor(np.array([[[[1.0, 3.0], [3.0, 0.0]]]]), requires_grad=True)
    tg.max_pool2d(x, 2).backward(np.array([[[[6.0]]]]))
    assert np.array_equal(x.grad, [[[[0.0, 3.0], [3.0, 0.0]]]])  # as tg.max: shared equally


def test_pooling_has_second_derivatives():
    x = RNG.permutation(32).reshape(1, 2, 4, 4) / 8.0
    for pool in (tg.max_pool2d, tg.avg_pool2d):
        report = tg.check_grads(lambda x, pool=pool: tg.sum(pool(x, 3, stride=1, padding=1) ** 2),
                                x, order=2)
        assert {check.order for check in report.checks} == {1, 2}


def test_network_ops_match_pytorch():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x, w = RNG.normal(size=(2, 3, 9, 8)), RNG.normal(size=(4, 3, 3, 2))
    for stride, padding, dilation in GEOMETRIES:
        want = functional.conv2d(torch.tensor(x), torch.tensor(w), stride=stride,
                                 padding=padding, dilation=dilation)
        got = tg.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
        assert np.allclose(got, want.numpy(), atol=1e-12)
    z, v = RNG.normal(size=(2, 3, 4, 5)), RNG.normal(size=(3, 2, 3, 2))
    for stride, padding, extra, dilation in [(1, 0, 0, 1), (2, 1, 1, 1), ((2, 3), (1, 0), (1, 2),
                                                                          (1, 2))]:
        want = functional.conv_transpose2d(torch.tensor(z), torch.tensor(v), stride=stride,
                                           padding=padding, output_padding=extra,
                                           dilation=dilation)
        got = tg.conv_transpose2d(z, v, stride=stride, padding=padding, output_padding=extra,
                                  dilation=dilation)
        assert np.allclose(got, want.numpy(), atol=1e-12)
    for kernel, stride, padding in POOLS:
        for ours, theirs in ((tg.max_pool2d, functional.max_pool2d),
                             (tg.avg_pool2d, functional.avg_pool2d)):
            want = theirs(torch.tensor(x), kernel, stride=stride, padding=padding)
            assert np.allclose(ours(x, kernel, stride=stride, padding=padding), want.numpy())


def test_a_lenet_step_matches_pytorch_gradients():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = RNG.normal(size=(4, 1, 12, 12)).astype(np.float32)
    params = {"w1": RNG.normal(size=(3, 1, 3, 3)), "b1": RNG.normal(size=3),
              "w2": RNG.normal(size=(5, 3, 3, 3)), "w3": RNG.normal(size=(5 * 2 * 2, 10))}
    params = {k: (v * 0.3).astype(np.float32) for k, v in params.items()}
    labels = RNG.integers(0, 10, 4)

    def loss(p):
        h = tg.max_pool2d(tg.relu(tg.conv2d(x, p["w1"]) + p["b1"].reshape(1, -1, 1, 1)), 2)
        h = tg.avg_pool2d(tg.tanh(tg.conv2d(h, p["w2"], padding=1)), 2, stride=2)
        return tg.softmax_cross_entropy(h.reshape(4, -1) @ p["w3"], labels)

    value, grads = tg.value_and_grad(loss)(params)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    h = functional.max_pool2d(functional.relu(functional.conv2d(torch.tensor(x), t["w1"])
                                              + t["b1"].reshape(1, -1, 1, 1)), 2)
    h = functional.avg_pool2d(torch.tanh(functional.conv2d(h, t["w2"], padding=1)), 2)
    want = functional.cross_entropy(h.reshape(4, -1) @ t["w3"], torch.tensor(labels))
    want.backward()
    assert np.isclose(value, want.item(), rtol=1e-5)
    for key in params:
        assert grads[key].dtype == np.float32
        assert np.allclose(grads[key], t[key].grad.numpy(), rtol=1e-4, atol=1e-5), key
    step = tg.trace(tg.value_and_grad(loss))  # the compiled step gives the same bits
    step(params)
    again_value, again = step(params)
    assert again_value == value and all(np.array_equal(again[k], grads[k]) for k in params)


@pytest.mark.parametrize("call, message", [
    (lambda: tg.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3))),
     "conv2d: input (1, 3, 5, 5) has 3 channels, weight (2, 2, 3, 3) expects 2"),
    (lambda: tg.conv2d(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3))),
     "conv2d: input (3, 5, 5) and weight (2, 3, 3, 3) must be 4-D"),
    (lambda: tg.conv2d(np.zeros((1, 1, 2, 5)), np.zeros((1, 1, 3, 3))),
     "conv2d: input (1, 1, 2, 5) and weight (1, 1, 3, 3): the kernel (3, 3) with dilation "
     "(1, 1) does not fit in the (2, 5) image padded by (0, 0)"),
    (lambda: tg.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=0),
     "conv2d: stride must be >= 1, got 0"),
    (lambda: tg.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding=(1, 2, 3)),
     "conv2d: padding must be an int or a pair of ints, got (1, 2, 3)"),
    (lambda: tg.conv_transpose2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)),
                                 output_padding=1),
     "conv_transpose2d: output_padding 1 must be smaller than the stride (1, 1)"),
    (lambda: tg.max_pool2d(np.zeros((1, 1, 5, 5)), 2, padding=2),
     "max_pool2d: padding (2, 2) must be at most half the kernel (2, 2)"),
    (lambda: tg.avg_pool2d(np.zeros((5, 5)), 2),
     "avg_pool2d: input must be 4-D (N, C, H, W), got shape (5, 5)"),
    (lambda: tg.max_pool2d(np.zeros((1, 1, 1, 5)), 2),
     "max_pool2d: input (1, 1, 1, 5): the kernel (2, 2)"),
])
def test_errors_name_the_op_and_the_shapes(call, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        call()
    assert "\n" not in str(info.value) and "test_ops_networks.py" in str(info.value)


# ---------------------------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------------------------

def test_dropout_keeps_the_expected_value_and_drops_the_given_rate():
    x = np.full((200, 500), 2.0, dtype=np.float32)
    out = tg.dropout(tg.Tensor(x), 0.3, np.random.default_rng(0))
    assert out.dtype == np.float32
    kept = out.data != 0
    assert abs(kept.mean() - 0.7) < 0.005  # 100,000 draws: the standard error is 0.0015
    assert np.allclose(out.data[kept], 2.0 / 0.7) and abs(out.data.mean() - 2.0) < 0.02


def test_dropout_is_deterministic_for_a_seeded_generator_and_differentiable():
    x = RNG.normal(size=(4, 6))
    first = tg.dropout(x, 0.5, np.random.default_rng(7))
    assert np.array_equal(first, tg.dropout(x, 0.5, np.random.default_rng(7)))
    mask = np.random.default_rng(7).random(x.shape) >= 0.5
    assert np.array_equal(first, x * mask / 0.5)
    grad = tg.grad(lambda v: tg.sum(tg.dropout(v, 0.5, np.random.default_rng(7)) * 3.0))(x)
    assert np.array_equal(grad, 3.0 * mask / 0.5)  # the mask is a constant


def test_dropout_is_the_identity_when_not_training_or_at_rate_zero():
    x = tg.Tensor(RNG.normal(size=3))
    rng = np.random.default_rng(0)
    assert tg.dropout(x, 0.5, rng, training=False) is x
    assert tg.dropout(x, 0.0, rng) is x


def test_a_traced_step_draws_a_new_dropout_mask_on_every_call():
    rng = np.random.default_rng(3)
    step = tg.trace(tg.grad(lambda v: tg.sum(tg.dropout(v, 0.5, rng))))
    x = np.ones(64)
    masks = [step(x) for _ in range(3)]  # the first call traces, the others run the program
    assert not np.array_equal(masks[1], masks[2]) and not np.array_equal(masks[0], masks[1])
    assert all(set(np.unique(m)) <= {0.0, 2.0} for m in masks)


@pytest.mark.parametrize("rate, rng, kind, message", [
    (1.0, np.random.default_rng(), ValueError, "dropout: rate must be a number in [0, 1), got 1.0"),
    (-0.1, np.random.default_rng(), ValueError, "got -0.1"),
    (0.5, 3, TypeError, "dropout: rng must be a numpy.random.Generator"),
])
def test_dropout_rejects_bad_rates_and_generators(rate, rng, kind, message):
    with pytest.raises(kind, match=re.escape(message)):
        tg.dropout(np.ones(3), rate, rng)
