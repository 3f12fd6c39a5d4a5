"""``import tinygraph.numpy as np``: NumPy's names, differentiable where tinygraph has the op."""

from __future__ import annotations
