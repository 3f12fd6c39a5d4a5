"""tg.export_onnx: every mapped op against ONNX Runtime (the registry walk), the MNIST network at
several batch sizes, the dynamic batch, user mappings, and one-line errors."""

import re
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed "
                                          "(pip install 'tinygraph[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed "
                                                "(pip install 'tinygraph[onnx]')")

import tinygraph as tg  # noqa: E402
from models import cnn, network  # noqa: E402
from models.data import load_sample, to_features  # noqa: E402
from models.init import init_params  # noqa: E402
from tinygraph.onnx_export import (  # noqa: E402
    NOT_MAPPED,
    RULES,
    OnnxExportError,
    export_onnx,
    require,
)

REGISTERED = sorted(tg.registry())
MAPPED = [name for name in REGISTERED if name not in NOT_MAPPED]
SEEDS = (0, 1, 2)
# ONNX operators whose float64 kernels ONNX Runtime's CPU provider lacked when this was written
# (1.32): a float64 export using one may be refused with NOT_IMPLEMENTED naming it; any other
# failure, or a wrong value where it runs, fails the test
NO_FLOAT64_KERNEL = {"Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
                     "Det", "Conv", "ConvTranspose", "AveragePool", "Col2Im"}
# Older runtimes lack more of them (1.23, what pip installs on Python 3.10, has no float64 Cos):
# there, any missing float64 kernel is accepted; float32 must still run and match.
OLDER_RUNTIME = tuple(int(part) for part in ort.__version__.split(".")[:2]) < (1, 32)


def session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(path, *args):
    s = session(path)
    return s.run(None, {spec.name: np.asarray(a) for spec, a in zip(s.get_inputs(), args)})


def assert_matches(got, expected, dtype):
    expected = np.asarray(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype, \
        f"ONNX gave {got.dtype}{got.shape}, tinygraph {expected.dtype}{expected.shape}"
    if expected.dtype.kind != "f":
        np.testing.assert_array_equal(got, expected)
        return
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isfinite(expected), expected, 0)),
                                     initial=0)))
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * scale,
                               equal_nan=True)


# ---------------------------------------------------------------------------------------------
# The registry walk
# ---------------------------------------------------------------------------------------------

def test_every_registered_op_is_mapped_or_listed_with_a_reason():
    undecided = set(REGISTERED) - set(RULES) - set(NOT_MAPPED)
    assert not undecided, (f"registered ops with neither an ONNX rule (tinygraph/onnx_export/ "
                           f"RULES) nor a reason in NOT_MAPPED: {sorted(undecided)}")
    assert not set(RULES) & set(NOT_MAPPED)
    assert all(len(reason) > 20 for reason in NOT_MAPPED.values())
    assert len(MAPPED) >= 100  # all but the few ONNX cannot express


@pytest.mark.parametrize("name", MAPPED)
def test_every_mapped_op_matches_tinygraph_in_onnx_runtime(name, tmp_path):
    op = tg.registry()[name]
    path = tmp_path / f"{name}.onnx"
    compared = 0
    for seed in SEEDS:
        for dtype in (np.float32, np.float64):
            args, params = op.sample(tg.RandomDraw(seed))
            args = [a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                    for a in args]
            expected = op(*args, **params)

            def one_op(*inputs, op=op, params=params):
                return op(*inputs, **params)

            export_onnx(one_op, tuple(np.asarray(a) for a in args), path, dynamic_batch=False)
            try:
                (got,) = run(path, *args)
            except Exception as exc:  # only a missing float64 kernel of ONNX Runtime's
                missing = re.search(r"NOT_IMPLEMENTED.*implementation for (\w+)\(", str(exc))
                assert dtype == np.float64 and missing, exc
                assert missing[1] in NO_FLOAT64_KERNEL or OLDER_RUNTIME, exc
                continue
            assert_matches(got, expected, dtype)
            compared += 1
    assert compared >= len(SEEDS)  # float32 always runs


@pytest.mark.parametrize("name", sorted(set(NOT_MAPPED) & set(REGISTERED)))
def test_an_op_without_mapping_is_refused_naming_it_the_reason_and_the_line(name, tmp_path):
    op = tg.registry()[name]
    args, params = op.sample(tg.RandomDraw(0))
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the old file")
    with pytest.raises(OnnxExportError) as info:
        export_onnx(lambda *xs: op(*xs, **params), tuple(args), path, dynamic_batch=False)
    message = str(info.value)
    assert f"'{name}'" in message and NOT_MAPPED[name] in message
    assert "test_onnx.py:" in message and "\n" not in message
    assert path.read_bytes() == b"the old file"  # nothing half-written, nothing replaced


