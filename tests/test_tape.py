"""The tape: capture a graph once, replay it; every replay must give eager mode's exact bits."""
import gc
import math
import pickle
import random
import sys
import threading

import pytest

import micrograd
from micrograd import _ops, tape as tape_module
from micrograd.datasets import make_moons
from micrograd.tape import Tape


MATH_ERRORS = (ArithmeticError, ValueError)  # what a forward op can raise (ValueError: log, **)


def bits(x):
    """A float's exact identity (nan equal to nan, 0.0 different from -0.0)."""
    return "nan" if x != x else (x, math.copysign(1.0, x))


def graph_nodes(root):
    """Every distinct node behind root (an independent walk, for counting)."""
    seen, stack = {id(root): root}, [root]
    while stack:
        for kid in stack.pop()._prev:
            if id(kid) not in seen:
                seen[id(kid)] = kid
                stack.append(kid)
    return list(seen.values())


# ---------------------------------------------------------------------------------------------
# Random programs: a fixed list of instructions, run on any leaf values, so the same program
# can be captured once and rebuilt eagerly on new values. Guards keep most runs in the domain
# of log and fractional powers; where a run still fails, the tape must fail the same way.

UNARY = ["relu", "tanh", "exp_tanh", "log_sq", "sigmoid", "pow2", "pow3", "pow_inv", "pow_half_sq",
         "pow_neg_frac_sq", "pow0", "neg", "rsub", "rpow", "rdiv_sq"]
BINARY = ["add", "mul", "sub", "div_sq", "pow_value_pos", "pow_value_int", "add_const", "rmul_const",
          "same_mul", "same_add"]


def make_program(seed, n_leaves=5, n_ops=50):
    rng = random.Random(seed)
    program = []
    for step in range(n_ops):
        n = n_leaves + step
        if rng.random() < 0.5:
            program.append((rng.choice(UNARY), rng.randrange(n), None, rng.uniform(-1, 1)))
        else:
            program.append((rng.choice(BINARY), rng.randrange(n), rng.randrange(n), rng.uniform(-1, 1)))
    return program


def apply(op, a, b, c, Value):
    if op == "relu":
        return a.relu()
    if op == "tanh":
        return a.tanh()
    if op == "exp_tanh":
        return a.tanh().exp()
    if op == "log_sq":
        return (a * a + 0.25).log()
    if op == "sigmoid":
        return a.sigmoid()
    if op == "pow2":
        return a**2
    if op == "pow3":
        return a**3
    if op == "pow_inv":
        return (a * a + 0.5) ** -1
    if op == "pow_half_sq":
        return (a * a) ** 0.5
    if op == "pow_neg_frac_sq":
        return (a * a + 0.1) ** -1.5
    if op == "pow0":
        return a**0
    if op == "neg":
        return -a
    if op == "rsub":
        return 1.5 - a
    if op == "rpow":
        return 2.0 ** a.tanh()
    if op == "rdiv_sq":
        return 3.0 / (a * a + 1)
    if op == "add":
        return a + b
    if op == "mul":
        return (a * b).tanh()
    if op == "sub":
        return a - b
    if op == "div_sq":
        return a / (b * b + 0.5)
    if op == "pow_value_pos":
        return a.sigmoid() ** b.tanh()
    if op == "pow_value_int":
        return a.tanh() ** Value(2.0)  # negative base, integer Value exponent: slope is nan
    if op == "add_const":
        return a + c
    if op == "rmul_const":
        return c * b
    if op == "same_mul":
        return a * a
    if op == "same_add":
        return a + a
    raise AssertionError(op)


def in_graph(root, nodes):
    """Indices of the nodes the root depends on (the only ones a tape can output)."""
    behind = {id(v) for v in graph_nodes(root)}
    return [i for i, v in enumerate(nodes) if id(v) in behind]


