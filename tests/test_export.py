"""python -m models.export end to end (the paper's MLP and the CNN to ONNX), and onnx_predict, the
prediction side of models.predict --onnx."""

import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install "
                                   "'tinygraph[onnx]')")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install "
                                          "'tinygraph[onnx]')")

from models import cnn, export, network  # noqa: E402
from models.data import DataError, load_sample, to_features  # noqa: E402
from models.init import init_params  # noqa: E402


def save_params(path, params, **config):
    """A params.npz as models.train writes it: the arrays and the settings as JSON."""
    np.savez(path, **params, __config__=np.array(json.dumps(config)))
    return path


@pytest.fixture(scope="module")
def images():
    return to_features(load_sample().test_images[:300], np.float32)


def export_cli(capsys, *args):
    code = export.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("arch, activation", [("mlp", "sigmoid"), ("mlp", "tanh"),
                                              ("cnn", "relu")])
def test_the_cli_exports_a_network_that_predicts_as_numpy(arch, activation, images, capsys,
                                                           tmp_path):
    params = (init_params((784, 32, 10), method="he", seed=3, dtype=np.float32)
              if arch == "mlp" else cnn.init_params((4, 8), (16,), seed=3))
    params_file = save_params(tmp_path / "params.npz", params, activation=activation)
    out = tmp_path / "model.onnx"
    code, printed, err = export_cli(capsys, "--params", params_file, "--out", out)
    assert code == 0, err
    assert f"wrote {out}" in printed and f"({arch}, {activation})" in printed
    assert "checked with ONNX Runtime on 64 random rows" in printed and "same predicted" in printed
    expected = network.predict(params, images, activation)
    np.testing.assert_array_equal(export.onnx_predict(out, images), expected)
    np.testing.assert_allclose(export.onnx_logits(out, images),
                               np.asarray(network.logits(params, images, activation)),
                               rtol=1e-5, atol=1e-5)
    assert export.onnx_predict(out, images[:1], threads=1).shape == (1,)


def test_a_fixed_batch_export_takes_whole_batches_only(images, capsys, tmp_path):
    params = init_params((784, 16, 10), seed=1, dtype=np.float32)
    out = tmp_path / "fixed.onnx"
    code, printed, _ = export_cli(capsys, "--params", save_params(tmp_path / "p.npz", params),
                                  "--out", out, "--fixed-batch", "--batch", "50")
    assert code == 0 and "input pixels (50, 784)" in printed
    np.testing.assert_array_equal(export.onnx_predict(out, images),
                                  network.predict(params, images))
    with pytest.raises(DataError, match="batches of exactly 50 rows"):
        export.onnx_predict(out, images[:70])


