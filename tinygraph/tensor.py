"""The Tensor: an array plus the record of the primitive that made it.

A Tensor is a node of the computation graph. A leaf has no primitive; a recorded node keeps its
primitive, its inputs (Tensors or constants), the primitive's parameters (axis, shape, ...) and the
scope it was made in. Nothing is copied: ``data`` is the forward result itself.

This file imports nothing above it: what a Tensor does with ops is installed on the class by the
modules that own it, next to the code it calls, so that this file knows no op by name.
:mod:`tinygraph.ops.operators` installs the operators and array methods (``+``, ``@``, ``t[i]``,
``t.sum()``), :mod:`tinygraph.ops.dispatch` NumPy's hooks, :mod:`tinygraph.composites`
``t.mean()``, :mod:`tinygraph.autodiff` ``t.backward()`` and :mod:`tinygraph.viz` the drawing
that Jupyter shows (``_repr_mimebundle_``). ``import tinygraph`` loads all of them.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from tinygraph.state import STATE, refuse_leaving_the_graph

if TYPE_CHECKING:
    from tinygraph.primitive import Primitive

_KEPT_DTYPES = (np.float16, np.float32, np.float64)
_NO_PARAMS: dict = {}  # shared by nodes without parameters; never mutated
_CLOCK = itertools.count(1)  # stamps of recorded nodes and of in-place updates
LAST_CHANGE = [0]  # the stamp of the latest in-place update (0: none yet)


def mark_changed(tensor: Tensor) -> None:
    """Note that ``tensor``'s array was just updated in place (see ``Tensor._changed``)."""
    tensor._changed = LAST_CHANGE[0] = next(_CLOCK)


class Released:
    """Stands in for the array of an intermediate node that a reverse pass freed: no backward
    rule reads its values (``Primitive.rule_reads``) and nothing but the graph held the node
    (no variable, container, name or weak reference).

    It keeps what rules and the pass may still ask of it, the shape and dtype; any use of its
    values raises a RuntimeError that says so (never a silent wrong answer). Walking the graph
    (``Tensor.inputs``, ``tg.toposort``) after such a pass can reach one.
    """

    __slots__ = ("shape", "dtype")

    def __init__(self, array: np.ndarray) -> None:
        self.shape, self.dtype = array.shape, array.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"tinygraph: {self!r}: its values are gone")

    __array__ = __getitem__ = __iter__ = __len__ = __float__ = __int__ = __bool__ = _refuse
    __reduce_ex__ = __copy__ = __deepcopy__ = _refuse

    def __getattr__(self, name: str) -> Any:  # any other array attribute (.copy, .item, .T)
        if name.startswith("__"):  # protocols probed with hasattr/getattr fall back as usual
            raise AttributeError(name)
        self._refuse()

    def __repr__(self) -> str:
        return (f"<released array, shape {self.shape}, {self.dtype}: an intermediate that no "
                "backward rule reads, freed by a reverse pass>")


def as_float_array(data: Any) -> np.ndarray:
    """``np.asarray(data)``: float16/32/64 keep their dtype; ints, bools, numbers become float64."""
    array = data.data if isinstance(data, Tensor) else np.asarray(data)
    if array.dtype.type in _KEPT_DTYPES:
        return array
    if array.dtype.kind in "biu":
        return array.astype(np.float64)
    raise TypeError(
        f"tinygraph.Tensor: cannot hold data of dtype {array.dtype} "
        "(use float16/32/64, integers or booleans)"
    )


