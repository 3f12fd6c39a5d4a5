"""Functional transforms: grad, value_and_grad, vjp, jvp, hvp, jacobian, hessian.

Each takes a function of arrays (or pytrees of them) and returns a function. At top level they
return NumPy arrays. Called inside another transform (``grad(grad(f))``, a ``tg.trace``), they
return Tensors joined to the enclosing graph: their variables are ``identity`` nodes of the
enclosing ones, their reverse pass is recorded (its rules applied to Tensors), and it stops at
their own variables. So transforms nest to any depth, JAX and HIPS autograd style, and the
enclosing transform differentiates (or records) everything the inner one computed.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from tinygraph.autodiff import identity_node, reverse_pass, seed_for
from tinygraph.ops.arithmetic import stop_gradient
from tinygraph.ops.indexing import scatter_add
from tinygraph.ops.reductions import reduce_sum
from tinygraph.ops.reshaping import reshape
from tinygraph.pytree import flatten, unflatten
from tinygraph.state import connected, current, enable_grad
from tinygraph.tensor import Tensor, as_float_array

# What each function made by grad / value_and_grad is: (kind, f, argnums). Kept here rather than
# as an attribute, which functools.wraps would copy onto an unrelated wrapper. tg.trace reads it
# to treat numbers in differentiated arguments as arrays.
TRANSFORMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _single(argnums: Any) -> bool:
    """One argument differentiated (results unwrapped), not a tuple of them."""
    return isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)


def checked_argnums(argnums: int | tuple[int, ...], count: int, where: str) -> tuple[int, ...]:
    try:
        numbers = (int(argnums),) if _single(argnums) else tuple(argnums)
    except TypeError:
        raise TypeError(f"{where}: argnums must be an int or a tuple of ints, got "
                        f"{argnums!r}") from None
    for number in numbers:
        if (isinstance(number, bool) or not isinstance(number, (int, np.integer))
                or not -count <= number < count):
            raise ValueError(f"{where}: argnums {argnums!r} does not fit {count} argument(s)")
    result = tuple(int(n) % count for n in numbers)
    if len(set(result)) != len(result):
        raise ValueError(f"{where}: argnums {argnums!r} names an argument twice")
    return result


def is_live(value: Any) -> bool:
    """A Tensor that belongs to a graph being differentiated or traced."""
    return isinstance(value, Tensor) and (value.requires_grad or value._prim is not None)


def _variable(leaf: Any, where: str, number: int, path: str, joined: bool) -> Tensor:
    """The Tensor a transform differentiates with respect to, in place of one argument leaf.

    Joined to an enclosing graph, it is an ``identity`` node of the enclosing Tensor (so the
    enclosing pass reaches through it); otherwise a fresh leaf.
    """
    if joined and is_live(leaf):
        variable = identity_node(leaf)
        variable._retain = True  # not a leaf, yet Tensor.backward inside f fills its .grad
        return variable
    try:
        data = leaf.data if isinstance(leaf, Tensor) else as_float_array(leaf)
    except (TypeError, ValueError):
        raise TypeError(
            f"{where}: argument {number}{path} is a {type(leaf).__name__}, not an array or number"
        ) from None
    return Tensor.node(data, True)


def _variables(args: tuple, numbers: tuple[int, ...], where: str,
               joined: bool) -> tuple[list, list[tuple[Any, list[Tensor]]]]:
    """``args`` with the differentiated ones replaced by variables, and those variables."""
    args_list = list(args)
    wrapped = []
    for number in numbers:
        leaves, treedef, paths = flatten(args[number])
        tensors = [_variable(leaf, where, number, path, joined)
                   for leaf, path in zip(leaves, paths)]
        args_list[number] = unflatten(treedef, tensors)
        wrapped.append((treedef, tensors))
    return args_list, wrapped


@contextmanager
def _deeper() -> Iterator[None]:
    """One transform deeper, recording: transforms called inside join this one's graph."""
    current().transform_depth += 1
    try:
        with enable_grad():
            yield
    finally:
        current().transform_depth -= 1


