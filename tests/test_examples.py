"""examples/microgpt.py on both engines (small sizes, a few steps), its data file, and a
microgpt-style program written the way Karpathy's is, run on his kind of Value and on ours."""
from __future__ import annotations

import importlib.util
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def microgpt():
    return load_example("microgpt")


@pytest.fixture(scope="module")
def small(microgpt):
    """A small GPT and 30 names: a few steps take well under a second on either engine."""
    names = microgpt.load_names(seed=7)[:30]
    tok = microgpt.Tokenizer(microgpt.load_names())
    cfg = microgpt.Config(n_embd=8, n_head=2, n_layer=1, block_size=8)
    return tok, cfg, [tok.encode(n) for n in names]


STEPS = 6


def test_losses_are_finite_and_decrease(microgpt, small, engine):
    tok, cfg, docs = small
    model = microgpt.GPT(tok.vocab_size, cfg, seed=1, engine=engine)
    losses = microgpt.train_eager(model, docs[:1], STEPS, lr=0.05)  # one name, learnt by heart
    assert all(math.isfinite(v) for v in losses)
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_pure_and_compiled_engines_give_the_same_losses_bit_for_bit(microgpt, small, both_engines):
    tok, cfg, docs = small
    pure, compiled = (microgpt.train_eager(microgpt.GPT(tok.vocab_size, cfg, 3, e), docs, STEPS) for e in both_engines)
    assert pure == compiled


def test_tape_replay_equals_eager_bit_for_bit(microgpt, small, engine):
    """One tape, captured once with one-hot tokens and a mask, trains on names of every length
    exactly as eager steps on each name's own graph: same losses, same parameters after."""
    tok, cfg, docs = small
    eager, taped = (microgpt.GPT(tok.vocab_size, cfg, 5, engine) for _ in range(2))
    tape, window = microgpt.capture(taped, microgpt.window_size(docs, cfg))
    assert len({len(t) for t in docs[:STEPS]}) > 1  # names of different lengths share the tape
    eager_losses = microgpt.train_eager(eager, docs, STEPS)
    tape_losses = microgpt.train_tape(taped, docs, STEPS, tape=tape, window=window)
    assert tape_losses == eager_losses
    assert [p.data for p in taped.parameters()] == [p.data for p in eager.parameters()]


def test_window_truncates_long_names_to_the_block(microgpt, small, engine):
    tok, cfg, docs = small
    long_name = tok.encode("abcdefghijklmnopqrstuvwxyz")  # longer than the block of 8
    eager, taped = (microgpt.GPT(tok.vocab_size, cfg, 2, engine) for _ in range(2))
    tape, window = microgpt.capture(taped, cfg.block_size)
    window.load(long_name)
    assert tape.forward() == microgpt.name_loss(eager, long_name).data


def test_sampling_gives_the_same_names_on_both_engines(microgpt, small, both_engines):
    tok, cfg, docs = small
    samples = []
    for engine in both_engines:
        model = microgpt.GPT(tok.vocab_size, cfg, 3, engine)
        microgpt.train_eager(model, docs, STEPS)
        rng = random.Random(0)
        samples.append([microgpt.sample(model, tok, rng) for _ in range(5)])
    assert samples[0] == samples[1]
    assert all(re.fullmatch(r"[a-z]*", s) and len(s) <= cfg.block_size for s in samples[0])


