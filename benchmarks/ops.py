"""Every registered primitive, timed the way the engine calls it, so a slow rule stands out.

Nothing lists the ops: the benchmark walks ``tg.registry()``, and draws each op's inputs from the
op's own ``sample`` function, the one the gradient checks use. There is no "raw NumPy equivalent"
registered per op; the op's own ``forward`` on plain arrays is that equivalent (it is the NumPy
call the op wraps), and everything else is measured against it:

* ``forward``   -- ``op.forward(*arrays, **params)``: the NumPy work itself;
* ``into``      -- ``op.forward_into(out, *arrays, **params)``, for ops that have it (the traced
                  step writes into preallocated buffers this way);
* ``call``      -- ``op(*tensors, **params)``: forward plus recording a node; ``call - forward`` is
                  the recording overhead per op;
* ``copy``      -- a copy of every differentiable input: the least any rule must do, since it
                  writes one cotangent of each input's size;
* ``rule``      -- ``op.cotangents(grad_out, out, inputs, params, needed)``: the backward rule
                  alone, every differentiable input needed. ``rule / max(forward, copy)`` is the
                  ratio that makes a slow rule stand out: most rules cost one to three forwards,
                  and a view's rule (``getitem``, ``transpose``) is judged by the copy, since its
                  forward moves no data;
* ``pass``      -- ``y.backward(grad_out)`` on the one-node graph: the rule plus the reverse pass's
                  own work for that node (unbroadcasting, casting, accumulating into ``.grad``).

Two input sizes per op: the sample as drawn (tiny arrays, so the times are per-call overhead) and
a medium one (about ``TARGET`` elements). The medium sample comes from the same sample function
with a :class:`MediumDraw`, whose shapes are large; an op whose sample picks its sizes some other
way (``matmul``, ``softmax_cross_entropy`` draw small integers) gets its drawn arrays tiled along
every axis instead, when it has no parameters that name a shape. The JSON keeps the shapes, so
every number says what it was measured on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygraph as tg
from benchmarks.harness import interleaved, log

TARGET = 1 << 16      # elements in the largest input of a medium sample
SEEDS = range(32)     # samples drawn per op; the valid one that moves most data is kept


@dataclass(frozen=True)
class OpsPlan:
    """How long each op's timings sample."""

    samples: int
    min_time: float


