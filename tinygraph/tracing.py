"""Traced functions: record a step once, replay it as a flat list of primitive applications.

``tg.trace(f)`` calls ``f`` once with the example arguments, as Tensors, and keeps every primitive
it applied, in order: a program over numbered slots. When ``f`` differentiates (it is
``tg.value_and_grad(loss)``, or calls ``tg.grad`` inside, or ``loss.backward()``), the reverse
pass is recorded too, because a transform inside a trace records its pass as ordinary ops: one
program holds forward and backward, and nothing in the replay knows what a gradient is.

Called with arrays, a traced function replays the program on arrays: no Tensor objects, no
topological sort, no cotangent dictionary; results go into buffers allocated once
(``forward_into``). Called with Tensors inside another transform (``tg.grad(traced)``,
``tg.trace`` of a function calling a traced one) it replays the same program on those Tensors,
recording every op, so that traced functions compose with every transform.

Like ``jax.jit`` and ``torch.jit.trace``, tracing records the path the Python code took with the
example arguments: ``if``/``for`` that depend on values are frozen as taken. Converting a Tensor
to a NumPy array or a number inside a traced function (``np.asarray(t)``, ``t.item()``,
``bool(t)``) raises :class:`TraceError`, because that value would be frozen into the trace.
Arguments that are not arrays (strings, ints, flags) are part of the trace's key. A call with new
shapes, dtypes or such arguments traces again (``retrace=False`` makes that an error instead).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygraph.autodiff import toposort
from tinygraph.primitive import Primitive
from tinygraph.pytree import flatten, unflatten
from tinygraph.state import STATE, TraceError, connected, enable_grad, no_grad
from tinygraph.tensor import Tensor, as_float_array
from tinygraph.transforms import TRANSFORMS, _argnums, _is_live


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
class _Step:
    """One primitive application: ``slots[out] = prim(*slots[refs], **params)``."""

    prim: Primitive
    refs: tuple[int, ...]
    params: dict
    out: int
    buffer: np.ndarray | None  # where forward_into writes, allocated once
    recorded_grad: bool  # differentiable when traced (False: made under no_grad)


@dataclass
class _Plan:
    """A flat program over numbered slots; constants and buffers are filled in once."""

    template: list[Any] = field(default_factory=list)
    inputs: list[tuple[int, int, bool]] = field(default_factory=list)  # (slot, leaf, to float)
    steps: list[_Step] = field(default_factory=list)
    output_treedef: Any = None
    outputs: list[tuple[int | None, Any, bool]] = field(default_factory=list)  # slot, const, copy

    def slot(self, value: Any = None) -> int:
        self.template.append(value)
        return len(self.template) - 1

    def _load(self, leaves: list[Any], keep_tensors: bool) -> list[Any]:
        slots = list(self.template)
        for slot, position, to_float in self.inputs:
            leaf = leaves[position]
            if keep_tensors and isinstance(leaf, Tensor):
                slots[slot] = leaf
                continue
            data = leaf.data if isinstance(leaf, Tensor) else leaf
            slots[slot] = as_float_array(data) if to_float else data
        return slots

    def run(self, leaves: list[Any]) -> Any:
        """Replay on arrays: each op's forward, into its buffer where it has one."""
        slots = self._load(leaves, keep_tensors=False)
        for step in self.steps:
            values = [slots[r] for r in step.refs]
            if step.buffer is None:
                result = step.prim.forward(*values, **step.params)
                slots[step.out] = result if type(result) is np.ndarray else np.asarray(result)
            else:
                slots[step.out] = step.prim.forward_into(step.buffer, *values, **step.params)
        outputs = []
        for slot, constant, copy in self.outputs:
            if slot is None:
                value = constant.copy() if isinstance(constant, np.ndarray) else constant
            else:
                value = np.array(slots[slot], copy=True) if copy else slots[slot]
            outputs.append(value)
        return unflatten(self.output_treedef, outputs)

    def replay(self, leaves: list[Any]) -> Any:
        """Replay on Tensors, recording every op (inside another transform or trace)."""
        slots = self._load(leaves, keep_tensors=True)
        for step in self.steps:
            values = [slots[r] for r in step.refs]
            if step.recorded_grad:
                slots[step.out] = step.prim(*values, **step.params)
            else:
                with no_grad():
                    slots[step.out] = step.prim(*values, **step.params)
        return unflatten(self.output_treedef, [constant if slot is None else slots[slot]
                                               for slot, constant, _ in self.outputs])


