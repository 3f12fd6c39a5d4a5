"""Reverse-mode differentiation: topological order, the reverse pass, ``Tensor.backward``.

The pass knows no op by name. It walks the graph in reverse topological order, sums the
cotangents arriving at each node from all its consumers, calls the node's rule once, sums each
input's cotangent back to that input's shape (undoing broadcasting, here and nowhere else), and
drops a node's cotangent as soon as its rule has run.

It runs in one of two modes, with the same rules:

- on arrays (``create_graph=False``): the fast first-order pass; cotangents are NumPy arrays;
- recorded (``create_graph=True``): rules are called on the Tensors of the graph, so every
  cotangent is a Tensor made of recorded ops, which can be differentiated again (grad of grad,
  ``backward(create_graph=True)``) or replayed (a traced training step). Each recorded pass runs
  in its own scope, ``grad pass N``, so that drawings show it as one box.

The functional transforms built on it (grad, vjp, jvp, hessian, ...) are in ``transforms.py``.
"""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygraph.ops.arithmetic import cast, identity
from tinygraph.ops.reshaping import broadcast_to, unbroadcast
from tinygraph.primitive import Primitive, check_finite
from tinygraph.state import connected, current, enable_grad, scope
from tinygraph.tensor import LAST_CHANGE, Released, Tensor, as_float_array


def toposort(root: Tensor | Iterable[Tensor], every: bool = False,
             stop: set[int] | None = None) -> list[Tensor]:
    """Every node the root(s) depend on through inputs that require grad, inputs first.

    With ``every=True`` inputs that do not require grad are followed too (for drawing and
    tracing). Nodes whose id is in ``stop`` are listed but not looked through (a nested
    transform's variables). Iterative depth-first search with an explicit stack: graph depth is
    limited by memory only.
    """
    roots = [root] if isinstance(root, Tensor) else list(root)
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = []
    for each in reversed(roots):
        stack.append((each, False))
    while stack:
        node, finished = stack.pop()
        if finished:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if stop is not None and id(node) in stop:
            continue
        for parent in node._inputs:
            if (isinstance(parent, Tensor) and (every or parent.requires_grad)
                    and id(parent) not in visited):
                stack.append((parent, False))
    return order


def fit_cotangent(cotangent: Any, shape: tuple[int, ...], dtype: np.dtype, prim: Primitive,
                  position: int) -> Any:
    """Bring a rule's cotangent to the input's shape and dtype, or say which rule is wrong.

    Arrays stay arrays (NumPy directly: this is the hot path); Tensors go through the
    ``broadcast_to``, ``unbroadcast`` and ``cast`` ops, so that the fitting is recorded too.
    """
    graph = isinstance(cotangent, Tensor)
    if not graph and type(cotangent) is not np.ndarray:
        cotangent = np.asarray(cotangent)
    if cotangent.shape != shape:
        if cotangent.ndim == 0:  # a scalar cotangent for every element
            cotangent = (broadcast_to(cotangent, shape=shape) if graph
                         else np.broadcast_to(cotangent, shape))
        else:
            try:
                cotangent = (unbroadcast(cotangent, shape=shape) if graph
                             else sum_to_shape(cotangent, shape))
            except ValueError:
                raise ValueError(
                    f"{prim.name}: the backward rule returned a cotangent of shape "
                    f"{cotangent.shape} for input {position}, which has shape {shape}"
                ) from None
    if cotangent.dtype != dtype:
        cotangent = cast(cotangent, dtype=dtype) if graph else cotangent.astype(dtype)
    return cotangent


_SUM_PLANS: dict[tuple, tuple[int, ...] | None] = {}  # (shape, target shape) -> axes or None