# ---------------------------------------------------------------------------------------------
# The MNIST network
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist():
    """The embedded sample, and the paper's network trained on it for two quick epochs."""
    data = load_sample()
    x, y = to_features(data.train_images, np.float32), data.train_labels
    params = init_params((784, 64, 10), method="he", dtype=np.float32)
    step = tg.trace(tg.value_and_grad(network.loss))
    for _ in range(2):
        for start in range(0, len(x), 128):
            _, grads = step(params, x[start:start + 128], y[start:start + 128])
            params = {k: params[k] - np.float32(0.5) * grads[k] for k in params}
    test = to_features(data.test_images, np.float32), data.test_labels
    return params, test


@pytest.fixture(scope="module")
def mlp_file(mnist, tmp_path_factory):
    params, _ = mnist
    path = tmp_path_factory.mktemp("mlp") / "mlp.onnx"
    example = np.zeros((32, 784), np.float32)
    export_onnx(lambda p, pixels: network.logits(p, pixels), (example,), path, params=params,
                output_names=["logits"])
    return path


def test_mnist_network_predictions_equal_tinygraphs_at_batch_sizes_1_32_1000(mnist, mlp_file):
    params, (x, labels) = mnist
    expected_logits = np.asarray(network.logits(params, x))
    expected = network.predict(params, x)
    assert np.mean(expected == labels) > 0.85  # a trained network, not near-ties everywhere
    s = session(mlp_file)
    for batch in (1, 32, 1000):
        logits = np.concatenate([s.run(None, {"pixels": x[i:i + batch]})[0]
                                 for i in range(0, len(x), batch)])
        np.testing.assert_array_equal(np.argmax(logits, axis=1), expected)
        np.testing.assert_allclose(logits, expected_logits, rtol=1e-5, atol=1e-5)


def test_mnist_model_passes_the_checker_with_named_inputs_weights_and_a_batch_axis(mlp_file):
    onnx.checker.check_model(str(mlp_file), full_check=True)
    model = onnx.load(str(mlp_file))
    (pixels,) = model.graph.input
    dims = pixels.type.tensor_type.shape.dim
    assert pixels.name == "pixels" and dims[0].dim_param == "batch" and dims[1].dim_value == 784
    assert [o.name for o in model.graph.output] == ["logits"]
    assert {i.name for i in model.graph.initializer} >= {"W1", "b1", "W2", "b2"}
    assert model.opset_import[0].version == 18


def test_the_cnn_runs_at_any_batch_size_as_tinygraph(tmp_path):
    params = cnn.init_params((4, 8), (16,), seed=1)
    x = to_features(load_sample().test_images[:60], np.float32)
    path = tmp_path / "cnn.onnx"
    export_onnx(lambda p, pixels: network.logits(p, pixels, "relu"),
                (np.zeros((32, 784), np.float32),), path, params=params)
    s = session(path)
    expected = np.asarray(network.logits(params, x, "relu"))
    for batch in (1, 7, 60):
        got = np.concatenate([s.run(None, {"pixels": x[i:i + batch]})[0]
                              for i in range(0, len(x), batch)])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(np.argmax(got, 1), np.argmax(expected, 1))


def test_a_traced_gradient_exports_too(mnist, tmp_path):
    params, (x, labels) = mnist
    path = tmp_path / "grad.onnx"
    step = tg.value_and_grad(network.loss)
    export_onnx(step, (x[:32], labels[:32]), path, params=params)
    for batch in (5, 100):
        value, grads = step(params, x[:batch], labels[:batch])
        got = run(path, x[:batch], labels[:batch])
        np.testing.assert_allclose(got[0], value, rtol=1e-5)
        for result, key in zip(got[1:], params):
            np.testing.assert_allclose(result, grads[key], rtol=1e-4, atol=1e-6)
    model = export_onnx(tg.grad(network.loss), (x[:32], labels[:32]), path, params=params)
    # a gradient's dict keys name its outputs; the weights' own names are taken by the weights
    assert [o.name for o in model.graph.output] == ["output_W1", "output_b1", "output_W2",
                                                    "output_b2"]


