"""The compiled step: a traced program as one generated Python function with planned buffers.

Compiled results are compared with eager ones bit for bit (no fused rule changes rounding: the
program runs the same forward functions the eager pass runs).
"""

import numpy as np
import pytest

import tinygraph as tg
from models import network
from models.init import init_params
from tinygraph.sampling import RandomDraw


def mnist(dtype=np.float32, batch=16, seed=0):
    params = init_params((784, 64, 10), "xavier", seed=1, dtype=dtype)
    rng = np.random.default_rng(seed)
    return params, rng.random((batch, 784)).astype(dtype), rng.integers(0, 10, batch)


@pytest.mark.parametrize("name", sorted(tg.registry()))
def test_compiled_equals_eager_bitwise_on_every_op(name):
    op = tg.registry()[name]
    for seed in (3, 4):
        args, params = op.sample(RandomDraw(seed))
        positions = tuple(i for i, a in enumerate(args)
                          if isinstance(a, np.ndarray) and a.dtype.kind == "f")
        weights = np.random.default_rng(seed).standard_normal(np.shape(op(*args, **params)))

        def projected(*arrays, params=params, weights=weights):
            return tg.sum(op(*arrays, **params) * weights)

        eager = tg.value_and_grad(projected, argnums=positions)
        compiled = tg.trace(eager)
        for scale in (1.0, 1.01):  # the second call runs the compiled program
            moved = [a * scale if i in positions else a for i, a in enumerate(args)]
            value, grads = eager(*moved)
            got_value, got_grads = compiled(*moved)
            assert np.array_equal(got_value, value)
            for want, got in zip(grads, got_grads):
                assert got.dtype == want.dtype and np.array_equal(got, want)


def sgd_step(params, x, y, lr=0.1):
    value, grads = tg.value_and_grad(network.loss)(params, x, y)
    return value, {k: params[k] - lr * grads[k] for k in params}


def momentum_step(params, velocity, x, y, lr=0.1, mu=0.9):
    value, grads = tg.value_and_grad(network.loss)(params, x, y)
    velocity = {k: mu * velocity[k] + grads[k] for k in params}
    return value, {k: params[k] - lr * velocity[k] for k in params}, velocity


