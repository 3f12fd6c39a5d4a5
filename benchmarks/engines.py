"""One SGD training step of the paper's 784-64-10 sigmoid network, written for each engine.

Every engine does the same work per step: forward, mean softmax cross-entropy, backward, and the
update ``p <- p - lr * grad`` of W1, b1, W2, b2. Each starts from its own copy of the same
parameters and keeps what a user's loop keeps: the last loss and the last gradients (read back by
the correctness check). The engines:

* ``numpy_hand`` -- the baseline: gradients derived by hand, every intermediate in a buffer
  allocated once per batch size, every operation with ``out=``, products through ``np.dot``
  (BLAS), the learning rate folded into the backward pass so the update is one in-place
  subtraction per parameter;
* ``tg_value_and_grad`` -- ``tg.value_and_grad(loss)(params, x, y)``, then new parameter arrays;
* ``tg_backward`` -- the PyTorch style: Tensors with ``requires_grad``, ``.backward()``, ``.grad``;
* ``tg_traced`` -- ``tg.trace(tg.value_and_grad(loss))``, when this tinygraph has ``trace``;
* ``tg_compiled`` -- the whole step (value_and_grad and the SGD update) as one compiled program,
  ``tg.trace(sgd_step, donate_argnums=0)``: the engine the compiled-step targets are about;
* ``torch_nn`` -- ``torch.nn.Sequential`` + ``CrossEntropyLoss`` + ``torch.optim.SGD``;
* ``torch_raw`` -- torch tensors with ``requires_grad`` and a hand-written update;
* ``mygrad`` -- MyGrad Tensors, ``loss.backward()``, ``.grad``, an in-place update of ``.data``;
* ``autograd`` -- HIPS autograd: ``value_and_grad`` of a loss written with ``autograd.numpy``;
* ``jax_jit`` -- JAX: the whole step (``value_and_grad`` and the update) under ``jax.jit``, CPU.

The last five are the peers a user would choose instead of tinygraph. None is a dependency: each
is imported inside its engine, and skipped (with the reason) when it is not installed.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

import tinygraph as tg
from benchmarks.harness import jax_module, optional_module, torch_module
from models.init import init_params as models_init_params

PARAM_NAMES = ("W1", "b1", "W2", "b2")
SIZES = (784, 64, 10)
LEARNING_RATE = 0.01  # the paper's


def loss(params: dict[str, Any], x: Any, y: Any) -> Any:
    """The network and its loss as a user writes them: mean softmax cross-entropy of the logits."""
    h = tg.sigmoid(x @ params["W1"] + params["b1"])
    return tg.softmax_cross_entropy(h @ params["W2"] + params["b2"], y)


def init_params(dtype: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Glorot-normal weights and zero biases, as ``models.init`` makes them."""
    return models_init_params(SIZES, method="xavier", seed=seed, dtype=dtype)


