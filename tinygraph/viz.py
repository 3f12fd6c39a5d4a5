"""Drawing graphs with Graphviz: the forward graph, its gradients, and the reverse pass.

``to_dot(output)`` returns a ``graphviz.Digraph`` of everything that produced ``output``: one node
per Tensor (name, shape, dtype) and one per op (name and parameters), edges in data-flow order.
Parameters (leaves that require grad) are blue, constants and inputs grey, the output has a bold
outline, and nodes made inside ``tg.scope(...)`` sit in labelled boxes. ``render`` writes a
picture (or, without Graphviz's ``dot`` program, the DOT source and how to get pictures).

This module knows the engine only through the Tensor's public attributes (``op``, ``inputs``,
``params``, ``scope``, ``grad``) and walks the graph with an explicit stack, so graphs of any
depth draw without recursion. ``graphviz`` is imported when a drawing is asked for.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tinygraph.autodiff import toposort
from tinygraph.files import write_atomic
from tinygraph.tensor import Tensor

PARAMETER = {"style": "filled", "fillcolor": "#cfe2ff", "color": "#3d6fb4"}
CONSTANT = {"style": "filled", "fillcolor": "#eeeeee", "color": "#888888"}
INTERMEDIATE = {"style": "filled", "fillcolor": "white", "color": "#555555"}
OP = {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff3cd", "color": "#b08900"}
RULE = {"shape": "box", "style": "rounded,filled", "fillcolor": "#f8d7da", "color": "#a4303f"}
CLUSTER = {"style": "rounded,dashed", "color": "#7a7a7a", "fontname": "Helvetica"}
BAD = "#d62728"
INSTALL_HINT = ("install Graphviz to get pictures: `apt-get install graphviz` (Debian/Ubuntu), "
                "`brew install graphviz` (macOS) or `conda install graphviz`; then run "
                "`dot -T{fmt} {dot} -o {out}`")


class GraphTooLargeError(ValueError):
    """The graph has more nodes than can be drawn usefully; the message says what to do."""


def walk(output: Tensor) -> list[Tensor]:
    """Every Tensor ``output`` was computed from, inputs before their consumers (iterative)."""
    return toposort(output, every=True)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "scalar" if shape == () else "×".join(str(s) for s in shape)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _summary(values: np.ndarray) -> tuple[str, bool]:
    """A one-line summary of an array (norm, min, max) and whether it holds NaN or inf."""
    finite = np.isfinite(values)
    if not finite.all():
        nans, infs = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        return f"{nans} NaN, {infs} inf!", True
    if values.size == 0:
        return "empty", False
    return (f"‖·‖ {_number(float(np.linalg.norm(values)))}  "
            f"[{_number(float(values.min()))}, {_number(float(values.max()))}]"), False


def _values_text(values: np.ndarray) -> str:
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    return ", ".join(_number(float(v)) for v in flat)


def _param_text(params: dict) -> str:
    parts = []
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            value = f"array{_shape_text(value.shape)}" if value.size > 4 else value.tolist()
        elif isinstance(value, tuple) and any(isinstance(v, np.ndarray) for v in value):
            value = "(" + ", ".join(f"array{_shape_text(v.shape)}" if isinstance(v, np.ndarray)
                                    else str(v) for v in value) + ")"
        parts.append(f"{key}={value}")
    return "\\n".join(parts)


def _escape(text: str) -> str:
    """Quote characters that DOT would read as escapes, but keep our own line breaks."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\\\\n", "\\n")


