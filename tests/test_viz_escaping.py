"""Hostile names never break a drawing: each renders with the real `dot`, its text intact.

Tensor names, scope names, output names (the title), user ops' names and parameters and the
keys of traced arguments all come from users. Each name of the corpus is put in all of those
places at once; the drawing must render with exit 0 and no warning, show every line of the name
as text, and have the same nodes, edges, boxes and colours as the same graph with a plain name
(so no name added a node or an attribute).
"""

from __future__ import annotations

import collections
import functools
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import tinygraph as tg

pytestmark = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's `dot` program is not installed (apt-get install graphviz)")

SVG = "{http://www.w3.org/2000/svg}"

KEYWORDS = ["node", "graph", "edge", "strict", "subgraph", "digraph",
            "NODE", "Graph", "EDGE", "sTrIcT", "SubGraph", "DIGRAPH"]
HOSTILE = KEYWORDS + [
    # quotes and backslashes, also the escString escapes \n \l \r \G \N ...
    '"', 'say "hi"', '""', "'", "\\", "ends in a backslash\\", "two\\\\", '\\"', 'x\\"y',
    "\\n", "\\l\\r", "\\G \\N \\E \\T \\H \\L", "back\\\nslash-newline",
    # DOT syntax: an attacker's attribute list, statements, comments, ports
    "{", "}", "{x}", "[", "]", "[color=red]", 'x" [color=red fontcolor=red] y="', "a; b",
    ";", "a -> b", "--", "a:b", "a:n", "x=y", ",", "// c", "/* c */", "# c", "subgraph x {",
    "cluster_x", "cluster", "-1.5", "0", ".5", "1e3", "a/b", "_",
    # line ends and whitespace
    "line\nbreak", "\n", "two\n\nblank", "tab\there", "crlf\r\nend", "cr\rend", "", " ",
    "  two  spaces  ",
    # HTML-like labels and XML in the SVG
    "<b>", "<b>bold</b>", "<<x>>", "<", ">", "<>", "&amp;", "&", "&#45;", "]]>",
    "</text><text>", "<!-- c -->",
    # what neither DOT nor XML carries raw, and text that is not ASCII
    "nul\x00bell\x07esc\x1b", "lone \ud800 surrogate", "nel\x85", "\ufffe",
    "ünïcödé ∂x/∂y 漢字 🙂", "\u202eright-to-left",
    "x" * 5000,
]
IDS = [f"{i}-{ascii(name)[1:21]}" for i, name in enumerate(HOSTILE)]


def shown(name: str) -> list[str]:
    """The lines a label shows for ``name``: line ends break lines, other control characters
    and lone surrogates appear as Python escapes."""
    text = name.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ascii(c)[1:-1] if (ord(c) < 32 and c not in "\t\n") or 0x7f <= ord(c) < 0xa0
                   or 0xd800 <= ord(c) < 0xe000 or c in "\ufffe\uffff" else c for c in text)
    return [line for line in text.split("\n") if line.strip()]


def run_dot(source: str, format: str = "svg") -> bytes:
    """Render ``source`` with the real `dot`: exit 0 and nothing on stderr."""
    done = subprocess.run(["dot", f"-T{format}"], input=source.encode("utf-8"),
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr.decode(errors="replace")
    return done.stdout


def svg_of(source: str) -> ET.Element:
    return ET.fromstring(run_dot(source))


def svgs_of(sources: list[str]) -> list[ET.Element]:
    """Several graphs rendered by one run of `dot` (one process each costs ~50 ms): one SVG
    document per graph, so that no graph's text ran into the next."""
    documents = run_dot("".join(sources)).split(b"<?xml")[1:]
    assert len(documents) == len(sources)
    return [ET.fromstring(b"<?xml" + document) for document in documents]


def texts(svg: ET.Element) -> list[str]:
    # Graphviz writes the second of two spaces as a no-break space.
    return ["".join(t.itertext()).replace("\xa0", " ") for t in svg.iter(SVG + "text")]


def structure(svg: ET.Element) -> collections.Counter:
    """How many nodes, edges and boxes, and every colour used: a layout-free fingerprint."""
    found = collections.Counter(g.get("class") for g in svg.iter(SVG + "g"))
    for element in svg.iter():
        for attribute in ("fill", "stroke", "stroke-width", "font-weight"):
            if element.get(attribute) is not None:
                found[(element.tag, attribute, element.get(attribute))] += 1
    return found


def user_op(name: str):
    """A user's primitive called ``name`` (kept out of the registry), with a text parameter."""
    def double(x, tag=""):
        return x * 2.0

    op = tg.primitive(double, name=name, register=False)
    op.defvjp(lambda grad_out, out, x, tag="": (grad_out * 2.0,))
    return op


def forward_graph(name: str) -> tg.Tensor:
    """``sum(op(x) * c)`` with x, the output, the op, its parameter and two nested scopes
    all called ``name`` (a scope name must not be empty)."""
    op = user_op(name)
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True, name=name)
    constant = tg.Tensor(np.array([3.0, 4.0]), name=name)
    scope = name or "-"
    with tg.scope(scope), tg.scope(scope):
        y = op(x, tag=name) * constant
    out = tg.sum(y)
    out.name = name
    return out


