"""Drawing the graph (micrograd.viz): DOT text and the text tree need nothing; draw_dot needs
the graphviz package and rendering needs its ``dot`` program (those tests skip without them).

The neuron's numbers are the lecture's, derived by hand: n = 2*-3 + 0*1 + 6.8813735870195432
= 0.8814, o = tanh(n) = 0.7071 (= 1/sqrt 2), do/dn = 1 - o**2 = 0.5, and each product passes
0.5 times the other factor to each factor (x1: -3*0.5, w1: 2*0.5, x2: 1*0.5, w2: 0*0.5)."""
import re
import shutil
import subprocess
import sys

import pytest

from micrograd import viz
from micrograd.engine import ENGINES
from micrograd.viz import draw_dot, print_tree, to_dot, tree_str

NEURON_RECORDS = {
    "x1": "{ x1 | data 2.0000 | grad -1.5000 }",
    "w1": "{ w1 | data -3.0000 | grad 1.0000 }",
    "x2": "{ x2 | data 0.0000 | grad 0.5000 }",
    "w2": "{ w2 | data 1.0000 | grad 0.0000 }",
    "b": "{ b | data 6.8814 | grad 0.5000 }",
    "x1*w1": "{ x1*w1 | data -6.0000 | grad 0.5000 }",
    "x2*w2": "{ x2*w2 | data 0.0000 | grad 0.5000 }",
    "x1*w1 + x2*w2": "{ x1*w1 + x2*w2 | data -6.0000 | grad 0.5000 }",
    "n": "{ n | data 0.8814 | grad 0.5000 }",
    "o": "{ o | data 0.7071 | grad 1.0000 }",
}

NODE = re.compile(r'^\t"([^"]+)" \[(.*)\]$')
EDGE = re.compile(r'^\t"([^"]+)" -> "([^"]+)"(?: \[(.*)\])?$')
ATTR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_dot(text):
    """{name: attrs} and [(tail, head, attrs)] from to_dot's one-statement-per-line output."""
    nodes, edges = {}, []
    for line in text.splitlines():
        if EDGE.match(line):
            tail, head, attrs = EDGE.match(line).groups()
            edges.append((tail, head, dict(ATTR.findall(attrs or ""))))
        elif NODE.match(line):
            name, attrs = NODE.match(line).groups()
            nodes[name] = dict(ATTR.findall(attrs))
    return nodes, edges


def chain_sum(V, n=100):
    """s = 0 + 0 + 1 + ... + (n-1), one leaf per term: topological positions s_k = 2k, leaf k = 2k+1."""
    s = V(0.0)
    for i in range(n):
        s = s + V(float(i))
    return s


# ---------------------------------------------------------------------------------------------
# DOT text


def test_dot_of_the_neuron_has_the_lecture_records_ops_and_edges(engine):
    nodes, edges = parse_dot(to_dot(viz.neuron_example(engine)))
    records = {a["label"].split(" | ")[0][2:]: a["label"] for a in nodes.values() if a.get("shape") == "record"}
    assert records == NEURON_RECORDS
    ops = sorted(a["label"] for n, a in nodes.items() if n.endswith("op"))
    assert ops == ["*", "*", "+", "+", "tanh"]
    # 5 op -> result edges, and one operand -> op edge per operand: 2+2+2+2+1
    assert len(edges) == 5 + 9
    for tail, head, _ in edges:
        assert tail in nodes and head in nodes
        assert tail.endswith("op") != head.endswith("op")  # Value -> op -> Value, alternating
    by_label = {a["label"].split(" | ")[0][2:]: name for name, a in nodes.items() if a.get("shape") == "record"}
    assert (by_label["n"], by_label["o"] + "op", {}) in edges
    assert (by_label["o"] + "op", by_label["o"], {}) in edges


