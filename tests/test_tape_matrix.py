"""The compiled tape's matrix stage: dot products that form a grid, R weight vectors (the
products' first operands) by C input vectors (the second), each ``start + w0*x0 + w1*x1 + ...``
of K terms at one depth of the graph (one MLP layer over a batch), replayed as matrix kernels,
the tape re-scheduled around them (forward by height, backward in an order that gives every
grad its contributions in eager backward's order). Replay must still give eager mode's bits:
root, outputs and every leaf's grad, round after round, on new leaf values and on leaf grads
that do not start at 0. The pure tape does not group; it runs the same tests as the reference.

``tape._matrix_groups()`` (compiled tape) says (groups replayed as kernels, dot products they
cover, their terms). Tests whose point is that a grid is grouped, or that one must not be,
check it after the bits; the hazard tests check only the bits, whatever the counters say.
"""
import math
import os
import random
import sys
import threading

import pytest

from micrograd import engine as engine_module

from micrograd import losses, optim
from micrograd.datasets import make_digits, make_moons
from micrograd.gpt import logsumexp
from micrograd.graph import topological_order
from micrograd.tape import Tape

from test_tape_fusion import bits

# Leaf values of the "special" rounds: infinities, nan, zeros of both signs, 1e200 (whose
# products overflow), subnormals, 1e-170 (whose products underflow to a subnormal or to 0).
SPECIALS = [math.inf, -math.inf, math.nan, -0.0, 0.0, 1e200, -1e200, 5e-324, -2.5e-310, 1e-170]


@pytest.fixture(autouse=True)
def grids_at_any_size(monkeypatch):
    """The matrix stage plans grids only where they pay (big enough graphs and grids); these
    tests use small ones, so the thresholds come down to reach its path every time."""
    if "cython" in engine_module.ENGINES:
        import micrograd._schedule

        monkeypatch.setattr(micrograd._schedule, "THRESHOLDS", {"nodes": 0, "group_terms": 0, "share": 10**9})


def matrix(tape):
    """(groups, dots, terms) of a compiled tape's matrix stage; None for the pure tape."""
    return tape._matrix_groups() if tape.engine == "cython" else None


def draw_values(rng, n, special=0.0):
    """n leaf values in (-2, 2), each a special float instead with probability ``special``."""
    return [rng.choice(SPECIALS) if rng.random() < special else rng.uniform(-2, 2) for _ in range(n)]


def draw_grads(rng, n):
    """Leaf grads before a backward: 0.0, -0.0 or not zero (backward adds to them)."""
    return [rng.choice([0.0, -0.0, rng.uniform(-1, 1)]) for _ in range(n)]


def check_replays(Value, build, n_leaves, seed, rounds=3, special=0.0, roles=None):
    """Capture ``build(leaves)`` (-> root, outputs) once; then, each round, set the leaves' data
    and grads and compare the tape's root, outputs and leaf grads with an eager build on the same
    values, bit for bit. Round 0 runs backward on the captured values (a fresh tape holds them);
    later rounds run forward first, on new values (odd rounds: special floats with probability
    ``special``). ``roles`` (one letter per leaf, see Tape's params and constants): 'p' a
    param, 'i' an input (read, no grad), 'c' a constant (its data kept, no grad); the leaves
    without grads must keep theirs. None: Tape's defaults. Returns the tape."""
    rng = random.Random(seed)
    values = draw_values(rng, n_leaves)
    leaves = [Value(v) for v in values]
    root, outputs = build(leaves)
    if roles is None:
        tape = Tape(root, outputs=outputs)
        roles = "p" * n_leaves
    else:
        tape = Tape(root, outputs=outputs, params=[v for v, r in zip(leaves, roles) if r == "p"],
                    constants=[v for v, r in zip(leaves, roles) if r == "c"])
    captured = values
    for round in range(rounds):
        if round:
            values = draw_values(rng, n_leaves, special if round % 2 else 0.0)
            values = [c if r == "c" else v for v, c, r in zip(values, captured, roles)]
        grads = draw_grads(rng, n_leaves)
        fresh = [Value(v) for v in values]
        for leaf, g in zip(fresh, grads):
            leaf.grad = g
        e_root, e_outputs = build(fresh)
        e_root.backward()
        for leaf, v, g in zip(leaves, values, grads):
            leaf.data, leaf.grad = v, g
        value = tape.forward() if round else root.data
        assert bits(value) == bits(e_root.data), f"round {round}: root"
        assert [bits(o.data) for o in outputs] == [bits(o.data) for o in e_outputs], f"round {round}: outputs"
        tape.backward()
        want = [bits(e.grad if r == "p" else g) for e, g, r in zip(fresh, grads, roles)]
        assert [bits(v.grad) for v in leaves] == want, f"round {round}: leaf grads"
    return tape


# ---------------------------------------------------------------------------------------------
# Batched layers of leaves: a recipe (leaf indices, and hazards wired in), and its graph


def batched_mlp(rng, batch, nin, widths, hazards=(), acts=("relu", "tanh", "linear"), loss="squares"):
    """A recipe for ``batch`` samples of ``nin`` inputs through layers of ``widths`` neurons,
    as leaf indices: ``inputs[c][k]``, and per layer ``W[r][k]`` and ``B[r]``. ``hazards`` (names
    of HAZARDS) rewire it; ``loss`` is 'squares' (mean of (o - t)*(o - t), itself a sum of
    products) or 'sum' (the sum of the outputs: no product outside the layers)."""
    count = 0

    def new(k):
        nonlocal count
        count += k
        return list(range(count - k, count))

    inputs = [new(nin) for _ in range(batch)]
    layers, fan_in = [], nin
    for width in widths:
        layers.append({"W": [new(fan_in) for _ in range(width)], "B": new(width), "act": rng.choice(acts),
                       "start": "bias", "flip": set(), "square": set(), "missing": None})
        fan_in = width
    recipe = {"inputs": inputs, "layers": layers, "order": list(range(batch)), "loss": loss,
              "targets": [rng.uniform(-1, 1) for _ in range(batch * widths[-1])],
              "reg": None, "side": None, "outputs": []}
    for name in hazards:
        HAZARDS[name](recipe, rng)
    recipe["n_leaves"] = count
    return recipe


