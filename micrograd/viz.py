"""See the graph behind a ``Value``: Graphviz drawing, DOT text, and an indented tree.

    draw_dot(root)    a graphviz.Digraph, as in Karpathy's lecture (needs ``pip install graphviz``
                      and, to render, the Graphviz ``dot`` program)
    to_dot(root)      the same graph as DOT source text; no dependency
    print_tree(root)  an indented text tree with data and grad; no dependency (tree_str returns it)

One record per Value (label | data | grad) and one small ellipse per op, left to right. Nodes
are named by their place in topological order (``n0``, ``n1``, ...), so the text is the same on
every run and on both engines. Big graphs are cut at ``max_nodes`` Values, keeping those
nearest the root, with a summary of what was left out.

Command line (writes the lecture's tanh neuron after ``o.backward()``):

    python -m micrograd.viz --example neuron -o docs/images/neuron.svg   # needs graphviz
    python -m micrograd.viz --example neuron -o neuron.dot               # DOT text, no dependency
    python -m micrograd.viz --example neuron --tree                      # text tree
    python -m micrograd.viz --example mlp --max-nodes 40 -o mlp.svg      # a bigger graph, capped
"""
from __future__ import annotations

import sys
from collections import deque
from typing import Any, TextIO

from micrograd.graph import by_op, format_counts, index_of, node_name, topological_order

Value = Any  # a Value of either engine

DEFAULT_MAX_NODES = 200
RANKDIRS = ("LR", "TB", "RL", "BT")
GRAPHVIZ_MISSING = (
    "draw_dot needs the graphviz Python package: pip install graphviz "
    "(or pip install 'micrograd-fast[viz]'); rendering also needs Graphviz's 'dot' program "
    "(apt-get install graphviz, brew install graphviz, or https://graphviz.org/download/). "
    "Without them, micrograd.viz.to_dot(root) gives the DOT text and print_tree(root) a text view."
)
DOT_MISSING = (
    "Graphviz's 'dot' program is not on PATH: install it (apt-get install graphviz, brew install "
    "graphviz, or https://graphviz.org/download/), or write the DOT text with -o FILE.dot"
)


# ---------------------------------------------------------------------------------------------
# Argument checks


def _check_max_nodes(max_nodes: int | None) -> None:
    if max_nodes is None:
        return
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int):
        raise TypeError(f"max_nodes must be an int or None, not {type(max_nodes).__name__!r}")
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be at least 1, got {max_nodes}")


def _check_precision(precision: int) -> None:
    if isinstance(precision, bool) or not isinstance(precision, int):
        raise TypeError(f"precision must be an int, not {type(precision).__name__!r}")
    if precision < 0:
        raise ValueError(f"precision must be >= 0, got {precision}")


# ---------------------------------------------------------------------------------------------
# Which nodes to show when the graph is too big


def nearest_to_root(root: Value, limit: int | None) -> set[int]:
    """ids of the first ``limit`` Values met walking breadth-first from ``root`` (children in
    ``_prev`` order): the output and what feeds it directly are what a reader looks at first."""
    kept = {id(root)}
    queue = deque([root])
    while queue and (limit is None or len(kept) < limit):
        for child in queue.popleft()._prev:
            if id(child) not in kept:
                kept.add(id(child))
                queue.append(child)
                if limit is not None and len(kept) >= limit:
                    break
    return kept


# ---------------------------------------------------------------------------------------------
# DOT: one description of the drawing, written out as text (to_dot) or as a graphviz.Digraph


