"""Predict digits with a trained network: ``python -m models.predict --params P --data D --out F``.

``--data`` is one of:

* a directory of IDX files: its test split is predicted -- ``t10k-images-idx3-ubyte`` (or
  ``t10k-images.idx3-ubyte``, optionally ``.gz``), with ``t10k-labels-...`` when present; the
  training files are not needed;
* a Kaggle ``test.csv`` (``--out`` is then the ``submission.csv`` Kaggle accepts:
  ``ImageId,Label`` from 1) or ``train.csv``;
* PNG/JPG pictures of digits (one file or a directory), converted the way MNIST was made (see
  ``models.images``).

Accuracy is printed wherever labels exist. ``--onnx model.onnx`` (a file ``models.export``
wrote) instead of ``--params`` runs the network with ONNX Runtime and writes the same CSV (needs
``pip install 'tinygraph[onnx]'``).

For pictures, ``--out`` is a CSV written with the ``csv`` module (a name holding a comma, a quote
or a newline is quoted) with the columns ``File,Label,Error`` and one row per picture, in name
order. In a directory, a picture that cannot be read (not an image, truncated, blank) does not
stop the others: its row has an empty ``Label`` and the reason in ``Error`` (``Error`` is empty
on every row that was predicted), and a warning line on stderr names those files. The exit
status is then 0 if at least one picture was predicted; if none was, it is 2 and nothing is
written. A single picture given as ``--data`` that cannot be read is an error (exit 2).

Every expected failure is one line ``error: ...`` on stderr and exit status 2, and nothing is
written: an ``--out`` that is the ``--params`` or ``--data`` file or would land among the input
files of a ``--data`` directory (checked before anything is read); a parameter file that is not
a network ``models.train`` wrote (names, shapes and dtypes as ``models.network.architecture``
checks them, 784 inputs, 10 outputs, its ``__config__``), or whose weights hold NaN or infinite
values (a run that diverged); scores that are not finite; unreadable data; a failed write.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import data as datasets
from models import missing_extra, network
from models.cli import blas_threads, one_line_errors
from models.runtime import missing_onnx, onnx_logits

PIXELS = 28 * 28
"""Inputs per image of every source predict reads (28x28 pictures)."""

CLASSES = 10
"""Outputs the network must give: the digits 0..9 (Fashion-MNIST has 10 classes too)."""

# The names models.data.load_idx_test accepts for the test images.
_IDX_TEST_IMAGES = {f"t10k-images{sep}idx3-ubyte{gz}" for sep in "-." for gz in ("", ".gz")}
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


@dataclass
class Inputs:
    """What ``--data`` holds, ready to predict."""

    images: np.ndarray
    """(K, 28, 28) uint8: the images that were read, in row order."""
    labels: np.ndarray | None
    """Their labels, where the source has them."""
    names: list[str]
    """One per output row: file names (pictures) or ImageIds from 1."""
    kind: str
    """"images", "kaggle" or "idx"."""
    problems: list[str | None]
    """One per row: None, or why that picture could not be read (its row gets no label)."""


def read_inputs(source: Path) -> Inputs:
    """Read ``--data``: pictures, a Kaggle CSV, or the test split of an IDX directory."""
    from models.images import IMAGE_SUFFIXES, image_files, load_digit_images, read_digit_images

    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        return Inputs(load_digit_images(source), None, [source.name], "images", [None])
    if source.is_file() and source.name.lower().endswith((".csv", ".csv.gz")):
        images, labels = datasets.read_kaggle_csv(source)
        return Inputs(images, labels, _ids(len(images)), "kaggle", [None] * len(images))
    if source.is_dir():
        has_idx = _has_idx_test(source)
        pictures = image_files(source)
        if has_idx and pictures:
            raise datasets.DataError(f"{source}: holds both IDX test files and PNG/JPG pictures; "
                                     "put the pictures in a folder of their own")
        if has_idx:
            images, labels = datasets.load_idx_test(source)
            return Inputs(images, labels, _ids(len(images)), "idx", [None] * len(images))
        if pictures:
            images, problems = read_digit_images(pictures)
            return Inputs(images, None, [p.name for p in pictures], "images", problems)
        raise datasets.DataError(f"{source}: no PNG/JPG pictures and no IDX test files "
                                 "(t10k-images-idx3-ubyte, optionally .gz) in this directory")
    if source.exists():
        raise datasets.DataError(f"{source}: not a file predict reads (expected IDX files, a "
                                 "Kaggle CSV, or PNG/JPG images)")
    raise datasets.DataError(f"{source}: no such file or directory (expected IDX files, a "
                             "Kaggle CSV, or PNG/JPG images)")


def _ids(count: int) -> list[str]:
    return [str(i) for i in range(1, count + 1)]


def _has_idx_test(directory: Path) -> bool:
    """Whether ``directory`` holds a test-images IDX file (any of its accepted names)."""
    try:
        return any(entry.name in _IDX_TEST_IMAGES and entry.is_file()
                   for entry in directory.iterdir())
    except OSError as exc:
        raise datasets.DataError(f"{directory}: cannot list directory "
                                 f"({exc.strerror or exc})") from None


def check_out(out: Path, params: Path, source: Path, flag: str = "--params") -> None:
    """Refuse an ``--out`` that would overwrite an input, before anything is read.

    Refused: a directory; a file in a folder that does not exist; the ``--params`` file or the
    ``--data`` file (by resolved path, or the same file through a link); a picture or IDX name
    inside a ``--data`` directory (it would overwrite an input, or be read as one next time).
    """
    if out.is_dir():
        raise datasets.DataError(f"--out {out}: is a directory; give a file name such as "
                                 f"{out / 'predictions.csv'}")
    folder = out.parent
    if not folder.is_dir():
        raise datasets.DataError(f"--out {out}: the folder {folder} does not exist")
    for name, path in ((flag, params), ("--data", source)):
        if _same_file(out, path):
            raise datasets.DataError(f"--out {out} is the {name} file: the predictions would "
                                     "overwrite the input; choose another --out")
    if source.is_dir() and _same_file(folder, source):
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


def _csv_text(name: str) -> str:
    """``name`` as the CSV holds it: exact, unless it holds bytes that are not UTF-8."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        from models.images import printable

        return printable(name)


