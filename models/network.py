"""The paper's network as a tinygraph expression: 784 -> 64 sigmoid -> 10, softmax cross-entropy.

Depth, widths and the hidden activation are parameters; ``(784, 64, 10)`` with sigmoid is the
paper's. Parameters are a plain dict ``{"W1", "b1", "W2", "b2", ...}`` of NumPy arrays, so the
functional transforms and optimizers work on them directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg

ACTIVATIONS = {"sigmoid": tg.sigmoid, "tanh": tg.tanh, "relu": tg.relu}


def layer_sizes(params: dict[str, Any]) -> tuple[int, ...]:
    """(inputs, hidden..., outputs) read off the weight shapes W1, W2, ..."""
    count = sum(1 for key in params if key.startswith("W"))
    shapes = [np.shape(params[f"W{i}"]) for i in range(1, count + 1)]
    return (shapes[0][0], *(shape[1] for shape in shapes))


def logits(params: dict[str, Any], x: Any, activation: str = "sigmoid") -> Any:
    """The network's output scores: ``act(x @ W1 + b1) ... @ Wn + bn``, one scope per layer."""
    act = ACTIVATIONS[activation]
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
            batch_size: int = 10_000) -> np.ndarray:
    """Class ids for the rows of ``x`` (plain NumPy: no graph is recorded)."""
    return np.concatenate([
        np.argmax(np.asarray(logits(params, x[i:i + batch_size], activation)), axis=1)
        for i in range(0, len(x), batch_size)
    ]) if len(x) else np.zeros(0, dtype=np.int64)


def evaluate(params: dict[str, Any], x: np.ndarray, labels: np.ndarray,
             activation: str = "sigmoid", batch_size: int = 10_000) -> tuple[float, float]:
    """(mean loss, accuracy) over a data set, in batches, recording nothing."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], labels[i:i + batch_size]
        scores = np.asarray(logits(params, xb, activation))
        total_loss += float(tg.softmax_cross_entropy(scores, yb)) * len(xb)
        correct += int(np.sum(np.argmax(scores, axis=1) == yb))
    count = max(len(x), 1)
    return total_loss / count, correct / count