class MediumDraw(tg.RandomDraw):
    """A :class:`tinygraph.RandomDraw` whose shapes hold about ``target`` elements.

    Shapes get two dimensions where the sample function allows it, all sides equal; broadcastable
    shapes are all the same (the common case: no broadcasting). Integers, choices and values are
    drawn as usual, so the sample stays valid for its op.
    """

    def __init__(self, seed: int, target: int = TARGET) -> None:
        super().__init__(seed)
        self.target = target

    def shape(self, min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> tuple[int, ...]:
        ndim = min(max(2, min_dims), max_dims)
        if ndim == 0:
            return ()
        side = max(1, round(self.target ** (1 / ndim)))
        return (side,) * ndim

    def broadcastable_shapes(self, n: int, min_dims: int = 0, max_dims: int = 3,
                             max_side: int = 4) -> list[tuple[int, ...]]:
        return [self.shape(min_dims, max_dims, max_side)] * n


def _arrays(args: Sequence[Any]) -> list[np.ndarray]:
    return [a for a in args if isinstance(a, np.ndarray)]


def largest_input(args: Sequence[Any]) -> int:
    """Elements in the largest array argument."""
    return max((a.size for a in _arrays(args)), default=0)


def total_input(args: Sequence[Any]) -> int:
    """Elements in all array arguments together."""
    return sum(a.size for a in _arrays(args))


def _tiled(args: tuple, factor: int) -> tuple:
    return tuple(np.tile(a, (factor,) * a.ndim) if isinstance(a, np.ndarray) else a
                 for a in args)


def output_size(op: tg.Primitive, args: tuple, params: dict) -> int | None:
    """Elements of the forward's result, or None when the forward or the rule rejects the
    inputs (a tiled matrix is singular, say) or the result is not finite."""
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(op.forward(*args, **params))
            if out.dtype.kind == "f" and not np.isfinite(out).all():
                return None
            if op.differentiable and out.dtype.kind == "f":
                needed = [_is_differentiable(a) for a in args]
                op.cotangents(np.ones_like(out), out, args, params, needed)
    except Exception:
        return None
    return out.size


def medium_sample(op: tg.Primitive, target: int = TARGET) -> tuple[tuple, dict, str]:
    """Inputs of about ``target`` elements for ``op``, and how they were made."""
    best: tuple[tuple, dict, str] | None = None
    best_score = -1
    for seed in SEEDS:
        # A pilot at 1/64 of the size first: an op whose result outgrows its inputs (kron,
        # outer, einsum of an outer product) keeps the pilot's size, since at full size its
        # result would take gigabytes.
        pilot_args, pilot_params = op.sample(MediumDraw(seed, max(target // 64, 1)))
        pilot_out = output_size(op, tuple(pilot_args), dict(pilot_params))
        if pilot_out is None:
            continue
        if pilot_out > 16 * max(total_input(pilot_args), 1):
            args, params, how = pilot_args, pilot_params, "drawn at 1/64 (the result outgrows it)"
        else:
            args, params = op.sample(MediumDraw(seed, target))
            how = "drawn large"
        candidates = [(tuple(args), dict(params), how)]
        biggest = largest_input(args)
        if not params and 0 < biggest < target // 4:
            factor = 2
            while factor < target and largest_input(_tiled(args, factor * 2)) <= target:
                factor *= 2  # (0-d inputs never grow: the factor bound ends the loop)
            candidates.append((_tiled(tuple(args), factor), {}, f"drawn, tiled x{factor}"))
        for candidate in candidates:
            out = output_size(op, candidate[0], candidate[1])
            if out is None or largest_input(candidate[0]) > 4 * target:
                continue
            score = total_input(candidate[0]) + out  # elements read and written
            if score > best_score:
                best, best_score = candidate, score
    if best is None:
        args, params = op.sample(tg.RandomDraw(0))
        return tuple(args), dict(params), "as drawn (no larger sample was valid)"
    return best


def _describe_args(args: Sequence[Any]) -> str:
    parts = []
    for arg in args:
        if isinstance(arg, np.ndarray):
            kind = "" if arg.dtype.kind == "f" else f" {arg.dtype.name}"
            parts.append("x".join(map(str, arg.shape)) or "scalar")
            parts[-1] += kind
        else:
            parts.append(repr(arg))
    return ", ".join(parts)


def _describe_params(params: dict) -> str:
    def short(value: Any) -> str:
        if isinstance(value, np.ndarray):
            return f"array{list(value.shape)}"
        if isinstance(value, tuple) and any(isinstance(v, np.ndarray) for v in value):
            return "(" + ", ".join(short(v) for v in value) + ")"
        return repr(value)

    return ", ".join(f"{key}={short(value)}" for key, value in params.items())


def _is_differentiable(arg: Any) -> bool:
    return isinstance(arg, np.ndarray) and arg.dtype.kind == "f"


def time_op(op: tg.Primitive, args: tuple, params: dict, plan: OpsPlan,
            seed: int = 0) -> dict[str, Any]:
    """Forward, forward into a buffer, recorded call, rule and one-node pass of ``op``."""
    # np.asarray(order="C"), not np.ascontiguousarray: that one makes 0-d arrays 1-d
    args = tuple(np.asarray(a, order="C") if isinstance(a, np.ndarray) else a for a in args)
    tensors = tuple(tg.Tensor(a, requires_grad=True) if _is_differentiable(a) else a
                    for a in args)
    needed = [_is_differentiable(a) for a in args]
    differentiable = [a for a in args if _is_differentiable(a)]
    out = np.asarray(op.forward(*args, **params))
    grad_out = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    functions: dict[str, Callable[[], object]] = {
        "forward": functools.partial(op.forward, *args, **params),
        "call": functools.partial(op, *tensors, **params),
        "copy": lambda: [np.copy(a) for a in differentiable],
        "rule": functools.partial(op.cotangents, grad_out, out, args, params, needed),
    }
    forward_into = getattr(op, "forward_into", None)
    if forward_into is not None:
        buffer = np.empty_like(out)
        functions["into"] = functools.partial(forward_into, buffer, *args, **params)
    node = op(*tensors, **params)
    if isinstance(node, tg.Tensor) and node.requires_grad:
        leaves = [t for t in tensors if isinstance(t, tg.Tensor)]

        def one_node_pass() -> None:
            for leaf in leaves:
                leaf.grad = None
            node.backward(grad_out)

        functions["pass"] = one_node_pass
    with np.errstate(all="ignore"):
        timings = interleaved(functions, plan.samples, plan.min_time, collect=False)
    seconds = {name: timing.median for name, timing in timings.items()}
    return {"inputs": _describe_args(args), "params": _describe_params(params),
            "elements": largest_input(args), **seconds,
            "overhead": seconds["call"] - seconds["forward"],
            "rule_ratio": seconds["rule"] / max(seconds["forward"], seconds["copy"])}


def run_ops(plan: OpsPlan, ops: dict[str, tg.Primitive] | None = None) -> dict[str, Any]:
    """Time every op of the registry (or of ``ops``) on a tiny and a medium sample."""
    ops = tg.registry() if ops is None else ops
    rows: list[dict[str, Any]] = []
    for name in sorted(ops):
        op = ops[name]
        if not op.has_rule:
            log(f"  op {name}: no backward rule, skipped")
            continue
        tiny_args, tiny_params = op.sample(tg.RandomDraw(0))
        samples = {"tiny": (tuple(tiny_args), dict(tiny_params), "as drawn"),
                   "medium": medium_sample(op)}
        for size, (args, params, how) in samples.items():
            try:
                row = time_op(op, args, params, plan)
            except Exception as exc:  # one broken op must not hide the others
                rows.append({"op": name, "size": size, "error": f"{type(exc).__name__}: {exc}"})
                log(f"  op {name} ({size}): failed: {exc}")
                continue
            rows.append({"op": name, "size": size, "sample": how, **row})
        medium = rows[-1]
        if "error" not in medium:
            log(f"  op {name}: forward {medium['forward'] * 1e6:.1f} us, rule "
                f"{medium['rule'] * 1e6:.1f} us ({medium['rule_ratio']:.1f}x) on "
                f"{medium['inputs']}")
    return {"rows": rows, "target_elements": TARGET, "dtype": "float64 (as the samples draw)"}
