"""Tests for models.data and models.build_sample: file formats, errors, sample and downloader."""

from __future__ import annotations

import gzip
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import local_http
import numpy as np
import pytest
from local_http import Handler, Server, dead_mirror, idx_bytes, one_line, serve, synthetic

from models import build_sample, data
from models.data import DataError, remote, sources

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
FASHION_DIR = data.FASHION_MNIST_SYSTEM_DIR
PIXELS = [f"pixel{i}" for i in range(784)]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def write(path: Path, payload: bytes, *, gz: bool = False) -> Path:
    """Write ``payload`` (gzip-compressed when ``gz``) to ``path`` and return it."""
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return path


def make_idx_dir(
    directory: Path, *, n_train: int = 30, n_test: int = 20, gz: bool = False, dotted: bool = False
) -> Path:
    """Write a small four-file IDX dataset into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic(n_train, seed=1)
    test_x, test_y = synthetic(n_test, seed=2)
    for stem, array in zip(data.IDX_FILES, (train_x, train_y, test_x, test_y), strict=True):
        name = stem.replace("-idx", ".idx") if dotted else stem
        write(directory / (name + (".gz" if gz else "")), idx_bytes(array), gz=gz)
    return directory


def kaggle_csv(images: np.ndarray, labels: np.ndarray | None) -> str:
    """Render images (and labels) in the Kaggle Digit Recognizer CSV format."""
    header = (["label"] if labels is not None else []) + PIXELS
    rows = [",".join(header)]
    for i, image in enumerate(images.reshape(len(images), -1)):
        values = [str(v) for v in image.tolist()]
        if labels is not None:
            values.insert(0, str(int(labels[i])))
        rows.append(",".join(values))
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images, labels = synthetic(7)
    img_path = write(tmp_path / "images", idx_bytes(images), gz=gz)
    lab_path = write(tmp_path / "labels", idx_bytes(labels), gz=gz)
    got_images = data.read_idx(img_path)
    got_labels = data.read_idx(lab_path)
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.flags.writeable


def test_read_idx_detects_gzip_by_content_not_suffix(tmp_path: Path) -> None:
    _, labels = synthetic(5)
    gz_without_suffix = write(tmp_path / "labels-idx1-ubyte", idx_bytes(labels), gz=True)
    raw_with_suffix = write(tmp_path / "labels-idx1-ubyte.gz", idx_bytes(labels))
    np.testing.assert_array_equal(data.read_idx(gz_without_suffix), labels)
    np.testing.assert_array_equal(data.read_idx(raw_with_suffix), labels)


def test_read_idx_empty_dimension(tmp_path: Path) -> None:
    path = write(tmp_path / "empty", idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    assert data.read_idx(path).shape == (0, 28, 28)


GOOD_LABELS = idx_bytes(np.arange(10, dtype=np.uint8))


@pytest.mark.parametrize(
    ("payload", "gz", "expected"),
    [
        (b"\x12\x34" + GOOD_LABELS[2:], False, "bad magic number 0x12340801"),
        (b"\x00\x00\x07\x01" + GOOD_LABELS[4:], False, "bad magic number 0x00000701"),
        (b"\x00\x00\x0d\x01" + GOOD_LABELS[4:], False, "element type 0x0D (float32)"),
        (b"\x00\x00\x08\x00", False, "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00", False, "truncated IDX header"),
        (b"\x00\x00", False, "too short"),
        (GOOD_LABELS[:-3], False, "truncated: shape (10,) needs 10 bytes of data after the header"),
        (GOOD_LABELS + b"xx", False, "2 unexpected trailing bytes"),
        (GOOD_LABELS[:-3], True, "got 7"),
        (b"", False, "too short"),
    ],
)
def test_read_idx_errors(tmp_path: Path, payload: bytes, gz: bool, expected: str) -> None:
    path = write(tmp_path / "broken-idx1-ubyte", payload, gz=gz)
    with pytest.raises(DataError) as exc:
        data.read_idx(path)
    message = one_line(exc)
    assert str(path) in message
    assert expected in message


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    images, _ = synthetic(20)
    blob = bytearray(gzip.compress(idx_bytes(images)))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = b"\xff" * 64
    path = write(tmp_path / "train-images-idx3-ubyte.gz", bytes(blob))
    with pytest.raises(DataError, match="corrupt gzip") as exc:
        data.read_idx(path)
    assert str(path) in one_line(exc)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    blob = gzip.compress(idx_bytes(synthetic(20)[0]))
    path = write(tmp_path / "cut.gz", blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated") as exc:
        data.read_idx(path)
    assert str(path) in one_line(exc)


def test_read_idx_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file") as exc:
        data.read_idx(tmp_path / "nope")
    assert "nope" in one_line(exc)
    with pytest.raises(DataError, match="directory"):
        data.read_idx(tmp_path)


# ---------------------------------------------------------------------------------------------
# IDX directories and Dataset
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (True, True)])
def test_load_idx_dir(tmp_path: Path, gz: bool, dotted: bool) -> None:
    directory = make_idx_dir(tmp_path / "digits", gz=gz, dotted=dotted)
    ds = data.load_idx_dir(directory)
    assert ds.name == "digits"
    assert ds.classes == [str(d) for d in range(10)]
    assert ds.train_images.shape == (30, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.train_labels.dtype == np.int64 and ds.train_labels.shape == (30,)
    assert ds.test_images is not None and ds.test_images.shape == (20, 28, 28)
    assert ds.test_labels is not None and ds.test_labels.dtype == np.int64
    np.testing.assert_array_equal(ds.train_images, synthetic(30, seed=1)[0])
    assert "train=30, test=20" in repr(ds)


def test_load_idx_dir_missing_file_lists_names(tmp_path: Path) -> None:
    directory = make_idx_dir(tmp_path / "d")
    (directory / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as exc:
        data.load_idx_dir(directory)
    message = one_line(exc)
    assert str(directory) in message
    for name in (
        "t10k-labels-idx1-ubyte",
        "t10k-labels-idx1-ubyte.gz",
        "t10k-labels.idx1-ubyte",
        "t10k-labels.idx1-ubyte.gz",
    ):
        assert name in message
    assert "train-images" not in message


def test_load_idx_dir_count_mismatch(tmp_path: Path) -> None:
    directory = make_idx_dir(tmp_path / "d")
    write(directory / "train-labels-idx1-ubyte", idx_bytes(np.zeros(29, np.uint8)))
    with pytest.raises(DataError, match="29 labels but train-images-idx3-ubyte has 30") as exc:
        data.load_idx_dir(directory)
    assert "train-labels-idx1-ubyte" in one_line(exc)


def test_load_idx_dir_bad_shape_and_labels(tmp_path: Path) -> None:
    directory = make_idx_dir(tmp_path / "d")
    write(directory / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((20, 32, 32), np.uint8)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: expected images of shape"):
        data.load_idx_dir(directory)
    directory = make_idx_dir(tmp_path / "e")
    write(directory / "t10k-labels-idx1-ubyte", idx_bytes(np.full(20, 12, np.uint8)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label 12 at index 0"):
        data.load_idx_dir(directory)
    with pytest.raises(DataError, match="not a directory"):
        data.load_idx_dir(tmp_path / "absent")


def test_dataset_validation() -> None:
    images, labels = synthetic(4)
    ds = data.Dataset(images, labels, None, None, name="x")
    assert ds.train_labels.dtype == np.int64 and ds.test_images is None
    assert ds.num_classes == 10
    with pytest.raises(AttributeError):
        ds.name = "y"  # type: ignore[misc]
    with pytest.raises(DataError, match="uint8"):
        data.Dataset(images.astype(np.float32), labels, None, None, name="x")
    with pytest.raises(DataError, match="one label per image"):
        data.Dataset(images, labels[:3], None, None, name="x")
    with pytest.raises(DataError, match=r"0\.\.1"):
        data.Dataset(images, labels, None, None, name="x", classes=["a", "b"])
    with pytest.raises(DataError, match="both"):
        data.Dataset(images, labels, images, None, name="x")


# ---------------------------------------------------------------------------------------------
# Kaggle CSV
# ---------------------------------------------------------------------------------------------


def test_kaggle_train_and_test_round_trip(tmp_path: Path) -> None:
    images, labels = synthetic(12)
    train = tmp_path / "train.csv"
    train.write_text(kaggle_csv(images, labels))
    got_images, got_labels = data.read_kaggle_csv(train)
    np.testing.assert_array_equal(got_images, images)
    assert got_images.dtype == np.uint8 and got_images.shape == (12, 28, 28)
    assert got_labels is not None and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_labels, labels)

    test = tmp_path / "test.csv"
    test.write_text(kaggle_csv(images[:5], None))
    got_images, got_labels = data.read_kaggle_csv(test)
    assert got_labels is None
    np.testing.assert_array_equal(got_images, images[:5])


def test_kaggle_csv_tolerates_bom_crlf_blank_lines_and_gzip(tmp_path: Path) -> None:
    images, labels = synthetic(3)
    text = kaggle_csv(images, labels)
    lines = text.splitlines()
    variant = "\ufeff" + "\r\n".join([lines[0], lines[1], "", lines[2], lines[3]]) + "\r\n"
    path = tmp_path / "train.csv"
    path.write_bytes(variant.encode("utf-8"))
    got_images, got_labels = data.read_kaggle_csv(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    gz_path = tmp_path / "train.csv.gz"
    blob = gzip.compress(text.encode())
    gz_path.write_bytes(blob)
    np.testing.assert_array_equal(data.read_kaggle_csv(gz_path)[0], images)
    gz_path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt gzip data") as exc:
        data.read_kaggle_csv(gz_path)
    assert str(gz_path) in one_line(exc)


def _bad_row(row: list[str], position: int, value: str | None) -> list[str]:
    row = list(row)
    if value is None:
        del row[position]
    else:
        row[position] = value
    return row


@pytest.mark.parametrize(
    ("position", "value", "expected"),
    [
        (5, None, "expected 785 comma-separated values, got 784"),
        (5, "1,2", "expected 785 comma-separated values, got 786"),
        (5, "1.5", "pixel4 is not an integer: '1.5'"),
        (5, "abc", "pixel4 is not an integer: 'abc'"),
        (5, "", "pixel4 is not an integer: ''"),
        (784, "256", "pixel783 value 256 is outside 0..255"),
        (1, "-1", "pixel0 value -1 is outside 0..255"),
        (1, "70000", "pixel0 value 70000 is outside 0..255"),
        (0, "10", "label 10 is outside 0..9"),
        (0, "-3", "label -3 is outside 0..9"),
    ],
)
def test_kaggle_malformed_row_names_line(
    tmp_path: Path, position: int, value: str | None, expected: str
) -> None:
    images, labels = synthetic(6)
    lines = kaggle_csv(images, labels).splitlines()
    # line numbers are 1-based and count the header: data row 4 is line 5; a blank line before
    # it must not shift the count.
    lines[4] = ",".join(_bad_row(lines[4].split(","), position, value))
    lines.insert(3, "")
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as exc:
        data.read_kaggle_csv(path)
    assert one_line(exc) == f"{path}, line 6: {expected}"


def test_kaggle_header_and_empty_errors(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty") as exc:
        data.read_kaggle_csv(path)
    assert str(path) in one_line(exc)
    path.write_text("id,pixel0\n1,2\n")
    with pytest.raises(DataError, match=r"line 1: not a Kaggle Digit Recognizer header"):
        data.read_kaggle_csv(path)
    path.write_text(",".join(["label", *PIXELS]) + "\n")
    with pytest.raises(DataError, match="no data rows"):
        data.read_kaggle_csv(path)
    path.write_bytes(",".join(["label", *PIXELS]).encode() + b"\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="line 2: not valid UTF-8"):
        data.read_kaggle_csv(path)
    with pytest.raises(DataError, match="no such file"):
        data.read_kaggle_csv(tmp_path / "missing.csv")


@pytest.fixture(scope="module")
def big_kaggle_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 42,000-row train.csv (as large as Kaggle's) built from a few distinct rows."""
    images, labels = synthetic(40, seed=3)
    images[images < 160] = 0  # MNIST-like: mostly zeros
    rows = kaggle_csv(images, labels).splitlines()
    header, body = rows[0], rows[1:]
    path = tmp_path_factory.mktemp("kaggle") / "train.csv"
    path.write_text(header + "\n" + "\n".join(body * 1050) + "\n")
    return path