def _call(f: Callable[..., Any], args: list, kwargs: dict) -> Any:
    """``f(*args)`` recorded, one transform deeper (so transforms inside it join its graph)."""
    with _deeper():
        return f(*args, **kwargs)


def _joined() -> tuple[bool, bool]:
    """(join the enclosing graph?, cut the results from it?) for a transform called now.

    Under ``no_grad`` inside a trace, results must still be recorded (a replay recomputes
    them), but as constants: ``stop_gradient`` cuts them, as eager mode (arrays) would.
    """
    joined = connected()
    return joined, joined and not current().grad_enabled


def _cut(values: list[Any], cut: bool) -> list[Any]:
    return [stop_gradient(v) if cut and isinstance(v, Tensor) else v for v in values]


def _cotangents(roots: list[Any], seeds: list[Any], variables: list[Tensor],
                record: bool, tape: list[Tensor] | None = None) -> list[Any]:
    """The cotangent reaching each variable from ``roots`` seeded with ``seeds`` (None: none)."""
    live_roots, live_seeds = [], []
    for root, seed in zip(roots, seeds):
        if isinstance(root, Tensor) and root.requires_grad:
            live_roots.append(root)
            live_seeds.append(seed if not record or isinstance(seed, Tensor)
                              else Tensor.node(seed))
    if not live_roots or not variables:
        return [None] * len(variables)
    targets = {id(v) for v in variables} if record else None
    ends = reverse_pass(live_roots, live_seeds, targets=targets, create_graph=record,
                        write_retained=False, order=tape)
    return [ends[id(v)][1] if id(v) in ends else None for v in variables]


def _zeros(variable: Tensor, joined: bool) -> Any:
    zeros = np.zeros_like(variable.data)
    return Tensor.node(zeros) if joined else zeros


def _owned(values: list[Any], variables: list[Any], avoid: list[Any] = ()) -> list[Any]:
    """Arrays the caller owns: zeros where no cotangent arrived (None), no read-only broadcast
    views, no array handed out twice, nothing sharing memory with ``avoid`` (the seeds)."""
    seen: set[int] = set()
    result = []
    for value, variable in zip(values, variables):
        if value is None:
            value = np.zeros_like(variable.data)
        elif isinstance(value, np.ndarray) and (
                not value.flags.writeable or id(value) in seen
                or any(isinstance(a, np.ndarray) and np.may_share_memory(value, a)
                       for a in avoid)):
            value = value.copy()
        seen.add(id(value))
        result.append(value)
    return result


def _regroup(wrapped: list[tuple[Any, list[Tensor]]], values: list[Any], single: bool) -> Any:
    """One value per variable back into the arguments' structures (a tuple unless ``single``)."""
    trees = []
    position = 0
    for treedef, tensors in wrapped:
        trees.append(unflatten(treedef, values[position:position + len(tensors)]))
        position += len(tensors)
    return trees[0] if single else tuple(trees)


def _scalar_output(out: Any, where: str) -> Tensor:
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
    return out


def _name(f: Any) -> str:
    return getattr(f, "__name__", "f")


# ---------------------------------------------------------------------------------------------
# Reverse mode: grad, value_and_grad, vjp
# ---------------------------------------------------------------------------------------------

def value_and_grad(f: Callable[..., Any],
                   argnums: int | tuple[int, ...] = 0) -> Callable[..., tuple[Any, Any]]:
    """``f``'s value (a 0-d array) and its gradient w.r.t. the arguments ``argnums``.

    Arguments may be arrays, Tensors, numbers or pytrees of them; each gradient has its
    argument's structure (a tuple of them when ``argnums`` is a tuple). Other arguments reach
    ``f`` unchanged. No Tensor's ``.grad`` is touched. Inside another transform the value and
    gradients are Tensors joined to its graph (see the module documentation).
    """
    return _value_and_grad(f, argnums, f"value_and_grad({_name(f)})")


