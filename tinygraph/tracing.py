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
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygraph.autodiff import toposort
from tinygraph.compile import Compiled, GuardError, donation_unsafe
from tinygraph.ops.arithmetic import mul
from tinygraph.primitive import check_finite
from tinygraph.program import Equation, Input, Program
from tinygraph.pytree import flatten, unflatten
from tinygraph.state import TraceError, connected, current, enable_grad, no_grad
from tinygraph.tensor import Tensor, as_float_array
from tinygraph.transforms import TRANSFORMS, checked_argnums, is_live


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
    if type(leaf) is float:  # by repr: NaN equals NaN, and 0.0 is not -0.0
        return ("static", "float", repr(leaf))
    try:
        hash(leaf)
    except TypeError:
        return ("static", type(leaf).__name__, repr(leaf))
    return ("static", type(leaf).__name__, leaf)


def _describe(signature: tuple) -> str:
    if signature[0] == "array":
        return f"shape {signature[1]} {np.dtype(signature[2])}"
    return f"{signature[1]} {signature[2]!r}"


class _Trace:
    """One traced signature: its program, and that program compiled."""

    def __init__(self, program: Program, arg_treedefs: list[Any],
                 statics: dict[int, Any]) -> None:
        self.program = program
        self.compiled = Compiled(program, arg_treedefs, statics)

    def _values(self, leaves: list[Any], keep_tensors: bool) -> list[Any]:
        values = []
        for item in self.program.inputs:
            leaf = leaves[item.leaf]
            if keep_tensors and isinstance(leaf, Tensor):
                values.append(leaf)
                continue
            data = leaf.data if isinstance(leaf, Tensor) else leaf
            values.append(as_float_array(data) if item.to_float else data)
        return values

    def _results(self, flat: list[Any]) -> Any:
        program = self.program
        results = iter(flat)
        leaves = []
        for value, constant in zip(program.outputs, program.output_constants):
            if value is None:
                leaves.append(constant.copy() if isinstance(constant, np.ndarray) else constant)
            else:
                leaves.append(next(results))
        return unflatten(program.output_treedef, leaves)

    def run(self, leaves: list[Any]) -> Any:
        """The compiled program on arrays (checked op by op under detect_anomaly; interpreted,
        writing into nothing, when donated arrays are not safe to overwrite)."""
        values = self._values(leaves, keep_tensors=False)
        donated = tuple(v for v, item in zip(values, self.program.inputs) if item.donated)
        if current().anomaly or (donated and donation_unsafe(donated, tuple(values))):
            return self._results(self._interpret(values, check=current().anomaly))
        return self._results(list(self.compiled(values)))

    def replay(self, leaves: list[Any]) -> Any:
        """The program on Tensors, recording every op (inside another transform or trace)."""
        return self._results(self._interpret(self._values(leaves, keep_tensors=True)))

    def _interpret(self, values: list[Any], check: bool = False) -> list[Any]:
        return interpret(self.program, values, check)


def interpret(program: Program, values: list[Any], check: bool = False) -> list[Any]:
    """Run ``program`` op by op: on arrays (checking each value for NaN/inf if ``check``), or on
    Tensors, recording (ops traced under no_grad replayed under no_grad)."""
    if not any(isinstance(v, Tensor) for v in values):
        slots = slot_values(program, values, check)
        return [np.array(slots[v], copy=True) for v in program.outputs if v is not None]
    slots = dict(program.constants)
    slots.update((item.value, value) for item, value in zip(program.inputs, values))
    for eq in program.equations:
        args = [slots[v] for v in eq.inputs]
        if eq.grad:
            slots[eq.out] = eq.prim(*args, **eq.params)
        else:
            with no_grad():
                slots[eq.out] = eq.prim(*args, **eq.params)
    return [slots[v] for v in program.outputs if v is not None]


def slot_values(program: Program, values: list[Any], check: bool = False) -> dict[int, Any]:
    """Every value of ``program`` run on arrays, by number (a pass-through is its input)."""
    slots: dict[int, Any] = dict(program.constants)
    slots.update((item.value, value) for item, value in zip(program.inputs, values))
    for eq in program.equations:
        args = [slots[v] for v in eq.inputs]
        if eq.passthrough is not None:  # as the pass-through pass makes it
            slots[eq.out] = args[eq.passthrough]
            continue
        slots[eq.out] = eq.prim.forward(*args, **eq.params)
        if check:
            where = "backward rule (compiled step)" if eq.in_pass else "compiled step"
            check_finite(eq.prim, slots[eq.out], args, where, site=eq.site)
    return slots


