"""Build the MNIST sample that ships with the package: ``models/sample/mnist_sample.npz``.

Run ``python -m models.build_sample [--src DIR]``; ``DIR`` holds the four MNIST IDX files and
defaults to ``../shared/data/mnist`` beside the repository. The source files are first checked
against the built-in MNIST SHA-256 digests, so the sample is always drawn from real MNIST.

Selection is stratified and seeded: within each digit class, the image indices are ranked by
``sha256(f"{seed}:{split}:{index}")`` and the first ``per_class`` of them are kept (then sorted
back into MNIST's own order). That ranking depends only on the seed (:data:`SEED`, 784 by
default), not on NumPy's random generators, so every build on every platform selects the same
images. The archive itself is written with fixed timestamps and maximal deflate compression,
so rebuilding with the same zlib gives the same bytes.

The ``.npz`` holds ``train_images``/``test_images`` (uint8, ``(N, 28, 28)``),
``train_labels``/``test_labels`` (uint8), ``train_indices``/``test_indices`` (uint16, the
positions in the full MNIST splits, for provenance) and ``seed``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from models.data import (
    IDX_FILES,
    MNIST_SHA256,
    SAMPLE_FILENAME,
    DataError,
    atomic_write,
    content_sha256,
    load_idx_dir,
)

SEED = 784
"""Seed of the shipped sample."""

TRAIN_PER_CLASS = 1000
"""Training images per digit in the shipped sample (10,000 in all)."""

TEST_PER_CLASS = 100
"""Test images per digit in the shipped sample (1,000 in all)."""

MAX_BYTES = 2_000_000
"""The sample file must not be larger than this."""

DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
DEFAULT_OUT = Path(__file__).resolve().parent / "sample" / SAMPLE_FILENAME
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def select_stratified(
    labels: np.ndarray, per_class: int, *, seed: int, split: str, num_classes: int = 10
) -> np.ndarray:
    """Pick ``per_class`` indices of each class deterministically; return them sorted.

    Within each class, indices are ranked by ``sha256(f"{seed}:{split}:{index}")`` and the
    lowest-ranked ``per_class`` kept. Raises :class:`DataError` if a class has too few examples.
    """
    labels = np.asarray(labels)
    chosen: list[np.ndarray] = []
    for cls in range(num_classes):
        members = np.flatnonzero(labels == cls)
        if len(members) < per_class:
            raise DataError(
                f"{split} split has only {len(members)} images of class {cls}, need {per_class}"
            )
        keys = [hashlib.sha256(f"{seed}:{split}:{index}".encode()).digest() for index in members]
        ranked = members[sorted(range(len(members)), key=keys.__getitem__)]
        chosen.append(ranked[:per_class])
    return np.sort(np.concatenate(chosen))


def build_sample_arrays(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    train_per_class: int = TRAIN_PER_CLASS,
    test_per_class: int = TEST_PER_CLASS,
    seed: int = SEED,
) -> dict[str, np.ndarray]:
    """Return the arrays of the sample drawn from full MNIST train and test arrays."""
    train_idx = select_stratified(train_labels, train_per_class, seed=seed, split="train")
    test_idx = select_stratified(test_labels, test_per_class, seed=seed, split="test")
    return {
        "train_images": np.ascontiguousarray(train_images[train_idx], dtype=np.uint8),
        "train_labels": np.asarray(train_labels[train_idx], dtype=np.uint8),
        "test_images": np.ascontiguousarray(test_images[test_idx], dtype=np.uint8),
        "test_labels": np.asarray(test_labels[test_idx], dtype=np.uint8),
        "train_indices": train_idx.astype(np.uint16),
        "test_indices": test_idx.astype(np.uint16),
        "seed": np.asarray(seed, dtype=np.int64),
    }


def encode_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Return a compressed ``.npz`` archive of ``arrays`` with reproducible bytes.

    Members are written in the given order, with a fixed timestamp and deflate level 9; the
    result loads with ``np.load``.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def verify_source(src: Path) -> None:
    """Check that ``src`` holds the genuine MNIST files (by the SHA-256 of their content)."""
    for stem in IDX_FILES:
        candidates = [src / stem, src / f"{stem}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DataError(f"{src}: missing {stem} (or {stem}.gz)")
        if content_sha256(path) != MNIST_SHA256[stem]:
            raise DataError(f"{path}: not the genuine MNIST file (SHA-256 mismatch)")


def build(
    src: Path,
    out: Path,
    *,
    train_per_class: int = TRAIN_PER_CLASS,
    test_per_class: int = TEST_PER_CLASS,
    seed: int = SEED,
) -> dict[str, np.ndarray]:
    """Verify ``src``, draw the sample and write it atomically to ``out``; return its arrays.

    Raises :class:`DataError` (and writes nothing) if the archive would exceed
    :data:`MAX_BYTES`.
    """
    verify_source(src)
    full = load_idx_dir(src, name="mnist")
    assert full.test_images is not None and full.test_labels is not None
    arrays = build_sample_arrays(
        full.train_images,
        full.train_labels,
        full.test_images,
        full.test_labels,
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        seed=seed,
    )
    payload = encode_npz(arrays)
    if len(payload) > MAX_BYTES:
        raise DataError(f"{out}: sample would be {len(payload)} bytes, over {MAX_BYTES}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as handle:
        handle.write(payload)
    return arrays


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m models.build_sample", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="directory of MNIST files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .npz")
    parser.add_argument("--train-per-class", type=int, default=TRAIN_PER_CLASS)
    parser.add_argument("--test-per-class", type=int, default=TEST_PER_CLASS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    try:
        arrays = build(
            args.src,
            args.out,
            train_per_class=args.train_per_class,
            test_per_class=args.test_per_class,
            seed=args.seed,
        )
    except DataError as exc:
        print(f"build_sample: {exc}", file=sys.stderr)
        return 1
    size = args.out.stat().st_size
    print(
        f"wrote {args.out}: {len(arrays['train_images'])} train + "
        f"{len(arrays['test_images'])} test images, {size} bytes (limit {MAX_BYTES})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
