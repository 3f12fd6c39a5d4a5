"""models.predict and models.render under bad input: parameter files of another network, numeric
flags, unreadable pictures in a folder, CSV quoting, an --out that is an input, IDX folders with
only the test files, and writes that fail. Every expected failure is one line ``error: ...`` on
stderr with exit status 2 and nothing written; the CLIs are run through their ``main(argv)``."""

from __future__ import annotations

import csv
import dataclasses
import errno
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import cnn, network, predict, render, train
from models import data as datasets
from models.images import load_digit_image
from models.init import init_params

SAMPLE = datasets.load("sample")


def save_params(path: Path, params: dict[str, np.ndarray], **settings: object) -> Path:
    """``params.npz`` as ``models.train.save_params`` writes it: the arrays and ``__config__``
    (the JSON of the run's settings)."""
    config = dataclasses.asdict(train.Config(**settings))  # type: ignore[arg-type]
    np.savez(path, **params, __config__=np.array(json.dumps(config)))
    return path


def mlp() -> dict[str, np.ndarray]:
    return init_params((784, 16, 10), method="xavier", seed=0, dtype=np.float32)


def small_cnn() -> dict[str, np.ndarray]:
    return cnn.init_params((2, 3), (8,), seed=0, dtype=np.float32)


def kaggle_csv(path: Path, count: int = 20) -> Path:
    """A Kaggle test.csv (no label column) of the sample's first test digits."""
    header = ",".join(f"pixel{i}" for i in range(784))
    rows = [",".join(map(str, x.reshape(-1))) for x in SAMPLE.test_images[:count]]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def draw_digit(path: Path, index: int = 0) -> Path:
    """A sample test digit, dark on white and three times larger, saved as a picture."""
    picture = Image.fromarray(255 - SAMPLE.test_images[index]).resize((84, 84))
    picture.convert("RGB").save(path, format="PNG")
    return path