def _layer(recipe, rng):
    return rng.choice(recipe["layers"])


def reused_weight(recipe, rng):
    """A weight of one layer is also a weight of a later layer (or of another neuron)."""
    layers = recipe["layers"]
    later = rng.randrange(1, len(layers)) if len(layers) > 1 else 0
    earlier = rng.randrange(later) if later else 0
    W, V = layers[later]["W"], layers[earlier]["W"]
    r, k = rng.randrange(len(W)), rng.randrange(len(W[0]))
    W[r][k] = rng.choice(rng.choice(V))


def weight_as_input(recipe, rng):
    """An input of one sample (or of every sample, at one position) is a first-layer weight."""
    W, inputs = recipe["layers"][0]["W"], recipe["inputs"]
    k, w = rng.randrange(len(inputs[0])), rng.choice(rng.choice(W))
    for c in range(len(inputs)) if rng.random() < 0.5 else [rng.randrange(len(inputs))]:
        inputs[c][k] = w


def square(recipe, rng):
    """Some terms are x*x: the input itself in the weight's place (one node, both operands)."""
    layer = _layer(recipe, rng)
    for _ in range(rng.randint(1, 3)):
        layer["square"].add((rng.randrange(len(layer["W"])), rng.randrange(len(recipe["inputs"])),
                             rng.randrange(len(layer["W"][0]))))


def duplicate_column(recipe, rng):
    """One sample is another's input vector, the same Values: two identical columns."""
    inputs = recipe["inputs"]
    if len(inputs) > 1:
        c, d = rng.sample(range(len(inputs)), 2)
        inputs[d] = inputs[c]


def shared_bias(recipe, rng):
    """Every neuron of a layer has the same bias Value."""
    layer = _layer(recipe, rng)
    layer["B"] = [layer["B"][0]] * len(layer["B"])


def computed_start(recipe, rng):
    """The sums of a layer start from a computed node: bias + x0 (the sample's first input,
    whose grad then gets a contribution between every two neurons' terms), tanh(0.5 * bias),
    or Python's sum from 0 (0 + w0*x0: the start is the add's second operand)."""
    _layer(recipe, rng)["start"] = rng.choice(["x0", "tanh", "zero"])


def side_reader(recipe, rng):
    """A layer's outputs are also summed into the loss directly, before or after the data loss."""
    recipe["side"] = (rng.randrange(len(recipe["layers"])), rng.random() < 0.5)


def missing(recipe, rng):
    """One sample's dot product in a layer is something else: the grid has a hole."""
    layer = _layer(recipe, rng)
    layer["missing"] = (rng.randrange(len(layer["W"])), rng.randrange(len(recipe["inputs"])))


def scramble(recipe, rng):
    """The loss takes the samples in another order than they were built in."""
    rng.shuffle(recipe["order"])


def flip(recipe, rng):
    """Some terms are x*w: the weight as the product's second operand."""
    layer = _layer(recipe, rng)
    for _ in range(rng.randint(1, 3)):
        layer["flip"].add((rng.randrange(len(layer["W"])), rng.randrange(len(layer["W"][0]))))


def reg(recipe, rng):
    """L2 regularisation of the weights, added before or after the data loss."""
    recipe["reg"] = rng.choice(["first", "last"])


def output_dot(recipe, rng):
    """The tape's outputs include a dot product's node (before its activation)."""
    layers = recipe["layers"]
    l = rng.randrange(len(layers))
    recipe["outputs"].append(("dot", l, rng.randrange(len(layers[l]["W"])), rng.randrange(len(recipe["inputs"]))))


def output_partial(recipe, rng):
    """The tape's outputs include a partial sum inside a dot product (which then is no dot)."""
    layers = recipe["layers"]
    l = rng.randrange(len(layers))
    recipe["outputs"].append(("partial", l, rng.randrange(len(layers[l]["W"])), rng.randrange(len(recipe["inputs"])),
                              rng.randrange(len(layers[l]["W"][0]))))


HAZARDS = {f.__name__: f for f in [reused_weight, weight_as_input, square, duplicate_column, shared_bias,
                                   computed_start, side_reader, missing, scramble, flip, reg, output_dot,
                                   output_partial]}


def start_of(kind, b, x):
    if kind == "bias":
        return b
    if kind == "x0":
        return b + x[0]
    if kind == "tanh":
        return (b * 0.5).tanh()
    return 0  # Python's sum: 0 + w0*x0 makes the add (w0*x0) + 0


