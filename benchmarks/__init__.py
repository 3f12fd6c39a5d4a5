"""Benchmarks for tinygraph: training-step engines side by side, graph overhead, memory, ops.

``python -m benchmarks`` runs everything and writes ``benchmarks/results/<machine>-<date>.json``
with a markdown table (``.md``) and a log-log plot (``.png``) beside it; ``--quick`` runs a small
subset in seconds, ``--only NAME`` one benchmark, ``--out DIR`` writes elsewhere.

Every ratio is against hand-written NumPy (:mod:`benchmarks.engines`), measured in the same
process, interleaved with the other engines. The suite uses tinygraph's public API only, as a user
would; the peers a user would choose instead join when they are installed (PyTorch eager, MyGrad,
HIPS autograd, JAX ``jit``), never as dependencies. ``--threads`` holds every runtime to that many
threads: BLAS and OpenMP through threadpoolctl, PyTorch's own setting, XLA through ``PJRT_NPROC``.

Modules, one job each:

* :mod:`.harness`  -- the environment (CPU, BLAS, threads), thread limits, interleaved timing;
* :mod:`.engines`  -- the training step written for each engine, and the hand-NumPy baseline;
* :mod:`.step`     -- time per training step and per epoch, after a correctness check;
* :mod:`.graph`    -- per-node cost of building and differentiating long graphs, peak memory;
* :mod:`.ops`      -- every registered primitive: forward, recording overhead, backward rule;
* :mod:`.profiling` -- cProfile's top entries of one engine's step;
* :mod:`.report`   -- targets, JSON, the markdown table and the plot;
* :mod:`.__main__` -- the command line.
"""