# ---------------------------------------------------------------------------------------------
# The dynamic batch: exported at 32 rows, run at others
# ---------------------------------------------------------------------------------------------

W = np.random.default_rng(0).normal(size=(12, 5))
INDEX = np.array([3, 0, 0, 7])
MASK = np.arange(12) % 3 == 0
BATCHED = {
    "flatten": (lambda x: x.reshape(x.shape[0], -1), (3, 4)),
    "reshape with the batch size": (lambda x: x.reshape(x.shape[0] * 3, 4), (3, 4)),
    "expand_dims and squeeze": (lambda x: tg.squeeze(tg.expand_dims(x, 1), 1) * 2, (12,)),
    "mean over the batch": (lambda x: tg.mean(x, axis=0) + tg.mean(x), (12,)),
    "softmax": (lambda x: tg.softmax(x @ W), (12,)),
    "slices": (lambda x: x[1:, ::2] - x[:-1, 1::2] + x[-1, :6], (12,)),
    "integer and mask indices": (lambda x: x[:, INDEX].sum(1) + x[:, MASK].sum(1), (12,)),
    "concatenate along the batch": (lambda x: tg.concatenate([x, 2 * x], axis=0), (12,)),
    "tile and repeat": (lambda x: tg.tile(x, (2, 1))[:, :3] + 0 * tg.repeat(x, 2)[:1], (12,)),
    "broadcast_to the batch": (lambda x: tg.broadcast_to(x[:, :1], x.shape) + x, (12,)),
    "var and std": (lambda x: tg.var(x, axis=0, ddof=1).sum() + tg.std(x, axis=1), (12,)),
    "logsumexp and norms": (lambda x: tg.logsumexp(x, axis=1) + tg.linalg.norm(x, axis=1),
                            (12,)),
    "pad, flip, roll, cumsum": (lambda x: tg.cumsum(tg.flip(tg.roll(tg.pad(tg.pad(
        x, ((0, 0), (2, 1)), mode="reflect"), ((1, 2), (0, 0))), 3, axis=1), axis=0), axis=0),
                                (12,)),
    "einsum and tensordot": (lambda x: tg.einsum("bi,ij->bj", x, W)
                             + tg.tensordot(x, W, axes=1), (12,)),
    "sort": (lambda x: tg.sort(x, axis=1), (12,)),
    "pooling": (lambda x: tg.avg_pool2d(tg.max_pool2d(x, 2), 2), (2, 8, 8)),
}


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")  # var of one row
@pytest.mark.parametrize("name", sorted(BATCHED))
def test_a_model_exported_at_batch_32_runs_at_other_batch_sizes(name, tmp_path):
    f, row = BATCHED[name]
    rng = np.random.default_rng(1)
    dtype = np.float32 if name == "pooling" else np.float64
    path = tmp_path / "model.onnx"
    export_onnx(f, (rng.random((32, *row)).astype(dtype),), path)
    s = session(path)
    for batch in (1, 7, 100):
        x = rng.random((batch, *row)).astype(dtype)
        (got,) = s.run(None, {s.get_inputs()[0].name: x})
        with np.errstate(all="ignore"):  # var with ddof=1 of one row: NaN, in ONNX too
            expected = f(tg.Tensor(x)).data
        assert_matches(got, expected, dtype)


def test_cross_entropy_with_labels_runs_at_other_batch_sizes(tmp_path):
    def loss(x, labels):
        return tg.softmax_cross_entropy(x @ W, labels), \
            tg.softmax_cross_entropy(x @ W, labels, reduction="none", label_smoothing=0.1)

    rng = np.random.default_rng(2)
    path = tmp_path / "loss.onnx"
    export_onnx(loss, (rng.random((32, 12)), rng.integers(0, 5, 32)), path)
    for batch in (1, 9):
        x, labels = rng.random((batch, 12)), rng.integers(0, 5, batch)
        for got, expected in zip(run(path, x, labels), loss(tg.Tensor(x), labels)):
            assert_matches(got, expected.data, np.float64)


def test_a_fixed_batch_model_declares_the_traced_shape(tmp_path):
    path = tmp_path / "fixed.onnx"
    model = export_onnx(lambda x: x.reshape(-1) * 2, (np.ones((4, 3)),), path,
                        dynamic_batch=False)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 3]
    np.testing.assert_array_equal(run(path, np.ones((4, 3)))[0], np.full(12, 2.0))


