"""tinygraph: a small, functional reverse-mode autodiff framework on NumPy.

Networks are plain expressions over :class:`Tensor`; every op records a node; gradients come from
walking the graph in reverse, each node applying its own hand-derived backward rule.
"""

from tinygraph import linalg, ops

# NumPy's names on Tensors; loaded with the package, it also makes every op take a (nested) list
# holding Tensors as one recorded Tensor (it registers its ``array`` with tinygraph.primitive).
from tinygraph import numpy as _numpy
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
from tinygraph.onnx_export import OnnxExportError, export_onnx  # (onnx loads only to export)
from tinygraph.ops import *  # noqa: F403 - every op family's public names
from tinygraph.ops import reduce_max as max  # noqa: A004 - tg.max, as users expect
from tinygraph.ops import reduce_min as min  # noqa: A004
from tinygraph.ops import reduce_sum as sum  # noqa: A004
from tinygraph.ops.dispatch import look_up_ops_in as _look_up_ops_in
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

# NumPy dispatch (np.sin(t), tinygraph.numpy's names) finds the ops among this package's names;
# the dispatch module stands below the package, so the package hands them down.
_look_up_ops_in("", globals())
_look_up_ops_in("linalg", vars(linalg))
del _look_up_ops_in, _numpy

# The ops (tg.add, tg.sin, ...) come from the families' own __all__ lists.
__all__ = ops.__all__ + [
    "GradCheckReport", "GradientCheckError", "GraphTooLargeError", "HigherOrderError",
    "OnnxExportError", "Primitive", "export_onnx", "linalg",
    "Program", "RandomDraw", "Tensor", "Traced", "TraceError", "backward", "check_grads",
    "check_op", "detect_anomaly", "enable_grad", "grad", "hessian", "hvp", "is_grad_enabled",
    "jacobian", "jvp", "keep_freed_memory", "make_program", "max", "mean", "min", "no_grad",
    "numerical_grad", "primitive", "registry", "render", "scope", "softmax", "sum", "to_dot",
    "to_dot_backward", "to_dot_program", "toposort", "trace", "tree_map", "value_and_grad", "vjp",
]
