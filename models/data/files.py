"""Data files: :class:`DataError` and its one-line messages, gzip detection, atomic writing.

Every problem with a data file raises :class:`DataError` with a single line that names the file
(built by ``_error``), and every file this package writes goes through :func:`atomic_write`.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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


@functools.cache
def _umask() -> int:
    """Return the process umask (read once; used to give atomic files normal permissions)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", *, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing and move it onto ``path`` on success.

    The temporary file lives in the same directory (so the final ``os.replace`` is atomic) and is
    flushed and fsynced before the rename. If the ``with`` block raises (including
    ``KeyboardInterrupt``), the temporary file is deleted and ``path`` is left untouched: readers
    only ever see the old file or the complete new one. ``mode`` is ``"wb"`` (binary) or ``"w"``
    (text, written with ``encoding`` and no newline translation). The parent directory must
    exist; I/O errors propagate as ``OSError``.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            if mode == "wb":
                handle: IO[Any] = os.fdopen(fd, "wb")
            else:
                handle = os.fdopen(fd, "w", encoding=encoding, newline="")
        except BaseException:
            os.close(fd)  # fdopen failed, so the descriptor is still ours to close
            raise
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


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