def run_program(Value, program, leaf_values):
    """(leaves, nodes, root): the eager graph of program on these leaf values."""
    leaves = [Value(x) for x in leaf_values]
    nodes = list(leaves)
    for op, i, j, c in program:
        nodes.append(apply(op, nodes[i], nodes[j] if j is not None else None, c, Value))
    root = sum(nodes[-6:], nodes[len(leaves)])
    return leaves, nodes, root


def eager_or_error(Value, program, leaf_values, start_grads):
    """Eager results on leaf_values (leaf grads starting at start_grads), or the exception."""
    try:
        leaves, nodes, root = run_program(Value, program, leaf_values)
    except MATH_ERRORS as exc:
        return exc
    for leaf, g in zip(leaves, start_grads):
        leaf.grad = g
    root.backward()
    return leaves, nodes, root


@pytest.mark.parametrize("seed", range(30))
def test_replay_equals_eager_on_random_graphs(engine, seed):
    rng = random.Random(1000 + seed)
    program = make_program(seed)
    leaves, nodes, root = run_program(engine, program, [rng.uniform(-2, 2) for _ in range(5)])
    picked = in_graph(root, nodes)[5::3]
    outputs = [nodes[i] for i in picked]
    tape = Tape(root, outputs=outputs)
    compared = 0
    for _ in range(4):  # several replays, each on new leaf values, grads starting non-zero
        values = [rng.uniform(-2, 2) for _ in range(5)]
        start = [rng.uniform(-1, 1) for _ in range(5)]
        expected = eager_or_error(engine, program, values, start)
        for leaf in tape.leaves:  # the constants ops made: 0, as in a fresh eager graph
            leaf.grad = 0.0
        for leaf, x, g in zip(leaves, values, start):
            leaf.data, leaf.grad = x, g
        if isinstance(expected, Exception):
            with pytest.raises(type(expected)):
                tape.forward()
            continue
        e_leaves, e_nodes, e_root = expected
        assert bits(tape.forward()) == bits(e_root.data)
        assert bits(root.data) == bits(e_root.data)
        assert [bits(v.data) for v in outputs] == [bits(e_nodes[i].data) for i in picked]
        tape.backward()
        assert [bits(v.grad) for v in leaves] == [bits(v.grad) for v in e_leaves]
        # the constant leaves ops made (the 0.25 in a*a + 0.25...) receive the same grads too
        e_tape = Tape(e_root)
        assert [bits(v.grad) for v in tape.leaves] == [bits(v.grad) for v in e_tape.leaves]
        compared += 1
    assert compared >= 2, "the guards should keep most random runs in the ops' domains"


@pytest.mark.parametrize("seed", range(10))
def test_both_engines_record_and_replay_the_same(both_engines, seed):
    rng = random.Random(seed)
    program = make_program(seed, n_ops=80)
    values = [rng.uniform(-2, 2) for _ in range(5)]
    new_values = [rng.uniform(-2, 2) for _ in range(5)]
    results = []
    for Value in both_engines:
        leaves, nodes, root = run_program(Value, program, values)
        tape = Tape(root, outputs=[nodes[i] for i in in_graph(root, nodes)[::4]])
        for leaf, x in zip(leaves, new_values):
            leaf.data = x
        try:
            out = bits(tape.forward())
            tape.backward()
        except MATH_ERRORS as exc:
            out = type(exc).__name__, str(exc)
        results.append((tape._structure(), len(tape), tape.nbytes, out,
                        [bits(v.data) for v in tape.outputs], [bits(v.grad) for v in tape.leaves]))
    assert results[0] == results[1]


def test_fresh_tape_backward_equals_eager_backward(both_engines):
    """A new tape holds the captured graph's values: backward() without forward() is eager's."""
    program = make_program(7)
    got = []
    for Value in both_engines:
        leaves, _, root = run_program(Value, program, [0.3, -1.2, 0.7, 1.9, -0.4])
        tape = Tape(root)
        tape.backward()
        got.append([bits(v.grad) for v in leaves])
        leaves2, _, root2 = run_program(Value, program, [0.3, -1.2, 0.7, 1.9, -0.4])
        root2.backward()
        assert got[-1] == [bits(v.grad) for v in leaves2]
    assert got[0] == got[1]
    assert any(g != (0.0, 1.0) for g in got[0])


