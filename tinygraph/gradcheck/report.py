"""Results of the gradient-check suite and how they are shown: rows, reports, tables, JSON.

:class:`CheckResult` is one row (an op or a model at one derivative order) with its
:class:`Failure`, if any; :class:`SuiteReport` is a whole run. Both render as the table
:func:`format_table` prints and as JSON; a failed row also renders as a reproduction report (the
error, the input, the input hypothesis shrank it to, and the commands that run it again, with
the row's ``--order``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygraph.gradcheck.core import GradientCheckError, Mismatch, check_grads
from tinygraph.primitive import REGISTRY, Primitive, describe
from tinygraph.pytree import flatten

# ---------------------------------------------------------------------------------------------
# Describing inputs and errors
# ---------------------------------------------------------------------------------------------

def short_repr(value: Any) -> str:
    """dtype, shape and a few values of an array (one line); ``repr`` for anything else."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = np.asarray(value)
        body = np.array2string(value, precision=6, threshold=12, edgeitems=2, separator=", ",
                               max_line_width=10**6)
        return f"{value.dtype} {tuple(value.shape)} {' '.join(body.split())}"
    if isinstance(value, list):
        return f"[{', '.join(short_repr(v) for v in value)}]"
    if isinstance(value, tuple):
        inner = ", ".join(short_repr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return _safe_str(value, repr)


def input_shapes(args: Sequence[Any]) -> str:
    """The inputs' shapes, ``(3, 1), (4,)``."""
    return ", ".join(describe(np.asarray(a)) if isinstance(a, (list, tuple)) else describe(a)
                     for a in args)


def describe_input(args: Sequence[Any], params: dict) -> list[str]:
    """One line per input (dtype, shape, values) and one for the parameters."""
    lines = [f"arg {i}: {short_repr(a)}" for i, a in enumerate(args)]
    shown = ", ".join(f"{k}={short_repr(v)}" for k, v in params.items())
    lines.append(f"params: {shown or 'none'}")
    return lines


def tree_shapes(tree: Any) -> str:
    leaves, _, paths = flatten(tree)
    if len(leaves) == 1 and not paths[0]:
        return short_repr(leaves[0]) if np.size(leaves[0]) <= 12 else describe(
            np.asarray(leaves[0]))
    return ", ".join(f"{path} {describe(np.asarray(leaf))}" for leaf, path in zip(leaves, paths))


def error_text(error: BaseException) -> str:
    """``ValueError: message``; the bare name when there is no message (``SystemExit()``)."""
    if isinstance(error, GradientCheckError):
        return str(error)
    text = _safe_str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _safe_str(value: Any, convert: Any = str) -> str:
    """``str(value)`` (or ``convert(value)``), or a note when a user's ``__str__`` raises."""
    try:
        return convert(value)
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        return f"<{type(value).__name__}: its {convert.__name__}() raised {type(error).__name__}>"


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass
class Failure:
    """What failed and how to get it back: the error, the input, a shrunk input, commands."""

    error: str
    input: list[str]
    example: int | None = None
    example_seed: int | None = None
    shrunk_input: list[str] | None = None
    shrunk_error: str | None = None
    shrink_note: str = ""
    reproduce: list[str] = field(default_factory=list)
    mismatch: Mismatch | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "example": self.example, "example_seed": self.example_seed, "error": self.error,
            "input": self.input, "shrunk_input": self.shrunk_input,
            "shrunk_error": self.shrunk_error, "shrink_note": self.shrink_note,
            "reproduce": self.reproduce,
        }
        if self.mismatch is not None:
            data["mismatch"] = {k: _finite_or_none(v) for k, v in vars(self.mismatch).items()}
        return data


@dataclass
class CheckResult:
    """One row of the suite: an op or a model at one order, examples tried, worst errors, verdict.

    An order-``n`` row is ``check_op(..., order=n)`` (``check_grads(..., order=n)`` for a model)
    on each example: order 1 compares the gradient with central differences, order 2 the
    gradient of ``h(x) = <grad f(x), v>`` (a Hessian-vector product ``H v``) for a fixed random
    ``v``, and so on; the orders below ``n`` are checked on the way, so a wrong first-order rule
    fails every row of its op. ``max_abs_error`` is ``max |analytic - numerical|`` over every
    example, argument and element (or direction) of order ``n`` itself; ``max_rel_error`` is
    the same divided by ``max(|numerical|, 1e-12)``; ``worst_shape`` is the input where the
    absolute error was largest (the failing input for a failed check, whose errors are then
    those of the check that failed).
    """

    name: str
    kind: str
    examples: int
    max_abs_error: float
    max_rel_error: float
    worst_shape: str
    passed: bool
    seed: int
    seconds: float = 0.0
    failure: Failure | None = None
    order: int = 1

    @property
    def label(self) -> str:
        """``op cube at order 2``: what this row checked, for headings and summaries."""
        return f"{self.kind} {self.name} at order {self.order}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "order": self.order,
            "examples": self.examples,
            "max_abs_error": _finite_or_none(self.max_abs_error),
            "max_rel_error": _finite_or_none(self.max_rel_error),
            "worst_input_shape": self.worst_shape, "passed": self.passed, "seed": self.seed,
            "seconds": round(self.seconds, 4),
            "failure": None if self.failure is None else self.failure.to_json(),
        }

    def failure_text(self) -> str:
        """The reproduction report: the error, the input (shrunk when possible), the commands."""
        failure = self.failure
        if failure is None:
            return ""
        if failure.example is not None:
            head = (f"FAIL {self.label}: example {failure.example} failed "
                    f"(run seed {self.seed}, example seed {failure.example_seed})")
        else:
            head = f"FAIL {self.label} (seed {self.seed})"
        lines = [head, "  input:"]
        lines += [f"    {line}" for line in failure.input]
        lines += [f"  {line}" for line in failure.error.splitlines()]
        if failure.shrunk_input is not None:
            lines.append("  shrunk by hypothesis to:")
            lines += [f"    {line}" for line in failure.shrunk_input]
            lines += [f"  {line}" for line in (failure.shrunk_error or "").splitlines()]
        elif failure.shrink_note:
            lines.append(f"  {failure.shrink_note}")
        if failure.reproduce:
            lines.append("  reproduce:")
            lines += [f"    {line}" for line in failure.reproduce]
        return "\n".join(lines)

    def report(self) -> str:
        """This row under the table header, then the reproduction report if it failed."""
        table = format_table([self])
        return table if self.passed else f"{table}\n\n{self.failure_text()}"


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _format_error(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2e}"


