"""Numerical gradients and gradient checks: each backward rule proven against finite differences.

Two ways to compare:

- ``full``: central differences for every element, ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps``;
  exact about which element is wrong, but two evaluations of ``f`` per element.
- ``directional``: for a few random directions ``v``, compare ``<grad f, v>`` with
  ``(f(x + eps v) - f(x - eps v)) / 2 eps``: a handful of evaluations however large ``x`` is.

Both run in float64 on copies of the arguments; ``mode="auto"`` picks ``full`` for small inputs.
An element or direction passes when ``|analytic - numerical| <= atol + rtol * |numerical|``.

Higher orders (``order=2``, as HIPS autograd's ``check_grads(order=2)``): after the gradient,
the gradient of ``h(x) = <grad f(x), v>`` for a fixed random ``v`` is checked the same way, which
proves the recorded reverse pass (the rules run on Tensors) against finite differences of the
first-order gradient; ``order=3`` goes one step further, and so on.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygraph.ops.arithmetic import add, mul
from tinygraph.ops.reductions import reduce_sum
from tinygraph.primitive import Primitive
from tinygraph.pytree import flatten, unflatten
from tinygraph.state import no_grad
from tinygraph.tensor import Tensor, as_float_array
from tinygraph.transforms import checked_argnums, value_and_grad
from tinygraph.transforms import grad as gradient_of


@dataclass
class Mismatch:
    """The worst disagreement a failed check found, as numbers (the message has them as text)."""

    path: str
    mode: str
    where: str
    analytic: float
    numerical: float
    abs_error: float
    rel_error: float
    atol: float
    rtol: float
    seed: int | None


class GradientCheckError(AssertionError):
    """A backward rule disagrees with finite differences; the message says where and by how much.

    ``mismatch`` holds the same facts as numbers (None if the error was raised by other code).
    """

    mismatch: Mismatch | None = None


@dataclass
class ArgumentCheck:
    """How well one leaf's analytic gradient matched: the worst errors seen."""

    path: str
    mode: str
    size: int
    max_abs_error: float
    max_rel_error: float
    order: int = 1


@dataclass
class GradCheckReport:
    """The result of a passing check: one :class:`ArgumentCheck` per differentiated leaf."""

    checks: list[ArgumentCheck] = field(default_factory=list)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def __str__(self) -> str:
        lines = [f"{'argument':<28} {'order':>5} {'mode':<12} {'size':>8} {'max abs err':>12} "
                 f"{'max rel err':>12}"]
        for c in self.checks:
            lines.append(f"{c.path:<28} {c.order:>5} {c.mode:<12} {c.size:>8} "
                         f"{c.max_abs_error:>12.2e} {c.max_rel_error:>12.2e}")
        return "\n".join(lines)


def _evaluate(f: Any, args: list, kwargs: dict) -> float:
    """f(*args) as a Python float, recording nothing."""
    with no_grad():
        out = f(*args, **kwargs)
    value = np.asarray(out.data if isinstance(out, Tensor) else out, dtype=np.float64)
    if value.size != 1:
        raise ValueError(f"gradient check: the function must return one number, got {value.shape}")
    return float(value.reshape(()))


def _float64_copy(tree: Any) -> Any:
    leaves, treedef, _ = flatten(tree)
    # C order: the differences perturb leaf.reshape(-1), which must be a view, not a copy
    return unflatten(treedef, [np.array(as_float_array(leaf), dtype=np.float64, order="C")
                               for leaf in leaves])


def _is_float_leaf(leaf: Any) -> bool:
    if isinstance(leaf, Tensor):
        return True
    if isinstance(leaf, bool):
        return False
    if isinstance(leaf, (float, np.floating)):
        return True
    return isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f"


def differentiable_argnums(args: tuple) -> tuple[int, ...]:
    """The positions of arguments whose leaves are all floating point (labels are skipped)."""
    numbers = []
    for number, arg in enumerate(args):
        leaves = flatten(arg)[0]
        if leaves and all(_is_float_leaf(leaf) for leaf in leaves):
            numbers.append(number)
    return tuple(numbers)


