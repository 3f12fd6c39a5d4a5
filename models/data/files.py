"""Data files: :class:`DataError` and its one-line messages, gzip detection, atomic writing.

Every problem with a data file raises :class:`DataError` with a single line that names the file
(built by ``_error``), and every file this package writes goes through :func:`atomic_write`.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# The one atomic writer, shared with the library (re-exported for the modules here).
from tinygraph.files import atomic_write as atomic_write

PathLike = str | os.PathLike[str]

_GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """A data file or data source is missing, unreadable or malformed.

    The message is one line that names the file (and the line, for CSV files) and says what is
    wrong with it.
    """


def _error(path: PathLike, problem: str, line: int | None = None) -> DataError:
    """Build a one-line :class:`DataError` about ``path`` (and ``line`` when given)."""
    where = f"{os.fspath(path)}, line {line}" if line is not None else os.fspath(path)
    return DataError(" ".join(f"{where}: {problem}".split()))


def _describe_os_error(exc: BaseException) -> str:
    """Return a short human description of an I/O error without a file name in it."""
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _is_gzip(path: Path) -> bool:
    """Return whether ``path`` starts with the gzip magic bytes (raises OSError if unreadable)."""
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


@contextlib.contextmanager
def _open_maybe_gzip(path: Path) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary reading, transparently gunzipping gzip data."""
    if _is_gzip(path):
        with gzip.open(path, "rb") as handle:
            yield handle  # type: ignore[misc]
    else:
        with open(path, "rb") as handle:
            yield handle


@contextlib.contextmanager
def reading(path: PathLike) -> Iterator[None]:
    """Turn the failures of reading ``path`` (raw or gzip) into one-line :class:`DataError`s."""
    try:
        yield
    except EOFError:
        raise _error(path, "corrupt gzip data: the stream is truncated") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise _error(path, f"corrupt gzip data ({exc})") from None
    except OSError as exc:
        raise _error(path, f"cannot read: {_describe_os_error(exc)}") from None
