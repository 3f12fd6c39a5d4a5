"""Export a tinygraph function to ONNX: ``tg.export_onnx(f, example_args, path)``.

The function is recorded once, exactly as ``tg.trace`` records it (a :class:`~tinygraph.program.
Program`: equations of primitives over numbered values), and each equation becomes one or a few
ONNX nodes. The result is one ``.onnx`` file that ONNX Runtime, PyTorch, TensorRT and most
deployment tools run. ``onnx`` (and ``onnxruntime``, to run the file) are optional: ``pip install
'tinygraph[onnx]'``; tinygraph imports them only when asked to export.

What becomes what:

- **Arguments** of ``f`` (``example_args``, arrays) are the graph's inputs, named after ``f``'s
  parameters (``input_names`` overrides). With ``params=``, ``f`` is called ``f(params,
  *example_args)`` and every array of the pytree ``params`` is stored in the file as an
  initializer named by its path (``W1``, ``layers.0.w``): the trained weights travel inside the
  model, and only the data is an input. Arrays ``f`` closes over are constants of the recorded
  program, and are stored as initializers too (``const_N``).
- **Results** of ``f`` (a Tensor or a pytree of them) are the outputs, named ``output`` (one),
  ``output_0``, ``output_1``, ... or by their dict keys (``output_names`` overrides).
- **The batch dimension.** With ``dynamic_batch=True`` (the default) the first axis of every
  argument is the batch: the file declares it as the symbolic dimension ``batch`` and runs on any
  batch size. No tracer can see how ``f`` would behave at a batch size it was not run at, so ``f``
  is recorded at up to five (the *probes*): the example's batch size B, B + 1, B + 3, B + 61 and,
  when B > 1, 1 (``f`` must run at each; if it raises, the error names that batch size). The
  recordings must be the same program but for sizes and constants. Every size that changes with the
  batch (a reshape's target, a broadcast, the count a mean divides by) must be ``k * batch + c`` for
  whole k and c at every probe, and becomes ONNX shape arithmetic (``Shape`` of an input, ``Mul``,
  ``Concat``), or ``-1`` in a reshape, instead of the number seen while tracing. A constant that
  changes with the batch (of an op, or a result of ``f``) must be one number repeated over such
  sizes, the number fixed or ``a * count`` or ``a / count`` of such a count: ``float(len(x))``, a
  mean's 1/N, a recorded gradient's seed (ones of the loss's shape, 2/N once a mean squared error's
  rule is folded in), ``np.ones(len(x))``; it is computed from the batch size at run time
  (``ConstantOfShape``, ``Expand``). A slice along a batch-following axis is checked exactly, at
  every batch size from 1 on: one whose bound clamps (``x[:5]``, ``x[-3:]``, ``x[:100]``,
  ``x[1:-1]``, which is empty at one row) is refused. Refused too, with an error naming the op and
  your line: a different sequence of ops at some probe, an op parameter built from the batch size
  (an index array of ``len(x)`` entries), any other size or constant that changes, and the few rules
  that need a fixed length along the batch axis (``roll``, ``cumprod``, ``diagonal``, non-constant
  ``pad`` along it; ``getitem`` with several index arrays, ``scatter_add``, so also the gradient of
  a slice). Export those with ``dynamic_batch=False`` (every size fixed, as traced).

  What the probes cannot see: a Python branch on the batch size (``if len(x) > 1000``) is
  frozen by any tracer at the branch the probes took; one whose threshold lies between the
  probes (above B + 61, between 1 and B, or at one other size) goes unnoticed, and the file
  behaves as ``f`` does at the example's size. Likewise anything computed in Python from the
  batch size (a reshape target ``min(len(x), 64)``, a NumPy array sliced with ``len(x)`` and
  closed over) is compared at the probes only. Slices are checked at every batch size; every
  other size and constant only at the probes, which is exact for the usual ops (elementwise,
  matmul, reductions, softmax, the losses, convolutions and pooling over image axes, reshape,
  broadcast and concatenate along the batch), whose sizes along the batch are affine in it. For
  anything else, run the file at the batch sizes you will use (or export with
  ``dynamic_batch=False``).
- **Whatever the program holds** is exported: a forward pass, or a recorded gradient
  (``tg.value_and_grad(loss)``: its reverse pass is ordinary ops in the program).
- **Primitives** map to ONNX operators through one table, :data:`RULES`, keyed by op name (ops
  ONNX cannot express are listed, with the reason, in :data:`NOT_MAPPED`). A primitive's own
  ``onnx_rule`` (set with ``@op.defonnx``) overrides the table; an op with neither is an error
  naming every such op and the line of your code that applied it.

A rule, built in or yours, is called ``rule(g, *inputs, **params)`` with the equation's
parameters (``axis=...``, as the op's forward receives them) and returns the name of the ONNX value
holding the op's result, of the dtype and shape tinygraph computes. ``inputs`` are the names of
the ONNX values of the op's inputs (``None`` for an input that was the constant ``None``, as an
omitted bound of ``clip``). ``g`` is an :class:`OnnxGraph`, which adds nodes and answers questions
about the values::

    @cube.defonnx
    def cube_onnx(g, x):
        x = g.cast(x, g.out_dtype)                  # constants and ints become the result's dtype
        return g.op("Mul", g.op("Mul", x, x), x)    # ONNX attributes as keyword arguments

``g.op(op_type, *inputs, **attributes)`` adds a node and returns its output's name (a list with
``outputs=n``); ``g.const(array)``, ``g.ints([...])``, ``g.scalar(value, dtype)``,
``g.full_like(name, value, dtype)`` and ``g.constant_of_shape(shape, value, dtype)`` add constants;
``g.cast``, ``g.operands``, ``g.common_dtype``, ``g.dtype``, ``g.shape``, ``g.ndim``, ``g.dims`` and
``g.value`` (a constant input's value; None for one that follows the batch) describe and convert the
inputs; ``g.out_dtype``, ``g.out_shape`` and ``g.out_dims`` describe the result. Sizes that follow
the batch are exact only through ``g.reshape``, ``g.expand``, ``g.shape_tensor`` and ``g.count``,
which compute them at run time (``g.shape`` gives the traced numbers); ``g.require_static(what)``
refuses the op when its sizes follow the batch, ``g.fixed_length(dim, what)`` when one size does,
and ``raise g.fail(message)`` raises the one-line error naming the op and its line.

The model is checked with ``onnx.checker.check_model(full_check=True)`` and ONNX's type
inference (each value's dtype must be the one tinygraph computed), then written atomically. The
default opset is 18 (the lowest accepted: reductions take their axes as inputs from 18 on); any
later one ``onnx`` knows may be asked for.

The package, one job a module: :mod:`~tinygraph.onnx_export.export` (``export_onnx``: arguments,
recording, binding the program's values to names), :mod:`~tinygraph.onnx_export.batch` (which
sizes follow the batch), :mod:`~tinygraph.onnx_export.graph` (:class:`OnnxGraph`), the rules by
op family (``rules_elementwise``, ``rules_reductions``, ``rules_shape``, ``rules_indexing``,
``rules_linalg``, ``rules_networks``, ``rules_losses``; each ends with its table),
:mod:`~tinygraph.onnx_export.table` (:data:`RULES`, :data:`NOT_MAPPED`),
:mod:`~tinygraph.onnx_export.model` (the ModelProto and its checks) and
:mod:`~tinygraph.onnx_export.errors`.
"""

from tinygraph.onnx_export.batch import BatchDim
from tinygraph.onnx_export.errors import OnnxExportError, require
from tinygraph.onnx_export.export import DEFAULT_OPSET, export_onnx
from tinygraph.onnx_export.graph import OnnxGraph
from tinygraph.onnx_export.table import NOT_MAPPED, RULES, onnx_rule_for

__all__ = ["DEFAULT_OPSET", "NOT_MAPPED", "RULES", "BatchDim", "OnnxExportError", "OnnxGraph",
           "export_onnx", "onnx_rule_for", "require"]
