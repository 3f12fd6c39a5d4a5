"""Tensor operators and methods (``+``, ``@``, ``t[i]``, ``t.sum()``): each calls a primitive."""

from __future__ import annotations

from typing import Any

from tinygraph.ops.elementwise import (
    add,
    div,
    exp,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    mul,
    neg,
    power,
    relu,
    sigmoid,
    stop_gradient,
    sub,
    tanh,
)
from tinygraph.ops.linalg import matmul
from tinygraph.ops.reductions import reduce_max, reduce_sum
from tinygraph.ops.shape import getitem, plain_index, reshape, transpose
from tinygraph.state import STATE
from tinygraph.tensor import Tensor


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


def _install_operators() -> None:
    from tinygraph import composites

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
        "__pos__": lambda self: self,
        "__getitem__": lambda self, index: getitem(self, index=plain_index(index)),
        "__lt__": lambda self, other: less(self, other),
        "__le__": lambda self, other: less_equal(self, other),
        "__gt__": lambda self, other: greater(self, other),
        "__ge__": lambda self, other: greater_equal(self, other),
        "detach": _detach,
        "T": property(lambda self: transpose(self)),
        "sum": lambda self, axis=None, keepdims=False: reduce_sum(self, axis=axis,
                                                                   keepdims=keepdims),
        "mean": lambda self, axis=None, keepdims=False: composites.mean(self, axis, keepdims),
        "max": lambda self, axis=None, keepdims=False: reduce_max(self, axis=axis,
                                                                   keepdims=keepdims),
        "reshape": lambda self, *shape: reshape(self, shape=_shape_args(shape)),
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
