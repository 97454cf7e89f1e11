"""The compiled tape's dot products: runs of ``acc + w*x`` replayed as one loop, and groups of
four runs side by side. Every replay must still give eager mode's bits: values, outputs, and
every leaf's grad (contributions added in eager's order). The pure tape does not fuse; it runs
the same tests as the reference."""
import math
import random

import pytest

from micrograd import engine as engine_module
from micrograd import losses
from micrograd.datasets import make_moons
from micrograd.tape import Tape

from test_examples import load_example

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e-310]


def bits(x):
    """A float's exact identity (nan equal to nan, 0.0 different from -0.0)."""
    return "nan" if x != x else (x, math.copysign(1.0, x))


def fusion(tape):
    """(runs, terms, groups, continued runs) of a compiled tape; None for the pure one (it
    does not fuse)."""
    return tape._fused_dots() if tape.engine == "cython" else None


@pytest.fixture(autouse=True)
def runs_not_grids(monkeypatch):
    """These tests are about the runs' loops: the matrix stage, which would take their grids
    (tests/test_tape_matrix.py), is off, except in check_replays' second capture."""
    if "cython" in engine_module.ENGINES:
        import micrograd._tape

        monkeypatch.setattr(micrograd._tape, "MATRIX_STAGE", False)


def check_replays(Value, build, n_leaves, rng, rounds=3, special=False):
    """Capture build's graph once; then, on new leaf values (and leaf grads that do not start
    at 0), the tape's root, outputs and leaf grads equal an eager build's, bit for bit. With
    special, every other round puts nan, infinities, zeros of both signs and subnormals in.
    On the compiled engine, a second tape, with the matrix stage on, must do the same."""
    tape = _check_replays(Value, build, n_leaves, random.Random(rng.random()), rounds, special)
    if tape.engine == "cython":
        import micrograd._tape

        micrograd._tape.MATRIX_STAGE = True  # the fixture puts it back
        _check_replays(Value, build, n_leaves, rng, rounds, special)
        micrograd._tape.MATRIX_STAGE = False
    return tape


def _check_replays(Value, build, n_leaves, rng, rounds, special):
    leaves = [Value(rng.uniform(-1, 1)) for _ in range(n_leaves)]
    root, outputs = build(leaves)
    tape = Tape(root, outputs=outputs)
    for round in range(rounds):
        odd = special and round % 2  # special floats every other round (a nan spreads everywhere)
        values = [rng.choice(SPECIAL) if odd and rng.random() < 0.2 else rng.uniform(-2, 2)
                  for _ in range(n_leaves)]
        start = [rng.choice([0.0, -0.0, rng.uniform(-1, 1)]) for _ in range(n_leaves)]
        fresh = [Value(v) for v in values]
        e_root, e_outputs = build(fresh)
        for leaf, g in zip(fresh, start):
            leaf.grad = g
        e_root.backward()
        for leaf, v, g in zip(leaves, values, start):
            leaf.data, leaf.grad = v, g
        assert bits(tape.forward()) == bits(e_root.data)
        assert [bits(o.data) for o in outputs] == [bits(o.data) for o in e_outputs]
        tape.backward()
        assert [bits(v.grad) for v in leaves] == [bits(v.grad) for v in fresh]
    return tape


# ---------------------------------------------------------------------------------------------
# MLPs: Karpathy's neurons, sum((wi*xi ...), b), many neurons over one input


def mlp_step_check(nn, engine, nin, nouts, n_samples, seed, activation="relu"):
    rng = random.Random(seed)
    random.seed(seed)
    model = nn.MLP(nin, nouts, activation=activation)
    params = model.parameters()
    xs = [[engine(rng.uniform(-2, 2)) for _ in range(nin)] for _ in range(n_samples)]

    def build(model, xs):
        scores = [model(x) for x in xs]
        flat = [s for out in scores for s in (out if isinstance(out, list) else [out])]
        return losses.mse(flat, [0.5] * len(flat)) + losses.l2(model.parameters(), 1e-3), flat

    loss, scores = build(model, xs)
    tape = Tape(loss, outputs=scores)
    random.seed(seed)
    twin = nn.MLP(nin, nouts, activation=activation)  # the eager side: the same weights
    twin_xs = [[engine(x.data) for x in row] for row in xs]
    for step in range(3):
        for row, twin_row in zip(xs, twin_xs):
            for x, t in zip(row, twin_row):
                x.data = t.data = rng.uniform(-2, 2)
        model.zero_grad()
        twin.zero_grad()
        value = tape.forward()
        tape.backward()
        e_loss, e_scores = build(twin, twin_xs)
        e_loss.backward()
        assert bits(value) == bits(e_loss.data)
        assert [bits(s.data) for s in scores] == [bits(s.data) for s in e_scores]
        assert [bits(p.grad) for p in params] == [bits(p.grad) for p in twin.parameters()]
        assert [bits(x.grad) for row in xs for x in row] == [bits(x.grad) for row in twin_xs for x in row]
        for p, q in zip(params, twin.parameters()):
            p.data = q.data = p.data - 0.05 * p.grad
    return tape


