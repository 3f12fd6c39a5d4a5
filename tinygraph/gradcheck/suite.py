"""The gradient-check suite: every registered primitive on many drawn inputs, and model checks.

Every op is checked at each derivative order asked for (``orders``, default 1 and 2), one row
per (op, order). Example ``k`` of op ``name`` in a run with seed ``S`` draws its inputs with
``op.sample(RandomDraw(s))``, ``s = example_seed(S, name, k)``, and the order-``n`` row checks
them with ``check_op(op, args, params, seed=s, order=n)``:

- order 1: central differences of ``L = sum(op(*args) * w)``, ``w ~ N(0, 1)``, against the
  rule's VJP of ``w``;
- order 2: that, then the gradient of ``h(x) = <grad L(x), v>`` for a fixed random ``v`` (the
  Hessian-vector product ``H v``, computed by differentiating the recorded reverse pass) against
  central differences of ``h``; order 3 differentiates once more, and so on.

The example seeds depend neither on the order nor on which other ops run, so
``--op NAME --seed S --order N`` reproduces that row of a full run. The first failing example
ends the row; when hypothesis is installed it then looks for the smallest failing input
(shrinking), which the report shows next to the original. A rule that cannot be differentiated
again (it calls NumPy on its inputs) fails its order-2 row with the
:class:`~tinygraph.HigherOrderError` that says so.

Model checks come from hooks: functions of no arguments returning a :class:`ModelCheck` (or a
tuple ``(f, args)``), found by name in the entry-point group ``tinygraph.models`` or given as
``module:function``. They are checked along random directions (``mode="directional"``) at the
same orders as the ops (the 784-64-10 network at order 2 takes a fraction of a second).

Whatever a user's rule, forward, sample function or model loss raises, ``SystemExit`` and
``GeneratorExit`` included, is that row's failure (named in the report); only
``KeyboardInterrupt`` goes through and stops the run. Settings (tolerances, orders), names and
model hooks are checked before anything runs, so a bad request is a :class:`SuiteError`, never a
column of failed rows.

The rows, the report and their formatting are in :mod:`tinygraph.gradcheck.report`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygraph.gradcheck.core import GradCheckReport, check_grads, check_op, check_options
from tinygraph.gradcheck.report import (
    CheckResult,
    Failure,
    SuiteReport,
    describe_input,
    error_text,
    input_shapes,
    reproduce_op,
    tree_shapes,
)
from tinygraph.gradcheck.report import format_table as format_table  # re-exported
from tinygraph.gradcheck.report import short_repr as short_repr  # re-exported
from tinygraph.primitive import REGISTRY, Primitive
from tinygraph.pytree import flatten
from tinygraph.sampling import RandomDraw
from tinygraph.state import HigherOrderError

MODEL_GROUP = "tinygraph.models"
SHRINK_TRIES = 200
DEFAULT_ORDERS: tuple[int, ...] = (1, 2)


class SuiteError(ValueError):
    """A request the suite cannot run (unknown op or model, a hook that does not load, a bad
    tolerance)."""


def check_tolerances(tolerances: dict[str, Any], who: str = "") -> None:
    """:func:`~tinygraph.gradcheck.core.check_options` raising :class:`SuiteError`."""
    try:
        check_options(tolerances, who)
    except ValueError as error:
        raise SuiteError(str(error)) from None


# ---------------------------------------------------------------------------------------------
# Drawing examples
# ---------------------------------------------------------------------------------------------

def example_seed(seed: int, name: str, index: int) -> int:
    """The :class:`RandomDraw` (and projection) seed of example ``index`` of op ``name``.

    A hash of ``(seed, crc32(name), index)`` through NumPy's SeedSequence: independent of the
    other ops and of the order they run in.
    """
    entropy = [int(seed), zlib.crc32(name.encode()), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------
# Ops
# ---------------------------------------------------------------------------------------------

def resolve_ops(names: Iterable[str | Primitive] | None = None) -> list[Primitive]:
    """The registered ops named (all of them, sorted by name, when ``names`` is None)."""
    if names is None:
        return [REGISTRY[name] for name in sorted(REGISTRY)]
    ops = []
    for name in names:
        if isinstance(name, Primitive):
            ops.append(name)
        elif name in REGISTRY:
            ops.append(REGISTRY[name])
        else:
            known = ", ".join(sorted(REGISTRY))
            raise SuiteError(f"unknown op {name!r}; registered ops: {known}")
    return ops


def _shrink(op: Primitive, error: BaseException, drawn_seed: int, order: int,
            tolerances: dict, tries: int) -> tuple[tuple | None, str]:
    """A smallest failing ``(args, params, error)`` found by hypothesis, or why there is none.

    Falls back to the unshrunk example when hypothesis is not installed: the library needs it
    nowhere else. A :class:`~tinygraph.HigherOrderError` is not shrunk: it says the rule cannot
    be differentiated again, which no input changes.
    """
    if isinstance(error, HigherOrderError):
        return None, ("unshrunk: the rule cannot be differentiated again whatever the input; "
                      "the input above is the one drawn")
    try:
        import hypothesis
        from hypothesis.errors import NoSuchExample

        from tinygraph.gradcheck.strategies import op_inputs  # needs hypothesis too
    except ImportError:
        return None, ("unshrunk: hypothesis is not installed (pip install hypothesis to shrink "
                      "failing inputs); the input above is the one drawn")
    kind = type(error)

    def fails(sample: tuple[tuple, dict]) -> bool:
        args, params = sample
        try:
            check_op(op, args, params, seed=drawn_seed, order=order, **tolerances)
        except kind:
            return True
        except KeyboardInterrupt:
            raise
        except BaseException:  # a different failure is not this one
            return False
        return False

    settings = hypothesis.settings(
        max_examples=tries, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=(hypothesis.Phase.generate, hypothesis.Phase.shrink),
    )
    try:
        args, params = hypothesis.find(op_inputs(op), fails, settings=settings)
    except NoSuchExample:
        return None, (f"unshrunk: hypothesis found no failing input in {tries} tries; "
                      "the input above is the one drawn")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # e.g. the sample function fails on a hypothesis draw
        return None, f"unshrunk: the search failed ({error_text(exc)})"
    try:
        check_op(op, args, params, seed=drawn_seed, order=order, **tolerances)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # it fails by construction
        return (args, params, exc), ""
    return None, "unshrunk: the shrunk input no longer fails"


def _sample_problem(sample: Any) -> str | None:
    """Why a sample function's value is not ``(args, params)``, or None."""
    if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
        return f"the sample function returned {short_repr(sample)}, not (args, params)"
    args, params = sample
    if not isinstance(args, (tuple, list)):
        return f"the sample function returned args {short_repr(args)}, not a tuple"
    if not isinstance(params, dict):
        return f"the sample function returned params {short_repr(params)}, not a dict"
    return None