@pytest.mark.parametrize("f, message", [
    (lambda x: x * 2 if len(x) == 32 else x, "different program for a batch of 33"),
    # a branch the three close probes miss: the large one (B + 61) sees it
    (lambda x: x * 2 if len(x) < 40 else x, "different program for a batch of 93"),
    # a branch on one row: the small probe (1) sees it
    (lambda x: tg.sum(x, axis=0) if len(x) == 1 else x, "for a batch of 1 than for 32"),
    (lambda x: x * float(len(x)) ** 2, "mul: a constant it uses depends on the batch size"),
    (lambda x: x + tg.Tensor(np.arange(len(x)))[:, None], "add: a constant it uses depends"),
    (lambda x: x[np.arange(len(x)) % 2], "getitem: its parameter index depends on the batch"),
    (lambda x: tg.roll(x, 1, axis=0), "roll along the batch axis"),
])
def test_a_function_that_depends_on_the_batch_size_is_refused_in_one_line(f, message, tmp_path):
    with pytest.raises(OnnxExportError) as info:
        export_onnx(f, (np.ones((32, 3)),), tmp_path / "model.onnx")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "dynamic_batch=False" in str(info.value)
    assert not (tmp_path / "model.onnx").exists()


# The constants of a recording that follow the batch (a count, a mean's 1/N, a gradient's seed)
# are computed from the batch size at run time; constant results are compared across the probes
BATCH_CONSTANTS = {
    "count": lambda x: x * float(len(x)),
    "whole count": lambda x: x + len(x),
    "2/N": lambda x: x * (2.0 / len(x)),
    "N/2": lambda x: x * (len(x) / 2),
    "ones of the batch": lambda x: x + tg.Tensor(np.ones((len(x), 1), np.float32)),
    "an array of 1/(3N)": lambda x: x * np.full((len(x), 3), 1 / (3 * len(x)), np.float32),
    "a fixed array of N": lambda x: x[:, :2] * np.full(2, len(x), np.float32),
    "results: a count, ones, a fill": lambda x: (
        x * 2, float(len(x)), tg.Tensor(np.ones(len(x), np.float32)),
        {"half": tg.Tensor(np.full((2, len(x)), 0.5, np.float32))}),
}


@pytest.mark.parametrize("name", sorted(BATCH_CONSTANTS))
def test_constants_and_constant_results_that_follow_the_batch_are_computed_at_run_time(
        name, tmp_path):
    f = BATCH_CONSTANTS[name]
    path = tmp_path / "model.onnx"
    model = export_onnx(f, (np.ones((8, 3), np.float32),), path)
    assert all(8 not in i.dims for i in model.graph.initializer)  # nothing frozen at batch 8
    s = session(path)
    rng = np.random.default_rng(3)
    for batch in (1, 2, 20):
        x = rng.random((batch, 3)).astype(np.float32)
        got = s.run(None, {"x": x})
        expected = [np.asarray(leaf.data if isinstance(leaf, tg.Tensor) else leaf)
                    for leaf in tg.pytree.flatten(f(tg.Tensor(x)))[0]]
        assert len(got) == len(expected)
        for result, want in zip(got, expected):
            np.testing.assert_allclose(result, want, rtol=1e-6)
            assert result.shape == want.shape


def test_a_constant_result_that_depends_on_the_batch_otherwise_is_refused_naming_it(tmp_path):
    with pytest.raises(OnnxExportError) as info:
        export_onnx(lambda x: {"y": x * 2, "rows": tg.Tensor(np.arange(len(x)))},
                    (np.ones((8, 3)),), tmp_path / "m.onnx")
    message = str(info.value)
    assert message.startswith("export_onnx: f's result['rows'] (output 1) is a constant that "
                              "depends on the batch size (an array of shape (8,) for a batch "
                              "of 8, an array of shape (9,) for 9)")
    assert "dynamic_batch=False" in message and "\n" not in message
    assert not (tmp_path / "m.onnx").exists()