SHAPES = [(2, [16, 16, 1], 10), (3, [8, 5, 4], 6), (4, [7, 1], 9), (2, [4, 4, 4, 1], 5), (5, [9, 3], 4)]


@pytest.mark.parametrize("nin, nouts, n_samples", SHAPES)
def test_mlp_training_steps_replay_like_eager(nn, engine, nin, nouts, n_samples):
    tape = mlp_step_check(nn, engine, nin, nouts, n_samples, seed=nin + len(nouts))
    if tape.engine == "cython":
        runs, terms, groups, continued = fusion(tape)
        assert runs > 0 and groups > 0  # the fused paths are the ones under test


def test_tanh_mlp_replays_like_eager(nn, engine):
    mlp_step_check(nn, engine, 3, [12, 6, 2], 4, seed=3, activation="tanh")


def test_the_demo_step_is_fused_and_exact(nn, engine):
    X, y = make_moons(30, noise=0.1)
    random.seed(1337)
    model = nn.MLP(2, [16, 16, 1])
    inputs = [list(map(engine, row)) for row in X]
    scores = list(map(model, inputs))
    loss = losses.hinge(scores, y) + losses.l2(model.parameters(), 1e-4)
    tape = Tape(loss, outputs=scores)
    if tape.engine == "cython":
        runs, terms, groups, continued = fusion(tape)
        n_products = 30 * (2 * 16 + 16 * 16 + 16) + len(model.parameters())
        # nearly every product of a neuron and of l2 (a chain cut by its span limit can leave a
        # lone product and add, which the pair loop runs)
        assert terms >= 0.95 * n_products
        assert groups >= 30 * 7  # per sample: layer 1 in 4 groups, layer 2's 15 later neurons in 3
    random.seed(1337)
    twin = nn.MLP(2, [16, 16, 1])
    for k in range(3):
        for p in model.parameters():
            p.grad = 0.0
        tape.forward()
        tape.backward()
        e_scores = [twin(list(map(engine, row))) for row in X]
        e_loss = losses.hinge(e_scores, y) + losses.l2(twin.parameters(), 1e-4)
        twin.zero_grad()
        e_loss.backward()
        assert bits(loss.data) == bits(e_loss.data)
        assert [bits(s.data) for s in scores] == [bits(s.data) for s in e_scores]
        assert [bits(p.grad) for p in model.parameters()] == [bits(p.grad) for p in twin.parameters()]
        for p, q in zip(model.parameters(), twin.parameters()):
            p.data = q.data = p.data - (1.0 - 0.9 * k / 3) * p.grad


# ---------------------------------------------------------------------------------------------
# Random sums of products: shared operands, reused products, both operand orders, special floats


def random_dot_program(seed, n_leaves=8, n_sums=30):
    """A fixed recipe of sums of products over a growing pool of nodes (built by dot_graph)."""
    rng = random.Random(seed)
    recipe = []
    for s in range(n_sums):
        pool = n_leaves + s
        n = rng.choice([1, 2, 3, 4, 4, 4, 6])
        vec = [rng.randrange(pool) for _ in range(n)]
        recipe.append({
            "start": rng.choice([None, rng.randrange(pool)]),  # None: Python's sum from 0
            "w": [rng.randrange(pool) for _ in range(n)],
            "x": vec if rng.random() < 0.5 else None,  # None: the previous sum's vector (shared)
            "flip": [rng.random() < 0.15 for _ in range(n)],  # x*w instead of w*x
            "acc_last": rng.random() < 0.1,  # term + acc instead of acc + term
            "reuse": rng.random() < 0.15,  # one product also read elsewhere: not fusable
            "act": rng.choice([None, None, "tanh", "relu"]),
        })
    return recipe


def dot_graph(recipe, leaves):
    nodes = list(leaves)
    outputs = []
    x_prev = [0]
    for step in recipe:
        x = step["x"] if step["x"] is not None else x_prev
        x = (x * len(step["w"]))[: len(step["w"])]
        x_prev = x
        terms = [nodes[x[k]] * nodes[w] if step["flip"][k] else nodes[w] * nodes[x[k]]
                 for k, w in enumerate(step["w"])]
        acc = nodes[step["start"]] if step["start"] is not None else 0
        for k, t in enumerate(terms):
            acc = t + acc if (step["acc_last"] and k == len(terms) - 1) else acc + t
        if step["reuse"]:
            acc = acc + terms[0].tanh()
        if step["act"]:
            acc = getattr(acc, step["act"])()
        nodes.append(acc)
        if len(outputs) < 3 and step["reuse"]:
            outputs.append(terms[-1])  # a product that is also an output: read elsewhere
    root = sum(nodes[len(leaves):]) * nodes[len(leaves) + 1]  # every sum (and output) counts
    return root, outputs