# ---------------------------------------------------------------------------------------------
# Every op


def test_the_tape_knows_every_op_of_the_table():
    codes = {op.code for op in _ops.OPS}
    assert tape_module.SUPPORTED_CODES == codes


def test_the_compiled_tape_knows_every_op_of_the_table(both_engines):
    from micrograd import _tape

    assert _tape.SUPPORTED_CODES == {op.code for op in _ops.OPS}


OP_GRAPHS = {
    "add": lambda x, y: x + y,
    "mul": lambda x, y: x * y,
    "powc": lambda x, y: x**3 + (y + 3) ** -2 + (x * x) ** 0.5,
    "pow": lambda x, y: (x * x) ** y + x ** (y * 0 + 2),
    "relu": lambda x, y: x.relu() + y.relu(),
    "tanh": lambda x, y: x.tanh() * y,
    "exp": lambda x, y: x.exp() * y,
    "log": lambda x, y: (x * x).log() * y,
    "sigmoid": lambda x, y: x.sigmoid() + (-y).sigmoid(),
    "abs": lambda x, y: abs(x) * y + (y * 0).abs(),  # the gradient at 0 included
}


def test_every_op_has_a_graph_here():
    assert set(OP_GRAPHS) == {op.name for op in _ops.OPS} - {"leaf"}


@pytest.mark.parametrize("name", sorted(OP_GRAPHS))
def test_every_op_replays_like_eager(engine, name):
    build = OP_GRAPHS[name]
    x, y = engine(0.8), engine(-1.3)
    tape = Tape(build(x, y))
    assert _ops.OP_CODES[name] in tape._structure()[0]  # the op really is on the tape
    for xv, yv in [(1.7, 0.4), (-0.6, 2.2), (0.5, -1.0), (-2.5, -0.5), (-1.0, 0.0)]:
        ex, ey = engine(xv), engine(yv)
        eager = build(ex, ey)
        eager.backward()
        x.data, y.data, x.grad, y.grad = xv, yv, 0.0, 0.0
        assert bits(tape.forward()) == bits(eager.data)
        tape.backward()
        assert (bits(x.grad), bits(y.grad)) == (bits(ex.grad), bits(ey.grad))


# Sums of products, the bulk of an MLP's graph, written every way their nodes can share
# children: the compiled tape runs each mul and the add after it as one step and carries the
# running sum in a register, which must never stand in for a slot written since.
DOT_PATTERNS = [
    lambda acc, w, x: acc + w * x,  # a neuron's sum
    lambda acc, w, x: w * x + acc,  # the product first
    lambda acc, w, x: acc + acc * w,  # the add's other child is also the mul's child
    lambda acc, w, x: acc * w + acc,
    lambda acc, w, x: (lambda p: p + p)(acc * w),  # both children of the add are the mul
    lambda acc, w, x: acc + acc * acc,
    lambda acc, w, x: acc * (x + w * x),
    lambda acc, w, x: (acc + w * x).relu(),
    lambda acc, w, x: (acc * w + x).tanh(),
]


@pytest.mark.parametrize("seed", range(12))
def test_sums_of_products_replay_like_eager(engine, seed):
    rng = random.Random(seed)
    choices = [rng.randrange(len(DOT_PATTERNS)) for _ in range(40)]

    def build(values):
        w = [engine(v) for v in values]
        acc = w[0]
        for k, c in enumerate(choices):
            acc = DOT_PATTERNS[c](acc, w[1 + k % 5], w[6 + k % 3])
            if k % 4 == 3:
                acc = acc.tanh()  # keeps the values bounded
        return w, acc

    w, root = build([rng.uniform(-1, 1) for _ in range(9)])
    tape = Tape(root)
    if tape.engine == "cython":
        assert tape._fused_pairs() > 5  # the fast path is the one under test
    for _ in range(3):
        values = [rng.uniform(-1, 1) for _ in range(9)]
        e_w, e_root = build(values)
        e_root.backward()
        for leaf, v in zip(w, values):
            leaf.data, leaf.grad = v, 0.0
        assert bits(tape.forward()) == bits(e_root.data)
        tape.backward()
        assert [bits(v.grad) for v in w] == [bits(v.grad) for v in e_w]


