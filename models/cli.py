"""What the command-line tools share: every expected failure is one line and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
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