def program_of(name: str):
    """The traced gradient of the user op applied to an argument dict keyed ``name``.

    The op is traced under a plain name and renamed for the drawing: tracing writes op names
    into generated Python comments, where a line end in the name breaks the trace (a bug of
    ``tinygraph/compile.py``, not of drawing).
    """
    op = user_op("user_op")

    def loss(tree):
        return tg.sum(tg.exp(op(tree[name], tag=name)))

    program = tg.make_program(tg.grad(loss))({name: np.array([1.0, 2.0])})
    op.name = name
    return program


DRAWINGS = {
    "to_dot": lambda name: tg.to_dot(forward_graph(name)),
    "to_dot collapsed": lambda name: tg.to_dot(forward_graph(name), collapse=True),
    "to_dot_backward": lambda name: tg.to_dot_backward(forward_graph(name)),
    "to_dot_program": lambda name: tg.to_dot_program(program_of(name), title=name),
}
PLAIN = "plain"


def draw_all(name: str) -> dict[str, ET.Element]:
    """Every kind of drawing of the graphs named ``name``, rendered."""
    sources = {kind: draw(name).source for kind, draw in DRAWINGS.items()}
    return dict(zip(sources, svgs_of(list(sources.values()))))


@functools.cache
def plain_structures(empty: bool) -> dict[str, collections.Counter]:
    return {kind: structure(svg) for kind, svg in draw_all("" if empty else PLAIN).items()}


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_hostile_name_renders_and_its_text_survives(name: str) -> None:
    for kind, svg in draw_all(name).items():
        assert structure(svg) == plain_structures(name == "")[kind], kind
        lines = texts(svg)
        for line in shown(name):
            if len(line) > 100:  # drawn as several lines, in order
                assert line in "".join(lines), kind
            elif kind == "to_dot_program":  # in "%3 = name", "arg 0['name']" and the title
                assert any(line in text for text in lines), (kind, line)
            else:  # a label line of its own: a tensor's name, an op's name, a scope, the title
                assert line in lines, (kind, line)


def test_the_graph_title_and_name_are_escaped():
    out = forward_graph("plain")
    for title in ("node", 'end\\', "<b>", 'a"b', "x" * 5000, "two\nlines"):
        svg = svg_of(tg.to_dot(out, title=title).source)
        assert all(line in "".join(texts(svg)) for line in shown(title))
    graph = tg.to_dot(out, title="../../etc/<b> passwd")
    assert "/" not in graph.filename and "<" not in graph.filename  # Digraph.render() stays put


def test_scopes_that_join_to_the_same_path_stay_separate_boxes():
    x = tg.Tensor(np.ones(2), requires_grad=True)
    with tg.scope("a/b"):
        y = tg.exp(x)
    with tg.scope("a"), tg.scope("b"):
        z = tg.exp(y)
    drawn = json.loads(run_dot(tg.to_dot(tg.sum(z)).source, "json"))  # -Tjson warns of duplicates
    boxes = {box["name"]: box["label"] for box in drawn["objects"] if "nodes" in box}
    assert sorted(boxes.values()) == ["a", "a/b", "b"] and len(boxes) == 3


def test_rendering_a_hostile_graph_to_a_file(tmp_path):
    name = 'node" [shape=none]\\'
    written = tg.render(forward_graph(name), tmp_path / "hostile", format="svg")
    svg = ET.fromstring(written.read_bytes())
    assert name in texts(svg)
    assert written.with_suffix(".dot").read_text(encoding="utf-8").startswith("digraph")
