"""The exporter's one-line errors, and the import of the optional ``onnx`` packages."""

from __future__ import annotations

import importlib
from typing import Any

from tinygraph.program import Equation

INSTALL_HINT = "pip install 'tinygraph[onnx]'"


class OnnxExportError(ValueError):
    """``f`` cannot be exported as asked; the message is one line naming the op and the line."""


def require(module: str = "onnx") -> Any:
    """Import ``onnx`` or ``onnxruntime``; when missing, an ImportError of one line saying what to
    install (tinygraph itself never needs them)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"tinygraph's ONNX support needs the {module} package, which is not "
                          f"installed: {INSTALL_HINT}") from None


def op_error(eq: Equation | None, message: str) -> OnnxExportError:
    """The one-line error about equation ``eq``: ``export_onnx: op: message (at file:line)``
    (without ``eq``, about the export as a whole)."""
    if eq is None:
        return OnnxExportError(f"export_onnx: {message}")
    site = f" (at {eq.site})" if eq.site else ""
    return OnnxExportError(f"export_onnx: {eq.prim.name}: {message}{site}")
