"""Which ONNX rule writes which primitive: :data:`RULES` (the families' tables, merged),
:data:`NOT_MAPPED` (the ops ONNX cannot express, with the reason), and :func:`onnx_rule_for`."""

from __future__ import annotations

from tinygraph.onnx_export.graph import Rule
from tinygraph.onnx_export.rules_elementwise import RULES as ELEMENTWISE_RULES
from tinygraph.onnx_export.rules_indexing import RULES as INDEXING_RULES
from tinygraph.onnx_export.rules_linalg import RULES as LINALG_RULES
from tinygraph.onnx_export.rules_losses import RULES as LOSSES_RULES
from tinygraph.onnx_export.rules_networks import RULES as NETWORKS_RULES
from tinygraph.onnx_export.rules_reductions import RULES as REDUCTIONS_RULES
from tinygraph.onnx_export.rules_shape import RULES as SHAPE_RULES
from tinygraph.primitive import REGISTRY, Primitive


def _merged(*tables: dict[str, Rule]) -> dict[str, Rule]:
    """One table of the families' tables; an op in two of them is a mistake, refused at import."""
    merged: dict[str, Rule] = {}
    for table in tables:
        repeated = set(merged) & set(table)
        if repeated:
            raise RuntimeError(f"ONNX rules given twice: {sorted(repeated)}")
        merged.update(table)
    return merged


RULES: dict[str, Rule] = _merged(ELEMENTWISE_RULES, REDUCTIONS_RULES, SHAPE_RULES, INDEXING_RULES,
                                 LINALG_RULES, NETWORKS_RULES, LOSSES_RULES)

# Ops that have no ONNX mapping, each with the reason. Every registered op is in RULES or here
# (tests/test_onnx.py checks it, so a new op fails the suite until it is decided).
NOT_MAPPED: dict[str, str] = {
    "inv": "ONNX has no matrix inverse operator (onnxruntime's Inverse is a contrib op)",
    "solve": "ONNX has no linear-solve operator",
    "logabsdet": "ONNX has no slogdet; log|Det(a)| would overflow or underflow where slogdet "
                 "does not",
    "dropout_mask": "it draws random numbers; export the network with training=False",
    "argpartition": "NumPy orders the other elements as its selection algorithm leaves them",
}

# Unregistered ops of tinygraph's that the table covers (registered ops are matched by identity:
# a user's op never gets a built-in rule by sharing its name)
_UNREGISTERED = {"stop_gradient", "argsort", "softmax_minus_targets", "max_pool2d_mask"}


def _from_tinygraph(prim: Primitive) -> bool:
    return (prim.module or "").startswith("tinygraph.")


def onnx_rule_for(prim: Primitive) -> Rule | None:
    """The ONNX rule of ``prim``: its own (``@prim.defonnx``), else the table's when ``prim`` is
    tinygraph's op of that name (not a user's op named alike), else None."""
    if prim.onnx_rule is not None:
        return prim.onnx_rule
    builtin = REGISTRY.get(prim.name) is prim or (prim.name in _UNREGISTERED
                                                  and _from_tinygraph(prim))
    return RULES.get(prim.name) if builtin else None


def unmapped_reason(prim: Primitive) -> str | None:
    """Why tinygraph's op ``prim`` has no ONNX rule (from NOT_MAPPED); None for a user's op."""
    return NOT_MAPPED.get(prim.name) if _from_tinygraph(prim) else None