def test_kaggle_42000_rows_is_fast(big_kaggle_csv: Path) -> None:
    start = time.perf_counter()
    images, labels = data.read_kaggle_csv(big_kaggle_csv)
    elapsed = time.perf_counter() - start
    assert images.shape == (42000, 28, 28) and labels is not None and labels.shape == (42000,)
    assert elapsed < 5.0, f"parsing 42,000 rows took {elapsed:.1f} s"


def test_kaggle_bad_line_near_end_of_large_file(tmp_path: Path) -> None:
    images, labels = synthetic(50, seed=4)
    rows = kaggle_csv(images, labels).splitlines()
    body = rows[1:] * 200  # 10,000 data rows: many blocks for the scan
    body[9_876] = body[9_876].replace(",", ",x", 1)
    bad = tmp_path / "train.csv"
    bad.write_text(rows[0] + "\n" + "\n".join(body) + "\n")
    with pytest.raises(DataError, match=r"train.csv, line 9878: pixel0 is not an integer: 'x"):
        data.read_kaggle_csv(bad)


# ---------------------------------------------------------------------------------------------
# Submission and atomic writing
# ---------------------------------------------------------------------------------------------


def test_write_submission(tmp_path: Path) -> None:
    path = tmp_path / "submission.csv"
    returned = data.write_submission(path, np.array([3, 0, 9], dtype=np.int64))
    assert returned == path
    assert path.read_bytes() == b"ImageId,Label\n1,3\n2,0\n3,9\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]