@pytest.mark.parametrize("seed", range(25))
def test_random_sums_of_products_replay_like_eager(engine, seed):
    recipe = random_dot_program(seed)
    check_replays(engine, lambda leaves: dot_graph(recipe, leaves), 8, random.Random(seed))


@pytest.mark.parametrize("seed", range(10))
def test_special_floats_replay_like_eager(engine, seed):
    recipe = random_dot_program(100 + seed)
    check_replays(engine, lambda leaves: dot_graph(recipe, leaves), 8, random.Random(seed), rounds=5, special=True)


def random_layers(seed, n_leaves=40, n_layers=6):
    """Layers of neurons over one vector each, with random collisions: a weight or start shared
    between neurons, an operand repeated in a vector, an activation read by the next neuron."""
    rng = random.Random(seed)
    recipe, pool = [], n_leaves
    for _ in range(n_layers):
        nin, nout = rng.randint(1, 5), rng.randint(3, 9)
        x = [rng.randrange(pool) for _ in range(nin)]
        neurons = []
        for _ in range(nout):
            w = [rng.randrange(n_leaves) for _ in range(nin)]  # leaves: often distinct, not always
            side = rng.choice(x) if rng.random() < 0.25 else None  # a node reading x, between neurons
            neurons.append((rng.choice([None, rng.randrange(pool)]), w, rng.random() < 0.2,
                            rng.choice(["tanh", "relu", None]), side))
        recipe.append((x, neurons))
        pool += nout + sum(1 for n in neurons if n[-1] is not None)
    return recipe


def layers_graph(recipe, leaves):
    nodes = list(leaves)
    for x, neurons in recipe:
        outs = []
        for start, w, flip, act, side in neurons:
            terms = [nodes[xi] * nodes[wi] if flip else nodes[wi] * nodes[xi] for wi, xi in zip(w, x)]
            acc = sum(terms, nodes[start]) if start is not None else sum(terms)
            outs.append(getattr(acc, act)() if act else acc)
            if side is not None:  # a plain node, or a one-term run (whose product reads x)
                outs.append(nodes[side].tanh() * 0.7 if len(outs) % 2 else nodes[side] * nodes[w[0]] + 0.5)
        nodes += outs
    return sum(nodes[len(leaves):]) * nodes[-1], []


@pytest.mark.parametrize("seed", range(25))
def test_random_layers_replay_like_eager(engine, seed):
    recipe = random_layers(seed)
    check_replays(engine, lambda leaves: layers_graph(recipe, leaves), 40, random.Random(seed), special=seed % 2)


def test_random_layers_are_grouped_somewhere(both_engines):
    compiled = both_engines[1]
    found = [fusion(Tape(layers_graph(random_layers(seed), [compiled(k / 40) for k in range(40)])[0]))
             for seed in range(25)]
    assert sum(1 for runs, terms, groups, continued in found if groups) >= 5  # the grouped kernel is reached
    assert sum(1 for runs, terms, groups, continued in found if runs > 4 * groups) >= 5  # and refused


def layer_graph(leaves, nin, nout, perm=None, start_last=False, share_w=False, square=False):
    """nout neurons over one input vector; perm reorders some neurons' inputs (a slot then
    meets two term indices: such runs must not be grouped); share_w reuses one weight row;
    square makes one neuron's term x3*x3 (x3 then gets two contributions from that term)."""
    x = leaves[:nin]
    w = [leaves[nin + k * nin: nin + (k + 1) * nin] for k in range(nout)]
    bias = leaves[nin + nout * nin: nin + nout * nin + nout]
    outs = []
    for k in range(nout):
        row = list(w[0] if share_w else w[k])
        if square and k == 2:
            row[3] = x[3]
        xs = [x[i] for i in perm] if (perm and k % 2) else x
        acc = (row[0] * xs[0] + bias[k]) if start_last else (bias[k] + row[0] * xs[0])
        for wi, xi in zip(row[1:], xs[1:]):
            acc = acc + wi * xi
        outs.append(acc.tanh())
    return sum(outs) * outs[0], outs[:2]


