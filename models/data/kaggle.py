"""Kaggle "Digit Recognizer" CSV files: read ``train.csv``/``test.csv``, write a submission."""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from .files import (
    DataError,
    PathLike,
    _describe_os_error,
    _error,
    _open_maybe_gzip,
    atomic_write,
    reading,
)

_PIXEL_COLUMNS = [f"pixel{i}" for i in range(784)]
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)  # as NumPy parses: no other digits

# What a Kaggle CSV file may hold, so that a gzip bomb (a small .csv.gz that decompresses to
# gigabytes) is refused while reading it, in bounded memory and time. Kaggle's train.csv has
# 42,000 rows (76 MB) and test.csv 28,000 (51 MB); a data row of 785 values of 255 is 3,137
# bytes, and the header with every name quoted 8,521.
_MAX_CSV_LINES = 250_000
"""Most lines read after the header, blank ones included (six times Kaggle's train.csv; its
rows are kept as uint8: at most 196 MB)."""

_MAX_CSV_LINE = 16 << 10
"""Longest line, in bytes with its line break (twice the quoted header)."""

_MAX_CSV_BYTES = 1 << 30
"""Most bytes of (decompressed) text read, blank lines included (14 times train.csv)."""

_CSV_CHUNK = 256 << 10
"""Bytes read at a time: one block of about 80 to 160 rows, parsed in bulk."""


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


def _parse_csv_block(text: str, has_label: bool) -> np.ndarray | None:
    """Parse Kaggle CSV data lines in bulk; return an int16 table, or None if anything is wrong."""
    n_fields = 785 if has_label else 784
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" for an empty block
            # NumPy < 2.3 parses "1.5" as an integer via float (truncating it), with only a
            # DeprecationWarning: made an error here, so such a line is reported, not rounded
            warnings.simplefilter("error", DeprecationWarning)
            # newline=None: a lone carriage return ends a line too (loadtxt refuses one)
            source = io.StringIO(text, newline=None)
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


def _too_long(path: Path, line: int) -> DataError:
    return _error(
        path,
        f"longer than {_MAX_CSV_LINE} bytes without a line break (a Kaggle CSV line is at most "
        "about 3,200 bytes): not a Kaggle CSV file, or a gzip bomb",
        line=line,
    )


def _csv_blocks(path: Path, handle: IO[bytes], consumed: int) -> Iterator[tuple[int, list[bytes]]]:
    """Yield the lines after the header in blocks: ``(1-based number of the first, lines)``.

    The (decompressed) stream is read :data:`_CSV_CHUNK` bytes at a time, and a block is the
    complete lines of one chunk, each with its line break (LF, CR LF, or a lone CR).
    More than :data:`_MAX_CSV_BYTES` in all (``consumed`` counts the header), more than
    :data:`_MAX_CSV_LINES` lines, or a line longer than :data:`_MAX_CSV_LINE` raise a
    :class:`DataError` as soon as they are seen: memory holds one chunk and time is bounded.
    """
    number, tail = 2, b""
    while True:
        chunk = handle.read(_CSV_CHUNK)
        consumed += len(chunk)
        if consumed > _MAX_CSV_BYTES:
            raise _error(
                path,
                f"more than {_MAX_CSV_BYTES} bytes of CSV text once decompressed (Kaggle's "
                "train.csv is 76 MB): not read, so that memory and time stay bounded",
            )
        text = tail + chunk
        # The complete lines, counted before they are split: a last line without a break goes
        # on in the next chunk, and so does a "\r" at the end (half of a "\r\n"?), unless the
        # stream has ended.
        count = text.count(b"\n") + text.count(b"\r") - text.count(b"\r\n")
        count += 1 if not chunk and text and not text.endswith((b"\n", b"\r")) else 0
        count -= 1 if chunk and text.endswith(b"\r") else 0
        if number - 2 + count > _MAX_CSV_LINES:
            raise _error(
                path,
                f"more than {_MAX_CSV_LINES} lines after the header (Kaggle's train.csv has "
                "42,000 rows): not read, so that memory and time stay bounded",
            )
        lines = text.splitlines(keepends=True)
        tail = lines.pop() if chunk and lines and not lines[-1].endswith(b"\n") else b""
        if lines and max(map(len, lines)) > _MAX_CSV_LINE:
            first = next(i for i, line in enumerate(lines) if len(line) > _MAX_CSV_LINE)
            raise _too_long(path, number + first)
        if len(tail) > _MAX_CSV_LINE:
            raise _too_long(path, number + len(lines))
        if lines:
            yield number, lines
            number += len(lines)
        if not chunk:
            return


def _block_error(path: Path, number: int, lines: list[bytes], has_label: bool) -> DataError:
    """The error of a block that failed to parse in bulk: its lines are checked one by one, and
    the :class:`DataError` names the first bad one (``number`` is the block's first line)."""
    for offset, raw in enumerate(lines):
        if not raw.rstrip(b"\r\n"):
            continue  # an empty line: skipped, as the bulk parse does
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return _error(path, "not valid UTF-8 text", line=number + offset)
        problem = _check_csv_line(line, has_label) if line else "a line of only spaces"
        if problem is not None:
            return _error(path, problem, line=number + offset)
    last = number + len(lines) - 1  # pragma: no cover - the lines check what the parse checks
    return _error(path, f"malformed CSV data in lines {number}..{last}")  # pragma: no cover


def read_kaggle_csv(path: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a Kaggle "Digit Recognizer" CSV file (``train.csv`` or ``test.csv``).

    ``train.csv`` has the header ``label,pixel0,...,pixel783``; ``test.csv`` has
    ``pixel0,...,pixel783``. Returns ``(images, labels)``: ``uint8`` images shaped
    ``(N, 28, 28)`` and ``int64`` labels, or ``None`` for labels when the file has no label
    column. Blank lines are skipped; gzip-compressed files are accepted. The file is read once,
    in blocks of lines parsed in bulk with NumPy; only a block that fails is checked line by
    line, and a :class:`DataError` names the file and the 1-based line number with the problem
    (wrong number of values, a non-integer, a pixel outside 0..255, a label outside 0..9).

    What is read is bounded, so a gzip bomb (a small file that decompresses without end) is
    refused quickly in bounded memory: a line longer than 16 KiB, more than 250,000 lines or
    more than 1 GiB of decompressed text is a :class:`DataError` (Kaggle's ``train.csv`` has
    42,000 rows of at most 3,137 bytes, 76 MB).
    """
    path = Path(path)
    tables: list[np.ndarray] = []
    rows = 0
    with reading(path), _open_maybe_gzip(path) as binary:
        first = binary.readline(_MAX_CSV_LINE + 1)
        if len(first) > _MAX_CSV_LINE:
            raise _too_long(path, 1)
        try:
            header = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _error(path, "not valid UTF-8 text", line=1) from None
        if not header.strip():
            raise _error(path, "file is empty (expected a header line)")
        has_label = _kaggle_header(path, header)
        for number, lines in _csv_blocks(path, binary, len(first)):
            try:
                table = _parse_csv_block(b"".join(lines).decode("utf-8"), has_label)
            except UnicodeDecodeError:
                table = None
            if table is None:
                raise _block_error(path, number, lines, has_label)
            rows += len(table)
            tables.append(table.astype(np.uint8))  # labels 0..9 and pixels 0..255 fit
    if rows == 0:
        raise _error(path, "no data rows after the header")
    table = np.concatenate(tables)
    del tables
    pixels = table[:, 1:] if has_label else table
    images = np.ascontiguousarray(pixels).reshape(-1, 28, 28)
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
