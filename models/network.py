"""The paper's network as a tinygraph expression: 784 -> 64 sigmoid -> 10, softmax cross-entropy.

Depth, widths and the hidden activation are parameters; ``(784, 64, 10)`` with sigmoid is the
paper's. Parameters are a plain dict ``{"W1", "b1", "W2", "b2", ...}`` of NumPy arrays, so the
functional transforms and optimizers work on them directly.

The functions here serve both architectures, told apart by the parameters' names
(:func:`architecture`): the MLP above (``"mlp"``) and the LeNet-style convolutional network of
:mod:`models.cnn` (``"cnn"``, ``conv1_w``, ...). Both read flat rows of 784 pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg
from models import cnn

ACTIVATIONS = {"sigmoid": tg.sigmoid, "tanh": tg.tanh, "relu": tg.relu}
ARCHITECTURES = ("mlp", "cnn")
EVAL_BATCH = {"mlp": 10_000, "cnn": 1_000}  # a CNN batch's windows take 25x its pixels


def architecture(params: dict[str, Any]) -> str:
    """``"mlp"`` (W1, b1, ...) or ``"cnn"`` (conv1_w, ...), checked against the shapes; a
    ValueError of one line for anything else."""
    keys = set(params)
    if any(key.startswith("conv") for key in keys):
        cnn.layout(params)  # raises on a damaged layout
        return "cnn"
    count = sum(1 for key in keys if key.startswith("W"))
    expected = {f"{p}{i}" for i in range(1, count + 1) for p in "Wb"}
    if count and keys == expected:
        shapes = [np.shape(params[f"W{i}"]) for i in range(1, count + 1)]
        chained = all(len(s) == 2 for s in shapes) and all(
            a[1] == b[0] for a, b in zip(shapes, shapes[1:])) and all(
            np.shape(params[f"b{i}"]) == (s[1],) for i, s in enumerate(shapes, start=1))
        if chained:
            return "mlp"
        raise ValueError(f"the MLP's weights do not chain: {[tuple(s) for s in shapes]}")
    names = ", ".join(sorted(keys)[:8]) + (", ..." if len(keys) > 8 else "")
    raise ValueError(f"unknown network layout ({names or 'no arrays'}): expected the MLP's "
                     "W1, b1, W2, b2, ... or the CNN's conv1_w, conv1_b, conv2_w, ..., fc1_w, ...")


def describe(params: dict[str, Any]) -> str:
    """The network in a few words: ``784-64-10`` or the CNN's layers."""
    if architecture(params) == "cnn":
        return cnn.describe(params)
    return "-".join(map(str, layer_sizes(params)))


def input_size(params: dict[str, Any]) -> int:
    """Pixels per input row the network reads (784 for the CNN)."""
    if architecture(params) == "cnn":
        return cnn.IMAGE * cnn.IMAGE
    return int(np.shape(params["W1"])[0])


def dtype_of(params: dict[str, Any]) -> np.dtype:
    """The parameters' floating-point type (inputs are converted to it)."""
    return np.result_type(*params.values())


def layer_sizes(params: dict[str, Any]) -> tuple[int, ...]:
    """(inputs, hidden..., outputs) read off the weight shapes W1, W2, ..."""
    count = sum(1 for key in params if key.startswith("W"))
    shapes = [np.shape(params[f"W{i}"]) for i in range(1, count + 1)]
    return (shapes[0][0], *(shape[1] for shape in shapes))


def logits(params: dict[str, Any], x: Any, activation: str = "sigmoid") -> Any:
    """The network's output scores: ``act(x @ W1 + b1) ... @ Wn + bn``, one scope per layer (or
    the CNN's, for its parameters)."""
    act = ACTIVATIONS[activation]
    if "conv1_w" in params:
        return cnn.logits(params, x, act)
    count = len(layer_sizes(params)) - 1
    h = x
    for i in range(1, count + 1):
        last = i == count
        with tg.scope("output" if last else f"hidden{i}" if count > 2 else "hidden"):
            h = h @ params[f"W{i}"] + params[f"b{i}"]
            if not last:
                h = act(h)
    return h


def loss(params: dict[str, Any], x: Any, labels: Any, activation: str = "sigmoid") -> Any:
    """Mean softmax cross-entropy of the network on a batch (labels: ids or one-hot)."""
    scores = logits(params, x, activation)
    with tg.scope("loss"):
        return tg.softmax_cross_entropy(scores, labels)


def predict(params: dict[str, Any], x: np.ndarray, activation: str = "sigmoid",
            batch_size: int | None = None) -> np.ndarray:
    """Class ids for the rows of ``x`` (plain NumPy: no graph is recorded)."""
    batch_size = batch_size or EVAL_BATCH[architecture(params)]
    return np.concatenate([
        np.argmax(np.asarray(logits(params, x[i:i + batch_size], activation)), axis=1)
        for i in range(0, len(x), batch_size)
    ]) if len(x) else np.zeros(0, dtype=np.int64)


def evaluate(params: dict[str, Any], x: np.ndarray, labels: np.ndarray,
             activation: str = "sigmoid", batch_size: int | None = None) -> tuple[float, float]:
    """(mean loss, accuracy) over a data set, in batches, recording nothing."""
    batch_size = batch_size or EVAL_BATCH[architecture(params)]
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], labels[i:i + batch_size]
        scores = np.asarray(logits(params, xb, activation))
        total_loss += float(tg.softmax_cross_entropy(scores, yb)) * len(xb)
        correct += int(np.sum(np.argmax(scores, axis=1) == yb))
    count = max(len(x), 1)
    return total_loss / count, correct / count