def test_dot_is_left_to_right_by_default_and_takes_rankdir(engine):
    o = viz.neuron_example(engine)
    assert '\tgraph [rankdir="LR"]' in to_dot(o).splitlines()
    assert '\tgraph [rankdir="TB"]' in to_dot(o, rankdir="TB").splitlines()
    with pytest.raises(ValueError, match="rankdir must be one of LR, TB, RL, BT, got 'XY'"):
        to_dot(o, rankdir="XY")


def test_dot_numbers_nodes_in_topological_order_reproducibly(both_engines):
    py, cy = (to_dot(viz.neuron_example(V)) for V in both_engines)
    assert py == cy  # same program, same text, whichever engine
    assert to_dot(viz.neuron_example(both_engines[0])) == py  # and on every run
    nodes, _ = parse_dot(py)
    # topological order: x1 w1 x1*w1 x2 w2 x2*w2 sum b n o
    assert nodes["n0"]["label"] == NEURON_RECORDS["x1"]
    assert nodes["n9"]["label"] == NEURON_RECORDS["o"]
    assert nodes["n9op"]["label"] == "tanh"


def test_dot_precision(engine):
    text = to_dot(viz.neuron_example(engine), precision=2)
    assert '"{ o | data 0.71 | grad 1.00 }"' in text


def test_record_labels_are_escaped(engine):
    a = engine(1.0, label='a{b}|<c>"d\\e\nf')
    nodes, _ = parse_dot(to_dot(a))
    assert nodes["n0"]["label"] == r'{ a\{b\}\|\<c\>\"d\\e\nf | data 1.0000 | grad 0.0000 }'


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' program not installed")
def test_dot_program_reads_escaped_labels_back(engine):
    label = 'a{b}|<c>"d\\e'
    text = to_dot(engine(1.0, label=label))
    svg = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, check=True).stdout
    assert ">a{b}|&lt;c&gt;&quot;d\\e</text>" in svg


def test_cap_keeps_the_nodes_nearest_the_root_and_counts_the_rest(engine):
    s = chain_sum(engine)  # 101 leaves, 100 '+': 201 Values
    text = to_dot(s, max_nodes=10)
    nodes, edges = parse_dot(text)
    records = sorted(int(n[1:]) for n, a in nodes.items() if a.get("shape") == "record")
    # breadth-first from s_100: s_100, then s_99 and leaf 99, s_98 and leaf 98, ..., s_95
    assert records == [190, 192, 193, 194, 195, 196, 197, 198, 199, 200]
    # left out: s_0..s_94 (95 nodes: s_0 is a leaf, 94 are '+') and leaves 0..94 (95)
    assert nodes["omitted"]["label"] == "191 more Values not drawn\\nleaf 97, + 94"
    assert "left out: leaf 97, + 94" in text.splitlines()[0]
    dashed = sorted(head for tail, head, a in edges if tail == "omitted")
    assert dashed == ["n190op", "n192op"]  # s_95 lost both operands, s_96 its leaf 95
    assert all(a == {"style": "dashed"} for tail, _, a in edges if tail == "omitted")


def test_no_cap_or_a_big_enough_one_draws_everything(engine):
    s = chain_sum(engine)
    for text in (to_dot(s, max_nodes=None), to_dot(s, max_nodes=201)):
        nodes, _ = parse_dot(text)
        assert sum(a.get("shape") == "record" for a in nodes.values()) == 201
        assert "omitted" not in nodes


def test_default_cap_keeps_huge_graphs_small(engine):
    x = engine(0.5)
    for _ in range(100_000):
        x = x.tanh()
    nodes, _ = parse_dot(to_dot(x))
    assert sum(a.get("shape") == "record" for a in nodes.values()) == viz.DEFAULT_MAX_NODES == 200
    assert nodes["omitted"]["label"] == "99801 more Values not drawn\\ntanh 99800, leaf 1"


