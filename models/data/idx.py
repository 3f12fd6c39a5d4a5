"""MNIST-style IDX files: reading one file, hashing its content, loading a directory of four."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from .dataset import DIGIT_CLASSES, Dataset
from .files import _GZIP_MAGIC, PathLike, _error, _is_gzip, reading

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


_MAX_IDX_PAYLOAD = 1_000_000_000
"""Largest IDX payload (bytes after the header) accepted; MNIST's largest file holds 47 MB."""

_MAX_DEFLATE_RATIO = 1032
"""Deflate cannot expand data more than about 1032 times: the most a gzip file can hold."""

_TRAILING_SCAN = 1 << 20
"""How many bytes past the declared payload are counted before giving up on counting."""

_CHUNK = 1 << 20


def _read_upto(handle: IO[bytes], count: int) -> bytes:
    """Read ``count`` bytes from ``handle``, fewer only at the end of the stream."""
    parts: list[bytes] = []
    while count > 0:
        part = handle.read(count)
        if not part:
            break
        parts.append(part)
        count -= len(part)
    return b"".join(parts)


@contextlib.contextmanager
def _idx_stream(path: Path) -> Iterator[tuple[IO[bytes], tuple[int, ...], bytes]]:
    """Open an IDX file (raw or gzip), check its header, and yield ``(stream, dims, header)``.

    The stream is positioned at the first byte of the payload. Only the header has been read:
    the magic number, the element type and the dimensions are checked, and the declared payload
    size is checked against :data:`_MAX_IDX_PAYLOAD` and against what the file can hold (its
    exact size for a raw file, :data:`_MAX_DEFLATE_RATIO` times its size for gzip data), so a
    forged header is refused before anything is allocated or decompressed. Failures are
    one-line :class:`DataError` errors naming the file.
    """
    with reading(path), open(path, "rb") as raw:
        status = os.fstat(raw.fileno())
        size = status.st_size if stat.S_ISREG(status.st_mode) else None
        compressed = raw.peek(2)[:2] == _GZIP_MAGIC
        with contextlib.ExitStack() as stack:
            handle: IO[bytes] = raw
            if compressed:
                handle = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
            start = _read_upto(handle, 4)
            if len(start) < 4:
                raise _error(
                    path, f"not an IDX file: only {len(start)} bytes, too short for a header"
                )
            magic = int.from_bytes(start, "big")
            type_code, ndim = start[2], start[3]
            if start[0] != 0 or start[1] != 0 or type_code not in _IDX_TYPES:
                raise _error(
                    path,
                    f"not an IDX file: bad magic number 0x{magic:08X} "
                    "(expected 0x00000801 for labels or 0x00000803 for images)",
                )
            if type_code != 0x08:
                raise _error(
                    path,
                    f"IDX element type 0x{type_code:02X} ({_IDX_TYPES[type_code]}) is not "
                    "supported; only unsigned bytes (0x08) are",
                )
            if ndim == 0:
                raise _error(path, "IDX header declares 0 dimensions")
            header_size = 4 + 4 * ndim
            rest = _read_upto(handle, 4 * ndim)
            if len(rest) < 4 * ndim:
                raise _error(
                    path,
                    f"truncated IDX header: {ndim} dimensions need {header_size} bytes, "
                    f"got {4 + len(rest)}",
                )
            dims = tuple(int.from_bytes(rest[i : i + 4], "big") for i in range(0, len(rest), 4))
            expected = math.prod(dims)
            needs = f"shape {dims} needs {expected} bytes of data after the header"
            if expected > _MAX_IDX_PAYLOAD:
                raise _error(
                    path,
                    f"IDX header declares shape {dims}, {expected} bytes of data: more than the "
                    f"limit of {_MAX_IDX_PAYLOAD} bytes (a damaged or forged header?)",
                )
            if size is not None and not compressed:
                got = size - header_size
                if got < expected:
                    raise _error(path, f"truncated: {needs}, got {got}")
                if got > expected:
                    raise _error(
                        path, f"{got - expected} unexpected trailing bytes: {needs}, got {got}"
                    )
            can_hold = size * _MAX_DEFLATE_RATIO if size is not None and compressed else None
            if can_hold is not None and header_size + expected > can_hold:
                raise _error(
                    path,
                    f"IDX header declares shape {dims}, {expected} bytes of data, which a "
                    f"{size}-byte gzip file cannot hold (truncated, or a forged header)",
                )
            yield handle, dims, start + rest


def _stream_payload(
    path: Path,
    handle: IO[bytes],
    dims: tuple[int, ...],
    *,
    keep: bool,
    digest: hashlib._Hash | None = None,
) -> np.ndarray | None:
    """Read exactly the payload that ``dims`` declares, then make sure nothing follows it.

    Returns the payload as a ``uint8`` array of shape ``dims`` when ``keep`` (else ``None``;
    memory is then one chunk), feeding every byte to ``digest`` when given. A short stream or
    trailing bytes (counted up to :data:`_TRAILING_SCAN`, so a gzip bomb is not inflated to
    count them) raise a one-line :class:`DataError`.
    """
    expected = math.prod(dims)
    needs = f"shape {dims} needs {expected} bytes of data after the header"
    out = np.empty(expected, dtype=np.uint8) if keep else None
    scratch = memoryview(out) if out is not None else memoryview(bytearray(min(_CHUNK, expected)))
    position = 0
    while position < expected:
        count = min(_CHUNK, expected - position)
        view = scratch[position : position + count] if out is not None else scratch[:count]
        got = handle.readinto(view)  # type: ignore[attr-defined]
        if not got:
            raise _error(path, f"truncated: {needs}, got {position}")
        if digest is not None:
            digest.update(view[:got])
        position += got
    extra = 0
    while extra <= _TRAILING_SCAN:  # reading to the end also checks a gzip member's CRC
        tail = handle.read(min(_CHUNK, _TRAILING_SCAN + 1 - extra))
        if not tail:
            break
        extra += len(tail)
    if extra > _TRAILING_SCAN:
        raise _error(path, f"more than {_TRAILING_SCAN} unexpected trailing bytes: {needs}")
    if extra:
        raise _error(
            path, f"{extra} unexpected trailing bytes: {needs}, got {expected + extra}"
        )
    return out.reshape(dims) if out is not None else None


