"""NumPy dispatch: ``np.sin(t)``, ``np.sum(t)``, ``np.concatenate([t, u])`` record tinygraph ops.

NumPy hands a call that has a Tensor among its arguments to the Tensor: ufuncs (``np.sin``,
``np.add``, and the operators of ndarray: ``array + t``, ``array @ t``) through
``__array_ufunc__``, the other functions (``np.sum``, ``np.concatenate``, ``np.linalg.inv``)
through ``__array_function__``. Both hooks, installed here on Tensor, look NumPy's name up among
tinygraph's ops when they are called (:func:`resolve`), so every op a family exports is reachable
without a list of them kept here. A call goes, in this order, to:

1. an answer from shape and dtype alone (``np.shape``, ``np.ndim``, ``np.size``,
   ``np.result_type``, ``np.zeros_like``, ...): nothing is recorded (``SHAPE_ONLY``);
2. the tinygraph op of that name, or of a name in ``ALIASES`` where the two differ
   (``np.subtract`` -> ``tg.sub``, ``np.amax`` -> ``tg.max``, ``np.trace`` -> the matrix trace, as
   ``tg.trace`` is the tracer); ufunc methods: ``np.add.reduce`` is ``tg.sum`` over axis 0 by
   default, as NumPy's (multiply -> prod, maximum -> max, minimum -> min), and
   ``np.add.accumulate`` is ``tg.cumsum`` (multiply -> cumprod);
3. NumPy on the data, for a test on values whose result has no derivative (booleans, indices:
   ``np.isnan``, ``np.allclose``, ``np.argsort``; ``VALUE_TESTS``): the value leaves the graph as
   with ``np.asarray(t)``, so outside traced functions it is allowed and inside them refused;
4. otherwise TypeError naming the function: nothing escapes the graph silently.

``out=`` is refused: a Tensor is never written in place (nor is an array with a Tensor's value:
write ``array = array + t`` for ``array += t``).

NumPy's constructor ``np.array([t, u])`` is not dispatched (it is no ufunc, and takes no
``__array_function__``): it converts each Tensor with ``Tensor.__array__``, which gives the data,
a constant (the graph is cut there), and inside a traced function or a recorded rule raises.
``tinygraph.numpy.array([t, u])`` (or ``tg.stack``) builds the array as a recorded Tensor.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygraph.ops.arithmetic import cast
from tinygraph.ops.reshaping import broadcast_to
from tinygraph.primitive import REGISTRY, Primitive
from tinygraph.state import STATE, refuse_leaving_the_graph
from tinygraph.tensor import Tensor

# NumPy's name -> tinygraph's names for it, tried in order, where they differ (or are missing:
# ``np.identity`` makes an identity matrix, ``tg.identity`` returns x itself).
ALIASES: dict[str, tuple[str, ...]] = {
    "subtract": ("subtract", "sub"),
    "multiply": ("multiply", "mul"),
    "divide": ("divide", "true_divide", "div"),
    "true_divide": ("true_divide", "divide", "div"),
    "negative": ("negative", "neg"),
    "positive": ("positive", "identity"),
    "absolute": ("absolute", "abs"),
    "fabs": ("fabs", "abs"),
    "conjugate": ("conjugate", "conj"),
    "remainder": ("remainder", "mod"),
    "mod": ("mod", "remainder"),
    "sum": ("sum", "reduce_sum"),
    "max": ("max", "amax", "reduce_max"),
    "amax": ("amax", "max", "reduce_max"),
    "min": ("min", "amin", "reduce_min"),
    "amin": ("amin", "min", "reduce_min"),
    "prod": ("prod", "reduce_prod"),
    "round": ("round", "around"),
    "around": ("around", "round"),
    "rint": ("rint", "round"),  # halves to even, as np.round
    "copy": ("copy", "identity"),  # Tensors are never written in place: no copy needed
    "trace": ("matrix_trace", "trace"),  # tg.trace is the tracer (not an op): never taken
    "row_stack": ("row_stack", "vstack"),
    "concat": ("concat", "concatenate"),
    "permute_dims": ("permute_dims", "transpose"),
    "identity": (),
}

# ufunc methods: the NumPy name of the reduction (or running reduction) per ufunc
REDUCE = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min"}
ACCUMULATE = {"add": "cumsum", "multiply": "cumprod"}

# The ufuncs behind Python's operators (``array * t`` is ``np.multiply(array, t)``): allowed in
# recorded rules, as ``t * array`` is (there NumPy's other functions are refused).
OPERATORS = frozenset({
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "remainder",
    "power", "matmul", "negative", "positive", "absolute", "less", "less_equal", "greater",
    "greater_equal", "equal", "not_equal", "bitwise_and", "bitwise_or", "bitwise_xor", "invert",
})

# Modules that hold ops: a name of tinygraph's found elsewhere (tg.trace, tg.grad) is no op.
_OP_MODULES = ("tinygraph.ops.", "tinygraph.composites", "tinygraph.linalg")

# Answered from shape and dtype, recording nothing (``np.full_like`` with a Tensor fill value
# broadcasts it instead).
SHAPE_ONLY = frozenset(getattr(np, name) for name in (
    "shape", "ndim", "size", "result_type", "iscomplexobj", "isrealobj", "can_cast",
    "zeros_like", "ones_like", "empty_like", "full_like", "shares_memory", "may_share_memory",
) if hasattr(np, name))

# Tests on values: booleans and indices, derivative zero everywhere, computed on the data.
VALUE_TESTS = frozenset({
    "isnan", "isinf", "isfinite", "isposinf", "isneginf", "isreal", "iscomplex", "signbit",
    "isclose", "allclose", "array_equal", "array_equiv", "all", "any",
    "logical_and", "logical_or", "logical_xor", "logical_not",
    "argmax", "argmin", "argsort", "argpartition", "argwhere", "nonzero", "flatnonzero",
    "count_nonzero", "searchsorted", "digitize",
})

# Writing and printing: the values leave the program, so the data is what they take (refused
# inside tg.trace, whose replay would not run them).
OUTPUTS = frozenset({"save", "savez", "savez_compressed", "savetxt", "array2string",
                     "array_repr", "array_str"})


def _is_op(candidate: Any) -> bool:
    if isinstance(candidate, Primitive):
        return True
    return (callable(candidate) and not isinstance(candidate, type)
            and getattr(candidate, "__module__", "").startswith(_OP_MODULES))


# Where ``resolve`` looks NumPy's names up: {"": the names of ``tinygraph``, "linalg": those of
# ``tinygraph.linalg``}. The package stands above every op family, so it hands its namespaces
# down (``look_up_ops_in``, called by tinygraph/__init__.py) rather than being imported here.
_NAMESPACES: dict[str, dict[str, Any]] = {}
_RESOLVED: dict[tuple[str, str], Callable[..., Any]] = {}  # ops found, by (namespace, name)


def look_up_ops_in(namespace: str, names: dict[str, Any]) -> None:
    """Let :func:`resolve` find the ops of ``numpy.<namespace>`` (namespace "" or "linalg")
    among ``names``: a module's ``vars()``, read when a name is first asked."""
    _NAMESPACES[namespace] = names
    _RESOLVED.clear()