def random_batch(size: int, dtype: Any, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-like inputs in [0, 1) and class ids 0..9."""
    rng = np.random.default_rng(seed)
    return rng.random((size, SIZES[0]), dtype=np.float64).astype(dtype), rng.integers(0, 10, size)


class Engine:
    """One way of writing the training step. Subclasses fill in the four methods."""

    name = "engine"
    label = "engine"
    runtime = "numpy"  # whose native thread pools it uses (see harness.interleaved)
    requires: str | None = None  # the optional package it needs, by import name
    package = ""                 # that package as its users call it, for the skip reason

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        self.lr = lr
        self.dtype = params["W1"].dtype

    def prepare(self, x: np.ndarray, y: np.ndarray) -> Any:
        """The batch in the engine's own types (outside the timed step)."""
        return x, y

    def step(self, batch: Any) -> None:
        """One training step on ``batch``."""
        raise NotImplementedError

    def last_loss(self) -> float:
        """The loss the last step computed (before its update)."""
        raise NotImplementedError

    def last_grads(self) -> dict[str, np.ndarray]:
        """The gradients the last step applied."""
        raise NotImplementedError

    def params(self) -> dict[str, np.ndarray]:
        """The current parameters, as NumPy arrays."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# The baseline: hand-written NumPy
# ---------------------------------------------------------------------------------------------

class _Buffers:
    """Every intermediate of one batch size, allocated once."""

    def __init__(self, size: int, dtype: np.dtype) -> None:
        hidden, classes = SIZES[1], SIZES[2]
        self.rows = np.arange(size)
        self.hidden = np.empty((size, hidden), dtype)       # pre-activation, then sigmoid
        self.slope = np.empty((size, hidden), dtype)        # sigmoid' = h (1 - h)
        self.delta_hidden = np.empty((size, hidden), dtype)
        self.logits = np.empty((size, classes), dtype)      # logits, then shifted logits
        self.delta_logits = np.empty((size, classes), dtype)  # exp, then d loss / d logits
        self.row_max = np.empty((size, 1), dtype)
        self.row_sum = np.empty((size, 1), dtype)


class HandNumpy(Engine):
    """The baseline: the fastest stable step a careful person writes by hand with NumPy."""

    name = "numpy_hand"
    label = "hand-written NumPy"

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        super().__init__(params, lr)
        self.W1, self.b1, self.W2, self.b2 = (params[k].copy() for k in PARAM_NAMES)
        self.step_W1, self.step_b1, self.step_W2, self.step_b2 = (
            np.empty_like(params[k]) for k in PARAM_NAMES)
        self._buffers: dict[int, _Buffers] = {}
        self._loss = np.nan
        self._scale = 1.0

    def forward_backward(self, x: np.ndarray, y: np.ndarray, scale: float) -> float:
        """The loss; leaves ``scale * gradient`` of every parameter in ``step_W1`` etc."""
        size = x.shape[0]
        buffers = self._buffers.get(size)
        if buffers is None:
            buffers = self._buffers[size] = _Buffers(size, self.dtype)
        h, logits, delta = buffers.hidden, buffers.logits, buffers.delta_logits
        row_max, row_sum = buffers.row_max, buffers.row_sum
        # np.dot, not np.matmul: at batch 1, x.T @ delta is an outer product that np.matmul
        # computes without BLAS (5x slower here); np.dot sends every product here to BLAS
        np.dot(x, self.W1, out=h)
        np.add(h, self.b1, out=h)
        # sigmoid(z) = (1 + tanh(z / 2)) / 2: one transcendental, no overflow for any z
        np.multiply(h, 0.5, out=h)
        np.tanh(h, out=h)
        np.multiply(h, 0.5, out=h)
        np.add(h, 0.5, out=h)
        np.dot(h, self.W2, out=logits)
        np.add(logits, self.b2, out=logits)
        # log softmax(z) = (z - max z) - log sum exp(z - max z): exp never overflows
        np.max(logits, axis=1, keepdims=True, out=row_max)
        np.subtract(logits, row_max, out=logits)
        np.exp(logits, out=delta)
        np.sum(delta, axis=1, keepdims=True, out=row_sum)
        picked = logits[buffers.rows, y]
        loss = (np.log(row_sum).sum() - picked.sum()) / size
        # d loss / d logits = (softmax - onehot) / N, here times scale
        np.divide(scale / size, row_sum, out=row_sum)
        np.multiply(delta, row_sum, out=delta)
        delta[buffers.rows, y] -= scale / size
        np.dot(h.T, delta, out=self.step_W2)
        np.sum(delta, axis=0, out=self.step_b2)
        delta_h, slope = buffers.delta_hidden, buffers.slope
        np.dot(delta, self.W2.T, out=delta_h)
        np.subtract(1, h, out=slope)
        np.multiply(slope, h, out=slope)
        np.multiply(delta_h, slope, out=delta_h)
        np.dot(x.T, delta_h, out=self.step_W1)
        np.sum(delta_h, axis=0, out=self.step_b1)
        return loss

    def step(self, batch: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = batch
        # the learning rate rides along in the backward pass: the steps come out ready to apply
        self._loss = self.forward_backward(x, y, self.lr)
        self._scale = self.lr
        np.subtract(self.W1, self.step_W1, out=self.W1)
        np.subtract(self.b1, self.step_b1, out=self.b1)
        np.subtract(self.W2, self.step_W2, out=self.W2)
        np.subtract(self.b2, self.step_b2, out=self.b2)

    def last_loss(self) -> float:
        return float(self._loss)

    def last_grads(self) -> dict[str, np.ndarray]:
        steps = (self.step_W1, self.step_b1, self.step_W2, self.step_b2)
        return {k: v / self._scale for k, v in zip(PARAM_NAMES, steps)}

    def params(self) -> dict[str, np.ndarray]:
        return dict(zip(PARAM_NAMES, (self.W1, self.b1, self.W2, self.b2)))


# ---------------------------------------------------------------------------------------------
# tinygraph
# ---------------------------------------------------------------------------------------------

class TinygraphValueAndGrad(Engine):
    """``value, grads = tg.value_and_grad(loss)(params, x, y)``; ``params = {k: p - lr * g}``."""

    name = "tg_value_and_grad"
    label = "tinygraph eager, value_and_grad"

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        super().__init__(params, lr)
        self._params = {k: v.copy() for k, v in params.items()}
        self._value_and_grad = self.transform(loss)
        self._loss: Any = np.nan
        self._grads: dict[str, np.ndarray] = {}

    def transform(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return tg.value_and_grad(function)

    def step(self, batch: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = batch
        value, grads = self._value_and_grad(self._params, x, y)
        lr = self.lr
        self._params = {k: p - lr * grads[k] for k, p in self._params.items()}
        self._loss, self._grads = value, grads

    def last_loss(self) -> float:
        return float(self._loss)

    def last_grads(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._grads.items()}

    def params(self) -> dict[str, np.ndarray]:
        return self._params


class TinygraphTraced(TinygraphValueAndGrad):
    """``step = tg.trace(tg.value_and_grad(loss))``; ``value, grads = step(params, x, y)``."""

    name = "tg_traced"
    label = "tinygraph traced"

    def transform(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return tg.trace(tg.value_and_grad(function))  # type: ignore[attr-defined]


class TinygraphCompiled(TinygraphValueAndGrad):
    """The whole step as one compiled program, parameters donated (updated in place)::

        def sgd_step(params, x, y):
            value, grads = tg.value_and_grad(loss)(params, x, y)
            return value, {k: params[k] - lr * grads[k] for k in params}
        step = tg.trace(sgd_step, donate_argnums=0, fold_scale=True)

    The program returns no gradients (they never leave it); for the agreement check, the
    gradients of the first step are recomputed eagerly from a copy of the parameters it took.
    """

    name = "tg_compiled"
    label = "tinygraph compiled, whole step"

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        super().__init__(params, lr)

        def sgd_step(p: dict[str, Any], x: Any, y: Any) -> tuple[Any, dict[str, Any]]:
            value, grads = tg.value_and_grad(loss)(p, x, y)
            return value, {k: p[k] - lr * grads[k] for k in p}

        # fold_scale: lr rides in the reverse pass, as in the hand-written step (equal to rounding)
        self._step = tg.trace(sgd_step, donate_argnums=0,  # type: ignore[attr-defined]
                              fold_scale=True)
        self._first: tuple | None = None
        self._steps = 0

    def step(self, batch: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = batch
        if self._steps == 0:  # kept for last_grads (the agreement check)
            self._first = ({k: v.copy() for k, v in self._params.items()}, x, y)
        self._steps += 1
        self._loss, self._params = self._step(self._params, x, y)

    def last_grads(self) -> dict[str, np.ndarray]:
        if self._steps != 1 or self._first is None:
            raise RuntimeError("tg_compiled: gradients are known for the first step only")
        params, x, y = self._first
        return tg.grad(loss)(params, x, y)


class _TensorsEngine(Engine):
    """An engine holding its parameters as ``self._tensors`` with ``.data`` and ``.grad``, and
    its last loss as ``self._loss``: the accessors are the same for every such library."""

    _tensors: dict[str, Any]
    _loss: Any

    def last_loss(self) -> float:
        return float(self._loss.item())

    def last_grads(self) -> dict[str, np.ndarray]:
        return {k: np.array(t.grad) for k, t in self._tensors.items()}

    def params(self) -> dict[str, np.ndarray]:
        return {k: t.data for k, t in self._tensors.items()}


class TinygraphBackward(_TensorsEngine):
    """Tensors with ``requires_grad``: zero the grads, ``loss.backward()``, update ``.data``."""

    name = "tg_backward"
    label = "tinygraph eager, Tensor.backward"

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        super().__init__(params, lr)
        self._tensors = {k: tg.Tensor(v.copy(), requires_grad=True, name=k)
                         for k, v in params.items()}
        self._loss: Any = None

    def step(self, batch: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = batch
        tensors = self._tensors
        for tensor in tensors.values():
            tensor.zero_grad()
        value = loss(tensors, x, y)
        value.backward()
        lr = self.lr
        for tensor in tensors.values():
            tensor.data -= lr * tensor.grad
        self._loss = value.data  # the number, not the Tensor: that would keep the whole graph



# ---------------------------------------------------------------------------------------------
# PyTorch (optional)
# ---------------------------------------------------------------------------------------------

class _TorchEngine(Engine):
    runtime = "torch"
    requires = "torch"
    package = "PyTorch"

    def prepare(self, x: np.ndarray, y: np.ndarray) -> Any:
        torch = torch_module()
        assert torch is not None
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))

    def last_loss(self) -> float:
        return float(self._loss.item())


class TorchNN(_TorchEngine):
    """``torch.nn.Sequential(Linear, Sigmoid, Linear)``, ``CrossEntropyLoss``, ``optim.SGD``."""

    name = "torch_nn"
    label = "PyTorch eager, torch.nn"

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        super().__init__(params, lr)
        torch = torch_module()
        assert torch is not None
        nn = torch.nn
        dtype = getattr(torch, self.dtype.name)
        self.model = nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.Sigmoid(),
                                   nn.Linear(SIZES[1], SIZES[2])).to(dtype)
        with torch.no_grad():  # torch keeps weights as (out, in)
            for layer, w, b in ((self.model[0], "W1", "b1"), (self.model[2], "W2", "b2")):
                layer.weight.copy_(torch.from_numpy(params[w].T.copy()))
                layer.bias.copy_(torch.from_numpy(params[b].copy()))
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self._loss: Any = None

    def step(self, batch: Any) -> None:
        x, y = batch
        self.optimizer.zero_grad()
        value = self.criterion(self.model(x), y)
        value.backward()
        self.optimizer.step()
        self._loss = value

    def _layers(self) -> list[tuple[str, Any]]:
        first, second = self.model[0], self.model[2]
        return [("W1", first.weight), ("b1", first.bias), ("W2", second.weight),
                ("b2", second.bias)]

    def last_grads(self) -> dict[str, np.ndarray]:
        return {k: _from_torch(p.grad, k) for k, p in self._layers()}

    def params(self) -> dict[str, np.ndarray]:
        return {k: _from_torch(p, k) for k, p in self._layers()}


class TorchRaw(_TorchEngine):
    """Torch tensors with ``requires_grad``, ``F.cross_entropy``, an update under ``no_grad``."""

    name = "torch_raw"
    label = "PyTorch eager, raw tensors"

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        super().__init__(params, lr)
        torch = torch_module()
        assert torch is not None
        self.torch = torch
        self.tensors = {k: torch.tensor(params[k], requires_grad=True) for k in PARAM_NAMES}
        self._loss: Any = None

    def step(self, batch: Any) -> None:
        x, y = batch
        torch, p = self.torch, self.tensors
        for tensor in p.values():
            tensor.grad = None
        hidden = torch.sigmoid(x @ p["W1"] + p["b1"])
        value = torch.nn.functional.cross_entropy(hidden @ p["W2"] + p["b2"], y)
        value.backward()
        with torch.no_grad():
            for tensor in p.values():
                tensor.sub_(tensor.grad, alpha=self.lr)
        self._loss = value

    def last_grads(self) -> dict[str, np.ndarray]:
        return {k: t.grad.detach().numpy().copy() for k, t in self.tensors.items()}

    def params(self) -> dict[str, np.ndarray]:
        return {k: t.detach().numpy().copy() for k, t in self.tensors.items()}


def _from_torch(tensor: Any, key: str) -> np.ndarray:
    array = tensor.detach().numpy()
    return array.T.copy() if key.startswith("W") else array.copy()


# ---------------------------------------------------------------------------------------------
# The other autodiff libraries on NumPy or XLA (optional): MyGrad, HIPS autograd, JAX
# ---------------------------------------------------------------------------------------------

class MyGrad(_TensorsEngine):
    """MyGrad Tensors: ``loss.backward()``, then ``p.data -= lr * p.grad`` (MyGrad's own style).

    MyGrad clears a Tensor's ``.grad`` when the Tensor enters a new operation, so there is no
    ``zero_grad``; its memory guard (arrays in a graph are read-only until ``backward``) stays
    on, as MyGrad ships.
    """

    name = "mygrad"
    label = "MyGrad"
    requires = "mygrad"
    package = "MyGrad"

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        super().__init__(params, lr)
        import mygrad
        from mygrad.nnet.activations import sigmoid
        from mygrad.nnet.losses import softmax_crossentropy

        self._sigmoid, self._cross_entropy = sigmoid, softmax_crossentropy
        self._tensors = {k: mygrad.tensor(params[k].copy()) for k in PARAM_NAMES}
        self._loss: Any = None
        self._grads: dict[str, np.ndarray] = {}

    def step(self, batch: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = batch
        p = self._tensors
        hidden = self._sigmoid(x @ p["W1"] + p["b1"])
        value = self._cross_entropy(hidden @ p["W2"] + p["b2"], y)
        value.backward()
        lr = self.lr
        for tensor in p.values():
            tensor.data -= lr * tensor.grad
        self._loss = value



@functools.cache
def _autograd_value_and_grad() -> Callable[..., Any]:
    """``autograd.value_and_grad`` of the loss written with ``autograd.numpy`` (made once)."""
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import expit, logsumexp

    def autograd_loss(params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Any:
        hidden = expit(anp.dot(x, params["W1"]) + params["b1"])
        logits = anp.dot(hidden, params["W2"]) + params["b2"]
        log_probs = logits - logsumexp(logits, axis=1, keepdims=True)
        return -anp.mean(log_probs[anp.arange(len(y)), y])

    return autograd.value_and_grad(autograd_loss)


class HipsAutograd(TinygraphValueAndGrad):
    """HIPS autograd: ``value, grads = value_and_grad(loss)(params, x, y)``, new arrays."""

    name = "autograd"
    label = "HIPS autograd"
    requires = "autograd"
    package = "HIPS autograd"

    def transform(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return _autograd_value_and_grad()  # the same loss, in autograd.numpy


@functools.cache
def _jax_step(lr: float) -> Callable[..., Any]:
    """``jax.jit`` of the whole step: value_and_grad and the SGD update (made once per lr).

    Made once so that every engine shares one jitted function and its compilation cache.
    """
    jax = jax_module()
    assert jax is not None
    jnp = jax.numpy

    def jax_loss(params: dict[str, Any], x: Any, y: Any) -> Any:
        hidden = jax.nn.sigmoid(x @ params["W1"] + params["b1"])
        log_probs = jax.nn.log_softmax(hidden @ params["W2"] + params["b2"], axis=1)
        return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))

    def jax_step(params: dict[str, Any], x: Any, y: Any) -> tuple[Any, Any, Any]:
        value, grads = jax.value_and_grad(jax_loss)(params, x, y)
        updated = jax.tree.map(lambda p, g: p - lr * g, params, grads)
        return updated, value, grads

    return jax.jit(jax_step)


class JaxJit(Engine):
    """JAX on the CPU: ``params, loss, grads = jax.jit(step)(params, x, y)``, blocked on.

    Every step waits for its results (``jax.block_until_ready``), or the timing would see only
    JAX's asynchronous dispatch. Compilation is not timed: :meth:`prepare` runs the jitted
    step once (untimed, results discarded) for every batch shape it has not seen. float64 runs
    inside ``jax.enable_x64`` (JAX computes in float32 otherwise); float32 uses JAX's defaults.
    """

    name = "jax_jit"
    label = "JAX jit"
    runtime = "jax"
    requires = "jax"
    package = "JAX"

    def __init__(self, params: dict[str, np.ndarray], lr: float = LEARNING_RATE) -> None:
        super().__init__(params, lr)
        jax = jax_module()
        assert jax is not None
        self.jax = jax
        self._x64 = self.dtype == np.float64
        self._compiled: set[tuple[Any, ...]] = set()
        with self._context():
            self._params = {k: jax.numpy.array(params[k], copy=True) for k in PARAM_NAMES}
            self._step = _jax_step(lr)
        self._loss: Any = np.nan
        self._grads: dict[str, Any] = {}

    def _context(self) -> Any:
        """64-bit JAX for a float64 engine; JAX's defaults otherwise."""
        return self.jax.enable_x64(True) if self._x64 else contextlib.nullcontext()

    def prepare(self, x: np.ndarray, y: np.ndarray) -> Any:
        jax = self.jax
        with self._context():
            batch = jax.device_put(x), jax.device_put(y.astype(np.int32))
            key = (x.shape, x.dtype.str)
            if key not in self._compiled:  # compile (and warm up) outside the timed steps
                jax.block_until_ready(self._step(self._params, *batch))
                self._compiled.add(key)
        return batch

    def step(self, batch: Any) -> None:
        with self._context():  # a nullcontext in float32 (~0.1 us), enable_x64 ~1 us
            self._params, self._loss, self._grads = self.jax.block_until_ready(
                self._step(self._params, *batch))

    def last_loss(self) -> float:
        return float(self._loss)

    def last_grads(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._grads.items()}

    def params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._params.items()}


# ---------------------------------------------------------------------------------------------
# Which engines this machine has
# ---------------------------------------------------------------------------------------------

BASELINE = HandNumpy.name
ALL_ENGINES: tuple[type[Engine], ...] = (HandNumpy, TinygraphValueAndGrad, TinygraphBackward,
                                        TinygraphTraced, TinygraphCompiled, TorchNN, TorchRaw,
                                        MyGrad, HipsAutograd, JaxJit)
PEERS = tuple(engine.name for engine in ALL_ENGINES if engine.requires)
ENGINES = {engine.name: engine for engine in ALL_ENGINES}


def runtime_groups(names: list[str]) -> list[list[str]]:
    """The engine names grouped by runtime, NumPy's first (the baseline's)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(ENGINES[name].runtime, []).append(name)
    return sorted(groups.values(), key=lambda group: ENGINES[group[0]].runtime != "numpy")


def installed(module: str) -> bool:
    """Whether the optional package ``module`` imports (JAX through :func:`jax_module`)."""
    if module == "torch":
        return torch_module() is not None
    if module == "jax":
        return jax_module() is not None
    return optional_module(module) is not None


def available_engines() -> tuple[dict[str, type[Engine]], dict[str, str]]:
    """The engines that can run here, and why each of the others cannot.

    This imports the optional packages that are installed: JAX's XLA flags
    (:func:`benchmarks.harness.configure_xla`) must be set before.
    """
    available: dict[str, type[Engine]] = {}
    skipped: dict[str, str] = {}
    found: dict[str, bool] = {}
    for engine in ALL_ENGINES:
        if engine.requires and engine.requires not in found:
            found[engine.requires] = installed(engine.requires)
        if engine in (TinygraphTraced, TinygraphCompiled) and not hasattr(tg, "trace"):
            skipped[engine.name] = "this tinygraph has no tg.trace yet"
        elif engine.requires and not found[engine.requires]:
            skipped[engine.name] = f"{engine.package} is not installed"
        else:
            available[engine.name] = engine
    return available, skipped
