"""Writing files so that they appear complete or not at all."""

from __future__ import annotations

import contextlib
import functools
import os
import re
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


def _temporary_prefix(target: Path) -> str:
    """Return the start of the temporary names of ``target``: ``.{name}.{pid}.``."""
    return f".{target.name}.{os.getpid()}."


def _process_is_gone(pid: int) -> bool:
    """Return whether no process ``pid`` exists (one owned by another user still exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: alive, another user's; else unsure: keep
        return False
    return False


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the temporaries of ``target`` left by writers that no longer run.

    A temporary is named ``.{name}.{pid}.{random}.tmp`` (see :func:`atomic_write`); one whose
    writer's process is gone can never be completed, so it is removed. Files of live writers,
    of other targets, or of any other shape are left alone, and nothing here ever fails a write.
    """
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[A-Za-z0-9_]+\.tmp")
    try:
        with os.scandir(target.parent) as entries:
            stale = []
            for entry in entries:
                match = pattern.fullmatch(entry.name)
                if match and not entry.is_dir(follow_symlinks=False):
                    if _process_is_gone(int(match.group(1))):
                        stale.append(entry.path)
    except OSError:
        return
    for name in stale:
        with contextlib.suppress(OSError):
            os.unlink(name)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", *, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing and move it onto ``path`` on success.

    The temporary file lives in the same directory (so the final ``os.replace`` is atomic) and is
    flushed and fsynced before the rename. If the ``with`` block raises (including
    ``KeyboardInterrupt``), the temporary file is deleted and ``path`` is left untouched: readers
    only ever see the old file or the complete new one. ``mode`` is ``"wb"`` (binary) or ``"w"``
    (text, written with ``encoding`` and no newline translation). The parent directory must
    exist; I/O errors propagate as ``OSError``.

    The temporary file is named ``.{name}.{pid}.{random}.tmp`` after the writing process. A
    process killed while writing (SIGKILL, power loss) cannot delete its temporary, so each
    write first removes the temporaries of the same target whose process no longer exists;
    a live writer's temporary (in this process or another) is never touched.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    _remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp",
                                    dir=target.parent)
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
