"""Primitives: a forward function on arrays, its backward rule (VJP), and how to sample inputs.

Built-in ops and users' ops are made the same way::

    @tg.primitive
    def cube(x):
        return x ** 3

    @cube.defvjp
    def cube_vjp(grad_out, out, x):
        return (grad_out * 3 * x ** 2,)

Calling a primitive on arrays and numbers only returns the forward result (an array). Called with
at least one Tensor it returns a Tensor, and records a node when an input requires grad and
recording is on. Positional arguments are the op's inputs; keyword arguments are its parameters
(axis, shape, ...), passed to the forward and to the rule unchanged.

One rule body, two modes. The first-order reverse pass calls a rule on arrays (fast: the rule's
``*`` and ``tg.exp`` are NumPy's). A recorded pass (a derivative of a derivative, a traced step,
``backward(create_graph=True)``) calls the same rule on Tensors, so that what it computes is
recorded and can be differentiated again. A rule written with tinygraph ops and Tensor operators
serves both. A rule that calls NumPy on its inputs cannot run on Tensors; it still serves first
order and traced steps (it is recorded as one opaque node), and differentiating through it raises
:class:`~tinygraph.state.HigherOrderError` naming the op.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygraph.sampling import SampleFn, default_sample
from tinygraph.state import HigherOrderError, current
from tinygraph.tensor import Tensor

REGISTRY: dict[str, Primitive] = {}
VARIADIC = -1  # the arity of an op whose forward takes ``*inputs`` (concatenate, einsum, ...)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

Rule = Callable[..., Any]


def user_site() -> str:
    """``file:line`` of the innermost caller outside tinygraph (where the user wrote the op)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def describe(value: Any) -> str:
    """A short description of an op input for error messages: its shape, or its value."""
    if isinstance(value, (np.ndarray, np.generic)):
        return str(tuple(value.shape))
    if isinstance(value, (int, float, bool)):
        return repr(value)
    return type(value).__name__


