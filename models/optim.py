"""Functional first-order optimizers and learning-rate schedules for NumPy pytrees.

A *pytree* here is a leaf (a NumPy array or scalar) or a ``dict`` / ``list`` / ``tuple``
of pytrees, e.g. ``{"W1": (784, 64), "b1": (64,), "W2": (64, 10), "b2": (10,)}``.
Gradients must have the same structure as the parameters (dict key order may differ).

The API is small and functional, in the spirit of optax::

    opt = adam(lr=cosine(1e-3, total_steps=1000, warmup_steps=50))
    state = opt.init(params)
    for batch in batches:
        grads = grad_fn(params, batch)
        params, state = opt.update(params, grads, state)

``update`` never modifies ``params``, ``grads`` or (by default) ``state``: it returns new
arrays.  With ``inplace_state=True`` the optimizer's own moment buffers are updated in place
(the returned state then shares those buffers with the old one, so the old state must not
be reused); parameters are still returned as new arrays.

The step counter lives in the state (``state["step"]``, the number of updates already
applied, a 0-d ``int64`` array), so a schedule ``lr(t)`` is evaluated at ``t = state["step"]``
and Adam's bias correction uses ``t + 1``.  :func:`state_to_arrays` /
:func:`state_from_arrays` convert a state to and from a flat ``dict[str, np.ndarray]``
(e.g. for ``np.savez``); a run resumed from such a checkpoint continues bitwise identically.

Notation below: ``p`` parameter, ``g`` gradient, ``eta_t`` learning rate at step ``t``,
``lambda`` weight decay.  All arithmetic stays in the parameters' dtype (hyper-parameters
are Python floats, which NumPy does not let upcast a float32 array).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Optimizer",
    "PyTree",
    "Schedule",
    "adam",
    "constant",
    "cosine",
    "get_optimizer",
    "momentum",
    "sgd",
    "state_from_arrays",
    "state_to_arrays",
    "step_decay",
    "tree_map",
]

PyTree = Any
Schedule = Callable[[int], float]
State = dict[str, Any]
Path = tuple[Any, ...]
WeightDecayMask = Callable[[str, np.ndarray], bool]

# --------------------------------------------------------------------------------------
# pytree helpers
# --------------------------------------------------------------------------------------


def _is_container(x: Any) -> bool:
    return isinstance(x, (Mapping, list, tuple))


def _children(tree: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(tree, Mapping):
        yield from tree.items()
    else:
        yield from enumerate(tree)


def _flatten(tree: PyTree, path: Path = ()) -> list[tuple[Path, Any]]:
    """Leaves of ``tree`` with their key paths, depth first, in container order."""
    if not _is_container(tree):
        return [(path, tree)]
    out: list[tuple[Path, Any]] = []
    for key, child in _children(tree):
        out.extend(_flatten(child, (*path, key)))
    return out


def _flatten_like(tree: PyTree, like: PyTree, path: Path = ()) -> list[Any]:
    """Leaves of ``tree`` in the order of ``like``'s structure; raise if they differ."""
    if not _is_container(like):
        if _is_container(tree):
            raise ValueError(f"structure mismatch at {_path_str(path)!r}: expected a leaf")
        return [tree]
    if isinstance(like, Mapping):
        if not isinstance(tree, Mapping) or set(tree.keys()) != set(like.keys()):
            got = sorted(map(str, tree.keys())) if isinstance(tree, Mapping) else type(tree)
            raise ValueError(
                f"structure mismatch at {_path_str(path)!r}: expected keys "
                f"{sorted(map(str, like.keys()))}, got {got}"
            )
        keys: Any = list(like.keys())
    else:
        if not isinstance(tree, (list, tuple)) or len(tree) != len(like):
            raise ValueError(f"structure mismatch at {_path_str(path)!r}: sequence length")
        keys = range(len(like))
    out: list[Any] = []
    for key in keys:
        out.extend(_flatten_like(tree[key], like[key], (*path, key)))
    return out