def adam_step(params, m, v, t, x, y, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    value, grads = tg.value_and_grad(network.loss)(params, x, y)
    m = {k: b1 * m[k] + (1 - b1) * grads[k] for k in params}
    v = {k: b2 * v[k] + (1 - b2) * grads[k] * grads[k] for k in params}
    scale = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
    new = {k: params[k] - scale * m[k] / (v[k] ** 0.5 + eps) for k in params}
    return value, new, m, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_step_with_updates_is_bitwise_eager(dtype):
    params, _, _ = mnist(dtype)
    zeros = {k: np.zeros_like(p) for k, p in params.items()}
    for step, state in ((sgd_step, ()), (momentum_step, (zeros,)), (adam_step, (zeros, zeros))):
        compiled = tg.trace(step)
        eager_params, compiled_params = params, params
        eager_state, compiled_state = state, state
        for seed in range(3):
            _, x, y = mnist(dtype, seed=seed)
            extra = (3.0,) if step is adam_step else ()
            eager_out = step(*((eager_params, *eager_state, *extra, x, y)))
            eager_out = tg.tree_map(lambda t: t.data if isinstance(t, tg.Tensor) else t,
                                    eager_out)
            got = compiled(compiled_params, *compiled_state, *extra, x, y)
            assert np.array_equal(got[0], eager_out[0])
            for want_tree, got_tree in zip(eager_out[1:], got[1:]):
                for k in params:
                    assert got_tree[k].dtype == dtype
                    assert np.array_equal(got_tree[k], want_tree[k]), (step.__name__, k)
            eager_params, eager_state = eager_out[1], tuple(eager_out[2:])
            compiled_params, compiled_state = got[1], tuple(got[2:])
        assert compiled.trace_count == 1


def test_returned_arrays_are_never_reused_buffers():
    params, x, y = mnist()
    compiled = tg.trace(tg.value_and_grad(network.loss))
    value, grads = compiled(params, x, y)
    kept = {k: g.copy() for k, g in grads.items()}
    kept_value = value.copy()
    _, x2, y2 = mnist(seed=7)
    value2, grads2 = compiled(params, x2, y2)  # reuses every planned buffer
    for k in grads:
        assert np.array_equal(grads[k], kept[k])  # the first call's results are untouched
        assert not np.shares_memory(grads[k], grads2[k])
    assert value == kept_value
    eager_value, eager_grads = tg.value_and_grad(network.loss)(params, x2, y2)
    assert value2 == eager_value and all(np.array_equal(grads2[k], eager_grads[k])
                                         for k in grads)
    # outputs that are views or inputs are copies the caller owns
    views = tg.trace(lambda a: (a.T, a.reshape(-1), a * 1.0))
    a = np.arange(6.0).reshape(2, 3)
    first = views(a)
    for out in first:
        assert not np.shares_memory(out, a)


def test_program_prints_and_source_is_readable_and_stable():
    params, x, y = mnist(batch=4)
    compiled = tg.trace(tg.value_and_grad(network.loss))
    compiled(params, x, y)
    text = str(compiled.program)
    assert text.startswith("program(%0: float32[784, 64] = arg 0['W1']")
    assert "= matmul %" in text and "= softmax_cross_entropy %" in text
    assert "identity" not in text  # pass-throughs are forwarded
    source = compiled.source
    assert "def program(" in source and "out=b" in source and "raise GuardError" in source
    compile(source, "<test>", "exec")
    again = tg.trace(tg.value_and_grad(network.loss))
    again(params, x, y)
    assert again.source == source  # the same trace compiles to the same text


def test_common_subexpressions_and_dead_code_are_removed():
    def f(a):
        unused = tg.exp(a) * 3  # noqa: F841 - dead: not returned
        return tg.sum(tg.tanh(a) * tg.tanh(a))

    compiled = tg.trace(f)
    compiled(np.array([0.5, 1.0]))
    ops = [eq.prim.name for eq in compiled.program.equations]
    assert ops.count("tanh") == 1 and "exp" not in ops
    assert np.isclose(compiled(np.array([0.2, 0.3])), np.sum(np.tanh([0.2, 0.3]) ** 2))


def test_retrace_on_a_new_shape_and_fast_path_checks():
    params, x, y = mnist(batch=8)
    compiled = tg.trace(tg.value_and_grad(network.loss))
    compiled(params, x, y)
    compiled(params, x[:3], y[:3])
    assert compiled.trace_count == 2
    value, _ = compiled(params, x, y)  # back to the first signature
    assert value == tg.value_and_grad(network.loss)(params, x, y)[0]
    # a Tensor, a float64 array, another static value: each takes the general path
    assert compiled(params, tg.Tensor(x), y)[0] == value
    compiled(params, x.astype(np.float64), y)
    tanh_value, _ = compiled(params, x, y, "tanh")
    assert tanh_value == tg.value_and_grad(network.loss)(params, x, y, "tanh")[0]


def test_user_primitive_without_out_variant_in_a_compiled_step():
    @tg.primitive(register=False)
    def softsign(x):
        return x / (1 + np.abs(x))

    softsign.defvjp(lambda grad_out, out, x: grad_out * (1 - tg.where(x > 0, out, -out)) ** 2)

    def loss(w, x):
        return tg.sum(softsign(x @ w))

    compiled = tg.trace(tg.grad(loss))
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    for scale in (1.0, 2.0):
        assert np.array_equal(compiled(w * scale, x), tg.grad(loss)(w * scale, x))
    assert "softsign" in compiled.source


def test_detect_anomaly_checks_every_value_of_a_compiled_step():
    compiled = tg.trace(tg.value_and_grad(lambda t: tg.sum(tg.log(t))))
    compiled(np.array([1.0, 2.0]))
    with np.errstate(divide="ignore"):
        value, _ = compiled(np.array([0.0, 2.0]))  # outside anomaly mode: -inf, as NumPy
    assert value == -np.inf
    with tg.detect_anomaly(), np.errstate(divide="ignore"), \
            pytest.raises(FloatingPointError, match="log"):
        compiled(np.array([0.0, 2.0]))


def test_donated_parameters_are_updated_in_place_with_eager_bits():
    params, x, y = mnist()
    eager_value, eager_params = sgd_step(params, x, y)
    step = tg.trace(sgd_step, donate_argnums=0)
    mine = {k: v.copy() for k, v in params.items()}
    arrays = dict(mine)
    value, updated = step(mine, x, y)
    assert value == eager_value.data
    for k in params:
        assert updated[k] is arrays[k]  # written into the donated array itself
        assert np.array_equal(updated[k], eager_params[k].data)
    again, twice = step(updated, x, y)  # and again, from the updated arrays
    eager_again, eager_twice = sgd_step({k: v.data for k, v in eager_params.items()}, x, y)
    assert again == eager_again.data and all(np.array_equal(twice[k], eager_twice[k].data)
                                             for k in params)
    assert "out=in0" in step.source


def test_a_donated_array_is_written_only_after_its_last_read():
    def f(p):
        return p * 2.0, p + 1.0, tg.sum(p * p)

    step = tg.trace(f, donate_argnums=0)
    p = np.array([1.0, 2.0, 3.0])
    doubled, shifted, total = step(p.copy())
    assert np.array_equal(doubled, [2, 4, 6]) and np.array_equal(shifted, [2, 3, 4])
    assert total == 14.0
    doubled, shifted, total = step(p.copy())  # the compiled program, not the trace
    assert np.array_equal(doubled, [2, 4, 6]) and np.array_equal(shifted, [2, 3, 4])
    assert not np.shares_memory(doubled, shifted)


def test_cross_entropy_and_its_rule_share_one_log_softmax():
    params, x, y = mnist(batch=4)
    compiled = tg.trace(tg.value_and_grad(network.loss))
    compiled(params, x, y)
    assert "softmax_cross_entropy + softmax_minus_targets" in compiled.source
    assert compiled.source.count("log_softmax") == 0


def test_make_program_and_its_drawing():
    program = tg.make_program(tg.grad(lambda x: tg.sum(tg.tanh(x) * x)))(np.ones(3))
    text = str(program)
    assert text.splitlines()[0] == "program(%0: float64[3] = arg 0)"
    assert "= tanh %0" in text and text.splitlines()[-1].startswith("  return (%")
    source = tg.to_dot_program(program).source
    assert source.count("tanh") == 1 and "output 0" in source and "arg 0" in source


def test_optimizer_states_donated_are_updated_in_place():
    params, x, y = mnist(np.float64)
    zeros = {k: np.zeros_like(p) for k, p in params.items()}
    eager = adam_step(params, zeros, zeros, 1.0, x, y)
    step = tg.trace(adam_step, donate_argnums=(0, 1, 2))
    p, m, v = ({k: a.copy() for k, a in tree.items()} for tree in (params, zeros, zeros))
    m_arrays = dict(m)
    value, p2, m2, v2 = step(p, m, v, 1.0, x, y)
    assert value == eager[0].data
    for got, want in zip((p2, m2, v2), eager[1:]):
        assert all(np.array_equal(got[k], want[k].data) for k in params)
    assert any(m2[k] is m_arrays[k] for k in params)  # moments written in place


def test_a_trace_leaves_no_garbage_cycles_holding_its_example():
    import gc

    params, x, y = mnist(batch=64)
    step = tg.trace(tg.value_and_grad(network.loss))
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        step(params, x, y)
        step(params, x, y)
        gc.collect()  # the example graph must already be gone by reference counting
        kinds = sorted({type(o).__name__ for o in gc.garbage})
        functions = sorted({o.__qualname__ for o in gc.garbage if callable(o)
                            and hasattr(o, "__qualname__")})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert "Tensor" not in kinds and "ndarray" not in kinds, (kinds, functions)


def test_fold_scale_puts_the_learning_rate_into_the_seed():
    params, x, y = mnist()
    eager_value, eager_params = sgd_step(params, x, y)
    plain = tg.trace(sgd_step)
    folded = tg.trace(sgd_step, fold_scale=True)
    plain(params, x, y)
    value, updated = folded(params, x, y)
    assert plain.source.count("# mul") == folded.source.count("# mul") + 4  # lr * g, 4 times
    assert value == eager_value.data
    for k in params:  # equal to rounding, no longer bit for bit
        assert np.allclose(updated[k], eager_params[k].data, rtol=1e-5, atol=1e-8)
    value, updated = folded(params, x, y)  # the compiled program
    assert all(np.allclose(updated[k], eager_params[k].data, rtol=1e-5, atol=1e-8)
               for k in params)


def test_fold_scale_leaves_other_uses_of_gradients_alone():
    params, x, y = mnist(np.float64)
    zeros = {k: np.zeros_like(p) for k, p in params.items()}
    for step, args in ((momentum_step, (params, zeros, x, y)),
                       (adam_step, (params, zeros, zeros, 1.0, x, y)),
                       (lambda p, xb, yb: tg.value_and_grad(network.loss)(p, xb, yb),
                        (params, x, y))):
        folded = tg.trace(step, fold_scale=True)
        plain = tg.trace(step)
        got, want = folded(*args), plain(*args)
        assert folded.source == plain.source  # nothing folded
        for a, b in zip(tg.pytree.flatten(got)[0], tg.pytree.flatten(want)[0]):
            assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Found by review: each of these once gave a wrong number
# ---------------------------------------------------------------------------------------------

def test_fold_scale_is_refused_where_the_seed_is_not_the_gradients_only_source():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 2)) * 100, "b": rng.normal(size=2) * 10}
    x = rng.normal(size=(4, 3))

    def loss(p):
        return tg.sum(tg.tanh(x @ p["w"] + p["b"])) + tg.sum(p["b"])

    def via_vjp(p):
        value, pull = tg.vjp(loss, p)
        (g,) = pull(np.array(1.0))
        return value, {k: p[k] - 0.1 * g[k] for k in p}

    def under_no_grad(p):
        value, g = tg.value_and_grad(loss)(p)
        with tg.no_grad():
            return value, {k: p[k] - 1e-5 * g[k] for k in p}

    def constant_gradient(p):  # d/db sum(b) is a constant: folded at trace time
        value, g = tg.value_and_grad(loss)(p)
        return value, {k: p[k] - 1e-5 * g[k] for k in p}

    for step in (via_vjp, under_no_grad, constant_gradient):
        eager = step(params)
        compiled = tg.trace(step, fold_scale=True)
        for _ in range(2):
            value, updated = compiled(params)
            for k in params:
                change = np.asarray(eager[1][k]) - params[k]
                assert np.allclose(updated[k] - params[k], change, rtol=1e-6, atol=0), step


