"""Predict digits with a trained network: ``python -m models.predict --params P --data D --out F``.

``--data`` is a directory of IDX files (its test split is predicted), a Kaggle ``test.csv``
(``--out`` is then the ``submission.csv`` Kaggle accepts: ``ImageId,Label`` from 1) or
``train.csv``, or PNG/JPG pictures of digits (one file or a directory), converted the way MNIST
was made (see ``models.images``). Accuracy is printed wherever labels exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models import data as datasets
from models import missing_extra, network
from models.cli import blas_threads, one_line_errors


def load_params(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The weights and the training settings stored by ``models.train`` in ``params.npz``."""
    if not path.is_file():
        raise datasets.DataError(f"{path}: no such parameter file (expected params.npz from "
                                 "models.train)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        config = json.loads(str(arrays.pop("__config__", np.array("{}"))))
    except Exception as exc:  # a damaged or foreign file is one clear line
        reason = ("it holds Python objects, which are never loaded" if "pickle" in str(exc)
                  else str(exc))
        raise datasets.DataError(f"{path}: not a params.npz written by models.train "
                                 f"({reason})") from None
    try:
        network.architecture(arrays)
    except ValueError as exc:
        raise datasets.DataError(f"{path}: {exc}") from None
    return arrays, config


def read_inputs(source: Path) -> tuple[np.ndarray, np.ndarray | None, list[str], str]:
    """(images (N, 28, 28) uint8, labels or None, names for the output rows, kind)."""
    from models.images import IMAGE_SUFFIXES, image_files, load_digit_images  # needs Pillow

    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        return load_digit_images(source), None, [source.name], "images"
    if source.is_dir() and image_files(source):
        files = image_files(source)
        return load_digit_images(files), None, [p.name for p in files], "images"
    if source.is_file() and source.name.lower().endswith((".csv", ".csv.gz")):
        images, labels = datasets.read_kaggle_csv(source)
        return images, labels, [str(i) for i in range(1, len(images) + 1)], "kaggle"
    if source.is_dir():
        dataset = datasets.load_idx_dir(source)
        if dataset.test_images is None:  # pragma: no cover - load_idx_dir needs all four files
            raise datasets.DataError(f"{source}: no test split to predict")
        images = dataset.test_images
        return images, dataset.test_labels, [str(i) for i in range(1, len(images) + 1)], "idx"
    raise datasets.DataError(f"{source}: no such file or directory (expected IDX files, a "
                             "Kaggle CSV, or PNG/JPG images)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.predict", description=__doc__)
    parser.add_argument("--params", type=Path, required=True, help="params.npz from training")
    parser.add_argument("--data", type=Path, required=True, help="IDX dir, Kaggle CSV, images")
    parser.add_argument("--out", type=Path, required=True, help="CSV of predictions to write")
    args = parser.parse_args(argv)
    if problem := missing_extra():
        print(problem, file=sys.stderr)
        return 2
    def predict_all() -> tuple:
        params, config = load_params(args.params)
        images, labels, names, kind = read_inputs(args.data)
        features = datasets.to_features(images, network.dtype_of(params))
        if features.shape[1] != network.input_size(params):
            raise datasets.DataError(f"{args.data}: images have {features.shape[1]} pixels, the "
                                     f"network expects {network.input_size(params)}")
        with blas_threads(config.get("threads", 0)):  # as in training
            predictions = network.predict(params, features, config.get("activation", "sigmoid"))
        if kind == "images":
            with datasets.atomic_write(args.out, "w") as handle:
                handle.write("File,Label\n")
                handle.writelines(f"{n},{p}\n" for n, p in zip(names, predictions))
        else:
            datasets.write_submission(args.out, predictions)
        return predictions, labels, names, kind

    result = one_line_errors(predict_all, args.out)
    if result is None:
        return 2
    predictions, labels, names, kind = result
    print(f"wrote {len(predictions)} predictions to {args.out}")
    if labels is not None:
        print(f"accuracy {np.mean(predictions == labels):.4f} on {len(labels)} labelled images")
    elif kind == "images":
        for name, prediction in zip(names, predictions):
            print(f"{name}: {prediction}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