def _unflatten(like: PyTree, leaves: Iterator[Any]) -> PyTree:
    """Rebuild ``like``'s container structure, taking leaves from the iterator in order."""
    if not _is_container(like):
        return next(leaves)
    if isinstance(like, Mapping):
        return {key: _unflatten(child, leaves) for key, child in like.items()}
    rebuilt = [_unflatten(child, leaves) for child in like]
    return tuple(rebuilt) if isinstance(like, tuple) else rebuilt


def _path_str(path: Path) -> str:
    return "/".join(str(k) for k in path)


def tree_map(fn: Callable[..., Any], tree: PyTree, *rest: PyTree) -> PyTree:
    """Apply ``fn(leaf, *other_leaves)`` leafwise; ``rest`` must share ``tree``'s structure."""
    leaves = [leaf for _, leaf in _flatten(tree)]
    others = [_flatten_like(r, tree) for r in rest]
    return _unflatten(tree, iter([fn(*xs) for xs in zip(leaves, *others, strict=True)]))


# --------------------------------------------------------------------------------------
# learning-rate schedules: plain functions step -> lr, with step = 0, 1, 2, ...
# --------------------------------------------------------------------------------------


def constant(lr: float) -> Schedule:
    """Constant schedule: ``eta_t = lr`` for every step ``t``."""
    value = float(lr)

    def schedule(step: int) -> float:
        return value

    return schedule


def cosine(
    base_lr: float, total_steps: int, warmup_steps: int = 0, final_lr: float = 0.0
) -> Schedule:
    """Linear warm-up followed by a half-cosine decay.

    For step ``t`` (0-based, ``W = warmup_steps``, ``T = total_steps``)::

        t <  W:  eta_t = base_lr * (t + 1) / W
        t >= W:  eta_t = final_lr + (base_lr - final_lr) * (1 + cos(pi * s)) / 2,
                 s = min(1, (t - W) / (T - W))

    so ``eta_{W} = base_lr``, the first warm-up step is already non-zero, the rate decreases
    monotonically after warm-up, and ``eta_t = final_lr`` for ``t >= T``.
    """
    total_steps = int(total_steps)
    warmup_steps = int(warmup_steps)
    if warmup_steps < 0 or total_steps <= warmup_steps:
        raise ValueError("need 0 <= warmup_steps < total_steps")
    base, final = float(base_lr), float(final_lr)
    decay_steps = total_steps - warmup_steps

    def schedule(step: int) -> float:
        t = int(step)
        if t < warmup_steps:
            return base * (t + 1) / warmup_steps
        s = min(1.0, (t - warmup_steps) / decay_steps)
        return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * s))

    return schedule