class Primitive:
    """One differentiable operation: ``forward``, its rule(s) and a ``sample`` of valid inputs.

    The rule is either one function ``vjp(grad_out, out, *inputs, **params)`` returning one
    cotangent per input (``None`` for an input with no derivative), or one function per input,
    each returning that input's cotangent; the second form lets the reverse pass skip inputs
    that need no gradient (the data ``x`` in ``x @ W``).
    """

    __slots__ = ("name", "forward", "forward_into", "joint_rule", "input_rules", "sample",
                 "explain", "arity", "param_names", "input_names", "module", "differentiable",
                 "rule_on_arrays_only", "_opaque", "onnx_rule", "reads", "__wrapped__",
                 "__dict__",
                 "__weakref__")

    def __init__(self, forward: Callable[..., Any], name: str | None = None,
                 sample: SampleFn | None = None,
                 explain: Callable[..., str] | None = None,
                 forward_into: Callable[..., Any] | None = None,
                 params: tuple[str, ...] = (), differentiable: bool = True) -> None:
        self.forward = forward
        # Optional ``forward_into(out, *inputs, **params)``: the same result written into a
        # preallocated array (a traced step reuses its buffers); must equal forward bit for bit.
        self.forward_into = forward_into
        self.name = name or forward.__name__
        self.__doc__ = forward.__doc__
        self.__wrapped__ = forward
        self.module = getattr(forward, "__module__", None) or "__main__"
        # Inputs are the leading positional parameters; the rest (those with defaults, and any
        # named in ``params``) are the op's parameters, accepted by position too: tg.sum(x, 0).
        # (An op whose forward takes ``*inputs`` has arity VARIADIC; its parameters are keywords.)
        self.arity, self.param_names, self.input_names = _split_signature(forward, params)
        self.sample = sample or default_sample(max(self.arity, 1))
        self.explain = explain
        self.joint_rule: Rule | None = None
        self.input_rules: tuple[Rule | None, ...] | None = None
        # A non-differentiable op (comparisons, stop_gradient, ...) has derivative 0 almost
        # everywhere: its result never requires grad, but a trace still records it.
        self.differentiable = differentiable
        # True for the opaque stand-ins of rules that run on arrays only (see graph_cotangents)
        self.rule_on_arrays_only = False
        # The rule's arguments whose values it reads (see ``rule_reads``); None: all of them.
        self.reads: frozenset[str] | None = None
        self._opaque: dict[int, Primitive] = {}
        # Optional ONNX mapping set by ``defonnx`` (see tinygraph.onnx_export); None: the
        # exporter's own table decides.
        self.onnx_rule: Callable[..., Any] | None = None

    def defvjp(self, *rules: Rule | None) -> Rule | None:
        """Set the backward rule: one function for all inputs, or one function per input.

        Returns the first rule, so that ``defvjp`` works as a decorator.
        """
        if not rules:
            raise TypeError(f"{self.name}.defvjp: give one rule, or one rule per input")
        if len(rules) == 1:
            self.joint_rule, self.input_rules = rules[0], None
        else:
            self.joint_rule, self.input_rules = None, tuple(rules)
        self._opaque = {}
        return rules[0]

    def rule_reads(self, *names: str) -> None:
        """Declare which of the rule's arguments (``out`` and the input names) it reads the
        values of; of the others it uses at most the shape and dtype.

        A reverse pass may then free an intermediate array that no rule reads and nothing else
        holds (``x @ W`` before ``+ b``: add reads neither, matmul not its output), which is
        what a full-batch step's memory is made of. An undeclared op reads everything. A wrong
        declaration is loud, never a wrong gradient: a freed array is a stand-in that raises on
        any use of its values, and a test checks every declaration on the op's samples.
        """
        if self.input_names is None:
            raise ValueError(f"{self.name}.rule_reads: a variadic op's rule reads all inputs")
        known = {"out", *self.input_names}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"{self.name}.rule_reads: {', '.join(map(repr, unknown))} is not "
                             f"one of the rule's arguments ({', '.join(sorted(known))})")
        self.reads = frozenset(names)

    def defonnx(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        """Set how ``tg.export_onnx`` writes this op as ONNX nodes (see
        ``tinygraph.onnx_export``); returns ``rule``, so it works as a decorator."""
        if not callable(rule):
            raise TypeError(f"{self.name}.defonnx: the rule must be a function "
                            f"rule(g, *inputs, **params), got {type(rule).__name__}")
        self.onnx_rule = rule
        return rule

    @property
    def has_rule(self) -> bool:
        """Whether the op can be differentiated (a non-differentiable op's derivative is 0)."""
        return (not self.differentiable or self.joint_rule is not None
                or self.input_rules is not None)

    def cotangents(self, grad_out: Any, out: Any, inputs: tuple | list, params: dict,
                   needed: list[bool]) -> tuple | list:
        """Apply the rule: one cotangent (or None) per input; inputs not ``needed`` may be None."""
        if not self.differentiable:
            return (None,) * len(inputs)
        if self.joint_rule is not None:
            result = self.joint_rule(grad_out, out, *inputs, **params)
            if len(inputs) == 1 and not isinstance(result, (tuple, list)) and result is not None:
                return (result,)  # a single-input rule may return its cotangent bare
            if not isinstance(result, (tuple, list)) or len(result) != len(inputs):
                got = f"{len(result)} values" if isinstance(result, (tuple, list)) else repr(
                    type(result).__name__)
                raise TypeError(
                    f"{self.name}: the backward rule must return a tuple of {len(inputs)} "
                    f"cotangent(s), one per input (None where there is none); it returned {got}"
                )
            return tuple(result)
        if self.input_rules is None:
            raise NotImplementedError(
                f"{self.name}: no backward rule; define one with @{self.name}.defvjp"
            )
        rules = self.input_rules
        if len(rules) != len(inputs):  # (a variadic op gives one joint rule)
            raise TypeError(f"{self.name}: {len(rules)} rules for {len(inputs)} inputs")
        return [rule(grad_out, out, *inputs, **params) if need and rule is not None else None
                for rule, need in zip(rules, needed)]

    def graph_cotangents(self, grad_out: Any, out: Any, inputs: tuple, params: dict,
                         needed: list[bool]) -> tuple:
        """Apply the rule to Tensors, recording what it computes (a recorded reverse pass).

        ``grad_out`` and ``out`` are Tensors, ``inputs`` the recorded inputs (Tensors or
        constants). A rule that cannot run on Tensors (it calls NumPy on them) is applied on
        arrays instead, recorded as one opaque node per input: right at first order, and its
        own derivative raises HigherOrderError naming this op.
        """
        if self.rule_on_arrays_only:  # an opaque rule itself: its own rule raises
            return self.cotangents(grad_out, out, inputs, params, needed)
        state = current()
        previous = state.rule_op, state.rule_site
        # nodes the rule makes are reported, under detect_anomaly, at the line that made ``out``
        # (sites are kept only under anomaly mode or while tracing: no object otherwise)
        state.rule_op = self.name
        state.rule_site = (RuleSite(self.name, getattr(out, "_site", None))
                           if state.anomaly or state.tracing else None)
        try:
            results = self.cotangents(grad_out, out, inputs, params, needed)
            for result, need in zip(results, needed):
                if need and result is not None and not isinstance(result, Tensor):
                    raise TypeError(f"it returned a {type(result).__name__}, not a Tensor")
        except (HigherOrderError, TypeError, AttributeError) as exc:  # NumPy called on Tensors
            reason = f"{type(exc).__name__}: {exc}"
        else:
            return results
        finally:
            state.rule_op, state.rule_site = previous
        # Tried again on every call (a rule may fail on Tensors for some inputs only).
        return tuple(self._opaque_rule(position, reason)(grad_out, out, *inputs, **params)
                     if need else None for position, need in enumerate(needed))

    def _opaque_rule(self, position: int, reason: str) -> Primitive:
        """This op's rule for one input, as a primitive on arrays that has no rule of its own."""
        opaque = self._opaque.get(position)
        if opaque is None:
            op = self

            def forward(grad_out: Any, out: Any, *inputs: Any, **params: Any) -> Any:
                needed = [i == position for i in range(len(inputs))]
                cotangent = op.cotangents(grad_out, out, inputs, params, needed)[position]
                return np.zeros(np.shape(inputs[position])) if cotangent is None else cotangent

            def refuse(grad_out: Any, out: Any, *inputs: Any, **params: Any) -> Any:
                raise HigherOrderError(
                    f"{op.name}: its backward rule runs on NumPy arrays only, so it has no "
                    f"derivative of its own (on Tensors it failed: {opaque.reason}). Write the "
                    "rule with tinygraph ops and Tensor operators to get second and higher "
                    "derivatives"
                )

            opaque = Primitive(forward, name=f"vjp of {self.name} (input {position})")
            opaque.arity = VARIADIC if self.arity == VARIADIC else 2 + self.arity
            opaque.param_names = tuple(self.param_names)
            opaque.defvjp(refuse)
            opaque.rule_on_arrays_only = True
            self._opaque[position] = opaque
        opaque.reason = reason
        return opaque

    def __call__(self, *args: Any, **params: Any) -> Any:
        if len(args) != self.arity and self.arity != VARIADIC:
            args = self._arguments(args, params)
        for arg in args:  # the hottest code of the engine: plain loops, no helper calls
            if isinstance(arg, (Tensor, list, tuple)):
                break
        else:  # arrays and numbers only (a rule in a first-order pass): the forward, nothing else
            try:
                return self.forward(*args, **params)
            except (ValueError, TypeError, IndexError) as exc:
                raise self._input_error(exc, list(args), params) from None
        values = []
        grad = False
        for arg in args:
            if isinstance(arg, Tensor):
                if arg.requires_grad:
                    grad = True
                values.append(arg.data)
            elif isinstance(arg, (list, tuple)):  # rare: convert, then call again
                return self(*_sequences_as_operands(args), **params)
            else:
                values.append(arg)
        try:
            out = self.forward(*values, **params)
        except (ValueError, TypeError, IndexError) as exc:
            raise self._input_error(exc, values, params) from None
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if out.dtype.kind == "c":
            raise TypeError(f"{self.name}: the result is complex ({out.dtype}); tinygraph "
                            f"differentiates real values only (at {user_site()})")
        state = current()  # this thread's (one lookup, then plain attributes)
        if grad and state.grad_enabled and self.differentiable:
            result = Tensor.node(out, True, self, args, params or None, state.scope)
            if state.tape is not None:
                state.tape.append(result)
        elif state.tracing and (grad or _any_recorded(args)):
            # Not differentiated, but computed from the trace's inputs: a replay recomputes it.
            result = Tensor.node(out, False, self, args, params or None, state.scope)
        else:
            result = Tensor.node(out, scope=state.scope)
        if state.anomaly or state.tracing:  # remember the user's line, for anomaly reports
            if result._prim is not None:
                result._site = state.rule_site or user_site()
            if state.anomaly:
                check_finite(self, out, values, "forward", site=result._site
                             if isinstance(result._site, RuleSite) else None)
        return result

    def _arguments(self, args: tuple, params: dict) -> tuple:
        """The inputs, when some came by name or parameters came by position (``sum(x, 0)``)."""
        if params and self.input_names and len(args) < self.arity:
            args = self._keyword_inputs(args, params)
        if len(args) > self.arity:
            args, extra = args[:self.arity], args[self.arity:]
            if len(extra) > len(self.param_names):
                names = ", ".join(self.param_names) or "(none)"
                raise TypeError(f"{self.name}: takes {self.arity} input(s) and the parameters "
                                f"{names}; got {len(args) + len(extra)} positional arguments")
            for name, value in zip(self.param_names, extra):
                if name in params:
                    raise TypeError(f"{self.name}: parameter {name!r} given twice")
                params[name] = value
        return args

    def _keyword_inputs(self, args: tuple, params: dict) -> tuple:
        """Inputs given by name (``softmax_cross_entropy(x, labels=y)``) join the positional."""
        missing = self.input_names[len(args):]
        if not any(name in params for name in missing):
            return args
        extra = []
        for name in missing:
            if name not in params:
                raise TypeError(f"{self.name}: input {name!r} is missing")
            extra.append(params.pop(name))
        return (*args, *extra)

    def _input_error(self, exc: Exception, values: list, params: dict) -> Exception:
        """The forward failed on these inputs: say which op, which shapes, and where."""
        reason = None
        if self.explain is not None:
            try:
                reason = self.explain(*values, **params)
            except Exception:  # the explanation must never hide the real error
                reason = None
        if reason is None:
            shapes = ", ".join(describe(v) for v in values)
            reason = f"inputs {shapes}: {exc}"
        extra = f" with {params}" if params and self.explain is None else ""
        message = f"{self.name}: {reason}{extra} (at {user_site()})"
        try:
            return type(exc)(message)
        except Exception:  # an error type that takes other arguments (NumPy's _UFuncNoLoopError)
            return TypeError(message)

    def __repr__(self) -> str:
        return f"<tinygraph primitive {self.name}>"


def _sequences_as_operands(args: tuple) -> tuple:
    """A (nested) list or tuple where an op takes an array, as the array it stands for:
    ``[[1., 2.]] @ W``; one holding Tensors (``W * [W[0], 1.]``) is stacked into a recorded
    Tensor, so that the gradient flows through it, never silently around it."""
    as_array = _SEQUENCE_AS_ARRAY[0]
    return tuple(as_array(arg) if isinstance(arg, (list, tuple)) else arg for arg in args)


def _sequences_not_ready(value: Any) -> Any:
    raise TypeError("tinygraph: an op was given a list or tuple before tinygraph.numpy was "
                    "loaded (import tinygraph first)")


# How an op takes a (nested) list or tuple: stacking the Tensors in it needs the ops, which
# stand above this module, so the function is registered from above (tinygraph.numpy registers
# its ``array``, and ``import tinygraph`` loads it).
_SEQUENCE_AS_ARRAY: list[Callable[[Any], Any]] = [_sequences_not_ready]


def convert_sequences_with(as_array: Callable[[Any], Any]) -> None:
    """Make ``as_array(sequence)`` the way every op takes a (nested) list or tuple operand; it
    must turn one holding Tensors into a recorded Tensor (``tinygraph.numpy.array`` does)."""
    _SEQUENCE_AS_ARRAY[0] = as_array


def _any_recorded(args: tuple) -> bool:
    return any(isinstance(arg, Tensor) and arg._prim is not None for arg in args)


class RuleSite(str):
    """Where an op made by a recorded backward rule comes from: the rule's op and the user's
    line that made that op (a str of the line, so it reads as any other site)."""

    rule_op: str

    def __new__(cls, rule_op: str, site: str | None) -> RuleSite:
        made = super().__new__(cls, site or "")
        made.rule_op = rule_op
        return made


def check_finite(prim: Primitive, value: Any, inputs: list, where: str,
                 node_name: str | None = None, site: str | None = None) -> None:
    """Under ``detect_anomaly``: raise FloatingPointError if ``value`` holds NaN or inf.

    ``site``: where the user's code made the op (for a backward rule or a compiled step, whose
    own frame is not the user's line)."""
    if value is None:
        return
    array = np.asarray(value)
    if array.dtype.kind not in "fc" or np.isfinite(array).all():
        return
    kind = "NaN" if np.isnan(array).any() else "inf"
    node = f" (node {node_name!r})" if node_name else ""
    bad_inputs = any(
        isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all()
        for v in inputs
    )
    origin = " (its inputs already held NaN/inf)" if bad_inputs else ""
    made = f"; the op was made at {site}" if site else ""
    what = f"{where} of {prim.name}"
    if isinstance(site, RuleSite):  # a value a recorded backward rule made: name that rule
        what = f"backward rule of {site.rule_op} (in its {prim.name}"
        what += ", compiled step)" if "compiled" in where else ")"
    raise FloatingPointError(
        f"detect_anomaly: {kind} first appeared in the {what}{node}{origin}, "
        f"output shape {array.shape} (at {user_site()}{made})"
    )


def _split_signature(function: Callable[..., Any], params: tuple[str, ...]
                     ) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """(number of inputs, names of the parameters that may also come by position, input names)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return 1, (), ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    every = list(signature.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in every):
        # ``forward(*inputs, axis=0)``: any number of inputs (named ones first, if any),
        # parameters by keyword only
        return VARIADIC, (), ()
    positional = [p for p in every if p.kind in kinds]
    inputs = [p for p in positional
              if p.default is inspect.Parameter.empty and p.name not in params]
    count = len(inputs)
    if [p.name for p in positional[:count]] != [p.name for p in inputs]:
        raise TypeError(f"{function.__name__}: op inputs must come before its parameters")
    return count, tuple(p.name for p in positional[count:]), tuple(p.name for p in inputs)


def primitive(forward: Callable[..., Any] | None = None, *, name: str | None = None,
              sample: SampleFn | None = None, explain: Callable[..., str] | None = None,
              forward_into: Callable[..., Any] | None = None, params: tuple[str, ...] = (),
              differentiable: bool = True, register: bool = True) -> Any:
    """Make a differentiable op from a forward function on NumPy arrays.

    ``name`` defaults to the function's name; ``sample(draw) -> (args, params)`` draws valid
    inputs for the gradient checks (the default suits smooth ops of any arity); ``explain``
    turns a failed forward into a one-line reason; ``forward_into(out, *inputs, **params)``
    optionally computes the same result into a preallocated array (used by ``tg.trace``);
    ``params`` names positional parameters without defaults that are parameters, not inputs
    (``reshape(x, shape)``). Parameters with defaults are parameters already.
    ``differentiable=False`` declares an op whose derivative is zero almost everywhere
    (comparisons, rounding): it needs no rule and its results never require grad.
    Registered ops are what the gradient-check suite and the op benchmarks walk;
    ``register=False`` keeps an op out of the registry.
    """

    def make(function: Callable[..., Any]) -> Primitive:
        op = Primitive(function, name=name, sample=sample, explain=explain,
                       forward_into=forward_into, params=params, differentiable=differentiable)
        if register:
            taken = REGISTRY.get(op.name)
            if taken is not None and taken.module != op.module:
                raise ValueError(f"primitive: the name {op.name!r} is taken by {taken.module}; "
                                 "pass name=... to register this op under another name")
            REGISTRY[op.name] = op
        return op

    return make if forward is None else make(forward)


def registry() -> dict[str, Primitive]:
    """Every registered primitive by name (a copy)."""
    return dict(REGISTRY)
