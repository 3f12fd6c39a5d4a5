"""A trained network's ``params.npz`` read and checked, and output paths checked against inputs:
what ``models.predict``, ``models.render``, ``models.export`` and ``benchmarks.onnx`` share.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from models import data as datasets
from models import network

PIXELS = 28 * 28
"""Inputs per image of every source predict reads (28x28 pictures)."""

CLASSES = 10
"""Outputs the network must give: the digits 0..9 (Fashion-MNIST has 10 classes too)."""

_NPZ_MAGIC = b"PK"  # an .npz is a zip archive
_NPY_MAGIC = b"\x93NUMPY"



def load_params(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The weights and the training settings stored by ``models.train`` in ``params.npz``.

    Everything is checked before it is used, each problem a one-line :class:`DataError` that
    names the file and the array: the file itself (missing, unreadable, not an ``.npz``, Python
    objects), the network (:func:`models.network.architecture`: names, shapes, dtypes; 784
    inputs and 10 outputs), the values (:func:`models.network.check_finite`: NaN or infinite
    weights are a diverged run), and ``__config__`` (JSON; a known activation; ``threads`` a
    count). The settings returned always hold ``activation`` (when the file has no
    ``__config__``: relu for the CNN, the paper's sigmoid for the MLP) and ``threads``.
    """
    arrays = _read_npz(path)
    raw_config = arrays.pop("__config__", None)
    try:
        kind = network.architecture(arrays)
        network.check_finite(arrays)
    except ValueError as exc:
        raise datasets.DataError(f"{path}: {exc}") from None
    inputs, outputs = network.input_size(arrays), network.output_size(arrays)
    if inputs != PIXELS:
        raise datasets.DataError(f"{path}: W1 has shape {tuple(arrays['W1'].shape)}: the network "
                                 f"reads {inputs} pixels per image, the images are 28x28 = "
                                 f"{PIXELS}")
    if outputs != CLASSES:
        raise datasets.DataError(f"{path}: the network gives {outputs} scores per image, one per "
                                 f"class; the digits are {CLASSES}")
    return arrays, _settings(path, raw_config, kind)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file ``path``; a one-line DataError for anything else."""
    if not path.exists():
        raise datasets.DataError(f"{path}: no such parameter file (expected params.npz from "
                                 "models.train)")
    if path.is_dir():
        hint = (f"; did you mean {path / 'params.npz'}?" if (path / "params.npz").is_file()
                else "")
        raise datasets.DataError(f"{path}: is a directory, not a params.npz{hint}")
    foreign = f"{path}: not a params.npz written by models.train"
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(_NPY_MAGIC))
        if magic.startswith(_NPY_MAGIC):
            raise datasets.DataError(f"{foreign} (it is a single .npy array; params.npz holds "
                                     "one named array per weight)")
        if not magic.startswith(_NPZ_MAGIC):
            raise datasets.DataError(f"{foreign} (not a NumPy .npz archive)")
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except datasets.DataError:
        raise
    except OSError as exc:
        if exc.errno is None:  # zipfile's and NumPy's complaints about the content
            raise datasets.DataError(f"{foreign} ({' '.join(str(exc).split())})") from None
        raise datasets.DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # a damaged or foreign file is one clear line
        reason = ("it holds Python objects, which are never loaded" if "pickle" in str(exc)
                  else " ".join(str(exc).split()) or type(exc).__name__)
        raise datasets.DataError(f"{foreign} ({reason})") from None


def _settings(path: Path, raw: np.ndarray | None, kind: str) -> dict[str, Any]:
    """``__config__`` (the JSON of models.train's settings) read and checked, with defaults."""
    defaults: dict[str, Any] = {"activation": "relu" if kind == "cnn" else "sigmoid",
                                "threads": 0}
    if raw is None:
        return defaults
    config = None
    if raw.shape == () and raw.dtype.kind == "U":
        try:
            config = json.loads(str(raw))
        except ValueError:
            config = None
    if not isinstance(config, dict):
        raise datasets.DataError(f"{path}: __config__ is not the JSON object of training "
                                 "settings that models.train stores")
    config = {**defaults, **config}
    if config["activation"] not in network.ACTIVATIONS:
        raise datasets.DataError(f"{path}: __config__ names the activation "
                                 f"{config['activation']!r}; expected one of "
                                 f"{', '.join(network.ACTIVATIONS)}")
    threads = config["threads"]
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise datasets.DataError(f"{path}: __config__ gives threads {threads!r}; expected a "
                                 "count >= 0")
    if config.get("arch", kind) != kind:
        raise datasets.DataError(f"{path}: __config__ says arch {config['arch']!r}, but the "
                                 f"arrays are the {kind}'s")
    return config


def check_out(out: Path, params: Path, source: Path | None, flag: str = "--params") -> None:
    """Refuse an ``--out`` that would overwrite an input, before anything is read.

    Refused: a directory; a file in a folder that does not exist; the model file (``params``,
    given as ``flag``) or the ``--data`` file (``source``, None when there is none), by resolved
    path or as the same file through a link; a picture or IDX name inside a ``--data`` directory
    (it would overwrite an input, or be read as one next time).
    """
    if out.is_dir():
        raise datasets.DataError(f"--out {out}: is a directory; give a file name such as "
                                 f"{out / 'predictions.csv'}")
    folder = out.parent
    if not folder.is_dir():
        raise datasets.DataError(f"--out {out}: the folder {folder} does not exist")
    for name, path in ((flag, params), ("--data", source)):
        if path is not None and _same_file(out, path):
            raise datasets.DataError(f"--out {out} is the {name} file: writing it would "
                                     "overwrite the input; choose another --out")
    if source is not None and source.is_dir() and _same_file(folder, source):
        from models.images import IMAGE_SUFFIXES

        name = out.name.lower()
        if name.endswith(IMAGE_SUFFIXES) or name.startswith(("t10k-", "train-")):
            raise datasets.DataError(f"--out {out} is among the input files of --data {source}: "
                                     "choose another --out")


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (resolved, or the same inode)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # an unreadable path or a symlink loop
        return False
