"""Global recording state: whether to record, whether to check for NaN/inf, the current scope.

The state is process-wide (not per thread), like the rest of tinygraph.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


class _State:
    __slots__ = ("grad_enabled", "anomaly", "scope", "transform_depth", "tracing")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.anomaly = False
        self.scope: tuple[str, ...] = ()
        self.transform_depth = 0
        self.tracing = 0  # > 0 while tg.trace records a function


STATE = _State()


class TraceError(RuntimeError):
    """``tg.trace`` cannot record this function, or a call does not fit the trace."""


def refuse_while_tracing(what: str) -> None:
    """Raise if a traced function turns a Tensor into a plain value (it would be frozen)."""
    if STATE.tracing:
        raise TraceError(
            f"tg.trace: {what} inside a traced function would freeze this value into the "
            "trace; keep the computation in tinygraph ops (control flow is recorded as taken)"
        )


@contextmanager
def _recording(enabled: bool) -> Iterator[None]:
    previous = STATE.grad_enabled
    STATE.grad_enabled = enabled
    try:
        yield
    finally:
        STATE.grad_enabled = previous


def no_grad() -> AbstractContextManager[None]:
    """Record nothing inside: results are constants with ``requires_grad=False``."""
    return _recording(False)


def enable_grad() -> AbstractContextManager[None]:
    """Record again inside an enclosing ``no_grad``."""
    return _recording(True)


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise FloatingPointError at the first op whose result or cotangent holds NaN or inf."""
    previous = STATE.anomaly
    STATE.anomaly = True
    try:
        yield
    finally:
        STATE.anomaly = previous


@contextmanager
def scope(name: str) -> Iterator[None]:
    """Group the nodes made inside under ``name`` (scopes nest); drawings show them as boxes."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"scope: the name must be a non-empty string, got {name!r}")
    previous = STATE.scope
    STATE.scope = (*previous, name)
    try:
        yield
    finally:
        STATE.scope = previous