class _Drawing:
    """Collects nodes (each with its scope) and edges, then emits nested clusters."""

    def __init__(self) -> None:
        self.nodes: list[tuple[str, str, dict, tuple[str, ...]]] = []
        self.edges: list[tuple[str, str, dict]] = []

    def node(self, key: str, label: str, attrs: dict, scope: tuple[str, ...] = ()) -> None:
        self.nodes.append((key, label, attrs, scope))

    def edge(self, tail: str, head: str, **attrs: str) -> None:
        self.edges.append((tail, head, attrs))

    def to_digraph(self, title: str, rankdir: str) -> Any:
        import graphviz

        graph = graphviz.Digraph(name=title, graph_attr={"rankdir": rankdir, "fontname":
                                 "Helvetica", "label": title, "labelloc": "t"},
                                 node_attr={"fontname": "Helvetica", "fontsize": "11"},
                                 edge_attr={"color": "#555555", "arrowsize": "0.7",
                                            "fontname": "Helvetica", "fontsize": "9",
                                            "fontcolor": "#777777"})
        by_scope: dict[tuple[str, ...], list[tuple[str, str, dict]]] = {}
        for key, label, attrs, scope in self.nodes:
            by_scope.setdefault(scope, []).append((key, label, attrs))
        children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for scope in list(by_scope):
            for depth in range(len(scope), 0, -1):  # make sure every ancestor scope exists
                parent, child = scope[:depth - 1], scope[:depth]
                siblings = children.setdefault(parent, [])
                if child not in siblings:
                    siblings.append(child)
        # The body is written here rather than node by node through the graphviz package,
        # whose per-call quoting makes a 100,000-node drawing take ~15 s instead of ~1 s.
        # Clusters nest as deep as the scopes do: _emit recurses over scopes (a handful of
        # levels), never over the graph's nodes.
        self._emit(graph.body, (), by_scope, children, "\t")
        graph.body.extend(f"\t{tail} -> {head}{_attr_list(attrs)}\n"
                          for tail, head, attrs in self.edges)
        return graph

    def _emit(self, body: list[str], scope: tuple[str, ...], by_scope: dict, children: dict,
              indent: str) -> None:
        body.extend(f"{indent}{key}{_attr_list({'label': label, **attrs})}\n"
                    for key, label, attrs in by_scope.get(scope, []))
        for child in children.get(scope, []):
            name = _id("cluster_" + "/".join(child))
            body.append(f"{indent}subgraph {name} {{\n")
            cluster = {"label": child[-1], **CLUSTER}
            body.append(f"{indent}\t{_attr_list(cluster, bare=True)}\n")
            self._emit(body, child, by_scope, children, indent + "\t")
            body.append(f"{indent}}}\n")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")


def _id(text: str) -> str:
    """A DOT identifier: bare when DOT allows it, else double-quoted with escapes."""
    return text if _IDENTIFIER.fullmatch(text) else f'"{_escape(text)}"'


def _attr_list(attrs: dict, bare: bool = False) -> str:
    """``[k=v ...]`` (or just ``k=v ...`` for graph attributes inside a subgraph)."""
    if not attrs:
        return ""
    inner = " ".join(f"{key}={_id(str(value))}" for key, value in attrs.items())
    return inner if bare else f" [{inner}]"


def _tensor_label(tensor: Tensor, is_output: bool, show_grads: bool, show_values: bool,
                  value_limit: int) -> tuple[str, bool]:
    title = tensor.name or ("output" if is_output else "")
    lines = [title] if title else []
    lines.append(f"{_shape_text(tensor.shape)} {tensor.dtype}")
    bad = False
    if show_values and tensor.size <= value_limit:
        lines.append(f"data {_values_text(tensor.data)}")
    if show_grads and tensor.grad is not None:
        if show_values and tensor.size <= value_limit:
            lines.append(f"grad {_values_text(tensor.grad)}")
        else:
            text, bad = _summary(np.asarray(tensor.grad))
            lines.append(f"grad {text}")
    return "\\n".join(lines), bad