def sum_to_shape(cotangent: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``unbroadcast`` on arrays, with its axes planned once per pair of shapes.

    Broadcasting is decided by shapes alone, so the reduction that undoes it is worked out the
    first time a pair of shapes is seen and reused after. The common case, a bias summed over
    its leading axes, is then one ``np.add.reduce`` (the same bits as ``unbroadcast``).
    """
    key = (cotangent.shape, shape)
    if key not in _SUM_PLANS:
        extra = cotangent.ndim - len(shape)
        leading_only = extra > 0 and cotangent.shape[extra:] == tuple(shape)
        if len(_SUM_PLANS) > 4096:  # shapes that never repeat: keep the memo small
            _SUM_PLANS.clear()
        _SUM_PLANS[key] = tuple(range(extra)) if leading_only else None
    axes = _SUM_PLANS[key]
    if axes is None:  # stretched size-1 axes too: the general path (it also checks)
        return unbroadcast.forward(cotangent, shape)
    return np.add.reduce(cotangent, axis=axes)


def reverse_pass(roots: list[Tensor], seeds: list[Any], *, targets: set[int] | None = None,
                 create_graph: bool = False, retain_grads: bool = False,
                 write_retained: bool = True,
                 order: list[Tensor] | None = None) -> dict[int, tuple[Tensor, Any]]:
    """Propagate ``seeds`` from ``roots``; return {id(node): (node, cotangent)} at the ends.

    The ends are the leaves reached, or, when ``targets`` (ids of nodes) is given, those nodes:
    the pass stops there, and visits only nodes between the roots and the targets (a nested
    transform differentiates with respect to its own variables, which sit inside the graph of
    an enclosing one). ``create_graph`` records the pass (see the module documentation).
    Non-leaf nodes store their gradient in ``.grad`` when they asked (``retain_grad()``), or all
    of them with ``retain_grads``; ``write_retained=False`` (the functional transforms) stores
    none. ``order``: the nodes in the order they were made (a transform's tape), instead of a
    topological sort; leaves are not on it, and ends are then the nodes whose cotangents are
    left over (leaves, or anything not on the tape).

    Python's cycle collector is paused for the pass (and resumed after it, if it was on): the
    pass makes no reference cycles, and a full collection in the middle of it walks every node
    of the graph, which made the time per node grow with the graph (1.26x from 1e3 to 1e6
    nodes; 1.06x with the collector off). A pass inside a pass leaves it as it finds it.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        if create_graph:
            current().graph_passes += 1
            with enable_grad(), scope(f"grad pass {current().graph_passes}"):
                return _pass(roots, seeds, targets, True, retain_grads, write_retained, order)
        return _pass(roots, seeds, targets, False, retain_grads, write_retained, order)
    finally:
        if paused:
            gc.enable()


def _pass(roots: list[Tensor], seeds: list[Any], targets: set[int] | None, create_graph: bool,
          retain_grads: bool, write_retained: bool,
          taped: list[Tensor] | None) -> dict[int, tuple[Tensor, Any]]:
    order = toposort(roots, stop=targets) if taped is None else taped
    wanted = None
    if targets is not None:  # the nodes that depend on a target, targets included
        wanted = set(targets)
        for node in order:
            if id(node) not in wanted and any(
                    isinstance(x, Tensor) and id(x) in wanted for x in node._inputs):
                wanted.add(id(node))
    anomaly = current().anomaly
    if not (create_graph or anomaly or retain_grads) and targets is None:
        release_unread(order, roots)
    cotangents: dict[int, Any] = {}
    for root, seed in zip(roots, seeds):
        previous = cotangents.get(id(root))
        cotangents[id(root)] = seed if previous is None else previous + seed
    ends: dict[int, tuple[Tensor, Any]] = {}
    for node in reversed(order):
        grad_out = cotangents.pop(id(node), None)
        if grad_out is None:
            continue
        prim = node._prim
        if prim is None or (targets is not None and id(node) in targets):
            if targets is None or id(node) in targets:
                ends[id(node)] = (node, grad_out)
            continue
        if LAST_CHANGE[0] > node._stamp:  # something was updated in place since: not this?
            _refuse_changed(node)
        if write_retained and (retain_grads or node._retain):
            accumulate_grad(node, grad_out)
        inputs = node._inputs
        if wanted is None:
            needed = [isinstance(x, Tensor) and x.requires_grad for x in inputs]
        else:
            needed = [isinstance(x, Tensor) and id(x) in wanted for x in inputs]
            if not any(needed):
                continue
        if create_graph:
            results = prim.graph_cotangents(grad_out, node, inputs, node._params, needed)
        else:
            values = [x.data if isinstance(x, Tensor) else x for x in inputs]
            results = prim.cotangents(grad_out, node.data, values, node._params, needed)
        for position, (parent, need, cotangent) in enumerate(zip(inputs, needed, results)):
            if not need or cotangent is None:
                continue
            data = parent.data
            if (type(cotangent) is not np.ndarray or cotangent.shape != data.shape
                    or cotangent.dtype != data.dtype):  # the common case needs no call
                cotangent = fit_cotangent(cotangent, data.shape, data.dtype, prim, position)
            if anomaly:
                check_finite(prim, cotangent.data if create_graph else cotangent, [grad_out],
                             "backward rule", node.name, getattr(node, "_site", None))
            key = id(parent)
            previous = cotangents.get(key)
            cotangents[key] = cotangent if previous is None else previous + cotangent
    if taped is not None:  # leaves (never on a tape) keep their cotangents in the dict
        ends.update((key, (None, cotangent)) for key, cotangent in cotangents.items())
    return ends


def _references(node: Tensor) -> int:
    return sys.getrefcount(node)


def release_unread(order: list[Tensor], roots: list[Tensor]) -> int:
    """Free the large arrays of ``order``'s intermediate nodes that the pass will not read:
    each node's own rule does not read its output, the rules of the nodes that consume it do
    not read it as an input (``Primitive.rule_reads``), and no one but the graph holds the node
    (its references: ``order`` and its consumers' inputs; no name, no weak reference). Its
    ``data`` becomes a :class:`~tinygraph.tensor.Released` stand-in. Returns how many.

    ``x @ W1 + b1`` before a sigmoid: neither the matmul's result nor the sum is read by any
    rule, and in ``tg.value_and_grad(loss)`` or after ``loss = f(...)`` nothing else holds
    them: a full-batch step of the paper's network then holds two layer-sized arrays fewer
    while its gradients are computed.

    The references are counted with ``sys.getrefcount`` against a probe node that goes through
    the same loop in the same call (so what the interpreter adds, a loop variable, a frame's
    locals, is the same for both); nothing is freed while a trace or profile function runs
    (a debugger may hold frames).
    """
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return 0
    candidates: dict[int, int] = {}  # id -> references from consumers' inputs
    for node in order:
        prim, data = node._prim, node.data
        if (prim is not None and type(data) is np.ndarray and data.nbytes >= RELEASE_BYTES
                and prim.reads is not None and "out" not in prim.reads and not node._retain
                and node.name is None):
            candidates[id(node)] = 0
    if not candidates:
        return 0
    for root in roots:
        candidates.pop(id(root), None)
    counted: set[int] = set()  # inputs tuples (two consumers may share one: copy.copy)
    for node in order:
        inputs = node._inputs
        if not inputs or id(inputs) in counted:
            continue
        counted.add(id(inputs))
        reads = node._prim.reads if node._prim is not None else None
        for position, value in enumerate(inputs):
            key = id(value)
            if key in candidates:
                if reads is None or node._prim.input_names[position] in reads:
                    del candidates[key]  # a rule reads it
                else:
                    candidates[key] += 1
    node = inputs = value = None  # (no reference of ours may stay behind in a local)
    listed = [Tensor.node(np.empty(0))]  # the probe: held by this list only
    listed += [each for each in order if id(each) in candidates
               and weakref.getweakrefcount(each) == 0]
    listed_only = freed = 0
    for node in listed:
        count = _references(node)
        if not listed_only:
            listed_only = count  # the probe's count: this list, the loop, the call
        elif count == listed_only + 1 + candidates[id(node)]:  # + order + its consumers
            node.data = Released(node.data)
            freed += 1
    return freed


RELEASE_BYTES = 1 << 20
"""Arrays at least this large are freed by ``release_unread`` (smaller ones are not worth it)."""


def _refuse_changed(node: Tensor) -> None:
    """Raise if ``node`` or one of its inputs was updated in place after ``node`` was made."""
    for position, value in enumerate((node, *node._inputs)):
        if isinstance(value, Tensor) and value._changed > node._stamp:
            what = "its result" if position == 0 else f"its input {position - 1}"
            raise RuntimeError(
                f"backward: {what} (shape {value.shape}) was updated in place after "
                f"{node._prim.name} recorded it, so its rule would read the new values; update "
                "parameters after backward(), or compute the loss again")


def accumulate_grad(node: Tensor, cotangent: Any) -> None:
    """``node.grad += cotangent``; the first gradient is a fresh array the node owns.

    A recorded cotangent (a Tensor) is kept as it is, and added to out of place, so that its
    graph stays intact for a later derivative.
    """
    if isinstance(cotangent, Tensor) or isinstance(node.grad, Tensor):
        if node.grad is None:  # its own array (two leaves may receive one cotangent)
            copy = np.array(cotangent.data, copy=True)
            node.grad = (identity_node(cotangent, copy) if cotangent.requires_grad
                         else Tensor.node(copy))
            node.grad._scope = cotangent._scope  # drawn inside the pass that made it
        else:
            node.grad = node.grad + cotangent
    elif node.grad is None:
        node.grad = np.array(cotangent, dtype=node.data.dtype, copy=True)
    else:
        node.grad += cotangent


def identity_node(source: Tensor, data: np.ndarray | None = None) -> Tensor:
    """A recorded ``identity`` of ``source`` that requires grad, holding ``data`` (default:
    ``source``'s own). Made by hand, not by calling the op, so it requires grad even where
    ``source`` does not; put on the tape, if one is recorded, as the op would be."""
    node = Tensor.node(source.data if data is None else data, True, identity, (source,), {})
    if current().tape is not None:
        current().tape.append(node)
    return node


def seed_for(tensor: Tensor, grad: Any, where: str = "backward") -> np.ndarray:
    """The cotangent to start a pass from ``tensor`` with: ``grad``, or 1 for one element."""
    if grad is None:
        if tensor.size != 1:
            raise ValueError(
                f"{where}: the output has shape {tensor.shape}; pass grad= of that shape "
                "(the seed 1 is implicit only for a one-element tensor)"
            )
        return np.ones_like(tensor.data)
    seed = grad.data if isinstance(grad, Tensor) else as_float_array(grad)
    if seed.shape != tensor.shape:
        raise ValueError(f"{where}: grad has shape {seed.shape}, the output {tensor.shape}")
    return seed.astype(tensor.dtype, copy=False)


def backward(tensor: Tensor, grad: Any = None, retain_grads: bool = False,
             create_graph: bool = False) -> None:
    """Add d(tensor)/d(leaf) . grad into ``.grad`` of every leaf that requires grad.

    With ``create_graph`` (always, inside a transform) the pass is recorded and every ``.grad``
    it writes is a Tensor that can be differentiated again.
    """
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not depend on any tensor with requires_grad=True "
            "(or it was made under no_grad), so there is nothing to differentiate"
        )
    record = create_graph or connected()
    seed: Any = seed_for(tensor, grad)
    if record and not isinstance(grad, Tensor):
        seed = Tensor.node(np.array(seed, copy=True))  # never the caller's array in a .grad
    ends = reverse_pass([tensor], [seed], create_graph=record, retain_grads=retain_grads)
    for leaf, cotangent in ends.values():
        if leaf.requires_grad:
            accumulate_grad(leaf, cotangent)


def _tensor_backward(self, grad: Any = None, retain_grads: bool = False,
                     create_graph: bool = False) -> None:
    """Reverse pass from this tensor: add d(self)/d(leaf) . grad into every leaf's ``.grad``.

    ``grad`` defaults to 1 for a one-element tensor. With ``retain_grads=True`` every node
    on the way keeps its gradient too (for drawing); otherwise intermediate gradients are
    freed as soon as they have been used. With ``create_graph=True`` the pass is recorded:
    each ``.grad`` is a Tensor with a graph, which can be differentiated again (as in
    PyTorch). Inside a tinygraph transform (``tg.grad``, ``tg.trace``) the pass is always
    recorded, so that the enclosing transform differentiates through it.
    """
    backward(self, grad, retain_grads=retain_grads, create_graph=create_graph)


# ``Tensor.backward`` is installed here, next to the pass it runs: tensor.py stays below this
# module and imports nothing of it.
_tensor_backward.__name__ = "backward"
_tensor_backward.__qualname__ = "Tensor.backward"
Tensor.backward = _tensor_backward