def _value_and_grad(f: Callable[..., Any], argnums: int | tuple[int, ...],
                    where: str) -> Callable[..., tuple[Any, Any]]:

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        joined, cut = _joined()
        numbers = checked_argnums(argnums, len(args), where)
        args_list, wrapped = _variables(args, numbers, where, joined)
        if joined:
            out = _scalar_output(_call(f, args_list, kwargs), where)
            tape = None
        else:  # top level: record the tape, so that the pass needs no topological sort
            previous, current().tape = current().tape, []
            try:
                out = _call(f, args_list, kwargs)
            finally:
                tape, current().tape = current().tape, previous
            out = _scalar_output(out, where)
        variables = [t for _, tensors in wrapped for t in tensors]
        seed = np.ones_like(out.data)
        if joined and current().seed_scale is not None:  # tg.trace(..., fold_scale=True)
            seed = seed * np.asarray(current().seed_scale, dtype=seed.dtype)
            current().scaled_seeds += 1
        found = _cotangents([out], [seed], variables, joined, tape)
        if joined:
            value = out if out.shape == () else reshape(out, shape=())
            grads = [_zeros(v, True) if c is None else c for v, c in zip(variables, found)]
            value, *grads = _cut([value, *grads], cut)
        else:
            value, grads = out.data.reshape(()), _owned(found, variables)
        return value, _regroup(wrapped, grads, _single(argnums))

    TRANSFORMS[value_and_grad_f] = ("value_and_grad", f, argnums)
    return value_and_grad_f


def grad(f: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """The gradient of ``f`` w.r.t. the arguments ``argnums`` (see :func:`value_and_grad`).

    Nests: ``grad(grad(f))`` is the second derivative of a scalar function, and so on.
    """
    value_and_grad_f = _value_and_grad(f, argnums, f"grad({_name(f)})")

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        return value_and_grad_f(*args, **kwargs)[1]

    TRANSFORMS[grad_f] = ("grad", f, argnums)
    return grad_f


def _check_like(values: Any, like_leaves: list[Any], like_treedef: Any, where: str,
                what: str, like: str) -> list[Any]:
    """The leaves of ``values``, which must have the structure and shapes of ``like``."""
    leaves, treedef, paths = flatten(values)
    if treedef != like_treedef:
        raise ValueError(f"{where}: the {what} must have the structure of the {like}")
    checked = []
    for leaf, model, path in zip(leaves, like_leaves, paths):
        shape = np.shape(model.data if isinstance(model, Tensor) else model)
        if np.shape(leaf) != shape:
            raise ValueError(f"{where}: {what}{path} has shape {np.shape(leaf)}, the {like} "
                             f"{shape}")
        checked.append(leaf)
    return checked


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[..., tuple]]:
    """``(f(*primals), vjp_fn)``: ``vjp_fn(cotangent)`` is the cotangent's pull-back.

    ``vjp_fn(u)`` returns a tuple with one entry per primal, ``u^T df/dprimal``, each shaped
    like its primal; ``u`` has the structure and shapes of ``f``'s output. ``vjp_fn`` may be
    called any number of times.
    """
    where = f"vjp({_name(f)})"
    joined, cut = _joined()
    args_list, wrapped = _variables(primals, tuple(range(len(primals))), where, joined)
    out = _call(f, args_list, {})
    out_leaves, out_treedef, _ = flatten(out)
    variables = [t for _, tensors in wrapped for t in tensors]

    def vjp_fn(cotangent: Any) -> tuple:
        seeds = _check_like(cotangent, out_leaves, out_treedef, where, "cotangent", "output")
        record = joined or connected() or any(isinstance(s, Tensor) for s in seeds)
        seeds = [s if isinstance(s, Tensor) else seed_for(o, s, where)
                 if isinstance(o, Tensor) else s for s, o in zip(seeds, out_leaves)]
        found = _cotangents(out_leaves, seeds, variables, record)
        if record:
            values = _cut([_zeros(v, True) if c is None else c
                           for v, c in zip(variables, found)], cut)
        else:  # never the caller's own cotangent (x + 1 pulls it back unchanged)
            values = _owned(found, variables, avoid=seeds)
        return _regroup(wrapped, values, single=False)

    return _hand_out(_cut(out_leaves, cut), out_treedef, joined), vjp_fn


