"""microgpt on micrograd: a GPT made of scalar Values, trained to make up first names.

After Andrej Karpathy's microgpt (February 2026: the gist karpathy/8627fe009c40f57531cb18360106ce95,
and the post https://karpathy.github.io/2026/02/12/microgpt/), which trains and samples a GPT in
one dependency-free Python file with its own tiny autograd. The model and the training here
follow his: a character-level GPT (token and position embeddings, RMSNorm, causal multi-head
attention, a ReLU MLP, residual connections, no biases), one name per step, Adam with a linearly
decaying learning rate, then sampling with a temperature. The code is written for this package:
its ``Value`` ops, ``Module``s with ``parameters()``, ``micrograd.optim.Adam`` and ``micrograd.Tape``.
The model, its losses and the tape's window are in the package (``micrograd/gpt.py``), so that
``micrograd bench`` times this very model; this file holds the data, the training loops, sampling
and the command.

    python examples/microgpt.py                 # 1000 steps: about 15 s on the compiled engine
    python examples/microgpt.py --steps 200 --samples 5 --quiet

It shows three ways to train the same model:
1. eagerly on the compiled engine: each step builds the graph of one name and back-propagates;
2. eagerly on the pure-Python engine, a few steps, to show that both engines compute the same
   losses bit for bit, and how much faster the compiled one is;
3. from a tape: the graph is captured once and replayed every step. The tokens are leaf Values
   holding one-hot vectors, and each window position has a mask leaf, so a single tape serves
   every name however long (short names are padded, and the padding is masked out of the loss).

The data (examples/data/names.txt) are the first names of the 1990 US Census, public domain;
examples/data/make_names.py says how the file was made.

Where this differs from Karpathy's code: softmax does not subtract the largest logit, because
that maximum is a number read from the data, which a tape would freeze at capture, so eager and
replayed steps would round differently (the logits of this small model stay far below exp's
overflow at 709); the loss of a position is ``logsumexp(z) - z[t]`` rather than
``-log(softmax(z)[t])``, the same value with fewer nodes; and Adam is ``micrograd.optim.Adam``,
PyTorch's arrangement of his update.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any, Callable, List, Optional, Sequence

try:
    import micrograd
except ImportError:  # run from a source checkout: use the package beside this folder
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import micrograd

from micrograd.engine import ENGINES
# The model lives in the package, so that `micrograd bench` times this very code.
from micrograd.gpt import GPT, Config, Window, adam, capture, name_loss, softmax, window_size
from micrograd.progress import Progress

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "names.txt")


# -- data and tokens (the model, its losses and the tape's window: micrograd/gpt.py) --------------------------------------------------------------------------
def load_names(path: str = DATA, seed: int = 42) -> List[str]:
    """One name per line, shuffled with ``seed`` (the file itself is sorted)."""
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    random.Random(seed).shuffle(names)
    return names


class Tokenizer:
    """One token per character of the data, plus BOS, which starts and ends every name."""

    def __init__(self, docs: Sequence[str]) -> None:
        self.chars = sorted(set("".join(docs)))
        self.bos = len(self.chars)
        self.vocab_size = len(self.chars) + 1
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, doc: str) -> List[int]:
        return [self.bos] + [self.index[c] for c in doc] + [self.bos]

    def decode(self, tokens: Sequence[int]) -> str:
        return "".join(self.chars[t] for t in tokens)


# -- training -------------------------------------------------------------------------------------
StepCallback = Callable[[int, float], None]


def train_eager(model: GPT, docs: Sequence[List[int]], steps: int, lr: float = 0.01,
                on_step: Optional[StepCallback] = None) -> List[float]:
    """One name per step, the graph built anew each step; returns the losses."""
    opt, losses = adam(model, lr), []
    for step in range(steps):
        loss = name_loss(model, docs[step % len(docs)])
        opt.zero_grad()
        loss.backward()
        opt.lr = lr * (1 - step / steps)
        opt.step()
        losses.append(loss.data)
        if on_step:
            on_step(step, loss.data)
    return losses


def train_tape(model: GPT, docs: Sequence[List[int]], steps: int, lr: float = 0.01,
               on_step: Optional[StepCallback] = None, tape: Any = None, window: Optional[Window] = None) -> List[float]:
    """``train_eager`` on a tape: per step, write the name into the window's leaves and replay."""
    if tape is None:
        tape, window = capture(model, window_size(docs, model.cfg))
    opt, losses = adam(model, lr), []
    for step in range(steps):
        window.load(docs[step % len(docs)])
        loss = tape.forward()
        opt.zero_grad()
        tape.backward()
        opt.lr = lr * (1 - step / steps)
        opt.step()
        losses.append(loss)
        if on_step:
            on_step(step, loss)
    return losses


# -- sampling ---------------------------------------------------------------------------------------
def sample(model: GPT, tok: Tokenizer, rng: random.Random, temperature: float = 0.5) -> str:
    """A new name, one token at a time from the model's distribution (sharpened by the
    temperature), until BOS or the end of the block."""
    cache, token, out = model.new_cache(), tok.bos, []
    for pos in range(model.cfg.block_size):
        logits = model(model.wte.row(token), pos, cache)
        probs = softmax([z / temperature for z in logits])
        token = rng.choices(range(tok.vocab_size), weights=[p.data for p in probs])[0]
        if token == tok.bos:
            break
        out.append(token)
    return tok.decode(out)


