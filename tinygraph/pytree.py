"""Pytrees: nested dicts, lists and tuples whose leaves are arrays, Tensors or numbers.

``flatten`` lists the leaves in a fixed order (dict keys in insertion order) with a path for each
(``['W1']``, ``[0][2]``) for messages; ``unflatten`` rebuilds the same structure around new leaves.
``None`` is an empty subtree, as in JAX.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TreeDef = Any  # a nested description of the structure; opaque to callers


_LEAF = ("leaf",)
_CONTAINERS = (dict, list, tuple)


def flatten(tree: Any) -> tuple[list[Any], TreeDef, list[str]]:
    """(leaves, structure, paths) of ``tree`` (recursive: pytrees are shallow, graphs are not)."""
    if type(tree) is dict and not any(  # the common case, a flat dict of arrays: no recursion
            v is None or isinstance(v, _CONTAINERS) for v in tree.values()):
        keys = tuple(tree)
        return (list(tree.values()), ("dict", keys, (_LEAF,) * len(keys)),
                [f"[{k!r}]" for k in keys])
    leaves: list[Any] = []
    paths: list[str] = []
    treedef = _walk(tree, "", leaves, paths)
    return leaves, treedef, paths


# Module-level recursion, not nested functions: a nested recursive function refers to itself
# through its closure, a reference cycle that kept every flattened leaf (a trace's whole example
# graph) alive until the cyclic garbage collector ran.
def _walk(node: Any, path: str, leaves: list[Any], paths: list[str]) -> TreeDef:
    if isinstance(node, dict):
        return ("dict", tuple(node), tuple(_walk(v, f"{path}[{k!r}]", leaves, paths)
                                           for k, v in node.items()))
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return ("namedtuple", type(node),
                tuple(_walk(v, f"{path}.{f}", leaves, paths)
                      for f, v in zip(node._fields, node)))
    if isinstance(node, (list, tuple)):
        kind = "list" if isinstance(node, list) else "tuple"
        return (kind, len(node), tuple(_walk(v, f"{path}[{i}]", leaves, paths)
                                       for i, v in enumerate(node)))
    if node is None:
        return ("none",)
    leaves.append(node)
    paths.append(path)
    return _LEAF


def unflatten(treedef: TreeDef, leaves: list[Any]) -> Any:
    """Rebuild the structure ``treedef`` with ``leaves`` in flatten's order."""
    return _build(treedef, iter(leaves))


def _build(node: TreeDef, position: Any) -> Any:
    kind = node[0]
    if kind == "leaf":
        return next(position)
    if kind == "none":
        return None
    if kind == "dict":
        return {k: _build(child, position) for k, child in zip(node[1], node[2])}
    if kind == "namedtuple":
        return node[1](*(_build(child, position) for child in node[2]))
    children = [_build(child, position) for child in node[2]]
    return children if kind == "list" else tuple(children)


def tree_map(function: Callable[..., Any], tree: Any, *others: Any) -> Any:
    """Apply ``function`` leaf by leaf to ``tree`` (and trees of the same structure)."""
    leaves, treedef, _ = flatten(tree)
    other_leaves = [flatten(other)[0] for other in others]
    return unflatten(treedef, [function(*parts) for parts in zip(leaves, *other_leaves)])