def graph(recipe, leaves):
    """The recipe's graph over leaves: (root, outputs)."""
    x = [[leaves[i] for i in row] for row in recipe["inputs"]]
    named = {}
    for l, layer in enumerate(recipe["layers"]):
        W = [[leaves[i] for i in row] for row in layer["W"]]
        B = [leaves[i] for i in layer["B"]]
        h = []
        for c, xc in enumerate(x):
            out = []
            for r, (w, b) in enumerate(zip(W, B)):
                if layer["missing"] == (r, c):
                    out.append(sum(xc).tanh())  # no dot product for this neuron and sample
                    continue
                acc = start_of(layer["start"], b, xc)
                for k, (wk, xk) in enumerate(zip(w, xc)):
                    if (r, c, k) in layer["square"]:
                        wk = xk
                    acc = acc + (xk * wk if (r, k) in layer["flip"] else wk * xk)
                    named[("partial", l, r, c, k)] = acc
                named[("dot", l, r, c)] = acc
                out.append(acc if layer["act"] == "linear" else getattr(acc, layer["act"])())
            h.append(out)
        named[("layer", l)] = h
        x = h
    outs = [x[c][r] for c in recipe["order"] for r in range(len(x[c]))]
    if recipe["loss"] == "sum":
        root = sum(outs)
    else:
        errors = [o - t for o, t in zip(outs, recipe["targets"])]
        root = sum(e * e for e in errors) * (1.0 / len(errors))
    if recipe["reg"]:
        weights = list(dict.fromkeys(i for layer in recipe["layers"] for row in layer["W"] for i in row))
        penalty = losses.l2([leaves[i] for i in weights], 1e-3)
        root = penalty + root if recipe["reg"] == "first" else root + penalty
    if recipe["side"]:
        l, first = recipe["side"]
        side = sum(v for out in named[("layer", l)] for v in out) * 0.25
        root = side + root if first else root + side
    return root, [named[key] for key in recipe["outputs"] if key in named]


def check_recipe(Value, recipe, seed, rounds=3, special=0.0, roles=None):
    return check_replays(Value, lambda leaves: graph(recipe, leaves), recipe["n_leaves"], seed, rounds, special, roles)


def _roles(recipe, input_role, weight_role):
    """One role letter per leaf of the recipe (see check_replays): its inputs' and its layers'
    leaves' (weight_role(l): of layer l)."""
    roles = ["p"] * recipe["n_leaves"]
    for row in recipe["inputs"]:
        for i in row:
            roles[i] = input_role
    for l, layer in enumerate(recipe["layers"]):
        for i in [i for row in layer["W"] for i in row] + layer["B"]:
            roles[i] = weight_role(l)
    return "".join(roles)


# Which leaves a tape is told are params and constants (see Tape): a fixed dataset (the bench's
# use), inputs loaded each step, the first layer frozen, a frozen first layer over constant
# inputs, and any leaf any role.
ROLE_SCHEMES = {
    "dataset": lambda recipe, rng: _roles(recipe, "c", lambda l: "p"),
    "inputs": lambda recipe, rng: _roles(recipe, "i", lambda l: "p"),
    "frozen": lambda recipe, rng: _roles(recipe, "i", lambda l: "c" if l == 0 else "p"),
    "frozen-dataset": lambda recipe, rng: _roles(recipe, "c", lambda l: "i" if l == 0 else "p"),
    "any": lambda recipe, rng: "".join(rng.choice("pic") for _ in range(recipe["n_leaves"])),
}


# ---------------------------------------------------------------------------------------------
# Karpathy's demo: MLP(2, [16, 16, 1]) over a batch of moons, max-margin loss (+ L2)


def check_training(engine, model, twin, build, rows, steps, update, rng, vary_inputs=True):
    """Capture build(model, inputs) (-> loss, outputs) once, the inputs being ``rows`` made
    Value leaves of ``engine`` (or the plain floats themselves when ``engine`` is None); then each
    step compare the tape with an eager build on ``twin`` (the same weights): loss, outputs,
    every parameter's grad (and input's, for Value inputs), and, after ``update(model, twin)``,
    every parameter's data. Step 0 runs backward on the captured values; later steps change the
    inputs' data (when they are Values and ``vary_inputs``) and run forward first."""
    xs = [[engine(v) for v in row] for row in rows] if engine else rows
    loss, outputs = build(model, xs)
    tape = Tape(loss, outputs=outputs)
    for step in range(steps):
        if step and engine and vary_inputs:
            rows = [[v + rng.uniform(-0.1, 0.1) for v in row] for row in rows]
            for row, values in zip(xs, rows):
                for x, v in zip(row, values):
                    x.data, x.grad = v, 0.0
        twin_xs = [[engine(v) for v in row] for row in rows] if engine else rows
        model.zero_grad()
        twin.zero_grad()
        value = tape.forward() if step else loss.data
        tape.backward()
        e_loss, e_outputs = build(twin, twin_xs)
        e_loss.backward()
        assert bits(value) == bits(e_loss.data), f"step {step}: loss"
        assert [bits(o.data) for o in outputs] == [bits(o.data) for o in e_outputs], f"step {step}: outputs"
        assert [bits(p.grad) for p in model.parameters()] == [bits(p.grad) for p in twin.parameters()], \
            f"step {step}: parameter grads"
        if engine:
            assert [bits(x.grad) for row in xs for x in row] == [bits(x.grad) for row in twin_xs for x in row], \
                f"step {step}: input grads"
        update(model, twin)
        assert [bits(p.data) for p in model.parameters()] == [bits(p.data) for p in twin.parameters()]
    return tape


def twin_mlps(nn, seed, *args, **kwargs):
    """Two MLPs with the same initial weights (made after random.seed(seed)): one to replay,
    one to build eagerly beside it."""
    random.seed(seed)
    model = nn.MLP(*args, **kwargs)
    random.seed(seed)
    return model, nn.MLP(*args, **kwargs)


def sgd(lr):
    def update(model, twin):
        for p, q in zip(model.parameters(), twin.parameters()):
            p.data = p.data - lr * p.grad
            q.data = q.data - lr * q.grad
    return update


def demo_loss(reg):
    """The demo's loss: max-margin over the batch, plus alpha * sum(p*p) after it, before it,
    or not at all."""
    def build(model, xs):
        scores = [model(x) for x in xs]
        data_loss = losses.hinge(scores, DEMO_Y)
        if reg is None:
            return data_loss, scores
        reg_loss = losses.l2(model.parameters(), 1e-4)
        return (data_loss + reg_loss if reg == "data+reg" else reg_loss + data_loss), scores
    return build


