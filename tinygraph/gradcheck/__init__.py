"""Gradient checks: every backward rule proven against finite differences.

- :mod:`tinygraph.gradcheck.core`: ``numerical_grad``, ``check_grads`` (``full``: central
  differences ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps`` per element; ``directional``:
  ``<grad f, v>`` against the difference quotient along random ``v``) and ``check_op``.
- :mod:`tinygraph.gradcheck.suite`: the suite that walks the op registry and runs model checks.
- :mod:`tinygraph.gradcheck.report`: its results (``CheckResult``, ``SuiteReport``) as tables,
  reproduction reports and JSON.
- :mod:`tinygraph.gradcheck.strategies`: hypothesis strategies (op inputs, float arrays,
  broadcastable shapes), with which the suite shrinks a failing input; it needs hypothesis, so
  nothing here imports it up front (users have it as :mod:`tinygraph.testing`).
- ``python -m tinygraph.gradcheck`` (``tinygraph-gradcheck``): the suite as a command.
"""

from tinygraph.gradcheck.core import (
    ArgumentCheck,
    GradCheckReport,
    GradientCheckError,
    Mismatch,
    check_grads,
    check_op,
    differentiable_argnums,
    numerical_grad,
)
from tinygraph.gradcheck.report import CheckResult, Failure, SuiteReport, format_table
from tinygraph.gradcheck.suite import (
    MODEL_GROUP,
    ModelCheck,
    SuiteError,
    available_models,
    check_model,
    check_op_examples,
    example_seed,
    load_model,
    model_check,
    run_suite,
)

__all__ = [
    "MODEL_GROUP", "ArgumentCheck", "CheckResult", "Failure", "GradCheckReport",
    "GradientCheckError", "Mismatch", "ModelCheck", "SuiteError", "SuiteReport",
    "available_models", "check_grads", "check_model", "check_op", "check_op_examples",
    "differentiable_argnums", "example_seed", "format_table", "load_model", "model_check",
    "numerical_grad", "run_suite",
]