def _central_differences(f: Any, work: list, leaf: np.ndarray, eps: float) -> np.ndarray:
    """(f(x + eps e_i) - f(x - eps e_i)) / 2 eps for every element i of ``leaf``, flattened.

    ``leaf`` is one of the arrays inside ``work`` (f's arguments), perturbed in place and restored.
    """
    flat = leaf.reshape(-1)  # a view: writing it perturbs what f sees
    result = np.zeros(flat.size)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = _evaluate(f, work, {})
        flat[i] = original - eps
        minus = _evaluate(f, work, {})
        flat[i] = original
        result[i] = (plus - minus) / (2 * eps)
    return result


def numerical_grad(f: Any, *args: Any, argnums: int | tuple[int, ...] = 0,
                   eps: float = 1e-6) -> Any:
    """Central differences in float64, with the same structure as ``tg.grad(f, argnums)``."""
    numbers = checked_argnums(argnums, len(args), "numerical_grad")
    work = list(args)
    for number in numbers:
        work[number] = _float64_copy(args[number])
    grads = []
    for number in numbers:
        leaves, treedef, _ = flatten(work[number])
        leaf_grads = [_central_differences(f, work, leaf, eps).reshape(leaf.shape)
                      for leaf in leaves]
        grads.append(unflatten(treedef, leaf_grads))
    return grads[0] if isinstance(argnums, int) else tuple(grads)


def _fail(path: str, mode: str, how: str, where: str, analytic: float, numerical: float,
          atol: float, rtol: float, seed: int | None, context: str) -> GradientCheckError:
    abs_error = abs(analytic - numerical)
    rel_error = abs_error / max(abs(numerical), 1e-300)
    seed_text = f", seed {seed}" if seed is not None else ""
    error = GradientCheckError(
        f"{context}gradient check failed for argument {path} ({how}{seed_text}):\n"
        f"  {where}: analytic {analytic:.9e}, numerical {numerical:.9e}\n"
        f"  abs error {abs_error:.3e}, rel error {rel_error:.3e}; "
        f"allowed: atol {atol:g} + rtol {rtol:g} * |numerical|"
    )
    error.mismatch = Mismatch(path, mode, where, analytic, numerical, abs_error, rel_error,
                              atol, rtol, seed)
    return error


