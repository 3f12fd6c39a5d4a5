"""Elementwise functions: exponentials and logarithms, trigonometric, hyperbolic, special."""

from __future__ import annotations

__all__: list[str] = []
