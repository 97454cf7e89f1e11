"""Toy data sets generated in code (no download, no NumPy), reproducible from a seed.

Each function returns ``(X, y)``: ``X`` a list of ``[x0, x1]`` float pairs, ``y`` a list of
labels -1/+1, as Karpathy's demo has them after ``y = y*2 - 1``. Each draws from its own
``random.Random(seed)``, so making data never disturbs the global ``random`` that seeds models.
The points are laid out exactly (the ideal shape), then Gaussian noise of std ``noise`` is added
to both coordinates and the order is shuffled.

    make_moons    two interleaving half circles (scikit-learn's shape)
    make_circles  a circle inside a larger one (scikit-learn's shape)
    make_spirals  two interleaved spiral arms
    make_xor      points in a square, labelled by the sign of x0 * x1

One more, of another shape: ``make_digits`` stands in for scikit-learn's 8x8 digits where
scikit-learn is not installed (``micrograd bench`` uses it then): 64 pixel intensities 0-16 per
sample and labels 0-9.
"""
from __future__ import annotations

import math
import random
from typing import Callable, Dict, List, Tuple

Dataset = Tuple[List[List[float]], List[int]]


def make_moons(n_samples: int = 100, noise: float = 0.1, seed: int = 1337) -> Dataset:
    """Two interleaving half circles, as scikit-learn's make_moons draws them (its geometry,
    not its random stream): the first half of the points on the upper moon (label -1), the
    rest on the lower one (label +1)."""
    _check("make_moons", n_samples, noise)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    X: List[List[float]] = []
    for t in _spaced(math.pi, n_out, endpoint=True):
        X.append([math.cos(t), math.sin(t)])
    for t in _spaced(math.pi, n_in, endpoint=True):
        X.append([1.0 - math.cos(t), 1.0 - math.sin(t) - 0.5])
    return _noisy_and_shuffled(X, [-1] * n_out + [1] * n_in, noise, random.Random(seed))


def make_circles(n_samples: int = 100, noise: float = 0.1, factor: float = 0.5, seed: int = 1337) -> Dataset:
    """A unit circle (label -1, the first half of the points) around a circle of radius
    ``factor`` (label +1), points evenly spaced in angle, as scikit-learn's make_circles."""
    _check("make_circles", n_samples, noise)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"make_circles needs 0 < factor < 1 (the inner circle's radius), got {factor!r}")
    n_out = n_samples // 2
    n_in = n_samples - n_out
    X = [[math.cos(t), math.sin(t)] for t in _spaced(2 * math.pi, n_out, endpoint=False)]
    X += [[factor * math.cos(t), factor * math.sin(t)] for t in _spaced(2 * math.pi, n_in, endpoint=False)]
    return _noisy_and_shuffled(X, [-1] * n_out + [1] * n_in, noise, random.Random(seed))


def make_spirals(n_samples: int = 100, noise: float = 0.1, seed: int = 1337) -> Dataset:
    """Two spiral arms, one the other turned by half a turn: arm -1 (the first half of the
    points) and arm +1 each wind 1.25 turns outward from radius 0.2 to 1."""
    _check("make_spirals", n_samples, noise)
    n_a = n_samples // 2
    n_b = n_samples - n_a
    X: List[List[float]] = []
    for n, phase in ((n_a, 0.0), (n_b, math.pi)):
        for s in _spaced(1.0, n, endpoint=True):
            r = 0.2 + 0.8 * s
            angle = 2.5 * math.pi * s + phase
            X.append([r * math.cos(angle), r * math.sin(angle)])
    return _noisy_and_shuffled(X, [-1] * n_a + [1] * n_b, noise, random.Random(seed))


def make_xor(n_samples: int = 100, noise: float = 0.1, seed: int = 1337) -> Dataset:
    """Points uniform in the square [-1, 1]^2, labelled +1 where x0 and x1 have the same sign
    and -1 where they differ (before the noise is added)."""
    _check("make_xor", n_samples, noise)
    rng = random.Random(seed)
    X = [[rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)] for _ in range(n_samples)]
    y = [1 if x0 * x1 > 0 else -1 for x0, x1 in X]
    return _noisy_and_shuffled(X, y, noise, rng)


def make_digits(n_samples: int = 1797, noise: float = 2.0, seed: int = 1337) -> Tuple[List[List[float]], List[int]]:
    """A digits-like set of the shape of scikit-learn's ``load_digits``: ``n_samples`` images of
    8x8 pixels, each a list of 64 intensities (whole numbers 0-16, as floats), labels 0-9 in
    turn (then shuffled). Each class is a random stroke pattern; a sample is its class's
    pattern, brightened or dimmed as a whole, plus Gaussian noise of std ``noise`` per pixel,
    rounded and clipped to 0-16. Not handwriting: a stand-in of the same size and difficulty
    class for timing and smoke tests."""
    _check("make_digits", n_samples, noise)
    rng = random.Random(seed)
    patterns = [_stroke_pattern(rng) for _ in range(10)]
    X: List[List[float]] = []
    y: List[int] = []
    for i in range(n_samples):
        label = i % 10
        gain = rng.uniform(0.7, 1.1)
        X.append([float(min(16, max(0, round(v * gain + rng.gauss(0.0, noise))))) for v in patterns[label]])
        y.append(label)
    order = list(range(n_samples))
    rng.shuffle(order)
    return [X[i] for i in order], [y[i] for i in order]


def _stroke_pattern(rng: random.Random) -> List[float]:
    """64 intensities: three random walks of bright pixels on an 8x8 grid."""
    image = [0.0] * 64
    for _ in range(3):
        r, c = rng.randrange(1, 7), rng.randrange(1, 7)
        for _ in range(6):
            image[8 * r + c] = 16.0
            r = min(7, max(0, r + rng.choice((-1, 0, 1))))
            c = min(7, max(0, c + rng.choice((-1, 0, 1))))
    return image


DATASETS: Dict[str, Callable[..., Dataset]] = {
    "moons": make_moons,
    "circles": make_circles,
    "spirals": make_spirals,
    "xor": make_xor,
}


def _check(name: str, n_samples: object, noise: object) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int):
        raise TypeError(f"{name}: n_samples must be an int, not {type(n_samples).__name__!r}")
    if n_samples < 2:
        raise ValueError(f"{name} needs at least 2 samples, got {n_samples}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)):
        raise TypeError(f"{name}: noise must be a number, not {type(noise).__name__!r}")
    if not noise >= 0.0:
        raise ValueError(f"{name}: noise is a standard deviation and cannot be negative, got {noise!r}")


def _spaced(stop: float, n: int, endpoint: bool) -> List[float]:
    """``n`` evenly spaced numbers from 0 to ``stop`` (included if ``endpoint``), as
    numpy.linspace(0, stop, n, endpoint) gives them."""
    if n == 1:
        return [0.0]
    intervals = n - 1 if endpoint else n
    return [stop * i / intervals for i in range(n)]


def _noisy_and_shuffled(X: List[List[float]], y: List[int], noise: float, rng: random.Random) -> Dataset:
    for point in X:
        point[0] += rng.gauss(0.0, noise)
        point[1] += rng.gauss(0.0, noise)
    order = list(range(len(X)))
    rng.shuffle(order)
    return [X[i] for i in order], [y[i] for i in order]