def normalize_orders(orders: int | Iterable[int]) -> tuple[int, ...]:
    """``orders`` (one order, or several) sorted, without repeats; each an integer >= 1, and at
    least one."""
    chosen = []
    for order in [orders] if isinstance(orders, (int, np.integer)) else orders:
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise SuiteError(f"an order must be an integer >= 1, not {order!r}")
        chosen.append(int(order))
    if not chosen:
        raise SuiteError("no order to check: give at least one (1: gradients, 2: their "
                         "derivatives)")
    return tuple(sorted(set(chosen)))


def _errors_of_order(report: GradCheckReport, order: int) -> tuple[float, float]:
    """The worst absolute and relative errors of the checks of ``order`` in ``report``."""
    checks = [c for c in report.checks if c.order == order]
    return (max((c.max_abs_error for c in checks), default=0.0),
            max((c.max_rel_error for c in checks), default=0.0))


def check_op_examples(op: Primitive | str, examples: int = 100, seed: int = 0, *,
                      order: int = 1, shrink: bool = True, **tolerances: Any) -> CheckResult:
    """Gradient-check ``op`` at derivative ``order`` on ``examples`` inputs from its ``sample``.

    Each example is :func:`check_op` with ``order`` on the inputs of
    ``RandomDraw(example_seed(seed, op.name, k))`` (the same inputs whatever the order): at
    order 1 the rule's VJP of random weights ``w`` against central differences of
    ``sum(op(*args) * w)``; at order 2 also the gradient of ``<grad, v>`` for a random ``v``
    against central differences of it. Stops at the first failure (a wrong value, or an error
    such as :class:`~tinygraph.HigherOrderError` from a rule that cannot be differentiated
    again), which hypothesis shrinks when ``shrink`` and it is installed. The row's errors are
    those of ``order`` itself. ``tolerances`` are :func:`check_grads` keywords (``atol``,
    ``rtol``, ``eps``, ``mode``).
    """
    op = resolve_ops([op])[0]
    order = normalize_orders([order])[0]
    check_tolerances(tolerances)
    start = time.perf_counter()
    worst_abs = worst_rel = 0.0
    worst_shape = "-"
    if not op.has_rule:
        failure = Failure(error=f"{op.name}: no backward rule (define one with defvjp)",
                          input=[])
        return CheckResult(op.name, "op", 0, math.nan, math.nan, "-", False, seed,
                           time.perf_counter() - start, failure, order)
    for index in range(examples):
        drawn_seed = example_seed(seed, op.name, index)
        try:
            sample = op.sample(RandomDraw(drawn_seed))
            problem = _sample_problem(sample)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # SystemExit from user code is a failure too
            problem = f"the sample function failed: {error_text(error)}"
        if problem is not None:
            failure = Failure(error=problem, input=[], example=index, example_seed=drawn_seed,
                              reproduce=reproduce_op(op, seed, index, drawn_seed, tolerances,
                                                     order))
            return CheckResult(op.name, "op", index + 1, math.nan, math.nan, "-", False, seed,
                               time.perf_counter() - start, failure, order)
        args, params = sample
        try:
            report = check_op(op, args, params, seed=drawn_seed, order=order, **tolerances)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # the rule's, the forward's or the check's
            failure = Failure(error=error_text(error), input=describe_input(args, params),
                              example=index, example_seed=drawn_seed,
                              reproduce=reproduce_op(op, seed, index, drawn_seed, tolerances,
                                                     order),
                              mismatch=getattr(error, "mismatch", None))
            if shrink:
                shrunk, failure.shrink_note = _shrink(op, error, drawn_seed, order, tolerances,
                                                      SHRINK_TRIES)
                if shrunk is not None:
                    failure.shrunk_input = describe_input(shrunk[0], shrunk[1])
                    failure.shrunk_error = error_text(shrunk[2])
            mismatch = failure.mismatch
            return CheckResult(
                op.name, "op", index + 1,
                mismatch.abs_error if mismatch else math.nan,
                mismatch.rel_error if mismatch else math.nan,
                input_shapes(args), False, seed,
                time.perf_counter() - start, failure, order)
        abs_error, rel_error = _errors_of_order(report, order)
        if index == 0 or abs_error > worst_abs:
            worst_shape = input_shapes(args)
        worst_abs = max(worst_abs, abs_error)
        worst_rel = max(worst_rel, rel_error)
    return CheckResult(op.name, "op", examples, worst_abs, worst_rel, worst_shape, True, seed,
                       time.perf_counter() - start, order=order)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

