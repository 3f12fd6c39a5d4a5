"""Network layers as ops: convolution, pooling, dropout."""

from __future__ import annotations

__all__: list[str] = []