MODES = ("auto", "full", "directional")
OPTIONS = ("atol", "rtol", "eps", "mode", "directions", "full_limit")  # check_grads' settings


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def option_error(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``check_grads`` setting ``name`` (one line), or None.

    A negative or NaN tolerance makes every comparison fail or pass whatever the rule, an infinite
    one passes anything; ``eps`` divides; no direction or a negative ``full_limit`` checks nothing.
    """
    if name in ("atol", "rtol", "eps"):
        positive = name == "eps"
        if _is_number(value) and math.isfinite(value) and (value > 0 if positive else value >= 0):
            return None
        return f"{name} must be a finite number {'> 0' if positive else '>= 0'}, not {value!r}"
    if name == "mode":
        return None if value in MODES else (
            f"mode must be 'auto', 'full' or 'directional', not {value!r}")
    if name in ("directions", "full_limit"):
        least = 1 if name == "directions" else 0
        if _is_integer(value) and value >= least:
            return None
        return f"{name} must be an integer >= {least}, not {value!r}"
    return f"unknown option {name!r}; the options are {', '.join(OPTIONS)}"


def check_options(options: dict[str, Any], who: str = "") -> None:
    """Raise a one-line ValueError, ``"{who}: ..."``, for the first invalid setting in
    ``options`` (``check_grads`` keywords: tolerances, ``mode``, ``directions``, ...)."""
    for name, value in options.items():
        reason = option_error(name, value)
        if reason is not None:
            raise ValueError(f"{who}: {reason}" if who else reason)


def check_grads(f: Any, *args: Any, argnums: int | tuple[int, ...] | None = None,
                atol: float = 1e-5, rtol: float = 1e-4, eps: float = 1e-6, mode: str = "auto",
                directions: int = 3, seed: int = 0, full_limit: int = 2000,
                context: str = "", order: int = 1) -> GradCheckReport:
    """Compare ``f``'s graph gradient with finite differences for every floating argument.

    ``order=2`` (or more) checks derivatives of derivatives too: the gradient of
    ``<grad f(x), v>`` for a random ``v`` drawn from ``seed``, and so on (the report holds the
    checks of every order; an error message says which order failed).

    ``argnums`` defaults to every argument whose leaves are floating (integer labels are
    skipped). ``mode`` is ``"full"``, ``"directional"`` or ``"auto"`` (full up to ``full_limit``
    elements in all). An element (or direction ``v``: ``<grad f, v>`` against the difference
    quotient along ``v``) passes when ``|analytic - numerical| <= atol + rtol * |numerical|``.
    Raises :class:`GradientCheckError` naming the argument path, the worst element or direction,
    both values, the errors, the tolerances and ``seed`` (which draws the directions); returns a
    report on success. ``atol``, ``rtol`` must be finite and >= 0, ``eps`` finite and > 0,
    ``directions`` >= 1: anything else is a one-line ValueError naming the argument (a negative
    tolerance would pass any rule).
    """
    check_options({"atol": atol, "rtol": rtol, "eps": eps, "mode": mode,
                   "directions": directions, "full_limit": full_limit}, "check_grads")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"check_grads: order must be an integer >= 1, not {order!r}")
    if argnums is None:
        numbers = differentiable_argnums(args)
        if not numbers:
            raise ValueError("check_grads: no argument has floating-point leaves to differentiate")
    else:
        numbers = checked_argnums(argnums, len(args), "check_grads")
    work = list(args)
    for number in numbers:
        work[number] = _float64_copy(args[number])
    report = GradCheckReport()
    function = f
    for level in range(1, order + 1):
        if level > 1:  # the derivative of the last level's gradient along a random direction
            function = _gradient_along(function, work, numbers, seed + level)
            where = f"{context}order {level} (the gradient of <grad f, v>): "
        else:
            where = context
        checks = _check_once(function, work, numbers, atol, rtol, eps, mode, directions, seed,
                             full_limit, where)
        for check in checks:
            check.order = level
        report.checks += checks
    return report


def _check_once(f: Any, work: list, numbers: tuple[int, ...], atol: float, rtol: float,
                eps: float, mode: str, directions: int, seed: int, full_limit: int,
                context: str) -> list[ArgumentCheck]:
    """One order: ``f``'s gradient against central differences, one check per leaf."""
    _, analytic = value_and_grad(f, numbers)(*work)
    total = sum(leaf.size for n in numbers for leaf in flatten(work[n])[0])
    chosen = mode if mode != "auto" else ("full" if total <= full_limit else "directional")
    checks = []
    rng = np.random.default_rng(seed)
    for number, grad_tree in zip(numbers, analytic):
        leaves, _, paths = flatten(work[number])
        for leaf, grad, path in zip(leaves, flatten(grad_tree)[0], paths):
            name = f"{number}{path}"
            if chosen == "full":
                check = _check_full(f, work, leaf, grad, name, atol, rtol, eps, seed, context)
            else:
                check = _check_directional(f, work, leaf, grad, name, atol, rtol, eps,
                                           directions, rng, seed, context)
            checks.append(check)
    return checks


def _gradient_along(f: Any, work: list, numbers: tuple[int, ...], seed: int) -> Any:
    """``h(*args) = <grad f(*args), v>`` for a fixed random ``v``: its gradient is H v."""
    rng = np.random.default_rng([seed, 2])  # not the stream the directional checks use
    direction = [rng.standard_normal(np.shape(leaf))
                 for n in numbers for leaf in flatten(work[n])[0]]
    gradient = gradient_of(f, numbers)

    def along(*args: Any) -> Any:
        total = None
        grads = [leaf for tree in gradient(*args) for leaf in flatten(tree)[0]]
        for g, v in zip(grads, direction):
            term = reduce_sum(mul(g, v))
            total = term if total is None else add(total, term)
        return total

    along.__name__ = f"<grad {getattr(f, '__name__', 'f')}, v>"
    return along


def _check_full(f: Any, work: list, leaf: np.ndarray, grad: np.ndarray, name: str, atol: float,
                rtol: float, eps: float, seed: int, context: str) -> ArgumentCheck:
    flat = leaf.reshape(-1)
    numerical = _central_differences(f, work, leaf, eps)
    analytic = np.asarray(grad, dtype=np.float64).reshape(-1)
    abs_error = np.abs(analytic - numerical)
    allowed = atol + rtol * np.abs(numerical)
    bad = ~(abs_error <= allowed)  # NaN anywhere counts as a failure
    if bad.any():
        with np.errstate(divide="ignore", invalid="ignore"):  # atol = rtol = 0 asks for equality
            excess = abs_error / allowed
        worst = int(np.argmax(np.where(bad, np.nan_to_num(excess, nan=np.inf), -1.0)))
        index = np.unravel_index(worst, leaf.shape) if leaf.ndim else ()
        # The seed does not change full differences, but callers (check_op) draw with it.
        raise _fail(name, "full", f"full central differences, eps {eps:g}, float64",
                    f"element {tuple(int(i) for i in index)}", float(analytic[worst]),
                    float(numerical[worst]), atol, rtol, seed, context)
    rel = abs_error / np.maximum(np.abs(numerical), 1e-12)
    return ArgumentCheck(name, "full", int(flat.size), float(abs_error.max(initial=0.0)),
                         float(rel.max(initial=0.0)))


def _check_directional(f: Any, work: list, leaf: np.ndarray, grad: np.ndarray, name: str,
                       atol: float, rtol: float, eps: float, directions: int,
                       rng: np.random.Generator, seed: int, context: str) -> ArgumentCheck:
    original = leaf.copy()
    worst_abs = worst_rel = 0.0
    for k in range(directions):
        direction = rng.standard_normal(leaf.shape)
        leaf[...] = original + eps * direction
        plus = _evaluate(f, work, {})
        leaf[...] = original - eps * direction
        minus = _evaluate(f, work, {})
        leaf[...] = original
        numerical = (plus - minus) / (2 * eps)
        analytic = float(np.sum(np.asarray(grad, dtype=np.float64) * direction))
        abs_error = abs(analytic - numerical)
        if not abs_error <= atol + rtol * abs(numerical):  # NaN fails too
            raise _fail(name, "directional",
                        f"directional, {directions} random directions, eps {eps:g}, float64",
                        f"direction {k}", analytic, numerical, atol, rtol, seed, context)
        worst_abs = max(worst_abs, abs_error)
        worst_rel = max(worst_rel, abs_error / max(abs(numerical), 1e-12))
    return ArgumentCheck(name, "directional", int(leaf.size), worst_abs, worst_rel)


def check_op(op: Primitive, args: tuple, params: dict | None = None, *, seed: int = 0,
             order: int = 1, **tolerances: Any) -> GradCheckReport:
    """Gradient-check one primitive on given inputs (its rule; with ``order=2`` also the rule
    differentiated again, see :func:`check_grads`).

    The output is projected onto fixed random weights, ``L = sum(op(*args) * w)`` with
    ``w ~ N(0, 1)`` drawn from ``seed``, so every output element's cotangent is exercised (a plain
    sum would hide errors that sum to zero); ``dL/dx`` is then the rule's VJP of ``w``. Floating
    inputs are differentiated; integer inputs (labels) are passed through. ``tolerances`` are
    :func:`check_grads` keywords (``atol``, ``rtol``, ``eps``, ``mode``, ...).
    """
    # the settings are checked before the op runs (check_grads would only see them after)
    check_options({k: v for k, v in tolerances.items() if k in OPTIONS}, "check_grads")
    params = params or {}
    out = np.asarray(op(*args, **params))
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    positions = differentiable_argnums(args)

    def projected(*differentiable: Any) -> Any:
        full = list(args)
        for position, value in zip(positions, differentiable):
            full[position] = value
        return reduce_sum(mul(op(*full, **params), weights))

    return check_grads(projected, *[args[p] for p in positions], seed=seed, order=order,
                       context=f"op {op.name}: ", **tolerances)