DEMO_BATCH = 20
DEMO_X, DEMO_Y = make_moons(DEMO_BATCH, noise=0.1)


@pytest.mark.parametrize("inputs", ["values", "floats"])
@pytest.mark.parametrize("reg", ["data+reg", "reg+data", None])
def test_the_demo_replays_like_eager(nn, engine, reg, inputs):
    model, twin = twin_mlps(nn, 1337, 2, [16, 16, 1])
    value_type = engine if inputs == "values" else None
    tape = check_training(value_type, model, twin, demo_loss(reg), DEMO_X, 3, sgd(0.5), random.Random(1))
    if tape.engine == "cython":
        groups, dots, _ = matrix(tape)
        # Layer 2 (16 neurons x the batch, 16 terms) is a grid whatever the inputs; so is layer 1
        # (2 terms) on Value inputs. Plain-float inputs become a fresh constant leaf per product,
        # so layer 1's input vectors are not shared between neurons. The L2 term adds one dot
        # product (p*p over every parameter) that no grid holds: it comes wholly before or after
        # the data loss's contributions, which a schedule can keep. At most: the three layers'
        # dot products, the hinge's one-term (-y*s) + 1 per sample, and the L2 sum.
        grid_dots = 16 * DEMO_BATCH * (2 if inputs == "values" else 1)
        assert groups >= grid_dots // (16 * DEMO_BATCH)
        assert grid_dots <= dots <= (16 + 16 + 1 + 1) * DEMO_BATCH + (reg is not None)
        # every hidden layer's relu runs inside its grid's step; the output layer has none
        assert tape._grid_activations().count("relu") == groups - 1
        assert tape._grid_activations().count(None) == 1


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("side", [None, "activation", "sum"])
def test_a_grid_runs_its_layers_activation_only_when_nothing_else_reads_the_sums(engine, act, side):
    """A layer's activation runs inside its grid's step when each sum is read by it alone
    (_absorb_activations). Reading a sum elsewhere, or an output on the sums, keeps the
    activations as steps of their own; reading the activations elsewhere changes nothing.
    Bits as eager's every time."""
    R, C, K = 5, 6, 4

    def build(leaves):
        W = [leaves[r * K:(r + 1) * K] for r in range(R)]
        X = [leaves[R * K + c * K:R * K + (c + 1) * K] for c in range(C)]
        sums = [sum((W[r][k] * X[c][k] for k in range(K)), leaves[-1]) for c in range(C) for r in range(R)]
        hidden = [getattr(s, act)() for s in sums]
        root = sum(h * h for h in hidden)
        if side == "activation":
            root = root + hidden[3] * 2.0
        elif side == "sum":
            root = root + sums[7] * 2.0
        return root, [hidden[0]]

    tape = check_replays(engine, build, R * K + C * K + 1, seed=11, rounds=3, special=0.1)
    if tape.engine == "cython":
        assert matrix(tape)[0] == 1
        assert tape._grid_activations() == [None if side == "sum" else act]


# ---------------------------------------------------------------------------------------------
# digits-like: MLP(64, [32, 10]), softmax cross-entropy over a batch of 32


def digits_batch(n):
    X, y = make_digits(n, seed=5)
    return [[v / 16.0 for v in row] for row in X], y


def digits_loss(targets, cross_entropy):
    def build(model, xs):
        logits = [model(x) for x in xs]
        if cross_entropy is not None:
            return cross_entropy(logits, targets), [z for row in logits for z in row]
        # log-sum-exp without the largest logit's value: that value would be a constant frozen
        # at capture (losses.cross_entropy's shift), and a new eager graph rounds differently
        terms = [logsumexp(row) - row[t] for row, t in zip(logits, targets)]
        return sum(terms) * (1.0 / len(terms)), [z for row in logits for z in row]
    return build


def test_digits_replay_like_eager(nn, engine):
    X, y = digits_batch(32)
    model, twin = twin_mlps(nn, 7, 64, [32, 10], init="he")
    tape = check_training(engine, model, twin, digits_loss(y, None), X, 2, sgd(0.1), random.Random(2))
    if tape.engine == "cython":
        groups, dots, terms = matrix(tape)
        # every dot product of the layers is in a grid: layer 1 (32 x 32, 64 terms) and layer 2
        # (10 x 32, 32 terms). The loss's only ones are each sample's lse - z[t], a one-term
        # lse + z[t]*-1 whose -1 is a constant leaf of its own: no grid.
        assert groups >= 2
        assert dots == 32 * 32 + 10 * 32
        assert terms == 32 * 32 * 64 + 10 * 32 * 32


def test_digits_with_losses_cross_entropy_replay_like_eager_on_the_captured_batch(nn, engine):
    # losses.cross_entropy shifts by the largest logit's value, a constant at capture: the
    # replay is eager's only on the captured values (step 0), which is what this checks
    X, y = digits_batch(8)
    model, twin = twin_mlps(nn, 8, 64, [32, 10], init="he")
    check_training(engine, model, twin, digits_loss(y, losses.cross_entropy), X, 1, sgd(0.1), random.Random(3))


# ---------------------------------------------------------------------------------------------
# Shapes: widths, terms and batches that are no multiple of any tile


@pytest.mark.parametrize("batch", [1, 2, 7])
@pytest.mark.parametrize("K", [1, 2, 3, 13])
@pytest.mark.parametrize("R", [1, 3, 5, 17])
def test_a_layer_of_any_shape_replays_like_eager(engine, R, K, batch):
    recipe = batched_mlp(random.Random(R * K * batch), batch, K, [R], acts=("tanh",), loss="sum")
    recipe["outputs"] = [("dot", 0, 0, 0), ("dot", 0, R - 1, batch - 1)]
    tape = check_recipe(engine, recipe, seed=R + K + batch)
    if tape.engine == "cython":
        groups, dots, terms = matrix(tape)
        assert groups <= dots <= R * batch and terms == K * dots  # only this layer's dots exist
        if R >= 2 and batch >= 2 and K >= 2:
            assert groups >= 1 and dots == R * batch  # the whole layer is one grid