def resolve(name: str, namespace: str = "") -> Callable[..., Any] | None:
    """tinygraph's op for ``numpy.<namespace>.<name>`` (namespace "" or "linalg"), or None.

    Looked up when first asked: the op of that name in ``tinygraph`` (or ``tinygraph.linalg``),
    of a name ``ALIASES`` gives, or else a registered primitive of that name. (An op found is
    remembered; a name without op is looked up again each time: that is the error path.)
    """
    found = _RESOLVED.get((namespace, name))
    if found is not None:
        return found
    known = _NAMESPACES.get(namespace)
    if known is None:
        return None
    names = ALIASES.get(name, (name,)) if namespace == "" else (name,)
    for candidate in names:
        found = known.get(candidate)
        if found is not None and _is_op(found):
            break
    else:
        found = next((REGISTRY[candidate] for candidate in names
                      if namespace == "" and candidate in REGISTRY), None)
    if found is not None:
        _RESOLVED[(namespace, name)] = found
    return found


def qualified_name(function: Any) -> tuple[str, str]:
    """(namespace, name) of a NumPy function: ("linalg", "inv") for ``np.linalg.inv``."""
    module = getattr(function, "__module__", None) or "numpy"
    namespace = module[len("numpy."):] if module.startswith("numpy.") else ""
    return namespace, function.__name__