def _counts(owner: list[int], count: int) -> list[int]:
    """How many leaves each of ``count`` arguments has, from each leaf's argument number."""
    sizes = [0] * count
    for number in owner:
        sizes[number] += 1
    return sizes


def trace(fn: Callable[..., Any], *, retrace: bool = True, max_traces: int = 8,
          donate_argnums: int | tuple[int, ...] = (), fold_scale: bool = False) -> Traced:
    """Record ``fn`` once per argument signature and replay it as a flat program.

    ``fn`` is a function of arrays returning Tensors (or a pytree of them), for instance
    ``tg.value_and_grad(loss, argnums)``, in which case the reverse pass is recorded too and a
    whole training step is one call. Returns values as NumPy arrays, like the transforms. See
    the module documentation for what is frozen into a trace.

    ``donate_argnums``: arguments whose arrays the caller gives up, as in ``jax.jit``: the
    compiled program may write its results into them (an SGD step then updates the parameters
    in place and returns those same arrays). Do not use a donated array after the call except
    through what the call returned.

    ``fold_scale``: when every gradient the function computes is used only multiplied by one
    number (``p - lr * g``), the reverse pass is recorded from the seed ``lr`` instead of 1 and
    those multiplications are dropped, as hand-written code does. That changes rounding (the
    result is no longer bit for bit the eager one, only equal to rounding), hence opt-in; the
    folded program is checked against the unfolded one on the example arguments, and not used
    if they disagree.
    """
    return Traced(fn, retrace=retrace, max_traces=max_traces, donate_argnums=donate_argnums,
                  fold_scale=fold_scale)


def make_program(fn: Callable[..., Any], **options: Any) -> Callable[..., Program]:
    """``make_program(f)(*args)``: the program ``tg.trace(f)`` records for these arguments
    (like ``jax.make_jaxpr``): ``print`` it, or draw it with ``tg.to_dot_program``."""
    traced = Traced(fn, **options)

    def program_of(*args: Any) -> Program:
        traced(*args)
        return traced.program

    return program_of


