"""Traced functions: record a step once, replay it as a flat schedule on arrays.

``tg.trace(f)`` calls ``f`` once with the example arguments, records every primitive it applies
(and, for ``f = tg.value_and_grad(loss)`` or ``tg.grad(loss)``, every backward rule of the reverse
pass), and returns a callable that replays that list on new arguments of the same shapes and
dtypes: no Tensor objects, no topological sort, no cotangent dictionary per call; forward results
go into buffers allocated once (``forward_into``); a cotangent's reduction to its input's shape is
planned once.

Like ``jax.jit`` and ``torch.jit.trace``, tracing records the path the Python code took with the
example arguments: ``if``/``for`` that depend on values are frozen as taken. Converting a Tensor
to a NumPy array or a number inside a traced function (``np.asarray(t)``, ``t.item()``,
comparisons) raises :class:`TraceError`, because that value would be frozen into the trace.
Arguments that are not arrays (strings, ints, flags) are part of the trace's key. A call with new
shapes, dtypes or such arguments traces again (``retrace=False`` makes that an error instead).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygraph.autodiff import TRANSFORMS, _argnums, fit_cotangent, reverse_pass, toposort
from tinygraph.primitive import Primitive
from tinygraph.pytree import flatten, unflatten
from tinygraph.state import STATE, TraceError, enable_grad
from tinygraph.tensor import Tensor, as_float_array


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, (np.ndarray, Tensor))


def _signature(leaf: Any, differentiated: bool) -> tuple:
    """What a call must match to replay a trace: shape and dtype of arrays, value otherwise.

    Every leaf of a differentiated argument is an array (numbers become float64, as in
    ``tg.grad``); elsewhere only arrays and Tensors are, and other values are static.
    """
    if differentiated and not _is_array(leaf):
        try:
            data = as_float_array(leaf)
        except (TypeError, ValueError):
            return ("static", type(leaf).__name__, repr(leaf))  # _build says what is wrong
        return ("array", data.shape, data.dtype.str)
    if _is_array(leaf):
        data = leaf.data if isinstance(leaf, Tensor) else leaf
        return ("array", data.shape, data.dtype.str)
    try:
        hash(leaf)
    except TypeError:
        return ("static", type(leaf).__name__, repr(leaf))
    return ("static", type(leaf).__name__, leaf)


def _describe(signature: tuple) -> str:
    if signature[0] == "array":
        return f"shape {signature[1]} {np.dtype(signature[2])}"
    return f"{signature[1]} {signature[2]!r}"


@dataclass
class _ForwardStep:
    prim: Primitive
    refs: tuple[int, ...]
    params: dict
    out: int
    buffer: np.ndarray | None


@dataclass
class _RuleStep:
    prim: Primitive
    grad_out: int
    out: int
    refs: tuple[int, ...]
    params: dict
    needed: list[bool]
    # (input position, cotangent slot, shape, dtype, first contribution?)
    targets: list[tuple[int, int, tuple[int, ...], np.dtype, bool]]


@dataclass
class _Plan:
    """A flat schedule over numbered slots; constants and buffers are filled in once."""

    template: list[Any] = field(default_factory=list)
    inputs: list[tuple[int, int, bool]] = field(default_factory=list)  # (slot, leaf, to float)
    forward: list[_ForwardStep] = field(default_factory=list)
    backward: list[_RuleStep] = field(default_factory=list)
    value_slot: int | None = None
    grad_slots: list[tuple[int | None, Any, bool]] = field(default_factory=list)
    grad_treedefs: list[tuple[Any, int]] = field(default_factory=list)
    output_treedef: Any = None
    output_slots: list[tuple[int | None, Any, bool]] = field(default_factory=list)
    cotangent_slots: dict[int, int] = field(default_factory=dict)

    def slot(self, value: Any = None) -> int:
        self.template.append(value)
        return len(self.template) - 1

    def run(self, leaves: list[Any], kind: str, single: bool) -> Any:
        slots = list(self.template)
        for slot, position, to_float in self.inputs:
            leaf = leaves[position]
            data = leaf.data if isinstance(leaf, Tensor) else leaf
            slots[slot] = as_float_array(data) if to_float else data
        for step in self.forward:
            values = [slots[r] for r in step.refs]
            if step.buffer is None:
                result = step.prim.forward(*values, **step.params)
                slots[step.out] = result if type(result) is np.ndarray else np.asarray(result)
            else:
                slots[step.out] = step.prim.forward_into(step.buffer, *values, **step.params)
        if kind == "forward":
            return unflatten(self.output_treedef,
                             [_hand_out(slots, slot, constant, copy)
                              for slot, constant, copy in self.output_slots])
        for step in self.backward:
            results = step.prim.cotangents(slots[step.grad_out], slots[step.out],
                                           tuple(slots[r] for r in step.refs), step.params,
                                           step.needed)
            for position, target, shape, dtype, first in step.targets:
                cotangent = fit_cotangent(results[position], shape, dtype, step.prim, position)
                slots[target] = cotangent if first else slots[target] + cotangent
        grads = []
        start = 0
        for treedef, count in self.grad_treedefs:
            grads.append(unflatten(treedef, [_hand_out(slots, slot, zero, copy) for slot, zero,
                                             copy in self.grad_slots[start:start + count]]))
            start += count
        grad_result = grads[0] if single else tuple(grads)
        if kind == "grad":
            return grad_result
        return np.array(slots[self.value_slot]).reshape(()), grad_result


def _counts(owner: list[int], count: int) -> list[int]:
    """How many leaves each of ``count`` arguments has, from each leaf's argument number."""
    sizes = [0] * count
    for number in owner:
        sizes[number] += 1
    return sizes