def test_the_guard_checks_dict_key_order_donation_safety_and_static_floats():
    f = tg.trace(lambda d: [d[k] * 1.0 for k in d])
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    f({"a": a, "b": b})
    first, second = f({"b": b, "a": a})
    assert np.array_equal(first, b) and np.array_equal(second, a)

    def update(p, q):
        return p - 0.1 * q * q, q * 2

    step = tg.trace(update, donate_argnums=0)
    w = np.array([1.0, 2.0])
    step(w.copy(), w.copy())
    shared = w.copy()
    new_p, doubled = step(shared, shared)  # one array in both places: nothing overwritten early
    assert np.allclose(new_p, w - 0.1 * w * w) and np.allclose(doubled, 2 * w)
    read_only = np.broadcast_to(np.array([1.0, 2.0]), (2,))
    new_p, _ = step(read_only, w.copy())
    assert np.allclose(new_p, [1.0, 2.0] - 0.1 * w * w)

    g = tg.trace(lambda x, s: x * s if s == s else x * 0)  # a NaN static argument
    for _ in range(10):
        g(np.ones(2), float("nan"))
    assert g.trace_count == 1
    h = tg.trace(lambda v: (1 / (v * 0.0), 1 / (v * -0.0)))
    with np.errstate(divide="ignore"):
        plus, minus = h(np.array([1.0]))
    assert plus[0] == np.inf and minus[0] == -np.inf
    with pytest.raises(TypeError, match="keyword arguments are not supported"):
        h(v=np.ones(1))