# -- the command --------------------------------------------------------------------------------------
def at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        n = int(text)
        if n < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {n}")
        return n

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a tiny GPT on first names with micrograd, then sample new ones.")
    p.add_argument("--steps", type=at_least(1), default=1000, help="training steps, one name each (default: 1000)")
    p.add_argument("--pure-steps", type=at_least(0), default=5, help="steps on the pure engine, for the comparison (default: 5; 0 skips)")
    p.add_argument("--no-tape", action="store_true", help="skip training from a tape")
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate, decayed linearly to 0 (default: 0.01)")
    p.add_argument("--n-embd", type=at_least(1), default=16)
    p.add_argument("--n-head", type=at_least(1), default=4)
    p.add_argument("--n-layer", type=at_least(1), default=1)
    p.add_argument("--block-size", type=at_least(1), default=16)
    p.add_argument("--samples", type=at_least(0), default=20, help="names to sample after training (default: 20)")
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=42, help="seed of the shuffle, the weights and the sampling")
    p.add_argument("--data", default=DATA, help="a file of names, one per line (default: the Census names)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(list(argv))
    if args.n_embd % args.n_head:
        p.error(f"--n-embd {args.n_embd} must be a multiple of --n-head {args.n_head}")
    return args


def timed_training(label: str, train: Callable[..., List[float]], model: GPT, docs: Sequence[List[int]],
                   steps: int, lr: float, quiet: bool, **kwargs: Any) -> tuple:
    """(losses, seconds) of one training run, with a progress bar."""
    progress = Progress(steps, enabled=not quiet)
    start = time.perf_counter()
    losses = train(model, docs, steps, lr, on_step=lambda k, loss: progress.update(
        f"{label}: loss {loss:.4f}, {progress.rate(k + 1):.1f} steps/s", done=k + 1), **kwargs)
    return losses, time.perf_counter() - start


def mean_loss(losses: Sequence[float]) -> str:
    """Mean of the first and last tenth of the losses: one name's loss is noisy."""
    k = max(1, len(losses) // 10)
    return f"{sum(losses[:k]) / k:.3f} -> {sum(losses[-k:]) / k:.3f}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cfg = Config(args.n_embd, args.n_head, args.n_layer, args.block_size)
    names = load_names(args.data, args.seed)
    tok = Tokenizer(names)
    docs = [tok.encode(name) for name in names]
    fast = "cython" if "cython" in ENGINES else "python"
    model = GPT(tok.vocab_size, cfg, args.seed, fast)
    print(f"microgpt on micrograd: {len(names)} names, {tok.vocab_size} tokens, GPT(n_embd {cfg.n_embd}, "
          f"{cfg.n_head} heads, {cfg.n_layer} {'layer' if cfg.n_layer == 1 else 'layers'}, block {cfg.block_size}) with {len(model.parameters()):,} parameters")
    if fast == "python":
        print(f"the compiled engine is not built here ({micrograd.engine.EXTENSION_ERROR}): all on the pure engine")

    losses, seconds = timed_training(f"eager, {fast}", train_eager, model, docs, args.steps, args.lr, args.quiet)
    per_step = seconds / args.steps
    print(f"eager, {fast} engine: {args.steps} steps in {seconds:.1f} s ({per_step * 1e3:.1f} ms/step), "
          f"loss {mean_loss(losses)}")

    if fast == "cython" and args.pure_steps > 0:
        # The same first names on both engines, from the same initial weights, with the same
        # (shorter) learning-rate schedule: the losses must agree to the last bit.
        n = min(args.pure_steps, args.steps)
        (pure_losses, pure_s), (compiled_losses, compiled_s) = (
            timed_training(f"eager, {e}", train_eager, GPT(tok.vocab_size, cfg, args.seed, e), docs, n, args.lr, args.quiet)
            for e in ("python", "cython")
        )
        same = "the same" if pure_losses == compiled_losses else "DIFFERENT"
        print(f"eager, python engine: {n} steps in {pure_s:.1f} s ({pure_s / n * 1e3:.0f} ms/step), {same} losses "
              f"as the compiled engine's on those steps, bit for bit; the compiled engine is "
              f"{pure_s / compiled_s:.1f}x faster")

    if not args.no_tape:
        taped = GPT(tok.vocab_size, cfg, args.seed, fast)
        start = time.perf_counter()
        tape, window = capture(taped, window_size(docs, cfg))
        captured = time.perf_counter() - start
        tape_losses, tape_s = timed_training(f"tape, {fast}", train_tape, taped, docs, args.steps, args.lr,
                                             args.quiet, tape=tape, window=window)
        same = "the same losses as eager, bit for bit" if tape_losses == losses else "losses differ from eager's"
        print(f"tape, {fast} engine: {len(tape):,} nodes captured in {captured:.2f} s (a window of {window.size} "
              f"positions); {args.steps} steps in {tape_s:.1f} s ({tape_s / args.steps * 1e3:.1f} ms/step), "
              f"{per_step * args.steps / tape_s:.1f}x eager's speed; {same}")

    if args.samples:
        rng = random.Random(args.seed)
        print(f"{args.samples} new {'name' if args.samples == 1 else 'names'} (temperature {args.temperature}):")
        print(", ".join(sample(model, tok, rng, args.temperature) for _ in range(args.samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
