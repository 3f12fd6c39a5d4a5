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

For pictures, ``--out`` is a CSV written with the ``csv`` module (a name holding a comma, a
quote, a newline or a carriage return is quoted) with the columns ``File,Label,Error`` and one
row per picture, in name order. A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return (or ``'``) gets one ``'`` in front, so a spreadsheet shows it as text instead of
running it as a formula; the name is the cell without that first ``'``. In a directory, a
picture that cannot be read (not an image, truncated, blank) does not stop the others: its row
has an empty ``Label`` and the reason in ``Error`` (``Error`` is empty on every row that was
predicted), and a warning line on stderr names those files. The exit status is then 0 if at
least one picture was predicted; if none was, it is 2 and nothing is written. A single picture
given as ``--data`` that cannot be read is an error (exit 2).

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
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import data as datasets
from models import missing_extra, network
from models.cli import blas_threads, one_line_errors
from models.params import check_out, load_params
from models.runtime import missing_onnx, onnx_logits

# The names models.data.load_idx_test accepts for the test images.
_IDX_TEST_IMAGES = {f"t10k-images{sep}idx3-ubyte{gz}" for sep in "-." for gz in ("", ".gz")}
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


def _csv_text(name: str) -> str:
    """``name`` as the CSV holds it: exact, unless it holds bytes that are not UTF-8."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        from models.images import printable

        return printable(name)


# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection"); a
# leading ' makes it text. Cells starting with ' get one more, so the mark is always reversible.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def _as_text(cell: str) -> str:
    """``cell`` with a ``'`` in front if a spreadsheet would run it as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def write_picture_csv(path: Path, names: Sequence[str], predictions: Sequence[int],
                      problems: Sequence[str | None]) -> None:
    """Write ``File,Label,Error``, one row per picture, atomically: predicted pictures get
    their label (Error empty), unreadable ones an empty Label and the reason in Error.

    A ``File`` or ``Error`` cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return gets a ``'`` in front (the usual defence against CSV formula injection: a
    picture named ``=cmd().png`` is shown by a spreadsheet as text, never run), and so does one
    that starts with ``'``, so the file name is always the cell without its first ``'``.
    Other cells are written as they are (a row holding a carriage return is quoted whole)."""
    labels = iter(predictions)
    with datasets.atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        # The csv module quotes a cell holding the line terminator, not one holding a lone
        # carriage return, which a reader takes for the end of the row: such a row is quoted.
        quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(["File", "Label", "Error"])
        for name, problem in zip(names, problems):
            label = "" if problem is not None else str(next(labels))
            row = [_as_text(_csv_text(name)), label, _as_text(problem or "")]
            (quoted if any("\r" in cell for cell in row) else writer).writerow(row)


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
        if inputs.kind != "images" and not len(inputs.images):
            raise datasets.DataError(f"{args.data}: holds no images to predict")
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