def format_table(results: Sequence[CheckResult]) -> str:
    """One row per check: name, kind, order, examples, max abs/rel error, worst input shape,
    result."""
    name_width = max([len("check"), *(len(r.name) for r in results)])
    shape_width = max([len("worst input shape"), *(len(r.worst_shape) for r in results)])
    lines = [f"{'check':<{name_width}}  {'kind':<5}  {'order':>5}  {'examples':>8}  "
             f"{'max abs err':>11}  {'max rel err':>11}  {'worst input shape':<{shape_width}}  "
             "result"]
    for r in results:
        lines.append(
            f"{r.name:<{name_width}}  {r.kind:<5}  {r.order:>5}  {r.examples:>8}  "
            f"{_format_error(r.max_abs_error):>11}  {_format_error(r.max_rel_error):>11}  "
            f"{r.worst_shape:<{shape_width}}  {'ok' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def _orders_text(orders: Sequence[int]) -> str:
    """``order 1`` or ``orders 1, 2``."""
    shown = ", ".join(str(o) for o in orders)
    return f"order{'s' * (len(orders) != 1)} {shown}"


@dataclass
class SuiteReport:
    """Every row of a run, with its settings: a table, a summary line, JSON.

    ``orders`` are the derivative orders the run asked for; each op (and model) has one row per
    order, so a full run has ``len(ops) * len(orders)`` op rows.
    """

    results: list[CheckResult]
    seed: int
    examples: int
    tolerances: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    orders: tuple[int, ...] = (1,)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def table(self) -> str:
        return format_table(self.results)

    def summary(self) -> str:
        """``all 62 checks passed: 31 ops (6200 examples); orders 1, 2; seed 0; 9.74 s``.

        A check is a row (one op or model at one order); ops and models are counted once
        whatever the number of orders; examples are summed over the op rows.
        """
        op_rows = [r for r in self.results if r.kind == "op"]
        ops = len({r.name for r in op_rows})
        models = len({r.name for r in self.results if r.kind != "op"})
        tried = sum(r.examples for r in op_rows)
        parts = [f"{ops} op{'s' * (ops != 1)} ({tried} example{'s' * (tried != 1)})"] if ops \
            else []
        parts += [f"{models} model{'s' * (models != 1)}"] if models else []
        what = ", ".join(parts) or "nothing checked"
        orders = sorted({r.order for r in self.results})
        if orders:
            what += f"; {_orders_text(orders)}"
        if self.passed:
            count = len(self.results)
            verdict = f"all {count} checks passed" if count != 1 else "1 check passed"
        else:
            names = ", ".join(f"{r.name} order {r.order}" for r in self.failed)
            verdict = f"{len(self.failed)} of {len(self.results)} checks FAILED ({names})"
        return f"{verdict}: {what}; seed {self.seed}; {self.seconds:.2f} s"

    def __str__(self) -> str:
        parts = [self.table()]
        parts += [r.failure_text() for r in self.failed]
        parts.append(self.summary())
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "seed": self.seed, "examples": self.examples,
            "orders": list(self.orders), "tolerances": self.tolerances,
            "seconds": round(self.seconds, 4), "summary": self.summary(),
            "results": [r.to_json() for r in self.results],
        }


# ---------------------------------------------------------------------------------------------
# Reproducing a failure
# ---------------------------------------------------------------------------------------------

def reproduce_op(op: Primitive, seed: int, index: int, drawn_seed: int, tolerances: dict,
                 order: int = 1) -> list[str]:
    """The command (for a registered op) and the Python line that run example ``index`` of
    ``op`` at ``order`` again: ``--op NAME --seed S --order N --examples index+1`` ends the run
    at that example, and ``check_op(..., seed=drawn_seed, order=N)`` checks it alone."""
    defaults = inspect.signature(check_grads).parameters
    changed = {k: v for k, v in tolerances.items()
               if k not in defaults or v != defaults[k].default}
    keywords = "".join(f", {k}={v!r}" for k, v in changed.items())
    python = (f"args, params = op.sample(tg.RandomDraw({drawn_seed})); "
              f"tg.check_op(op, args, params, seed={drawn_seed}, order={order}{keywords})")
    if REGISTRY.get(op.name) is not op:  # an unregistered op: only the Python line finds it
        return [f"in Python, with op = your primitive: {python}"]
    command = "python -m tinygraph.gradcheck"
    imports = "tinygraph as tg"
    if op.module and not op.module.startswith("tinygraph") and op.module != "__main__":
        command += f" --import {op.module}"
        imports += f", {op.module}"
    command += f" --op {op.name} --seed {seed} --order {order} --examples {index + 1}"
    command += "".join(f" --{k} {v!r}" for k, v in changed.items() if k in ("atol", "rtol"))
    return [command, f"in Python: import {imports}; op = tg.registry()[{op.name!r}]; {python}"]
