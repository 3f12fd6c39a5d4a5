"""Recording state: whether to record, whether to check for NaN/inf, the current scope, and how
deep inside transforms (grad of grad, traces) the current code runs.

The state is per thread, as PyTorch's grad mode is: ``no_grad`` in one thread (an evaluation)
never turns recording off in another (a training step), and each thread has its own transform
depth, tape and scopes. A new thread starts with the defaults (recording on, no anomaly checks).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from threading import get_ident
from typing import Any


class _State:
    """The recording state of one thread."""

    __slots__ = ("grad_enabled", "anomaly", "scope", "transform_depth", "tracing", "rule_op",
                 "rule_site", "graph_passes", "tape", "seed_scale", "scaled_seeds")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.anomaly = False
        self.scope: tuple[str, ...] = ()
        self.transform_depth = 0  # > 0 while a transform (grad, trace, ...) runs its function
        self.tracing = 0  # > 0 while tg.trace records a function
        self.rule_op: str | None = None  # the op whose rule is being recorded on Tensors
        self.rule_site: str | None = None  # where that op was made (file:line), when known
        self.graph_passes = 0  # recorded reverse passes so far (they are named by number)
        # While a top-level transform runs its function: every node that requires grad, in the
        # order it was made (a topological order: the pass needs no sort). None otherwise.
        self.tape: list | None = None
        # While tg.trace folds a learning rate into the reverse pass: the seed (1 otherwise).
        self.seed_scale: float | None = None
        self.scaled_seeds = 0  # reverse passes started from such a seed


# Each thread's state, by thread id. A dict lookup, not a threading.local, because reading a
# threading.local attribute costs ~10x a plain one, and every op reads the state. The entry of a
# thread is removed when the thread ends (see _ThreadEnd), before its id can be reused.
_STATES: dict[int, _State] = {}
_ENDS = threading.local()


class _ThreadEnd:
    """Kept in a threading.local: freed when its thread ends, and then drops that thread's state."""

    __slots__ = ("ident",)

    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __del__(self, states: dict = _STATES) -> None:  # bound now: at exit globals are gone
        states.pop(self.ident, None)


def current() -> _State:
    """The calling thread's recording state (made with the defaults on first use)."""
    state = _STATES.get(get_ident())
    if state is None:
        state = _STATES[get_ident()] = _State()
        _ENDS.end = _ThreadEnd(get_ident())
    return state


class _CurrentState:
    """``STATE.x`` reads and writes the calling thread's state (for code off the hot path; the
    hot path calls :func:`current` once and reads the plain object)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(current(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(current(), name, value)


STATE: Any = _CurrentState()


class TraceError(RuntimeError):
    """``tg.trace`` cannot record this function, or a call does not fit the trace."""


class HigherOrderError(NotImplementedError):
    """A derivative of a derivative was asked of a rule that cannot give one (raw NumPy)."""


def connected() -> bool:
    """Whether a transform called now must return Tensors joined to an enclosing graph.

    True inside another transform's function (grad of grad, a traced step) while recording:
    then its results are differentiated or replayed again. At top level results are arrays.
    """
    return bool(current().tracing) or (current().transform_depth > 0 and current().grad_enabled)


def refuse_leaving_the_graph(what: str) -> None:
    """Raise where a Tensor would become a plain value that a recording cannot follow.

    While a backward rule is recorded on Tensors (``current().rule_op``), HigherOrderError; while
    ``tg.trace`` records, TraceError (the value would be frozen into the trace).
    """
    if current().rule_op is not None:
        raise HigherOrderError(
            f"{current().rule_op}: its backward rule used {what} while the reverse pass was being "
            "recorded (a derivative of a derivative, or a traced step); the value would leave "
            "the graph. Write the rule with tinygraph ops (tg.where, tg.exp, Tensor operators)"
        )
    if current().tracing:
        raise TraceError(
            f"tg.trace: {what} inside a traced function would freeze this value into the "
            "trace; keep the computation in tinygraph ops (control flow is recorded as taken)"
        )


@contextmanager
def _recording(enabled: bool) -> Iterator[None]:
    previous = current().grad_enabled
    current().grad_enabled = enabled
    try:
        yield
    finally:
        current().grad_enabled = previous


def no_grad() -> AbstractContextManager[None]:
    """Record nothing inside: results are constants with ``requires_grad=False``."""
    return _recording(False)


def enable_grad() -> AbstractContextManager[None]:
    """Record again inside an enclosing ``no_grad``."""
    return _recording(True)


def is_grad_enabled() -> bool:
    return current().grad_enabled


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise FloatingPointError at the first op whose result or cotangent holds NaN or inf."""
    previous = current().anomaly
    current().anomaly = True
    try:
        yield
    finally:
        current().anomaly = previous


@contextmanager
def scope(name: str) -> Iterator[None]:
    """Group the nodes made inside under ``name`` (scopes nest); drawings show them as boxes."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"scope: the name must be a non-empty string, got {name!r}")
    previous = current().scope
    current().scope = (*previous, name)
    try:
        yield
    finally:
        current().scope = previous
