"""Drawing graphs: the DOT source matches the graph; pictures are valid files."""

import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import tinygraph as tg
from models import network
from models.init import init_params

ROOT = Path(__file__).resolve().parents[1]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (.ci/run installs it)")


def node_lines(source: str) -> list[str]:
    return re.findall(r"^\s*(\w+) \[label=", source, flags=re.M)


def edge_lines(source: str) -> list[tuple[str, str]]:
    return re.findall(r"^\s*(\w+) -> (\w+)", source, flags=re.M)


def paper_loss(batch: int = 8) -> tg.Tensor:
    params = {k: tg.Tensor(v, requires_grad=True, name=k)
              for k, v in init_params((784, 64, 10), "xavier").items()}
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.random((batch, 784)), name="images")
    loss = network.loss(params, x, rng.integers(0, 10, batch))
    loss.name = "loss"
    return loss


def test_nodes_and_edges_match_the_graph():
    loss = paper_loss()
    source = tg.to_dot(loss).source
    tensors = tg.viz.walk(loss)
    ops = [t for t in tensors if t.op is not None]
    raw_constants = sum(1 for t in ops for i in t.inputs if not isinstance(i, tg.Tensor))
    assert len(node_lines(source)) == len(tensors) + len(ops) + raw_constants == 18
    assert len(edge_lines(source)) == sum(len(t.inputs) for t in ops) + len(ops) == 17


def test_labels_carry_names_shapes_dtypes_and_ops():
    source = tg.to_dot(paper_loss()).source
    for text in ("W1\\n784×64 float64", "b2\\n10 float64", "images\\n8×784 float64",
                 "label=matmul", "label=sigmoid", "label=softmax_cross_entropy",
                 "loss\\nscalar float64"):
        assert text in source
    params_line = next(line for line in source.splitlines() if "W1\\n" in line)
    assert "#cfe2ff" in params_line  # parameters are drawn differently from inputs
    images_line = next(line for line in source.splitlines() if "images\\n" in line)
    assert "#eeeeee" in images_line
    loss_line = next(line for line in source.splitlines() if "loss\\nscalar" in line)
    assert "penwidth=2.5" in loss_line  # the output is marked


def test_op_parameters_are_shown():
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    source = tg.to_dot(tg.sum(x, axis=1).reshape(1, 2)).source
    assert "sum\\naxis=1" in source and "reshape\\nshape=(1, 2)" in source
    assert "mul\\n[1] = 2" in tg.to_dot(x * 2).source  # scalar constants inside the op


def test_scopes_are_clusters_and_nest():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    with tg.scope("block"):
        y = x * 2
        with tg.scope("inner"):
            z = tg.exp(y)
    source = tg.to_dot(z.sum()).source
    assert "subgraph cluster_block {" in source and 'subgraph "cluster_block/inner" {' in source
    block = source.index("subgraph cluster_block {")
    inner = source.index('subgraph "cluster_block/inner" {')
    assert block < inner < source.index("}", inner)
    assert source[inner:source.index("}", inner)].count("label=exp") == 1
    source_paper = tg.to_dot(paper_loss()).source
    for scope in ("hidden", "output", "loss"):
        assert f"subgraph cluster_{scope} {{" in source_paper


def test_gradient_summaries_and_nan_marker():
    loss = paper_loss()
    loss.backward(retain_grads=True)
    source = tg.to_dot(loss, show_grads=True).source
    assert source.count("grad ‖·‖") == 10  # every tensor but the images has a gradient
    x = tg.Tensor(np.array([0.0, 1.0]), requires_grad=True, name="x")
    with np.errstate(divide="ignore", invalid="ignore"):
        (x ** 0.5).sum().backward()
    bad = tg.to_dot(x * 1.0, show_grads=True).source
    x_line = next(line for line in bad.splitlines() if "x\\n" in line)
    assert "1 inf!" in x_line and "#d62728" in x_line


def test_show_values_micrograd_style():
    a = tg.Tensor(2.0, requires_grad=True, name="a")
    b = tg.Tensor(-3.0, requires_grad=True, name="b")
    c = a * b + 10.0
    c.backward()
    source = tg.to_dot(c, show_values=True, show_grads=True).source
    assert "a\\nscalar float64\\ndata 2\\ngrad -3" in source
    assert "b\\nscalar float64\\ndata -3\\ngrad 2" in source
    assert "data 4" in source