def to_dot(output: Tensor, *, show_grads: bool = False, show_values: bool = False,
           value_limit: int = 8, collapse: bool = False, expand: Iterable[str] = (),
           backward: bool = False, max_nodes: int = 2000, rankdir: str = "TB",
           title: str | None = None) -> Any:
    """A ``graphviz.Digraph`` of everything that produced ``output``.

    - ``show_grads``: each tensor's gradient summary (shape, norm, min/max; NaN/inf in red).
      Intermediate tensors have gradients only after ``backward(retain_grads=True)``.
    - ``show_values``: the values of arrays with at most ``value_limit`` elements.
    - ``collapse``: one box per top-level scope, except the scopes named in ``expand``.
    - ``backward``: draw the reverse pass instead: each op's backward rule as a node, from the
      output's gradient back to the leaves' (see :func:`to_dot_backward`).
    - ``max_nodes``: graphs with more drawn nodes raise :class:`GraphTooLargeError`.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(output).__name__}")
    if backward:
        return to_dot_backward(output, max_nodes=max_nodes, rankdir=rankdir, title=title)
    tensors = walk(output)
    drawing = _Drawing()
    expanded = set(expand)
    collapsed = _collapsed_scopes(tensors, expanded) if collapse else set()
    box_of = _boxes(tensors, collapsed)
    keys = {id(t): f"t{number}" for number, t in enumerate(reversed(tensors))}
    box_members: dict[str, list[str]] = {}
    constants = 0
    for tensor in tensors:
        key = keys[id(tensor)]
        box = box_of.get(id(tensor))
        if tensor.op is not None:
            op_key = f"op{key}"
            if box is None:
                drawing.node(op_key, _op_label(tensor), OP, tensor.scope)
            else:
                box_members.setdefault(box, []).append(tensor.op.name)
            for position, parent in enumerate(tensor.inputs):
                if isinstance(parent, Tensor):
                    tail, tail_box = keys[id(parent)], box_of.get(id(parent))
                elif np.size(parent) == 1:
                    continue  # a scalar constant is shown inside the op's label
                else:
                    constants += 1
                    tail, tail_box = f"c{constants}", None
                    drawing.node(tail, _constant_label(parent), CONSTANT | {"shape": "note"},
                                 tensor.scope if box is None else ())
                _link(drawing, tail_box or tail, box or op_key,
                      {"label": str(position)} if len(tensor.inputs) > 1 and box is None
                      else {})
            if box is None:
                drawing.edge(op_key, key)
        if box is not None and tensor is not output:
            continue
        label, bad = _tensor_label(tensor, tensor is output, show_grads, show_values,
                                   value_limit)
        attrs = dict(PARAMETER if tensor.is_leaf and tensor.requires_grad
                     else CONSTANT if tensor.is_leaf else INTERMEDIATE)
        attrs["shape"] = "ellipse"
        if tensor is output:
            attrs |= {"penwidth": "2.5", "color": "black"}
        if bad:
            attrs |= {"color": BAD, "fontcolor": BAD, "penwidth": "2.5"}
        drawing.node(key, label, attrs, tensor.scope if box is None else ())
        if box is not None:  # the output itself sits in a collapsed scope
            _link(drawing, box, key, {})
    scope_of_box = {box: t.scope[0] for t in tensors if (box := box_of.get(id(t)))}
    for box, ops in box_members.items():
        names = sorted(set(ops), key=ops.index)
        count = f"{len(ops)} op" + ("s" if len(ops) != 1 else "")
        drawing.node(box, f"{scope_of_box[box]}\\n{count}: {', '.join(names)}",
                     OP | {"style": "rounded,filled,bold", "fillcolor": "#ffe8a3"})
    _check_size(len(drawing.nodes), max_nodes)
    return drawing.to_digraph(title or _title(output), rankdir)


def _link(drawing: _Drawing, tail: str, head: str, attrs: dict) -> None:
    if tail == head:
        return
    if (tail.startswith("box") or head.startswith("box")) and any(
            e[0] == tail and e[1] == head for e in drawing.edges):
        return
    drawing.edge(tail, head, **attrs)


def _collapsed_scopes(tensors: list[Tensor], expanded: set[str]) -> set[str]:
    return {t.scope[0] for t in tensors if t.scope and t.scope[0] not in expanded}


def _boxes(tensors: list[Tensor], collapsed: set[str]) -> dict[int, str]:
    """Which collapsed-scope box each non-leaf tensor (and its op) is drawn inside.

    Box keys are ``box<n>`` (a colon would read as a DOT port); the scope name is the label.
    """
    keys = {name: f"box{number}" for number, name in enumerate(sorted(collapsed))}
    return {id(t): keys[t.scope[0]] for t in tensors
            if t.scope and t.scope[0] in collapsed and t.op is not None}


def _op_label(tensor: Tensor) -> str:
    """The op's name, its parameters, and its scalar constant inputs (``[1] = 2``)."""
    lines = [tensor.op.name]
    params = _param_text(tensor.params)
    if params:
        lines.append(params)
    lines += [f"[{position}] = {_constant_label(value)}"
              for position, value in enumerate(tensor.inputs)
              if not isinstance(value, Tensor) and np.size(value) == 1]
    return "\\n".join(lines)


def _constant_label(value: Any) -> str:
    array = np.asarray(value)
    if array.size == 1:
        return _number(float(array.reshape(()))) if array.dtype.kind in "fiub" else str(value)
    return f"{_shape_text(array.shape)} {array.dtype}"


def _title(output: Tensor) -> str:
    return output.name or f"graph of {output.op.name if output.op else 'a leaf'}"