class Traced:
    """A traced function: call it like the original."""

    def __init__(self, fn: Callable[..., Any], retrace: bool = True, max_traces: int = 8,
                 donate_argnums: int | tuple[int, ...] = (), fold_scale: bool = False) -> None:
        transform = TRANSFORMS.get(fn)
        # Numbers in a differentiated argument are inputs (as grad makes them arrays).
        self.argnums = None if transform is None else transform[2]
        self.function = fn
        self.retrace = retrace
        self.fold_scale = fold_scale
        self.donated = {donate_argnums} if isinstance(donate_argnums, int) \
            else set(donate_argnums)
        self.max_traces = max_traces
        self.plans: dict[tuple, _Trace] = {}
        # One call at a time: a compiled program writes into buffers it owns (threads that
        # share a traced step take turns; its results are the callers' own arrays)
        self._lock = threading.RLock()
        self._last: _Trace | None = None
        self.name = getattr(transform[1] if transform else fn, "__name__", "f")
        functools.update_wrapper(self, fn)

    @property
    def trace_count(self) -> int:
        """How many argument signatures have been traced."""
        return len(self.plans)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"trace({self.name}): keyword arguments are not supported "
                            f"({', '.join(kwargs)}); pass them by position")
        with self._lock:
            return self._call(args)

    def _call(self, args: tuple) -> Any:
        last = self._last
        if last is not None and not current().anomaly:
            try:  # the call fits the most recent trace: its compiled entry does everything
                return last.compiled.entry(*args)
            except GuardError:
                pass
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
            plan = self._build(args, leaves, [part[1] for part in parts], owner, numbers, paths)
            self.plans[key] = plan
        self._last = plan
        if connected() and any(is_live(leaf) for leaf in leaves):
            return plan.replay(leaves)  # inside a transform: record, so it can differentiate
        try:
            return plan.run(leaves)
        except GuardError:  # the key matched, so this cannot happen; say so if it does
            raise TraceError(f"trace({self.name}): an input does not fit the compiled "
                             "program although its signature matched") from None

    @property
    def program(self) -> Program:
        """The program of the most recent trace (``print`` it to read it)."""
        if not self.plans:
            raise TraceError(f"trace({self.name}): nothing traced yet; call it first")
        return next(reversed(self.plans.values())).program

    @property
    def source(self) -> str:
        """The Python source the most recent trace was compiled to."""
        if not self.plans:
            raise TraceError(f"trace({self.name}): nothing traced yet; call it first")
        return next(reversed(self.plans.values())).compiled.source

    def _differentiated(self, count: int) -> tuple[int, ...]:
        if self.argnums is None:
            return ()
        try:
            return checked_argnums(self.argnums, count, f"trace({self.name})")
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
               numbers: tuple[int, ...], paths: list[str]) -> _Trace:
        record = functools.partial(self._record, args, leaves, treedefs, owner, numbers, paths)
        program = record()
        scale = foldable_scale(program) if self.fold_scale else None
        if scale is not None:  # record again with the scale as the seed of the reverse pass
            previous, current().seed_scale = current().seed_scale, scale
            passes, seeds = current().graph_passes, current().scaled_seeds
            try:
                folded = record()
            finally:
                current().seed_scale = previous
            # every pass must have started from the scaled seed (a vjp or a .backward() does not)
            every_seed = current().graph_passes - passes == current().scaled_seeds - seeds > 0
            dropped = drop_scalings(folded, scale)
            example = []
            for item in program.inputs:
                leaf = leaves[item.leaf]
                data = leaf.data if isinstance(leaf, Tensor) else leaf
                example.append(as_float_array(data) if item.to_float else data)
            if every_seed and folding_holds(program, folded, scale, dropped, example):
                program = folded
        program.optimize()
        statics = {position: leaf for position, leaf in enumerate(leaves)
                   if not _is_array(leaf) and owner[position] not in numbers}
        return _Trace(program, treedefs, statics)

    def _record(self, args: tuple, leaves: list[Any], treedefs: list[Any], owner: list[int],
                numbers: tuple[int, ...], paths: list[str]) -> Program:
        """Call the function on Tensors once and keep what it applied, as a program."""
        program = Program()
        inside = connected()  # traced while an enclosing transform records
        tensors: list[Any] = []
        value_of: dict[int, int] = {}
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
            value = program.new_value()
            value_of[id(tensor)] = value
            program.inputs.append(Input(value, position, paths[position], data.shape,
                                        data.dtype, to_float,
                                        owner[position] in self.donated and not to_float))
        chunks = iter(tensors)
        traced_args = tuple(unflatten(treedef, [next(chunks) for _ in range(size)])
                            for treedef, size in zip(treedefs, _counts(owner, len(args))))
        current().tracing += 1
        current().transform_depth += 1
        try:
            with enable_grad():
                result = self.function(*traced_args)
            if not isinstance(result, (Tensor, tuple, list, dict)):
                raise TraceError(f"trace({self.name}): the function returned "
                                 f"{type(result).__name__}; return Tensors built from its "
                                 "arguments")
        finally:
            current().tracing -= 1
            current().transform_depth -= 1

        out_leaves, out_treedef, _ = flatten(result)
        roots = [leaf for leaf in out_leaves if isinstance(leaf, Tensor)]
        order = toposort(roots, every=True, stop=set(value_of))
        depends = set(value_of)  # nodes computed from the inputs: the program's equations
        for node in order:
            if node._prim is not None and any(isinstance(x, Tensor) and id(x) in depends
                                              for x in node._inputs):
                depends.add(id(node))

        def ref(value: Any) -> int:
            if not isinstance(value, Tensor):
                number = program.new_value()
                program.constants[number] = value
                return number
            if id(value) not in value_of:  # made outside the trace's inputs: a constant
                if inside and is_live(value):
                    raise TraceError(
                        f"trace({self.name}): the function uses a Tensor of an enclosing "
                        "transform that is not one of its arguments (a closure); its value "
                        "would be frozen into the trace and its derivative lost. Pass it "
                        "as an argument")
                number = program.new_value()
                program.constants[number] = value.data
                value_of[id(value)] = number
            return value_of[id(value)]

        for node in order:
            if id(node) not in depends or id(node) in value_of:
                continue
            inputs = tuple(ref(x) for x in node._inputs)
            number = program.new_value()
            value_of[id(node)] = number
            data = node.data
            same = next((i for i, x in enumerate(node._inputs)
                         if isinstance(x, Tensor) and x.data is data), None)
            in_pass = any(name.startswith("grad pass ") for name in node._scope)
            program.equations.append(Equation(node._prim, inputs, node._params, number,
                                              data.shape, data.dtype, node.requires_grad,
                                              same, in_pass, getattr(node, "_site", None)))
        program.output_treedef = out_treedef
        for leaf in out_leaves:
            if isinstance(leaf, Tensor) and id(leaf) in depends:
                program.outputs.append(value_of[id(leaf)])
                program.output_constants.append(None)
            else:  # a constant output: copied on every call
                program.outputs.append(None)
                program.output_constants.append(leaf.data if isinstance(leaf, Tensor)
                                                else leaf)
        return program