def test_recorded_gradients_of_any_loss_export_with_the_dynamic_batch(tmp_path):
    """The reverse pass's seed (ones of the output's shape, 2/N of a mean squared error once
    folded) is a constant of batch size: computed at run time, the gradients match at any batch."""
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(4, 3)).astype(np.float32)}

    def mse(p, x, t):
        return tg.mean((x @ p["W"] - t) ** 2)

    def tanh_sum(x):
        return tg.sum(tg.tanh(x @ params["W"]))

    x, t = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)
    step = tg.value_and_grad(mse)
    export_onnx(step, (x, t), tmp_path / "mse.onnx", params=params)
    export_onnx(tg.grad(tanh_sum), (x,), tmp_path / "tanh.onnx")
    mse_model, tanh_model = session(tmp_path / "mse.onnx"), session(tmp_path / "tanh.onnx")
    for batch in (1, 20, 1000):
        x = rng.normal(size=(batch, 4)).astype(np.float32)
        t = rng.normal(size=(batch, 3)).astype(np.float32)
        value, grads = step(params, x, t)
        got_value, got_grad = mse_model.run(None, {"x": x, "t": t})
        np.testing.assert_allclose(got_value, value, rtol=1e-5)
        np.testing.assert_allclose(got_grad, grads["W"], rtol=1e-5, atol=1e-6)
        (got,) = tanh_model.run(None, {"x": x})
        np.testing.assert_allclose(got, tg.grad(tanh_sum)(x), rtol=1e-5, atol=1e-6)


# Slices along the batch axis: those whose length follows the batch at every batch size export,
# a bound that clamps is refused: by the probes (B + 61 rows, 1 row) or, beyond them, by the
# getitem rule, which checks the slice's length at every batch size
@pytest.mark.parametrize("f, batch, message", [
    (lambda x: tg.mean(x[:5], axis=0), 1, "axis 0 of its result has sizes [1, 2, 4, 5] for "
                                          "batches [1, 2, 4, 62], not k*batch + c"),
    (lambda x: x[:5], 8, "sizes [5, 5, 5, 5, 1] for batches [8, 9, 11, 69, 1]"),
    (lambda x: x[-3:], 8, "sizes [3, 3, 3, 3, 1] for batches [8, 9, 11, 69, 1]"),
    (lambda x: x[5:] * 2, 2, "sizes [0, 0, 0, 58, 0] for batches [2, 3, 5, 63, 1]"),
    (lambda x: x[:100], 32, "the slice [:100] along axis 0, whose length follows the batch, "
                            "keeps 100 of 101 rows at a batch of 101, not 101"),
    (lambda x: x[-200::2], 32, "sizes [16, 17, 18, 47, 1]"),
    (lambda x: x[-200:], 32, "the slice [-200:] along axis 0"),
    (lambda x: x[:150, np.array([0, 2])], 32, "the slice [:150] along axis 0"),
])
def test_a_slice_bound_that_clamps_the_batch_is_refused_naming_the_op_and_line(f, batch, message,
                                                                               tmp_path):
    with pytest.raises(OnnxExportError) as info:
        export_onnx(f, (np.ones((batch, 3), np.float32),), tmp_path / "m.onnx")
    text = str(info.value)
    assert text.startswith("export_onnx: getitem: ") and message in text, text
    assert "test_onnx.py:" in text and "dynamic_batch=False" in text and "\n" not in text
    assert not (tmp_path / "m.onnx").exists()


def test_slices_that_follow_the_batch_export_at_any_example_batch(tmp_path):
    def f(x):
        return (x[1:] - x[:-1], x[-1:] + x[:1], x[::-1], tg.repeat(x, 2, axis=0)[::2],
                x[:-1, np.array([True, False, True])])

    rng = np.random.default_rng(4)
    for example in (1, 8):
        path = tmp_path / f"slices{example}.onnx"
        export_onnx(f, (rng.random((example, 3)),), path)
        s = session(path)
        for batch in (1, 2, 7, 150):
            x = rng.random((batch, 3))
            for got, expected in zip(s.run(None, {"x": x}), f(tg.Tensor(x))):
                assert_matches(got, expected.data, np.float64)


# ---------------------------------------------------------------------------------------------
# User mappings
# ---------------------------------------------------------------------------------------------

def make_cube():
    @tg.primitive(register=False)
    def cube(x):
        return x ** 3

    cube.defvjp(lambda grad_out, out, x: grad_out * 3 * x * x)
    return cube


