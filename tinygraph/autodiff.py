"""Reverse-mode differentiation: topological order, the reverse pass, and the grad transforms.

The pass knows no op by name. It walks the graph in reverse topological order, sums the
cotangents arriving at each node from all its consumers, calls the node's rule once, sums each
input's cotangent back to that input's shape (undoing broadcasting, here and nowhere else), and
drops a node's cotangent as soon as its rule has run.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygraph.primitive import Primitive, check_finite
from tinygraph.pytree import flatten, unflatten
from tinygraph.state import STATE, enable_grad
from tinygraph.tensor import Tensor, as_float_array


def toposort(root: Tensor, every: bool = False) -> list[Tensor]:
    """Every node ``root`` depends on through inputs that require grad, inputs first.

    With ``every=True`` constant Tensors are followed too (for drawing). Iterative depth-first
    search with an explicit stack: graph depth is limited by memory only.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._inputs:
            if (isinstance(parent, Tensor) and (every or parent.requires_grad)
                    and id(parent) not in visited):
                stack.append((parent, False))
    return order


def unbroadcast(cotangent: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``cotangent`` over the axes that broadcasting added or stretched, down to ``shape``."""
    extra = cotangent.ndim - len(shape)
    if extra < 0 or any(c != s and s != 1 for c, s in zip(cotangent.shape[extra:], shape)):
        raise ValueError(f"a cotangent of shape {cotangent.shape} cannot reduce to {shape}")
    stretched = tuple(extra + i for i, side in enumerate(shape)
                      if side == 1 and cotangent.shape[extra + i] != 1)
    axes = tuple(range(extra)) + stretched
    if axes:
        cotangent = cotangent.sum(axis=axes, keepdims=True)
    return cotangent.reshape(shape) if extra else cotangent


def fit_cotangent(cotangent: Any, shape: tuple[int, ...], dtype: np.dtype, prim: Primitive,
                  position: int) -> np.ndarray:
    """Bring a rule's cotangent to the input's shape and dtype, or say which rule is wrong."""
    if type(cotangent) is not np.ndarray:
        cotangent = np.asarray(cotangent)
    if cotangent.shape != shape:
        if cotangent.ndim == 0:  # a scalar cotangent for every element
            cotangent = np.broadcast_to(cotangent, shape)
        else:
            try:
                cotangent = unbroadcast(cotangent, shape)
            except ValueError:
                raise ValueError(
                    f"{prim.name}: the backward rule returned a cotangent of shape "
                    f"{cotangent.shape} for input {position}, which has shape {shape}"
                ) from None
    if cotangent.dtype != dtype:
        cotangent = cotangent.astype(dtype)
    return cotangent


Observer = Callable[[Tensor, list, list], None]


def reverse_pass(root: Tensor, seed: np.ndarray, retain_grads: bool = False,
                 write_retained: bool = True, needs: Callable[[Tensor], bool] | None = None,
                 observe: Observer | None = None) -> dict[int, tuple[Tensor, np.ndarray]]:
    """Propagate ``seed`` from ``root`` to the leaves; return {id(leaf): (leaf, cotangent)}.

    Non-leaf nodes store their gradient in ``.grad`` when they asked (``retain_grad()``), or all
    of them with ``retain_grads``; ``write_retained=False`` (the functional transforms) stores
    none. ``needs(tensor)`` says which inputs want a cotangent (default: ``requires_grad``);
    ``observe(node, needed, contributions)`` is told of every rule applied, each contribution
    ``(position, parent, first)`` (``first``: the parent's first cotangent): ``tg.trace``
    records the pass this way.
    """
    order = toposort(root)
    cotangents: dict[int, np.ndarray] = {id(root): seed}
    leaves: dict[int, tuple[Tensor, np.ndarray]] = {}
    anomaly = STATE.anomaly
    for node in reversed(order):
        grad_out = cotangents.pop(id(node), None)
        if grad_out is None:
            continue
        prim = node._prim
        if prim is None:
            leaves[id(node)] = (node, grad_out)
            continue
        if write_retained and (retain_grads or node._retain):
            accumulate_grad(node, grad_out)
        inputs = node._inputs
        values = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
        if needs is None:
            needed = [isinstance(x, Tensor) and x.requires_grad for x in inputs]
        else:
            needed = [isinstance(x, Tensor) and needs(x) for x in inputs]
        results = prim.cotangents(grad_out, node.data, values, node._params, needed)
        contributions = [] if observe is not None else None
        for position, (parent, need, cotangent) in enumerate(zip(inputs, needed, results)):
            if not need or cotangent is None:
                continue
            data = parent.data
            cotangent = fit_cotangent(cotangent, data.shape, data.dtype, prim, position)
            if anomaly:
                check_finite(prim, cotangent, [grad_out], "backward rule", node.name)
            key = id(parent)
            previous = cotangents.get(key)
            cotangents[key] = cotangent if previous is None else previous + cotangent
            if contributions is not None:
                contributions.append((position, parent, previous is None))
        if observe is not None:
            observe(node, needed, contributions)
    return leaves


def accumulate_grad(node: Tensor, cotangent: np.ndarray) -> None:
    """``node.grad += cotangent``; the first gradient is a fresh array the node owns."""
    if node.grad is None:
        node.grad = np.array(cotangent, dtype=node.data.dtype, copy=True)
    else:
        node.grad += cotangent


def _seed(tensor: Tensor, grad: Any) -> np.ndarray:
    if grad is None:
        if tensor.size != 1:
            raise ValueError(
                f"backward: the output has shape {tensor.shape}; pass grad= of that shape "
                "(the seed 1 is implicit only for a one-element tensor)"
            )
        return np.ones_like(tensor.data)
    seed = as_float_array(grad)
    if seed.shape != tensor.shape:
        raise ValueError(f"backward: grad has shape {seed.shape}, the output {tensor.shape}")
    return seed.astype(tensor.dtype, copy=False)


def backward(tensor: Tensor, grad: Any = None, retain_grads: bool = False) -> None:
    """Add d(tensor)/d(leaf) . grad into ``.grad`` of every leaf that requires grad."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not depend on any tensor with requires_grad=True "
            "(or it was made under no_grad), so there is nothing to differentiate"
        )
    seed = _seed(tensor, grad)
    for leaf, cotangent in reverse_pass(tensor, seed, retain_grads).values():
        accumulate_grad(leaf, cotangent)


# ---------------------------------------------------------------------------------------------
# Functional transforms
# ---------------------------------------------------------------------------------------------

# What each function made by grad / value_and_grad is: (kind, f, argnums). Kept here rather than
# as an attribute, which functools.wraps would copy onto an unrelated wrapper.
TRANSFORMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _argnums(argnums: int | tuple[int, ...], count: int, where: str) -> tuple[int, ...]:
    numbers = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for number in numbers:
        if not isinstance(number, int) or not -count <= number < count:
            raise ValueError(f"{where}: argnums {argnums!r} does not fit {count} argument(s)")
    return tuple(n % count for n in numbers)


def _leaf_tensor(leaf: Any, where: str, number: int, path: str) -> Tensor:
    try:
        data = leaf.data if isinstance(leaf, Tensor) else as_float_array(leaf)
    except (TypeError, ValueError):
        raise TypeError(
            f"{where}: argument {number}{path} is a {type(leaf).__name__}, not an array or number"
        ) from None
    return Tensor(data, requires_grad=True)


def _scalar_output(out: Any, where: str) -> np.ndarray:
    if not isinstance(out, Tensor):
        shape = f" of shape {np.shape(out)}" if isinstance(out, np.ndarray) else ""
        raise TypeError(
            f"{where}: the function must return a one-element Tensor, got "
            f"{type(out).__name__}{shape} (did it use the differentiated arguments?)"
        )
    if out.size != 1:
        raise ValueError(
            f"{where}: the function must return a one-element Tensor, got shape {out.shape}"
        )
    return out.data.reshape(())


def value_and_grad(f: Callable[..., Any],
                   argnums: int | tuple[int, ...] = 0) -> Callable[..., tuple[np.ndarray, Any]]:
    """``f``'s value (a 0-d array) and its gradient w.r.t. the arguments ``argnums``.

    Arguments may be arrays, Tensors, numbers or pytrees of them; each gradient has its
    argument's structure (a tuple of them when ``argnums`` is a tuple). Other arguments reach
    ``f`` unchanged. No Tensor's ``.grad`` is touched.
    """
    where = f"value_and_grad({getattr(f, '__name__', 'f')})"

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[np.ndarray, Any]:
        if STATE.transform_depth:
            raise NotImplementedError(
                f"{where}: a gradient transform inside another one (grad of grad) is not "
                "supported yet: the backward rules run on arrays, so the result would be wrong"
            )
        numbers = _argnums(argnums, len(args), where)
        args_list = list(args)
        wrapped = []
        for number in numbers:
            leaves, treedef, paths = flatten(args[number])
            tensors = [_leaf_tensor(leaf, where, number, path)
                       for leaf, path in zip(leaves, paths)]
            args_list[number] = unflatten(treedef, tensors)
            wrapped.append((treedef, tensors))
        STATE.transform_depth += 1
        try:
            with enable_grad():
                out = f(*args_list, **kwargs)
        finally:
            STATE.transform_depth -= 1
        value = _scalar_output(out, where)
        found = {}
        if out.requires_grad:
            found = reverse_pass(out, np.ones_like(out.data), write_retained=False)
        handed_out: set[int] = set()
        grads = []
        for treedef, tensors in wrapped:
            leaf_grads = []
            for tensor in tensors:
                entry = found.get(id(tensor))
                cotangent = np.zeros_like(tensor.data) if entry is None else entry[1]
                # Hand out arrays the caller owns: no read-only broadcast views, no shared arrays.
                if not cotangent.flags.writeable or id(cotangent) in handed_out:
                    cotangent = cotangent.copy()
                handed_out.add(id(cotangent))
                leaf_grads.append(cotangent)
            grads.append(unflatten(treedef, leaf_grads))
        return value, grads[0] if isinstance(argnums, int) else tuple(grads)

    TRANSFORMS[value_and_grad_f] = ("value_and_grad", f, argnums)  # for tg.trace
    return value_and_grad_f


def grad(f: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """The gradient of ``f`` w.r.t. the arguments ``argnums`` (see :func:`value_and_grad`)."""
    value_and_grad_f = value_and_grad(f, argnums)

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        return value_and_grad_f(*args, **kwargs)[1]

    TRANSFORMS[grad_f] = ("grad", f, argnums)  # for tg.trace
    return grad_f
