"""Tensor operators and methods (``+``, ``@``, ``t[i]``, ``t.sum()``): each calls a primitive."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygraph.ops.elementwise import (
    absolute,
    add,
    cast,
    div,
    equal,
    exp,
    floor_divide,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    mod,
    mul,
    neg,
    not_equal,
    power,
    relu,
    sigmoid,
    stop_gradient,
    sub,
    tanh,
)
from tinygraph.ops.linalg import dot, matmul
from tinygraph.ops.reductions import (
    argmax,
    argmin,
    prod,
    reduce_max,
    reduce_min,
    reduce_sum,
    std,
    var,
)
from tinygraph.ops.shape import (
    flatten,
    getitem,
    plain_index,
    ravel,
    reshape,
    squeeze,
    swapaxes,
    transpose,
)
from tinygraph.state import STATE, current, refuse_leaving_the_graph
from tinygraph.tensor import Tensor, mark_changed


def _shape_args(args: tuple) -> Any:
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return args


_plain_detach = Tensor.detach


def _detach(self: Tensor) -> Tensor:
    if STATE.tracing:  # a recorded constant: the replay recomputes it from the trace's inputs
        return stop_gradient(self)
    return _plain_detach(self)


def _astype(self: Tensor, dtype: Any) -> Tensor:
    """``t.astype(dtype)``: a float dtype keeps the derivative (``cast``); an integer or boolean
    one drops it (rounding has derivative 0 almost everywhere), as a recorded constant."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return cast(self, dtype)
    if dtype.kind in "biu":
        return cast(stop_gradient(self), dtype)
    raise TypeError(f"Tensor.astype: tinygraph holds real numbers only, not {dtype}")


def _python_number(self: Tensor, kind: type) -> Any:
    """``float(t)``, ``int(t)``: the value of a one-element Tensor (it leaves the graph)."""
    refuse_leaving_the_graph(f"{kind.__name__}(Tensor)")
    if self.size != 1:
        raise TypeError(f"{kind.__name__}(Tensor): only a one-element Tensor converts to a "
                        f"Python number, not one of shape {self.shape}")
    return kind(self.data.item())


def _iterate(self: Tensor) -> Iterator[Tensor]:
    """``for row in t``: the slices along the first axis, each recorded as ``t[i]``."""
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d Tensor")
    return (getitem(self, index=i) for i in range(self.shape[0]))


def _in_place(ufunc: np.ufunc, symbol: str, out_of_place: Any) -> Any:
    """``t -= x`` and friends, as PyTorch: under ``no_grad`` the tensor's own array is updated
    (a leaf stays the same leaf: ``with tg.no_grad(): W -= lr * W.grad``), and a graph recorded
    before the update refuses to be differentiated (its rules would read the new values); a
    leaf that requires grad refuses it while recording; any other tensor gets a new result."""

    def operator(self: Tensor, other: Any) -> Tensor:
        state = current()
        if state.grad_enabled or state.tracing:
            if self.requires_grad and self._prim is None and not state.tracing:
                raise RuntimeError(
                    f"Tensor {symbol}=: a leaf that requires grad cannot be updated in place "
                    f"while recording (its old value is needed for gradients); write "
                    f"`with tg.no_grad(): W {symbol}= ...` for a parameter update")
            return out_of_place(self, other)
        value = other.data if isinstance(other, Tensor) else other
        try:
            ufunc(self.data, value, out=self.data, casting="same_kind")
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"Tensor {symbol}=: cannot update shape {self.shape} "
                            f"({self.dtype}) in place with {np.shape(value)}: {exc}") from None
        mark_changed(self)  # a graph recorded before this reads other values: backward refuses
        return self

    return operator


