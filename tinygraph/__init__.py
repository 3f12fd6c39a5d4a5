"""tinygraph: a small, functional reverse-mode autodiff framework on NumPy.

Networks are plain expressions over :class:`Tensor`; every op records a node; gradients come from
walking the graph in reverse, each node applying its own hand-derived backward rule.
"""

from tinygraph.autodiff import backward, grad, toposort, unbroadcast, value_and_grad
from tinygraph.composites import mean, softmax
from tinygraph.gradcheck import (
    GradCheckReport,
    GradientCheckError,
    check_grads,
    check_op,
    numerical_grad,
)
from tinygraph.memory import keep_freed_memory
from tinygraph.ops import (
    add,
    broadcast_to,
    div,
    exp,
    getitem,
    log,
    log_softmax,
    matmul,
    mul,
    neg,
    power,
    relu,
    reshape,
    scatter_add,
    sigmoid,
    softmax_cross_entropy,
    sub,
    tanh,
    transpose,
)
from tinygraph.ops import reduce_max as max  # noqa: A004 - tg.max, as users expect
from tinygraph.ops import reduce_sum as sum  # noqa: A004
from tinygraph.primitive import Primitive, primitive, registry
from tinygraph.pytree import tree_map
from tinygraph.sampling import RandomDraw
from tinygraph.state import detect_anomaly, enable_grad, is_grad_enabled, no_grad, scope
from tinygraph.tensor import Tensor
from tinygraph.tracing import Traced, TraceError, trace
from tinygraph.viz import GraphTooLargeError, render, to_dot, to_dot_backward

__version__ = "0.1.0"

__all__ = [
    "GradCheckReport", "GradientCheckError", "GraphTooLargeError", "Primitive", "RandomDraw",
    "Tensor", "TraceError", "Traced", "add", "backward", "broadcast_to", "check_grads",
    "check_op", "detect_anomaly", "div", "enable_grad", "exp", "getitem", "grad",
    "is_grad_enabled", "keep_freed_memory", "log", "log_softmax", "matmul", "max", "mean", "mul",
    "neg", "no_grad", "numerical_grad", "power", "primitive", "registry", "relu", "render",
    "reshape", "scatter_add", "scope", "sigmoid", "softmax", "softmax_cross_entropy", "sub",
    "sum", "tanh", "to_dot", "to_dot_backward", "toposort", "trace", "transpose", "tree_map",
    "unbroadcast", "value_and_grad",
]