_SKIPPED_DIRS = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # tinygraph
                 os.path.dirname(os.path.abspath(np.__file__)) + os.sep)


def user_site() -> str:
    """``file:line`` of the innermost caller outside tinygraph and NumPy (NumPy's own functions
    call others: ``np.full_like`` calls ``np.copyto``)."""
    frame = sys._getframe(1)
    while frame is not None:
        if not os.path.abspath(frame.f_code.co_filename).startswith(_SKIPPED_DIRS):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def no_op_error(what: str, hint: str = "") -> TypeError:
    """The error for a NumPy function that tinygraph cannot follow on Tensors."""
    hint = hint or ("write it with tinygraph ops, or call it on np.asarray(t) (outside "
                    "tg.trace) for a constant without derivative")
    return TypeError(f"tinygraph has no differentiable numpy.{what} for Tensors; {hint} "
                     f"(at {user_site()})")


def plain(value: Any) -> Any:
    """``value`` with every Tensor (also in lists, tuples and dicts) replaced by its data."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (list, tuple)):
        return type(value)(plain(part) for part in value)
    if isinstance(value, dict):
        return {key: plain(part) for key, part in value.items()}
    return value


def holds_tensor(value: Any) -> bool:
    """Whether ``value`` is a Tensor or a list, tuple or dict holding one."""
    if isinstance(value, Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(holds_tensor(part) for part in value)
    if isinstance(value, dict):
        return any(holds_tensor(part) for part in value.values())
    return False


def _on_data(function: Callable[..., Any], what: str, args: tuple, kwargs: dict) -> Any:
    """A test on values, computed on the data (refused where np.asarray(t) is)."""
    refuse_leaving_the_graph(f"numpy.{what} on a Tensor")
    return function(*plain(args), **plain(kwargs))


def _refuse_in_rules(what: str) -> None:
    """A backward rule recorded on Tensors must be written in tinygraph ops, not NumPy's.

    (Dispatch would record NumPy's call too; refusing it keeps the rule on arrays, recorded as
    one opaque node, so that an op whose rule calls NumPy is found by the second-order checks.
    Operators stay free: ``array * grad_out`` is as good as ``grad_out * array``.)
    """
    if STATE.rule_op is not None:
        raise TypeError(f"{STATE.rule_op}: its backward rule calls numpy.{what} on a Tensor; "
                        "write rules with tinygraph ops")


def _refuse_out(what: str, kwargs: dict) -> None:
    out = kwargs.pop("out", None)
    if out is None or (isinstance(out, tuple) and all(o is None for o in out)):
        return
    target = "a Tensor" if holds_tensor(out) else "an array"
    raise TypeError(
        f"numpy.{what}(..., out=...): tinygraph cannot write a result into {target}: "
        "Tensors are immutable and a written array would leave the graph; use the returned "
        f"value (for `array += tensor` write `array = array + tensor`) (at {user_site()})"
    )


def _shape_only(function: Any, args: tuple, kwargs: dict) -> Any:
    if function is np.full_like:
        fill = args[1] if len(args) > 1 else kwargs.get("fill_value")
        if isinstance(fill, Tensor):  # a recorded broadcast of the Tensor fill value
            like = plain(args[0])
            dtype = kwargs.get("dtype")
            shape = kwargs.get("shape")
            dtype = np.result_type(like) if dtype is None else np.dtype(dtype)
            shape = np.shape(like) if shape is None else tuple(np.atleast_1d(shape).tolist())
            return broadcast_to(cast(fill, dtype=dtype), shape=shape)
    return function(*plain(args), **plain(kwargs))


def astype(x: Any, dtype: Any) -> Any:
    """``x`` as ``dtype``: ``Tensor.astype`` (an integer dtype drops the derivative), else
    NumPy's."""
    if isinstance(x, Tensor):
        method = getattr(x, "astype", None)
        if method is not None:
            return method(np.dtype(dtype))
        return cast(x, dtype=np.dtype(dtype))
    return np.asarray(x).astype(dtype)


