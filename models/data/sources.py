"""Loading a dataset by name or path: :func:`load` and :func:`load_sample`.

Sources are the sample embedded in the package, the downloadable datasets (from the cache, or
Debian's Fashion-MNIST package), a directory of IDX files and a Kaggle ``train.csv``.
"""

from __future__ import annotations

import importlib.resources
import io
import os
import zipfile
from pathlib import Path

import numpy as np

from .dataset import DIGIT_CLASSES, FASHION_MNIST_CLASSES, Dataset
from .files import DataError, PathLike, _describe_os_error, _error
from .idx import IDX_FILES, _find_idx_files, _load_idx_files, load_idx_dir
from .kaggle import read_kaggle_csv
from .remote import REMOTE_SOURCES, _cached_copy, _download, _resolve_remote, _verified_cache
from .remote import logger as _logger

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package puts the four gzipped IDX files."""

SAMPLE_FILENAME = "mnist_sample.npz"
"""Name of the embedded MNIST sample inside the package's ``sample/`` directory."""


def load_sample() -> Dataset:
    """Load the MNIST sample shipped inside the package (``models/sample/mnist_sample.npz``).

    It is a stratified, seeded subset of the real MNIST train and test sets built by
    ``python -m models.build_sample``; reading it needs neither network nor external files.
    """
    try:
        package_files = importlib.resources.files("models")
    except (TypeError, OSError, ModuleNotFoundError):
        # Python 3.10/3.11 cannot read resources of a namespace package whose path has
        # non-directory entries (e.g. an editable install's finder hook): read from models/,
        # the parent of this package's directory.
        package_files = Path(__file__).resolve().parent.parent  # type: ignore[assignment]
    resource = package_files / "sample" / SAMPLE_FILENAME
    where = str(resource)
    try:
        payload = resource.read_bytes()
    except OSError as exc:
        raise _error(where, f"embedded sample is missing: {_describe_os_error(exc)}") from None
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        return Dataset(
            train_images=arrays["train_images"],
            train_labels=arrays["train_labels"],
            test_images=arrays["test_images"],
            test_labels=arrays["test_labels"],
            name="sample",
            classes=list(DIGIT_CLASSES),
        )
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _error(where, f"embedded sample is damaged ({exc})") from None


def _load_remote(name: str, cache_dir: PathLike | None, allow_download: bool) -> Dataset:
    """Load a downloadable dataset from the cache, downloading it first if allowed.

    Either way every file is verified by its SHA-256 before it is used.
    """
    source = _resolve_remote(name)
    if allow_download:
        files = _download(source.name, cache_dir, None, True, None, 30.0)
    else:
        files = _verified_cache(source, cache_dir)
    return _load_idx_files(files, name=source.name, classes=source.classes)


def _verified_system_fashion_mnist() -> dict[str, Path] | None:
    """Return Debian's Fashion-MNIST files if all four are installed and verify, else None.

    A file whose SHA-256 is wrong is reported as one warning line, and the cache (or a
    download) is used instead.
    """
    directory = FASHION_MNIST_SYSTEM_DIR
    if not isinstance(_find_idx_files(directory), dict):
        return None
    digests = REMOTE_SOURCES["fashion-mnist"].sha256
    found: dict[str, Path] = {}
    for stem in IDX_FILES:
        path, problems = _cached_copy(directory, stem, digests[stem])
        if path is None:
            problem = problems[0] if problems else f"{directory}: no verified copy of {stem}"
            _logger.warning(
                "%s; not using Debian's copy (reinstall dataset-fashion-mnist to repair it)",
                problem,
            )
            return None
        found[stem] = path
    return found


def load(source: PathLike, *, cache_dir: PathLike | None = None, download: bool = True) -> Dataset:
    """Load a dataset by name or path.

    ``source`` is one of:

    * ``"sample"`` -- the MNIST sample shipped with the package (no network);
    * ``"mnist"`` -- the full MNIST from the cache (``cache_dir``, default
      :func:`default_cache_dir`), downloaded and verified first if needed;
    * ``"fashion-mnist"`` -- from :data:`FASHION_MNIST_SYSTEM_DIR` when Debian's package is
      installed (and its files verify), else like ``"mnist"``;
    * a directory holding the four IDX files (see :func:`load_idx_dir`);
    * a Kaggle ``train.csv`` (the dataset then has no test split).

    A cached file is always verified by its SHA-256 (a damaged one is downloaded again, or with
    ``download=False`` reported, saying to delete it); files placed in the cache by hand under
    the mirrors' names (``train-images-idx3-ubyte.gz``...) are verified and used the same way.
    With ``download=False`` a dataset that is not cached raises instead of downloading. Unknown
    names, missing paths, a Kaggle ``test.csv`` (no labels to train on) and malformed files raise
    :class:`DataError`.
    """
    text = os.fspath(source)
    key = text.strip().lower().replace("_", "-")
    if key == "sample":
        return load_sample()
    if key == "fashion-mnist":
        system = _verified_system_fashion_mnist()
        if system is not None:
            return _load_idx_files(system, name="fashion-mnist", classes=FASHION_MNIST_CLASSES)
    if key in REMOTE_SOURCES:
        return _load_remote(key, cache_dir, download)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_idx_dir(path)
    if path.is_file():
        if path.name.lower().endswith((".csv", ".csv.gz")):
            images, labels = read_kaggle_csv(path)
            if labels is None:
                raise _error(
                    path,
                    "has no 'label' column (a Kaggle test.csv?); training needs the labelled "
                    "train.csv",
                )
            return Dataset(images, labels, None, None, name=path.name)
        raise _error(
            path,
            "unsupported data file: expected a Kaggle train.csv, or the directory that holds "
            "the four IDX files",
        )
    if path.exists():
        raise _error(path, "is neither a regular file nor a directory")
    choices = "'sample', " + ", ".join(repr(n) for n in REMOTE_SOURCES)
    if os.sep in text or "/" in text or text.lower().endswith((".csv", ".gz")):
        raise _error(path, f"no such file or directory (data sources are {choices} or a path)")
    raise DataError(
        f"unknown data source {text!r}: use {choices}, a directory of IDX files, "
        "or a Kaggle train.csv path"
    )