def _hand_out(leaves: list[Any], treedef: Any, joined: bool) -> Any:
    """An output pytree: Tensors inside a transform, arrays at top level."""
    if joined:
        return unflatten(treedef, leaves)
    return unflatten(treedef, [leaf.data if isinstance(leaf, Tensor) else leaf
                               for leaf in leaves])


# ---------------------------------------------------------------------------------------------
# Forward mode and second order: jvp, hvp
# ---------------------------------------------------------------------------------------------

def jvp(f: Callable[..., Any], primals: tuple | list,
        tangents: tuple | list) -> tuple[Any, Any]:
    """``(f(*primals), J v)``: the directional derivative of ``f`` along ``tangents``.

    Forward mode by the double-VJP trick rather than a second set of (JVP) rules: the VJP
    ``u -> J^T u`` is linear in ``u`` and, recorded, is itself a graph of tinygraph ops, so
    ``J v = d/du <J^T u, v>`` is one more reverse pass. Every op with a rule written in tinygraph
    ops gets forward mode for free and no rule is written twice; the price is about three
    passes instead of one, which is small for the uses forward mode has here (directional
    derivatives, Hessian-vector products, tests). ``tangents`` has the structure and shapes of
    ``primals``; the result has the structure of ``f``'s output.
    """
    where = f"jvp({_name(f)})"
    primals, tangents = _sequences(primals, tangents, where)
    primal_leaves, primal_treedef, _ = flatten(primals)
    tangent_leaves = _check_like(tangents, primal_leaves, primal_treedef, where, "tangents",
                                 "primals")
    joined, cut = _joined()
    args_list, wrapped = _variables(primals, tuple(range(len(primals))), where, joined)
    out = _call(f, args_list, {})
    out_leaves, out_treedef, _ = flatten(out)
    variables = [t for _, tensors in wrapped for t in tensors]
    # u: one variable per output; the pull-back J^T u is recorded as a function of it
    dummies = [Tensor.node(np.zeros_like(leaf.data), True) if isinstance(leaf, Tensor) else None
               for leaf in out_leaves]
    with _deeper():
        pulled = _cotangents(out_leaves, dummies, variables, record=True)
        terms = [reduce_sum(c * t) for c, t in zip(pulled, tangent_leaves)
                 if c is not None]
        inner = terms[0] if terms else None
        for term in terms[1:]:
            inner = inner + term
    live = [d for d in dummies if d is not None]
    found = _cotangents([inner], [np.ones_like(inner.data)], live, joined) \
        if inner is not None else [None] * len(live)
    by_dummy = dict(zip(map(id, live), found))
    tangents_out = []
    for leaf, dummy in zip(out_leaves, dummies):
        value = by_dummy.get(id(dummy)) if dummy is not None else None
        if value is None:
            value = _zeros(leaf, joined) if isinstance(leaf, Tensor) else np.zeros(np.shape(leaf))
        tangents_out.append(value)
    if not joined:
        tangents_out = _owned(tangents_out, out_leaves, avoid=tangent_leaves)
    return (_hand_out(_cut(out_leaves, cut), out_treedef, joined),
            unflatten(out_treedef, _cut(tangents_out, cut)))


def _sequences(primals: Any, tangents: Any, where: str) -> tuple[tuple, tuple]:
    """``primals`` and ``tangents`` as tuples (one entry per argument of f), or a clear error."""
    for name, value in (("primals", primals), ("tangents", tangents)):
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{where}: {name} must be a tuple or list with one entry per "
                            f"argument of the function, got {type(value).__name__}")
    return tuple(primals), tuple(tangents)