def test_a_user_primitive_needs_a_mapping_and_defonnx_gives_it(tmp_path):
    cube = make_cube()

    def f(x):
        return tg.exp(cube(x)) + 1

    path = tmp_path / "cube.onnx"
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    with pytest.raises(OnnxExportError) as info:
        export_onnx(f, (x,), path)
    message = str(info.value)
    assert "'cube'" in message and "@cube.defonnx" in message and "\n" not in message
    assert f"test_onnx.py:{f.__code__.co_firstlineno + 1}" in message  # the line applying it
    assert not path.exists()

    @cube.defonnx
    def cube_onnx(g, x):
        x = g.cast(x, g.out_dtype)
        return g.op("Mul", g.op("Mul", x, x), x)

    export_onnx(f, (x,), path)
    assert_matches(run(path, x)[0], f(tg.Tensor(x)).data, np.float64)


def test_an_ops_own_rule_overrides_the_table(tmp_path, monkeypatch):
    def exp_as_power(g, x):
        return g.op("Pow", g.scalar(np.e, g.out_dtype), g.cast(x, g.out_dtype))

    monkeypatch.setattr(tg.registry()["exp"], "onnx_rule", exp_as_power)
    model = export_onnx(tg.exp, (np.linspace(0, 1, 5),), tmp_path / "exp.onnx")
    assert "Pow" in {n.op_type for n in model.graph.node}
    assert "Exp" not in {n.op_type for n in model.graph.node}
    np.testing.assert_allclose(run(tmp_path / "exp.onnx", np.linspace(0, 1, 5))[0],
                               np.exp(np.linspace(0, 1, 5)), rtol=1e-12)


def test_a_users_op_named_like_a_builtin_does_not_take_its_rule(tmp_path):
    @tg.primitive(register=False, name="exp")
    def not_exp(x):
        return x + 1

    with pytest.raises(OnnxExportError, match="no ONNX mapping for the primitive 'exp'"):
        export_onnx(lambda x: not_exp(x), (np.ones(3),), tmp_path / "m.onnx")


def test_a_rule_that_makes_the_wrong_dtype_is_caught_naming_the_op(tmp_path):
    cube = make_cube()
    cube.defonnx(lambda g, x: g.op("Cast", x, to=onnx.TensorProto.FLOAT))  # tinygraph: float64
    with pytest.raises(OnnxExportError, match="cube: its ONNX rule makes float32, tinygraph "
                                              "computes float64"):
        export_onnx(lambda x: cube(x) + 1, (np.ones(3),), tmp_path / "m.onnx")


# ---------------------------------------------------------------------------------------------
# Names, parameters, options, and bad arguments
# ---------------------------------------------------------------------------------------------

def test_inputs_outputs_and_parameters_are_named(tmp_path):
    params = {"layer": {"w": np.ones((3, 2)), "b": np.zeros(2)}, "unused": np.ones(4)}

    def f(p, images, extra):
        h = images @ p["layer"]["w"] + p["layer"]["b"]
        return {"scores": h, "total": tg.sum(h) + tg.sum(extra)}

    model = export_onnx(f, (np.ones((5, 3)), np.ones((5, 2))), tmp_path / "m.onnx",
                        params=params)
    assert [i.name for i in model.graph.input] == ["images", "extra"]
    assert [o.name for o in model.graph.output] == ["scores", "total"]
    assert {i.name for i in model.graph.initializer} >= {"layer.w", "layer.b"}
    assert "unused" not in {i.name for i in model.graph.initializer}
    model = export_onnx(f, (np.ones((5, 3)), np.ones((5, 2))), tmp_path / "m.onnx",
                        params=params, input_names=["a", "b"], output_names=["s", "t"],
                        opset=20, metadata={"note": "hello"})
    assert [i.name for i in model.graph.input] == ["a", "b"]
    assert [o.name for o in model.graph.output] == ["s", "t"]
    assert model.opset_import[0].version == 20
    assert {p.key: p.value for p in model.metadata_props}["note"] == "hello"
    scores, total = run(tmp_path / "m.onnx", np.ones((2, 3)), np.ones((2, 2)))
    np.testing.assert_array_equal(scores, np.full((2, 2), 3.0))
    assert total == 16.0


