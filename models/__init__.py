"""The paper's network (and a LeNet-style CNN beside it), its data and its command-line tools.

They need the ``models`` extra (tqdm, matplotlib, Pillow) besides tinygraph itself:
``pip install -e '.[models]'``.
"""

from __future__ import annotations

import importlib.util

EXTRA = {"tqdm": "tqdm", "matplotlib": "matplotlib", "PIL": "pillow"}


def missing_extra() -> str | None:
    """A one-line error if a package of the ``models`` extra is not installed, else None."""
    missing = [package for module, package in EXTRA.items()
               if importlib.util.find_spec(module) is None]
    if not missing:
        return None
    return (f"error: the models tools need {', '.join(missing)}; install them with "
            "pip install -e '.[models]'")
