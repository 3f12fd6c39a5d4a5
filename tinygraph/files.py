"""Writing files so that they appear complete or not at all."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

PathLike = str | os.PathLike[str]


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


def write_atomic(path: PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` with :func:`atomic_write`; return the path."""
    with atomic_write(path, "wb") as handle:
        handle.write(payload)
    return Path(path)