class Tensor:
    """An n-dimensional array that records how it was computed.

    ``Tensor(data, requires_grad=False, name=None)`` wraps ``np.asarray(data)`` without copying
    (integers become float64; booleans stay a mask, as comparisons make).
    After ``backward()``, ``.grad`` holds d(output)/d(self), summed over every backward call.
    """

    # ``_site`` (file:line of the user's code that made the node) is set only under
    # detect_anomaly or while tracing, and read with getattr(node, "_site", None).
    # ``_stamp``: when a recorded node was made; ``_changed``: when its array was last updated
    # in place (``-=`` under no_grad), on the same clock: a pass refuses a node made before an
    # input of it changed (its rule would read the new values).
    __slots__ = ("data", "grad", "requires_grad", "name", "_prim", "_inputs", "_params",
                 "_scope", "_retain", "_site", "_stamp", "_changed", "__weakref__")
    # NumPy must defer to us: ``ndarray @ Tensor`` calls Tensor.__rmatmul__, not an object ufunc.
    __array_ufunc__ = None

    data: np.ndarray
    grad: np.ndarray | Tensor | None
    requires_grad: bool
    name: str | None
    _prim: Primitive | None
    _inputs: tuple
    _params: dict
    _scope: tuple
    _retain: bool

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None) -> None:
        if isinstance(data, (list, tuple)) and _holds_graph(data):
            raise TypeError("tinygraph.Tensor: the list holds Tensors that require grad or have "
                            "a graph, which a new leaf would cut off; stack them with "
                            "tg.stack([...]) or tinygraph.numpy.array([...]) to keep the graph "
                            "(or pass t.detach() to mean constants)")
        array = data.data if isinstance(data, Tensor) else np.asarray(data)
        if array.dtype == np.bool_:  # a mask, as comparisons make: indexes by truth, no gradient
            if requires_grad:
                raise TypeError("tinygraph.Tensor: a boolean Tensor (a mask) cannot require "
                                "grad; convert it with .astype(float) first")
        else:
            array = as_float_array(array)
        self._fill(array, bool(requires_grad), None, (), {})
        self.name = name

    @classmethod
    def node(cls, data: np.ndarray, requires_grad: bool = False, prim: Primitive | None = None,
             inputs: tuple = (), params: dict | None = None,
             scope: tuple[str, ...] | None = None) -> Tensor:
        """A Tensor around an array as it is (no dtype rules, no copy): for ops and tracing.
        ``scope`` defaults to the calling thread's current scope."""
        tensor = cls.__new__(cls)  # the slots set here, not in _fill: one call less per node
        tensor.data = data
        tensor.grad = None
        tensor.requires_grad = requires_grad
        tensor.name = None
        tensor._prim = prim
        tensor._inputs = inputs
        tensor._params = _NO_PARAMS if params is None else params
        tensor._scope = STATE.scope if scope is None else scope
        tensor._retain = False
        tensor._stamp = next(_CLOCK) if prim is not None else 0
        tensor._changed = 0
        return tensor

    def _fill(self, data: np.ndarray, requires_grad: bool, prim: Primitive | None,
              inputs: tuple, params: dict) -> None:
        """Set every slot (``node`` sets the same ones, inline, for speed)."""
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.name = None
        self._prim = prim
        self._inputs = inputs
        self._params = params
        self._scope = STATE.scope
        self._retain = False
        self._stamp = next(_CLOCK) if prim is not None else 0
        self._changed = 0

    # -- array-like attributes ------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        refuse_leaving_the_graph("Tensor.item()")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (not a copy)."""
        refuse_leaving_the_graph("Tensor.numpy()")
        if type(self.data) is Released:
            self.data._refuse()
        return self.data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        refuse_leaving_the_graph("converting a Tensor to a NumPy array")
        if type(self.data) is Released:
            self.data._refuse()
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        if dtype is None or np.dtype(dtype) == self.data.dtype:
            return self.data
        if copy is False:  # NumPy 2's contract: say so when a copy cannot be avoided
            raise ValueError(f"a Tensor of {self.data.dtype} cannot become {np.dtype(dtype)} "
                             "without a copy")
        return self.data.astype(dtype)

    def __bool__(self) -> bool:
        """The truth of a one-element tensor (NumPy's rule: larger ones are ambiguous)."""
        refuse_leaving_the_graph("the truth value of a Tensor")
        return bool(self.data)

    @property
    def op(self) -> Primitive | None:
        """The primitive that made this tensor, or None for a leaf."""
        return self._prim

    @property
    def inputs(self) -> tuple:
        """The recorded inputs (Tensors or constants) of the primitive that made this tensor."""
        return self._inputs

    @property
    def params(self) -> dict:
        """The primitive's parameters (axis, shape, index, ...)."""
        return self._params

    @property
    def scope(self) -> tuple[str, ...]:
        """The nested scope names this tensor was made in (see ``tinygraph.scope``)."""
        return self._scope

    @property
    def is_leaf(self) -> bool:
        return self._prim is None

    def __repr__(self) -> str:
        parts = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self.name is not None:
            parts.insert(0, f"name={self.name!r}")
        if self._prim is not None:
            parts.append(f"op={self._prim.name}")
        if self.requires_grad:
            parts.append("requires_grad=True")
        if type(self.data) is Released:
            body = "released: no backward rule reads it"
        else:
            body = np.array2string(self.data, threshold=8, edgeitems=2, precision=4)
        return f"Tensor({body}, {', '.join(parts)})"

    # -- gradients ------------------------------------------------------------------------
    def retain_grad(self) -> Tensor:
        """Keep this (non-leaf) tensor's gradient in ``.grad`` during backward."""
        self._retain = True
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut off from the graph.

        (Inside a traced function, ops/operators.py makes it a recorded ``stop_gradient``
        instead, so that a replay recomputes the value rather than freezing it.)
        """
        return Tensor(self.data, name=self.name)

    # ``backward()`` is installed by tinygraph/autodiff.py, next to the reverse pass it runs.

    # Comparisons (<, <=, >, >=, ==, !=) are installed by ops/operators.py: elementwise boolean
    # Tensors with no derivative. Hashing stays by identity (as PyTorch's), so Tensors remain
    # usable as dict keys; code that needs identity uses ``is``, never ``==``.
    __hash__ = object.__hash__


def _holds_graph(items: list | tuple) -> bool:
    """Whether a (nested) list holds a Tensor that requires grad or was made by an op."""
    return any(_holds_graph(item) if isinstance(item, (list, tuple)) else
               isinstance(item, Tensor) and (item.requires_grad or item._prim is not None)
               for item in items)