def _counts(owner: list[int], count: int) -> list[int]:
    """How many leaves each of ``count`` arguments has, from each leaf's argument number."""
    sizes = [0] * count
    for number in owner:
        sizes[number] += 1
    return sizes


def trace(fn: Callable[..., Any], *, retrace: bool = True, max_traces: int = 8) -> Traced:
    """Record ``fn`` once per argument signature and replay it as a flat program.

    ``fn`` is a function of arrays returning Tensors (or a pytree of them), for instance
    ``tg.value_and_grad(loss, argnums)``, in which case the reverse pass is recorded too and a
    whole training step is one call. Returns values as NumPy arrays, like the transforms. See
    the module documentation for what is frozen into a trace.
    """
    return Traced(fn, retrace=retrace, max_traces=max_traces)


class Traced:
    """A traced function: call it like the original."""

    def __init__(self, fn: Callable[..., Any], retrace: bool = True, max_traces: int = 8) -> None:
        transform = TRANSFORMS.get(fn)
        # Numbers in a differentiated argument are inputs (as grad makes them arrays).
        self.argnums = None if transform is None else transform[2]
        self.function = fn
        self.retrace = retrace
        self.max_traces = max_traces
        self.plans: dict[tuple, _Plan] = {}
        self.name = getattr(transform[1] if transform else fn, "__name__", "f")
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
        if connected() and any(_is_live(leaf) for leaf in leaves):
            return plan.replay(leaves)  # inside a transform: record, so it can differentiate
        return plan.run(leaves)

    def _differentiated(self, count: int) -> tuple[int, ...]:
        if self.argnums is None:
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
        inside = connected()  # traced while an enclosing transform records
        tensors: list[Any] = []
        slot_of: dict[int, int] = {}
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
        roots = [leaf for leaf in out_leaves if isinstance(leaf, Tensor)]
        order = toposort(roots, every=True, stop=set(slot_of))
        depends = set(slot_of)  # nodes computed from the inputs: the program's steps
        for node in order:
            if node._prim is not None and any(isinstance(x, Tensor) and id(x) in depends
                                              for x in node._inputs):
                depends.add(id(node))

        def ref(value: Any) -> int:
            if not isinstance(value, Tensor):
                return plan.slot(value)
            if id(value) not in slot_of:  # made outside the trace's inputs: a constant
                if inside and _is_live(value):
                    raise TraceError(
                        f"trace({self.name}): the function uses a Tensor of an enclosing "
                        "transform that is not one of its arguments (a closure); its value "
                        "would be frozen into the trace and its derivative lost. Pass it "
                        "as an argument")
                slot_of[id(value)] = plan.slot(value.data)
            return slot_of[id(value)]

        for node in order:
            if id(node) not in depends or id(node) in slot_of:
                continue
            refs = tuple(ref(x) for x in node._inputs)
            slot = plan.slot()
            slot_of[id(node)] = slot
            buffer = None
            if node._prim.forward_into is not None and node.data.base is None:
                buffer = np.empty_like(node.data)
            plan.steps.append(_Step(node._prim, refs, node._params, slot, buffer,
                                    node.requires_grad))

        plan.output_treedef = out_treedef
        plan.outputs = self._outputs(plan, slot_of, out_leaves, order, depends)
        return plan

    def _outputs(self, plan: _Plan, slot_of: dict, out_leaves: list, order: list[Tensor],
                 depends: set[int]) -> list[tuple[int | None, Any, bool]]:
        """Where each output comes from, and whether it must be copied to be the caller's own.

        A copy is needed where the replay's value is a reused buffer, a trace input or
        constant, or memory another output or value also uses (judged on the example).
        """
        buffered = {step.out for step in plan.steps if step.buffer is not None}
        others = [node.data for node in order]
        outputs = []
        handed: set[int] = set()
        for leaf in out_leaves:
            if not isinstance(leaf, Tensor):
                outputs.append((None, leaf, False))
                continue
            if id(leaf) not in depends:
                outputs.append((None, leaf.data, False))  # constant: copied on every call
                continue
            slot = slot_of[id(leaf)]
            is_step = any(step.out == slot for step in plan.steps)
            shared = sum(np.may_share_memory(leaf.data, other) for other in others) > 1
            copy = (not is_step or slot in buffered or slot in handed or shared
                    or not leaf.data.flags.writeable)
            handed.add(slot)
            outputs.append((slot, None, copy))
        return outputs