def test_write_submission_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"digits 0\.\.9"):
        data.write_submission(tmp_path / "s.csv", [1, 12])
    with pytest.raises(DataError, match="1-D integer"):
        data.write_submission(tmp_path / "s.csv", np.array([0.5]))
    with pytest.raises(DataError, match="cannot write") as exc:
        data.write_submission(tmp_path / "no" / "s.csv", [1])
    assert "s.csv" in one_line(exc)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), data.atomic_write(target) as handle:
        handle.write(b"partial")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with data.atomic_write(target, "w") as handle:
        handle.write("new\n")
    assert target.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(ValueError, match="mode"), data.atomic_write(target, "a"):
        pass


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------


def test_to_features() -> None:
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    features = data.to_features(images)
    assert features.shape == (1, 4) and features.dtype == np.float32
    np.testing.assert_allclose(features, [[0.0, 1.0, 0.2, 0.4]], rtol=1e-6)
    assert data.to_features(images, dtype=np.float64).dtype == np.float64
    with pytest.raises(DataError, match="integer"):
        data.to_features(images.astype(np.float32))
    with pytest.raises(DataError, match=r"0\.\.255"):
        data.to_features(np.array([[300]], dtype=np.int64))


def test_one_hot() -> None:
    encoded = data.one_hot(np.array([2, 0, 9]))
    assert encoded.shape == (3, 10) and encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded.argmax(axis=1), [2, 0, 9])
    np.testing.assert_array_equal(encoded.sum(axis=1), [1, 1, 1])
    assert data.one_hot([1], num_classes=3, dtype=np.int8).tolist() == [[0, 1, 0]]
    with pytest.raises(DataError):
        data.one_hot([3], num_classes=3)
    with pytest.raises(DataError):
        data.one_hot(np.array([[1]]))