def _idx_sha256(path: PathLike) -> str:
    """Return the SHA-256 of an IDX file's (decompressed) content, reading it as IDX.

    The same digest as :func:`content_sha256` for a well-formed IDX file, but the header is
    checked first and the payload is streamed in bounded memory and time: a file that is not
    IDX, is truncated, or has data after its payload (a gzip bomb) raises :class:`DataError`
    instead of being hashed to the end.
    """
    path = Path(path)
    digest = hashlib.sha256()
    with _idx_stream(path) as (handle, dims, header):
        digest.update(header)
        _stream_payload(path, handle, dims, keep=False, digest=digest)
    return digest.hexdigest()


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
    writable ``uint8`` array shaped as the header declares. The file is streamed: its header is
    checked before any data is read (a declared payload above 1e9 bytes, or more than the file
    can hold, is refused), exactly the declared number of bytes is read, and memory stays
    bounded by that size. Raises :class:`DataError` naming the file when it is missing, not
    gzip-decodable, has a bad magic number or another element type, or when the payload is not
    exactly the product of the dimensions (truncated, or followed by trailing data).
    """
    path = Path(path)
    with _idx_stream(path) as (handle, dims, _):
        array = _stream_payload(path, handle, dims, keep=True)
    assert array is not None
    return array


def _idx_candidates(stem: str) -> list[str]:
    """Return the accepted file names for e.g. ``train-images-idx3-ubyte``, in preference order."""
    dotted = re.sub(r"-(idx\d)-", r".\1-", stem)
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def _find_idx_file(directory: Path, stem: str) -> Path | None:
    """Return the first file of ``directory`` accepted for ``stem``, or None."""
    return next(
        (directory / n for n in _idx_candidates(stem) if (directory / n).is_file()), None
    )


def _find_idx_files(directory: Path) -> dict[str, Path] | list[str]:
    """Map each canonical IDX name to the file found in ``directory``, or list what is missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for stem in IDX_FILES:
        hit = _find_idx_file(directory, stem)
        if hit is None:
            missing.append(" or ".join(_idx_candidates(stem)))
        else:
            found[stem] = hit
    return missing if missing else found


def _read_split(
    images_path: Path, labels_path: Path | None, n_classes: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and check one split: images ``(N, 28, 28)`` and, if given, N labels below n_classes.

    Returns the ``uint8`` images and the labels as ``int64`` (``None`` without a labels file).
    """
    images = read_idx(images_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise _error(images_path, f"expected images of shape (N, 28, 28), got {images.shape}")
    if labels_path is None:
        return images, None
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise _error(labels_path, f"expected 1-D labels, got shape {labels.shape}")
    if len(labels) != len(images):
        raise _error(
            labels_path,
            f"has {len(labels)} labels but {images_path.name} has {len(images)} images",
        )
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise _error(
            labels_path, f"label {labels[bad[0]]} at index {bad[0]} is outside 0..{n_classes - 1}"
        )
    return images, labels.astype(np.int64)


def _load_idx_files(
    files: Mapping[str, Path], *, name: str, classes: Sequence[str] | None = None
) -> Dataset:
    """Load a :class:`Dataset` from the four IDX files of ``files`` (keyed by canonical name)."""
    class_names = list(classes) if classes is not None else list(DIGIT_CLASSES)
    arrays: list[np.ndarray | None] = []
    for split in ("train", "t10k"):
        arrays += _read_split(
            files[f"{split}-images-idx3-ubyte"], files[f"{split}-labels-idx1-ubyte"],
            len(class_names),
        )
    return Dataset(*arrays, name=name, classes=class_names)


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
    return _load_idx_files(found, name=name or directory.name, classes=classes)


def load_idx_test(directory: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Load the test split of an MNIST-style IDX directory: ``(images, labels or None)``.

    Only ``t10k-images-idx3-ubyte`` is needed (any of the names :func:`load_idx_dir` accepts,
    optionally ``.gz``); ``t10k-labels-idx1-ubyte`` is read when present, and the ``train-``
    files are ignored, so a folder holding just the test images can be predicted on. Returns
    ``uint8`` images shaped ``(N, 28, 28)`` and ``int64`` labels in 0..9, or ``None`` for the
    labels when that file is absent. Raises a one-line :class:`DataError` naming the file
    (wrong shape, label count or value, a broken file), or listing the names looked for when
    there are no test images.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise _error(directory, "not a directory of IDX files")
    images_stem, labels_stem = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
    images_path = _find_idx_file(directory, images_stem)
    if images_path is None:
        raise _error(
            directory,
            "no IDX test images; looked for " + " or ".join(_idx_candidates(images_stem)),
        )
    labels_path = _find_idx_file(directory, labels_stem)
    return _read_split(images_path, labels_path, len(DIGIT_CLASSES))
