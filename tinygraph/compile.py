"""Compile a :class:`~tinygraph.program.Program` to one Python function over NumPy.

The generated function is straight-line code, one line per equation, readable in
``traced.source``. Buffers are planned once, by value lifetime:

- an op with ``forward_into`` writes into a buffer allocated when the program is compiled; when a
  value is used for the last time its buffer goes back to a pool, and a later result of the same
  shape and dtype reuses it. An elementwise ufunc may write over an input that dies at that very
  line (``np.multiply(v3, v4, out=v3)``); other ops never write over their own inputs.
- an op without ``forward_into`` allocates its result as usual (user primitives work unchanged).
  Its result may be a view of an input (reshape, transpose), so every input of such an op lives,
  for the planner, as long as the result does.
- results that are returned are never in a reused buffer: they are computed by the plain forward
  (a fresh array the caller owns), or copied when they are an input, a constant or a view.
  Arrays the caller donated (``tg.trace(f, donate_argnums=...)``) are the exception: once a
  donated input is read for the last time, an elementwise result of its shape and dtype, returned
  or not, is written into it (``np.subtract(in0, v29, out=in0)``: an SGD update in place).

The shapes and dtypes of the inputs are checked up front (the guard), so a call that does not
fit the compiled program never runs it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tinygraph.program import Program


class GuardError(Exception):
    """An input's shape or dtype differs from the program's (internal: the caller retraces)."""


class Compiled:
    """The compiled function of a program, its source, and its buffers.

    ``function(*values)`` takes the input arrays in the program's order and returns the flat
    outputs; ``entry(*args)`` (when the arguments' structure is given) takes the call's own
    arguments, and is what a traced function runs when a call fits the trace.
    """

    def __init__(self, program: Program, arg_treedefs: list[Any] | None = None,
                 statics: dict[int, Any] | None = None) -> None:
        self.program = program
        namespace: dict[str, Any] = {"GuardError": GuardError}
        self.buffers: list[np.ndarray] = []
        source = _generate(program, namespace, self.buffers)
        if arg_treedefs is not None:
            source += "\n\n" + entry_source(program, arg_treedefs, statics or {}, namespace)
        self.source = source
        code = compile(self.source, "<tinygraph program>", "exec")
        exec(code, namespace)  # noqa: S102 - our own generated source
        self.function = namespace["program"]
        self.entry = namespace.get("entry")

    def __call__(self, values: list[Any]) -> tuple:
        return self.function(*values)



def _safe(name: str) -> str:
    """An op name for a comment of the generated source: as it is when plain printable ASCII,
    else its ``ascii()`` repr (a newline in a user op's name must not become code)."""
    return name if name.isascii() and name.isprintable() else ascii(name)

def _generate(program: Program, namespace: dict[str, Any], buffers: list[np.ndarray]) -> str:
    constants = program.constants
    returned = {v for v in program.outputs if v is not None}
    last_use: dict[int, int] = {}
    for index, eq in enumerate(program.equations):
        for value in eq.inputs:
            last_use[value] = index
    for value in returned:
        last_use[value] = len(program.equations)
    # A result made without a planned buffer may be a view of its inputs (reshape, transpose):
    # those stay alive as long as it does. Consumers come later, so one backward sweep will do.
    for index in range(len(program.equations) - 1, -1, -1):
        eq = program.equations[index]
        if eq.prim.forward_into is None:  # (one with ``into`` makes new arrays either way)
            for value in eq.inputs:
                if value not in constants:
                    last_use[value] = max(last_use[value], last_use.get(eq.out, index))

    names: dict[int, str] = {item.value: f"in{item.value}" for item in program.inputs}
    for value, constant in constants.items():
        if isinstance(constant, (bool, int, float)) and not isinstance(constant, np.generic):
            names[value] = repr(constant)
        else:
            names[value] = f"c{value}"
            namespace[f"c{value}"] = constant
    lines = [f"def program({', '.join(f'in{item.value}' for item in program.inputs)}):"]
    for item in program.inputs:  # the guard
        namespace[f"t{item.value}"] = (tuple(item.shape), np.dtype(item.dtype))
        lines.append(f"    if in{item.value}.shape != t{item.value}[0] or in{item.value}.dtype "
                     f"!= t{item.value}[1]: raise GuardError({item.path or '0'!r})")
    free: dict[tuple, list[int]] = {}  # (shape, dtype) -> numbers of buffers free for reuse
    donated_free: dict[tuple, list[str]] = {}  # (shape, dtype) -> donated inputs now dead
    donated = {item.value: (tuple(item.shape), np.dtype(item.dtype).str)
               for item in program.inputs if item.donated}
    buffer_of: dict[int, int] = {}  # value -> the buffer it lives in
    key_of: dict[int, tuple] = {}

    dying: dict[int, list[int]] = {}  # line -> the values read for the last time there
    for value, line in last_use.items():
        dying.setdefault(line, []).append(value)

    def release(values: Any, index: int) -> None:
        for value in values:
            if value in buffer_of and last_use.get(value, -1) <= index:
                free.setdefault(key_of[value], []).append(buffer_of.pop(value))
            elif value in donated and last_use.get(value, -1) <= index:
                donated_free.setdefault(donated.pop(value), []).append(names[value])

    def assign(eq: Any) -> int:
        """The number of a buffer for the result of ``eq``: a free one of its shape and dtype,
        else a new one; it is the result's until the result is read for the last time."""
        key = (tuple(eq.shape), np.dtype(eq.dtype).str)
        if free.get(key):
            buffer = free[key].pop()
        else:
            buffer = len(buffers)
            buffers.append(np.empty(eq.shape, dtype=eq.dtype))
            namespace[f"b{buffer}"] = buffers[buffer]
        buffer_of[eq.out], key_of[eq.out] = buffer, key
        return buffer

    fresh: set[int] = set()  # returned values computed into a new array by this call
    fused = _fusions(program)  # index of the first op -> (the partner equation, the function)
    skipped = {partner.out for partner, _ in fused.values()}
    shapes = {item.value: tuple(item.shape) for item in program.inputs}
    shapes.update((value, np.shape(c)) for value, c in constants.items())
    shapes.update((eq.out, tuple(eq.shape)) for eq in program.equations)
    dtypes = {item.value: np.dtype(item.dtype) for item in program.inputs}
    dtypes.update((value, np.result_type(c)) for value, c in constants.items())
    dtypes.update((eq.out, np.dtype(eq.dtype)) for eq in program.equations)
    for index, eq in enumerate(program.equations):
        if eq.out in skipped:  # computed together with an earlier op (which read its inputs)
            release(dying.get(index, ()), index)
            continue
        if index in fused:
            partner, function = fused[index]
            planned = None
            if partner.out not in returned and hasattr(function, "plan"):
                # into(out, *inputs): the partner's result written into a planned buffer
                planned = function.plan([shapes[v] for v in eq.inputs],
                                        [dtypes[v] for v in eq.inputs])
            namespace[f"f{index}"] = function if planned is None else planned
            args = ", ".join(names[v] for v in eq.inputs)
            if planned is None:
                call = f"f{index}({args})"
                fresh.update((eq.out, partner.out))  # plain forwards: new arrays
            else:
                call = f"f{index}(b{assign(partner)}, {args})"
                fresh.add(eq.out)
            lines.append(f"    v{eq.out}, v{partner.out} = {call}  "
                         f"# {_safe(eq.prim.name)} + {_safe(partner.prim.name)}")
            names[eq.out], names[partner.out] = f"v{eq.out}", f"v{partner.out}"
            release(dying.get(index, ()), index)
            continue
        args = ", ".join(names[v] for v in eq.inputs)
        forward, into = eq.prim.forward, eq.prim.forward_into
        plan = getattr(eq.prim, "plan", None)  # an op may specialize itself to fixed shapes
        planned = plan(eq.params, [shapes[v] for v in eq.inputs],
                       [dtypes[v] for v in eq.inputs]) if plan else None
        params = eq.params
        if planned is not None:
            (forward, into), params = planned, {}
        ufunc = getattr(into, "ufunc", None)
        function_name = f"f{index}"
        key = (tuple(eq.shape), np.dtype(eq.dtype).str)
        if ufunc is not None and not params:  # elementwise: inputs dying here may be reused
            release(dying.get(index, ()), index)
        if ufunc is not None and not params and donated_free.get(key):
            target = donated_free[key].pop()
            namespace[function_name] = ufunc
            call = f"{function_name}({args}, out={target})"
            fresh.add(eq.out)  # the caller's own (donated) array
            donated[eq.out] = key  # which a later result may take over when this one dies
        elif into is not None and eq.out not in returned:
            if ufunc is not None:  # elementwise: may overwrite an input that dies right here
                release(dying.get(index, ()), index)
            buffer = assign(eq)
            if ufunc is not None and not params:
                namespace[function_name] = ufunc
                call = f"{function_name}({args}, out=b{buffer})"
            else:
                namespace[function_name] = _bind(into, params)
                call = f"{function_name}(b{buffer}{', ' if args else ''}{args})"
        else:
            namespace[function_name] = _bind(forward, params)
            call = f"{function_name}({args})"
            if into is not None:  # a forward that has an ``into`` variant makes a new array
                fresh.add(eq.out)
        lines.append(f"    v{eq.out} = {call}  # {_safe(eq.prim.name)}")
        names[eq.out] = f"v{eq.out}"
        release(dying.get(index, ()), index)
    results = []
    handed: set[int] = set()
    for value in program.outputs:
        if value is None:
            continue
        name = names[value]
        results.append(name if value in fresh and value not in handed else f"_copy({name})")
        handed.add(value)
    namespace["_copy"] = np.array
    lines.append(f"    return ({', '.join(results)}{',' if len(results) == 1 else ''})")
    return "\n".join(lines) + "\n"


def _fusions(program: Program) -> dict[int, tuple[Any, Any]]:
    """Pairs of equations an op declares it computes together (``prim.fusions``): same inputs,
    no parameters. The partner must not be needed before the first one runs (it never is: it
    reads the same inputs)."""
    found: dict[int, tuple[Any, Any]] = {}
    taken: set[int] = set()
    for index, eq in enumerate(program.equations):
        fusions = getattr(eq.prim, "fusions", None)
        if not fusions or eq.params or index in taken:
            continue
        for later in range(index + 1, len(program.equations)):
            partner = program.equations[later]
            function = fusions.get(partner.prim)
            if function is not None and partner.inputs == eq.inputs and not partner.params \
                    and later not in taken:
                found[index] = (partner, function)
                taken.add(later)
                break
    return found


def _bind(function: Any, params: dict) -> Any:
    return functools.partial(function, **params) if params else function


def entry_source(program: Program, arg_treedefs: list[Any], statics: dict[int, Any],
                 namespace: dict[str, Any]) -> str:
    """``entry(*args)``: the arguments' leaves picked out by the structure traced, checked, the
    program called, and its results put back into the output's structure.

    Any difference from the traced call (another structure, a Tensor, a number where an array
    was, another static value) raises GuardError, and the caller takes the general path.
    ``statics`` maps leaf positions to the values of non-array leaves (part of the trace).
    """
    lines: list[str] = []
    leaves: list[str] = []

    def pick(node: Any, expr: str, depth: int) -> None:
        kind = node[0]
        if kind == "leaf":
            leaves.append(expr)
        elif kind == "none":
            lines.append(f"    if {expr} is not None: raise GuardError()")
        elif kind == "dict":
            keys = f"K{len(namespace)}"
            namespace[keys] = tuple(node[1])  # the keys in the traced order (it matters)
            lines.append(f"    if type({expr}) is not dict or tuple({expr}) != {keys}: "
                         "raise GuardError()")
            for key, child in zip(node[1], node[2]):
                pick(child, f"{expr}[{key!r}]", depth + 1)
        elif kind == "namedtuple":
            name = f"T{len(namespace)}"
            namespace[name] = node[1]
            lines.append(f"    if type({expr}) is not {name}: raise GuardError()")
            for field_name, child in zip(node[1]._fields, node[2]):
                pick(child, f"{expr}.{field_name}", depth + 1)
        else:
            container = "list" if kind == "list" else "tuple"
            lines.append(f"    if type({expr}) is not {container} or len({expr}) != {node[1]}: "
                         "raise GuardError()")
            for index, child in enumerate(node[2]):
                pick(child, f"{expr}[{index}]", depth + 1)

    for number, treedef in enumerate(arg_treedefs):
        pick(treedef, f"a{number}", 0)
    pick = None  # noqa: F841 - break the function's reference to itself (a cycle)
    inputs = {item.leaf: item for item in program.inputs}
    body = []
    for position, expr in enumerate(leaves):
        if position in inputs:
            item = inputs[position]
            body.append(f"    in{item.value} = {expr}")
            body.append(f"    if type(in{item.value}) is not ndarray: raise GuardError()")
        else:
            name = f"s{position}"
            namespace[name] = statics[position]
            body.append(f"    if not _same({expr}, {name}): raise GuardError()")
    namespace["ndarray"] = np.ndarray
    namespace["_same"] = _same
    results = []
    count = 0
    for value, constant in zip(program.outputs, program.output_constants):
        if value is None:
            name = f"k{len(namespace)}"
            namespace[name] = constant
            results.append(f"_fresh({name})")
        else:
            results.append(f"r[{count}]")
            count += 1
    namespace["_fresh"] = _fresh
    built = iter(results)
    count = len(arg_treedefs)
    unpack = ", ".join(f"a{n}" for n in range(count)) + ("," if count == 1 else "")
    text = ["def entry(*args):", f"    if len(args) != {count}: raise GuardError()"]
    if count:
        text.append(f"    {unpack} = args")
    if lines or body:  # (a function of no arguments has nothing to check)
        text.append("    try:")
        text += ["    " + line for line in lines + body]
        text.append("    except (KeyError, IndexError, TypeError, AttributeError):")
        text.append("        raise GuardError() from None")
    donated = [f"in{item.value}" for item in program.inputs if item.donated]
    if donated:  # a donated array must be ours to overwrite: writeable, and no other input's
        # Inline, the common case costs a few attribute reads (no call): every donated array
        # writeable, and every input a distinct array that owns its memory (so none overlaps
        # another). Otherwise (views, one array twice) the judgement by memory bounds runs.
        namespace["_donation_unsafe"] = donation_unsafe
        inputs = [f"in{item.value}" for item in program.inputs]
        writeable = " and ".join(f"{name}.flags.writeable" for name in donated)
        owners = " and ".join(f"{name}.flags.owndata" for name in inputs)
        ids = ", ".join(f"id({name})" for name in inputs)
        text.append(f"    if not ({writeable}): raise GuardError()")
        text.append(f"    if not ({owners} and len({{{ids}}}) == {len(inputs)}) and "
                    f"_donation_unsafe(({', '.join(donated)},), ({', '.join(inputs)},)): "
                    "raise GuardError()")
    call = ", ".join(f"in{item.value}" for item in program.inputs)
    text.append(f"    r = program({call})")
    text.append(f"    return {_build_expression(program.output_treedef, built, namespace)}")
    return "\n".join(text) + "\n"


def _build_expression(node: Any, leaves: Any, namespace: dict[str, Any]) -> str:
    kind = node[0]
    if kind == "leaf":
        return next(leaves)
    if kind == "none":
        return "None"
    if kind == "dict":
        items = ", ".join(f"{key!r}: {_build_expression(child, leaves, namespace)}"
                          for key, child in zip(node[1], node[2]))
        return "{" + items + "}"
    parts = [_build_expression(child, leaves, namespace) for child in node[2]]
    if kind == "namedtuple":
        name = f"T{len(namespace)}"
        namespace[name] = node[1]
        return f"{name}({', '.join(parts)})"
    if kind == "list":
        return "[" + ", ".join(parts) + "]"
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _same(value: Any, traced: Any) -> bool:
    """A static argument equals the traced one (same type, equal value)."""
    if value is traced:
        return True
    if type(value) is float and type(traced) is float:  # NaN too; 0.0 is not -0.0
        return repr(value) == repr(traced)
    try:
        return type(value) is type(traced) and bool(value == traced)
    except Exception:  # noqa: BLE001 - incomparable: not the same
        return False


def donation_unsafe(donated: tuple, inputs: tuple) -> bool:
    """Whether writing into the donated arrays could change another input (or cannot be done):
    a read-only array, or a donated array that may share memory with another input (one array
    passed twice, tied weights, views of one buffer, even through distinct bases: as_strided,
    frombuffer). ``np.may_share_memory`` compares memory bounds: it may say yes for
    interleaved views that do not overlap (then nothing is donated), never no for ones that
    do. The generated entry calls this only when some input does not own its memory."""
    if not all(array.flags.writeable for array in donated):
        return True
    return any(other is not array and np.may_share_memory(array, other)
               for array in donated for other in inputs) or any(
        sum(other is array for other in inputs) > 1 for array in donated)


def _fresh(constant: Any) -> Any:
    return constant.copy() if isinstance(constant, np.ndarray) else constant