def test_train_val_split_sizes_and_determinism() -> None:
    images = np.arange(100).reshape(100, 1, 1)
    labels = np.arange(100)
    split = data.train_val_split(images, labels)
    assert len(split.train_images) == 80 and len(split.val_images) == 20
    np.testing.assert_array_equal(split.train_images[:, 0, 0], split.train_labels)
    np.testing.assert_array_equal(split.val_images[:, 0, 0], split.val_labels)
    assert sorted([*split.train_labels, *split.val_labels]) == list(range(100))
    again = data.train_val_split(images, labels, seed=0)
    np.testing.assert_array_equal(again.val_labels, split.val_labels)
    other = data.train_val_split(images, labels, seed=1)
    assert not np.array_equal(other.val_labels, split.val_labels)
    x_train, y_train, x_val, y_val = data.train_val_split(images, labels, val_fraction=0.25)
    assert len(x_train) == len(y_train) == 75 and len(x_val) == len(y_val) == 25
    with pytest.raises(DataError):
        data.train_val_split(images, labels[:5])
    with pytest.raises(DataError):
        data.train_val_split(images, labels, val_fraction=1.0)


# ---------------------------------------------------------------------------------------------
# load()
# ---------------------------------------------------------------------------------------------


def test_load_unknown_source_lists_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as exc:
        data.load("cifar10")
    message = one_line(exc)
    for name in ("'cifar10'", "'sample'", "'mnist'", "'fashion-mnist'", "train.csv"):
        assert name in message
    with pytest.raises(DataError, match="no such file or directory"):
        data.load(str(tmp_path / "nowhere" / "train.csv"))