def run(main, args: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --- 1. parameter files of another network --------------------------------------------------

def _without(params: dict, key: str) -> dict:
    return {k: v for k, v in params.items() if k != key}


BROKEN = {
    "b1 of another width": (lambda: {**mlp(), "b1": np.zeros(15, np.float32)}, ["b1", "(15,)"]),
    "W2 missing": (lambda: _without(mlp(), "W2"), ["missing W2"]),
    "3-D W1": (lambda: {**mlp(), "W1": np.zeros((784, 16, 1), np.float32)},
               ["W1", "(784, 16, 1)", "2-D"]),
    "W2 reads another width": (lambda: {**mlp(), "W2": np.zeros((17, 10), np.float32)},
                               ["do not chain", "W2", "(17, 10)"]),
    "a layer of no units": (lambda: {"W1": np.zeros((784, 0), np.float32),
                                     "b1": np.zeros(0, np.float32),
                                     "W2": np.zeros((0, 10), np.float32),
                                     "b2": np.zeros(10, np.float32)}, ["W1", "(784, 0)"]),
    "5 inputs": (lambda: init_params((5, 16, 10), dtype=np.float32), ["W1", "(5, 16)", "784"]),
    "20 outputs": (lambda: init_params((784, 16, 20), dtype=np.float32), ["20 scores"]),
    "CNN without conv2_b": (lambda: _without(small_cnn(), "conv2_b"), ["conv2_b"]),
    "CNN 3x3 kernels": (lambda: {**small_cnn(), "conv1_w": np.zeros((2, 1, 3, 3), np.float32)},
                        ["conv1_w", "(2, 1, 3, 3)"]),
    "CNN 2-D conv2_b": (lambda: {**small_cnn(), "conv2_b": np.zeros((3, 1), np.float32)},
                        ["conv2_b", "(3, 1)"]),
    "integer weights": (lambda: {k: (v * 100).astype(np.int64) for k, v in mlp().items()},
                        ["W1", "int64", "float"]),
    "boolean weights": (lambda: {k: v > 0 for k, v in mlp().items()}, ["W1", "bool"]),
    "complex CNN": (lambda: {k: v.astype(np.complex64) for k, v in small_cnn().items()},
                    ["complex64"]),
    "text bias": (lambda: {**mlp(), "b2": np.array(list("abcdefghij"))}, ["b2", "str"]),
    "NaN-filled (diverged)": (lambda: {k: np.full_like(v, np.nan) for k, v in mlp().items()},
                              ["W1", "NaN", "diverged"]),
    "one infinite bias": (lambda: {**mlp(), "b2": np.array([np.inf] + [0.0] * 9, np.float32)},
                          ["b2", "1 infinite", "diverged"]),
    "CNN with NaN": (lambda: {**small_cnn(), "fc2_b": np.full(10, np.nan, np.float32)},
                     ["fc2_b", "NaN"]),
    "a checkpoint": (lambda: {f"param/{k}": v for k, v in mlp().items()}, ["checkpoint"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
@pytest.mark.parametrize("tool", ["predict", "render"])
def test_params_of_another_network_is_one_line(tmp_path, capsys, case, tool):
    make, fragments = BROKEN[case]
    params = save_params(tmp_path / "params.npz", make())
    if tool == "predict":
        out = tmp_path / "pred.csv"
        args = ["--params", params, "--data", kaggle_csv(tmp_path / "test.csv"), "--out", out]
        code, _, err = run(predict.main, args, capsys)
    else:
        out = tmp_path / "graph.svg"
        code, _, err = run(render.main, ["--params", params, "--batch", 4, "--out", out], capsys)
    assert_one_line_error(code, err, str(params), *fragments)
    assert not out.exists() and not out.with_suffix(".dot").exists()


@pytest.mark.parametrize("config, fragments", [
    (np.array("not json {"), ["__config__", "JSON"]),
    (np.array(json.dumps([1, 2])), ["__config__", "JSON"]),
    (np.arange(3), ["__config__"]),
    (np.array(json.dumps({"activation": "swish"})), ["activation 'swish'", "sigmoid"]),
    (np.array(json.dumps({"threads": -2})), ["threads -2"]),
    (np.array(json.dumps({"threads": "two"})), ["threads 'two'"]),
    (np.array(json.dumps({"arch": "cnn"})), ["arch 'cnn'", "mlp"]),
])
def test_damaged_config_is_one_line(tmp_path, capsys, config, fragments):
    params = tmp_path / "params.npz"
    np.savez(params, **mlp(), __config__=config)
    out = tmp_path / "pred.csv"
    code, _, err = run(predict.main, ["--params", params, "--data",
                                      kaggle_csv(tmp_path / "test.csv"), "--out", out], capsys)
    assert_one_line_error(code, err, str(params), *fragments)
    assert not out.exists()


@pytest.mark.parametrize("content, fragments", [
    (b"junk", ["not a NumPy .npz archive"]),
    (b"", ["not a NumPy .npz archive"]),
    (b"PK\x03\x04 truncated zip", ["not a params.npz"]),
    (None, ["single .npy array"]),
])
def test_foreign_params_files_are_one_line(tmp_path, capsys, content, fragments):
    params = tmp_path / "params.npz"
    if content is None:
        with open(params, "wb") as handle:
            np.save(handle, np.zeros((784, 10)))
    else:
        params.write_bytes(content)
    code, _, err = run(predict.main, ["--params", params, "--data",
                                      kaggle_csv(tmp_path / "test.csv"), "--out",
                                      tmp_path / "o.csv"], capsys)
    assert_one_line_error(code, err, str(params), *fragments)
    assert "Python objects" not in err  # junk is not a pickle


def test_a_run_folder_as_params_points_at_its_params_npz(tmp_path, capsys):
    save_params(tmp_path / "params.npz", mlp())
    code, _, err = run(predict.main, ["--params", tmp_path, "--data",
                                      kaggle_csv(tmp_path / "test.csv"), "--out",
                                      tmp_path / "o.csv"], capsys)
    assert_one_line_error(code, err, "is a directory", str(tmp_path / "params.npz"))


def test_valid_params_predict_what_the_network_computes(tmp_path, capsys):
    weights = mlp()
    params = save_params(tmp_path / "params.npz", weights, activation="tanh")
    out = tmp_path / "submission.csv"
    code, stdout, err = run(predict.main, ["--params", params, "--data",
                                           kaggle_csv(tmp_path / "test.csv"), "--out", out],
                            capsys)
    assert code == 0, err
    expected = network.predict(weights, datasets.to_features(SAMPLE.test_images[:20]), "tanh")
    rows = read_rows(out)
    assert rows[0] == ["ImageId", "Label"]
    assert [int(r[1]) for r in rows[1:]] == expected.tolist()
    assert "wrote 20 predictions" in stdout


def test_a_cnn_file_without_config_is_predicted_with_relu(tmp_path, capsys):
    weights = small_cnn()
    params = tmp_path / "params.npz"
    np.savez(params, **weights)
    loaded, config = predict.load_params(params)
    assert config["activation"] == "relu" and config["threads"] == 0
    assert network.architecture(loaded) == "cnn"


def test_scores_that_overflow_are_an_error_not_label_0(tmp_path, capsys):
    weights = {k: v.astype(np.float16) for k, v in mlp().items()}
    weights["W1"] = np.full((784, 16), 6e4, np.float16)  # finite, but x @ W1 overflows float16
    weights["W2"] = np.where(np.arange(160).reshape(16, 10) % 2, 1, -1).astype(np.float16)
    params = save_params(tmp_path / "params.npz", weights, activation="relu")
    out = tmp_path / "submission.csv"
    code, _, err = run(predict.main, ["--params", params, "--data",
                                      kaggle_csv(tmp_path / "test.csv"), "--out", out], capsys)
    assert_one_line_error(code, err, str(params), "NaN or infinite for 20 of 20 images")
    assert not out.exists()


# --- 2. numeric flags -----------------------------------------------------------------------

@pytest.mark.parametrize("batch, fragment", [
    (0, "--batch must be at least 1"),
    (-3, "--batch must be at least 1"),
    (1001, "--batch 1001: the embedded sample has 1000 test images"),
])
def test_render_batch_out_of_range_is_one_line(tmp_path, capsys, batch, fragment):
    out = tmp_path / "graph.svg"
    code, _, err = run(render.main, ["--batch", batch, "--out", out], capsys)
    assert_one_line_error(code, err, fragment, str(batch))
    assert list(tmp_path.iterdir()) == []


def test_render_draws_the_batch_it_is_given(tmp_path, capsys):
    out = tmp_path / "graph.svg"
    code, stdout, err = run(render.main, ["--batch", 3, "--out", out], capsys)
    assert code == 0, err
    assert "3×784" in out.with_suffix(".dot").read_text()  # the images node: a batch of 3
    assert "wrote" in stdout


def test_render_refuses_an_arch_its_params_file_contradicts(tmp_path, capsys):
    params = save_params(tmp_path / "params.npz", mlp())
    code, _, err = run(render.main, ["--params", params, "--arch", "cnn", "--out",
                                     tmp_path / "g.svg"], capsys)
    assert_one_line_error(code, err, "--arch cnn", str(params), "mlp")


def test_render_out_that_is_a_directory_is_one_line(tmp_path, capsys):
    code, _, err = run(render.main, ["--out", tmp_path], capsys)
    assert_one_line_error(code, err, "--out", "is a directory")
    assert list(tmp_path.iterdir()) == []


# --- 3. unreadable pictures in a folder -----------------------------------------------------

@pytest.fixture
def params_file(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    weights = mlp()
    return save_params(tmp_path / "params.npz", weights), weights


def expected_labels(weights: dict, files: list[Path]) -> list[int]:
    images = np.stack([load_digit_image(f) for f in files])
    return network.predict(weights, datasets.to_features(images), "sigmoid").tolist()


def test_bad_pictures_in_a_folder_are_reported_per_row(tmp_path, capsys, params_file):
    params, weights = params_file
    folder = tmp_path / "digits"
    folder.mkdir()
    good = [draw_digit(folder / f"d{i}.png", i) for i in range(3)]
    Image.new("L", (40, 40), 255).save(folder / "blank.png")
    (folder / "notes.png").write_text("not a picture")
    (folder / "cut.png").write_bytes(good[0].read_bytes()[:100])
    out = tmp_path / "pred.csv"
    code, stdout, err = run(predict.main, ["--params", params, "--data", folder, "--out", out],
                            capsys)
    assert code == 0, err
    rows = read_rows(out)
    assert rows[0] == ["File", "Label", "Error"]
    table = {name: (label, error) for name, label, error in rows[1:]}
    assert sorted(table) == ["blank.png", "cut.png", "d0.png", "d1.png", "d2.png", "notes.png"]
    assert [int(table[g.name][0]) for g in good] == expected_labels(weights, good)
    assert all(table[g.name][1] == "" for g in good)
    assert table["blank.png"] == ("", "no digit found (the image is blank or has no contrast)")
    assert table["notes.png"] == ("", "not an image file Pillow can read")
    assert table["cut.png"][0] == "" and table["cut.png"][1]
    warning = err.splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: 3 of 6 pictures")
    assert all(name in warning[0] for name in ("blank.png", "cut.png", "notes.png"))
    assert "d0.png" not in warning[0]
    assert "cut.png: could not be read" in stdout and "3 predictions" in stdout


def test_a_folder_of_only_bad_pictures_is_an_error(tmp_path, capsys, params_file):
    params, _ = params_file
    folder = tmp_path / "digits"
    folder.mkdir()
    Image.new("L", (40, 40), 0).save(folder / "black.png")
    (folder / "empty.jpg").write_bytes(b"")
    out = tmp_path / "pred.csv"
    code, _, err = run(predict.main, ["--params", params, "--data", folder, "--out", out],
                       capsys)
    assert_one_line_error(code, err, "none of the 2 pictures", "black.png", "empty.jpg")
    assert not out.exists()


def test_a_single_bad_picture_is_an_error(tmp_path, capsys, params_file):
    params, _ = params_file
    picture = tmp_path / "blank.png"
    Image.new("L", (40, 40), 255).save(picture)
    out = tmp_path / "pred.csv"
    code, _, err = run(predict.main, ["--params", params, "--data", picture, "--out", out],
                       capsys)
    assert_one_line_error(code, err, str(picture), "no digit found")
    assert not out.exists()


# --- 4. the CSV is quoted ---------------------------------------------------------------------

def test_file_names_with_commas_quotes_and_newlines_round_trip(tmp_path, capsys, params_file):
    params, weights = params_file
    folder = tmp_path / "digits"
    folder.mkdir()
    names = ["a,9.png", 'say "7".png', "new\nline.png", "plain.png", "semi;colon 'x'.jpg"]
    files = [folder / name for name in names]
    for i, path in enumerate(files):
        draw_digit(path, i)
    (folder / "bad,\"name\"\n.png").write_text("not a picture")
    out = tmp_path / "pred.csv"
    code, stdout, err = run(predict.main, ["--params", params, "--data", folder, "--out", out],
                            capsys)
    assert code == 0, err
    rows = read_rows(out)
    assert rows[0] == ["File", "Label", "Error"] and all(len(row) == 3 for row in rows)
    table = {name: (label, error) for name, label, error in rows[1:]}
    assert set(table) == {*names, "bad,\"name\"\n.png"}
    assert [int(table[n][0]) for n in names] == expected_labels(weights, files)
    assert table["bad,\"name\"\n.png"] == ("", "not an image file Pillow can read")
    assert len(err.splitlines()) == 1 and "bad,\"name\"\\n.png" in err  # escaped, one line
    assert "new\\nline.png: " in stdout


# --- 5. --out never overwrites an input -------------------------------------------------------

def test_out_equal_to_the_kaggle_csv_is_refused(tmp_path, capsys, params_file):
    params, _ = params_file
    data = kaggle_csv(tmp_path / "test.csv")
    before = data.read_bytes()
    for out in (data, tmp_path / "sub" / ".." / "test.csv"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        code, _, err = run(predict.main, ["--params", params, "--data", data, "--out", out],
                           capsys)
        assert_one_line_error(code, err, f"--out {out}", "--data", "overwrite")
    os.link(data, tmp_path / "hardlink.csv")
    (tmp_path / "symlink.csv").symlink_to(data)
    for out in (tmp_path / "hardlink.csv", tmp_path / "symlink.csv"):
        code, _, err = run(predict.main, ["--params", params, "--data", data, "--out", out],
                           capsys)
        assert_one_line_error(code, err, "--data", "overwrite")
    assert data.read_bytes() == before


def test_out_equal_to_the_params_file_is_refused(tmp_path, capsys, params_file):
    params, _ = params_file
    before = params.read_bytes()
    code, _, err = run(predict.main, ["--params", params, "--data",
                                      kaggle_csv(tmp_path / "test.csv"), "--out", params], capsys)
    assert_one_line_error(code, err, "--params", "overwrite")
    assert params.read_bytes() == before


def test_out_among_the_pictures_is_refused(tmp_path, capsys, params_file):
    params, _ = params_file
    folder = tmp_path / "digits"
    folder.mkdir()
    picture = draw_digit(folder / "d0.png")
    before = picture.read_bytes()
    for out in (picture, folder / "predictions.png"):
        code, _, err = run(predict.main, ["--params", params, "--data", folder, "--out", out],
                           capsys)
        assert_one_line_error(code, err, f"--out {out}", str(folder))
    assert picture.read_bytes() == before and sorted(folder.iterdir()) == [picture]
    # a CSV beside the pictures is fine: it is not read as one
    code, _, err = run(predict.main, ["--params", params, "--data", folder, "--out",
                                      folder / "pred.csv"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("name, fragment", [("missing/pred.csv", "does not exist"),
                                            ("folder", "is a directory")])
def test_out_in_no_folder_is_refused_before_the_run(tmp_path, capsys, params_file, name,
                                                    fragment):
    params, _ = params_file
    (tmp_path / "folder").mkdir()
    code, _, err = run(predict.main, ["--params", params, "--data",
                                      kaggle_csv(tmp_path / "test.csv"), "--out",
                                      tmp_path / name], capsys)
    assert_one_line_error(code, err, "--out", fragment)


# --- 6. a folder with only the t10k IDX files --------------------------------------------------

def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.mark.parametrize("with_labels", [True, False])
def test_a_folder_with_only_the_test_idx_files_is_predicted(tmp_path, capsys, params_file,
                                                            with_labels):
    params, weights = params_file
    folder = tmp_path / "mnist"
    folder.mkdir()
    images, labels = SAMPLE.test_images[:30], SAMPLE.test_labels[:30]
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images, compress=True)
    if with_labels:
        write_idx(folder / "t10k-labels-idx1-ubyte", labels, compress=False)
    out = tmp_path / "pred.csv"
    code, stdout, err = run(predict.main, ["--params", params, "--data", folder, "--out", out],
                            capsys)
    assert code == 0, err
    predictions = network.predict(weights, datasets.to_features(images), "sigmoid")
    rows = read_rows(out)
    assert rows[0] == ["ImageId", "Label"] and len(rows) == 31
    assert [int(r[1]) for r in rows[1:]] == predictions.tolist()
    accuracy = f"accuracy {np.mean(predictions == labels):.4f} on 30 labelled images"
    assert (accuracy in stdout) == with_labels


def test_a_folder_with_idx_files_and_pictures_is_ambiguous(tmp_path, capsys, params_file):
    params, _ = params_file
    write_idx(tmp_path / "t10k-images-idx3-ubyte", SAMPLE.test_images[:3], compress=False)
    draw_digit(tmp_path / "d0.png")
    code, _, err = run(predict.main, ["--params", params, "--data", tmp_path, "--out",
                                      tmp_path / "pred.csv"], capsys)
    assert_one_line_error(code, err, "both IDX test files and PNG/JPG pictures")


def test_a_folder_with_neither_says_what_it_looked_for(tmp_path, capsys, params_file):
    params, _ = params_file
    folder = tmp_path / "empty"
    folder.mkdir()
    code, _, err = run(predict.main, ["--params", params, "--data", folder, "--out",
                                      tmp_path / "pred.csv"], capsys)
    assert_one_line_error(code, err, str(folder), "t10k-images-idx3-ubyte", "PNG/JPG")


# --- 7. writes that fail -----------------------------------------------------------------------

def disk_full(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("source", ["pictures", "kaggle", "render"])
def test_disk_full_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, params_file,
                                                  source):
    """Every writer flushes through os.fsync before its rename (tinygraph.files.atomic_write):
    failing it is the disk filling up at the end of the write."""
    params, _ = params_file
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if source == "render":
        out = out_dir / "graph.png"
        args = ["--params", params, "--batch", 2, "--out", out]
    else:
        out = out_dir / "pred.csv"
        data = (kaggle_csv(tmp_path / "test.csv") if source == "kaggle"
                else draw_digit(tmp_path / "d0.png"))
        args = ["--params", params, "--data", data, "--out", out]
    monkeypatch.setattr(os, "fsync", disk_full)
    code, _, err = run(render.main if source == "render" else predict.main, args, capsys)
    assert_one_line_error(code, err, str(out), "No space left on device")
    assert list(out_dir.iterdir()) == []  # no half-written file, no .tmp


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: chmod cannot make a folder read-only for us "
                           "(the disk-full test covers the same path)")
@pytest.mark.parametrize("tool", ["predict", "render"])
def test_read_only_output_folder_is_one_line(tmp_path, capsys, params_file, tool):
    params, _ = params_file
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    try:
        if tool == "render":
            out = out_dir / "graph.svg"
            code, _, err = run(render.main, ["--params", params, "--batch", 2, "--out", out],
                               capsys)
        else:
            out = out_dir / "pred.csv"
            code, _, err = run(predict.main, ["--params", params, "--data",
                                              kaggle_csv(tmp_path / "test.csv"), "--out", out],
                               capsys)
        assert_one_line_error(code, err, str(out), "ermission denied")
        assert list(out_dir.iterdir()) == []
    finally:
        out_dir.chmod(0o755)


def test_a_test_split_of_no_images_is_one_line(tmp_path, capsys, params_file):
    params, _ = params_file
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8), compress=False)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(0, np.uint8), compress=False)
    code, _, err = run(predict.main, ["--params", params, "--data", folder, "--out",
                                      tmp_path / "pred.csv"], capsys)
    assert_one_line_error(code, err, "holds no images to predict")
    assert not (tmp_path / "pred.csv").exists()