def _foreign(values: Any) -> bool:
    """Whether another array library's object takes part (it may handle the call itself)."""
    return any(hasattr(type(v), "__array_ufunc__")
               and not isinstance(v, (Tensor, np.ndarray, np.generic)) for v in values)


def array_function(self: Tensor, function: Any, types: tuple, args: tuple, kwargs: dict) -> Any:
    """NumPy's function on Tensors: an answer from shapes, tinygraph's op, or a TypeError."""
    if function in SHAPE_ONLY:
        if len(args) == 1 and not kwargs and isinstance(args[0], Tensor):
            # the hot cases: rules recorded on Tensors ask np.shape, np.ndim, np.result_type
            if function is np.shape:
                return args[0].data.shape
            if function is np.ndim:
                return args[0].data.ndim
            if function is np.result_type:
                return args[0].data.dtype
        return _shape_only(function, args, kwargs)
    if not all(issubclass(kind, (Tensor, np.ndarray)) for kind in types):
        return NotImplemented
    namespace, name = qualified_name(function)
    what = f"{namespace}.{name}" if namespace else name
    _refuse_in_rules(what)
    if function is getattr(np, "astype", None):  # NumPy 2's function form of the method
        return astype(args[0], args[1] if len(args) > 1 else kwargs["dtype"])
    if function is np.where and len(args) == 1 and not kwargs:  # np.where(c): indices
        return _on_data(function, what, args, kwargs)
    op = resolve(name, namespace)
    if op is not None:
        _refuse_out(what, kwargs)
        if kwargs.get("dtype", 0) is None:  # NumPy's default, which ops need not accept
            del kwargs["dtype"]
        try:
            return op(*args, **kwargs)
        except TypeError as exc:  # an option of NumPy's that tinygraph's op does not take
            option = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            if option is None:
                raise
            raise TypeError(f"numpy.{what} on Tensors: tinygraph does not follow the option "
                            f"{option.group(1)}= (at {user_site()})") from None
    if namespace == "" and (name in VALUE_TESTS or name in OUTPUTS):
        return _on_data(function, what, args, kwargs)
    raise no_op_error(what)


def array_ufunc(self: Tensor, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """A NumPy ufunc (or ufunc method) on Tensors: tinygraph's op of its name, or a TypeError."""
    if _foreign(inputs):
        return NotImplemented
    name = ufunc.__name__
    what = name if method == "__call__" else f"{name}.{method}"
    if method != "__call__" or name not in OPERATORS:
        _refuse_in_rules(what)
    _refuse_out(what, kwargs)
    if method == "__call__":
        op = resolve(name)
        if op is None and name in VALUE_TESTS:
            return _on_data(ufunc, what, inputs, kwargs)
        if op is None:
            raise no_op_error(what)
        _refuse_options(what, kwargs)
        return op(*inputs)
    if method in ("reduce", "accumulate"):
        numpy_name = (REDUCE if method == "reduce" else ACCUMULATE).get(name)
        op = resolve(numpy_name) if numpy_name is not None else None
        if op is None:
            raise no_op_error(what)
        axis = kwargs.pop("axis", 0)  # NumPy's default for ufunc methods: the first axis
        if method == "reduce":
            keepdims = kwargs.pop("keepdims", False)
            _refuse_options(what, kwargs)
            return op(inputs[0], axis=axis, keepdims=keepdims)
        _refuse_options(what, kwargs)
        return op(inputs[0], axis=axis)
    raise no_op_error(what, "tinygraph follows the ufunc methods reduce (add, multiply, "
                            "maximum, minimum) and accumulate (add, multiply) only")


def _refuse_options(what: str, kwargs: dict) -> None:
    """ufunc options other than their defaults (dtype=, where=, casting=) are not followed."""
    options = {key: value for key, value in kwargs.items()
               if not (key == "dtype" and value is None) and not (key == "where" and
                                                                  value is True)}
    if options:
        raise TypeError(f"numpy.{what}: tinygraph does not follow the options "
                        f"{', '.join(sorted(options))} on Tensors (at {user_site()})")


def _install_dispatch() -> None:
    hooks = {"__array_ufunc__": array_ufunc, "__array_function__": array_function}
    for name, hook in hooks.items():
        setattr(Tensor, name, hook)


_install_dispatch()
