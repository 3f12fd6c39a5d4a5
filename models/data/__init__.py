"""Datasets for the tinygraph showcase models: MNIST, Fashion-MNIST, Kaggle CSVs and a sample.

Everything here returns plain NumPy arrays. Every problem with a data file (missing, truncated,
corrupt, malformed) raises :class:`DataError` with a single line that names the file, and every
file this package writes is written atomically (see :func:`atomic_write`).

Entry points:

* :func:`load` -- ``"sample"`` (shipped with the package, no network), ``"mnist"`` (downloaded
  once into a cache), ``"fashion-mnist"`` (Debian's ``dataset-fashion-mnist`` package when
  installed, otherwise downloaded), or a path to a directory of IDX files or a Kaggle
  ``train.csv``.
* :func:`read_idx`, :func:`load_idx_dir`, :func:`load_idx_test` (a folder of test files
  only), :func:`read_kaggle_csv`, :func:`write_submission`.
* :func:`download` -- fetches a dataset from public mirrors and verifies it by SHA-256.
* :func:`to_features`, :func:`one_hot`, :func:`train_val_split` -- preprocessing.

The code lives in one module per job, and everything public is re-exported here:

* :mod:`.files` -- :class:`DataError`, its one-line messages, gzip detection, :func:`atomic_write`;
* :mod:`.dataset` -- :class:`Dataset` and the class names;
* :mod:`.idx` -- IDX files, their canonical names and SHA-256 digests;
* :mod:`.kaggle` -- Kaggle CSV files and submissions;
* :mod:`.remote` -- mirrors, the download cache and verified downloads;
* :mod:`.sources` -- :func:`load` and :func:`load_sample`;
* :mod:`.preprocess` -- :func:`to_features`, :func:`one_hot`, :func:`train_val_split`.

Module attributes that the code reads at call time (such as ``FASHION_MNIST_SYSTEM_DIR``, read
by :func:`load`) must be patched in the module that defines them (here :mod:`.sources`), not
on this package.
"""

from __future__ import annotations

from .dataset import DIGIT_CLASSES, FASHION_MNIST_CLASSES, Dataset
from .files import DataError, atomic_write
from .files import PathLike as PathLike
from .idx import (
    FASHION_MNIST_SHA256,
    IDX_FILES,
    MNIST_SHA256,
    content_sha256,
    load_idx_dir,
    load_idx_test,
    read_idx,
)
from .kaggle import read_kaggle_csv, write_submission
from .preprocess import Split, one_hot, to_features, train_val_split
from .remote import REMOTE_SOURCES, RemoteSource, default_cache_dir, download
from .remote import USER_AGENT as USER_AGENT
from .sources import FASHION_MNIST_SYSTEM_DIR, load, load_sample
from .sources import SAMPLE_FILENAME as SAMPLE_FILENAME

__all__ = [
    "DIGIT_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SHA256",
    "FASHION_MNIST_SYSTEM_DIR",
    "IDX_FILES",
    "MNIST_SHA256",
    "REMOTE_SOURCES",
    "DataError",
    "Dataset",
    "RemoteSource",
    "Split",
    "atomic_write",
    "content_sha256",
    "default_cache_dir",
    "download",
    "load",
    "load_idx_dir",
    "load_idx_test",
    "load_sample",
    "one_hot",
    "read_idx",
    "read_kaggle_csv",
    "to_features",
    "train_val_split",
    "write_submission",
]