def write_picture_csv(path: Path, names: Sequence[str], predictions: Sequence[int],
                      problems: Sequence[str | None]) -> None:
    """Write ``File,Label,Error``, one row per picture, atomically: predicted pictures get
    their label (Error empty), unreadable ones an empty Label and the reason in Error."""
    labels = iter(predictions)
    with datasets.atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["File", "Label", "Error"])
        for name, problem in zip(names, problems):
            label = "" if problem is not None else str(next(labels))
            writer.writerow([_csv_text(name), label, problem or ""])


def _shown(name: str) -> str:
    from models.images import printable

    return printable(name)


def _unreadable_summary(names: Sequence[str], problems: Sequence[str | None],
                        limit: int = 5) -> str:
    """``a.png (reason), b.png (reason), and 3 more``: the pictures that could not be read."""
    bad = [f"{_shown(n)} ({p})" for n, p in zip(names, problems) if p is not None]
    more = f", and {len(bad) - limit} more" if len(bad) > limit else ""
    return ", ".join(bad[:limit]) + more


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--params", type=Path, help="params.npz from training")
    model.add_argument("--onnx", type=Path, metavar="MODEL",
                       help="a model.onnx from python -m models.export, run by ONNX Runtime "
                            "(needs pip install 'tinygraph[onnx]')")
    parser.add_argument("--data", type=Path, required=True, help="IDX dir, Kaggle CSV, images")
    parser.add_argument("--out", type=Path, required=True, help="CSV of predictions to write")
    args = parser.parse_args(argv)
    if problem := missing_extra() or (args.onnx is not None and missing_onnx(runtime=True)):
        print(problem, file=sys.stderr)
        return 2
    model_file = args.params if args.onnx is None else args.onnx

    def predict_all() -> tuple[Inputs, np.ndarray]:
        check_out(args.out, model_file, args.data, flag="--params" if args.onnx is None
                  else "--onnx")
        if args.onnx is None:
            params, config = load_params(args.params)
        inputs = read_inputs(args.data)
        if inputs.kind == "images" and not len(inputs.images):
            raise datasets.DataError(
                f"{args.data}: none of the {len(inputs.names)} pictures could be read: "
                f"{_unreadable_summary(inputs.names, inputs.problems)}")
        if args.onnx is not None:  # the same features; ONNX Runtime converts to its dtype
            scores = onnx_logits(args.onnx, datasets.to_features(inputs.images, np.float32))
        else:
            features = datasets.to_features(inputs.images, network.dtype_of(params))
            # Overflow is checked below, as one line, instead of NumPy's warnings.
            with blas_threads(config["threads"]), np.errstate(over="ignore", invalid="ignore"):
                scores = network.scores(params, features, config["activation"])
        broken = int(np.count_nonzero(~np.isfinite(scores).all(axis=1)))
        if broken:
            raise datasets.DataError(
                f"{model_file}: the network's scores are NaN or infinite for {broken} of "
                f"{len(scores)} images (its weights overflow {scores.dtype}); nothing written")
        predictions = np.argmax(scores, axis=1)
        if inputs.kind == "images":
            write_picture_csv(args.out, inputs.names, predictions.tolist(), inputs.problems)
        else:
            datasets.write_submission(args.out, predictions)
        return inputs, predictions

    result = one_line_errors(predict_all, args.out)
    if result is None:
        return 2
    inputs, predictions = result
    unread = sum(problem is not None for problem in inputs.problems)
    if unread:
        print(f"wrote {len(inputs.names)} rows to {args.out}: {len(predictions)} predictions, "
              f"{unread} pictures that could not be read")
        print(f"warning: {unread} of {len(inputs.names)} pictures could not be read (their rows "
              f"have an empty Label and the reason in Error): "
              f"{_unreadable_summary(inputs.names, inputs.problems)}", file=sys.stderr)
    else:
        print(f"wrote {len(predictions)} predictions to {args.out}")
    if inputs.labels is not None and len(inputs.labels):
        print(f"accuracy {np.mean(predictions == inputs.labels):.4f} on {len(inputs.labels)} "
              "labelled images")
    elif inputs.kind == "images":
        labels = iter(predictions.tolist())
        for name, problem in zip(inputs.names, inputs.problems):
            print(f"{_shown(name)}: {'could not be read' if problem else next(labels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