def escape_record(text: str) -> str:
    r"""``text`` as a field of a DOT record label inside a double-quoted string: backslash, the
    record syntax ``{ } | < >`` and quotes escaped, line breaks as ``\n``."""
    out = text.replace("\\", "\\\\")
    for ch in '{}|<>"':
        out = out.replace(ch, "\\" + ch)
    return out.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def escape_string(text: str) -> str:
    """``text`` inside a double-quoted DOT string (not a record)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Drawing:
    """Nodes and edges to draw, in a fixed order, with DOT-ready (escaped) attribute values."""

    def __init__(self, root: Value, max_nodes: int | None, precision: int) -> None:
        _check_max_nodes(max_nodes)
        _check_precision(precision)
        order = topological_order(root)
        index = index_of(order)
        kept = nearest_to_root(root, max_nodes)
        self.nodes: list[tuple[str, dict[str, str]]] = []
        self.edges: list[tuple[str, str, dict[str, str]]] = []
        self.total = len(order)
        self.drawn = len(kept)
        self.left_out = by_op(node for node in order if id(node) not in kept)

        def uid(node: Value) -> str:
            return f"n{index[id(node)]}"

        for node in order:
            if id(node) not in kept:
                continue
            label = "{ %s | data %.*f | grad %.*f }" % (
                escape_record(node.label), precision, node.data, precision, node.grad)
            self.nodes.append((uid(node), {"label": label, "shape": "record"}))
            if node._prev:  # an op node feeding this Value, as in the lecture
                self.nodes.append((uid(node) + "op", {"label": escape_string(node._op)}))
                self.edges.append((uid(node) + "op", uid(node), {}))
        cut_ops: list[str] = []  # op nodes with an operand that is not drawn
        for node in order:
            if id(node) not in kept:
                continue
            for child in node._prev:
                if id(child) in kept:
                    self.edges.append((uid(child), uid(node) + "op", {}))
                elif not cut_ops or cut_ops[-1] != uid(node) + "op":
                    cut_ops.append(uid(node) + "op")
        if self.left_out:
            n = self.total - self.drawn
            summary = f"{n} more Value{'s' if n != 1 else ''} not drawn\n{format_counts(self.left_out)}"
            self.nodes.append(("omitted", {"label": escape_string(summary), "shape": "box", "style": "dashed"}))
            self.edges.extend(("omitted", op, {"style": "dashed"}) for op in cut_ops)

    def comment(self) -> str:
        text = f"micrograd graph: {self.total} Values, {self.drawn} drawn"
        if self.left_out:
            text += f"; left out: {format_counts(self.left_out)}"
        return text


def _check_rankdir(rankdir: str) -> None:
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")


def _attrs(attrs: dict[str, str]) -> str:
    return " [" + " ".join(f'{key}="{value}"' for key, value in attrs.items()) + "]" if attrs else ""


def to_dot(
    root: Value,
    *,
    rankdir: str = "LR",
    max_nodes: int | None = DEFAULT_MAX_NODES,
    precision: int = 4,
) -> str:
    """The graph behind ``root`` as DOT source text (``dot -Tsvg`` draws it). No dependency.

    ``max_nodes`` caps the Values drawn (None: no cap); the rest are counted by op in a dashed
    box wired to the ops whose inputs were cut. ``precision``: decimals of data and grad.
    """
    _check_rankdir(rankdir)
    drawing = _Drawing(root, max_nodes, precision)
    lines = [f"// {drawing.comment()}", "digraph micrograd {", f'\tgraph [rankdir="{rankdir}"]']
    lines += [f'\t"{name}"{_attrs(attrs)}' for name, attrs in drawing.nodes]
    lines += [f'\t"{tail}" -> "{head}"{_attrs(attrs)}' for tail, head, attrs in drawing.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_dot(
    root: Value,
    format: str = "svg",
    rankdir: str = "LR",
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    precision: int = 4,
) -> Any:
    """The graph behind ``root`` as a ``graphviz.Digraph`` (Karpathy's ``draw_dot``): it shows
    itself in Jupyter, ``.render('graph')`` writes ``graph.svg``, ``.pipe()`` gives the bytes.

    Same drawing as `to_dot`; needs the graphviz package (``pip install graphviz``) and, to
    render, Graphviz's ``dot`` program.
    """
    try:
        import graphviz
    except ImportError:
        raise ImportError(GRAPHVIZ_MISSING) from None
    _check_rankdir(rankdir)
    drawing = _Drawing(root, max_nodes, precision)
    dot = graphviz.Digraph(
        name="micrograd", comment=drawing.comment(), format=format, graph_attr={"rankdir": rankdir}
    )
    # The values are escaped for a quoted DOT string already; graphviz keeps such escapes.
    for name, attrs in drawing.nodes:
        dot.node(name, **attrs)
    for tail, head, attrs in drawing.edges:
        dot.edge(tail, head, **attrs)
    return dot


# ---------------------------------------------------------------------------------------------
# Text tree


def tree_str(root: Value, *, max_nodes: int | None = DEFAULT_MAX_NODES, precision: int = 4) -> str:
    """An indented tree of the graph behind ``root``: one line per operand, root first.

    An op node used in several places is expanded the first time and marked ``(see above)``
    after that, so the tree has one line per edge (plus the root). ``max_nodes`` caps the lines
    (None: no cap); a last line says how many were left out and counts the Values not shown.
    """
    _check_max_nodes(max_nodes)
    _check_precision(precision)
    order = topological_order(root)
    index = index_of(order)
    total_lines = 1 + sum(len(node._prev) for node in order)
    lines: list[str] = []
    shown: set[int] = set()
    expanded: set[int] = set()
    stack = [(root, "", "")]  # (node, prefix of its line, prefix of its children's lines)
    while stack and (max_nodes is None or len(lines) < max_nodes):
        node, lead, child_lead = stack.pop()
        op = f" ({node._op})" if node._prev else ""
        text = "%s%s%s  data %.*f  grad %.*f" % (
            lead, node_name(node, index[id(node)]), op, precision, node.data, precision, node.grad)
        shown.add(id(node))
        if id(node) in expanded:
            lines.append(text + "  (see above)")
            continue
        lines.append(text)
        expanded.add(id(node))
        kids = node._prev
        for j in reversed(range(len(kids))):  # pushed last-first so they print first-first
            last = j == len(kids) - 1
            stack.append((kids[j], child_lead + ("`-- " if last else "|-- "), child_lead + ("    " if last else "|   ")))
    if len(lines) < total_lines:
        unseen = by_op(node for node in order if id(node) not in shown)
        more = f"... {total_lines - len(lines)} more lines not shown"
        if unseen:
            more += f"; {sum(unseen.values())} Values not shown: {format_counts(unseen)}"
        lines.append(more)
    return "\n".join(lines)


def print_tree(
    root: Value,
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    precision: int = 4,
    file: TextIO | None = None,
) -> None:
    """Print `tree_str` (to ``file``, default stdout)."""
    print(tree_str(root, max_nodes=max_nodes, precision=precision), file=file or sys.stdout)


# ---------------------------------------------------------------------------------------------
# Command line


def neuron_example(value_type: Any = None) -> Value:
    """The lecture's tanh neuron (x1=2, x2=0, w1=-3, w2=1, b=6.88..., o = tanh(x1*w1 + x2*w2 + b)),
    labelled as in the lecture, after ``o.backward()``."""
    if value_type is None:
        from micrograd.engine import Value as value_type
    x1 = value_type(2.0, label="x1")
    x2 = value_type(0.0, label="x2")
    w1 = value_type(-3.0, label="w1")
    w2 = value_type(1.0, label="w2")
    b = value_type(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    o.backward()
    return o


def mlp_example(value_type: Any = None) -> Value:
    """The lecture's squared-error loss of a 3-4-4-1 tanh MLP on its four examples, after
    ``loss.backward()``: a graph of a few hundred Values, to show ``max_nodes`` at work.
    Built here (weights from ``random.Random(1337)``) so that it does not change with nn."""
    import random

    if value_type is None:
        from micrograd.engine import Value as value_type
    rng = random.Random(1337)
    sizes = [3, 4, 4, 1]
    layers = [
        [([value_type(rng.uniform(-1, 1)) for _ in range(nin)], value_type(0.0)) for _ in range(nout)]
        for nin, nout in zip(sizes, sizes[1:])
    ]
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    loss = value_type(0.0)
    for x, y in zip(xs, ys):
        act = x
        for layer in layers:
            act = [sum((wi * xi for wi, xi in zip(w, act)), b).tanh() for w, b in layer]
        loss = loss + (act[0] - y) ** 2
    loss.label = "loss"
    loss.backward()
    return loss


EXAMPLES = {"neuron": neuron_example, "mlp": mlp_example}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``micrograd viz``; ``prog`` names the program in usage lines (``python -m micrograd.viz``
    when this module is run directly)."""
    import argparse  # here, so that importing the module stays cheap

    from micrograd._cli import program_name

    parser = argparse.ArgumentParser(
        prog=prog or program_name("viz"),
        description="Draw an example graph: DOT text to stdout, a tree, or a file (.dot/.gv as text; "
        ".svg/.png/.pdf rendered with graphviz).",
    )
    parser.add_argument(
        "--example", choices=sorted(EXAMPLES), default="neuron",
        help="neuron: the lecture's tanh neuron; mlp: a 3-4-4-1 MLP's loss (default: neuron)",
    )
    parser.add_argument("--engine", choices=["python", "cython"], help="default: the active engine")
    parser.add_argument("-o", "--output", help="file to write; its extension picks the format")
    parser.add_argument("--tree", action="store_true", help="print the text tree instead of DOT")
    parser.add_argument("--rankdir", choices=RANKDIRS, default="LR", help="graph direction (default: LR, left to right)")
    parser.add_argument(
        "--max-nodes", type=int, default=DEFAULT_MAX_NODES,
        help=f"draw at most this many Values, nearest the root (default: {DEFAULT_MAX_NODES})",
    )
    args = parser.parse_args(argv)

    from micrograd.engine import ENGINES, EXTENSION_ERROR

    if args.engine is not None and args.engine not in ENGINES:
        from micrograd._diagnose import missing_extension_reason

        print(f"engine {args.engine!r} is not loaded: {missing_extension_reason(EXTENSION_ERROR)}", file=sys.stderr)
        return 2
    root = EXAMPLES[args.example](ENGINES[args.engine] if args.engine else None)
    if args.tree:
        print_tree(root, max_nodes=args.max_nodes)
        return 0
    if args.output is None:
        sys.stdout.write(to_dot(root, rankdir=args.rankdir, max_nodes=args.max_nodes))
        return 0
    extension = args.output.rsplit(".", 1)[-1].lower() if "." in args.output else ""
    if extension in ("dot", "gv"):
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(to_dot(root, rankdir=args.rankdir, max_nodes=args.max_nodes))
    else:
        try:
            dot = draw_dot(root, format=extension or "svg", rankdir=args.rankdir, max_nodes=args.max_nodes)
        except ImportError as exc:
            print(exc, file=sys.stderr)
            return 1
        import graphviz  # present: draw_dot worked

        try:
            image = dot.pipe()
        except graphviz.ExecutableNotFound as exc:  # the package is there, the `dot` program is not
            print(f"{exc}\n{DOT_MISSING}", file=sys.stderr)
            return 1
        with open(args.output, "wb") as f:
            f.write(image)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m micrograd.viz"))