@pytest.mark.parametrize("nin, widths, batch", [(13, [17, 5, 3], 7), (3, [1, 5, 1], 2), (2, [3, 17], 1)])
def test_stacked_layers_of_odd_shapes_replay_like_eager(engine, nin, widths, batch):
    recipe = batched_mlp(random.Random(nin), batch, nin, widths, loss="sum")
    recipe["outputs"] = [("dot", len(widths) - 1, 0, batch - 1), ("dot", 0, 0, 0)]
    check_recipe(engine, recipe, seed=nin, special=0.02)


# ---------------------------------------------------------------------------------------------
# Hazards: operands shared where a kernel would reorder grads, holes, odd starts, special floats


@pytest.mark.parametrize("hazard", sorted(HAZARDS))
def test_a_hazard_replays_like_eager(engine, hazard):
    for seed in range(3):  # three placements of the hazard
        recipe = batched_mlp(random.Random(seed), 5, 4, [4, 3], hazards=[hazard])
        check_recipe(engine, recipe, seed, rounds=3, special=0.03)


@pytest.mark.parametrize("hazards", [
    ["reused_weight", "weight_as_input"],
    ["square", "duplicate_column", "shared_bias"],
    ["computed_start", "side_reader", "missing", "scramble"],
    ["flip", "reg", "output_dot", "output_partial", "square"],
    sorted(HAZARDS),
])
def test_hazards_together_replay_like_eager(engine, hazards):
    for seed in range(2):
        recipe = batched_mlp(random.Random(10 + seed), 4, 3, [5, 4, 2], hazards=hazards)
        check_recipe(engine, recipe, seed, rounds=3, special=0.03)


def test_a_weight_reused_in_the_next_layer_over_a_batch(engine):
    # W1[0][0] is also W2[1][2]: eager's backward gives it sample by sample a contribution from
    # layer 2, then from layer 1 (interleaved); a kernel per layer would add all of layer 2's first
    recipe = batched_mlp(random.Random(0), 6, 3, [4, 4], acts=("tanh",))
    recipe["layers"][1]["W"][1][2] = recipe["layers"][0]["W"][0][0]
    check_recipe(engine, recipe, seed=1, rounds=4)


@pytest.mark.parametrize("square, as_input", [(True, False), (False, True), (True, True)])
def test_x_times_x_and_a_weight_as_input(engine, square, as_input):
    # square: one term of every sample is x*x (x's grad gets both operands' contributions,
    # between other neurons' ones); as_input: input 1 of every sample is the weight W[2][0]
    recipe = batched_mlp(random.Random(1), 5, 3, [4], acts=("tanh",))
    if as_input:
        for row in recipe["inputs"]:
            row[1] = recipe["layers"][0]["W"][2][0]
    if square:
        recipe["layers"][0]["square"].update((c % 3, c, c % 3) for c in range(5))
    check_recipe(engine, recipe, seed=2, rounds=5)


@pytest.mark.parametrize("start", ["x0", "tanh", "zero"])
def test_sums_that_start_from_a_computed_node_replay_like_eager(engine, start):
    # bias + x0, tanh(0.5 * bias), or Python's sum from 0 (the add's second operand is the 0)
    recipe = batched_mlp(random.Random(3), 4, 3, [5, 3], acts=("relu", "tanh"))
    for layer in recipe["layers"]:
        layer["start"] = start
    check_recipe(engine, recipe, seed=4, rounds=4, special=0.03)


def test_a_weight_of_one_neuron_that_is_the_next_layers_first_weight(engine):
    """One sample, four neurons h0..h3 over (x0, x1), then b + u0*h0 + u1*h1 + u2*h2 + u3*h3
    with u0 the very weight W[2][0]. Capture records h1, h2, h3 between the sum's products;
    eager backward gives W[2][0] h2's term's contribution first, then u0*h0's. A replay that
    moves h2's backward past u0*h0's swaps them. (Found by the hypothesis test below: the
    fused replay of the tape before the matrix stage gets it wrong, a neuron group and a
    continued sum each moving runs across the other's.)"""
    def build(leaves):
        x0, x1 = leaves[:2]
        W = [leaves[2 + 2 * r: 4 + 2 * r] for r in range(4)]
        B, U, b = leaves[10:14], leaves[14:18], leaves[18]
        U[0] = W[2][0]
        h = [B[r] + W[r][0] * x0 + W[r][1] * x1 for r in range(4)]
        return b + U[0] * h[0] + U[1] * h[1] + U[2] * h[2] + U[3] * h[3], []

    for seed in range(8):
        check_replays(engine, build, 19, seed, rounds=3)


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_a_start_that_reads_the_input_keeps_every_grid_apart(engine, batch):
    """Each neuron's sum starts at bias + x0 of its sample: x0's grad gets, neuron after
    neuron, a term's contribution then the start's. Any group of two or more of these dot
    products would add two terms' contributions in a row: no schedule keeps eager's order
    (over one sample the two-column minimum refuses a grid anyway; over 2 and 4, this)."""
    recipe = batched_mlp(random.Random(2), batch, 3, [6], acts=("tanh",), loss="sum")
    recipe["layers"][0]["start"] = "x0"
    tape = check_recipe(engine, recipe, seed=3, rounds=4, special=0.05)
    if tape.engine == "cython":
        assert matrix(tape)[0] == 0


