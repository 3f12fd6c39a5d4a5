"""Programs: a traced function as a list of primitive applications over numbered values.

``tg.trace`` records a function (forward, the recorded reverse pass, an optimizer update: it
does not matter, all are primitive applications) into a :class:`Program`; ``print(program)``
shows it one equation per line with shapes and dtypes, like ``jax.make_jaxpr``. Passes rewrite it
(dead code, common subexpressions), and :mod:`tinygraph.compile` turns it into Python source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygraph.primitive import Primitive


@dataclass
class Equation:
    """``%out = prim(%inputs..., **params)``: one primitive application."""

    prim: Primitive
    inputs: tuple[int, ...]  # value numbers
    params: dict
    out: int
    shape: tuple[int, ...]
    dtype: np.dtype
    grad: bool  # recorded as differentiable (False: made under no_grad, or a mask)
    passthrough: int | None = None  # traced, it returned this input itself (identity)
    in_pass: bool = False  # made by a recorded reverse pass (a backward rule)
    site: str | None = None  # the user's line that made it (for detect_anomaly reports)


@dataclass
class Input:
    """An argument leaf of the traced function: where it comes from, what it must look like."""

    value: int
    leaf: int  # position among the flattened arguments
    path: str  # "0['W1']", for messages
    shape: tuple[int, ...]
    dtype: np.dtype
    to_float: bool  # a number in a differentiated argument: becomes a float array
    donated: bool = False  # the caller gives up this array: results may be written into it


@dataclass
class Program:
    """Inputs, constants, equations in order, and which values are the outputs."""

    inputs: list[Input] = field(default_factory=list)
    constants: dict[int, Any] = field(default_factory=dict)
    equations: list[Equation] = field(default_factory=list)
    outputs: list[int | None] = field(default_factory=list)  # None: a constant output
    output_constants: list[Any] = field(default_factory=list)
    output_treedef: Any = None
    count: int = 0  # values numbered so far

    def new_value(self) -> int:
        self.count += 1
        return self.count - 1

    def __str__(self) -> str:
        names = {}
        for item in self.inputs:
            names[item.value] = f"%{item.value}"
        lines = []
        header = ", ".join(f"%{i.value}: {_type(i.shape, i.dtype)} = arg {i.path or '0'}"
                           + (" (donated)" if i.donated else "") for i in self.inputs)
        lines.append(f"program({header})")
        for eq in self.equations:
            args = " ".join(self._operand(v) for v in eq.inputs)
            params = " ".join(f"{k}={_short(v)}" for k, v in eq.params.items())
            note = "" if eq.grad else "   # no derivative"
            lines.append(f"  %{eq.out}: {_type(eq.shape, eq.dtype)} = {eq.prim.name} {args}"
                         + (f" [{params}]" if params else "") + note)
        results = ", ".join(f"%{v}" if v is not None else _short(c)
                            for v, c in zip(self.outputs, self.output_constants))
        lines.append(f"  return ({results})")
        return "\n".join(lines)

    def _operand(self, value: int) -> str:
        if value in self.constants:
            return _short(self.constants[value])
        return f"%{value}"

    # -- passes ---------------------------------------------------------------------------
    def optimize(self) -> None:
        """The passes, in order: pass-throughs, common subexpressions, dead code."""
        self.forward_pass_throughs()
        self.eliminate_common_subexpressions()
        self.eliminate_dead_code()

    def forward_pass_throughs(self) -> int:
        """Drop equations that return their input itself (identity, a cast to the same dtype):
        their users read the input instead. Returns how many were dropped."""
        replace: dict[int, int] = {}
        kept = []
        for eq in self.equations:
            eq.inputs = tuple(replace.get(v, v) for v in eq.inputs)
            # (one without a derivative, stop_gradient, must stay: on Tensors it cuts the graph)
            if eq.passthrough is not None and eq.grad:
                replace[eq.out] = eq.inputs[eq.passthrough]
                continue
            kept.append(eq)
        self.outputs = [replace.get(v, v) if v is not None else None for v in self.outputs]
        dropped = len(self.equations) - len(kept)
        self.equations = kept
        return dropped

    def eliminate_dead_code(self) -> int:
        """Drop equations whose results no output needs; return how many were dropped."""
        needed = {v for v in self.outputs if v is not None}
        kept = []
        for eq in reversed(self.equations):
            if eq.out in needed:
                kept.append(eq)
                needed.update(eq.inputs)
        dropped = len(self.equations) - len(kept)
        self.equations = kept[::-1]
        self.constants = {k: v for k, v in self.constants.items() if k in needed}
        return dropped

    def eliminate_common_subexpressions(self) -> int:
        """Compute once what is computed twice (same op, inputs and parameters); return count.

        Constants count as the same when they are the same object or equal scalars.
        """
        canonical: dict[int, int] = {}  # value -> the value that replaces it
        constant_of: dict[Any, int] = {}
        for value, constant in self.constants.items():
            key = _constant_key(constant)
            if key is not None:
                canonical[value] = constant_of.setdefault(key, value)
        seen: dict[Any, int] = {}
        kept = []
        for eq in self.equations:
            inputs = tuple(canonical.get(v, v) for v in eq.inputs)
            eq.inputs = inputs
            key = (id(eq.prim), inputs, _params_key(eq.params), eq.grad)
            if key[2] is not None and key in seen:
                canonical[eq.out] = seen[key]
                continue
            if key[2] is not None:
                seen[key] = eq.out
            kept.append(eq)
        removed = len(self.equations) - len(kept)
        self.equations = kept
        self.outputs = [canonical.get(v, v) if v is not None else None for v in self.outputs]
        return removed


def _type(shape: tuple[int, ...], dtype: Any) -> str:
    return f"{np.dtype(dtype).name}[{', '.join(map(str, shape))}]"


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size == 1:
            return repr(value.item()) if value.ndim == 0 else f"{_type(value.shape, value.dtype)}" \
                f"({value.ravel()[0]!r})"
        return f"const {_type(value.shape, value.dtype)}"
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, tuple) and any(isinstance(v, np.ndarray) for v in value):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    if isinstance(value, slice):
        return f"{'' if value.start is None else value.start}:" \
            f"{'' if value.stop is None else value.stop}" + \
            (f":{value.step}" if value.step is not None else "")
    return repr(value)


def _constant_key(value: Any) -> Any:
    """A key under which equal constants are merged (scalars only), or None."""
    if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
        return ("number", type(value).__name__, repr(value))  # repr: 0.0 is not -0.0
    return None


def _params_key(params: dict) -> Any:
    """A hashable key for an op's parameters, or None when they cannot be compared safely."""
    items = []
    for name, value in params.items():
        frozen = _freeze(value)
        if frozen is None:
            return None
        items.append((name, frozen))
    return tuple(sorted(items))


def _freeze(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, np.dtype, np.generic)):
        return (type(value).__name__, value)
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, (tuple, list)):
        parts = tuple(_freeze(v) for v in value)
        return None if any(p is None for p in parts) else (type(value).__name__, parts)
    if isinstance(value, np.ndarray) and value.size <= 64:
        return ("array", value.shape, value.dtype.str, value.tobytes())
    if value is Ellipsis:
        return ("ellipsis",)
    return None