def hvp(f: Callable[..., Any], primals: tuple | list, tangents: tuple | list) -> tuple:
    """The Hessian of scalar ``f`` at ``primals`` times ``tangents``: a tuple shaped like primals.

    Reverse over reverse: the gradient of ``<grad f(x), v>``, without forming the Hessian.
    """
    primals, tangents = _sequences(primals, tangents, f"hvp({_name(f)})")
    primal_leaves, primal_treedef, _ = flatten(primals)
    _check_like(tangents, primal_leaves, primal_treedef, f"hvp({_name(f)})", "tangents",
                "primals")
    everything = tuple(range(len(primals)))
    gradient = grad(f, argnums=everything)

    def directional(*xs: Any) -> Any:
        total = None
        for g, v in zip(flatten(gradient(*xs))[0], flatten(tangents)[0]):
            term = reduce_sum(g * v)
            total = term if total is None else total + term
        return total

    directional.__name__ = f"<grad {_name(f)}, v>"
    return grad(directional, argnums=everything)(*primals)


# ---------------------------------------------------------------------------------------------
# Whole matrices: jacobian, hessian
# ---------------------------------------------------------------------------------------------

def _stack(rows: list[Any], shape: tuple[int, ...], dtype: Any) -> Any:
    """The rows (each of ``shape[1:]``) as one array of ``shape``; Tensors stay recorded.

    Recorded, each row is scattered into a zero matrix and the matrices summed: O(n^3) for an
    n x n Hessian, fine for the small matrices these are used on (a stack op would do better).
    """
    if not any(isinstance(row, Tensor) for row in rows):
        return np.stack(rows).reshape(shape) if rows else np.zeros(shape, dtype=dtype)
    total = None
    for k, row in enumerate(rows):  # each row scattered into its place, then summed
        placed = scatter_add(reshape(row, shape=(1, *shape[1:])),
                             index=slice(k, k + 1), shape=shape)
        total = placed if total is None else total + placed
    return total


def jacobian(f: Callable[..., Any],
             argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """``J[i..., j...] = d f(x)[i...] / d x[j...]``: shape ``output.shape + input.shape``.

    Reverse mode, one pass per output element. Over pytrees as in JAX: the result has the
    output's structure, each leaf of it the differentiated argument's structure (a tuple of
    them when ``argnums`` is a tuple).
    """
    where = f"jacobian({_name(f)})"

    @functools.wraps(f)
    def jacobian_f(*args: Any, **kwargs: Any) -> Any:
        joined, cut = _joined()
        numbers = checked_argnums(argnums, len(args), where)
        args_list, wrapped = _variables(args, numbers, where, joined)
        out = _call(f, args_list, kwargs)
        out_leaves, out_treedef, _ = flatten(out)
        variables = [t for _, tensors in wrapped for t in tensors]
        per_output = []
        for leaf in out_leaves:
            if not isinstance(leaf, Tensor):
                raise TypeError(f"{where}: the function must return Tensors, got "
                                f"{type(leaf).__name__}")
            rows: list[list[Any]] = [[] for _ in variables]
            for k in range(leaf.size):
                seed = np.zeros(leaf.size, dtype=leaf.dtype)
                seed[k] = 1
                found = _cotangents([leaf], [seed.reshape(leaf.shape)], variables, joined)
                for row, variable, cotangent in zip(rows, variables, found):
                    row.append(_zeros(variable, joined) if cotangent is None else cotangent)
            blocks = [_stack(row, (leaf.size, *v.shape), leaf.dtype)
                      for row, v in zip(rows, variables)]
            blocks = _cut([reshape(b, shape=leaf.shape + v.shape) if isinstance(b, Tensor)
                           else b.reshape(leaf.shape + v.shape)
                           for b, v in zip(blocks, variables)], cut)
            per_output.append(_regroup(wrapped, blocks, _single(argnums)))
        return unflatten(out_treedef, per_output)

    return jacobian_f


def hessian(f: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """The matrix of second derivatives of scalar ``f``: shape ``input.shape + input.shape``.

    ``jacobian(grad(f))``: the gradient is recorded, then differentiated once per element.
    """
    return jacobian(grad(f, argnums), argnums)