def _check_size(count: int, limit: int) -> None:
    if count > limit:
        raise GraphTooLargeError(
            f"to_dot: the drawing would have {count} nodes, more than max_nodes={limit}; "
            "group the model with tg.scope(...) and pass collapse=True, or raise max_nodes"
        )


def to_dot_backward(output: Tensor, *, max_nodes: int = 2000, rankdir: str = "BT",
                    title: str | None = None) -> Any:
    """The reverse pass as a graph: gradient nodes and each op's backward rule between them.

    For every tensor that requires grad there is a node ∂/∂(tensor); for every op a node
    "vjp of op" that takes the gradient of the op's output and sends one cotangent to the
    gradient of each input that requires grad. A gradient fed by several rules is their sum (Σ).
    """
    tensors = toposort(output)  # the nodes that require grad: those the reverse pass visits
    drawing = _Drawing()
    keys = {id(t): f"g{number}" for number, t in enumerate(reversed(tensors))}
    fan_in: dict[int, int] = {}
    for tensor in tensors:
        for parent in tensor.inputs:
            if isinstance(parent, Tensor) and parent.requires_grad:
                fan_in[id(parent)] = fan_in.get(id(parent), 0) + 1
    for tensor in tensors:
        key = keys[id(tensor)]
        name = tensor.name or ("output" if tensor is output else
                               f"({tensor.op.name})" if tensor.op else "leaf")
        summed = " (Σ)" if fan_in.get(id(tensor), 0) > 1 else ""
        attrs = dict(PARAMETER if tensor.is_leaf else INTERMEDIATE) | {"shape": "ellipse"}
        if tensor is output:
            attrs |= {"penwidth": "2.5", "color": "black"}
        drawing.node(key, f"∂/∂ {name}{summed}\\n{_shape_text(tensor.shape)}", attrs,
                     tensor.scope)
        if tensor.op is None:
            continue
        rule_key = f"vjp{key}"
        drawing.node(rule_key, f"vjp of {_op_label(tensor)}", RULE, tensor.scope)
        drawing.edge(key, rule_key)
        for position, parent in enumerate(tensor.inputs):
            if isinstance(parent, Tensor) and parent.requires_grad:
                drawing.edge(rule_key, keys[id(parent)], label=f"input {position}")
    _check_size(len(drawing.nodes), max_nodes)
    return drawing.to_digraph(title or f"reverse pass of {_title(output)}", rankdir)


def render(output: Tensor | Any, path: str | os.PathLike[str], format: str = "svg",
           **options: Any) -> Path:
    """Draw ``output`` (a Tensor, or a Digraph from ``to_dot``) into ``path``; return the file.

    ``format`` is "svg", "png" or "pdf"; the suffix is added to ``path`` if missing. The DOT
    source is written beside it (``.dot``). Without Graphviz's ``dot`` program only the source
    is written, a note on stderr says how to install Graphviz, and its path is returned.
    Files appear complete or not at all (written to a temporary name, then renamed).
    """
    import graphviz

    if format not in ("svg", "png", "pdf"):
        raise ValueError(f"render: format must be 'svg', 'png' or 'pdf', not {format!r}")
    graph = to_dot(output, **options) if isinstance(output, Tensor) else output
    target = Path(path)
    if target.suffix.lower() in (".svg", ".png", ".pdf", ".dot"):
        target = target.with_suffix(f".{format}")  # graph.svg drawn as png is graph.png
    else:
        target = target.with_name(target.name + f".{format}")
    target.parent.mkdir(parents=True, exist_ok=True)
    dot_path = target.with_suffix(".dot")
    write_atomic(dot_path, graph.source.encode())
    if shutil.which("dot") is None:
        print(f"tinygraph.render: Graphviz's `dot` program was not found, so only the DOT "
              f"source was written to {dot_path}; "
              + INSTALL_HINT.format(fmt=format, dot=dot_path, out=target), file=sys.stderr)
        return dot_path
    try:
        picture = graph.pipe(format=format)
    except graphviz.ExecutableNotFound:  # pragma: no cover - dot vanished since the check
        return dot_path
    write_atomic(target, picture)
    return target


def svg(output: Tensor, **options: Any) -> str | None:
    """The drawing as SVG text, or None when Graphviz's ``dot`` is not installed."""
    if shutil.which("dot") is None:
        return None
    return to_dot(output, **options).pipe(format="svg").decode()