def test_an_op_name_can_never_become_code_in_the_generated_source(capsys):
    @tg.primitive(name="double\n    print('INJECTED')\x00", register=False)
    def double(x):
        return 2 * x

    double.defvjp(lambda grad_out, out, x: 2 * grad_out)
    step = tg.trace(tg.value_and_grad(lambda x: tg.sum(double(x))))
    value, grad = step(np.ones(3))
    assert value == 6.0 and np.array_equal(grad, [2.0, 2.0, 2.0])
    assert "INJECTED" not in capsys.readouterr().out
    (line,) = [line for line in step.source.splitlines() if "double" in line]
    assert line.endswith(ascii(double.name))


def test_donation_is_refused_for_inputs_sharing_memory_through_distinct_bases():
    """Found by review: two as_strided or frombuffer views of one buffer have distinct bases;
    writing exp(a) into the donated a before b is read changed b. Judged by memory bounds."""
    from numpy.lib.stride_tricks import as_strided

    step = tg.trace(lambda a, b: tg.exp(a) + b, donate_argnums=0)
    step(np.zeros(8), np.zeros(8))
    expected = np.exp(np.arange(8.0)) + np.arange(8.0)
    buffer = bytearray(np.arange(8.0).tobytes())
    pairs = [(np.frombuffer(memoryview(buffer), np.float64),
              np.frombuffer(memoryview(buffer), np.float64))]
    base = np.arange(8.0)
    pairs.append((as_strided(base, (8,), (8,)), as_strided(base, (8,), (8,))))
    whole = np.arange(8.0)
    pairs.append((whole, whole))  # one array twice
    for a, b in pairs:
        assert np.array_equal(step(a, b), expected)
    separate = np.arange(8.0)
    result = step(separate, np.arange(8.0))  # owned, distinct: donated (written in place)
    assert np.array_equal(result, expected) and result is separate