@pytest.mark.parametrize("options, grouped", [
    ({}, True),
    ({"start_last": True}, True),
    ({"perm": [1, 0, 2, 3, 4]}, False),  # x0 at term 0 and term 1: grads could change order
    ({"share_w": True}, True),  # a weight shared at the same term index: order kept
    ({"square": True}, True),  # x3 * x3 in one neuron: grouped, but not with x's grad held aside
])
def test_layers_group_only_where_the_order_of_grads_is_kept(engine, options, grouped):
    nin, nout = 5, 8
    n = nin + nout * nin + nout
    tape = check_replays(engine, lambda leaves: layer_graph(leaves, nin, nout, **options), n, random.Random(7),
                         special=True)
    if tape.engine == "cython":
        runs, terms, groups, continued = fusion(tape)
        assert runs == nout and terms == nout * nin
        assert (groups > 0) == grouped


def test_a_product_or_a_partial_sum_read_twice_is_not_fused_away(engine):
    def build(leaves):
        w, x, b, c = leaves
        p = w * x
        s = b + p  # also read by the root: stored
        t = s + c * x
        return t * s + (c + p), [s]  # p read twice: not a run's product

    tape = check_replays(engine, build, 4, random.Random(1), special=True)
    if tape.engine == "cython":
        # only s + c*x could be a run (p is read twice, s is an output): one term alone, which
        # the mul-add pair loop runs as well (with b + p, whose results it stores)
        assert fusion(tape) == (0, 0, 0, 0) and tape._fused_pairs() == 2


def test_a_failing_forward_after_fused_layers_raises_what_eager_raises(nn, engine):
    random.seed(3)
    model = nn.MLP(3, [8, 8, 1], activation="linear")
    x = [engine(0.5), engine(-0.25), engine(1.0)]
    shift = engine(1e-3)

    def build(model, x, shift):
        out = model(x)
        return (out * out + shift).log() * 2.0, out

    root, out = build(model, x, shift)
    tape = Tape(root, outputs=[out])
    if tape.engine == "cython":
        assert fusion(tape)[2] > 0
    before = (root.data, out.data, [p.grad for p in model.parameters()])
    shift.data = -1e6  # log of a negative
    with pytest.raises(ValueError) as eager_error:
        build(model, [engine(v.data) for v in x], engine(shift.data))
    with pytest.raises(ValueError) as tape_error:
        tape.forward()
    assert str(tape_error.value) == str(eager_error.value)
    assert (root.data, out.data, [p.grad for p in model.parameters()]) == before  # nothing written
    with pytest.raises(RuntimeError, match="last forward"):
        tape.backward()
    shift.data = 1e-3
    assert tape.forward() == before[0]


# ---------------------------------------------------------------------------------------------
# A microgpt-style model: linear layers, attention scores, one-hot embeddings


def test_microgpt_tape_replays_like_eager(engine):
    gpt = load_example("microgpt")
    tok = gpt.Tokenizer(gpt.load_names())
    cfg = gpt.Config(n_embd=8, n_head=2, n_layer=1, block_size=6)
    names = [tok.encode(n) for n in gpt.load_names(seed=3)[:4]]
    eager, taped = (gpt.GPT(tok.vocab_size, cfg, 11, engine) for _ in range(2))
    tape, window = gpt.capture(taped, gpt.window_size(names, cfg))
    if tape.engine == "cython":
        runs, terms, groups, continued = fusion(tape)
        assert terms > 0 and groups > 0
    for doc in names:
        window.load(doc)
        for p, q in zip(taped.parameters(), eager.parameters()):
            p.grad = q.grad = 0.0
        value = tape.forward()
        tape.backward()
        e_loss = gpt.name_loss(eager, doc)
        e_loss.backward()
        assert bits(value) == bits(e_loss.data)
        assert [bits(p.grad) for p in taped.parameters()] == [bits(p.grad) for p in eager.parameters()]


@pytest.mark.parametrize("reads_x0, fused", [(False, (2, 2, 0, 1)), (True, (0, 0, 0, 0))])
def test_a_sum_continues_across_nodes_only_if_they_leave_its_grads_alone(engine, reads_x0, fused):
    """b + w0*x0 + w1*x1 where capture records x1's own nodes between the two products: the
    sum replays as one chain unless those nodes add into a slot of the chain (here x0), whose
    grad would then receive its contributions in another order than eager's; then each
    product and its add run in the pair loop."""
    def build(leaves):
        b, w0, x0, w1, y, c = leaves
        x1 = ((x0 if reads_x0 else y) * c).tanh()
        return (b + w0 * x0 + w1 * x1) * x0, []  # x0's grad: three contributions to order

    tape = check_replays(engine, build, 6, random.Random(5), rounds=8)
    if tape.engine == "cython":
        assert fusion(tape) == fused and tape._fused_pairs() == 2
