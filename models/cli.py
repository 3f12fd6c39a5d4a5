"""What the command-line tools share: every expected failure is one line and exit status 2; BLAS
held to a number of threads."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from models.data import DataError

T = TypeVar("T")


def one_line_errors(body: Callable[[], T], out: Path) -> T | None:
    """Run ``body``; print a data problem or a failure to write ``out`` as one line, and return
    None for it (the caller exits with status 2). Anything else is a bug and propagates."""
    try:
        return body()
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
    return None


@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[int | None]:
    """Hold BLAS to ``count`` threads (0: as it is); yields the limit in force, None if unknown.

    A convolution is one batched product of many small matrices; on a shared 2-core machine
    OpenBLAS's two threads wait for each other in every one of them, and run it 10 to 300 times
    slower than one thread does (measured: (32, 400) @ (400, 64) for 200 images, 12 ms on one
    thread, 3.6 s on two).
    """
    if count == 0:
        yield None
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("note: threadpoolctl is not installed, so --threads is not applied "
              "(pip install threadpoolctl)", file=sys.stderr)
        yield None
        return
    with threadpool_limits(limits=count, user_api="blas"):
        yield count