@dataclass
class ModelCheck:
    """A model's scalar loss ``f(*args)`` and what to differentiate, for a model-level check.

    ``argnums`` picks the arguments checked (e.g. 0: the parameters, not the data; None: every
    floating argument); ``options`` are more :func:`check_grads` keywords (``atol``, ``mode``,
    ``directions``...). A hook returns one of these, or a tuple ``(f, args)`` /
    ``(f, args, options)``.
    """

    f: Callable[..., Any]
    args: tuple
    argnums: int | tuple[int, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)


def as_model_check(value: Any) -> ModelCheck:
    """A hook's return value as a :class:`ModelCheck`."""
    if isinstance(value, ModelCheck):
        return value
    if isinstance(value, tuple) and len(value) in (2, 3) and callable(value[0]):
        options = dict(value[2]) if len(value) == 3 else {}
        argnums = options.pop("argnums", None)
        return ModelCheck(value[0], tuple(value[1]), argnums, options)
    raise SuiteError("a model check must return a ModelCheck or a tuple (f, args[, options]), "
                     f"not {type(value).__name__}")


def available_models() -> dict[str, str]:
    """Model checks installed under the entry-point group ``tinygraph.models``: name -> target."""
    found: dict[str, str] = {}
    for entry in importlib.metadata.entry_points(group=MODEL_GROUP):
        found.setdefault(entry.name, entry.value)
    return dict(sorted(found.items()))


def load_model(spec: str) -> Callable[[], Any]:
    """The hook for an installed model name, or for ``module:function``."""
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit in the module's body too
            raise SuiteError(f"model {spec!r} does not load: {error_text(exc)}") from None
        return target
    for entry in importlib.metadata.entry_points(group=MODEL_GROUP):
        if entry.name == spec:
            try:
                return entry.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise SuiteError(f"model {spec!r} ({entry.value}) does not load: "
                                 f"{error_text(exc)}") from None
    names = ", ".join(available_models()) or "none installed"
    raise SuiteError(f"unknown model {spec!r}; available models ({MODEL_GROUP} entry points): "
                     f"{names}; or give module:function")


def model_check(spec: str | Callable[[], Any] | ModelCheck) -> ModelCheck:
    """Load (a name or ``module:function``), call the hook, and check what it returned (its
    options too: a bad tolerance is a :class:`SuiteError` naming the model)."""
    if isinstance(spec, ModelCheck):
        check, who = spec, "model check"
    else:
        hook = load_model(spec) if isinstance(spec, str) else spec
        name = spec if isinstance(spec, str) else getattr(hook, "__name__", repr(hook))
        who = f"model {name!r}"
        try:
            value = hook()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from the hook too
            raise SuiteError(f"{who}: the check function raised {error_text(exc)}") from None
        check = as_model_check(value)
    check_tolerances(check.options, who)
    return check