def _scaled_gradient(program: Program, eq: Equation, produced: set[int]) -> tuple[int, Any] | None:
    """(position of the gradient, the number) if ``eq`` is ``mul(number, gradient)``."""
    if eq.in_pass or eq.prim is not mul or len(eq.inputs) != 2:
        return None
    reads = [i for i, v in enumerate(eq.inputs) if v in produced]
    if len(reads) != 1:
        return None
    number = program.constants.get(eq.inputs[1 - reads[0]])
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    return reads[0], number


def _close(expected: Any, got: Any) -> bool:
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if expected.shape != got.shape:
        return False
    scale = float(np.max(np.abs(expected), initial=0.0))
    return bool(np.allclose(got, expected, rtol=1e-3, atol=1e-6 * scale + 1e-300))


def folding_holds(plain: Program, folded: Program, scale: Any, dropped: list[Equation],
                  example: list[Any]) -> bool:
    """Check the folded recording against the plain one on the example, value by value: each
    dropped ``scale * g`` equals the folded gradient, and every value the function itself
    computes (outside the reverse passes) agrees, to rounding relative to its own size."""
    produced = {eq.out for eq in plain.equations if eq.in_pass}
    scaled = [eq for eq in plain.equations
              if (found := _scaled_gradient(plain, eq, produced)) and found[1] == scale]
    if len(scaled) != len(dropped):
        return False
    own_plain = [eq for eq in plain.equations if not eq.in_pass and eq not in scaled]
    own_folded = [eq for eq in folded.equations if not eq.in_pass and eq not in dropped]
    if [eq.prim for eq in own_plain] != [eq.prim for eq in own_folded]:
        return False
    with np.errstate(all="ignore"):
        before, after = slot_values(plain, example), slot_values(folded, example)
    return all(_close(before[a.out], after[b.inputs[b.passthrough]])
               for a, b in zip(scaled, dropped)) and all(
        _close(before[a.out], after[b.out]) for a, b in zip(own_plain, own_folded))


def foldable_scale(program: Program) -> Any:
    """The one number every gradient is multiplied by, if that is all that uses gradients.

    Gradients are the values a recorded reverse pass made; anything else reading one (an
    output, an Adam ``g * g``, a momentum ``mu * v + g``) means no folding.
    """
    produced = {eq.out for eq in program.equations if eq.in_pass}
    if any(v in produced for v in program.outputs):
        return None
    scale = None
    for eq in program.equations:
        if eq.in_pass or not any(v in produced for v in eq.inputs):
            continue
        found = _scaled_gradient(program, eq, produced)
        if found is None or not eq.grad or (scale is not None and found[1] != scale):
            return None  # (an update under no_grad, say, is not a pass-through to drop)
        scale = found[1]
    return scale


def drop_scalings(program: Program, scale: Any) -> list[Equation]:
    """Make every ``mul(scale, gradient)`` a pass-through (the pass already multiplied); return
    those equations."""
    produced = {eq.out for eq in program.equations if eq.in_pass}
    dropped = []
    for eq in program.equations:
        found = _scaled_gradient(program, eq, produced)
        if found is not None and found[1] == scale and eq.grad:
            eq.passthrough = found[0]
            dropped.append(eq)
    return dropped
