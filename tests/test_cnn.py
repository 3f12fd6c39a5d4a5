"""The LeNet-style network of models.cnn: gradients, compiled step, training, files, the CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import tinygraph as tg
from models import checks, cnn, network, optim, predict, render, train
from models import data as datasets
from models.cli import blas_threads

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_params(seed: int = 0, dtype=np.float64) -> dict[str, np.ndarray]:
    return cnn.init_params((3, 4), (8,), seed=seed, dtype=dtype)


def test_layout_names_shapes_and_he_scale():
    params = cnn.init_params((16, 32), (128,), seed=0)
    assert {k: v.shape for k, v in params.items()} == {
        "conv1_w": (16, 1, 5, 5), "conv1_b": (16,), "conv2_w": (32, 16, 5, 5), "conv2_b": (32,),
        "fc1_w": (512, 128), "fc1_b": (128,), "fc2_w": (128, 10), "fc2_b": (10,)}
    assert all(v.dtype == np.float32 for v in params.values())
    assert params["conv2_w"].std() == pytest.approx(np.sqrt(2 / (16 * 25)), rel=0.05)
    assert not params["conv1_b"].any()
    assert cnn.layout(params) == ([16, 32], [128, 10])
    assert network.architecture(params) == "cnn" and network.input_size(params) == 784
    assert network.describe(params) == ("1x28x28 > conv5 16x24x24 > pool 16x12x12 > "
                                        "conv5 32x8x8 > pool 32x4x4 > 128 > 10")
    two_dense = cnn.init_params((4, 6), (32, 16), seed=0)
    assert cnn.layout(two_dense) == ([4, 6], [32, 16, 10])


def test_loss_gradient_matches_numerical_gradients():
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 784)), rng.integers(0, 10, 3)
    params = tiny_params()
    for activation in ("relu", "tanh"):
        tg.check_grads(lambda p, a=activation: network.loss(p, x, y, a), params, argnums=0,
                       mode="full")
    check = checks.mnist_cnn()  # what tinygraph-gradcheck --model models.checks:mnist_cnn runs
    tg.check_grads(check.f, *check.args, argnums=check.argnums, order=2)


def test_compiled_steps_equal_eager_steps():
    sample = datasets.load("sample")
    x = datasets.to_features(sample.train_images[:96], np.float32)
    y = sample.train_labels[:96]
    eager = tg.value_and_grad(network.loss)
    results = []
    for step in (eager, tg.trace(eager)):
        opt = optim.get_optimizer("adamw", lr=1e-3, weight_decay=1e-2,
                                  weight_decay_mask=lambda path, p: p.ndim > 1)
        params = cnn.init_params((4, 8), (16,), seed=3)
        state = opt.init(params)
        for start in (0, 32, 64):  # the first call traces, the others replay
            value, grads = step(params, x[start:start + 32], y[start:start + 32], "relu")
            params, state = opt.update(params, grads, state)
        results.append((value, params))
    (eager_value, eager_params), (traced_value, traced_params) = results
    assert traced_value == eager_value
    for key in eager_params:
        assert np.array_equal(traced_params[key], eager_params[key]), key


def test_a_few_steps_on_the_sample_lower_the_loss():
    sample = datasets.load("sample")
    x = datasets.to_features(sample.train_images[:256], np.float32)
    y = sample.train_labels[:256]
    params = cnn.init_params((4, 8), (32,), seed=0)
    opt = optim.adam(lr=5e-3)
    state = opt.init(params)
    step = tg.trace(tg.value_and_grad(network.loss))
    before, _ = network.evaluate(params, x, y, "relu")
    for _ in range(4):
        for start in range(0, 256, 64):
            _, grads = step(params, x[start:start + 64], y[start:start + 64], "relu")
            params, state = opt.update(params, grads, state)
    after, accuracy = network.evaluate(params, x, y, "relu")
    assert after < 0.6 * before and accuracy > 0.4  # 3.4 -> 1.6 and 10% -> 54% when written


def test_unknown_layouts_are_one_line_errors():
    params = tiny_params()
    for broken, message in [
        ({**params, "fc9_w": params["fc1_w"]}, "unexpected ['fc9_w']"),
        ({k: v for k, v in params.items() if k != "conv2_b"}, "missing ['conv2_b']"),
        ({**params, "conv2_w": params["conv2_w"][:, :2]}, "conv2_w (4, 2, 5, 5)"),
        ({**params, "fc1_w": params["fc1_w"][:10]}, "fc1_w (10, 8)"),
        ({"kernel": params["conv1_w"]}, "unknown network layout (kernel)"),
        ({"W1": np.zeros((4, 3)), "b1": np.zeros(3), "W2": np.zeros((2, 1)),
          "b2": np.zeros(1)}, "do not chain"),
    ]:
        with pytest.raises(ValueError) as info:
            network.architecture(broken)
        assert message in str(info.value) and "\n" not in str(info.value)


def write_idx_dir(directory: Path, train_count: int, test_count: int) -> Path:
    """The first images of the embedded sample as a directory of four IDX files."""
    sample = datasets.load("sample")
    directory.mkdir(parents=True)
    arrays = (sample.train_images[:train_count], sample.train_labels[:train_count],
              sample.test_images[:test_count], sample.test_labels[:test_count])
    for name, array in zip(datasets.IDX_FILES, arrays, strict=True):
        header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
            int(d).to_bytes(4, "big") for d in array.shape)
        (directory / name).write_bytes(header + array.astype(np.uint8).tobytes())
    return directory


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory) -> tuple[Path, Path]:
    """One epoch of --arch cnn (its preset) on 1,000 training and 200 test images."""
    root = tmp_path_factory.mktemp("cnn")
    data = write_idx_dir(root / "idx", 1000, 200)
    out = root / "run"
    assert train.main(["--arch", "cnn", "--epochs", "1", "--data", str(data),
                       "--out", str(out), "--no-progress"]) == 0
    return out, data


def test_cli_run_with_arch_cnn(cnn_run, capsys):
    out, _ = cnn_run
    metrics = json.loads((out / "metrics.json").read_text())
    config = metrics["config"]
    assert config["arch"] == "cnn" and config["preset"] == "cnn"
    assert config["optimizer"] == train.PRESETS["cnn"]["optimizer"] and config["trace"]
    assert metrics["network"].startswith("1x28x28 > conv5 32x24x24")
    assert metrics["layer_sizes"] is None and metrics["test_accuracy"] > 0.3
    with np.load(out / "params.npz") as npz:
        assert npz["conv1_w"].shape == (32, 1, 5, 5) and npz["conv1_w"].dtype == np.float32
    dot = (out / "graph.dot").read_text()
    assert all(f"cluster_{name}" in dot for name in ("conv1", "conv2", "fc1", "output", "loss"))
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    if shutil.which("dot"):
        assert "conv2d" in (out / "graph.svg").read_text()


def test_predict_and_evaluate_with_a_cnn_params_file(cnn_run, tmp_path, capsys):
    out, data = cnn_run
    params, config = predict.load_params(out / "params.npz")
    assert network.architecture(params) == "cnn" and config["activation"] == "relu"
    dataset = datasets.load(data)
    x = datasets.to_features(dataset.test_images, np.float32)
    with blas_threads(config["threads"]):
        loss, accuracy = network.evaluate(params, x, dataset.test_labels, "relu")
    metrics = json.loads((out / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test_accuracy"]) and np.isfinite(loss)
    assert predict.main(["--params", str(out / "params.npz"), "--data", str(data),
                         "--out", str(tmp_path / "pred.csv")]) == 0
    assert f"accuracy {accuracy:.4f} on 200" in capsys.readouterr().out
    lines = (tmp_path / "pred.csv").read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 201


def test_render_draws_the_cnn(cnn_run, tmp_path, capsys):
    out, _ = cnn_run
    for args in (["--arch", "cnn"], ["--params", str(out / "params.npz"), "--collapse"]):
        target = tmp_path / "graph.svg"
        assert render.main([*args, "--batch", "4", "--out", str(target)]) == 0
        if shutil.which("dot"):
            assert "conv1" in target.read_text()


def test_predict_refuses_an_unknown_layout_in_one_line(tmp_path, capsys):
    params = tmp_path / "params.npz"
    np.savez(params, kernel=np.zeros((3, 1, 5, 5)))
    assert predict.main(["--params", str(params), "--data", ".", "--out",
                         str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown network layout" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--arch", "resnet"], "unknown architecture --arch 'resnet': use mlp or cnn"),
    (["--arch", "CNN"], "unknown architecture --arch 'CNN': use mlp or cnn"),
    (["--arch", "cnn", "--threads", "-1"], "--threads must be >= 0, got -1"),
])
def test_arch_errors_are_one_line(tmp_path, capsys, args, message):
    assert train.main([*args, "--epochs", "1", "--out", str(tmp_path / "x"),
                       "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_resuming_a_cnn_run_as_an_mlp_is_refused(cnn_run, tmp_path, capsys):
    out, _ = cnn_run
    assert train.main(["--resume", str(out), "--arch", "mlp", "--epochs", "2",
                       "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot continue with --arch mlp (was cnn)" in err and err.count("\n") == 1


def test_presets_and_arch_flag_combine():
    def config(*argv):
        return train.build_config(*train.parse_args([*argv]))

    assert config().arch == "mlp" and config().preset == "tuned"
    assert config("--arch", "cnn").preset == "cnn"
    assert config("--preset", "cnn").arch == "cnn"
    mixed = config("--preset", "tuned", "--arch", "cnn")  # the flag wins over the preset
    assert (mixed.arch, mixed.optimizer, mixed.channels) == ("cnn", "nesterov", [32, 64])
    assert config("--arch", "cnn", "--channels", "8,12").channels == [8, 12]


def test_a_resumed_cnn_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    data = write_idx_dir(tmp_path / "idx", 300, 50)
    common = ["--arch", "cnn", "--channels", "4,8", "--hidden", "16", "--epochs", "2",
              "--data", str(data), "--no-progress"]
    assert train.main([*common, "--out", str(tmp_path / "whole")]) == 0
    real_save = train.save_checkpoint

    def save_then_interrupt(*args, **kwargs):  # Ctrl-C right after epoch 1's checkpoint
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "save_checkpoint", save_then_interrupt)
    assert train.main([*common, "--out", str(tmp_path / "part")]) == 130
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    assert train.main(["--resume", str(tmp_path / "part"), "--no-progress"]) == 0
    with np.load(tmp_path / "whole" / "params.npz") as a, \
            np.load(tmp_path / "part" / "params.npz") as b:
        assert set(a.files) == set(b.files) and "conv2_w" in a.files
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key