def test_load_paths(tmp_path: Path) -> None:
    directory = make_idx_dir(tmp_path / "idx")
    assert data.load(directory).train_images.shape == (30, 28, 28)
    images, labels = synthetic(8)
    train = tmp_path / "train.csv"
    train.write_text(kaggle_csv(images, labels))
    ds = data.load(str(train))
    assert ds.test_images is None and ds.test_labels is None and len(ds.train_images) == 8
    test = tmp_path / "test.csv"
    test.write_text(kaggle_csv(images, None))
    with pytest.raises(DataError, match="no 'label' column") as exc:
        data.load(test)
    assert str(test) in one_line(exc)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(DataError, match="unsupported data file"):
        data.load(other)


def test_load_sample_without_network_or_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("load('sample') must not use the network")

    monkeypatch.setattr(remote, "_open_url", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    ds = data.load("sample")
    assert ds.name == "sample"
    assert ds.train_images.shape == (10_000, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_images is not None and ds.test_images.shape == (1_000, 28, 28)
    assert ds.train_labels.dtype == np.int64
    assert ds.test_labels is not None
    assert np.bincount(ds.train_labels).tolist() == [1000] * 10
    assert np.bincount(ds.test_labels).tolist() == [100] * 10
    assert ds.classes == [str(d) for d in range(10)]


def test_sample_file_size() -> None:
    path = Path(sources.__file__).parent.parent / "sample" / data.SAMPLE_FILENAME
    assert 0 < path.stat().st_size <= 2_000_000


def test_fashion_mnist_from_system_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = make_idx_dir(tmp_path / "fashion", gz=True)
    monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIR", system)
    digests = {stem: data.content_sha256(system / (stem + ".gz")) for stem in data.IDX_FILES}
    source = data.RemoteSource(
        "fashion-mnist", (), digests, classes=data.REMOTE_SOURCES["fashion-mnist"].classes
    )
    monkeypatch.setitem(data.REMOTE_SOURCES, "fashion-mnist", source)
    ds = data.load("fashion-mnist", download=False, cache_dir=tmp_path / "cache")
    assert ds.name == "fashion-mnist"
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert len(ds.train_images) == 30


def test_not_cached_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")
    for name in ("mnist", "fashion-mnist"):
        with pytest.raises(DataError, match="not in the cache") as exc:
            data.load(name, cache_dir=tmp_path, download=False)
        assert str(tmp_path / name) in one_line(exc)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TINYGRAPH_DATA", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("TINYGRAPH_DATA")
    assert data.default_cache_dir() == tmp_path / "xdg" / "tinygraph"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "tinygraph"


# ---------------------------------------------------------------------------------------------
# Sample builder
# ---------------------------------------------------------------------------------------------


def test_select_stratified_is_deterministic_and_balanced() -> None:
    labels = np.arange(500) % 10
    first = build_sample.select_stratified(labels, 7, seed=5, split="train")
    again = build_sample.select_stratified(labels, 7, seed=5, split="train")
    other = build_sample.select_stratified(labels, 7, seed=6, split="train")
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.bincount(labels[first]).tolist() == [7] * 10
    assert np.all(np.diff(first) > 0)
    with pytest.raises(DataError, match="only 50 images of class 0"):
        build_sample.select_stratified(labels, 51, seed=5, split="train")


def test_encode_npz_is_reproducible() -> None:
    arrays = {"a": np.arange(5, dtype=np.uint8), "b": np.eye(3)}
    blob = build_sample.encode_npz(arrays)
    assert blob == build_sample.encode_npz(arrays)
    with np.load(io.BytesIO(blob)) as loaded:
        np.testing.assert_array_equal(loaded["b"], np.eye(3))


def test_build_refuses_oversized_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_idx_dir(tmp_path / "src", n_train=30, n_test=20)
    monkeypatch.setattr(build_sample, "verify_source", lambda src: None)
    monkeypatch.setattr(build_sample, "MAX_BYTES", 100)
    out = tmp_path / "out" / "s.npz"
    with pytest.raises(DataError, match="over 100"):
        build_sample.build(src, out, train_per_class=3, test_per_class=2)
    assert not out.exists()
    monkeypatch.setattr(build_sample, "MAX_BYTES", 2_000_000)
    arrays = build_sample.build(src, out, train_per_class=3, test_per_class=2)
    assert arrays["train_images"].shape == (30, 28, 28)
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.npz"]


def test_build_rejects_files_that_are_not_mnist(tmp_path: Path) -> None:
    src = make_idx_dir(tmp_path / "src", gz=True)
    with pytest.raises(DataError, match="not the genuine MNIST"):
        build_sample.build(src, tmp_path / "s.npz")
    assert build_sample.main(["--src", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 1


@pytest.fixture(scope="module")
def full_mnist() -> data.Dataset:
    """The full MNIST dataset from ../shared (skips when it is not there)."""
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"full MNIST not found at {MNIST_DIR} (CI has it at ../shared)")
    return data.load_idx_dir(MNIST_DIR, name="mnist")


def test_full_mnist_shapes(full_mnist: data.Dataset) -> None:
    assert full_mnist.train_images.shape == (60_000, 28, 28)
    assert full_mnist.test_images is not None and full_mnist.test_images.shape == (10_000, 28, 28)
    assert full_mnist.train_labels.max() == 9


def test_sample_images_are_real_mnist(full_mnist: data.Dataset) -> None:
    sample = data.load_sample()
    assert full_mnist.test_images is not None and full_mnist.test_labels is not None
    full = full_mnist
    for images, labels, full_images, full_labels in (
        (sample.train_images, sample.train_labels, full.train_images, full.train_labels),
        (sample.test_images, sample.test_labels, full.test_images, full.test_labels),
    ):
        assert images is not None and labels is not None
        index = {image.tobytes(): i for i, image in enumerate(full_images)}
        positions = [index.get(image.tobytes()) for image in images]
        assert None not in positions, "a sample image is not in full MNIST"
        np.testing.assert_array_equal(full_labels[positions], labels)
        assert len(set(positions)) == len(images)


def test_sample_matches_a_fresh_build(full_mnist: data.Dataset) -> None:
    assert full_mnist.test_images is not None and full_mnist.test_labels is not None
    rebuilt = build_sample.build_sample_arrays(
        full_mnist.train_images,
        full_mnist.train_labels,
        full_mnist.test_images,
        full_mnist.test_labels,
    )
    path = Path(sources.__file__).parent.parent / "sample" / data.SAMPLE_FILENAME
    with np.load(path) as shipped:
        assert sorted(shipped.files) == sorted(rebuilt)
        for key, array in rebuilt.items():
            np.testing.assert_array_equal(shipped[key], array, err_msg=key)
            assert shipped[key].dtype == array.dtype, key


def test_fashion_mnist_digests_match_debian_files() -> None:
    if not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({FASHION_DIR})")
    for stem in ("t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert data.content_sha256(FASHION_DIR / f"{stem}.gz") == data.FASHION_MNIST_SHA256[stem]


def test_mnist_digests_match_shared_sums() -> None:
    sums = MNIST_DIR / "SHA256SUMS-raw"
    if not sums.is_file():
        pytest.skip(f"{sums} not found (CI has it at ../shared)")
    listed = dict(line.split()[::-1] for line in sums.read_text().splitlines() if line.strip())
    assert listed == dict(data.MNIST_SHA256)


# ---------------------------------------------------------------------------------------------
# Downloader, against an HTTP server on 127.0.0.1
# ---------------------------------------------------------------------------------------------


# the fixtures of local_http, bound here so that pytest finds them
server = local_http.server
tiny_files = local_http.tiny_files
tiny_digests = local_http.tiny_digests
served_mnist = local_http.served_mnist


def cache_listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_download_good_files(
    server: Server, tiny_files: dict[str, bytes], tiny_digests: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(server, "good", tiny_files)
    target = data.download(
        "mnist", cache_dir=tmp_path, mirrors=[mirror], progress=True, digests=tiny_digests
    )
    assert target == tmp_path / "mnist"
    for stem, raw in tiny_files.items():
        assert (target / stem).read_bytes() == raw
    assert cache_listing(tmp_path) == ["mnist", *(f"mnist/{s}" for s in sorted(tiny_files))]
    ds = data.load_idx_dir(target)
    assert ds.train_images.shape == (12, 28, 28)


def test_download_cache_hit_makes_no_request(
    server: Server, tiny_files: dict[str, bytes], tiny_digests: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(server, "good", tiny_files)
    kwargs = {"cache_dir": tmp_path, "mirrors": [mirror], "progress": False}
    data.download("mnist", digests=tiny_digests, **kwargs)
    assert len(server.requests) == 4
    data.download("mnist", digests=tiny_digests, **kwargs)
    assert len(server.requests) == 4
    # a cached file whose content no longer matches is fetched again, and only that one
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    data.download("mnist", digests=tiny_digests, **kwargs)
    assert server.requests[4:] == ["/good/t10k-labels-idx1-ubyte.gz"]


def _truncating(payload: bytes) -> Callable[[Handler], None]:
    """A route that promises ``payload`` but closes the connection half-way."""

    def respond(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload[: len(payload) // 2])
        handler.close_connection = True

    return respond


def _corrupt_gzip(raw: bytes) -> bytes:
    blob = bytearray(gzip.compress(raw))
    blob[20:40] = b"\x00" * 20
    return bytes(blob)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("wrong-content", "wrong content: SHA-256"),
        ("corrupt-gzip", "gzip"),
        ("truncated-gzip", "truncated gzip data"),
        ("short-read", "connection closed after"),
        ("http-404", "HTTP 404"),
    ],
)
def test_download_bad_first_mirror_then_good(
    server: Server,
    tiny_files: dict[str, bytes],
    tiny_digests: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    reason: str,
) -> None:
    good = serve(server, "good", tiny_files)
    for stem, raw in tiny_files.items():
        route = f"/bad/{stem}.gz"
        if kind == "wrong-content":
            server.routes[route] = gzip.compress(raw[:-1] + bytes([raw[-1] ^ 1]))
        elif kind == "corrupt-gzip":
            server.routes[route] = _corrupt_gzip(raw)
        elif kind == "truncated-gzip":
            server.routes[route] = gzip.compress(raw)[:-12]
        elif kind == "short-read":
            server.routes[route] = _truncating(gzip.compress(raw))
    with caplog.at_level(logging.WARNING, logger="models.data"):
        target = data.download(
            "mnist",
            cache_dir=tmp_path,
            mirrors=[f"{server.base}/bad", good],
            progress=False,
            digests=tiny_digests,
        )
    for stem, raw in tiny_files.items():
        assert (target / stem).read_bytes() == raw
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4
    assert all(reason in w and "/bad/" in w and "\n" not in w for w in warnings)
    assert cache_listing(tmp_path) == ["mnist", *(f"mnist/{s}" for s in sorted(tiny_files))]


def test_download_dead_mirror_then_good(
    server: Server, tiny_files: dict[str, bytes], tiny_digests: dict[str, str], tmp_path: Path
) -> None:
    good = serve(server, "good", tiny_files)
    target = data.download(
        "mnist",
        cache_dir=tmp_path,
        mirrors=[dead_mirror(), good],
        progress=False,
        digests=tiny_digests,
    )
    assert (target / "train-images-idx3-ubyte").read_bytes() == tiny_files[
        "train-images-idx3-ubyte"
    ]


def test_download_accepts_uncompressed_response(
    server: Server, tiny_files: dict[str, bytes], tiny_digests: dict[str, str], tmp_path: Path
) -> None:
    plain = serve(server, "plain", tiny_files, gz=False)
    target = data.download(
        "mnist", cache_dir=tmp_path, mirrors=[plain], progress=False, digests=tiny_digests
    )
    assert (target / "t10k-labels-idx1-ubyte").read_bytes() == tiny_files["t10k-labels-idx1-ubyte"]


def test_download_timeout_then_good(
    server: Server, tiny_files: dict[str, bytes], tiny_digests: dict[str, str], tmp_path: Path
) -> None:
    good = serve(server, "good", tiny_files)
    release = threading.Event()

    def hang(handler: Handler) -> None:
        release.wait(5)

    server.routes["/slow/train-images-idx3-ubyte.gz"] = hang
    try:
        with pytest.raises(DataError, match=r"/slow/train-images-idx3-ubyte.gz: timed out"):
            data.download(
                "mnist",
                cache_dir=tmp_path,
                mirrors=[f"{server.base}/slow/"],
                progress=False,
                digests=tiny_digests,
                timeout=0.3,
            )
        target = data.download(
            "mnist",
            cache_dir=tmp_path,
            mirrors=[f"{server.base}/slow/", good],
            progress=False,
            digests=tiny_digests,
            timeout=0.3,
        )
    finally:
        release.set()
    assert (target / "train-images-idx3-ubyte").read_bytes() == tiny_files[
        "train-images-idx3-ubyte"
    ]


def test_download_all_mirrors_bad(
    server: Server, tiny_files: dict[str, bytes], tiny_digests: dict[str, str], tmp_path: Path
) -> None:
    corrupt = {stem: b"\x1f\x8b" + b"junk" * 50 for stem in tiny_files}
    for stem, blob in corrupt.items():
        server.routes[f"/corrupt/{stem}.gz"] = blob
    wrong = serve(server, "wrong", {s: r + b"\x00" for s, r in tiny_files.items()})
    dead = dead_mirror()
    mirrors = [dead, f"{server.base}/corrupt/", wrong, f"{server.base}/missing/"]
    with pytest.raises(DataError) as exc:
        data.download(
            "mnist", cache_dir=tmp_path, mirrors=mirrors, progress=False, digests=tiny_digests
        )
    message = one_line(exc)
    assert "train-images-idx3-ubyte" in message
    assert f"{dead}train-images-idx3-ubyte.gz: connection refused" in message
    assert "/corrupt/train-images-idx3-ubyte.gz: corrupt gzip data" in message
    assert "/wrong/train-images-idx3-ubyte.gz: wrong content" in message
    assert "/missing/train-images-idx3-ubyte.gz: HTTP 404" in message
    # nothing under a final name, no temporary files left behind
    assert cache_listing(tmp_path) == ["mnist"]


def test_download_keeps_verified_files_when_a_later_file_fails(
    server: Server, tiny_files: dict[str, bytes], tiny_digests: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(server, "half", tiny_files)
    server.routes["/half/t10k-images-idx3-ubyte.gz"] = _truncating(
        gzip.compress(tiny_files["t10k-images-idx3-ubyte"])
    )
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        data.download(
            "mnist", cache_dir=tmp_path, mirrors=[mirror], progress=False, digests=tiny_digests
        )
    assert cache_listing(tmp_path) == [
        "mnist",
        "mnist/train-images-idx3-ubyte",
        "mnist/train-labels-idx1-ubyte",
    ]


def test_download_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        data.download("cifar", cache_dir=tmp_path)
    with pytest.raises(DataError, match="unknown file"):
        data.download("mnist", cache_dir=tmp_path, digests={"train.csv": "00"})
    with pytest.raises(DataError, match="no mirrors"):
        data.download("mnist", cache_dir=tmp_path, mirrors=[])
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(DataError, match="cannot create cache directory") as exc:
        data.download("mnist", cache_dir=not_a_dir, mirrors=["http://127.0.0.1:9/"])
    assert str(not_a_dir / "mnist") in one_line(exc)


def test_load_mnist_downloads_into_cache(server: Server, served_mnist: Path) -> None:
    ds = data.load("mnist")
    assert ds.name == "mnist" and ds.train_images.shape == (12, 28, 28)
    assert (served_mnist / "mnist" / "train-images-idx3-ubyte").is_file()
    requests = len(server.requests)
    assert data.load("mnist", download=False).train_images.shape == (12, 28, 28)
    data.load("MNIST")
    assert len(server.requests) == requests