def test_the_command_trains_compares_replays_and_samples(microgpt, capsys):
    assert microgpt.main(["--steps", "3", "--pure-steps", "1", "--samples", "2", "--n-embd", "8",
                          "--n-head", "2", "--block-size", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "eager, " in out and "ms/step" in out
    from micrograd.engine import ENGINES

    if "cython" in ENGINES:
        assert "the same losses as the compiled engine's on those steps, bit for bit" in out
        assert "DIFFERENT" not in out
    assert "the same losses as eager, bit for bit" in out
    assert "2 new names (temperature 0.5):" in out


def test_the_script_runs_as_documented(tmp_path):
    """`python examples/microgpt.py` from anywhere: it finds the package (installed, or the
    source tree beside the examples folder)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "microgpt.py"), "--steps", "2", "--pure-steps", "1", "--samples", "1",
         "--n-embd", "4", "--n-head", "1", "--block-size", "4"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 new name (temperature 0.5):" in done.stdout
    assert "step 2/2: tape" in done.stderr  # not a terminal: plain progress lines


def test_the_command_rejects_heads_that_do_not_divide_the_embedding(microgpt):
    with pytest.raises(SystemExit):
        microgpt.main(["--n-embd", "10", "--n-head", "4"])


# -- the data -----------------------------------------------------------------------------------
def test_names_file_follows_its_recorded_rule():
    """examples/data/make_names.py's rule: lowercase a-z, each name once, sorted."""
    names = (EXAMPLES / "data" / "names.txt").read_text().splitlines()
    assert len(names) > 1000
    assert all(re.fullmatch(r"[a-z]+", n) for n in names)
    assert names == sorted(set(names))


def test_make_names_cleans_census_lines():
    make_names = load_example("data/make_names")
    lines = ["MARY           2.629  2.629      1", "", "JO-ANN  0.001 1.0 5", "JAMES 3.3 3.3 1", "MARY 1 1 1"]
    assert make_names.clean(make_names.first_names(lines)) == ["james", "mary"]


# -- a microgpt-style program written the way Karpathy's is ---------------------------------------
NEEDS_H1 = "needs Value(data, children, local_grads) from the op redesign"


class LocalGradValue:
    """microgpt's kind of autograd, written here as a reference: every node keeps its children
    and, computed when it is made, d(node)/d(child) for each; backward walks the graph in
    topological order doing ``child.grad += local_grad * node.grad``."""

    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0
        self._children, self._local_grads = children, local_grads

    def __add__(self, other):
        other = other if isinstance(other, LocalGradValue) else LocalGradValue(other)
        return LocalGradValue(self.data + other.data, (self, other), (1, 1))

    def __mul__(self, other):
        other = other if isinstance(other, LocalGradValue) else LocalGradValue(other)
        return LocalGradValue(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, k):
        return LocalGradValue(self.data**k, (self,), (k * self.data ** (k - 1),))

    def log(self):
        return LocalGradValue(math.log(self.data), (self,), (1 / self.data,))

    def exp(self):
        e = math.exp(self.data)
        return LocalGradValue(e, (self,), (e,))

    def relu(self):
        return LocalGradValue(max(0, self.data), (self,), (float(self.data > 0),))

    __radd__, __rmul__ = __add__, __mul__

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __truediv__(self, other):
        return self * other**-1

    def backward(self):
        order, seen, stack = [], {id(self)}, [(self, iter(self._children))]
        while stack:  # post-order depth-first search, children in order (no recursion limit)
            node, children = stack[-1]
            child = next((c for c in children if id(c) not in seen), None)
            if child is None:
                order.append(stack.pop()[0])
            else:
                seen.add(id(child))
                stack.append((child, iter(child._children)))
        self.grad = 1
        for v in reversed(order):
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad


def microgpt_program(Value, docs, steps=12, n_samples=5, n_embd=8, n_head=2, block_size=8, seed=3):
    """A scalar GPT trained on names and sampled, in microgpt's style: module-less lists of
    weights, its own Adam loop, a max-shifted softmax. Uses only Value's ops, so any Value
    class with them runs it. Returns (losses, sampled names)."""
    rng = random.Random(seed)
    chars = sorted(set("".join(docs)))
    bos, vocab_size, head_dim = len(chars), len(chars) + 1, n_embd // n_head

    def matrix(nout, nin):
        return [[Value(rng.gauss(0, 0.08)) for _ in range(nin)] for _ in range(nout)]

    sd = {"wte": matrix(vocab_size, n_embd), "wpe": matrix(block_size, n_embd), "lm_head": matrix(vocab_size, n_embd),
          "wq": matrix(n_embd, n_embd), "wk": matrix(n_embd, n_embd), "wv": matrix(n_embd, n_embd),
          "wo": matrix(n_embd, n_embd), "fc1": matrix(4 * n_embd, n_embd), "fc2": matrix(n_embd, 4 * n_embd)}
    params = [p for mat in sd.values() for row in mat for p in row]

    def linear(x, w):
        return [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]

    def softmax(logits):
        m = max(v.data for v in logits)
        exps = [(v - m).exp() for v in logits]
        total = sum(exps)
        return [e / total for e in exps]

    def rmsnorm(x):
        scale = (sum(xi * xi for xi in x) / len(x) + 1e-5) ** -0.5
        return [xi * scale for xi in x]

    def gpt(token_id, pos_id, keys, values):
        x = rmsnorm([t + p for t, p in zip(sd["wte"][token_id], sd["wpe"][pos_id])])
        x_residual, x = x, rmsnorm(x)
        q, k, v = linear(x, sd["wq"]), linear(x, sd["wk"]), linear(x, sd["wv"])
        keys.append(k)
        values.append(v)
        x_attn = []
        for h in range(n_head):
            hs = h * head_dim
            attn = softmax([sum(q[hs + j] * kt[hs + j] for j in range(head_dim)) / head_dim**0.5 for kt in keys])
            x_attn += [sum(attn[t] * values[t][hs + j] for t in range(len(values))) for j in range(head_dim)]
        x = [a + b for a, b in zip(linear(x_attn, sd["wo"]), x_residual)]
        x_residual = x
        x = linear([xi.relu() for xi in linear(rmsnorm(x), sd["fc1"])], sd["fc2"])
        return linear([a + b for a, b in zip(x, x_residual)], sd["lm_head"])

    lr, beta1, beta2, eps = 0.01, 0.85, 0.99, 1e-8
    m, v = [0.0] * len(params), [0.0] * len(params)
    losses = []
    for step in range(steps):
        tokens = [bos] + [chars.index(c) for c in docs[step % len(docs)]] + [bos]
        n = min(block_size, len(tokens) - 1)
        keys, values = [], []
        loss = (1 / n) * sum(-softmax(gpt(tokens[p], p, keys, values))[tokens[p + 1]].log() for p in range(n))
        loss.backward()
        lr_t = lr * (1 - step / steps)
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad**2
            m_hat, v_hat = m[i] / (1 - beta1 ** (step + 1)), v[i] / (1 - beta2 ** (step + 1))
            p.data -= lr_t * m_hat / (v_hat**0.5 + eps)
            p.grad = 0
        losses.append(loss.data)
    samples = []
    for _ in range(n_samples):
        keys, values, token_id, name = [], [], bos, ""
        for pos in range(block_size):
            probs = softmax([z / 0.5 for z in gpt(token_id, pos, keys, values)])
            token_id = rng.choices(range(vocab_size), weights=[p.data for p in probs])[0]
            if token_id == bos:
                break
            name += chars[token_id]
        samples.append(name)
    return losses, samples


def has_local_grads_dialect(Value):
    """Whether this Value takes microgpt's Value(data, children, local_grads) (the op redesign,
    which also gives log's backward microgpt's rounding, (1 / a) * g)."""
    a, b = Value(2.0), Value(3.0)
    try:
        Value(6.0, (a, b), (3.0, 2.0))
    except TypeError:
        return False
    return True


@pytest.fixture(scope="module")
def reference_run(microgpt):
    docs = microgpt.load_names(seed=11)[:20]
    return docs, microgpt_program(LocalGradValue, docs)


def test_reference_program_learns(reference_run):
    _, (losses, samples) = reference_run
    assert all(math.isfinite(v) for v in losses) and len(samples) == 5
    assert all(re.fullmatch(r"[a-z]*", s) for s in samples)


def test_microgpt_with_its_value_class_replaced_by_ours_is_bit_identical(reference_run, engine):
    """Delete the program's own Value class, use ours: the same losses and the same sampled
    names, bit for bit, on either engine."""
    if not has_local_grads_dialect(engine):
        pytest.skip(NEEDS_H1)
    docs, (losses, samples) = reference_run
    assert microgpt_program(engine, docs) == (losses, samples)