@pytest.mark.parametrize("bad", ["log", "pow"])
def test_a_failing_forward_raises_what_eager_raises_first(engine, bad):
    """A planned forward runs the nodes by height, not in eager's order. Here two nodes fail:
    one that eager mode (and the tape's order) meets first, above a grid, and a lower one that
    the plan would run first. The tape must raise the first one's error, as eager mode does,
    and then refuse a backward."""

    def fails(v, k):
        return v.log() if bad == "log" else v ** k

    def build(leaves):
        W = [leaves[2 * r:2 * r + 2] for r in range(6)]
        xs = [leaves[12 + 2 * c:14 + 2 * c] for c in range(8)]
        sums = [sum((w[k] * x[k] for k in range(2)), leaves[-1]) for x in xs for w in W]
        high = fails(sum(s.tanh() for s in sums) * leaves[-2], -2.0)  # built (and met) first
        low = fails(leaves[-2] + 0.0, -1.0)
        return high + low

    rng = random.Random(7)
    leaves = [engine(rng.uniform(0.5, 1.0)) for _ in range(12 + 16 + 2)]
    tape = Tape(build(leaves))
    if tape.engine == "cython":
        assert matrix(tape)[0] == 1
    leaves[-2].data = -1.0 if bad == "log" else 0.0
    with pytest.raises(Exception) as replayed:
        tape.forward()
    with pytest.raises(Exception) as eager:
        build([engine(v.data) for v in leaves])
    assert type(replayed.value) is type(eager.value) and str(replayed.value) == str(eager.value)
    assert "-1.0" not in str(eager.value)  # the high one's
    with pytest.raises(RuntimeError):
        tape.backward()


@pytest.mark.parametrize("grads", [0.0, -0.0, 0.75, -1e-310])
def test_grads_accumulate_onto_preset_leaf_grads(engine, grads):
    recipe = batched_mlp(random.Random(4), 4, 3, [5, 2])

    def build(leaves):
        return graph(recipe, leaves)

    leaves = [engine(v) for v in draw_values(random.Random(5), recipe["n_leaves"])]
    fresh = [engine(v.data) for v in leaves]
    for v in leaves + fresh:
        v.grad = grads
    tape = Tape(build(leaves)[0])
    for _ in range(2):  # twice: the second backward adds onto the first's grads
        tape.forward()
        tape.backward()
        build(fresh)[0].backward()
        assert [bits(v.grad) for v in leaves] == [bits(v.grad) for v in fresh]


@pytest.mark.parametrize("seed", range(4))
def test_special_floats_in_a_batch_replay_like_eager(engine, seed):
    recipe = batched_mlp(random.Random(seed), 4, 5, [6, 3], hazards=["reg", "output_dot"])
    check_recipe(engine, recipe, seed, rounds=6, special=(0.02, 0.1, 0.3, 0.6)[seed])


# ---------------------------------------------------------------------------------------------
# Training: two tapes of one model, and an optimizer changing the weights between replays


def test_two_tapes_of_one_model_train_like_eager(nn, engine):
    model, twin = twin_mlps(nn, 11, 2, [16, 16, 1])
    opt, twin_opt = optim.Adam(model.parameters(), lr=0.05), optim.Adam(twin.parameters(), lr=0.05)
    X, y = make_moons(14, noise=0.2, seed=3)
    halves = [(X[:8], y[:8]), (X[8:], y[8:])]

    def build(m, rows, labels):
        scores = [m(row) for row in rows]
        return losses.hinge(scores, labels) + losses.l2(m.parameters(), 1e-4), scores

    inputs = [[[engine(v) for v in row] for row in rows] for rows, _ in halves]
    tapes = [Tape(build(model, xs, labels)[0]) for xs, (_, labels) in zip(inputs, halves)]
    rng = random.Random(4)
    for step in range(5):
        values = [[[v + rng.uniform(-0.2, 0.2) for v in row] for row in rows] for rows, _ in halves]
        for xs, rows in zip(inputs, values):
            for x_row, row in zip(xs, rows):
                for x, v in zip(x_row, row):
                    x.data = v
        opt.zero_grad()
        twin_opt.zero_grad()
        replayed = []
        for tape in tapes:  # the second tape adds its grads onto the first's
            replayed.append(tape.forward())
            tape.backward()
        eager = []
        for rows, (_, labels) in zip(values, halves):
            e_loss = build(twin, [[engine(v) for v in row] for row in rows], labels)[0]
            e_loss.backward()
            eager.append(e_loss.data)
        assert [bits(v) for v in replayed] == [bits(v) for v in eager], f"step {step}: losses"
        assert [bits(p.grad) for p in model.parameters()] == [bits(p.grad) for p in twin.parameters()], f"step {step}"
        opt.step()
        twin_opt.step()
        assert [bits(p.data) for p in model.parameters()] == [bits(p.data) for p in twin.parameters()], f"step {step}"
    if tapes[0].engine == "cython":
        assert all(matrix(tape)[0] >= 2 for tape in tapes)  # layers 1 and 2 over each batch


# ---------------------------------------------------------------------------------------------
# Random batched layers with random hazards (hypothesis)

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # optional: the test below says so when it is skipped
    given = None