def test_a_root_that_is_a_leaf(engine):
    x = engine(3.0)
    x.grad = 5.0
    tape = Tape(x)
    assert len(tape) == 1 and tape.leaves == (x,)
    x.data = 4.0
    assert tape.forward() == 4.0
    tape.backward()
    assert x.grad == 1.0  # eager x.backward() sets the root's grad to 1, leaf or not


def test_a_leaf_used_twice_gets_both_contributions(engine):
    x = engine(3.0)
    tape = Tape(x * x + x)
    x.data = -2.0
    assert tape.forward() == 2.0
    tape.backward()
    assert x.grad == 2 * -2.0 + 1  # d(x^2 + x)/dx at -2
    assert len(tape.leaves) == 1


# ---------------------------------------------------------------------------------------------
# The demo: Karpathy's two-moons MLP, max-margin loss + L2, SGD


def demo_loss(nn, Value, X, y, model):
    inputs = [list(map(Value, row)) for row in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum(p * p for p in model.parameters())
    return inputs, scores, data_loss + reg_loss


def sgd(model, k, steps):
    lr = 1.0 - 0.9 * k / steps
    for p in model.parameters():
        p.data -= lr * p.grad


def test_demo_training_with_the_tape_equals_eager(nn, engine):
    X, y = make_moons(30, noise=0.1)
    random.seed(1337)
    eager_model = nn.MLP(2, [8, 8, 1])
    random.seed(1337)
    tape_model = nn.MLP(2, [8, 8, 1])
    _, scores, loss = demo_loss(nn, engine, X, y, tape_model)
    tape = Tape(loss, outputs=scores)
    steps = 4
    for k in range(steps):
        _, e_scores, e_loss = demo_loss(nn, engine, X, y, eager_model)
        eager_model.zero_grad()
        e_loss.backward()

        tape.forward()
        tape_model.zero_grad()
        tape.backward()

        assert bits(loss.data) == bits(e_loss.data)
        assert [bits(s.data) for s in scores] == [bits(s.data) for s in e_scores]
        assert [bits(p.grad) for p in tape_model.parameters()] == [bits(p.grad) for p in eager_model.parameters()]
        sgd(eager_model, k, steps)
        sgd(tape_model, k, steps)
        assert [p.data for p in tape_model.parameters()] == [p.data for p in eager_model.parameters()]
    assert loss.data < 1.0  # and it trains: the max-margin loss starts near 1 and falls


def test_new_inputs_and_labels_fed_through_data(nn, engine):
    """A minibatch loop: inputs and labels are leaf Values; each step sets their .data."""
    X, y = make_moons(40, noise=0.1)
    random.seed(7)
    model = nn.MLP(2, [6, 1])
    xs = [[engine(0.0), engine(0.0)] for _ in range(10)]
    ys = [engine(0.0) for _ in range(10)]
    scores = list(map(model, xs))
    loss = sum((1 + -yi * si).relu() for yi, si in zip(ys, scores)) * 0.1
    tape = Tape(loss, outputs=scores)
    for start in range(0, 40, 10):
        for row, yv, xrow, yrow in zip(xs, ys, X[start:start + 10], y[start:start + 10]):
            row[0].data, row[1].data, yv.data = xrow[0], xrow[1], yrow
        model.zero_grad()
        tape.forward()
        tape.backward()
        grads = [bits(p.grad) for p in model.parameters()]

        e_xs = [[engine(a), engine(b)] for a, b in X[start:start + 10]]
        e_scores = list(map(model, e_xs))
        e_loss = sum((1 + -engine(yi) * si).relu() for yi, si in zip(y[start:start + 10], e_scores)) * 0.1
        model.zero_grad()
        e_loss.backward()
        assert bits(loss.data) == bits(e_loss.data)
        assert [bits(s.data) for s in scores] == [bits(s.data) for s in e_scores]
        assert grads == [bits(p.grad) for p in model.parameters()]


def test_forward_only_inference_on_new_inputs(nn, engine):
    random.seed(3)
    model = nn.MLP(2, [4, 4, 1])
    xs = [[engine(0.1), engine(0.2)] for _ in range(5)]
    scores = list(map(model, xs))
    tape = Tape(sum(scores), outputs=scores)
    grads_before = [p.grad for p in model.parameters()]
    rng = random.Random(0)
    for _ in range(3):
        new = [[rng.uniform(-2, 2), rng.uniform(-2, 2)] for _ in range(5)]
        for row, values in zip(xs, new):
            row[0].data, row[1].data = values
        total = tape.forward()
        expected = [model([engine(a), engine(b)]).data for a, b in new]
        assert [s.data for s in scores] == expected
        assert total == sum(scores).data
    assert [p.grad for p in model.parameters()] == grads_before  # forward touches no grad


def test_replay_writes_only_leaf_grads_and_the_root(engine):
    x = engine(0.5)
    hidden = (x * 2).tanh()
    loss = hidden * hidden
    tape = Tape(loss, outputs=hidden)
    x.data = 0.25
    tape.forward()
    tape.backward()
    assert hidden.data == math.tanh(0.5)  # outputs' data are replayed...
    assert hidden.grad == 0.0  # ...but interior grads are not written
    assert loss.grad == 1.0
    t = math.tanh(0.5)
    assert x.grad == pytest.approx(2 * t * (1 - t * t) * 2, rel=1e-15)


# ---------------------------------------------------------------------------------------------
# Errors in forward: what eager mode raises, and nothing half-written


FAILING = [
    ("log of a negative", lambda x: (x * 3).log() + x.exp(), -1.0),
    ("log of zero", lambda x: x.log(), 0.0),
    ("exp overflow", lambda x: x.exp() * 2, 1000.0),
    ("fractional power of a negative", lambda x: x**0.5 + x, -4.0),
    ("zero to a negative power", lambda x: x**-1, 0.0),
    ("pow overflow", lambda x: x**400, 1e3),
    ("value exponent overflow", lambda x: x ** (x * 100), 50.0),
    ("value exponent, negative base", lambda x: (x - 1.5) ** (x * 0 + 0.5), 1.0),
]


@pytest.mark.parametrize("case", FAILING, ids=[c[0] for c in FAILING])
def test_a_failing_forward_raises_what_eager_raises(engine, case):
    _, build, bad = case
    x = engine(2.0)
    hidden = build(x)
    root = hidden * 1.0
    tape = Tape(root, outputs=hidden)
    before = (root.data, hidden.data, x.grad)
    with pytest.raises(MATH_ERRORS) as eager_error:
        build(engine(bad))
    x.data = bad
    with pytest.raises(type(eager_error.value)) as tape_error:
        tape.forward()
    assert str(tape_error.value) == str(eager_error.value)
    assert (root.data, hidden.data, x.grad) == before  # nothing written into any Value
    with pytest.raises(RuntimeError, match="last forward"):
        tape.backward()
    x.data = 2.0  # back in the domain: the tape works again
    assert tape.forward() == before[0]
    tape.backward()
    assert x.grad != 0.0


# ---------------------------------------------------------------------------------------------
# Misuse


def test_the_root_must_be_a_value():
    with pytest.raises(TypeError, match="Tape needs a Value"):
        Tape(3.0)
    with pytest.raises(TypeError, match="Tape needs a Value"):
        Tape("loss")


def test_outputs_must_be_values_of_the_graph(engine):
    x = engine(1.0)
    loss = x * 2
    with pytest.raises(ValueError, match="not part of the graph"):
        Tape(loss, outputs=[x * 3])
    with pytest.raises(TypeError, match="iterable of Values"):
        Tape(loss, outputs=5)
    with pytest.raises(TypeError, match=r"outputs\[1\]"):
        Tape(loss, outputs=[x, 2.0])
    assert Tape(loss, outputs=x).outputs == (x,)  # one Value is accepted as is


def test_outputs_must_be_of_the_root_engine(both_engines):
    pure_value, compiled_value = both_engines
    with pytest.raises(TypeError, match="same engine"):
        Tape(pure_value(1.0) * 2, outputs=[compiled_value(1.0)])
    with pytest.raises(TypeError, match="same engine"):
        Tape(compiled_value(1.0) * 2, outputs=[pure_value(1.0)])


def test_a_cycle_cannot_be_made(engine):
    # Only re-initialisation could make one, and it refuses: a tape never sees a cycle.
    a = engine(1.0)
    b = a.relu()
    with pytest.raises(ValueError, match="cycle"):
        a.__init__(0.5, (b,), "tanh")
    assert Tape(b).forward() == 1.0


def test_a_tape_keeps_its_leaves_alive(nn, engine):
    random.seed(5)
    model = nn.MLP(2, [3, 1])
    loss = model([engine(0.5), engine(-0.5)]).relu() + 1
    tape = Tape(loss)
    expected = tape.forward()
    n_leaves = len(tape.leaves)
    del model, loss
    gc.collect()
    assert tape.forward() == expected
    tape.backward()
    assert len(tape.leaves) == n_leaves
    assert tape.root.grad == 1.0


def test_an_uncaptured_compiled_tape_refuses_to_replay(both_engines):
    from micrograd._tape import CompiledTape

    empty = CompiledTape.__new__(CompiledTape)
    with pytest.raises(RuntimeError, match="no captured graph"):
        empty.forward()
    with pytest.raises(RuntimeError, match="no captured graph"):  # not "the last forward() failed"
        empty.backward()
    assert len(empty) == 0 and empty.leaves == ()


def test_a_tape_cannot_be_pickled(engine):
    tape = Tape(engine(1.0) * 2)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(tape)


def test_tape_is_the_public_class_for_both_engines(engine):
    tape = Tape(engine(1.0) + 2)
    assert isinstance(tape, Tape)
    assert micrograd.Tape is Tape
    assert tape.engine in repr(tape) and "3 nodes" in repr(tape)


def test_a_tape_replays_one_pass_at_a_time(engine):
    """While one thread replays a tape, another is refused with an error (and never corrupts
    it). For the compiled tape, seeing the tape busy at all proves that replay releases the
    GIL: with the GIL held, no other thread could run in the middle of a pass."""
    x = engine(0.5)
    v = x
    for _ in range(20_000):
        v = v * 0.5 + x
    tape = Tape(v)
    done = threading.Event()
    refused = []

    def replay():
        try:
            for _ in range(400):
                tape.forward()
                tape.backward()
                if refused:
                    break
        except RuntimeError as exc:  # the main thread was mid-pass: refused here instead
            refused.append(str(exc))
        finally:
            done.set()

    worker = threading.Thread(target=replay)
    worker.start()
    while not done.is_set() and not refused:
        try:
            tape.forward()
        except RuntimeError as exc:
            refused.append(str(exc))
    worker.join()
    assert refused and "another thread" in refused[0]
    x.grad = 0.0
    assert tape.forward() == pytest.approx(1.0)  # still whole after the contention
    tape.backward()
    assert x.grad == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------
# Capture and the engine's visit marks. The compiled capture notes in each node's visit mark that
# it met the node and where it put it, and puts every mark back: eager backward (which compares
# marks with its epoch) and later captures must never take a node for visited, whatever ran before.


def shared_graph(Value, depth=200):
    """(x, y, levels): every level uses the one below twice (2^depth paths, 3 * depth + 3 nodes)."""
    x, y = Value(0.75), Value(-0.5)
    levels = [x * y]
    for _ in range(depth):
        h = levels[-1]
        levels.append((h + h).tanh() * y)
    return x, y, levels


def eager_grads(Value, depth=200):
    x, y, levels = shared_graph(Value, depth)
    levels[-1].backward()
    return bits(x.grad), bits(y.grad)


def test_a_shared_subgraph_is_recorded_once(both_engines):
    structures = []
    for Value in both_engines:
        x, y, levels = shared_graph(Value)
        tape = Tape(levels[-1], outputs=levels[::50])
        assert len(tape) == len(graph_nodes(levels[-1])) == 3 * 200 + 3
        x.data = 0.5
        out = tape.forward()
        tape.backward()
        x3, y3 = Value(0.5), Value(y.data)  # the same graph, rebuilt eagerly on the new value
        rebuilt = [x3 * y3]
        for _ in range(200):
            rebuilt.append((rebuilt[-1] + rebuilt[-1]).tanh() * y3)
        rebuilt[-1].backward()
        assert bits(out) == bits(rebuilt[-1].data)
        assert [bits(v.data) for v in tape.outputs] == [bits(v.data) for v in rebuilt[::50]]
        assert (bits(x.grad), bits(y.grad)) == (bits(x3.grad), bits(y3.grad))
        structures.append(tape._structure())
    assert structures[0] == structures[1]


def test_eager_backward_after_capture_and_capture_after_backward(engine):
    expected = eager_grads(engine)
    x, y, levels = shared_graph(engine)
    tape = Tape(levels[-1])
    levels[-1].backward()  # after a capture: every node is visited again
    assert (bits(x.grad), bits(y.grad)) == expected
    again = Tape(levels[-1])  # after a backward: every node is recorded again
    assert again._structure() == tape._structure()
    x.grad = y.grad = 0.0
    again.backward()
    assert (bits(x.grad), bits(y.grad)) == expected
    for _ in range(3):  # alternating, on the same nodes
        for v in graph_nodes(levels[-1]):
            v.grad = 0.0  # eager backward adds to every node's grad
        levels[-1].backward()
        assert Tape(levels[-1])._structure() == tape._structure()
        assert (bits(x.grad), bits(y.grad)) == expected


def test_a_capture_inside_another_captures_graph(engine):
    x, y, levels = shared_graph(engine)
    outer = Tape(levels[-1])
    mid = levels[100]
    inner = Tape(mid)  # a part of the graph already recorded
    assert len(inner) == len(graph_nodes(mid)) == 3 * 100 + 3
    wider = levels[-1] * 2 + mid  # a graph holding both tapes' nodes
    assert len(Tape(wider)) == len(outer) + 3
    assert Tape(levels[-1])._structure() == outer._structure()
    x.data = 0.25
    assert bits(inner.forward()) == bits(mid.data)
    assert bits(outer.forward()) == bits(levels[-1].data)


def test_two_tapes_over_one_graph_replay_alike(engine):
    x, y, levels = shared_graph(engine)
    first = Tape(levels[-1])
    second = Tape(levels[-1], outputs=[levels[7], x])
    assert first._structure()[:4] == second._structure()[:4]
    for value in (0.1, -0.3):
        x.data = value
        results = []
        for tape in (first, second):
            x.grad = y.grad = 0.0
            out = tape.forward()
            tape.backward()
            results.append((bits(out), bits(x.grad), bits(y.grad)))
        assert results[0] == results[1]


@pytest.mark.parametrize("children", [1, 2, 5])
def test_a_refused_capture_leaves_the_graph_as_it_was(engine, children):
    """A capture that fails half way (a node built by hand, an output not in the graph) leaves
    no mark that a later capture or backward could mistake for its own."""
    expected = eager_grads(engine)
    x, y, levels = shared_graph(engine)
    clean = levels[-1]
    by_hand = engine(1.0, tuple([levels[150]] + [x] * (children - 1)), "by hand")
    with pytest.raises(ValueError, match="built by hand"):
        Tape(by_hand * clean)
    with pytest.raises(ValueError, match="not part of the graph"):
        Tape(levels[120], outputs=[clean])
    tape = Tape(clean)
    assert len(tape) == len(graph_nodes(clean))
    clean.backward()
    assert (bits(x.grad), bits(y.grad)) == expected
    x.grad = y.grad = 0.0
    tape.backward()
    assert (bits(x.grad), bits(y.grad)) == expected


def test_captures_in_threads_at_once_on_shared_nodes(engine):
    """Capture holds the GIL from its first mark to its last (it runs no Python code), so
    captures and eager backward passes in several threads over the same nodes never mix marks."""
    x, y, levels = shared_graph(engine, depth=20_000 if engine is micrograd.engine.ENGINES.get("cython") else 2_000)
    root = levels[-1]
    reference = Tape(root)._structure()
    outcomes = []

    def capture():
        outcomes.extend(Tape(root)._structure() == reference for _ in range(4))

    def backward():
        for _ in range(4):
            root.backward()
        outcomes.append(True)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=f) for f in (capture, capture, backward)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert outcomes == [True] * 9
    assert Tape(root)._structure() == reference