def _hand_out(slots: list, slot: int | None, fallback: Any, copy: bool) -> Any:
    if slot is None:
        return np.array(fallback, copy=True) if isinstance(fallback, np.ndarray) else fallback
    value = slots[slot]
    return np.array(value, copy=True) if copy else value


def trace(fn: Callable[..., Any], *, retrace: bool = True, max_traces: int = 8) -> Traced:
    """Record ``fn`` once per argument signature and replay it as a flat schedule.

    ``fn`` is a function of arrays returning Tensors (or a pytree of them), or the result of
    ``tg.value_and_grad(loss, argnums)`` / ``tg.grad(loss, argnums)``, in which case the reverse
    pass is recorded too and a whole training step is one call. Returns values as NumPy arrays,
    like the transforms. See the module documentation for what is frozen into a trace.
    """
    return Traced(fn, retrace=retrace, max_traces=max_traces)


class Traced:
    """A traced function: call it like the original."""

    def __init__(self, fn: Callable[..., Any], retrace: bool = True, max_traces: int = 8) -> None:
        transform = TRANSFORMS.get(fn)
        if transform is not None:
            self.kind, self.function, self.argnums = transform
        else:
            self.kind, self.function, self.argnums = "forward", fn, None
        self.retrace = retrace
        self.max_traces = max_traces
        self.plans: dict[tuple, _Plan] = {}
        self.name = getattr(self.function, "__name__", "f")
        functools.update_wrapper(self, fn)

    @property
    def trace_count(self) -> int:
        """How many argument signatures have been traced."""
        return len(self.plans)

    def __call__(self, *args: Any) -> Any:
        parts = [flatten(arg) for arg in args]
        leaves = [leaf for part in parts for leaf in part[0]]
        owner = [number for number, part in enumerate(parts) for _ in part[0]]
        numbers = self._differentiated(len(args))
        key = (tuple(part[1] for part in parts),
               tuple(_signature(leaf, number in numbers) for leaf, number in zip(leaves, owner)))
        plan = self.plans.get(key)
        if plan is None:
            paths = [f"{number}{path}" for number, part in enumerate(parts) for path in part[2]]
            if self.plans and not self.retrace:
                raise TraceError(self._mismatch(key, paths))
            if len(self.plans) >= self.max_traces:
                raise TraceError(
                    f"trace({self.name}): {len(self.plans)} signatures traced already "
                    f"(max_traces={self.max_traces}); argument shapes keep changing"
                )
            plan = self._build(args, leaves, [part[1] for part in parts], owner, numbers)
            self.plans[key] = plan
        return plan.run(leaves, self.kind, isinstance(self.argnums, int))

    def _differentiated(self, count: int) -> tuple[int, ...]:
        if self.kind == "forward":
            return ()
        try:
            return _argnums(self.argnums, count, f"trace({self.name})")
        except ValueError as exc:
            raise TraceError(str(exc)) from None

    def _mismatch(self, key: tuple, paths: list[str]) -> str:
        (old_tree, old), (new_tree, new) = next(iter(self.plans)), key
        if len(old_tree) != len(new_tree):
            return (f"trace({self.name}): called with {len(new_tree)} arguments, traced with "
                    f"{len(old_tree)}")
        if old_tree != new_tree:
            return (f"trace({self.name}): the arguments' structure differs from the traced "
                    "call; tg.trace(f) retraces for new arguments unless retrace=False")
        for path, before, now in zip(paths, old, new):
            if before != now:
                return (f"trace({self.name}): argument {path or '0'} has {_describe(now)}, but "
                        f"the trace was made for {_describe(before)}; tg.trace(f) retraces "
                        "for new arguments unless retrace=False")
        return f"trace({self.name}): the arguments differ from the traced call"  # unreachable

    # -- recording ---------------------------------------------------------------------------
    def _build(self, args: tuple, leaves: list[Any], treedefs: list[Any], owner: list[int],
               numbers: tuple[int, ...]) -> _Plan:
        plan = _Plan()
        tensors: list[Any] = []
        slot_of: dict[int, int] = {}
        differentiated: set[int] = set()
        for position, leaf in enumerate(leaves):
            to_float = owner[position] in numbers
            if not _is_array(leaf) and not to_float:
                tensors.append(leaf)  # a static argument, reaches f unchanged
                continue
            data = leaf.data if isinstance(leaf, Tensor) else leaf
            if to_float:
                try:
                    data = as_float_array(data)
                except (TypeError, ValueError):
                    raise TraceError(f"trace({self.name}): argument {owner[position]} holds a "
                                     f"{type(leaf).__name__}, not an array or number") from None
            else:
                data = np.asarray(data)
            tensor = Tensor.node(data, requires_grad=True)  # every array is recorded, ints too
            tensors.append(tensor)
            slot = plan.slot()
            slot_of[id(tensor)] = slot
            plan.inputs.append((slot, position, to_float))
            if to_float:
                differentiated.add(id(tensor))
        chunks = iter(tensors)
        traced_args = tuple(unflatten(treedef, [next(chunks) for _ in range(size)])
                            for treedef, size in zip(treedefs, _counts(owner, len(args))))
        STATE.tracing += 1
        STATE.transform_depth += 1
        try:
            with enable_grad():
                result = self.function(*traced_args)
            if not isinstance(result, (Tensor, tuple, list, dict)):
                raise TraceError(f"trace({self.name}): the function returned "
                                 f"{type(result).__name__}; return Tensors built from its "
                                 "arguments")
        finally:
            STATE.tracing -= 1
            STATE.transform_depth -= 1

        out_leaves, out_treedef, _ = flatten(result)
        roots = [leaf for leaf in out_leaves if isinstance(leaf, Tensor) and leaf.requires_grad]
        order: list[Tensor] = []
        seen: set[int] = set()
        for root in roots:
            for node in toposort(root):
                if id(node) not in seen:
                    seen.add(id(node))
                    order.append(node)

        def ref(value: Any) -> int:
            if isinstance(value, Tensor):
                if id(value) not in slot_of:  # a Tensor from outside f: frozen as a constant
                    slot_of[id(value)] = plan.slot(value.data)
                return slot_of[id(value)]
            return plan.slot(value)

        for node in order:
            if node._prim is None:
                ref(node)
                continue
            refs = tuple(ref(x) for x in node._inputs)
            slot = plan.slot()
            slot_of[id(node)] = slot
            if any(isinstance(x, Tensor) and id(x) in differentiated for x in node._inputs):
                differentiated.add(id(node))
            buffer = None
            if node._prim.forward_into is not None and node.data.base is None:
                buffer = np.empty_like(node.data)
            plan.forward.append(_ForwardStep(node._prim, refs, node._params, slot, buffer))

        if self.kind == "forward":
            plan.output_treedef = out_treedef
            plan.output_slots = [self._output_slot(plan, slot_of, leaf) for leaf in out_leaves]
            return plan
        final = self._record_backward(plan, result, slot_of, differentiated)
        handed: list[np.ndarray] = [plan.template[plan.cotangent_slots[id(result)]]] \
            if id(result) in plan.cotangent_slots else []
        handed += [step.buffer for step in plan.forward if step.buffer is not None]
        for number in numbers:
            arg_leaves, arg_treedef, _ = flatten(traced_args[number])
            plan.grad_treedefs.append((arg_treedef, len(arg_leaves)))
            for tensor in arg_leaves:
                array = final.get(id(tensor))
                if array is None:
                    plan.grad_slots.append((None, np.zeros_like(tensor.data), True))
                    continue
                # Hand out arrays the caller owns: copy what is read-only or shares memory with
                # the seed, a reused buffer or another gradient (the same flow every call).
                copy = not array.flags.writeable or any(np.shares_memory(array, other)
                                                        for other in handed)
                handed.append(array)
                plan.grad_slots.append((plan.cotangent_slots[id(tensor)], None, copy))
        return plan

    def _output_slot(self, plan: _Plan, slot_of: dict, leaf: Any) -> tuple:
        if isinstance(leaf, Tensor) and id(leaf) in slot_of:
            return slot_of[id(leaf)], None, True  # copied: buffers are reused by the next call
        value = leaf.data if isinstance(leaf, Tensor) else leaf
        return None, value, False

    def _record_backward(self, plan: _Plan, out: Any, slot_of: dict,
                         differentiated: set[int]) -> dict[int, np.ndarray]:
        """Plan the reverse pass; return the leaves' cotangents on the example."""
        if not isinstance(out, Tensor) or out.size != 1:
            shape = getattr(out, "shape", None)
            raise TraceError(f"trace({self.name}): the function must return a one-element "
                             f"Tensor, got {type(out).__name__}"
                             + (f" of shape {shape}" if shape is not None else ""))
        plan.value_slot = slot_of[id(out)] if id(out) in slot_of else plan.slot(out.data)
        cotangent_slots = plan.cotangent_slots
        if id(out) not in differentiated:
            return {}
        seed = np.ones_like(out.data)
        cotangent_slots[id(out)] = plan.slot(seed)

        def record(node: Tensor, needed: list[bool], contributions: list) -> None:
            targets = []
            for position, parent, first in contributions:
                if first:
                    cotangent_slots[id(parent)] = plan.slot()
                data = parent.data
                targets.append((position, cotangent_slots[id(parent)], data.shape, data.dtype,
                                first))
            refs = tuple(slot_of[id(x)] if isinstance(x, Tensor) else plan.slot(x)
                         for x in node._inputs)
            plan.backward.append(_RuleStep(node._prim, cotangent_slots[id(node)],
                                           slot_of[id(node)], refs, node._params, needed,
                                           targets))

        # Run the reverse pass once, on the example, recording each rule it applies.
        leaves = reverse_pass(out, seed, write_retained=False,
                              needs=lambda tensor: id(tensor) in differentiated, observe=record)
        return {key: cotangent for key, (_, cotangent) in leaves.items()}
