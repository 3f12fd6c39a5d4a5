"""Kaggle "Digit Recognizer" CSV files: read ``train.csv``/``test.csv``, write a submission."""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from .files import PathLike, _describe_os_error, _error, _open_maybe_gzip, atomic_write, reading

_PIXEL_COLUMNS = [f"pixel{i}" for i in range(784)]
_INTEGER = re.compile(r"[+-]?\d+")
_SCAN_CHUNK = 500


def _kaggle_header(path: Path, line: str) -> bool:
    """Check a Kaggle CSV header; return whether it has a ``label`` column."""
    names = [name.strip().strip('"').lower() for name in line.strip().split(",")]
    if names == ["label", *_PIXEL_COLUMNS]:
        return True
    if names == _PIXEL_COLUMNS:
        return False
    shown = line.strip()
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise _error(
        path,
        "not a Kaggle Digit Recognizer header: expected 'label,pixel0,...,pixel783' (train) or "
        f"'pixel0,...,pixel783' (test), got {shown!r}",
        line=1,
    )


def _check_csv_line(text: str, has_label: bool) -> str | None:
    """Return what is wrong with one Kaggle CSV data line, or None if it is fine."""
    fields = text.split(",")
    n_fields = 785 if has_label else 784
    if len(fields) != n_fields:
        return f"expected {n_fields} comma-separated values, got {len(fields)}"
    for column, raw in enumerate(fields):
        value = raw.strip()
        name = "label" if has_label and column == 0 else _PIXEL_COLUMNS[column - has_label]
        if not _INTEGER.fullmatch(value):
            return f"{name} is not an integer: {value!r}"
        number = int(value)
        if name == "label":
            if not 0 <= number <= 9:
                return f"label {number} is outside 0..9"
        elif not 0 <= number <= 255:
            return f"{name} value {number} is outside 0..255"
    return None


def _parse_csv_block(text: str | IO[str], has_label: bool) -> np.ndarray | None:
    """Parse Kaggle CSV data lines in bulk; return an int16 table, or None if anything is wrong."""
    n_fields = 785 if has_label else 784
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" for an empty block
            # NumPy < 2.3 parses "1.5" as an integer via float (truncating it), with only a
            # DeprecationWarning: made an error here, so such a line is reported, not rounded
            warnings.simplefilter("error", DeprecationWarning)
            source = io.StringIO(text) if isinstance(text, str) else text
            table = np.loadtxt(source, delimiter=",", dtype=np.int16, comments=None, ndmin=2)
    except (ValueError, OverflowError, DeprecationWarning):
        return None
    if table.size == 0:
        return table.reshape(0, n_fields)
    if table.shape[1] != n_fields:
        return None
    pixels = table[:, 1:] if has_label else table
    if pixels.min() < 0 or pixels.max() > 255:
        return None
    if has_label and (table[:, 0].min() < 0 or table[:, 0].max() > 9):
        return None
    return table


def _locate_csv_error(path: Path, has_label: bool) -> tuple[int, str] | None:
    """Find the first bad data line of a Kaggle CSV file: ``(1-based line, problem)`` or None.

    Blocks of lines are re-parsed in bulk and only a failing block is checked line by line, so
    this stays fast even when the bad line is near the end of a large file.
    """
    with _open_maybe_gzip(path) as handle:
        lines = handle.read().split(b"\n")
    for start in range(1, len(lines), _SCAN_CHUNK):
        block = lines[start : start + _SCAN_CHUNK]
        try:
            text = b"\n".join(block).decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and _parse_csv_block(text, has_label) is not None:
            continue
        for offset, raw in enumerate(block):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                return start + offset + 1, "not valid UTF-8 text"
            if line:
                problem = _check_csv_line(line, has_label)
                if problem is not None:
                    return start + offset + 1, problem
    return None


def read_kaggle_csv(path: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a Kaggle "Digit Recognizer" CSV file (``train.csv`` or ``test.csv``).

    ``train.csv`` has the header ``label,pixel0,...,pixel783``; ``test.csv`` has
    ``pixel0,...,pixel783``. Returns ``(images, labels)``: ``uint8`` images shaped
    ``(N, 28, 28)`` and ``int64`` labels, or ``None`` for labels when the file has no label
    column. Blank lines are skipped; gzip-compressed files are accepted. The file is parsed in
    bulk with NumPy; only when that fails is it scanned to find the first bad line, and a
    :class:`DataError` names the file and the 1-based line number with the problem (wrong number
    of values, a non-integer, a pixel outside 0..255, a label outside 0..9).
    """
    path = Path(path)
    with reading(path):
        with _open_maybe_gzip(path) as binary:
            try:
                header = binary.readline().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise _error(path, "not valid UTF-8 text", line=1) from None
            if not header.strip():
                raise _error(path, "file is empty (expected a header line)")
            has_label = _kaggle_header(path, header)
            text = io.TextIOWrapper(binary, encoding="utf-8", newline=None)
            table = _parse_csv_block(text, has_label)
            text.detach()
        if table is None:
            located = _locate_csv_error(path, has_label)
            if located is None:  # pragma: no cover - the scan checks what the bulk parse checks
                raise _error(path, "malformed CSV data")
            raise _error(path, located[1], line=located[0])
    if table.shape[0] == 0:
        raise _error(path, "no data rows after the header")
    pixels = table[:, 1:] if has_label else table
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 0].astype(np.int64) if has_label else None
    return images, labels


def write_submission(path: PathLike, labels: np.ndarray | Sequence[int]) -> Path:
    """Write a Kaggle "Digit Recognizer" submission: header ``ImageId,Label``, ImageId from 1.

    ``labels`` are the predicted digits (a 1-D integer array in 0..9) in the order of the rows
    of ``test.csv``. The file is written with the :mod:`csv` module, atomically; returns its
    path. Raises :class:`DataError` for labels that are not 1-D integers in 0..9, or if the
    file cannot be written.
    """
    path = Path(path)
    array = np.asarray(labels)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise _error(
            path, f"submission labels must be a 1-D integer array, got {array.dtype} {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() > 9):
        raise _error(path, "submission labels must be digits 0..9")
    try:
        with atomic_write(path, "w") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("ImageId", "Label"))
            writer.writerows(enumerate(array.tolist(), start=1))
    except OSError as exc:
        raise _error(path, f"cannot write: {_describe_os_error(exc)}") from None
    return path
