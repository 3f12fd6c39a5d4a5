"""Drawing graphs with Graphviz: the forward graph, its gradients, and the reverse pass.

``to_dot(output)`` returns a ``graphviz.Digraph`` of everything that produced ``output``: one node
per Tensor (name, shape, dtype) and one per op (name and parameters), edges in data-flow order.
Parameters (leaves that require grad) are blue, constants and inputs grey, the output has a bold
outline, and nodes made inside ``tg.scope(...)`` sit in labelled boxes. Ops recorded by a reverse
pass sit in a coloured box per pass ("backward pass 1", ...). ``to_dot_backward(output)`` records
``output``'s reverse pass and draws it op by op next to the forward graph, the leaves' gradients
in green. ``render`` writes a picture (or, without Graphviz's ``dot`` program, the DOT source and
how to get pictures).

This module knows the engine only through the Tensor's public attributes (``op``, ``inputs``,
``params``, ``scope``, ``grad``) and walks the graph with an explicit stack, so graphs of any
depth draw without recursion. ``graphviz`` is imported when a drawing is asked for.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tinygraph.autodiff import reverse_pass, seed_for, toposort
from tinygraph.files import write_atomic
from tinygraph.state import STATE
from tinygraph.state import scope as in_scope
from tinygraph.tensor import Released, Tensor

PARAMETER = {"style": "filled", "fillcolor": "#cfe2ff", "color": "#3d6fb4"}
CONSTANT = {"style": "filled", "fillcolor": "#eeeeee", "color": "#888888"}
INTERMEDIATE = {"style": "filled", "fillcolor": "white", "color": "#555555"}
OP = {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff3cd", "color": "#b08900"}
# Ops of recorded reverse passes: (fill, border) of pass 1, 2, ... (the colours repeat after 4).
PASS_COLOURS = (("#f8d7da", "#a4303f"), ("#e2daf5", "#5b3f9e"), ("#d3eef4", "#1c6c7d"),
                ("#fde2cc", "#a8501a"))
GRADIENT = {"style": "filled,bold", "fillcolor": "#d1e7dd", "color": "#1e7b45", "penwidth": "2.5"}
SEED = {"style": "filled", "fillcolor": "#d1e7dd", "color": "#1e7b45"}
CLUSTER = {"style": "rounded,dashed", "color": "#7a7a7a", "fontname": "Helvetica"}
BAD = "#d62728"
_GRAD_PASS = re.compile(r"grad pass (\d+)")  # the scope of a recorded reverse pass
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
    if type(values) is Released:
        return "(freed by a reverse pass: no rule reads it)"
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
    return "\n".join(parts)


# Labels are plain text with "\n" between lines until they are written out. Names come from
# users (tensors, scopes, ops, outputs, pytree keys), so nothing in them may reach the DOT text
# unescaped: a keyword, a quote, a trailing backslash or "<b>" would break the file or add
# attributes. Characters that neither DOT nor SVG (XML 1.0) can carry are shown as Python escapes.
_UNSAFE = re.compile(r"\r\n?|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})
_LINE_WIDTH = 160  # characters; longer label lines (only from users' names) are broken
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")


def _visible(match: re.Match) -> str:
    found = match.group()
    return "\n" if found[0] == "\r" else ascii(found)[1:-1]  # "\x00", "\ud800"


def _clean(text: str) -> str:
    """``text`` with each line end as one ``"\\n"`` and other control characters and lone
    surrogates written as Python escapes (``\\x00``), so that DOT, SVG and UTF-8 carry it."""
    return _UNSAFE.sub(_visible, text)


def _quote(text: str) -> str:
    """A DOT double-quoted string that a label shows as ``text`` exactly.

    In a label (an escString) a backslash starts an escape (``\\n``, ``\\G``, ...) and ``\\\\``
    is one backslash, so backslashes are doubled; quotes become ``\\"``; ``&`` becomes
    ``&amp;``; a line end becomes ``\\n``. A doubled trailing backslash can no longer swallow
    the closing quote, and quoted strings are never HTML-like labels, so ``<b>`` is text.
    """
    text = _clean(text)
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if '"' in text:
        text = text.replace('"', '\\"')
    if "&" in text:  # dot decodes entities (&amp; &#45;) even in plain labels
        text = text.replace("&", "&amp;")
    return '"' + text.replace("\n", "\\n") + '"'


def _wrap(text: str) -> str:
    """``text`` with lines longer than ``_LINE_WIDTH`` broken (no character lost): dot refuses
    a node wider than 65,535 points, which a label line of ~10,000 characters is."""
    if len(text) <= _LINE_WIDTH:
        return text
    return "\n".join(line[start:start + _LINE_WIDTH] for line in text.split("\n")
                     for start in range(0, max(len(line), 1), _LINE_WIDTH))


def _id(text: str) -> str:
    """A DOT ID: bare when the DOT grammar allows it (an ASCII name or a number that is not a
    keyword, in any case), else a quoted string (:func:`_quote`)."""
    if _IDENTIFIER.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return _quote(text)


def _attr_list(attrs: dict, bare: bool = False) -> str:
    """``[k=v ...]`` (or just ``k=v ...`` for graph attributes inside a subgraph)."""
    if not attrs:
        return ""
    inner = " ".join(f"{key}={_id(_wrap(str(value))) if key == 'label' else _value(value)}"
                     for key, value in attrs.items())
    return inner if bare else f" [{inner}]"


@functools.lru_cache(maxsize=1024)
def _value(value: Any) -> str:
    """An attribute value other than a label (colours, styles: a few, repeated)."""
    return _id(str(value))


def _file_stem(title: str) -> str:
    """A safe file name from a title, for ``Digraph.render()`` called without a filename."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", title).strip("._")[:80] or "graph"