def step_decay(base_lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """Piecewise-constant decay: ``eta_t = base_lr * gamma ** floor(t / step_size)``."""
    if step_size <= 0:
        raise ValueError("step_size must be positive")
    base, gamma = float(base_lr), float(gamma)

    def schedule(step: int) -> float:
        return base * gamma ** (int(step) // step_size)

    return schedule


def _as_schedule(lr: float | Schedule) -> Schedule:
    return lr if callable(lr) else constant(lr)


# --------------------------------------------------------------------------------------
# optimizer container
# --------------------------------------------------------------------------------------

# leaf rule: (p, g, slots, eta, t) -> (new_p, new_slots); slots is a tuple of state arrays
# rule(p, g, slots, scalars) -> (new p, new slots); scalars: the step's numbers (Optimizer.scalars)
_LeafRule = Callable[[Any, Any, tuple[Any, ...], Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Optimizer:
    """A first-order optimizer as a pair of pure functions ``init`` and ``update``.

    Attributes:
        name: short name (``"sgd"``, ``"momentum"``, ``"adam"``).
        lr: learning rate, a float or a schedule ``step -> lr``.
        hyperparams: the remaining hyper-parameters, for logging.
        slots: names of the per-parameter state buffers (e.g. ``("m", "v")`` for Adam).
    """

    name: str
    lr: float | Schedule
    hyperparams: dict[str, Any]
    slots: tuple[str, ...]
    _rule: _LeafRule = field(repr=False)
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    weight_decay_mask: WeightDecayMask | None = field(default=None, repr=False)
    inplace_state: bool = False
    _per_step: Callable[[int], dict[str, float]] | None = field(default=None, repr=False)

    def init(self, params: PyTree) -> State:
        """Fresh state: ``{"step": 0, <slot>: zeros_like(params), ...}``."""
        state: State = {"step": np.zeros((), dtype=np.int64)}
        for slot in self.slots:
            state[slot] = tree_map(np.zeros_like, params)
        return state

    def learning_rate(self, step: int) -> float:
        """The learning rate used for update number ``step`` (0-based)."""
        return float(_as_schedule(self.lr)(step))

    def scalars(self, step: int, lr: float | None = None) -> dict[str, float]:
        """The numbers of update number ``step`` (0-based), as Python floats: ``eta`` (the
        learning rate, or ``lr``), ``shrink`` (``1 - eta * lambda``, decoupled weight decay)
        and what the rule needs (Adam's bias corrections ``c1 = 1 - b1**(t+1)``, ``c2``)."""
        eta = float(self.learning_rate(step) if lr is None else lr)
        values = {"eta": eta}
        if self.weight_decay and self.decoupled_weight_decay:
            values["shrink"] = 1.0 - eta * self.weight_decay
        if self._per_step is not None:
            values.update(self._per_step(step))
        return values

    def update(
        self, params: PyTree, grads: PyTree, state: State, lr: float | None = None
    ) -> tuple[PyTree, State]:
        """Apply one update; return ``(new_params, new_state)``.

        ``lr`` overrides the configured learning rate / schedule for this step only.
        Inputs are not modified (except the slot buffers when ``inplace_state=True``).
        """
        t = int(state["step"])
        flat_params = [(path, np.asarray(p)) for path, p in _flatten(params)]
        flat_grads = [np.asarray(g) for g in _flatten_like(grads, params)]
        flat_slots = [[np.asarray(leaf) if self.inplace_state else np.array(leaf, copy=True)
                       for leaf in _flatten_like(state[s], params)] for s in self.slots]
        new_params, new_slots = self._leaves(flat_params, flat_grads, flat_slots,
                                             self.scalars(t, lr))
        new_state: State = {"step": np.asarray(t + 1, dtype=np.int64)}
        for k, slot in enumerate(self.slots):
            new_state[slot] = _unflatten(params, iter(new_slots[k]))
        return _unflatten(params, iter(new_params)), new_state

    def apply(self, params: PyTree, grads: PyTree, slots: Mapping[str, PyTree],
              scalars: Mapping[str, Any]) -> tuple[PyTree, dict[str, PyTree]]:
        """One update as a pure function of its inputs: ``(new_params, new_slots)``.

        What a compiled training step calls (``tg.trace``): the leaves may be Tensors, and
        ``scalars`` are ``self.scalars(t)`` passed as 0-d arrays of the parameters' dtype
        (inputs of the trace, since they change every step; the same numbers NumPy would
        make of the Python floats, so the same bits as :meth:`update`). ``slots`` maps each
        slot name to its tree. Nothing is modified: a trace records new values (and may write
        them into donated arrays).
        """
        flat_params = _flatten(params)
        flat_grads = _flatten_like(grads, params)
        flat_slots = [_flatten_like(slots[s], params) for s in self.slots]
        new_params, new_slots = self._leaves(flat_params, flat_grads, flat_slots, scalars)
        return (_unflatten(params, iter(new_params)),
                {slot: _unflatten(params, iter(new_slots[k]))
                 for k, slot in enumerate(self.slots)})

    def _leaves(self, flat_params: list[tuple[Path, Any]], flat_grads: list[Any],
                flat_slots: list[list[Any]], scalars: Mapping[str, Any]
                ) -> tuple[list[Any], list[list[Any]]]:
        """The update of every leaf (arrays, or Tensors in a trace): weight decay, the rule."""
        wd = self.weight_decay
        new_params: list[Any] = []
        new_slots: list[list[Any]] = [[] for _ in self.slots]
        for i, ((path, p), g) in enumerate(zip(flat_params, flat_grads, strict=True)):
            decay = wd != 0.0 and (
                self.weight_decay_mask is None or self.weight_decay_mask(_path_str(path), p)
            )
            if decay and not self.decoupled_weight_decay:
                # coupled L2: gradient of (wd/2)*||p||^2 added to g (g + wd * p, one array)
                decayed = np.multiply(p, wd)
                decayed += g
                g = decayed
            base = p
            if decay and self.decoupled_weight_decay:
                base = p * scalars["shrink"]  # AdamW-style: shrink p independently of g
            new_p, upd_slots = self._rule(base, g, tuple(s[i] for s in flat_slots), scalars)
            new_params.append(new_p)
            for k, s in enumerate(upd_slots):
                new_slots[k].append(s)
        return new_params, new_slots

    def state_to_arrays(self, state: State, prefix: str = "") -> dict[str, np.ndarray]:
        """Same as the module-level :func:`state_to_arrays`."""
        return state_to_arrays(state, prefix)

    def state_from_arrays(
        self, arrays: Mapping[str, np.ndarray], params: PyTree, prefix: str = ""
    ) -> State:
        """Rebuild a state for ``params`` from :meth:`state_to_arrays` output."""
        return state_from_arrays(arrays, self.init(params), prefix)


def state_to_arrays(state: State, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten a state into ``{prefix + "slot/key/...": array}`` (copies), e.g. for savez.

    Keys join the path with ``/``: ``"step"``, ``"m/W1"``, ``"v/b2"``...
    """
    out: dict[str, np.ndarray] = {}
    for path, leaf in _flatten(state):
        key = prefix + _path_str(path)
        if key in out:
            raise ValueError(f"ambiguous key {key!r} (a dict key contains '/')")
        out[key] = np.array(leaf, copy=True)
    return out


def state_from_arrays(
    arrays: Mapping[str, np.ndarray], template: State, prefix: str = ""
) -> State:
    """Inverse of :func:`state_to_arrays`; ``template`` (e.g. ``opt.init(params)``) gives the
    structure, shapes and dtypes.  Extra keys starting with ``prefix`` are an error."""
    flat = _flatten(template)
    leaves = []
    for path, ref in flat:
        key = prefix + _path_str(path)
        if key not in arrays:
            raise KeyError(f"missing optimizer state array {key!r}")
        arr = np.array(arrays[key], copy=True)
        ref = np.asarray(ref)
        if arr.shape != ref.shape or arr.dtype != ref.dtype:
            raise ValueError(
                f"{key!r}: got {arr.dtype}{arr.shape}, expected {ref.dtype}{ref.shape}"
            )
        leaves.append(arr)
    expected = {prefix + _path_str(path) for path, _ in flat}
    extra = [k for k in arrays if k.startswith(prefix) and k not in expected]
    if extra:
        raise ValueError(f"unexpected optimizer state arrays: {sorted(extra)}")
    return _unflatten(template, iter(leaves))


# --------------------------------------------------------------------------------------
# the optimizers
# --------------------------------------------------------------------------------------


def _common(
    weight_decay: float,
    decoupled_weight_decay: bool,
    weight_decay_mask: WeightDecayMask | None,
    inplace_state: bool,
) -> dict[str, Any]:
    if weight_decay < 0:
        raise ValueError("weight_decay must be >= 0")
    return {
        "weight_decay": float(weight_decay),
        "decoupled_weight_decay": bool(decoupled_weight_decay),
        "weight_decay_mask": weight_decay_mask,
        "inplace_state": bool(inplace_state),
    }


def sgd(
    lr: float | Schedule = 0.01,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    weight_decay_mask: WeightDecayMask | None = None,
    inplace_state: bool = False,
) -> Optimizer:
    """Plain gradient descent: ``p <- p - eta_t * g``.

    With ``weight_decay = lambda`` the default is *coupled* L2 regularisation,
    ``g <- g + lambda * p`` (the gradient of ``lambda/2 * ||p||^2``); with
    ``decoupled_weight_decay=True`` it is ``p <- p * (1 - eta_t * lambda) - eta_t * g``, which
    for SGD differs from the coupled form only in rounding.  ``weight_decay_mask(path, p)``
    (e.g. ``lambda path, p: p.ndim > 1`` to skip biases) selects which leaves are decayed.
    ``inplace_state`` is accepted for symmetry with the others; SGD keeps no buffers.
    """

    def rule(p, g, slots, scalars):
        return p - scalars["eta"] * g, slots

    return Optimizer(
        "sgd", lr, {}, (), rule,
        **_common(weight_decay, decoupled_weight_decay, weight_decay_mask, inplace_state),
    )


def momentum(
    lr: float | Schedule = 0.01,
    beta: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    weight_decay_mask: WeightDecayMask | None = None,
    inplace_state: bool = False,
) -> Optimizer:
    """Heavy-ball momentum (the PyTorch convention, no dampening), state ``velocity``::

        v <- beta * v + g
        p <- p - eta_t * v                      (heavy ball)
        p <- p - eta_t * (g + beta * v)         (nesterov=True, using the new v)

    ``v`` starts at zero.  Weight decay as in :func:`sgd` (coupled L2 by default, i.e. added to
    ``g`` before the velocity update; AdamW-style ``p * (1 - eta_t * lambda)`` if decoupled).
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError("beta must be in [0, 1)")
    beta = float(beta)

    def rule(p, g, slots, scalars):
        (v,) = slots
        eta = scalars["eta"]
        v *= beta
        v += g
        if not nesterov:
            return p - eta * v, (v,)
        step = v * beta  # g + beta * v, then times eta, in one array of ours (same bits)
        step += g
        step *= eta
        return p - step, (v,)

    return Optimizer(
        "momentum", lr, {"beta": beta, "nesterov": bool(nesterov)}, ("velocity",), rule,
        **_common(weight_decay, decoupled_weight_decay, weight_decay_mask, inplace_state),
    )


def adam(
    lr: float | Schedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    weight_decay_mask: WeightDecayMask | None = None,
    inplace_state: bool = False,
) -> Optimizer:
    """Adam (Kingma & Ba) with bias correction; state ``m`` and ``v``.  At step ``t = 1, 2, ..``::

        m <- b1 * m + (1 - b1) * g
        v <- b2 * v + (1 - b2) * g**2
        p <- p - eta * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)

    ``weight_decay = lambda``: coupled L2 by default (``g <- g + lambda * p`` *before* the
    moments, i.e. the original "Adam + L2", whose effective decay is rescaled per coordinate);
    ``decoupled_weight_decay=True`` gives AdamW, ``p <- p * (1 - eta * lambda)`` before the Adam
    step (note PyTorch's AdamW multiplies by ``eta * lambda`` like this, not ``lambda`` alone).
    """
    b1, b2, eps = float(b1), float(b2), float(eps)
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError("b1 and b2 must be in [0, 1)")

    def rule(p, g, slots, scalars):
        m, v = slots
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        m_hat = m / scalars["c1"]
        denom = np.sqrt(v / scalars["c2"])
        denom += eps
        return p - scalars["eta"] * (m_hat / denom), (m, v)

    def bias_corrections(t: int) -> dict[str, float]:  # of update number t + 1
        return {"c1": 1.0 - b1 ** (t + 1), "c2": 1.0 - b2 ** (t + 1)}

    return Optimizer(
        "adam", lr, {"b1": b1, "b2": b2, "eps": eps}, ("m", "v"), rule,
        **_common(weight_decay, decoupled_weight_decay, weight_decay_mask, inplace_state),
        _per_step=bias_corrections,
    )


_OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "sgd": sgd,
    "momentum": momentum,
    "adam": adam,
}


def get_optimizer(name: str, **kwargs: Any) -> Optimizer:
    """Build an optimizer by name: ``"sgd"``, ``"momentum"``, ``"nesterov"`` (momentum with
    ``nesterov=True``), ``"adam"`` or ``"adamw"`` (adam with decoupled weight decay).
    ``kwargs`` are passed to the constructor (``lr`` may be a float or a schedule)."""
    key = name.strip().lower()
    if key == "nesterov":
        return momentum(nesterov=True, **kwargs)
    if key == "adamw":
        return adam(decoupled_weight_decay=True, **kwargs)
    if key not in _OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}; choose from sgd, momentum, nesterov, adam, adamw"
        )
    return _OPTIMIZERS[key](**kwargs)
