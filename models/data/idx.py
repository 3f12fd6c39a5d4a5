"""MNIST-style IDX files: reading one file, hashing its content, loading a directory of four."""

from __future__ import annotations

import gzip
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .dataset import DIGIT_CLASSES, Dataset
from .files import PathLike, _error, _is_gzip, reading

IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""The four files of an MNIST-style dataset, under their canonical (uncompressed) names."""

MNIST_SHA256: Mapping[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
"""SHA-256 of the decompressed MNIST files (the same for every faithful copy)."""

FASHION_MNIST_SHA256: Mapping[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
"""SHA-256 of the decompressed Fashion-MNIST files (from Debian's dataset-fashion-mnist)."""

_IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}


def _read_bytes(path: Path) -> bytes:
    """Return the content of ``path``, gunzipped when it is gzip data; DataError on any failure."""
    with reading(path):
        if not _is_gzip(path):
            return path.read_bytes()
        with gzip.open(path, "rb") as handle:
            return handle.read()


def content_sha256(path: PathLike) -> str:
    """Return the hex SHA-256 of a file's content, decompressed first if it is gzip data.

    This is the digest that :data:`MNIST_SHA256` and :data:`FASHION_MNIST_SHA256` hold, so it
    is the same whether a copy is stored raw or gzipped (with any compression level).
    """
    path = Path(path)
    digest = hashlib.sha256()
    with reading(path):
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed -- detected by its magic bytes) into an array.

    Only unsigned-byte IDX files are supported: magic ``0x00000801`` (labels, 1-D) and
    ``0x00000803`` (images, 3-D), or any other dimension count with type code ``0x08``. Returns a
    writable ``uint8`` array shaped as the header declares. Raises :class:`DataError` naming the
    file when it is missing, not gzip-decodable, has a bad magic number or another element type,
    or when the payload is not exactly the product of the dimensions (e.g. truncated).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise _error(path, f"not an IDX file: only {len(data)} bytes, too short for a header")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or type_code not in _IDX_TYPES:
        raise _error(
            path,
            f"not an IDX file: bad magic number 0x{magic:08X} "
            "(expected 0x00000801 for labels or 0x00000803 for images)",
        )
    if type_code != 0x08:
        raise _error(
            path,
            f"IDX element type 0x{type_code:02X} ({_IDX_TYPES[type_code]}) is not supported; "
            "only unsigned bytes (0x08) are",
        )
    if ndim == 0:
        raise _error(path, "IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _error(
            path, f"truncated IDX header: {ndim} dimensions need {header} bytes, got {len(data)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(dims)
    got = len(data) - header
    if got < expected:
        raise _error(
            path,
            f"truncated: shape {dims} needs {expected} bytes of data after the header, got {got}",
        )
    if got > expected:
        raise _error(
            path,
            f"{got - expected} unexpected trailing bytes: shape {dims} needs {expected} bytes "
            f"of data after the header, got {got}",
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _idx_candidates(stem: str) -> list[str]:
    """Return the accepted file names for e.g. ``train-images-idx3-ubyte``, in preference order."""
    dotted = re.sub(r"-(idx\d)-", r".\1-", stem)
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def _find_idx_files(directory: Path) -> dict[str, Path] | list[str]:
    """Map each canonical IDX name to the file found in ``directory``, or list what is missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for stem in IDX_FILES:
        names = _idx_candidates(stem)
        hit = next((directory / n for n in names if (directory / n).is_file()), None)
        if hit is None:
            missing.append(" or ".join(names))
        else:
            found[stem] = hit
    return missing if missing else found


def load_idx_dir(
    directory: PathLike, *, name: str | None = None, classes: Sequence[str] | None = None
) -> Dataset:
    """Load the four MNIST-style IDX files of ``directory`` into a :class:`Dataset`.

    Each file may be named ``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte`` (likewise
    for the labels and the ``t10k-`` test files), optionally with ``.gz``. Images must be
    ``(N, 28, 28)``, labels ``(N,)`` with the same N and values in ``range(len(classes))``.
    ``name`` defaults to the directory name and ``classes`` to the digits ``"0"``..``"9"``.
    Raises :class:`DataError` naming the offending file, or listing the names looked for when a
    file is missing.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise _error(directory, "not a directory of IDX files")
    found = _find_idx_files(directory)
    if isinstance(found, list):
        raise _error(directory, "missing IDX files; looked for " + "; ".join(found))
    class_names = list(classes) if classes is not None else list(DIGIT_CLASSES)
    arrays: list[np.ndarray] = []
    for split in ("train", "t10k"):
        images_path = found[f"{split}-images-idx3-ubyte"]
        labels_path = found[f"{split}-labels-idx1-ubyte"]
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise _error(images_path, f"expected images of shape (N, 28, 28), got {images.shape}")
        if labels.ndim != 1:
            raise _error(labels_path, f"expected 1-D labels, got shape {labels.shape}")
        if len(labels) != len(images):
            raise _error(
                labels_path,
                f"has {len(labels)} labels but {images_path.name} has {len(images)} images",
            )
        bad = np.flatnonzero(labels >= len(class_names))
        if bad.size:
            raise _error(
                labels_path,
                f"label {labels[bad[0]]} at index {bad[0]} is outside 0..{len(class_names) - 1}",
            )
        arrays += [images, labels.astype(np.int64)]
    return Dataset(*arrays, name=name or directory.name, classes=class_names)