# ---------------------------------------------------------------------------------------------
# Size: deep graphs without recursion, bytes per node


def test_a_deep_chain_is_captured_and_replayed(engine):
    n = 300_000 if engine is micrograd.engine.ENGINES.get("cython") else 50_000
    x = engine(0.5)
    v = x
    for _ in range(n):
        v = v * 0.5 + x  # converges to 2x: every node counts
    tape = Tape(v)
    assert len(tape) == 3 * n + 1  # n muls, n adds, n constant leaves, and x
    x.data = 0.75
    out = tape.forward()
    tape.backward()
    y = engine(0.75)
    w = y
    for _ in range(n):
        w = w * 0.5 + y
    w.backward()
    assert bits(out) == bits(w.data) and out == pytest.approx(1.5)
    assert bits(x.grad) == bits(y.grad) and x.grad == pytest.approx(2.0)


def test_memory_is_counted_from_the_layout(engine):
    x, y = engine(0.5), engine(2.0)
    loss = (x * y + 1).tanh() ** 2 + x**-1 + y**2 + x.log()
    tape = Tape(loss, outputs=[x])
    nodes = graph_nodes(loss)
    n_leaves = sum(1 for v in nodes if not v._prev)
    n_interior = len(nodes) - n_leaves
    n_consts = 2  # the distinct constant exponents 2 and -1: one slot each, shared
    assert len(tape) == len(nodes) == n_leaves + n_interior == 13
    assert tape.nbytes == 16 * len(nodes) + 9 * n_interior + 8 * n_leaves + 8 * n_consts + 4


def test_the_pure_tape_reports_its_arrays_bytes(engine):
    """nbytes of the pure tape measured from its own arrays; the compiled one must agree."""
    python_tape = Tape(micrograd.pure.Value(0.5) ** 2 + 3)
    arrays = [python_tape._code, python_tape._a, python_tape._b, python_tape._consts,
              python_tape._data, python_tape._grad, python_tape._output_slots]
    measured = sum(arr.itemsize * len(arr) for arr in arrays) + 8 * len(python_tape._leaves)
    assert python_tape.nbytes == measured
    other = Tape(engine(0.5) ** 2 + 3)
    assert other.nbytes == measured


def test_the_demo_takes_at_most_32_bytes_per_node(nn, engine):
    X, y = make_moons(20, noise=0.1)
    random.seed(1337)
    model = nn.MLP(2, [16, 16, 1])
    _, scores, loss = demo_loss(nn, engine, X, y, model)
    tape = Tape(loss, outputs=scores)
    assert len(tape) == len(graph_nodes(loss))
    assert tape.nbytes <= 32 * len(tape)