# A third of test_fuzz's examples (each here is a whole batched graph replayed three times):
# MICROGRAD_FUZZ_EXAMPLES=100000 runs 33333.
MATRIX_EXAMPLES = max(1, int(os.environ.get("MICROGRAD_FUZZ_EXAMPLES", "300")) // 3)

if given is not None:
    recipes = st.builds(
        lambda seed, batch, nin, widths, hazards: batched_mlp(random.Random(seed), batch, nin, widths, sorted(hazards)),
        st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(1, 5),
        st.lists(st.integers(1, 5), min_size=1, max_size=3), st.sets(st.sampled_from(sorted(HAZARDS))),
    )

    @settings(max_examples=MATRIX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(recipe=recipes, seed=st.integers(0, 2**32 - 1), special=st.sampled_from([0.0, 0.0, 0.03, 0.2]))
    def test_random_batched_layers_replay_like_eager(engine, recipe, seed, special):
        check_recipe(engine, recipe, seed, rounds=3, special=special)

    @settings(max_examples=MATRIX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(recipe=recipes, seed=st.integers(0, 2**32 - 1), scheme=st.sampled_from(sorted(ROLE_SCHEMES)))
    def test_random_batched_layers_with_params_and_constants_replay_like_eager(engine, recipe, seed, scheme):
        roles = ROLE_SCHEMES[scheme](recipe, random.Random(seed))
        check_recipe(engine, recipe, seed, rounds=3, roles=roles)
else:
    def test_random_batched_layers_replay_like_eager():
        pytest.skip("hypothesis is not installed (pip install -e .[test])")

    def test_random_batched_layers_with_params_and_constants_replay_like_eager():
        pytest.skip("hypothesis is not installed (pip install -e .[test])")


def test_random_batched_layers_are_grouped_and_counted_consistently(both_engines):
    compiled = both_engines[1]
    for seed in range(20):
        rng = random.Random(seed)
        widths = [rng.randint(1, 6) for _ in range(rng.randint(1, 3))]
        hazards = rng.sample(sorted(HAZARDS), rng.randint(0, 3)) if seed % 2 else []
        recipe = batched_mlp(rng, rng.randint(1, 5), rng.randint(1, 5), widths, hazards)
        root = graph(recipe, [compiled(v) for v in draw_values(rng, recipe["n_leaves"])])[0]
        groups, dots, terms = matrix(Tape(root))
        products = sum(1 for v in topological_order(root) if v._op == "*")
        assert groups <= dots <= terms <= products and (groups == 0) == (dots == 0)
        if not hazards:  # every layer of two or more neurons, samples and terms is a grid
            fan_in = [len(recipe["inputs"][0])] + widths[:-1]
            batch = len(recipe["inputs"])
            grids = [R * batch for R, K in zip(widths, fan_in) if R >= 2 and K >= 2 and batch >= 2]
            assert dots >= sum(grids) and groups >= len(grids)


# ---------------------------------------------------------------------------------------------
# Adversarial captures: plans the planner must refuse, its smallest inputs, memory running out,
# and two planned tapes replayed at once. A refused plan leaves the tape's plain replay (groups
# 0), which must still give eager's bits.


def one_layer(Value, R, C, K, seed, interleave=None, bias="own", order="samples"):
    """(leaves, build): R neurons (tanh) over C samples of K inputs, the outputs summed.
    ``interleave``: a node built after each sample's dot products, reading one of their
    weights (its grad then gets that node's contribution between two columns' ones).
    ``bias`` 'shared': every neuron starts from one bias Value. ``order`` 'neurons': built
    neuron by neuron (each over every sample) instead of sample by sample."""
    rng = random.Random(seed)
    n = R * K + R + C * K
    values = draw_values(rng, n)

    def build(leaves):
        W = [leaves[r * K:(r + 1) * K] for r in range(R)]
        B = leaves[R * K:R * K + R]
        X = [leaves[R * K + R + c * K:R * K + R + (c + 1) * K] for c in range(C)]
        terms = []
        pairs = [(c, r) for c in range(C) for r in range(R)]
        if order == "neurons":
            pairs.sort(key=lambda p: p[1])
        for c, r in pairs:
            acc = B[0] if bias == "shared" else B[r]
            for k in range(K):
                acc = acc + W[r][k] * X[c][k]
            terms.append(acc.tanh())
            if interleave is not None and r == R - 1:  # after each sample (order 'samples')
                terms.append(interleave(W, X[c]))
        return sum(terms), []

    return n, values, build


def replay_one_layer(engine, n, build, seed):
    return check_replays(engine, build, n, seed, rounds=3, special=0.05)


def test_a_grid_whose_backward_would_need_a_cycle_is_refused(engine):
    """After each sample's dot products, tanh(W[0][0]): eager backward gives W[0][0]'s grad
    that node's contribution, then the grid's for that sample, then the next node's... The
    grid would have to run both before and after each of those nodes: the backward order has
    a cycle, so the plan is dropped. Without the interleaved node, the same layer is a grid."""
    n, _, build = one_layer(engine, 3, 4, 3, seed=1, interleave=lambda W, x: W[0][0].tanh())
    tape = replay_one_layer(engine, n, build, seed=2)
    n, _, plain = one_layer(engine, 3, 4, 3, seed=1)
    reference = replay_one_layer(engine, n, plain, seed=2)
    if tape.engine == "cython":
        assert matrix(tape)[0] == 0
        assert matrix(reference) == (1, 12, 36)


@pytest.mark.parametrize("interleave", [
    lambda W, x: W[1][2] * 0.5,             # a weight's grad between two columns' contributions
    lambda W, x: x[0] * x[1],               # an input's: only its own column's, no hazard
    lambda W, x: (W[2][0] + x[2]).relu(),   # both
])
def test_a_node_read_between_a_grids_columns_replays_like_eager(engine, interleave):
    n, _, build = one_layer(engine, 3, 4, 3, seed=3, interleave=interleave)
    replay_one_layer(engine, n, build, seed=4)


def test_a_layer_built_sample_by_sample_may_share_one_start(engine):
    """Every neuron starts from one bias, the layer built sample by sample: eager adds that
    bias's grad sample by sample, neuron by neuron within one, as the kernels add a grid's
    starts (column by column): the grid stands."""
    n, _, build = one_layer(engine, 3, 4, 3, seed=5, bias="shared")
    tape = replay_one_layer(engine, n, build, seed=6)
    if tape.engine == "cython":
        assert matrix(tape) == (1, 12, 36)


def test_a_shared_start_in_another_order_is_refused_by_the_check(engine):
    """The same layer built neuron by neuron: eager now adds the shared bias's grad neuron by
    neuron, which no order of the grid's columns and rows gives the column-by-column loop.
    The edges between steps cannot see an order inside one step; the check on paper
    (_verify) does, and drops the plan (with a bias per neuron the grid stands)."""
    n, _, build = one_layer(engine, 3, 4, 3, seed=5, bias="shared", order="neurons")
    tape = replay_one_layer(engine, n, build, seed=6)
    n2, _, build2 = one_layer(engine, 3, 4, 3, seed=5, bias="own", order="neurons")
    own = replay_one_layer(engine, n2, build2, seed=6)
    if tape.engine == "cython":
        assert matrix(tape)[0] == 0
        assert matrix(own) == (1, 12, 36)


def test_one_neuron_sharing_its_bias_is_still_a_grid(engine):
    # one row: the row's start order is the columns' order, as eager's
    n, _, build = one_layer(engine, 1, 4, 3, seed=7, bias="shared")
    tape = replay_one_layer(engine, n, build, seed=8)
    if tape.engine == "cython":
        assert matrix(tape) == (1, 4, 12)


@pytest.mark.parametrize("make", [
    lambda v: (v[0], 1),                                       # a leaf alone
    lambda v: (v[0] * v[1], 2),                                # one product, no sum
    lambda v: (v[0] * v[1] + v[2], 3),                         # one dot product of one term
    lambda v: ((v[0] * v[2] + v[4]) + (v[1] * v[2] + v[4]), 5),  # two columns of one term, one bias
    lambda v: ((v[0] * v[1] + v[2]) * (v[0] * v[3] + v[2]), 4),  # the grid's sums read by one node
    lambda v: (v[0] * v[0] + v[0], 1),                         # x*x + x: one slot everywhere
])
def test_the_smallest_graphs_at_the_lowest_thresholds(engine, make):
    """The thresholds are at their lowest (the module's fixture): every graph is planned."""
    _, n = make([engine(1.0)] * 5)
    check_replays(engine, lambda leaves: (make(leaves)[0], []), n, seed=n, rounds=3, special=0.1)


@pytest.mark.parametrize("thresholds", [
    {"nodes": 0, "group_terms": 0, "share": 1},        # the grids hold every node: never true
    {"nodes": 10**9, "group_terms": 0, "share": 10**9},  # too small a tape
    {"nodes": 0, "group_terms": 10**9, "share": 10**9},  # too small grids
])
def test_thresholds_that_refuse_every_plan_keep_the_plain_replay(engine, monkeypatch, thresholds):
    if "cython" in engine_module.ENGINES:
        import micrograd._schedule

        monkeypatch.setattr(micrograd._schedule, "THRESHOLDS", thresholds)
    n, _, build = one_layer(engine, 3, 4, 3, seed=9)
    tape = replay_one_layer(engine, n, build, seed=10)
    if tape.engine == "cython":
        assert matrix(tape)[0] == 0


OUT_OF_MEMORY = r"""
import random, resource, sys
import micrograd._schedule
micrograd._schedule.THRESHOLDS = {"nodes": 0, "group_terms": 0, "share": 10**9}
from micrograd import losses, nn
from micrograd.datasets import make_moons
from micrograd.engine import ENGINES
from micrograd.tape import Tape

Value = ENGINES["cython"]
random.seed(0)
model = nn.MLP(2, [16, 16, 1], engine=Value)
X, y = make_moons(40, noise=0.1)
root = losses.hinge([model([Value(a) for a in row]) for row in X], y)
Tape(root).forward()  # load everything a capture needs while memory is plentiful

def address_space():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))

base, (soft, hard) = address_space(), resource.getrlimit(resource.RLIMIT_AS)
seen = set()
for extra in range(0, 3 << 20, 16 << 10):
    resource.setrlimit(resource.RLIMIT_AS, (base + extra, hard))
    try:
        tape = Tape(root)
        tape.forward()
        tape.backward()
        seen.add("planned" if tape._matrix_groups()[0] else "plain")
    except MemoryError:
        seen.add("MemoryError")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    tape = None
print(" ".join(sorted(seen)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (/proc, RLIMIT_AS)")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer reserves terabytes of address space: RLIMIT_AS cannot apply")
def test_running_out_of_memory_while_planning_raises_memory_error(both_engines, run_python):
    """Capture with the address space capped a little higher each time, from nothing left to
    plenty: each attempt raises MemoryError or replays by its plan; none may crash (a child
    process runs them, importing the micrograd under test)."""
    result = run_python(OUT_OF_MEMORY, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MemoryError", "planned"], result.stdout + result.stderr


def test_two_planned_tapes_replay_at_once_in_threads(engine):
    """Replay releases the GIL: two tapes of two models, each with its grids, replayed by two
    threads at the same time, round after round, give what each gives alone."""
    tapes, leaves, expected = [], [], []
    for seed in (11, 12):
        recipe = batched_mlp(random.Random(seed), 6, 5, [8, 4])
        values = draw_values(random.Random(seed), recipe["n_leaves"])
        xs = [engine(v) for v in values]
        tape = Tape(graph(recipe, xs)[0])
        tape.forward()
        tape.backward()
        tapes.append(tape)
        leaves.append(xs)
        expected.append([bits(x.grad) for x in xs])
    failures = []

    def replay(i):
        try:
            for _ in range(60):
                for x in leaves[i]:
                    x.grad = 0.0
                tapes[i].forward()
                tapes[i].backward()
                if [bits(x.grad) for x in leaves[i]] != expected[i]:
                    failures.append(i)
                    return
        except Exception as exc:  # reported below: a thread's exception would be lost
            failures.append(repr(exc))

    threads = [threading.Thread(target=replay, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    if tapes[0].engine == "cython":
        assert all(matrix(tape)[0] >= 2 for tape in tapes)