class _Drawing:
    """Collects nodes (each with its scope) and edges, then emits nested clusters."""

    def __init__(self, cluster_attrs: dict[str, dict] | None = None) -> None:
        self.nodes: list[tuple[str, str, dict, tuple[str, ...]]] = []
        self.edges: list[tuple[str, str, dict]] = []
        self.cluster_attrs = cluster_attrs or {}  # by scope name: a box's look, if not CLUSTER

    def node(self, key: str, label: str, attrs: dict, scope: tuple[str, ...] = ()) -> None:
        self.nodes.append((key, label, attrs, scope))

    def edge(self, tail: str, head: str, **attrs: str) -> None:
        self.edges.append((tail, head, attrs))

    def to_digraph(self, title: str, rankdir: str) -> Any:
        import graphviz

        # The title is user text: the graphviz package would pass "<b>" on as an HTML-like
        # label and a trailing backslash unescaped, so every attribute is written here; the
        # graph's name is given to the package escaped (graphviz.escape doubles backslashes,
        # turns off HTML and leaves the quoting of `"` and keywords to the package).
        title = _clean(str(title))
        name = graphviz.escape(title.replace("\n", " ")) if title else None
        graph = graphviz.Digraph(name=name,
                                 filename=_file_stem(title) + ".gv",
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
        graph_attrs = {"rankdir": rankdir, "fontname": "Helvetica", "label": title,
                       "labelloc": "t"}
        graph.body.append(f"\tgraph{_attr_list(graph_attrs)}\n")
        self._emit(graph.body, (), by_scope, children, "\t", set())
        graph.body.extend(f"\t{tail} -> {head}{_attr_list(attrs)}\n"
                          for tail, head, attrs in self.edges)
        return graph

    def _emit(self, body: list[str], scope: tuple[str, ...], by_scope: dict, children: dict,
              indent: str, taken: set[str]) -> None:
        body.extend(f"{indent}{key}{_attr_list({'label': label, **attrs})}\n"
                    for key, label, attrs in by_scope.get(scope, []))
        for child in children.get(scope, []):
            # Scopes ("a/b",) and ("a", "b") would share a name; cluster names must be unique
            # (dot -Tjson warns of duplicates): the later one gets a number.
            name = base = "cluster_" + "/".join(child)
            number = 1
            while name in taken:
                number += 1
                name = f"{base}#{number}"
            taken.add(name)
            body.append(f"{indent}subgraph {_id(name)} {{\n")
            cluster = {"label": child[-1], **CLUSTER, **self.cluster_attrs.get(child[-1], {})}
            body.append(f"{indent}\t{_attr_list(cluster, bare=True)}\n")
            self._emit(body, child, by_scope, children, indent + "\t", taken)
            body.append(f"{indent}}}\n")



def _tensor_label(tensor: Tensor, title: str, show_grads: bool, show_values: bool,
                  value_limit: int) -> tuple[str, bool]:
    """``title`` (may be empty), shape and dtype, and optionally values and gradient."""
    lines = [str(title)] if title else []
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
    return "\n".join(lines), bad


def to_dot(output: Tensor, *, show_grads: bool = False, show_values: bool = False,
           value_limit: int = 8, collapse: bool = False, expand: Iterable[str] = (),
           backward: bool = False, max_nodes: int = 2000, rankdir: str = "TB",
           title: str | None = None) -> Any:
    """A ``graphviz.Digraph`` of everything that produced ``output``.

    Every tensor ``output`` depends on is drawn, including inputs that do not require grad
    (data, masks, constants). Ops made by a recorded reverse pass (``backward(create_graph=True)``,
    a transform) sit in a coloured box per pass, labelled "backward pass 1", "backward pass 2",
    ... in the order the passes ran (numbered per drawing; the engine's scope is "grad pass N").

    - ``show_grads``: each tensor's gradient summary (shape, norm, min/max; NaN/inf in red).
      Intermediate tensors have gradients only after ``backward(retain_grads=True)``.
    - ``show_values``: the values of arrays with at most ``value_limit`` elements.
    - ``collapse``: one box per top-level scope, except the scopes named in ``expand``.
    - ``backward``: draw ``output``'s reverse pass too, op by op (see :func:`to_dot_backward`).
    - ``max_nodes``: graphs with more drawn nodes raise :class:`GraphTooLargeError`.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(output).__name__}")
    if backward:
        return to_dot_backward(output, show_values=show_values, value_limit=value_limit,
                               collapse=collapse, expand=expand, max_nodes=max_nodes,
                               rankdir=rankdir, title=title)
    return _draw(walk(output), output, show_grads=show_grads, show_values=show_values,
                 value_limit=value_limit, collapse=collapse, expand=expand,
                 max_nodes=max_nodes, title=title or _title(output), rankdir=rankdir)


class _Scopes:
    """The scope names a drawing shows, and the colours of recorded reverse passes.

    A recorded pass runs in the scope "grad pass N", N counted process-wide; a drawing calls
    the passes it contains "backward pass 1", "backward pass 2", ... in the order they ran.
    """

    def __init__(self, tensors: list[Tensor]) -> None:
        numbers = sorted({int(found.group(1)) for scope in {t.scope for t in tensors}
                          for name in scope if (found := _GRAD_PASS.fullmatch(name))})
        self.rename = {f"grad pass {n}": f"backward pass {k}" for k, n in enumerate(numbers, 1)}
        self.colours = {f"backward pass {k}": PASS_COLOURS[(k - 1) % len(PASS_COLOURS)]
                        for k in range(1, len(numbers) + 1)}
        self._drawn: dict[tuple[str, ...], tuple[str, ...]] = {}

    def of(self, tensor: Tensor) -> tuple[str, ...]:
        """The scope ``tensor`` is drawn in (its own, with passes renamed)."""
        scope = tensor.scope
        if not scope or not self.rename:
            return scope
        drawn = self._drawn.get(scope)
        if drawn is None:
            drawn = self._drawn[scope] = tuple(self.rename.get(name, name) for name in scope)
        return drawn

    def colour(self, scope: tuple[str, ...]) -> tuple[str, str] | None:
        """(fill, border) of the innermost pass ``scope`` lies in, or None outside passes."""
        for name in reversed(scope):
            if name in self.colours:
                return self.colours[name]
        return None

    def cluster_attrs(self) -> dict[str, dict]:
        """The look of each pass's box: solid, in the pass's colour."""
        return {name: {"style": "rounded", "color": border, "fontcolor": border,
                       "penwidth": "1.5"} for name, (_, border) in self.colours.items()}


def _draw(tensors: list[Tensor], output: Tensor, *, titles: dict[int, str] | None = None,
          styles: dict[int, dict] | None = None, kept: Collection[int] = (),
          show_grads: bool = False, show_values: bool = False, value_limit: int = 8,
          collapse: bool = False, expand: Iterable[str] = (), max_nodes: int = 2000,
          title: str, rankdir: str) -> Any:
    """Draw ``tensors`` (inputs before consumers) and the ops that made them.

    ``titles`` replace the first line of some tensors' labels, ``styles`` override their look
    (both by id); tensors in ``kept`` stay visible even inside a collapsed scope, as ``output``
    does.
    """
    titles = titles or {}
    styles = styles or {}
    scopes = _Scopes(tensors)
    drawing = _Drawing(scopes.cluster_attrs())
    expanded = set(expand)
    collapsed = _collapsed_scopes(tensors, expanded, scopes) if collapse else set()
    box_of = _boxes(tensors, collapsed, scopes)
    keys = {id(t): f"t{number}" for number, t in enumerate(reversed(tensors))}
    box_members: dict[str, list[str]] = {}
    constants = 0
    for tensor in tensors:
        key = keys[id(tensor)]
        box = box_of.get(id(tensor))
        scope = scopes.of(tensor)
        if tensor.op is not None:
            op_key = f"op{key}"
            if box is None:
                colour = scopes.colour(scope)
                op_attrs = OP if colour is None else OP | {"fillcolor": colour[0],
                                                           "color": colour[1]}
                drawing.node(op_key, _op_label(tensor), op_attrs, scope)
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
                                 scope if box is None else ())
                _link(drawing, tail_box or tail, box or op_key,
                      {"label": str(position)} if len(tensor.inputs) > 1 and box is None
                      else {})
            if box is None:
                drawing.edge(op_key, key)
        visible = tensor is output or id(tensor) in kept
        if box is not None and not visible:
            continue
        name = titles.get(id(tensor)) or tensor.name or ("output" if tensor is output else "")
        label, bad = _tensor_label(tensor, name, show_grads, show_values, value_limit)
        attrs = dict(PARAMETER if tensor.is_leaf and tensor.requires_grad
                     else CONSTANT if tensor.is_leaf else INTERMEDIATE)
        attrs["shape"] = "ellipse"
        attrs |= styles.get(id(tensor), {})
        if tensor is output:
            attrs |= {"penwidth": "2.5", "color": "black"}
        if bad:
            attrs |= {"color": BAD, "fontcolor": BAD, "penwidth": "2.5"}
        drawing.node(key, label, attrs, scope if box is None else ())
        if box is not None:  # a tensor that stays visible sits in a collapsed scope
            _link(drawing, box, key, {})
    scope_of_box = {box: scopes.of(t)[0] for t in tensors if (box := box_of.get(id(t)))}
    for box, ops in box_members.items():
        names = sorted(set(ops), key=ops.index)
        count = f"{len(ops)} op" + ("s" if len(ops) != 1 else "")
        colour = scopes.colour((scope_of_box[box],))
        box_attrs = OP | {"style": "rounded,filled,bold", "fillcolor": "#ffe8a3"}
        if colour is not None:
            box_attrs |= {"fillcolor": colour[0], "color": colour[1]}
        drawing.node(box, f"{scope_of_box[box]}\n{count}: {', '.join(names)}", box_attrs)
    _check_size(len(drawing.nodes), max_nodes)
    return drawing.to_digraph(title, rankdir)


def _link(drawing: _Drawing, tail: str, head: str, attrs: dict) -> None:
    if tail == head:
        return
    if (tail.startswith("box") or head.startswith("box")) and any(
            e[0] == tail and e[1] == head for e in drawing.edges):
        return
    drawing.edge(tail, head, **attrs)


def _collapsed_scopes(tensors: list[Tensor], expanded: set[str], scopes: _Scopes) -> set[str]:
    return {scope[0] for t in tensors if (scope := scopes.of(t)) and scope[0] not in expanded}


def _boxes(tensors: list[Tensor], collapsed: set[str], scopes: _Scopes) -> dict[int, str]:
    """Which collapsed-scope box each non-leaf tensor (and its op) is drawn inside.

    Box keys are ``box<n>`` (a colon would read as a DOT port); the scope name is the label.
    """
    if not collapsed:
        return {}
    keys = {name: f"box{number}" for number, name in enumerate(sorted(collapsed))}
    return {id(t): keys[scope[0]] for t in tensors
            if t.op is not None and (scope := scopes.of(t)) and scope[0] in collapsed}


def _op_label(tensor: Tensor) -> str:
    """The op's name, its parameters, and its scalar constant inputs (``[1] = 2``)."""
    lines = [str(tensor.op.name)]
    params = _param_text(tensor.params)
    if params:
        lines.append(params)
    lines += [f"[{position}] = {_constant_label(value)}"
              for position, value in enumerate(tensor.inputs)
              if not isinstance(value, Tensor) and np.size(value) == 1]
    return "\n".join(lines)


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


def _node_count(tensors: list[Tensor]) -> int:
    """How many nodes the uncollapsed drawing of ``tensors`` has: tensors, ops, array constants."""
    count = len(tensors)
    for tensor in tensors:
        if tensor.op is not None:
            count += 1 + sum(1 for x in tensor.inputs
                             if not isinstance(x, Tensor) and np.size(x) != 1)
    return count


def _leaves_in_reading_order(tensors: list[Tensor]) -> list[Tensor]:
    """The leaves among ``tensors`` (inputs before consumers) in the order the ops read them.

    (``x`` before ``W`` in ``x @ W``; a walk's own order lists an op's last input first.)
    """
    leaves: dict[int, Tensor] = {}
    for tensor in tensors:
        for value in tensor.inputs:
            if isinstance(value, Tensor) and value.is_leaf:
                leaves.setdefault(id(value), value)
    for tensor in tensors:  # a leaf no op reads: the output itself
        if tensor.is_leaf:
            leaves.setdefault(id(tensor), tensor)
    return list(leaves.values())


def to_dot_backward(output: Tensor, *, grad: Any = None, show_values: bool = False,
                    value_limit: int = 8, collapse: bool = False, expand: Iterable[str] = (),
                    max_nodes: int = 2000, rankdir: str = "TB",
                    title: str | None = None) -> Any:
    """``output``'s forward graph and its reverse pass, drawn op by op.

    The reverse pass from ``output`` is recorded here (as ``backward(create_graph=True)``
    records it), starting from ``grad`` (default: 1, for a one-element ``output``). The drawing
    has the forward graph as :func:`to_dot` draws it, and in a coloured box "backward pass k"
    every op the backward rules applied (mul, matmul, where, unbroadcast, ...), with edges from
    the forward tensors and constants (masks, data) they read. The seed is a green leaf in that
    box; each leaf's gradient is a bold green node labelled "∂output/∂x" (unnamed leaves are
    called "leaf 1", "leaf 2", ... on both nodes). If ``output`` was itself computed by recorded
    passes (a gradient differentiated again), those passes are drawn as "backward pass 1", ...
    and the pass recorded here is the last one.

    Drawing changes no ``.grad``: the pass writes none. It does record ops (and counts as one
    recorded pass). So that every op the rules apply is recorded, the seed is a leaf that
    requires grad; a ``backward(create_graph=True)`` would fold ops that depend on the seed and
    constants alone into constants. ``show_values``, ``value_limit``, ``collapse``, ``expand``,
    ``max_nodes``, ``rankdir`` and ``title`` are as in :func:`to_dot`.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"to_dot_backward: expected a Tensor, got {type(output).__name__}")
    if not output.requires_grad:
        raise ValueError("to_dot_backward: the output does not depend on any tensor with "
                         "requires_grad=True, so it has no reverse pass to draw")
    forward = walk(output)
    if not collapse:  # refuse before recording a pass that could not be drawn anyway
        _check_size(_node_count(forward), max_nodes)
    seed_values = seed_for(output, grad, "to_dot_backward")
    # The seed is made in the scope the pass is about to get, so that it is drawn in its box.
    with in_scope(f"grad pass {STATE.graph_passes + 1}"):
        seed = Tensor(seed_values, requires_grad=True)
    ends = reverse_pass([output], [seed], create_graph=True, write_retained=False)

    of = output.name or "output"
    titles = {id(seed): f"seed ∂{of}/∂{of} = 1" if grad is None else "seed (the grad given)"}
    styles = {id(seed): SEED}
    unnamed = 0
    gradients = []
    for leaf in _leaves_in_reading_order(forward):
        if id(leaf) not in ends:
            continue
        cotangent = ends[id(leaf)][1]
        if not isinstance(cotangent, Tensor):  # pragma: no cover - a recorded pass gives Tensors
            continue
        if not leaf.name:
            unnamed += 1
            titles[id(leaf)] = f"leaf {unnamed}"
        mark = f"∂{of}/∂{leaf.name or titles[id(leaf)]}"
        titles[id(cotangent)] = (f"{titles[id(cotangent)]}\n{mark}" if id(cotangent) in titles
                                 else mark)
        styles[id(cotangent)] = GRADIENT
        gradients.append(cotangent)
    tensors = toposort([output, *gradients, seed], every=True)
    for tensor in tensors:  # an earlier pass's result kept in .grad: say whose gradient it is
        held = tensor.grad
        owner = tensor.name or titles.get(id(tensor))
        if isinstance(held, Tensor) and owner and held.name is None and id(held) not in titles:
            titles[id(held)] = f"{owner}.grad"
            styles[id(held)] = {"color": GRADIENT["color"]}
    what = output.name or (output.op.name if output.op else "a leaf")
    return _draw(tensors, output, titles=titles, styles=styles,
                 kept={id(seed), *(id(g) for g in gradients)}, show_values=show_values,
                 value_limit=value_limit, collapse=collapse, expand=expand,
                 max_nodes=max_nodes, title=title or f"backward graph of {what}",
                 rankdir=rankdir)


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


def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
    """Jupyter shows a Tensor as the SVG drawing of its graph (text without Graphviz)."""
    bundle = {"text/plain": repr(self)}
    try:
        drawing = svg(self)
    except GraphTooLargeError:
        drawing = None
    if drawing is not None:
        bundle["image/svg+xml"] = drawing
    return bundle


# Installed here, next to the drawing it shows: tensor.py stays below this module.
_repr_mimebundle_.__qualname__ = "Tensor._repr_mimebundle_"
Tensor._repr_mimebundle_ = _repr_mimebundle_


def to_dot_program(program: Any, *, max_nodes: int = 2000, rankdir: str = "TB",
                   title: str | None = None) -> Any:
    """A traced function's program (``traced.program``) as a graph: one box per equation
    (the op and the shape and dtype of its result), the inputs as ellipses, edges from each
    value to the equations that read it; constants are notes.
    """
    drawing = _Drawing()
    key_of: dict[int, str] = {}
    for item in program.inputs:
        key_of[item.value] = f"v{item.value}"
        drawing.node(key_of[item.value], f"%{item.value} = arg {item.path or '0'}\n"
                     f"{_shape_text(tuple(item.shape))} {np.dtype(item.dtype)}",
                     PARAMETER | {"shape": "ellipse"})
    constants = 0
    for eq in program.equations:
        key = f"v{eq.out}"
        label = f"%{eq.out} = {eq.prim.name}" + (f"\n{_param_text(eq.params)}" if eq.params
                                                  else "")
        drawing.node(key, f"{label}\n{_shape_text(tuple(eq.shape))} {np.dtype(eq.dtype)}",
                     OP if eq.grad else OP | {"style": "rounded,filled,dashed"})
        for position, value in enumerate(eq.inputs):
            if value in program.constants:
                constants += 1
                tail = f"c{constants}"
                drawing.node(tail, _constant_label(program.constants[value]),
                             CONSTANT | {"shape": "note"})
            else:
                tail = key_of[value]
            drawing.edge(tail, key, **({"label": str(position)} if len(eq.inputs) > 1 else {}))
        key_of[eq.out] = key
    for number, value in enumerate(program.outputs):
        if value is not None:
            drawing.node(f"out{number}", f"output {number}", INTERMEDIATE | {"shape": "ellipse",
                                                                              "penwidth": "2.5"})
            drawing.edge(key_of[value], f"out{number}")
    _check_size(len(drawing.nodes), max_nodes)
    return drawing.to_digraph(title or "program", rankdir)