def test_bad_caps_and_precisions(engine):
    a = engine(1.0)
    with pytest.raises(ValueError, match="max_nodes must be at least 1, got 0"):
        to_dot(a, max_nodes=0)
    with pytest.raises(TypeError, match="max_nodes must be an int or None, not 'float'"):
        to_dot(a, max_nodes=2.0)
    with pytest.raises(TypeError, match="precision must be an int"):
        tree_str(a, precision="4")
    with pytest.raises(TypeError, match="expects a micrograd Value, not 'float'"):
        to_dot(1.0)


# ---------------------------------------------------------------------------------------------
# draw_dot (graphviz)


def test_draw_dot_without_graphviz_says_what_to_install(engine, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` fail
    with pytest.raises(ImportError, match=r"pip install graphviz .*'dot' program.*to_dot"):
        draw_dot(engine(1.0))


def test_draw_dot_returns_a_digraph_of_the_same_drawing(engine):
    graphviz = pytest.importorskip("graphviz", reason="the optional graphviz package is not installed")
    o = viz.neuron_example(engine)
    dot = draw_dot(o)
    assert isinstance(dot, graphviz.Digraph)
    assert dot.format == "svg"
    assert "rankdir=LR" in dot.source
    for record in NEURON_RECORDS.values():
        assert f'label="{record}"' in dot.source
    assert draw_dot(o, format="png", rankdir="TB").format == "png"
    assert "rankdir=TB" in draw_dot(o, format="png", rankdir="TB").source
    capped = draw_dot(chain_sum(engine), max_nodes=10).source
    assert "191 more Values not drawn" in capped


def test_draw_dot_renders_like_the_dot_text(engine):
    pytest.importorskip("graphviz", reason="the optional graphviz package is not installed")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' program not installed")
    o = viz.neuron_example(engine)
    svg = draw_dot(o).pipe(encoding="utf-8")
    from_text = subprocess.run(["dot", "-Tsvg"], input=to_dot(o), capture_output=True, text=True, check=True).stdout
    assert svg == from_text
    assert svg.count('class="node"') == 10 + 5  # a record per Value, an ellipse per op


# ---------------------------------------------------------------------------------------------
# Text tree

NEURON_TREE = """\
o (tanh)  data 0.7071  grad 1.0000
`-- n (+)  data 0.8814  grad 0.5000
    |-- x1*w1 + x2*w2 (+)  data -6.0000  grad 0.5000
    |   |-- x1*w1 (*)  data -6.0000  grad 0.5000
    |   |   |-- x1  data 2.0000  grad -1.5000
    |   |   `-- w1  data -3.0000  grad 1.0000
    |   `-- x2*w2 (*)  data 0.0000  grad 0.5000
    |       |-- x2  data 0.0000  grad 0.5000
    |       `-- w2  data 1.0000  grad 0.0000
    `-- b  data 6.8814  grad 0.5000"""


def test_tree_of_the_neuron(engine):
    assert tree_str(viz.neuron_example(engine)) == NEURON_TREE


def test_print_tree_prints_it(engine, capsys):
    print_tree(viz.neuron_example(engine))
    assert capsys.readouterr().out == NEURON_TREE + "\n"


def test_tree_expands_a_shared_node_once_and_names_unlabelled_nodes(engine):
    a, b = engine(1.0, label="a"), engine(2.0, label="b")
    c = a + b  # unlabelled: named by its topological position, #2
    d = c * c
    d.label = "d"
    assert tree_str(d, precision=1).splitlines() == [
        "d (*)  data 9.0  grad 0.0",
        "|-- #2 (+)  data 3.0  grad 0.0",
        "|   |-- a  data 1.0  grad 0.0",
        "|   `-- b  data 2.0  grad 0.0",
        "`-- #2 (+)  data 3.0  grad 0.0  (see above)",
    ]


def test_tree_cap_says_what_was_left_out(engine):
    s = chain_sum(engine)
    lines = tree_str(s, max_nodes=8).splitlines()
    assert len(lines) == 9
    # the first operand comes first, so 8 lines walk down s_100 ... s_93: 8 of the 100 '+'.
    # One line per operand link plus the root: 201 in all.
    assert lines[-1] == "... 193 more lines not shown; 193 Values not shown: leaf 101, + 92"
    assert lines[0].startswith("#200 (+)")
    assert lines[7].startswith("|   |   |   |   |   |   |-- #186 (+)")


def test_tree_of_a_deep_chain_under_the_cap(engine):
    x = engine(0.5)
    for _ in range(50_000):
        x = x.tanh()
    lines = tree_str(x).splitlines()
    assert len(lines) == 201
    assert lines[-1] == "... 49801 more lines not shown; 49801 Values not shown: tanh 49800, leaf 1"


# ---------------------------------------------------------------------------------------------
# Command line


def engine_name(engine):
    return next(name for name, V in ENGINES.items() if V is engine)


def test_cli_writes_dot_text(engine, tmp_path, capsys):
    out = tmp_path / "neuron.dot"
    assert viz.main(["--example", "neuron", "--engine", engine_name(engine), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == to_dot(viz.neuron_example(engine))
    assert capsys.readouterr().out == f"wrote {out}\n"


def test_cli_prints_dot_or_tree(engine, capsys):
    assert viz.main(["--engine", engine_name(engine)]) == 0
    assert capsys.readouterr().out == to_dot(viz.neuron_example(engine))
    assert viz.main(["--engine", engine_name(engine), "--tree"]) == 0
    assert capsys.readouterr().out == NEURON_TREE + "\n"


def test_cli_renders_svg(engine, tmp_path):
    pytest.importorskip("graphviz", reason="the optional graphviz package is not installed")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' program not installed")
    out = tmp_path / "neuron.svg"
    assert viz.main(["--engine", engine_name(engine), "-o", str(out)]) == 0
    svg = out.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert ">grad &#45;1.5000</text>" in svg  # x1's grad; dot writes '-' as &#45;


def test_cli_without_graphviz_explains(engine, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    assert viz.main(["--engine", engine_name(engine), "-o", str(tmp_path / "g.svg")]) == 1
    assert "pip install graphviz" in capsys.readouterr().err
    assert not (tmp_path / "g.svg").exists()


def test_mlp_example_has_the_size_counted_by_hand(engine):
    """3-4-4-1 tanh MLP, squared error on 4 examples. Per example: a neuron with n inputs makes
    n '*' (each input float becomes a leaf in layer 1), n '+' onto its bias, 1 tanh: layers of
    4*(3+3+1) + 4*(4+4+1) + (4+4+1) = 73 ops; then act - y (a '+' and a leaf -y), **2, and the
    running '+' of the loss: 76 ops. Leaves: 41 parameters, 4*12 inputs, 4 -y's and loss's 0."""
    from micrograd.graph import graph_stats

    loss = viz.mlp_example(engine)
    stats = graph_stats(loss)
    assert stats.ops == {"+": 4 * 34, "*": 4 * 32, "tanh": 4 * 9, "**2": 4}
    assert stats.leaves == 41 + 48 + 4 + 1
    assert stats.nodes == 304 + 94
    # loss_4 -> loss_1 (3), **2, -y's '+', tanh of layer 3 (1 each), 6 per 4-input layer, 5 for layer 1
    assert stats.depth == 3 + 1 + 1 + 1 + 6 + 6 + 5
    nodes, _ = parse_dot(to_dot(loss, max_nodes=40))
    assert nodes["omitted"]["label"].startswith("358 more Values not drawn")


def test_cli_without_the_dot_program_explains(engine, tmp_path, monkeypatch, capsys):
    pytest.importorskip("graphviz", reason="the optional graphviz package is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` to be found
    assert viz.main(["--engine", engine_name(engine), "-o", str(tmp_path / "g.svg")]) == 1
    err = capsys.readouterr().err
    assert "'dot' program is not on PATH" in err and "apt-get install graphviz" in err
    assert not (tmp_path / "g.svg").exists()