def _leaf_label(check: ModelCheck, path: str) -> str:
    """``0['W1'] (784, 64)``: a differentiated leaf's path and shape."""
    for number, arg in enumerate(check.args):
        leaves, _, paths = flatten(arg)
        for leaf, leaf_path in zip(leaves, paths):
            if f"{number}{leaf_path}" == path:
                return f"{path} {tuple(np.shape(leaf))}"
    return path


def check_model(name: str, model: str | Callable[[], Any] | ModelCheck | None = None,
                seed: int = 0, *, order: int = 1, **tolerances: Any) -> CheckResult:
    """Gradient-check a model's loss along random directions ``v``: ``<grad f, v>`` against
    ``(f(x + eps v) - f(x - eps v)) / 2 eps``, ``v ~ N(0, I)`` drawn from ``seed``.

    At ``order`` 2 the gradient of ``h(x) = <grad f(x), u>`` for a fixed random ``u`` (the
    Hessian-vector product ``H u``) is then checked the same way, and so on (see
    :func:`check_grads`); the row's errors are those of ``order`` itself. ``model`` is a
    :class:`ModelCheck`, a hook returning one, or a name for :func:`load_model` (default:
    ``name``). The model's own ``options`` come first, then ``tolerances``; the mode is
    ``directional`` unless one of them says otherwise.
    """
    start = time.perf_counter()
    order = normalize_orders([order])[0]
    check_tolerances(tolerances)
    check = model_check(name if model is None else model)
    options = {"mode": "directional", **check.options, **tolerances}
    try:
        report = check_grads(check.f, *check.args, argnums=check.argnums, seed=seed,
                             context=f"model {name}: ", order=order, **options)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # a wrong gradient, or whatever the loss raised
        mismatch = getattr(error, "mismatch", None)
        shapes = [f"arg {i}: {tree_shapes(a)}" for i, a in enumerate(check.args)]
        failure = Failure(error=error_text(error), input=shapes,
                          reproduce=[f"python -m tinygraph.gradcheck --model {name} "
                                     f"--seed {seed} --order {order}"], mismatch=mismatch)
        return CheckResult(name, "model", 1,
                           mismatch.abs_error if mismatch else math.nan,
                           mismatch.rel_error if mismatch else math.nan,
                           _leaf_label(check, mismatch.path) if mismatch else "-", False, seed,
                           time.perf_counter() - start, failure, order)
    own = [c for c in report.checks if c.order == order]
    worst = max(own, key=lambda c: c.max_abs_error, default=None)
    abs_error, rel_error = _errors_of_order(report, order)
    return CheckResult(name, "model", 1, abs_error, rel_error,
                       _leaf_label(check, worst.path) if worst else "-", True, seed,
                       time.perf_counter() - start, order=order)


# ---------------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------------

def run_suite(ops: Iterable[str | Primitive] | None = None, models: Sequence[str] = (), *,
              examples: int = 100, seed: int = 0,
              orders: int | Iterable[int] = DEFAULT_ORDERS,
              shrink: bool = True, **tolerances: Any) -> SuiteReport:
    """Check ``ops`` (every registered op when None; ``[]`` for none) and ``models`` at each of
    ``orders`` (default 1 and 2: gradients and their derivatives; one int for one order).

    One row per (op, order), ops in the order given and each op's orders ascending, then one
    row per (model, order): ``len(ops) * len(orders)`` op rows. Names, orders and tolerances
    (``atol``, ``rtol``, ``eps``, ``mode``, ``directions``, ``full_limit``) are checked and model
    checks built before anything runs, so an unknown name, a bad order or tolerance or a broken
    hook fails fast with :class:`SuiteError`. ``KeyboardInterrupt`` stops the run; any other
    exception from user code is its row's failure.
    """
    chosen = resolve_ops(ops)
    levels = normalize_orders(orders)
    check_tolerances(tolerances)
    start = time.perf_counter()
    checks = [(name, model_check(name)) for name in models]
    results = [check_op_examples(op, examples, seed, order=order, shrink=shrink, **tolerances)
               for op in chosen for order in levels]
    results += [check_model(name, check, seed, order=order, **tolerances)
                for name, check in checks for order in levels]
    return SuiteReport(results, seed, examples, dict(tolerances), time.perf_counter() - start,
                       levels)
