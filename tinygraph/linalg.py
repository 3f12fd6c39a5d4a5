"""``tg.linalg``: NumPy's ``numpy.linalg`` names (inv, solve, det, slogdet, norm) as ops."""

from __future__ import annotations

__all__: list[str] = []