@pytest.mark.parametrize("call, message", [
    (lambda p: export_onnx(tg.exp, (np.ones(3), 2.0), p),
     "example argument 1 is a float, not an array"),
    (lambda p: export_onnx(tg.exp, [np.array(["a"])], p), "has dtype <U1"),
    (lambda p: export_onnx(tg.exp, "x", p), "example_args must be an array or a tuple"),
    (lambda p: export_onnx(lambda q, x: x, (np.ones(3),), p, params={"w": 1.0}),
     "params['w'] is a float, not an array"),
    (lambda p: export_onnx(tg.exp, (np.ones(3),), p, opset=12), "opset must be an int from 18"),
    (lambda p: export_onnx(tg.exp, (np.ones(3),), p, input_names=["a", "b"]),
     "input_names must be 1 non-empty string"),
    (lambda p: export_onnx(tg.add, (np.ones(3), np.ones(3)), p, input_names=["a", "a"]),
     "repeat a name"),
    (lambda p: export_onnx(tg.add, (np.ones(3), np.ones(4)), p), "their sizes are [3, 4]"),
    (lambda p: export_onnx(tg.exp, (np.ones(()),), p), "a 0-d one has none"),
    (lambda p: export_onnx(3, (np.ones(3),), p), "f must be a function (or a tinygraph op), got "
                                                 "int"),
    (lambda p: export_onnx(tg.exp, (np.ones(3),), 3), "path must be a file name, got int"),
    (lambda p: export_onnx(tg.exp, (np.ones(3),), p, metadata=["a"]),
     "metadata must be a dict of strings to strings, got list"),
    (lambda p: export_onnx(tg.exp, (np.ones(3),), p, metadata={"epochs": 3}),
     "metadata must be a dict of strings to strings, got 'epochs': 3"),
    (lambda p: export_onnx(tg.exp, (np.ones(3),), p, dynamic_batch="no"),
     "dynamic_batch must be True or False, got 'no'"),
    (lambda p: export_onnx(lambda: tg.Tensor(np.ones(3)) * 2, (), p),
     "example_args is empty; give at least one example array"),
    (lambda p: export_onnx(lambda q: q["w"] * 2, (), p, params={"w": np.ones(3)}),
     "example_args is empty; give at least one example array"),
    (lambda p: export_onnx(lambda x: x[5], (np.ones((32, 3)),), p),
     "f fails for a batch of 1 (IndexError: getitem: inputs (1, 3): index 5 is out of bounds"),
])
def test_bad_arguments_are_one_line_errors(call, message, tmp_path):
    with pytest.raises(OnnxExportError) as info:
        call(tmp_path / "m.onnx")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "m.onnx").exists()


def test_a_missing_onnx_package_is_a_one_line_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError) as info:
        export_onnx(tg.exp, (np.ones(3),), "never-written.onnx")
    assert str(info.value) == ("tinygraph's ONNX support needs the onnx package, which is not "
                               "installed: pip install 'tinygraph[onnx]'")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="needs the onnxruntime package"):
        require("onnxruntime")


def test_a_failed_write_leaves_no_file_and_names_the_path_asked_for(tmp_path):
    asked = tmp_path / "no such dir" / "m.onnx"
    with pytest.raises(FileNotFoundError) as info:
        export_onnx(tg.exp, (np.ones(3),), asked)
    # said before anything is recorded, about the file asked for (not a temporary next to it)
    assert str(info.value) == (f"export_onnx: cannot write {asked}: the folder "
                               f"{asked.parent} does not exist")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "m.onnx").mkdir()  # the write itself fails: a folder where the file should be
    with pytest.raises(OSError) as info:
        export_onnx(tg.exp, (np.ones(3),), tmp_path / "m.onnx")
    assert str(info.value).startswith(f"export_onnx: cannot write {tmp_path / 'm.onnx'}: ")
    assert ".tmp" not in str(info.value) and "\n" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_an_op_form_with_no_onnx_equivalent_is_refused_not_mis_exported(tmp_path):
    """round(x, -1) of integers (to tens) has no ONNX form: the rule raises a one-line error
    (it used to return the error object, reported as a rule that returned no value)."""
    with pytest.raises(OnnxExportError, match=r"rounding integers to decimals=-1 \(tens"):
        export_onnx(lambda x: tg.round(x, -1), (np.array([14, 26]),), tmp_path / "r.onnx",
                    dynamic_batch=False)
    assert not (tmp_path / "r.onnx").exists()


def test_defonnx_takes_a_function():
    @tg.primitive(register=False)
    def ident(x):
        return x

    with pytest.raises(TypeError, match=r"ident.defonnx: the rule must be a function"):
        ident.defonnx(3)