def test_collapsed_view_and_expand():
    loss = paper_loss()
    collapsed = tg.to_dot(loss, collapse=True).source
    assert "hidden\\n3 ops: matmul, add, sigmoid" in collapsed
    assert "output\\n2 ops: matmul, add" in collapsed
    assert "label=sigmoid" not in collapsed and "W1\\n" in collapsed
    expanded = tg.to_dot(loss, collapse=True, expand=["hidden"]).source
    assert "label=sigmoid" in expanded and "output\\n2 ops" in expanded
    assert not re.search(r"\w+:\w+ ->", collapsed)  # no accidental DOT ports


def test_too_big_graph_has_a_clear_error():
    x = tg.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(50):
        y = y * 1.0
    with pytest.raises(tg.GraphTooLargeError, match=r"would have 101 nodes, more than "
                                                    r"max_nodes=100.*collapse=True"):
        tg.to_dot(y, max_nodes=100)


def test_a_100000_node_graph_draws_without_recursion():
    x = tg.Tensor(np.ones(1), requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y * 1.0  # 50,000 ops and 50,001 tensors; the scalar sits in the op's label
    source = tg.to_dot(y, max_nodes=200_000).source
    assert len(edge_lines(source)) == 100_000  # 50,000 ops: one edge in, one edge out each
    assert len(tg.to_dot_backward(y, max_nodes=200_000).source) > 0


def test_backward_graph_has_one_rule_per_op():
    loss = paper_loss()
    source = tg.to_dot(loss, backward=True).source
    assert source.count("label=\"vjp of ") == 6
    assert "vjp of matmul" in source and "∂/∂ W1" in source
    x = tg.Tensor(np.ones(2), requires_grad=True, name="x")
    shared = (x * 2 + tg.exp(x)).sum()
    assert "∂/∂ x (Σ)" in tg.to_dot_backward(shared).source


def test_user_primitive_renders_like_builtins():
    @tg.primitive(register=False)
    def cube(x):
        return x ** 3

    cube.defvjp(lambda grad_out, out, x: (grad_out * 3 * x ** 2,))
    x = tg.Tensor(np.ones(2), requires_grad=True)
    assert "label=cube" in tg.to_dot(cube(x).sum()).source


@needs_dot
def test_render_svg_and_png(tmp_path):
    loss = paper_loss()
    svg_path = tg.render(loss, tmp_path / "net", format="svg")
    assert svg_path == tmp_path / "net.svg" and (tmp_path / "net.dot").exists()
    root = ET.parse(svg_path).getroot()
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "matmul" in text and "sigmoid" in text and "softmax_cross_entropy" in text
    png_path = tg.render(loss, tmp_path / "net.png", format="png")
    payload = png_path.read_bytes()
    assert payload[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", payload[16:24])
    assert width > 200 and height > 200
    pdf_path = tg.render(loss, tmp_path / "net.pdf", format="pdf")
    assert pdf_path.read_bytes()[:5] == b"%PDF-"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_render_without_dot_writes_source_and_says_how(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tg.viz.shutil, "which", lambda name: None)
    written = tg.render(paper_loss(), tmp_path / "net.svg")
    assert written == tmp_path / "net.dot" and written.read_text().startswith("digraph")
    assert not (tmp_path / "net.svg").exists()
    err = capsys.readouterr().err
    assert "apt-get install graphviz" in err and "dot -Tsvg" in err
    assert tg.viz.svg(paper_loss()) is None
    assert set(paper_loss()._repr_mimebundle_()) == {"text/plain"}


def test_render_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="format must be 'svg', 'png' or 'pdf'"):
        tg.render(paper_loss(), tmp_path / "x", format="gif")
    with pytest.raises(TypeError, match="expected a Tensor"):
        tg.to_dot(np.ones(2))


@needs_dot
def test_jupyter_shows_svg():
    bundle = paper_loss()._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml")
    assert "Tensor(" in bundle["text/plain"]
    assert "image/svg+xml" in tg.to_dot(paper_loss())._repr_mimebundle_()


@needs_dot
def test_models_render_command(tmp_path):
    out = tmp_path / "paper.svg"
    result = subprocess.run([sys.executable, "-m", "models.render", "--out", str(out),
                             "--collapse"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "hidden" in out.read_text() and (tmp_path / "paper.dot").exists()


def test_collapsed_box_counts_and_suffix_swap(tmp_path, monkeypatch):
    x = tg.Tensor(np.ones(2), requires_grad=True)
    with tg.scope("one"):
        y = tg.exp(x)
    assert "one\\n1 op: exp" in tg.to_dot(y.sum(), collapse=True).source
    monkeypatch.setattr(tg.viz.shutil, "which", lambda name: None)
    assert tg.render(y, tmp_path / "g.svg", format="png") == tmp_path / "g.dot"
