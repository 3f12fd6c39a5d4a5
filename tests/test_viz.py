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


def test_a_deep_backward_drawing_draws_without_recursion():
    x = tg.Tensor(np.ones(1), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0
    source = tg.to_dot_backward(y, max_nodes=100_000).source
    # 20,000 forward muls and 20,000 recorded ones (grad * 1.0), each with its result; the
    # leaf x and the seed
    assert len(node_lines(source)) == 4 * 20_000 + 2


def cluster(source: str, name: str) -> str:
    """The DOT text of the box ``subgraph "cluster_<name>"``, nested boxes included."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.strip() == f'subgraph "cluster_{name}" {{')
    depth = 0
    for end in range(start, len(lines)):
        depth += lines[end].rstrip().endswith("{") - (lines[end].strip() == "}")
        if depth == 0:
            break
    return "\n".join(lines[start:end + 1])


def labels(source: str) -> dict[str, str]:
    """Node key -> label text (DOT escapes kept: a line break reads ``\\n``)."""
    found = re.findall(r'^\s*(\w+) \[label=(?:"((?:[^"\\]|\\.)*)"|(\w+))', source, flags=re.M)
    return {key: quoted or bare for key, quoted, bare in found}


def op_names(source: str) -> list[str]:
    """The op of every op node in ``source`` (ops are keyed ``op...``), sorted."""
    return sorted(label.split("\\n")[0] for key, label in labels(source).items()
                  if key.startswith("op"))


def key_of(source: str, first_line: str) -> str:
    """The key of the one node whose label starts with the line ``first_line``."""
    keys = [key for key, label in labels(source).items()
            if label.split("\\n")[0] == first_line]
    assert len(keys) == 1, (first_line, keys)
    return keys[0]


def data_of(source: str, first_line: str) -> np.ndarray:
    """The values ``show_values`` printed in the label of a node."""
    label = labels(source)[key_of(source, first_line)]
    line = next(part for part in label.split("\\n") if part.startswith("data "))
    return np.array([float(v) for v in line[5:].split(", ")])


def sigmoid_layer() -> tuple[tg.Tensor, tg.Tensor, tg.Tensor]:
    rng = np.random.default_rng(1)
    x = tg.Tensor(rng.random((3, 4)), name="x")
    W = tg.Tensor(rng.normal(size=(4, 2)), requires_grad=True, name="W")
    y = tg.sum(tg.sigmoid(x @ W))
    y.name = "y"
    return x, W, y


def test_backward_drawing_shows_the_ops_the_rules_applied():
    x, W, y = sigmoid_layer()
    source = tg.to_dot_backward(y, show_values=True).source
    assert source.count("subgraph ") == 1 and "grad pass" not in source
    pass1 = cluster(source, "backward pass 1")
    assert 'label="backward pass 1"' in pass1
    forward = source.replace(pass1, "")
    assert op_names(forward) == ["matmul", "sigmoid", "sum"]  # the forward ops stay outside
    # sigmoid's rule is grad * s * (1 - s) (two muls, a sub); matmul's rule for W is x^T @ grad
    backward_ops = op_names(pass1)
    assert backward_ops.count("matmul") == 1 and backward_ops.count("mul") == 2
    assert "sub" in backward_ops and "sigmoid" not in backward_ops
    for line in pass1.splitlines():  # the pass's ops have the pass's colour
        if re.match(r"\s*op\w+ \[", line):
            assert 'fillcolor="#f8d7da"' in line
    # the rules read the forward graph: the sigmoid's result feeds the sub and a mul
    s = "t" + key_of(forward, "sigmoid")[len("opt"):]
    readers = {head for tail, head in edge_lines(source) if tail == s}
    assert {labels(pass1).get(head, "").split("\\n")[0] for head in readers} >= {"mul", "sub"}
    # the gradient is marked, sits in the pass, and holds d y / d W
    assert "seed ∂y/∂y = 1\\nscalar float64" in pass1
    gradient = key_of(pass1, "∂y/∂W")
    assert "penwidth=2.5" in next(line for line in pass1.splitlines()
                                  if line.strip().startswith(gradient + " "))
    sig = 1 / (1 + np.exp(-(x.data @ W.data)))
    np.testing.assert_allclose(data_of(source, "∂y/∂W"), (x.data.T @ (sig * (1 - sig))).ravel(),
                               rtol=1e-3)
    assert "∂y/∂W" in tg.to_dot(y, backward=True).source  # to_dot(backward=True) is this


def test_drawing_the_backward_graph_touches_no_grad():
    x, W, y = sigmoid_layer()
    hidden = tg.sigmoid(x @ W).retain_grad()
    tg.to_dot_backward(tg.sum(hidden))
    assert W.grad is None and x.grad is None and hidden.grad is None
    y.backward()
    held, values = W.grad, W.grad.copy()
    tg.to_dot_backward(y)
    assert W.grad is held and np.array_equal(W.grad, values)
    a = tg.Tensor(np.array([0.5, -1.0]), requires_grad=True, name="a")
    tg.sum(tg.tanh(a) * a).backward(create_graph=True)
    recorded = a.grad
    tg.to_dot_backward(tg.sum(recorded))
    assert a.grad is recorded and isinstance(recorded, tg.Tensor)


def test_double_backward_draws_each_pass_in_its_own_box():
    for _ in range(3):  # passes recorded elsewhere in the process: a drawing still counts from 1
        warm = tg.Tensor(np.ones(2), requires_grad=True)
        tg.sum(warm * warm).backward(create_graph=True)
    a = tg.Tensor(np.array([0.5, -1.0]), requires_grad=True, name="a")
    tg.sum(tg.tanh(a) * a).backward(create_graph=True)
    first_pass_ops = [t for t in tg.viz.walk(a.grad) if t.op is not None and t.scope]
    out = tg.sum(a.grad)
    out.name = "s"
    source = tg.to_dot_backward(out, show_values=True).source
    assert "backward pass 3" not in source and "grad pass" not in source
    pass1, pass2 = cluster(source, "backward pass 1"), cluster(source, "backward pass 2")
    assert pass2 not in pass1 and pass1 not in pass2
    assert len(op_names(pass1)) == len(first_pass_ops) > 0
    assert op_names(source.replace(pass1, "").replace(pass2, "")) == ["sum", "tanh"]
    assert "a.grad\\n2 float64" in pass1  # the first pass's result is named
    assert "seed ∂s/∂s = 1" in pass2 and key_of(pass2, "∂s/∂a")
    assert 'fillcolor="#e2daf5"' in pass2 and 'fillcolor="#e2daf5"' not in pass1
    # the second pass differentiates the first: its ops read the first pass's tensors
    in_pass1 = set(labels(pass1))
    in_pass2 = {key for key in labels(pass2) if key.startswith("op")}
    assert any(tail in in_pass1 and head in in_pass2 for tail, head in edge_lines(source))
    # and the marked node holds d/da of sum(tanh'(a) a + tanh(a)) = 2 (1 - t^2)(1 - t a)
    t = np.tanh(a.data)
    np.testing.assert_allclose(data_of(source, "∂s/∂a"), 2 * (1 - t**2) * (1 - t * a.data),
                               rtol=1e-3)


def test_masks_and_constants_the_rules_read_are_drawn():
    x = tg.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, name="x")
    y = tg.sum(tg.relu(x) * np.array([1.0, 2.0, 3.0]))
    source = tg.to_dot_backward(y).source
    pass1 = cluster(source, "backward pass 1")
    mask = key_of(pass1, "3 bool")  # relu's rule: grad * (x > 0); comparisons have no op
    assert any(tail == mask and labels(pass1).get(head) == "mul"
               for tail, head in edge_lines(source))
    # the array constant, read by mul's rule (drawn once per op reading it, as to_dot does)
    constant = re.search(r'(c\d+) \[label="3 float64"[^\]]*shape=note', pass1)
    assert constant and any(tail == constant.group(1) and labels(pass1).get(head) == "mul"
                            for tail, head in edge_lines(source))
    # to_dot draws a recorded gradient the same way (here the mask meets a recorded cotangent,
    # x * seed; backward's own seed is a constant, so grad * mask alone would fold to one)
    tg.sum(tg.relu(x) * x).backward(create_graph=True)
    recorded = tg.to_dot(x.grad).source
    assert key_of(cluster(recorded, "backward pass 1"), "3 bool")


def test_backward_seed_for_larger_outputs_and_unnamed_leaves():
    a = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = tg.Tensor(np.array([3.0, 4.0]), requires_grad=True)
    with pytest.raises(ValueError, match=r"to_dot_backward: the output has shape \(2,\); pass"):
        tg.to_dot_backward(a * b)
    with pytest.raises(ValueError, match="no reverse pass to draw"):
        tg.to_dot_backward(tg.Tensor(np.ones(2)) * 2)
    source = tg.to_dot_backward(a * b, grad=np.array([1.0, 2.0]), show_values=True).source
    assert "leaf 1\\n2 float64\\ndata 1, 2" in source  # named in the order the ops read them
    assert "leaf 2\\n2 float64\\ndata 3, 4" in source
    assert "seed (the grad given)\\n2 float64\\ndata 1, 2" in source
    np.testing.assert_allclose(data_of(source, "∂output/∂leaf 1"), [3.0, 8.0])
    np.testing.assert_allclose(data_of(source, "∂output/∂leaf 2"), [1.0, 4.0])
    shared = tg.to_dot_backward(a + b, grad=np.ones(2)).source  # add passes the seed on as is
    assert "seed (the grad given)\\n∂output/∂leaf 1\\n∂output/∂leaf 2\\n2 float64" in shared


def test_backward_drawing_collapses_and_keeps_gradients():
    source = tg.to_dot_backward(paper_loss(), collapse=True).source
    box = re.search(r'label="backward pass 1\\n(\d+) ops: ([^"]*)"', source)
    assert box and int(box.group(1)) > 10 and "matmul" in box.group(2)
    assert "hidden\\n3 ops: matmul, add, sigmoid" in source
    boxes_into = {head for tail, head in edge_lines(source) if tail.startswith("box")}
    for name in ("W1", "b1", "W2", "b2"):  # the gradients stay visible, fed by the pass's box
        assert key_of(source, f"∂loss/∂{name}") in boxes_into


def test_backward_drawing_size_guard():
    from tinygraph.state import STATE

    x = tg.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(10):
        y = y * 1.0
    y = tg.sum(y)  # 12 tensors and 11 ops
    passes = STATE.graph_passes
    with pytest.raises(tg.GraphTooLargeError, match=r"would have 23 nodes, more than "
                                                    r"max_nodes=20.*collapse=True"):
        tg.to_dot_backward(y, max_nodes=20)
    assert STATE.graph_passes == passes  # refused before recording a pass
    with pytest.raises(tg.GraphTooLargeError, match="more than max_nodes=30"):
        tg.to_dot_backward(y, max_nodes=30)  # the forward graph fits, with its pass it does not
    assert len(node_lines(tg.to_dot_backward(y, max_nodes=100).source)) > 30


def test_a_rule_on_arrays_is_drawn_as_one_node():
    @tg.primitive(register=False)
    def cube(x):
        return x ** 3

    cube.defvjp(lambda grad_out, out, x: (grad_out * 3 * np.asarray(x) ** 2,))
    x = tg.Tensor(np.ones(2), requires_grad=True, name="x")
    pass1 = cluster(tg.to_dot_backward(tg.sum(cube(x))).source, "backward pass 1")
    assert "vjp of cube (input 0)" in pass1 and "∂output/∂x" in pass1


@needs_dot
def test_render_double_backward(tmp_path):
    a = tg.Tensor(np.array([0.5, -1.0]), requires_grad=True, name="a")
    tg.sum(tg.tanh(a) * a).backward(create_graph=True)
    path = tg.render(tg.to_dot_backward(tg.sum(a.grad)), tmp_path / "double", format="svg")
    root = ET.parse(path).getroot()
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "backward pass 1" in text and "backward pass 2" in text
    assert "∂output/∂a" in text and "a.grad" in text and "tanh" in text


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
