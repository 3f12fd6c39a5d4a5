"""Tests for models.optim: update rules, schedules, state serialisation."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from models.optim import (
    adam,
    constant,
    cosine,
    get_optimizer,
    momentum,
    sgd,
    state_from_arrays,
    state_to_arrays,
    step_decay,
    tree_map,
)


def tiny_params(dtype=np.float64) -> dict[str, np.ndarray]:
    return {
        "W1": np.array([[0.5, -1.0], [2.0, 0.25]], dtype=dtype),
        "b1": np.array([0.1, -0.2], dtype=dtype),
    }


def tiny_grads(k: int, dtype=np.float64) -> dict[str, np.ndarray]:
    """A different, deterministic gradient for step k."""
    return {
        "W1": np.array([[1.0, -2.0], [0.5, 3.0]], dtype=dtype) * (k + 1) * (-1) ** k,
        "b1": np.array([-0.3, 0.7], dtype=dtype) / (k + 1),
    }


def copy_tree(tree):
    return tree_map(np.copy, tree)


def assert_tree_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].dtype == b[key].dtype


# ---------------------------------------------------------------- update rules


def test_sgd_step_is_exact():
    p, g = tiny_params(), tiny_grads(0)
    opt = sgd(lr=0.01)
    new, state = opt.update(p, g, opt.init(p))
    for key in p:
        assert np.array_equal(new[key], p[key] - 0.01 * g[key])
    assert int(state["step"]) == 1


def test_sgd_keeps_float32():
    p, g = tiny_params(np.float32), tiny_grads(0, np.float32)
    opt = sgd(lr=cosine(0.1, 10))
    new, _ = opt.update(p, g, opt.init(p))
    assert all(v.dtype == np.float32 for v in new.values())


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_matches_hand_computation(nesterov):
    lr, beta = 0.1, 0.9
    opt = momentum(lr=lr, beta=beta, nesterov=nesterov)
    p = tiny_params()
    state = opt.init(p)
    ref = copy_tree(p)
    vel = {k: np.zeros_like(v) for k, v in p.items()}
    for k in range(3):
        g = tiny_grads(k)
        p, state = opt.update(p, g, state)
        for key in ref:
            vel[key] = beta * vel[key] + g[key]
            step = g[key] + beta * vel[key] if nesterov else vel[key]
            ref[key] = ref[key] - lr * step
    for key in ref:
        np.testing.assert_allclose(p[key], ref[key], rtol=1e-14, atol=1e-14)
    # and one hand-written scalar: W1[0,0], heavy ball, grads 1, -2, 3
    if not nesterov:
        v1, v2, v3 = 1.0, 0.9 * 1.0 - 2.0, 0.9 * (0.9 - 2.0) + 3.0
        expected = 0.5 - lr * (v1 + v2 + v3)
        assert math.isclose(float(p["W1"][0, 0]), expected, rel_tol=1e-14)


def test_adam_matches_hand_computation():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = adam(lr=lr, b1=b1, b2=b2, eps=eps)
    p = tiny_params()
    state = opt.init(p)
    # scalar reference for b1[1] (gradients 0.7, 0.35, 0.7/3)
    x, m, v = -0.2, 0.0, 0.0
    for t, gk in enumerate([0.7, 0.35, 0.7 / 3], start=1):
        m = b1 * m + (1 - b1) * gk
        v = b2 * v + (1 - b2) * gk * gk
        x -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    for k in range(3):
        p, state = opt.update(p, tiny_grads(k), state)
    assert math.isclose(float(p["b1"][1]), x, rel_tol=1e-13)
    # first Adam step moves every coordinate by ~lr * sign(g)
    p0 = tiny_params()
    p1, _ = opt.update(p0, tiny_grads(0), opt.init(p0))
    for key in p0:
        np.testing.assert_allclose(p0[key] - p1[key], lr * np.sign(tiny_grads(0)[key]), rtol=1e-6)


def test_coupled_weight_decay_sgd_and_momentum():
    p, g = tiny_params(), tiny_grads(1)
    new, _ = sgd(lr=0.1, weight_decay=0.5).update(p, g, {"step": np.int64(0)})
    for key in p:
        np.testing.assert_allclose(new[key], p[key] - 0.1 * (g[key] + 0.5 * p[key]), rtol=1e-15)
    opt = momentum(lr=0.1, beta=0.9, weight_decay=0.5)
    state = opt.init(p)
    new, state = opt.update(p, g, state)
    for key in p:  # v = g + wd p after one step
        np.testing.assert_allclose(state["velocity"][key], g[key] + 0.5 * p[key], rtol=1e-15)


def test_adam_coupled_vs_decoupled_weight_decay():
    p = tiny_params()
    zero = tree_map(np.zeros_like, p)
    lr, wd = 0.01, 0.1
    # decoupled (AdamW): with zero gradient only the shrink p * (1 - lr*wd) acts
    opt = adam(lr=lr, weight_decay=wd, decoupled_weight_decay=True)
    new, _ = opt.update(p, zero, opt.init(p))
    for key in p:
        np.testing.assert_allclose(new[key], p[key] * (1 - lr * wd), rtol=1e-15)
    # coupled: wd*p enters the moments, so the first step is ~lr * sign(p)
    opt = adam(lr=lr, weight_decay=wd)
    new, state = opt.update(p, zero, opt.init(p))
    for key in p:
        np.testing.assert_allclose(p[key] - new[key], lr * np.sign(p[key]), rtol=1e-5)
        np.testing.assert_allclose(state["m"][key], (1 - 0.9) * wd * p[key], rtol=1e-15)
    assert get_optimizer("adamw", lr=lr, weight_decay=wd).decoupled_weight_decay


def test_weight_decay_mask_skips_biases():
    p, g = tiny_params(), tiny_grads(0)
    opt = sgd(lr=0.1, weight_decay=1.0, weight_decay_mask=lambda path, a: a.ndim > 1)
    new, _ = opt.update(p, g, opt.init(p))
    assert np.array_equal(new["b1"], p["b1"] - 0.1 * g["b1"])
    np.testing.assert_allclose(new["W1"], p["W1"] - 0.1 * (g["W1"] + p["W1"]))


@pytest.mark.parametrize(
    "opt",
    [
        sgd(lr=0.1),
        momentum(lr=0.05, beta=0.9),
        momentum(lr=0.05, beta=0.9, nesterov=True),
        adam(lr=0.05),
        adam(lr=cosine(0.1, 400, warmup_steps=20)),
        get_optimizer("adamw", lr=0.05, weight_decay=1e-4),
    ],
    ids=["sgd", "momentum", "nesterov", "adam", "adam-cosine", "adamw"],
)
def test_minimises_quadratic(opt):
    # f(p) = sum_i a_i/2 (p_i - c_i)^2 over a nested pytree, minimum at c
    rng = np.random.default_rng(0)
    curv = {"a": rng.uniform(0.5, 2.0, (3, 4)), "b": [rng.uniform(0.5, 2.0, 5)]}
    target = {"a": rng.normal(size=(3, 4)), "b": [rng.normal(size=5)]}
    params = {"a": np.zeros((3, 4)), "b": [np.zeros(5)]}
    state = opt.init(params)
    for _ in range(400):
        grads = tree_map(lambda p, a, c: a * (p - c), params, curv, target)
        params, state = opt.update(params, grads, state)
    np.testing.assert_allclose(params["a"], target["a"], atol=2e-2)
    np.testing.assert_allclose(params["b"][0], target["b"][0], atol=2e-2)
    assert isinstance(params["b"], list)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_inputs_not_mutated(name):
    opt = get_optimizer(name, lr=0.1, weight_decay=0.01)
    p, g = tiny_params(), tiny_grads(0)
    state = opt.init(p)
    _, state = opt.update(p, g, state)  # a non-trivial state
    saved = (copy_tree(p), copy_tree(g), state_to_arrays(state))
    opt.update(p, g, state)
    assert_tree_equal(p, saved[0])
    assert_tree_equal(g, saved[1])
    assert_tree_equal(state_to_arrays(state), saved[2])


def test_structure_mismatch_raises():
    p = tiny_params()
    opt = sgd(lr=0.1)
    with pytest.raises(ValueError):
        opt.update(p, {"W1": p["W1"]}, opt.init(p))
    with pytest.raises(ValueError):
        get_optimizer("rmsprop")


def test_grad_key_order_does_not_matter():
    p, g = tiny_params(), tiny_grads(0)
    reordered = {"b1": g["b1"], "W1": g["W1"]}
    opt = adam(lr=0.1)
    a, _ = opt.update(p, g, opt.init(p))
    b, _ = opt.update(p, reordered, opt.init(p))
    assert_tree_equal(a, b)
    assert list(b) == ["W1", "b1"]


# ---------------------------------------------------------------- schedules


def test_cosine_endpoints_and_monotonic():
    sched = cosine(0.1, total_steps=100, warmup_steps=10, final_lr=0.001)
    lrs = np.array([sched(t) for t in range(120)])
    assert math.isclose(lrs[0], 0.01)  # first warm-up step is base/W, not 0
    assert math.isclose(lrs[9], 0.1) and math.isclose(lrs[10], 0.1)
    assert np.all(np.diff(lrs[:10]) > 0)
    assert np.all(np.diff(lrs[10:101]) < 0)
    assert np.all(lrs[100:] == 0.001)
    no_warm = cosine(1.0, 10)
    assert no_warm(0) == 1.0 and math.isclose(no_warm(5), 0.5) and no_warm(10) == 0.0
    with pytest.raises(ValueError):
        cosine(1.0, 10, warmup_steps=10)


def test_constant_and_step_decay():
    assert constant(0.3)(0) == constant(0.3)(10**6) == 0.3
    sched = step_decay(1.0, step_size=10, gamma=0.5)
    assert [sched(t) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_schedule_is_driven_by_state_step():
    p, g = tiny_params(), tiny_grads(0)
    opt = sgd(lr=lambda t: 0.1 * (t + 1))
    state = opt.init(p)
    p1, state = opt.update(p, g, state)
    p2, _ = opt.update(p1, g, state)
    np.testing.assert_allclose(p2["W1"], p["W1"] - 0.1 * g["W1"] - 0.2 * g["W1"])
    p3, _ = opt.update(p, g, opt.init(p), lr=0.5)  # explicit override
    assert np.array_equal(p3["W1"], p["W1"] - 0.5 * g["W1"])


# ---------------------------------------------------------------- serialisation


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_resume_is_bitwise_identical(name, inplace):
    kw = {"inplace_state": inplace} if name != "sgd" else {}
    opt = get_optimizer(name, lr=cosine(0.05, 10, warmup_steps=2), weight_decay=1e-3, **kw)
    start = tiny_params(np.float32)
    grads = [tiny_grads(k, np.float32) for k in range(10)]

    p, state = copy_tree(start), opt.init(start)
    for g in grads:
        p, state = opt.update(p, g, state)
    uninterrupted, final_state = p, state_to_arrays(state)

    p, state = copy_tree(start), opt.init(start)
    for g in grads[:4]:
        p, state = opt.update(p, g, state)
    buf = io.BytesIO()
    np.savez(buf, **state_to_arrays(state, prefix="opt/"), **p)
    del state
    buf.seek(0)
    with np.load(buf) as z:
        loaded = {k: z[k] for k in z.files}
    p = {k: loaded[k] for k in ("W1", "b1")}
    state = opt.state_from_arrays(
        {k: v for k, v in loaded.items() if k.startswith("opt/")}, p, prefix="opt/"
    )
    assert int(state["step"]) == 4
    for g in grads[4:]:
        p, state = opt.update(p, g, state)
    assert_tree_equal(p, uninterrupted)
    assert_tree_equal(state_to_arrays(state), final_state)


def test_state_arrays_layout_and_validation():
    p = {"layer": [np.zeros(2), np.ones((1, 3), np.float32)]}
    opt = adam()
    arrays = state_to_arrays(opt.init(p))
    assert sorted(arrays) == ["m/layer/0", "m/layer/1", "step", "v/layer/0", "v/layer/1"]
    assert arrays["step"].dtype == np.int64
    back = state_from_arrays(arrays, opt.init(p))
    assert isinstance(back["m"]["layer"], list) and back["v"]["layer"][1].dtype == np.float32
    bad = dict(arrays, **{"m/layer/0": np.zeros(3)})
    with pytest.raises(ValueError):
        state_from_arrays(bad, opt.init(p))
    with pytest.raises(KeyError):
        state_from_arrays({"step": arrays["step"]}, opt.init(p))
    with pytest.raises(ValueError):
        state_from_arrays(dict(arrays, extra=np.zeros(1)), opt.init(p))