def test_a_float64_network_stays_float64(images, capsys, tmp_path):
    params = init_params((784, 16, 10), seed=2, dtype=np.float64)
    out = tmp_path / "f64.onnx"
    code, printed, _ = export_cli(capsys, "--params", save_params(tmp_path / "p.npz", params),
                                  "--out", out)
    assert code == 0 and "float64" in printed
    np.testing.assert_allclose(export.onnx_logits(out, images),
                               network.logits(params, images.astype(np.float64)), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("setup, args, message", [
    (None, ["--params", "{tmp}/missing.npz", "--out", "{tmp}/m.onnx"],
     "missing.npz: no such parameter file"),
    ("garbage", ["--params", "{tmp}/bad.npz", "--out", "{tmp}/m.onnx"],
     "bad.npz: not a params.npz written by models.train"),
    ("params", ["--params", "{tmp}/p.npz", "--out", "{tmp}/no/dir/m.onnx"],
     "--out {tmp}/no/dir/m.onnx: the folder {tmp}/no/dir does not exist"),
    ("params", ["--params", "{tmp}/p.npz", "--out", "{tmp}/p.npz"],
     "--out {tmp}/p.npz is the --params file: writing it would overwrite the input"),
    ("params", ["--params", "{tmp}/p.npz", "--out", "{tmp}/m.onnx", "--opset", "9"],
     "opset must be an int from 18"),
])
def test_bad_files_and_flags_are_one_line_errors_with_status_2(setup, args, message, capsys,
                                                               tmp_path):
    if setup == "garbage":
        (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    elif setup == "params":
        save_params(tmp_path / "p.npz", init_params((784, 8, 10), seed=0))
    code, printed, err = export_cli(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and printed == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message.format(tmp=tmp_path) in err
    assert not (tmp_path / "m.onnx").exists()
    if (tmp_path / "p.npz").exists():  # the trained weights are untouched
        with np.load(tmp_path / "p.npz") as npz:
            assert "W1" in npz.files


def test_a_batch_of_zero_rows_is_refused_by_the_parser(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        export.main(["--params", "p.npz", "--out", "m.onnx", "--batch", "0"])
    assert info.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_onnx_predict_reports_bad_models_and_rows_in_one_line(images, tmp_path):
    with pytest.raises(DataError, match="no such ONNX model file"):
        export.onnx_predict(tmp_path / "missing.onnx", images)
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(DataError, match="junk.onnx: ONNX Runtime cannot run it"):
        export.onnx_predict(tmp_path / "junk.onnx", images)
    params = init_params((784, 8, 10), seed=0, dtype=np.float32)
    export.export_network(params, "sigmoid", tmp_path / "m.onnx")
    with pytest.raises(DataError, match="reads rows of 784 pixels, got features of shape"):
        export.onnx_predict(tmp_path / "m.onnx", images[:, :100])
    assert export.onnx_predict(tmp_path / "m.onnx", images[:0]).shape == (0,)


def test_without_the_onnx_extra_the_cli_says_what_to_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    missing = {"onnx"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else real(name, *a))
    code, printed, err = export_cli(capsys, "--params", "p.npz", "--out", "m.onnx")
    assert code == 2 and printed == ""
    assert err == ("error: ONNX export and inference need onnx; install them with pip install "
                   "'tinygraph[onnx]'\n")
    missing.clear()
    assert export.missing_onnx(runtime=True) is None
    missing.add("onnxruntime")
    assert export.missing_onnx() is None
    assert "need onnxruntime; install" in export.missing_onnx(runtime=True)


# --- models.predict --onnx: the same CSV as with NumPy


@pytest.fixture(scope="module")
def kaggle_test_csv(tmp_path_factory):
    """A Kaggle-style test.csv (no label column) of 200 sample test images."""
    pixels = load_sample().test_images[:200].reshape(200, -1)
    path = tmp_path_factory.mktemp("kaggle") / "test.csv"
    header = ",".join(f"pixel{i}" for i in range(784))
    path.write_text(header + "\n" + "\n".join(",".join(map(str, row)) for row in pixels) + "\n")
    return path


@pytest.mark.parametrize("arch, dtype", [("mlp", np.float32), ("mlp", np.float64),
                                         ("cnn", np.float32)])
def test_predict_with_onnx_writes_the_csv_numpy_writes(arch, dtype, kaggle_test_csv, capsys,
                                                       tmp_path):
    from models import predict

    params = (init_params((784, 32, 10), method="he", seed=5, dtype=dtype) if arch == "mlp"
              else cnn.init_params((4, 8), (16,), seed=5))
    activation = "relu" if arch == "cnn" else "sigmoid"
    params_file = save_params(tmp_path / "params.npz", params, activation=activation, arch=arch)
    assert export.main(["--params", str(params_file), "--out", str(tmp_path / "m.onnx")]) == 0
    assert predict.main(["--params", str(params_file), "--data", str(kaggle_test_csv),
                         "--out", str(tmp_path / "numpy.csv")]) == 0
    assert predict.main(["--onnx", str(tmp_path / "m.onnx"), "--data", str(kaggle_test_csv),
                         "--out", str(tmp_path / "onnx.csv")]) == 0
    capsys.readouterr()
    numpy_csv = (tmp_path / "numpy.csv").read_text()
    assert numpy_csv.startswith("ImageId,Label\n1,") and numpy_csv.count("\n") == 201
    assert (tmp_path / "onnx.csv").read_text() == numpy_csv


def test_predict_takes_params_or_onnx_not_both(capsys, tmp_path):
    from models import predict

    with pytest.raises(SystemExit) as info:
        predict.main(["--params", "p.npz", "--onnx", "m.onnx", "--data", "d", "--out", "o.csv"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert predict.main(["--onnx", str(tmp_path / "none.onnx"), "--data", str(tmp_path),
                         "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_predict_with_onnx_without_the_extra_says_what_to_install(monkeypatch, capsys, tmp_path):
    from models import predict

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert predict.main(["--onnx", "m.onnx", "--data", str(tmp_path), "--out", "o.csv"]) == 2
    assert capsys.readouterr().err == ("error: ONNX export and inference need onnxruntime; "
                                       "install them with pip install 'tinygraph[onnx]'\n")


def test_the_onnx_benchmark_scores_both_engines_on_the_test_set(mnist_dir, capsys, tmp_path):
    from benchmarks import onnx as onnx_benchmark

    params = init_params((784, 16, 10), seed=4, dtype=np.float32)
    (tmp_path / "run").mkdir()
    params_file = save_params(tmp_path / "run" / "params.npz", params, activation="sigmoid")
    assert onnx_benchmark.main(["--params", str(params_file), "--mnist", str(mnist_dir),
                                "--samples", "1", "--min-time", "0"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("| network | accuracy, NumPy |") and len(rows) == 3
    cells = [cell.strip() for cell in rows[2].strip("|").split("|")]
    assert cells[0] == "784-16-10 (mlp, sigmoid, float32)" and cells[3] == "all"
    assert cells[1] == cells[2] and cells[1].endswith("%")  # the same accuracy


def test_a_model_whose_output_is_not_class_scores_is_one_line(images, tmp_path):
    import tinygraph as tg

    for name, f in (("flat", lambda pixels: tg.sum(pixels, axis=1)),
                    ("cube", lambda pixels: tg.reshape(pixels, (-1, 28, 28)))):
        path = tmp_path / f"{name}.onnx"
        tg.export_onnx(f, (images[:4],), path, input_names=["pixels"])
        with pytest.raises(DataError, match=r"its output .* has shape .*; expected class scores"):
            export.onnx_predict(path, images)


def test_the_onnx_benchmark_says_in_one_line_when_mnist_is_missing(capsys, tmp_path):
    from benchmarks import onnx as onnx_benchmark

    assert onnx_benchmark.main(["--params", "p.npz", "--mnist", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
