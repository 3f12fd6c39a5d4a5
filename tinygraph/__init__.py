"""tinygraph: a small, functional reverse-mode autodiff framework on NumPy.

Networks are plain expressions over :class:`Tensor`; every op records a node; gradients come from
walking the graph in reverse, each node applying its own hand-derived backward rule.
"""

from tinygraph.autodiff import backward, toposort
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
    cast,
    div,
    equal,
    exp,
    getitem,
    greater,
    greater_equal,
    identity,
    less,
    less_equal,
    log,
    log_softmax,
    matmul,
    mul,
    neg,
    not_equal,
    power,
    relu,
    reshape,
    scatter_add,
    sigmoid,
    softmax_cross_entropy,
    stop_gradient,
    sub,
    tanh,
    transpose,
    unbroadcast,
    where,
)
from tinygraph.ops import reduce_max as max  # noqa: A004 - tg.max, as users expect
from tinygraph.ops import reduce_sum as sum  # noqa: A004
from tinygraph.primitive import Primitive, primitive, registry
from tinygraph.program import Program
from tinygraph.pytree import tree_map
from tinygraph.sampling import RandomDraw
from tinygraph.state import (
    HigherOrderError,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    scope,
)
from tinygraph.tensor import Tensor
from tinygraph.tracing import Traced, TraceError, make_program, trace
from tinygraph.transforms import grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp
from tinygraph.viz import GraphTooLargeError, render, to_dot, to_dot_backward, to_dot_program

__version__ = "0.1.0"

__all__ = [
    "GradCheckReport", "GradientCheckError", "GraphTooLargeError", "HigherOrderError", "Primitive",
    "Program", "RandomDraw", "Tensor", "Traced", "TraceError", "add", "backward", "broadcast_to",
    "cast", "check_grads", "check_op", "detect_anomaly", "div", "enable_grad", "equal", "exp",
    "getitem", "grad", "greater", "greater_equal", "hessian", "hvp", "identity", "is_grad_enabled",
    "jacobian", "jvp", "keep_freed_memory", "less", "less_equal", "log", "log_softmax",
    "make_program", "matmul", "max", "mean", "mul", "neg", "no_grad", "not_equal",
    "numerical_grad", "power", "primitive", "registry", "relu", "render", "reshape", "scatter_add",
    "scope", "sigmoid", "softmax", "softmax_cross_entropy", "stop_gradient", "sub", "sum", "tanh",
    "to_dot", "to_dot_backward", "to_dot_program", "toposort", "trace", "transpose", "tree_map",
    "unbroadcast", "value_and_grad", "vjp", "where",
]