def _install_operators() -> None:
    # Each method calls its op as its family's face exports it (``tinygraph.ops.shape``, ...).
    # ``t.mean()`` is installed by tinygraph.composites, where ``mean`` is defined.
    operators = {
        "__add__": lambda self, other: add(self, other),
        "__radd__": lambda self, other: add(other, self),
        "__sub__": lambda self, other: sub(self, other),
        "__rsub__": lambda self, other: sub(other, self),
        "__mul__": lambda self, other: mul(self, other),
        "__rmul__": lambda self, other: mul(other, self),
        "__truediv__": lambda self, other: div(self, other),
        "__rtruediv__": lambda self, other: div(other, self),
        "__matmul__": lambda self, other: matmul(self, other),
        "__rmatmul__": lambda self, other: matmul(other, self),
        "__pow__": lambda self, other: power(self, other),
        "__rpow__": lambda self, other: power(other, self),
        "__neg__": lambda self: neg(self),
        "__iadd__": _in_place(np.add, "+", lambda self, other: add(self, other)),
        "__isub__": _in_place(np.subtract, "-", lambda self, other: sub(self, other)),
        "__imul__": _in_place(np.multiply, "*", lambda self, other: mul(self, other)),
        "__itruediv__": _in_place(np.divide, "/", lambda self, other: div(self, other)),
        "__pos__": lambda self: self,
        "__getitem__": lambda self, index: getitem(self, index=plain_index(index)),
        "__lt__": lambda self, other: less(self, other),
        "__le__": lambda self, other: less_equal(self, other),
        "__gt__": lambda self, other: greater(self, other),
        "__ge__": lambda self, other: greater_equal(self, other),
        # Elementwise, as NumPy and PyTorch: boolean Tensors. Hashing stays by identity, so
        # Tensors remain usable as dict keys and in sets (the engine never compares with ==).
        "__eq__": lambda self, other: equal(self, other),
        "__ne__": lambda self, other: not_equal(self, other),
        "__abs__": lambda self: absolute(self),
        "__mod__": lambda self, other: mod(self, other),
        "__rmod__": lambda self, other: mod(other, self),
        "__floordiv__": lambda self, other: floor_divide(self, other),
        "__rfloordiv__": lambda self, other: floor_divide(other, self),
        "detach": _detach,
        "T": property(lambda self: transpose(self)),
        "sum": lambda self, axis=None, keepdims=False: reduce_sum(self, axis=axis,
                                                                   keepdims=keepdims),
        "max": lambda self, axis=None, keepdims=False: reduce_max(self, axis=axis,
                                                                   keepdims=keepdims),
        "min": lambda self, axis=None, keepdims=False: reduce_min(self, axis=axis,
                                                                   keepdims=keepdims),
        "prod": lambda self, axis=None, keepdims=False: prod(self, axis=axis, keepdims=keepdims),
        "var": lambda self, axis=None, *, ddof=0, keepdims=False: var(self, axis=axis, ddof=ddof,
                                                                      keepdims=keepdims),
        "std": lambda self, axis=None, *, ddof=0, keepdims=False: std(self, axis=axis, ddof=ddof,
                                                                      keepdims=keepdims),
        "argmax": lambda self, axis=None, keepdims=False: argmax(self, axis, keepdims),
        "argmin": lambda self, axis=None, keepdims=False: argmin(self, axis, keepdims),
        "reshape": lambda self, *shape: reshape(self, shape=_shape_args(shape)),
        "ravel": lambda self: ravel(self),
        "flatten": lambda self: flatten(self),
        "squeeze": lambda self, axis=None: squeeze(self, axis=axis),
        "swapaxes": lambda self, axis1, axis2: swapaxes(self, axis1, axis2),
        "dot": lambda self, other: dot(self, other),
        "astype": _astype,
        "__float__": lambda self: _python_number(self, float),
        "__int__": lambda self: _python_number(self, int),
        "__iter__": _iterate,
        "transpose": lambda self, *axes: transpose(self, axes=_shape_args(axes) or None),
        "exp": lambda self: exp(self),
        "log": lambda self: log(self),
        "sigmoid": lambda self: sigmoid(self),
        "tanh": lambda self: tanh(self),
        "relu": lambda self: relu(self),
    }
    for name, function in operators.items():
        setattr(Tensor, name, function)


_install_operators()
