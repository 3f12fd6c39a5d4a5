"""NumPy dispatch: ``np.sin(t)``, ``np.sum(t)``, ``np.concatenate([t, u])`` record tinygraph ops."""

from __future__ import annotations
